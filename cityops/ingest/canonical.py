"""From whatever a reader returns to the canonical forecast dataset (interfaces.md §1).

Small single-purpose steps, each recording what it inferred in ``history``:

1. :func:`normalize_coords` — ``latitude``/``longitude`` to ``lat``/``lon``, 0–360 to −180…180,
   ensemble dimension to ``member``.
2. :func:`normalize_time` — valid time from ``time``, ``valid_time`` or reference ``time`` +
   ``step``; the forecast reference time into ``issued``; the start of the first step.
3. :func:`crop` — the jurisdiction plus a margin, before anything is loaded.
4. :func:`identify_variables` — user mapping, CF ``standard_name``, known aliases.
5. :func:`to_canonical` — units with pint, de-accumulation, rates to amounts, wind from
   components, CF attributes.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from cityops.errors import InputError
from cityops.ingest.plausibility import (
    ValueSummary,
    check_bounds,
    check_missing_codes,
    check_period_amounts,
    summarize,
)
from cityops.resources import canonical_variables, load_yaml, package_data
from cityops.timeutil import REPORT_TZ, iso_utc, parse_utc
from cityops.units import convert_dataarray, registry

__all__ = [
    "VariableMapping",
    "add_history",
    "check_covers",
    "crop",
    "crop_window",
    "deaccumulate",
    "identify_variables",
    "inspect_values",
    "load_mapping",
    "normalize_coords",
    "normalize_time",
    "to_canonical",
    "unreadable",
    "wind_components",
]

log = logging.getLogger("cityops")

_LAT_NAMES = ("lat", "latitude", "Latitude", "LAT", "XLAT", "nav_lat", "lat_0", "y_lat")
_LON_NAMES = ("lon", "longitude", "Longitude", "LON", "XLONG", "nav_lon", "lon_0", "x_lon")
#: Names a file's longitude may have (the first found is used).
LON_NAMES = _LON_NAMES
_MEMBER_NAMES = ("member", "number", "realization", "ensemble_member", "ens", "perturbation")

# CF standard names that identify a canonical variable (cell_methods refine temperature).
_STANDARD_NAMES = {
    "precipitation_amount": ("precip", "interval"),
    "lwe_thickness_of_precipitation_amount": ("precip", "interval"),
    "precipitation_flux": ("precip", "rate"),
    "lwe_precipitation_rate": ("precip", "rate"),
    "lwe_thickness_of_snowfall_amount": ("snowfall", "interval"),
    "snowfall_amount": ("snowfall", "interval"),
    "air_temperature": ("t2m", None),
    "surface_temperature": ("tsurf", None),
    "wind_speed": ("wind", None),
    "wind_speed_of_gust": ("gust", None),
    "visibility_in_air": ("vis", None),
    "relative_humidity": ("rh", None),
    "mass_concentration_of_pm2p5_ambient_aerosol_particles_in_air": ("pm25", None),
    "mass_concentration_of_dust_dry_aerosol_particles_in_air": ("dust", None),
    "atmosphere_convective_available_potential_energy": ("cape", None),
    "atmosphere_convective_available_potential_energy_wrt_surface": ("cape", None),
}
_AMOUNTS = ("precip", "snowfall")


def add_history(ds: xr.Dataset, line: str) -> None:
    """Append a line to the dataset's ``history`` attribute (in place) and log it."""
    previous = ds.attrs.get("history", "")
    ds.attrs["history"] = f"{previous}\n{line}".strip() if previous else line
    log.info("%s", line)


# ---------------------------------------------------------------------------------------------
# Variable mapping: shipped aliases plus a user's YAML


@dataclass(frozen=True)
class VariableMapping:
    """Where a canonical variable comes from in a source file.

    Attributes
    ----------
    name : str
        Canonical variable name.
    kind : str or None
        For amounts: ``interval`` (the amount over the step ending at the valid time),
        ``running`` (since the forecast started), ``bucket`` (since the last multiple of
        ``period`` after the start, as GFS 6 h buckets), ``rate`` (times its period, or the
        step) or ``auto`` (decided from the file's metadata, see :func:`accumulation_kind`).
    units : str or None
        Units to assume when the file has none (user mappings only).
    how : str
        How it was recognised (``mapping``, ``standard_name``, ``alias``), for ``history``.
    period : pandas.Timedelta or None
        ``bucket``: the bucket length; ``interval``/``rate``: the period each value covers
        (CMPA: 1 h), so that a skipped time is a gap, not a longer step.
    """

    name: str
    kind: str | None = None
    units: str | None = None
    how: str = "alias"
    period: pd.Timedelta | None = None


@cache
def _aliases() -> dict:
    data = load_yaml(package_data("data", "aliases.yaml"))
    by_name: dict[str, VariableMapping] = {}
    rank: dict[str, int] = {}
    for canonical, entries in data["variables"].items():
        for i, entry in enumerate(entries):
            period = _parse_period(entry.get("period"), f"aliases.yaml: {entry['name']}")
            by_name[str(entry["name"])] = VariableMapping(
                canonical, entry.get("kind"), period=period
            )
            rank[str(entry["name"])] = i
    conventions = []
    for i, conv in enumerate(data.get("conventions", [])):
        where = f"aliases.yaml: conventions[{i}]"
        if conv.get("kind") not in ("interval", "running", "bucket") or not conv.get("source"):
            raise InputError(f"{where}: needs kind interval/running/bucket and a source")
        if conv["kind"] == "bucket" and conv.get("period") is None:
            raise InputError(f"{where}: kind bucket needs a period")
        conventions.append({**conv, "period": _parse_period(conv.get("period"), where)})
    return {
        "names": by_name,
        "rank": rank,
        "components": [(str(c["u"]), str(c["v"])) for c in data.get("components", [])],
        "never": {str(n) for n in data.get("never", [])},
        "conventions": conventions,
    }


_KINDS = ("interval", "running", "bucket", "auto", "rate")


def _parse_period(value, where: str) -> pd.Timedelta | None:
    """``"6 h"``, ``6`` (hours) or None; :class:`InputError` for anything else."""
    if value is None:
        return None
    try:
        period = (
            pd.Timedelta(hours=float(value))
            if isinstance(value, int | float)
            else pd.Timedelta(str(value).replace(" ", ""))
        )
    except (ValueError, TypeError):
        period = None
    if period is None or period <= pd.Timedelta(0):
        raise InputError(f"{where}: period {value!r} is not a duration; expected e.g. '6 h'")
    return period


