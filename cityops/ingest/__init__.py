"""Ingest: forecast files to the canonical dataset (interfaces.md §1).

Knows nothing of rules or towns. Readers return the file's own structure; the steps of
:mod:`cityops.ingest.canonical` normalise coordinates and time, crop to the jurisdiction before
anything is loaded, recognise variables and convert units and accumulations.

Formats are recognised by content, not by file name: NetCDF (classic and HDF5-based, through
netCDF4-python), GRIB 1/2 (cfgrib and ecCodes), MICAPS diamond 4 grids.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pandas as pd
import xarray as xr

from cityops.errors import InputError
from cityops.ingest.canonical import (
    LON_NAMES,
    VariableMapping,
    add_history,
    check_covers,
    crop,
    crop_window,
    identify_variables,
    load_mapping,
    normalize_coords,
    normalize_time,
    to_canonical,
    unreadable,
    wind_components,
)
from cityops.ingest.classic import truncated_variable
from cityops.timeutil import iso_utc

__all__ = [
    "IN_MEMORY_BYTES",
    "VariableMapping",
    "add_history",
    "check_covers",
    "expand_paths",
    "load_mapping",
    "open_forecast",
    "open_raw",
    "sniff_format",
    "to_canonical",
]

log = logging.getLogger("cityops")

#: A cropped forecast up to this size is read into memory by :func:`open_forecast` (unless
#: the caller asks for dask ``chunks``): its values are then read from the file once, and the
#: checks and conversions run on numpy arrays instead of a dask graph of many tiny tasks. The
#: same limit as ``cityops.pipeline.IN_MEMORY_BYTES``, under which ``assess`` loads the
#: forecast anyway (measured in benchmarks/RESULTS.md, issue 17).
IN_MEMORY_BYTES = 256 * 2**20

#: A reader's window: the rows/columns of the file's own grid to read (see
#: :func:`cityops.ingest.canonical.crop_window`).
Window = Callable[[xr.Dataset], "dict | None"]


def expand_paths(
    paths: str | Path | Sequence[str | Path], *, allow_dirs: bool = False
) -> list[Path]:
    """Files named by paths and glob patterns, in order; :class:`InputError` for a missing
    file, a folder (unless ``allow_dirs``), or a pattern matching nothing."""
    if isinstance(paths, str | Path):
        paths = [paths]
    out: list[Path] = []
    for p in paths:
        text = str(p)
        if any(ch in text for ch in "*?["):
            matches = sorted(glob.glob(text))
            if not matches:
                raise InputError(f"{text}: no file matches this pattern")
            out.extend(Path(m) for m in matches)
        else:
            out.append(Path(text))
    for p in out:
        if not p.exists():
            raise InputError(f"{p}: file not found")
        if p.is_dir() and not allow_dirs:
            raise InputError(f"{p}: is a folder; expected a forecast file")
    return out


def sniff_format(path: Path) -> str:
    """``netcdf``, ``grib``, ``micaps4`` or ``micaps1`` from the first bytes of the file."""
    with path.open("rb") as fh:
        head = fh.read(64)
    if not head:
        raise InputError(
            f"{path}: empty file (0 bytes); expected a NetCDF, GRIB or MICAPS diamond 4 forecast"
        )
    if head[:3] == b"CDF" or head[:8] == b"\x89HDF\r\n\x1a\n":
        return "netcdf"
    if head[:4] == b"GRIB":
        return "grib"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"diamond"):
        kind = text[len(b"diamond") :].split()[:1]
        if kind == [b"4"]:
            return "micaps4"
        if kind == [b"1"]:
            return "micaps1"
    raise InputError(
        f"{path}: unknown file format (first bytes {head[:8]!r}); expected NetCDF, GRIB or "
        "MICAPS diamond 4"
    )


def open_raw(path: Path, *, chunks: dict | None = None, window: Window | None = None) -> xr.Dataset:
    """The file as its reader sees it (no renaming or conversion).

    ``window`` (see :func:`cityops.ingest.canonical.crop_window`) names the rows and columns
    of the file's grid to keep: NetCDF variables are cut lazily (contiguous slices read as
    hyperslabs), GRIB messages right after decoding.
    """
    kind = sniff_format(path)
    if kind == "netcdf":
        # netCDF-C reads the missing end of a truncated classic file as zeros: check first.
        cut = truncated_variable(path)
        if cut is not None:
            name, needed, size = cut
            raise InputError(
                f"{path}: truncated NetCDF file: variable {name!r} needs {needed} bytes, the "
                f"file has {size}; expected the complete file (interrupted download or copy?)"
            )
        try:
            # An explicit engine: letting xarray guess imports every backend, ecCodes included
            # (see cityops.ingest.grib on the import-order crash).
            ds = xr.open_dataset(path, engine="netcdf4", chunks={} if chunks is None else chunks)
        except (OSError, ValueError, RuntimeError, KeyError) as err:
            raise InputError(
                f"{path}: cannot be read as NetCDF ({err}); expected a complete NetCDF-3 or "
                "NetCDF-4 file (truncated or corrupt?)"
            ) from None
        cut = window(ds) if window is not None else None
        return ds.isel(cut) if cut else ds
    if kind == "grib":
        from cityops.ingest.grib import open_grib

        return open_grib(path, chunks=chunks, window=window)
    if kind == "micaps4":
        from cityops.ingest.micaps import read_micaps4

        return read_micaps4(path)
    raise InputError(
        f"{path}: MICAPS diamond 1 holds station observations, not a gridded forecast; "
        "use it as --observed in a review"
    )


def _combine(parts: list[xr.Dataset], files: list[Path]) -> xr.Dataset:
    issued = {p.attrs["issued"] for p in parts}
    if len(issued) > 1:
        raise InputError(
            f"{files[0]}: files belong to different runs (issued {', '.join(sorted(issued))})"
        )
    common = set(parts[0].data_vars)
    for p in parts[1:]:
        common &= set(p.data_vars)
    dropped = set().union(*(set(p.data_vars) for p in parts)) - common
    if dropped:
        log.info(
            "%s: variables not in every file ignored: %s", files[0], ", ".join(sorted(dropped))
        )
    ds = xr.concat(
        [p[sorted(common)] for p in parts],
        dim="time",
        data_vars="all",
        coords="minimal",
        compat="override",
        join="override",
        combine_attrs="override",
    ).sortby("time")
    times = pd.DatetimeIndex(ds["time"].values)
    if times.has_duplicates:
        raise InputError(
            f"{files[0]}: valid time {iso_utc(times[times.duplicated()][0])} appears in two files"
        )
    # Each step now starts where the previous one ends; the first keeps its own start.
    starts = ds["step_start"].values.copy()
    starts[1:] = ds["time"].values[:-1]
    ds = ds.assign_coords(step_start=("time", starts))
    add_history(ds, f"{len(files)} files combined along time")
    return ds


class _Window:
    """The crop window of :func:`cityops.ingest.canonical.crop_window` for a reader, which
    remembers whether the file's grid had 0-360 longitudes."""

    def __init__(self, bounds: tuple[float, float, float, float], margin: float):
        self.bounds, self.margin = bounds, margin
        self.lon_0_360 = False
        self.cut = False

    def __call__(self, raw: xr.Dataset) -> dict | None:
        window = crop_window(raw, self.bounds, margin=self.margin)
        lon = next((n for n in LON_NAMES if n in raw.variables), None)
        self.lon_0_360 = lon is not None and float(raw[lon].max()) > 180
        self.cut = window is not None
        return window

    def converted_before_cut(self, raw: xr.Dataset) -> bool:
        """The file's grid was 0-360 but the cut part of it (``raw``, as read) is not."""
        if not (self.cut and self.lon_0_360):
            return False
        lon = next((n for n in LON_NAMES if n in raw.variables), None)
        return lon is not None and float(raw[lon].max()) <= 180


