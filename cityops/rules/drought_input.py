"""The drought index as a forecast variable: MCI from a daily history and the forecast days.

The national drought signal and the Annex 3 drought criterion read ``mci`` like any other
variable; this module computes it for a forecast from a daily precipitation/temperature
history (GB/T 20481-2017, :mod:`cityops.rules.drought`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from cityops.errors import InputError
from cityops.ingest.canonical import MISSING_ATTR, add_history
from cityops.rules.drought import load_drought_config, mci
from cityops.units import convert_dataarray

__all__ = ["add_drought_index", "open_history"]

log = logging.getLogger("cityops")


def open_history(path: str | Path) -> xr.Dataset:
    """A daily history with ``precip`` (mm per day) and ``t2m`` (daily mean, degC); spatial
    dimensions are averaged (the index is computed for the jurisdiction as a whole)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: history file not found")
    try:
        ds = xr.open_dataset(path, engine="netcdf4").load()
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: cannot be read as NetCDF ({err})") from None
    for name, units in (("precip", "mm"), ("t2m", "degC")):
        if name not in ds:
            raise InputError(f"{path}: variable {name!r} missing; expected daily {name} in {units}")
        ds[name] = convert_dataarray(ds[name], units, source=str(path))
    steps = np.diff(ds["time"].values).astype("timedelta64[h]").astype(int)
    if len(steps) == 0 or (steps != 24).any():
        raise InputError(f"{path}: variable 'time' must be daily and gap-free")
    spatial = [d for d in ds["precip"].dims if d != "time"]
    return ds[["precip", "t2m"]].mean(spatial) if spatial else ds[["precip", "t2m"]]


def _forecast_days(forecast: xr.Dataset, timezone: str) -> xr.Dataset | None:
    """Complete local days of the forecast: precipitation sums and mean temperature, averaged
    over the grid."""
    if "precip" not in forecast or "t2m" not in forecast:
        return None
    times = pd.DatetimeIndex(forecast["time"].values)
    local = times.tz_localize("UTC").tz_convert(timezone).tz_localize(None)
    day = (local - pd.Timedelta("1ns")).normalize()
    counts = pd.Series(1, index=day).groupby(level=0).count()
    step_h = pd.Series(
        (times - pd.DatetimeIndex(forecast["step_start"].values)) / pd.Timedelta("1h"), index=day
    )
    covered = step_h.groupby(level=0).sum()
    full = covered.index[(covered >= 24 - 1e-6) & (counts > 0)]
    if len(full) == 0:
        return None
    dims = [d for d in forecast["precip"].dims if d not in ("time",)]
    keyed = forecast[["precip", "t2m"]].mean(dims).assign_coords(day=("time", day))
    daily = xr.Dataset(
        {
            "precip": keyed["precip"].groupby("day").sum(),
            "t2m": keyed["t2m"].groupby("day").mean(),
        }
    ).sel(day=full)
    return daily.rename(day="time")


def _ka_zero_note(days: pd.DatetimeIndex) -> str:
    """What a forecast in a month with Ka = 0 must say: the MCI is 0 by construction, so a
    drought level 0 there is not an all-clear (cityops/data/drought.yaml, ``ka``)."""
    ka = load_drought_config()["ka"]["months"]
    months = sorted({int(m) for m in days.month if ka[int(m) - 1] == 0})
    if not months:
        return ""
    names = ", ".join(pd.Timestamp(2001, m, 1).strftime("%b") for m in months)
    return (
        f"seasonal factor Ka = 0 in {names} (GB/T 20481-2017 Ka as configured): MCI is 0 by "
        "construction, so drought cannot reach a signal level in these days; not assessed, "
        "not an all-clear"
    )


def add_drought_index(
    forecast: xr.Dataset, history_path: str | Path, *, lat: float, timezone: str
) -> xr.Dataset:
    """Add ``mci`` on the forecast's valid times: the index of each local day (history up to
    the day before the forecast, then the forecast's complete days; a day the forecast does
    not complete keeps the latest index)."""
    history = open_history(history_path)
    issued = pd.Timestamp(forecast.attrs["issued"]).tz_convert(timezone).tz_localize(None)
    first_day = issued.normalize()
    history = history.sel(time=slice(None, first_day - pd.Timedelta("1D")))
    if history.sizes["time"] < 365 * 5:
        raise InputError(
            f"{history_path}: needs at least 5 years of daily history before the forecast"
        )
    last = pd.Timestamp(history["time"].values[-1])
    week = _forecast_days(forecast, timezone)
    if week is not None:
        week = week.sel(time=slice(last + pd.Timedelta("1D"), None))
        expected = pd.date_range(last + pd.Timedelta("1D"), periods=week.sizes["time"], freq="D")
        if week.sizes["time"] == 0 or not (pd.DatetimeIndex(week["time"].values) == expected).all():
            week = None
    index = mci(history, forecast=week, lat=lat, since=last)
    days = pd.DatetimeIndex(index["time"].values)
    local = pd.DatetimeIndex(forecast["time"].values).tz_localize("UTC").tz_convert(timezone)
    step_day = (local.tz_localize(None) - pd.Timedelta("1ns")).normalize()
    pos = np.clip(days.searchsorted(step_day, side="right") - 1, 0, len(days) - 1)
    values = np.asarray(index.values)[pos]
    template = forecast["t2m"] if "t2m" in forecast else next(iter(forecast.data_vars.values()))
    field = xr.DataArray(values, dims="time", coords={"time": forecast["time"]}).broadcast_like(
        template.isel({d: 0 for d in template.dims if d not in ("time", "lat", "lon")}, drop=True)
    )
    out = forecast.copy()
    out["mci"] = field.astype("float32").assign_attrs(
        units="1",
        long_name="meteorological drought composite index (GB/T 20481-2017)",
        calibration_period=index.attrs.get("calibration_period", ""),
    )
    note = _ka_zero_note(step_day)
    if note:
        out["mci"].attrs[MISSING_ATTR] = note  # reported in every output of the hazard
    add_history(
        out,
        f"mci from {Path(history_path).name}: history to {last:%Y-%m-%d}, "
        f"{0 if week is None else week.sizes['time']} forecast days, banner mean, "
        f"SPI reference period {index.attrs.get('calibration_period', '?')}",
    )
    return out