def load_mapping(path: str | Path | None) -> dict[str, VariableMapping]:
    """A user's variable mapping (YAML) adding or overriding source names.

    The file reads::

        variables:
          my_rain: {name: precip, units: mm, kind: interval}
          gfs_tp: {name: precip, kind: bucket, period: 6 h}
          temp2m: {name: t2m, units: K}

    ``kind`` says how an amount is stored: ``interval`` (over the step ending at the valid
    time), ``running`` (since the forecast started), ``bucket`` with a ``period`` (since the
    last multiple of the period, GFS), ``rate`` (times the step, or ``period``).

    Raises
    ------
    InputError
        Unknown canonical names or kinds, with the file and the entry.
    """
    if path is None:
        return {}
    data = load_yaml(path)
    entries = data.get("variables")
    if not isinstance(entries, dict):
        raise InputError(f"{path}: expected a 'variables:' mapping of source names")
    registry = canonical_variables()
    out = {}
    for source, spec in entries.items():
        if isinstance(spec, str):
            spec = {"name": spec}
        if not isinstance(spec, dict) or spec.get("name") not in registry:
            raise InputError(
                f"{path}: variables.{source}: 'name' must be one of {', '.join(registry)}"
            )
        kind = spec.get("kind")
        if kind not in (None, *_KINDS):
            raise InputError(f"{path}: variables.{source}: kind {kind!r} is not {'/'.join(_KINDS)}")
        period = _parse_period(spec.get("period"), f"{path}: variables.{source}")
        if kind == "bucket" and period is None:
            raise InputError(
                f"{path}: variables.{source}: kind bucket needs 'period' (e.g. period: 6 h)"
            )
        out[str(source)] = VariableMapping(
            spec["name"], kind, spec.get("units"), how="mapping", period=period
        )
    return out


def _by_standard_name(da: xr.DataArray) -> VariableMapping | None:
    std = da.attrs.get("standard_name")
    if std not in _STANDARD_NAMES:
        return None
    name, kind = _STANDARD_NAMES[std]
    methods = str(da.attrs.get("cell_methods", ""))
    if name == "t2m" and "maximum" in methods:
        name = "t2m_max"
    elif name == "t2m" and "minimum" in methods:
        name = "t2m_min"
    if name in _AMOUNTS and "time: sum" not in methods and kind == "interval":
        kind = "auto"  # a standard name alone does not say whether it accumulates
    return VariableMapping(name, kind, how="standard_name")


def wind_components() -> list[tuple[str, str]]:
    """Pairs of source names ``(u, v)`` the wind speed is derived from (``aliases.yaml``)."""
    return list(_aliases()["components"])


def identify_variables(
    ds: xr.Dataset,
    *,
    mapping: Mapping[str, VariableMapping] | None = None,
    source: str = "",
    quiet: bool = False,
) -> dict[str, VariableMapping]:
    """Source variable name -> canonical mapping; one source per canonical variable.

    Preference: the user's mapping, then CF ``standard_name`` (with ``cell_methods``), then
    known aliases in the order of ``aliases.yaml`` (so GFS ``tp`` wins over ``prate``).
    Snow on the ground (snow depth, snow water equivalent) is never snowfall. ``quiet``:
    log nothing (a look ahead whose choices are logged when the conversion makes them).
    """
    if quiet:
        with _quiet():
            return identify_variables(ds, mapping=mapping, source=source)
    mapping = dict(mapping or {})
    aliases = _aliases()
    best: dict[str, tuple[tuple[int, int], str, VariableMapping]] = {}
    for var in ds.data_vars:
        name = str(var)
        if name in aliases["never"] and name not in mapping:
            log.info("%s: %s is snow on the ground, not snowfall: ignored", source, name)
            continue
        if name in mapping:
            match, rank = mapping[name], (0, 0)
        elif (match := _by_standard_name(ds[var])) is not None:
            rank = (1, 0)
        elif (match := aliases["names"].get(name)) is not None:
            rank = (2, aliases["rank"][name])
        else:
            continue
        current = best.get(match.name)
        if current is None or rank < current[0]:
            if current is not None:
                log.info("%s: %s preferred to %s for %s", source, name, current[1], match.name)
            best[match.name] = (rank, name, match)
        else:
            log.info("%s: %s preferred to %s for %s", source, current[1], name, match.name)
    return {name: match for _, name, match in sorted(best.values(), key=lambda b: b[1])}


# ---------------------------------------------------------------------------------------------
# Coordinates and time


def normalize_coords(ds: xr.Dataset, *, source: str) -> xr.Dataset:
    """``lat``/``lon`` names, −180…180 longitudes, ``member`` for ensembles."""
    lat = next((n for n in _LAT_NAMES if n in ds.variables), None)
    lon = next((n for n in _LON_NAMES if n in ds.variables), None)
    if lat is None or lon is None:
        raise InputError(f"{source}: no latitude/longitude coordinates; expected 'lat'/'lon'")
    _check_degrees(ds, lat, -90.0, 90.0, "latitudes in degrees north", source)
    _check_degrees(ds, lon, -180.0, 360.0, "longitudes in degrees east", source)
    rename = {k: v for k, v in ((lat, "lat"), (lon, "lon")) if k != v}
    ds = ds.rename(rename) if rename else ds
    if ds["lat"].ndim == 2 and "lat" not in ds.coords:
        ds = ds.set_coords(["lat", "lon"])
    if ds["lon"].ndim == 1 and float(ds["lon"].max()) > 180:
        ds = ds.assign_coords(lon=((ds["lon"] + 180) % 360) - 180).sortby("lon")
        add_history(ds, f"{source}: longitudes 0-360 converted to -180..180")
    elif ds["lon"].ndim == 2 and float(ds["lon"].max()) > 180:
        ds = ds.assign_coords(lon=((ds["lon"] + 180) % 360) - 180)
        add_history(ds, f"{source}: longitudes 0-360 converted to -180..180")
    member = next((n for n in _MEMBER_NAMES if n in ds.variables), None)
    if member is not None:
        if ds[member].ndim == 0 or (ds[member].size == 1 and member not in ds.dims):
            ds = ds.drop_vars(member)  # a deterministic run's scalar member number
        elif member != "member":
            ds = ds.rename({member: "member"})
            add_history(ds, f"{source}: ensemble dimension {member!r} is 'member'")
    # Singleton vertical levels (e.g. 2 m, surface) are dropped.
    for dim in [d for d in ds.dims if d not in ("time", "step", "valid_time", "member")]:
        if ds.sizes[dim] == 1 and dim not in ("lat", "lon", "y", "x"):
            ds = ds.isel({dim: 0}, drop=True)
    return ds


def _check_degrees(ds: xr.Dataset, name: str, lo: float, hi: float, what: str, source: str):
    """Coordinates outside ``lo..hi`` (latitude and longitude swapped, projected metres)."""
    values = np.asarray(ds[name].values, dtype=float)
    if values.size == 0 or np.isnan(values).all():
        raise InputError(f"{source}: coordinate {name!r} has no values; expected {what}")
    vmin, vmax = float(np.nanmin(values)), float(np.nanmax(values))
    if vmin < lo or vmax > hi:
        hint = " (are latitude and longitude swapped?)" if lo == -90.0 and vmax <= 360 else ""
        raise InputError(
            f"{source}: coordinate {name!r} has values {vmin:g}..{vmax:g}, outside "
            f"{lo:g}..{hi:g}; expected {what}{hint}"
        )


