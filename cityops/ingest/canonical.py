"""Checking and completing the canonical forecast dataset (interfaces.md §1)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import xarray as xr

from cityops.errors import InputError
from cityops.resources import canonical_variables
from cityops.timeutil import iso_utc, parse_utc
from cityops.units import convert_dataarray

__all__ = ["add_history", "check_covers", "to_canonical"]

log = logging.getLogger("cityops")


def add_history(ds: xr.Dataset, line: str) -> None:
    """Append a line to the dataset's ``history`` attribute (in place) and log it."""
    previous = ds.attrs.get("history", "")
    ds.attrs["history"] = f"{previous}\n{line}".strip() if previous else line
    log.info("%s", line)


def to_canonical(ds: xr.Dataset, *, source: str) -> xr.Dataset:
    """Validate a dataset that already uses canonical names, and convert units.

    Parameters
    ----------
    ds : xarray.Dataset
        Dataset with ``time`` and ``lat``/``lon`` and canonical variable names.
    source : str
        File name, for error messages.

    Returns
    -------
    xarray.Dataset
        Canonical variables only, in canonical units, with CF attributes; other variables are
        dropped (and logged).

    Raises
    ------
    InputError
        Missing ``time`` or coordinates, non-monotonic or duplicated times, no usable variable,
        variables without units or with unconvertible units.
    """
    if "time" not in ds.dims:
        raise InputError(f"{source}: no 'time' dimension; expected valid times (UTC)")
    for coord in ("lat", "lon"):
        if coord not in ds.coords:
            raise InputError(f"{source}: no {coord!r} coordinate; expected 1-D lat/lon in degrees")
    times = pd.DatetimeIndex(ds["time"].values)
    if times.has_duplicates:
        dup = times[times.duplicated()][0]
        raise InputError(f"{source}: variable 'time' has a duplicated time {iso_utc(dup)}")
    if not times.is_monotonic_increasing:
        raise InputError(
            f"{source}: variable 'time' is not increasing; expected sorted valid times"
        )
    registry = canonical_variables()
    present = [v for v in ds.data_vars if v in registry]
    if not present:
        raise InputError(f"{source}: no usable variable; expected one of {', '.join(registry)}")
    dropped = [v for v in ds.data_vars if v not in registry]
    if dropped:
        log.info("%s: ignoring variables %s", source, ", ".join(map(str, dropped)))
    out = ds[present].copy()
    for name in present:
        spec = registry[name]
        da = convert_dataarray(out[name], spec["units"], source=source)
        if da.attrs.get("units") != ds[name].attrs.get("units"):
            add_history(
                out, f"{name}: converted from {ds[name].attrs.get('units')} to {spec['units']}"
            )
        da.attrs.setdefault("long_name", spec["long_name"])
        if "standard_name" in spec:
            da.attrs.setdefault("standard_name", spec["standard_name"])
        da.attrs.setdefault("cell_methods", spec["cell_method"])
        out[name] = da
    lon = out["lon"]
    if float(lon.max()) > 180:
        out = out.assign_coords(lon=((lon + 180) % 360) - 180).sortby("lon")
        add_history(out, "lon: 0-360 converted to -180..180")
    issued = ds.attrs.get("issued")
    if issued:
        out.attrs["issued"] = iso_utc(parse_utc(issued, what=f"{source}: attribute 'issued'"))
    else:
        raise InputError(
            f"{source}: no 'issued' attribute; expected the forecast reference time (ISO 8601 UTC)"
        )
    out.encoding["source"] = source
    return out


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
            f"{source}: grid lon {lon.min():.2f}..{lon.max():.2f}, lat {lat.min():.2f}..{lat.max():.2f} "
            f"does not cover {name} (lon {lon_min:.2f}..{lon_max:.2f}, lat {lat_min:.2f}..{lat_max:.2f})"
        )
