"""Ingest: forecast files to the canonical dataset (interfaces.md §1).

Knows nothing of rules or towns. This first version reads NetCDF files that already use the
canonical names (the sample scenarios, cityops' own outputs); readers for GRIB, MICAPS and
other models' naming come with the ingest issue.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Sequence
from pathlib import Path

import xarray as xr

from cityops.errors import InputError
from cityops.ingest.canonical import add_history, check_covers, to_canonical

__all__ = ["add_history", "check_covers", "expand_paths", "open_forecast", "to_canonical"]

log = logging.getLogger("cityops")


def expand_paths(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    """Files named by paths and glob patterns, in order; :class:`InputError` for a missing
    file, a folder, or a pattern matching nothing."""
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
        if p.is_dir():
            raise InputError(f"{p}: is a folder; expected a forecast file")
    return out


def _open_netcdf(path: Path, chunks) -> xr.Dataset:
    with path.open("rb") as fh:
        magic = fh.read(8)
    # netCDF4-python reads both the classic (CDF) and the HDF5-based formats.
    if magic[:3] == b"CDF" or magic[:8] == b"\x89HDF\r\n\x1a\n":
        engine = "netcdf4"
    else:
        raise InputError(f"{path}: not a NetCDF file (unknown signature {magic[:4]!r})")
    try:
        # An explicit engine: letting xarray guess imports every backend (see issue #3).
        return xr.open_dataset(path, engine=engine, chunks=chunks)
    except (OSError, ValueError, RuntimeError) as err:
        raise InputError(f"{path}: cannot be read as NetCDF ({err})") from None


def open_forecast(
    paths: str | Path | Sequence[str | Path],
    *,
    chunks: dict | None = None,
) -> xr.Dataset:
    """Open one forecast (one or several files, or a glob) as the canonical dataset.

    Parameters
    ----------
    paths : path, glob or list of paths
        NetCDF files; several files are combined along ``time``.
    chunks : dict, optional
        Dask chunks (default ``{}``: lazy, one chunk per file variable).

    Returns
    -------
    xarray.Dataset
        Canonical dataset: UTC ``time``, ``lat``/``lon``, canonical variables and units,
        ``issued`` attribute; what was inferred is in ``history``.

    Raises
    ------
    InputError
        With a one-line message naming the file and the problem.
    """
    files = expand_paths(paths)
    chunks = {} if chunks is None else chunks
    parts = [to_canonical(_open_netcdf(p, chunks), source=str(p)) for p in files]
    if len(parts) == 1:
        ds = parts[0]
    else:
        issued = {p.attrs["issued"] for p in parts}
        if len(issued) > 1:
            raise InputError(
                f"{files[0]}: files belong to different runs (issued {', '.join(sorted(issued))})"
            )
        ds = xr.concat(
            parts,
            dim="time",
            data_vars="minimal",
            coords="minimal",
            compat="override",
            join="override",
            combine_attrs="override",
        )
        ds = to_canonical(ds, source=", ".join(map(str, files)))
    ds.attrs["cityops_source_files"] = ", ".join(str(p) for p in files)
    return ds