def _reference_time(ds: xr.Dataset, source: str) -> pd.Timestamp | None:
    for key in ("issued", "forecast_reference_time", "RunTime", "initial_time", "run_time"):
        if key in ds.attrs:
            return parse_utc(ds.attrs[key], what=f"{source}: attribute {key!r}")
    if "forecast_reference_time" in ds.coords and ds["forecast_reference_time"].size == 1:
        return pd.Timestamp(ds["forecast_reference_time"].values.reshape(-1)[0])
    return None


def normalize_time(ds: xr.Dataset, *, source: str) -> xr.Dataset:
    """Give the dataset a ``time`` dimension of valid times (UTC), ``issued`` and the start of
    each step (coordinate ``step_start``)."""
    history_lines = []
    reference = None
    if "step" in ds.coords or "step" in ds.dims:
        if "time" in ds.dims:
            raise InputError(f"{source}: several forecast runs in one file; expected one run")
        if "time" not in ds.coords:
            raise InputError(f"{source}: 'step' without a reference 'time'")
        reference = pd.Timestamp(ds["time"].values)
        if "step" not in ds.dims:
            ds = ds.expand_dims("step")
        valid = reference + pd.to_timedelta(ds["step"].values)
        ds = ds.drop_vars([v for v in ("time", "valid_time") if v in ds.variables])
        ds = ds.assign_coords(step=valid).rename(step="time")
        history_lines.append(f"{source}: valid time = reference time + step")
    elif "valid_time" in ds.dims:
        if "time" in ds.coords and ds["time"].ndim == 0:
            reference = pd.Timestamp(ds["time"].values)
            ds = ds.drop_vars("time")
        ds = ds.rename(valid_time="time")
    elif "time" not in ds.dims:
        if "time" in ds.coords:
            ds = ds.expand_dims("time")
        elif "valid_time" in ds.coords:
            ds = ds.rename(valid_time="time").expand_dims("time")
        else:
            raise InputError(f"{source}: no 'time' coordinate; expected valid times (UTC)")
    if not np.issubdtype(ds["time"].dtype, np.datetime64):
        raise InputError(f"{source}: variable 'time' is not a date-time; expected CF time units")
    times = pd.DatetimeIndex(ds["time"].values)
    if times.tz is not None:
        ds = ds.assign_coords(time=times.tz_convert("UTC").tz_localize(None))
        times = pd.DatetimeIndex(ds["time"].values)
    if times.has_duplicates:
        dup = times[times.duplicated()][0]
        raise InputError(
            f"{source}: variable 'time' has a duplicated time {iso_utc(dup)}; expected each "
            "valid time once"
        )
    if not times.is_monotonic_increasing:
        raise InputError(f"{source}: variable 'time' is not increasing; expected sorted times")
    attr_ref = _reference_time(ds, source)
    if reference is None:
        reference = attr_ref
    if reference is None:
        reference = _infer_reference(ds, times)
        ds.attrs[REFERENCE_INFERRED_ATTR] = 1
        history_lines.append(
            f"{source}: no forecast reference time; issued taken as the start of the first "
            f"step ({iso_utc(reference)})"
        )
    ds.attrs["issued"] = iso_utc(reference)
    ds = ds.assign_coords(step_start=("time", _step_starts(ds, times, reference)))
    ds["step_start"].attrs = {"long_name": "start of the step ending at time", "units_note": "UTC"}
    for line in history_lines:
        add_history(ds, line)
    return ds


def _infer_reference(ds: xr.Dataset, times: pd.DatetimeIndex) -> pd.Timestamp:
    first = _first_step_from_attrs(ds)
    if first is None:
        first = times[1] - times[0] if len(times) > 1 else pd.Timedelta("1h")
    return times[0] - first


def _first_step_from_attrs(ds: xr.Dataset) -> pd.Timedelta | None:
    start, end = ds.attrs.get("StartForecastHour"), ds.attrs.get("EndForecastHour")
    if start is not None and end is not None and float(end) > float(start):
        return pd.Timedelta(hours=float(end) - float(start))
    return None


def _first_step_from_period(
    ds: xr.Dataset, times: pd.DatetimeIndex, reference: pd.Timestamp
) -> pd.Timedelta | None:
    """The first step of a file whose amounts state their own period (MICAPS "24小时降水" at
    lead 48 h covers 24-48 h, not 0-48 h)."""
    for var in ds.data_vars:
        hours = ds[var].attrs.get("accumulation_hours")
        if hours is not None and times[0] - reference > pd.Timedelta(hours=float(hours)):
            return pd.Timedelta(hours=float(hours))
    return None


def _first_grib_start(ds: xr.Dataset) -> pd.Timedelta | None:
    """Start of the first step from a GRIB accumulation's step range (a +120 h file holding
    the 114-120 h amount starts at +114 h)."""
    for var in ds.data_vars:
        start = ds[var].attrs.get("GRIB_startStep")
        if start is None or ds[var].attrs.get("GRIB_stepType") not in ("accum", "avg", None):
            continue
        first = np.atleast_1d(np.asarray(start, dtype=float))[0]
        if np.isfinite(first):
            return pd.Timedelta(hours=float(first))
    return None


def _step_starts(ds: xr.Dataset, times: pd.DatetimeIndex, reference: pd.Timestamp) -> np.ndarray:
    """Start of each step: the previous valid time; the first step starts at the reference
    time, or as the file says (a 9-12 h interval file starts at +9 h)."""
    first = _first_step_from_attrs(ds)
    if first is None:
        first = _first_step_from_period(ds, times, reference)
    grib_start = _first_grib_start(ds)
    if first is not None:
        start0 = times[0] - first
    elif grib_start is not None:
        start0 = reference + grib_start
    elif times[0] > reference:
        start0 = reference
    else:
        start0 = times[0] - (times[1] - times[0] if len(times) > 1 else pd.Timedelta("1h"))
    return np.concatenate([[np.datetime64(start0, "ns")], times.values[:-1]])


# ---------------------------------------------------------------------------------------------
# Space


def check_covers(
    ds: xr.Dataset,
    bounds: tuple[float, float, float, float],
    *,
    source: str,
    name: str = "the jurisdiction",
) -> None:
    """Raise :class:`InputError` unless the grid covers ``bounds`` (lon_min, lat_min, lon_max,
    lat_max)."""
    lon = np.asarray(ds["lon"].values, dtype=float)
    lat = np.asarray(ds["lat"].values, dtype=float)
    lon_min, lat_min, lon_max, lat_max = bounds
    if lon.min() > lon_min or lon.max() < lon_max or lat.min() > lat_min or lat.max() < lat_max:
        raise InputError(
            f"{source}: grid lon {lon.min():.2f}..{lon.max():.2f}, lat {lat.min():.2f}.."
            f"{lat.max():.2f} does not cover {name} (lon {lon_min:.2f}..{lon_max:.2f}, "
            f"lat {lat_min:.2f}..{lat_max:.2f}); expected a grid covering it"
        )