def _load_used(
    raw: xr.Dataset,
    *,
    mapping: Mapping[str, VariableMapping] | None,
    source: str,
    limit: int = IN_MEMORY_BYTES,
) -> xr.Dataset:
    """The variables the canonical dataset is made of, read into memory when they take at
    most :data:`IN_MEMORY_BYTES`: each value is then read from the file once and the checks
    run on numpy. Other variables stay unread (a damaged field nobody uses is never decoded).
    """
    used = set(identify_variables(raw, mapping=mapping, source=source, quiet=True))
    for u, v in wind_components():
        if u in raw and v in raw:
            used |= {u, v}
    used &= set(raw.data_vars)
    if not used or sum(raw[name].nbytes for name in used) > limit:
        return raw
    loaded = {}
    for name in sorted(used):
        try:
            loaded[name] = raw[name].load()
        except MemoryError:
            raise
        except Exception as err:  # ecCodes DecodingError, netCDF/HDF5 RuntimeError...
            raise unreadable(err, source=source, label=name) from None
    return raw.assign(loaded)


def open_forecast(
    paths: str | Path | Sequence[str | Path],
    *,
    chunks: dict | None = None,
    bounds: tuple[float, float, float, float] | None = None,
    margin: float = 0.3,
    mapping: str | Path | Mapping[str, VariableMapping] | None = None,
    in_memory_bytes: int | None = None,
) -> xr.Dataset:
    """Open one forecast (one or several files, or a glob) as the canonical dataset.

    Parameters
    ----------
    paths : path, glob or list of paths
        NetCDF, GRIB or MICAPS diamond 4 files of one run; several files (one per lead time,
        say) are combined along ``time``.
    chunks : dict, optional
        Dask chunks: the result stays lazy. By default the variables used, once cropped,
        are read into memory when they take at most the in-memory size in force
        (``in_memory_bytes``, :func:`cityops.cluster.in_memory_limit`: :data:`IN_MEMORY_BYTES`
        without a cluster): each value read from the file once, the checks on numpy; larger
        ones stay lazy (NetCDF: the file's own chunks), for the cluster's workers with
        ``--scheduler``.
    bounds : (lon_min, lat_min, lon_max, lat_max), optional
        Crop to these bounds plus ``margin`` degrees before anything is read: only the rows
        and columns needed are read (contiguous slices of NetCDF variables, GRIB fields cut
        as each message is decoded); the grid must cover them.
    mapping : path or dict, optional
        A user variable mapping (YAML, see :func:`cityops.ingest.load_mapping`).

    Returns
    -------
    xarray.Dataset
        Canonical dataset: valid ``time`` (UTC) with ``step_start``, ``lat``/``lon``, optional
        ``member``, canonical variables in canonical units, ``issued``; everything inferred
        is in ``history``.

    Raises
    ------
    InputError
        With a one-line message naming the file and the problem.
    """
    files = expand_paths(paths)
    if isinstance(mapping, str | Path):
        mapping = load_mapping(mapping)
    from cityops.cluster import in_memory_limit  # the one owner of that setting

    limit = in_memory_limit(in_memory_bytes)
    window = None if bounds is None else _Window(bounds, margin)
    # Several files are joined lazily (dask), so that only the variables used are read.
    per_file = {} if chunks is None and len(files) > 1 else chunks
    raws = [open_raw(path, chunks=per_file, window=window) for path in files]
    if len(raws) > 1 and all(r.attrs.get("cityops_reader") == "grib" for r in raws):
        # One GRIB file per lead time: join the steps first, keeping the per-step GRIB
        # attributes (accumulation periods) aligned.
        from cityops.ingest.grib import combine_steps

        raws = [combine_steps(raws)]
        files_for_parts = [files[0]]
    else:
        files_for_parts = files
    parts = []
    for path, raw in zip(files_for_parts, raws, strict=True):
        source = str(path) if len(raws) == len(files) else ", ".join(map(str, files))
        note = window is not None and window.converted_before_cut(raw)
        raw = normalize_coords(raw, source=source)
        if note:
            # The cut part needed no conversion; the file's grid did (history as without a cut).
            add_history(raw, f"{source}: longitudes 0-360 converted to -180..180")
        raw = normalize_time(raw, source=source)
        if bounds is not None:
            raw = crop(raw, bounds, margin=margin, source=source)
        if chunks is None:
            raw = _load_used(raw, mapping=mapping, source=source, limit=limit)
        parts.append(raw)
    raw = parts[0] if len(parts) == 1 else _combine(parts, files)
    source = ", ".join(str(p) for p in files) if len(files) > 1 else str(files[0])
    ds = to_canonical(raw, source=source, mapping=mapping)
    ds.encoding["source"] = source
    ds.attrs["cityops_source_files"] = ", ".join(str(p) for p in files)
    return ds