def _steps(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Sorted axis values, their steps and the typical (median) step."""
    v = np.sort(np.asarray(values, dtype=float).ravel())
    steps = np.diff(v)
    return v, steps, float(np.median(steps)) if steps.size else 0.0


def _spacing(values: np.ndarray) -> float:
    """Largest grid step of a 1-D axis, holes left out (see :func:`_axis_gap`)."""
    _, steps, typical = _steps(values)
    regular = steps[steps <= 2 * typical]
    return float(regular.max()) if regular.size else 0.0


def _axis_gap(values: np.ndarray, lo: float, hi: float) -> tuple[float, float] | None:
    """Two neighbouring grid points with a hole between them that overlaps ``lo..hi``.

    A hole is a step of more than twice the axis' typical step: a 0-360 grid crossing the
    dateline (say 120..260 E) is two pieces after conversion to -180..180, and the cells on
    either side of the hole must not be stretched over it.
    """
    v, steps, typical = _steps(values)
    for i in np.flatnonzero(steps > 2 * typical):
        if v[i] + typical / 2 < hi and v[i + 1] - typical / 2 > lo:
            return float(v[i]), float(v[i + 1])
    return None


def crop(
    ds: xr.Dataset,
    bounds: tuple[float, float, float, float],
    *,
    margin: float = 0.3,
    source: str = "",
) -> xr.Dataset:
    """The part of the grid covering ``bounds`` plus ``margin`` degrees, selected lazily.

    A grid whose spacing exceeds the margin keeps one extra cell on each side, so a coarse
    global model still has cells around the jurisdiction. Raises :class:`InputError` when the
    grid does not cover ``bounds``.
    """
    lon0, lat0, lon1, lat1 = bounds
    if ds["lat"].ndim == 1:
        lat = ds["lat"].values
        lon = ds["lon"].values
        dlat, dlon = _spacing(lat), _spacing(lon)
        for axis, values, lo, hi in (("lon", lon, lon0, lon1), ("lat", lat, lat0, lat1)):
            gap = _axis_gap(values, lo, hi)
            if gap is not None:
                raise InputError(
                    f"{source}: grid has no {axis} between {gap[0]:g} and {gap[1]:g}, inside "
                    f"the jurisdiction (lon {lon0:.2f}..{lon1:.2f}, lat {lat0:.2f}..{lat1:.2f}); "
                    "expected a grid covering it without a hole (a 0-360 grid ending short of "
                    "it?)"
                )
        # Covering: the grid's cells (points +- half a spacing) must reach the bounds.
        if (
            lon.min() - dlon / 2 > lon0 or lon.max() + dlon / 2 < lon1
            or lat.min() - dlat / 2 > lat0 or lat.max() + dlat / 2 < lat1
        ):  # fmt: skip
            check_covers(ds, bounds, source=source)
        mlat, mlon = max(margin, dlat * 1.01), max(margin, dlon * 1.01)
        lat_ok = (lat >= lat0 - mlat) & (lat <= lat1 + mlat)
        lon_ok = (lon >= lon0 - mlon) & (lon <= lon1 + mlon)
        out = ds.isel(lat=np.flatnonzero(lat_ok), lon=np.flatnonzero(lon_ok))
    else:
        lat = np.asarray(ds["lat"].values)
        lon = np.asarray(ds["lon"].values)
        inside = (
            (lat >= lat0 - margin) & (lat <= lat1 + margin)
            & (lon >= lon0 - margin) & (lon <= lon1 + margin)
        )  # fmt: skip
        if not inside.any():
            raise InputError(f"{source}: the curvilinear grid does not cover the jurisdiction")
        rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
        ydim, xdim = ds["lat"].dims
        out = ds.isel({ydim: slice(rows[0], rows[-1] + 1), xdim: slice(cols[0], cols[-1] + 1)})
        check_covers(out, bounds, source=source)
    if (
        ds["lat"].ndim == 1
        and out.sizes["lat"] > 1
        and out["lat"].values[0] > out["lat"].values[-1]
    ):
        out = out.isel(lat=slice(None, None, -1))
    return out


def _contiguous(positions: np.ndarray) -> slice | np.ndarray:
    """A slice when sorted ``positions`` are consecutive (one hyperslab to read), else them."""
    if positions.size and positions[-1] - positions[0] + 1 == positions.size:
        return slice(int(positions[0]), int(positions[-1]) + 1)
    return positions


def crop_window(
    raw: xr.Dataset,
    bounds: tuple[float, float, float, float],
    *,
    margin: float = 0.3,
) -> dict[str, slice | np.ndarray] | None:
    """Which rows and columns of a file's own grid :func:`crop` keeps, in storage order.

    :func:`normalize_coords` and :func:`crop` are run on the grid's coordinates alone (no
    data), so a reader can cut the stored arrays *before* reading them, by contiguous slices
    where the kept cells are contiguous on disk (a box not straddling a 0-360 seam). Running
    the two steps again on the cut dataset then gives exactly what they give on the whole
    file.

    Parameters
    ----------
    raw : xarray.Dataset
        The file as its reader sees it (only its latitude/longitude coordinates are used).
    bounds, margin
        As for :func:`crop`.

    Returns
    -------
    dict or None
        ``{dimension: slice or positions}`` for :meth:`xarray.Dataset.isel`; None when the
        grid's latitude and longitude are not 1-D dimension coordinates, or when the grid is
        refused (the whole path then raises the error naming the file).
    """
    lat = next((n for n in _LAT_NAMES if n in raw.variables), None)
    lon = next((n for n in _LON_NAMES if n in raw.variables), None)
    if lat is None or lon is None or raw[lat].dims != (lat,) or raw[lon].dims != (lon,):
        return None
    proxy = xr.Dataset(
        {"__row": (lat, np.arange(raw.sizes[lat])), "__col": (lon, np.arange(raw.sizes[lon]))},
        coords={lat: raw[lat].variable, lon: raw[lon].variable},
    )
    try:
        with _quiet():
            kept = crop(normalize_coords(proxy, source=""), bounds, margin=margin)
    except InputError:
        return None
    rows, cols = np.sort(kept["__row"].values), np.sort(kept["__col"].values)
    window = {lat: _contiguous(rows), lon: _contiguous(cols)}
    # Cropping the cut grid must keep all of it (an irregular grid's spacing, measured on
    # the cut, could otherwise shrink the margin): else no window, the whole file is cropped.
    with _quiet():
        again = crop(normalize_coords(proxy.isel(window), source=""), bounds, margin=margin)
    if again.sizes != kept.sizes:
        return None
    return window


class _quiet:
    """Silence the ``cityops`` logger's info lines (the dry run's history is discarded)."""

    def __enter__(self):
        self.level = log.level
        if log.getEffectiveLevel() <= logging.INFO:
            log.setLevel(logging.WARNING)

    def __exit__(self, *exc):
        log.setLevel(self.level)


# ---------------------------------------------------------------------------------------------
# Amounts over time


def _accumulation_starts(da: xr.DataArray, times: pd.DatetimeIndex, issued: pd.Timestamp):
    """Start of each accumulation from GRIB step ranges, when the reader kept them."""
    starts = da.attrs.get("accumulation_start")
    if starts is None and "accumulation_start" in da.coords:
        starts = da["accumulation_start"].values
    if starts is None:
        return None
    starts = np.atleast_1d(np.asarray(starts))
    if starts.size != len(times):
        return None
    if np.issubdtype(starts.dtype, np.datetime64):
        return pd.DatetimeIndex(starts)
    if np.issubdtype(starts.dtype, np.timedelta64):
        return issued + pd.to_timedelta(starts)
    return issued + pd.to_timedelta(starts.astype(float), unit="h")


def _bucket_starts(times: pd.DatetimeIndex, issued: pd.Timestamp, period: pd.Timedelta):
    """Start of the bucket each valid time belongs to: the last multiple of ``period`` after
    ``issued`` before it (GFS 6 h: 0-3, 0-6, 6-9, 6-12 h ...); the reference time itself
    holds an empty accumulation."""
    lead = (times - issued) / period
    n = np.ceil(np.asarray(lead, dtype=float)) - 1
    n = np.where(np.asarray(lead) <= 0, 0, np.maximum(n, 0))
    return pd.DatetimeIndex(issued + period * n)


def deaccumulate(
    da: xr.DataArray,
    *,
    kind: str,
    issued: pd.Timestamp,
    source: str = "",
    period: pd.Timedelta | None = None,
) -> tuple[xr.DataArray | None, str]:
    """Amounts over each step from whatever the file stores.

    Parameters
    ----------
    da : xarray.DataArray
        Amounts on the ``time`` dimension (valid times), canonical units.
    kind : {"interval", "running", "bucket", "auto"}
        ``interval`` leaves values alone; ``running`` differences totals since ``issued``;
        ``bucket`` differences within buckets of ``period`` since ``issued``; ``auto`` uses the
        accumulation starts the reader kept (GRIB step ranges, CF time bounds) and raises
        :class:`InputError` without them: the kind is never guessed from the values.
    issued : pandas.Timestamp
        Forecast reference time.
    period : pandas.Timedelta, optional
        The bucket length (``bucket``).

    Returns
    -------
    (xarray.DataArray or None, str)
        Per-step amounts and what was applied (for ``history``). Negative amounts after
        differencing (packing noise) are set to 0 and counted. None when the accumulation
        periods leave gaps between steps (e.g. 6 h buckets every 24 h): the amounts cannot
        stand for the steps, and rules needing them are then "not evaluated".
    """
    times = pd.DatetimeIndex(da["time"].values)
    starts = _accumulation_starts(da, times, issued)
    if kind == "interval":
        return da, "interval (left alone)"
    if kind == "bucket":
        if period is None:
            raise InputError(f"{source}: kind bucket needs a period (e.g. period: 6 h)")
        starts = _bucket_starts(times, issued, period)
    elif kind == "running":
        starts = pd.DatetimeIndex([issued] * len(times))
    elif starts is None:
        raise InputError(
            f"{source}: variable {da.name!r}: no accumulation starts to decide how the amounts "
            "are stored; expected GRIB step ranges or CF time bounds, or a kind in --mapping"
        )
    valid = ~pd.isna(starts)
    step_start = pd.DatetimeIndex(da["step_start"].values) if "step_start" in da.coords else None
    prev_start = None
    same = np.zeros(len(times), bool)
    for i in np.flatnonzero(valid):
        if prev_start is not None and starts[i] == prev_start:
            same[i] = True  # the same accumulation continues: difference it
            continue
        prev_start = starts[i]
        expected = step_start[i] if step_start is not None else (times[i - 1] if i else None)
        if expected is not None and starts[i] != expected and starts[i] != times[i]:
            # A new accumulation must start where the step starts (an empty accumulation at
            # the reference time aside).
            return None, (
                f"accumulation {iso_utc(starts[i])}..{iso_utc(times[i])} does not start at "
                f"the previous step (its step starts {iso_utc(expected)}): not usable as step "
                "amounts, dropped"
            )
    how = {"auto": "from accumulation starts", "bucket": f"{_hours_text(period)} buckets"}
    if not same.any():
        return da.where(xr.DataArray(valid, dims="time", coords={"time": da["time"]})), (
            f"interval ({how.get(kind, kind)})"
        )
    label = "bucket" if len(set(starts[valid])) > 1 else "running"
    keep = xr.DataArray(same, dims="time", coords={"time": da["time"]})
    # The previous step holding data for this variable (steps without a message skipped).
    prev_idx = np.zeros(len(times), int)
    last = 0
    for i in range(len(times)):
        prev_idx[i] = last
        if valid[i]:
            last = i
    previous = da.isel(time=prev_idx).assign_coords(time=da["time"])
    diff = xr.where(keep, da - previous, da)
    negative = int((diff < 0).sum())
    if negative:
        log.info("%s: %d negative amounts after differencing set to 0", source, negative)
    out = diff.clip(min=0).assign_attrs(da.attrs)
    suffix = f" ({negative} negatives set to 0)" if negative else ""
    return out, f"{label} totals differenced ({how.get(kind, kind)}){suffix}"


def _hours_text(period: pd.Timedelta | None) -> str:
    return "" if period is None else f"{period / pd.Timedelta('1h'):g} h"


def _step_hours(ds: xr.Dataset) -> xr.DataArray:
    seconds = (ds["time"] - ds["step_start"]) / np.timedelta64(1, "s")
    return seconds / 3600.0


@dataclass(frozen=True)
class Accumulation:
    """How an amount is stored over time (:func:`accumulation_kind`)."""

    kind: str  # interval, running, bucket, rate, auto (the reader's accumulation starts)
    period: pd.Timedelta | None
    why: str


_INTERVAL = re.compile(r"interval:\s*([0-9.]+)\s*(hours?|hr|h|minutes?|min|days?|d)\b")


def _stated_period(da: xr.DataArray) -> pd.Timedelta | None:
    """The period each value covers as the file states it: ``accumulation_hours`` (MICAPS)
    or a CF ``cell_methods`` interval (``time: sum (interval: 24 hours)``)."""
    hours = da.attrs.get("accumulation_hours")
    if hours is not None:
        return pd.Timedelta(hours=float(hours))
    m = _INTERVAL.search(str(da.attrs.get("cell_methods", "")))
    if m is None:
        return None
    unit = m.group(2)[0]
    return pd.Timedelta(float(m.group(1)), unit={"h": "h", "m": "min", "d": "D"}[unit])


def _time_bounds(ds: xr.Dataset) -> np.ndarray | None:
    """Starts of the CF time bounds of ``time`` (``time: bounds = "time_bnds"``), if any."""
    name = ds["time"].attrs.get("bounds") or ds["time"].encoding.get("bounds")
    if not name or name not in ds.variables:
        return None
    values = ds[name].values
    if values.ndim != 2 or values.shape != (ds.sizes["time"], 2):
        return None
    if not np.issubdtype(values.dtype, np.datetime64):
        return None
    return values[:, 0]


def _attr_text(ds: xr.Dataset, da: xr.DataArray) -> str:
    return " | ".join(str(v) for v in (*ds.attrs.values(), *da.attrs.values()))


def _convention(ds: xr.Dataset, src: str) -> dict | None:
    """The product convention of ``aliases.yaml`` matching this variable, if any."""
    da = ds[src]
    centre = str(da.attrs.get("GRIB_centre", ds.attrs.get("GRIB_centre", ""))).lower()
    institution = str(ds.attrs.get("institution", ""))
    text = _attr_text(ds, da)
    has_reference = not ds.attrs.get(REFERENCE_INFERRED_ATTR)
    for conv in _aliases()["conventions"]:
        if src not in conv.get("names", ()):
            continue
        by_centre = centre in [str(c).lower() for c in conv.get("centre", ())]
        by_institution = any(str(w) in institution for w in conv.get("institution", ()))
        if not (by_centre or by_institution):
            continue
        if conv.get("markers") and not any(str(m) in text for m in conv["markers"]):
            continue
        if "reference_time" in conv and bool(conv["reference_time"]) != has_reference:
            continue
        return conv
    return None


def accumulation_kind(
    ds: xr.Dataset,
    src: str,
    match: VariableMapping,
    *,
    issued: pd.Timestamp,
    source: str,
) -> Accumulation:
    """How the amounts of ``src`` are stored, from metadata, never from the values.

    In order: the user's ``--mapping`` ``kind`` (and the alias table's, e.g. the canonical
    ``precip`` is per step), a rate's units, the reader's accumulation starts (GRIB step
    ranges), CF time bounds, CF ``cell_methods`` ``time: sum``, ``StartForecastHour``/
    ``EndForecastHour`` (CMA NMC files), the product conventions of ``aliases.yaml`` (IFS
    running totals, ERA5 hourly amounts, GFS 6 h buckets).

    Raises
    ------
    InputError
        Nothing decides: the message names ``--mapping`` and its ``kind`` key. Differencing
        a rising hourly series as running totals turns a red rainstorm into none; taking GFS
        buckets as intervals doubles the rain: a guess is never made.
    """
    da = ds[src]
    stated = _stated_period(da)
    where = "the user mapping" if match.how == "mapping" else "aliases.yaml"
    if match.kind == "rate" or _is_rate(da):
        why = f"rate: kind in {where}" if match.kind == "rate" else "rate: units per time"
        return Accumulation("rate", match.period or stated, why)
    if match.kind not in (None, "auto"):
        period = match.period or (stated if match.kind == "interval" else None)
        return Accumulation(match.kind, period, f"kind {match.kind} in {where}")
    times = pd.DatetimeIndex(ds["time"].values)
    if _accumulation_starts(da, times, issued) is not None:
        return Accumulation("auto", None, "GRIB step ranges")
    bounds = _time_bounds(ds)
    if bounds is not None:
        ds[src].attrs["accumulation_start"] = bounds
        return Accumulation("auto", None, "CF time bounds")
    if "time: sum" in str(da.attrs.get("cell_methods", "")):
        return Accumulation("interval", stated, "CF cell_methods 'time: sum'")
    if _first_step_from_attrs(ds) is not None and ds.sizes["time"] == 1:
        return Accumulation("interval", None, "StartForecastHour/EndForecastHour")
    conv = _convention(ds, src)
    if conv is not None:
        return Accumulation(
            conv["kind"], conv["period"], f"{conv['product']} convention: {conv['source']}"
        )
    raise InputError(
        f"{source}: variable {src!r} ({match.name}): cannot tell whether its amounts are per "
        "step, running totals since the start or buckets (no GRIB step range, no CF "
        "cell_methods 'time: sum' or time bounds, no known product); expected metadata saying "
        f"so: give it with --mapping FILE ({src}: {{name: {match.name}, kind: interval, "
        "running or bucket, period: 6 h for buckets})"
    )


def _covered_hours(da: xr.DataArray, acc: Accumulation, issued: pd.Timestamp) -> np.ndarray:
    """Hours the value at each valid time covers, for the per-period bounds."""
    times = pd.DatetimeIndex(da["time"].values)
    hour = pd.Timedelta("1h")
    if acc.kind in ("interval", "rate") and acc.period is not None:
        return np.full(len(times), acc.period / hour)
    if acc.kind == "running":
        return np.asarray((times - issued) / hour, dtype=float)
    if acc.kind == "bucket" and acc.period is not None:
        return np.asarray((times - _bucket_starts(times, issued, acc.period)) / hour, float)
    if acc.kind == "auto":
        starts = _accumulation_starts(da, times, issued)
        if starts is not None:
            return np.asarray((times - starts) / hour, dtype=float)
    if "step_start" in da.coords:
        return np.asarray((times - pd.DatetimeIndex(da["step_start"].values)) / hour, float)
    return np.full(len(times), np.nan)


def _insert_missing_steps(
    ds: xr.Dataset, storage: Mapping[str, Accumulation], *, source: str
) -> tuple[xr.Dataset, list[str]]:
    """Valid times a product skipped, inserted as missing (NaN) steps.

    A product whose values each cover a known period (CMPA hourly, MICAPS "12小时降水",
    ERA5 hourly) and has a longer step skipped times: 02 -> 09 UTC in an hourly analysis is
    six hours without data, not a 7 h step (taking the hourly rate for 7 h is 7 times too
    much rain). MICAPS files come one per lead time: a step of two or more times the usual
    one is a missing lead file.
    """
    times = pd.DatetimeIndex(ds["time"].values)
    if len(times) < 2:
        return ds, []
    periods = [a.period for a in storage.values() if a.period is not None]
    new: list[pd.Timestamp] = []
    why = ""
    if periods:
        period = min(periods)
        for begin, end in itertools.pairwise(times):
            k = (end - begin) / period
            if k > 1 and float(k).is_integer():
                new.extend(begin + period * j for j in range(1, int(k)))
        why = f"the product's values each cover {period / pd.Timedelta('1h'):g} h"
    elif ds.attrs.get("cityops_reader") == "micaps4" and len(times) >= 3:
        steps = pd.Series(np.diff(times.values)).value_counts()
        usual = pd.Timedelta(steps.index[0])
        if steps.iloc[0] >= 2:
            for begin, end in itertools.pairwise(times):
                k = (end - begin) / usual
                if k > 1 and float(k).is_integer():
                    new.extend(begin + usual * j for j in range(1, int(k)))
        why = f"the lead files come every {usual / pd.Timedelta('1h'):g} h: lead files missing"
    if not new:
        return ds, []
    first_start = ds["step_start"].values[0]
    full = times.union(pd.DatetimeIndex(new))
    out = ds.reindex(time=full)
    starts = np.concatenate([[first_start], full.values[:-1]])
    out = out.assign_coords(step_start=("time", starts))
    out["step_start"].attrs = ds["step_start"].attrs
    shown = ", ".join(iso_utc(t) for t in new[:6]) + (" ..." if len(new) > 6 else "")
    note = (
        f"{len(new)} valid time{'s' * (len(new) != 1)} skipped by the file ({shown}): "
        f"{why}; inserted as missing steps, not one longer step"
    )
    log.warning("%s: %s", source, note)
    return out, [note]


# ---------------------------------------------------------------------------------------------
# The whole conversion


def to_canonical(
    ds: xr.Dataset,
    *,
    source: str,
    mapping: Mapping[str, VariableMapping] | None = None,
) -> xr.Dataset:
    """Canonical variables, names and units from a dataset with normalised coordinates and
    time (:func:`cityops.ingest.open_forecast` runs the whole path)."""
    registry = canonical_variables()
    found = identify_variables(ds, mapping=mapping, source=source)
    issued = parse_utc(ds.attrs["issued"])
    out_vars: dict[str, xr.DataArray] = {}
    history: list[str] = []
    dropped: list[str] = []
    unusable_vars: dict[str, str] = {}
    # How each amount is stored, from metadata only (refused when nothing says), then the
    # valid times a product with a known period skipped, as missing steps.
    storage = {
        src: accumulation_kind(ds, src, match, issued=issued, source=source)
        for src, match in found.items()
        if match.name in _AMOUNTS
    }
    ds, gap_notes = _insert_missing_steps(ds, storage, source=source)
    history.extend(gap_notes)
    for src, match in found.items():
        spec = registry[match.name]
        da = ds[src]
        if "units" not in da.attrs and match.units:
            da = da.assign_attrs(units=match.units)
            history.append(f"{src}: units {match.units} from the user mapping")
        acc = storage.get(src)
        if acc is not None:
            history.append(f"{src}: stored as {acc.kind} amounts ({acc.why})")
        if acc is not None and acc.kind == "rate":
            da, hours = _rate_to_amount(da, ds, source, acc.period)
            history.append(f"{src}: rate {ds[src].attrs.get('units')} times {hours}")
        try:
            conv = convert_dataarray(da.rename(src), spec["units"], source=source)
        except InputError:
            raise
        if da.attrs.get("units") != spec["units"]:
            history.append(f"{src}: converted from {da.attrs.get('units')} to {spec['units']}")
        periods = None if acc is None else _covered_hours(conv, acc, issued)
        unusable, missing = inspect_values(
            conv, match.name, source=source, label=src, raw=ds[src], period_hours=periods,
            issued=issued,
        )  # fmt: skip
        if unusable:
            history.append(f"{src}: {unusable}; ignored")
            dropped.append(f"{src}: {unusable}")
            unusable_vars[match.name] = f"{src!r} in the file: {unusable}"
            continue
        if missing:
            history.append(f"{src}: {missing}")
        if acc is not None:
            kind = "interval" if acc.kind == "rate" else acc.kind
            conv, applied = deaccumulate(
                conv, kind=kind, issued=issued, source=source, period=acc.period
            )
            history.append(f"{src}: {applied}")
            if conv is None:
                dropped.append(f"{src}: {applied}")
                continue
        label = f"{src} -> {match.name}" + (f" ({match.how})" if match.how != "alias" else "")
        if src != match.name or match.how != "alias":
            history.append(label)
        out_vars[match.name] = _cf_attrs(conv, match.name, spec)
        if missing:
            out_vars[match.name].attrs[MISSING_ATTR] = missing
    for u, v in _aliases()["components"]:
        if "wind" not in out_vars and u in ds and v in ds:
            uu = convert_dataarray(ds[u], "m s-1", source=source)
            vv = convert_dataarray(ds[v], "m s-1", source=source)
            wind = np.hypot(uu, vv)
            label = f"hypot({u}, {v})"
            unusable, missing = inspect_values(wind, "wind", source=source, label=label)
            if unusable:
                history.append(f"wind = {label}: {unusable}; ignored")
                dropped.append(f"wind = {label}: {unusable}")
                unusable_vars["wind"] = f"{label} in the file: {unusable}"
                continue
            out_vars["wind"] = _cf_attrs(wind, "wind", registry["wind"])
            history.append(f"wind = {label}")
            if missing:
                out_vars["wind"].attrs[MISSING_ATTR] = missing
                history.append(f"wind: {missing}")
    if not out_vars:
        raise InputError(
            f"{source}: no usable variable (found {', '.join(map(str, ds.data_vars)) or 'none'}); "
            f"expected one of {', '.join(registry)} or a known alias (see --mapping)"
            + (f"; {'; '.join(dropped)}" if dropped else "")
        )
    coords = {
        k: ds.coords[k] for k in ds.coords if k in ("time", "lat", "lon", "member", "step_start")
    }
    out = xr.Dataset(out_vars, coords=coords)
    out.attrs = {k: v for k, v in ds.attrs.items() if k not in ("history",)}
    out.attrs["Conventions"] = "CF-1.8"
    out.attrs["history"] = ds.attrs.get("history", "")
    if unusable_vars:
        out.attrs[UNUSABLE_ATTR] = " | ".join(f"{k}: {v}" for k, v in unusable_vars.items())
    for line in history:
        add_history(out, f"{source}: {line}")
    return out


#: Variable attribute: which valid times have no data and the share of values missing (NaN),
#: for the rules' notes (read by cityops.rules.engine into every hazard using the variable).
MISSING_ATTR = "cityops_missing"
#: Dataset attribute: the reference time was not in the file (inferred from the first step).
REFERENCE_INFERRED_ATTR = "cityops_reference_inferred"
#: Dataset attribute: canonical variables found in the file but unusable (every value NaN),
#: ``"name: why | name: why"``, so that a rule needing one says why it is not evaluated.
UNUSABLE_ATTR = "cityops_unusable"


def unreadable(err: Exception, *, source: str, label: str) -> InputError:
    """The error for values that cannot be read (a corrupt GRIB data section, a damaged
    NetCDF chunk), naming the file and the variable."""
    text = str(err).splitlines()[0] if str(err) else ""
    return InputError(
        f"{source}: variable {label!r} cannot be read ({type(err).__name__}: {text}); "
        "expected intact data: the file is truncated or corrupt"
    )


def inspect_values(
    da: xr.DataArray,
    name: str,
    *,
    source: str,
    label: str | None = None,
    raw: xr.DataArray | None = None,
    period_hours: np.ndarray | None = None,
    issued: pd.Timestamp | None = None,
) -> tuple[str | None, str | None]:
    """Read a canonical variable's values once and judge them (interfaces.md §1: ingest never
    guesses silently).

    * Values that cannot be read (a corrupt GRIB data section, a damaged NetCDF chunk) raise
      :class:`InputError` naming the file and the variable.
    * Values outside the physical bounds of ``cityops/data/variables.yaml`` raise
      :class:`InputError` with the bad range (:mod:`cityops.ingest.plausibility`: the same
      checks as station observations): negative precipitation, a 500 m/s wind, an amount
      larger than possible over the period it covers (``period_hours``, one per valid time),
      visibility in km labelled m, humidity as a fraction labelled percent, undeclared
      missing codes (looked for in ``raw``, the values in the file's units). Extreme but
      possible values (300 mm in an hour, -50 degC) pass.

    Returns
    -------
    (unusable, missing) : (str or None, str or None)
        ``unusable``: why the variable cannot be used at all (every value missing).
        ``missing``: a note naming the valid times (UTC and Beijing time) with no data and
        the share of missing values at the others; empty steps at the reference time itself
        (GFS ``tp`` at step 0, an accumulation of nothing) are left out.
    """
    label = label or str(da.name or name)
    if da.size == 0:
        return "no values on the grid", None
    try:
        summary = summarize(da, name, raw=raw)
    except MemoryError:
        raise
    except Exception as err:  # ecCodes DecodingError, netCDF/HDF5 RuntimeError, OSError...
        raise unreadable(err, source=source, label=label) from None
    if summary.all_missing:
        return "every value is missing (NaN)", None
    raw_units = None if raw is None else raw.attrs.get("units")
    check_bounds(summary, name, source=source, label=label, raw_units=raw_units)
    times = da["time"].values if "time" in da.dims else None
    if period_hours is not None and times is not None:
        check_period_amounts(
            summary.step_max, period_hours, name, source=source, label=label, times=times,
            raw_units=raw_units, summary=summary,
        )  # fmt: skip
    check_missing_codes(summary, name, source=source, label=label)
    return None, describe_missing(summary, times, issued)


def describe_missing(
    summary: ValueSummary, times: np.ndarray | None, issued: pd.Timestamp | None
) -> str | None:
    """The note on missing values: which valid times have none (UTC and Beijing time), and
    the share missing elsewhere; None when nothing is missing."""
    nan = summary.nan_per_step
    per_step = summary.per_step
    report = np.ones(nan.size, bool)
    if times is not None and issued is not None:
        report = pd.DatetimeIndex(times) > issued  # the analysis step holds no amount
    empty = (nan >= per_step) & report
    partial = (nan > 0) & (nan < per_step) & report
    parts = []
    if times is not None and empty.any():
        runs = _runs(np.flatnonzero(empty))
        shown = [_time_range(pd.DatetimeIndex(times), a, b) for a, b in runs[:4]]
        more = f" and {len(runs) - 4} more gaps" if len(runs) > 4 else ""
        n = int(empty.sum())
        parts.append(
            f"no data at {n} valid time{'s' * (n != 1)} ({'; '.join(shown)}{more}): windows "
            "over them count them as nothing, so a level there may be too low and level 0 "
            "means no data, not no hazard"
        )
    elif times is None and empty.any():
        parts.append("no data at all")
    if partial.any():
        share = 100.0 * float(nan[partial].sum()) / (per_step * int(partial.sum()))
        n = int(partial.sum())
        where = "" if n == int(report.sum()) else f" (at {n} valid time{'s' * (n != 1)})"
        parts.append(
            f"{share:.3g} % of the values missing (NaN){where}: levels there may be too low"
        )
    return "; ".join(parts) or None


def _runs(index: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive runs ``(first, last)`` of sorted indices."""
    runs: list[tuple[int, int]] = []
    for i in index.tolist():
        if runs and i == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def _time_range(times: pd.DatetimeIndex, a: int, b: int) -> str:
    """``2026-07-10 01:00–09:00 UTC (09:00–17:00 Beijing time)``."""
    utc_a, utc_b = times[a], times[b]
    bj_a, bj_b = (_local(t) for t in (utc_a, utc_b))

    def fmt(t: pd.Timestamp, ref: pd.Timestamp | None) -> str:
        return f"{t:%H:%M}" if ref is not None and t.date() == ref.date() else f"{t:%Y-%m-%d %H:%M}"

    if a == b:
        return f"{fmt(utc_a, None)} UTC ({fmt(bj_a, None)} Beijing time)"
    return (
        f"{fmt(utc_a, None)}–{fmt(utc_b, utc_a)} UTC "
        f"({fmt(bj_a, None)}–{fmt(bj_b, bj_a)} Beijing time)"
    )


def _local(t: pd.Timestamp) -> pd.Timestamp:
    """Naive report time (Beijing, :data:`cityops.timeutil.REPORT_TZ`) of a naive UTC time."""
    return t.tz_localize("UTC").tz_convert(REPORT_TZ).tz_localize(None)


def _is_rate(da: xr.DataArray) -> bool:
    units = da.attrs.get("units")
    if not units:
        return False
    try:
        dim = registry().Unit(str(units)).dimensionality
    except Exception:
        return False
    ureg = registry()
    return dim in (ureg.Unit("mm/h").dimensionality, ureg.Unit("kg m-2 s-1").dimensionality)


def _rate_to_amount(
    da: xr.DataArray, ds: xr.Dataset, source: str, period: pd.Timedelta | None = None
) -> tuple[xr.DataArray, str]:
    """A rate times its averaging period: the product's own period (CMPA: 1 h), the GRIB
    step range when the reader kept it (a 114-120 h average rate is 6 h of rain), otherwise
    the step length; also what was used, for ``history``."""
    units = str(da.attrs.get("units"))
    ureg = registry()
    q = ureg.Quantity(1.0, units)
    if q.dimensionality == ureg.Unit("kg m-2 s-1").dimensionality:
        per_hour = float(q.to("kg m-2 h-1").magnitude)
        amount_units = "kg m-2"
    else:
        per_hour = float(q.to("mm h-1").magnitude)
        amount_units = "mm"
    start, end = da.attrs.get("GRIB_startStep"), da.attrs.get("GRIB_endStep")
    hours = _step_hours(ds)
    used = "the step length"
    if period is not None:
        hours = period / pd.Timedelta("1h")
        used = f"its period of {hours:g} h"
    elif start is not None and end is not None:
        span = np.atleast_1d(np.asarray(end, float) - np.asarray(start, float))
        if span.size == ds.sizes["time"]:
            hours = xr.DataArray(span, dims="time", coords={"time": ds["time"]})
            used = "its GRIB step range"
    out = da * per_hour * hours
    out.attrs = {**da.attrs, "units": amount_units}
    return out, used


def _cf_attrs(da: xr.DataArray, name: str, spec: dict) -> xr.DataArray:
    attrs = {
        "units": spec["units"],
        "long_name": spec["long_name"],
        "cell_methods": spec["cell_method"],
    }
    if "standard_name" in spec:
        attrs["standard_name"] = spec["standard_name"]
    out = da.drop_vars(
        [c for c in da.coords if c not in ("time", "lat", "lon", "member", "step_start")]
    )
    out.attrs = attrs
    return out.rename(name)
