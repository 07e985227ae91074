"""A synthetic daily climate series for Ejin Horo: the drought index's calibration history
for demos, drills and tests (not observations).

The series feeds :func:`cityops.rules.drought.mci` (GB/T 20481-2017) with 30+ years of daily
precipitation and temperature; :mod:`cityops.scenarios.history` writes one beside each sample
scenario.

Examples
--------
>>> from cityops.scenarios.climate import synthetic_history
>>> from cityops.rules.drought import mci, drought_level
>>> hist = synthetic_history(start="1995-01-01", end="2026-07-10", dry_from="2026-05-01")
>>> drought_level(mci(hist, since="2026-07-04"))  # doctest: +SKIP
4
"""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from cityops.errors import InputError

__all__ = ["synthetic_history", "write_synthetic_history"]

# Monthly climatology (Jan..Dec) behind the synthetic series: totals (mm) sum to 366.5 with
# 61.7 % in June-August (002:1436: 340-400 mm, 61 % in JJA), wet days (>= 0.1 mm) 65.5 a year
# (mean intensity 5.6 mm/day; August 84 / 9 = 9.3 mm/day as the seed text says).
_MONTH_TOTAL_MM = np.array([2.5, 4.0, 10.0, 17.0, 32.0, 50.0, 92.0, 84.0, 46.0, 20.0, 6.0, 2.5])
_MONTH_WET_DAYS = np.array([2.0, 3.0, 4.0, 4.0, 6.0, 9.0, 11.0, 9.0, 8.0, 5.0, 2.5, 2.0])
_DAYS_IN_MONTH = np.array([31, 28.25, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
_GAMMA_SHAPE = 0.75  # daily wet-day amounts
_YEAR_SIGMA = 0.2  # interannual log-amplitude of amounts
_T_MEAN, _T_AMP, _T_PEAK_DOY = (
    6.8,
    16.8,
    200.0,
)  # -10 degC mid-January, 23 degC July (wet days 1 degC cooler)


def synthetic_history(
    *,
    start: str = "1991-01-01",
    end: str = "2026-12-31",
    lat: float = 39.6,
    lon: float = 109.74,
    seed: int = 0,
    dry_from: str | None = None,
    dry_factor: float = 0.1,
    dry_warming: float = 1.5,
) -> xr.Dataset:
    """A plausible daily precipitation and temperature series for Ejin Horo (synthetic).

    Parameters
    ----------
    start, end : date-like
        First and last day.
    lat, lon : float
        Scalar coordinates of the station (degrees).
    seed : int
        Random seed: the same seed gives the same series.
    dry_from : date-like, optional
        From this day on, precipitation is multiplied by ``dry_factor`` and temperatures
        raised by ``dry_warming`` degC: a developing drought for the sample scenarios (with
        ``"2026-05-01"`` the MCI reaches severe/extreme in July-August 2026).
    dry_factor, dry_warming : float
        Strength of the dry spell.

    Returns
    -------
    xarray.Dataset
        ``precip`` (mm per day, 0.1 mm resolution), ``t2m``, ``t2m_max``, ``t2m_min``
        (degC) on a daily ``time``; scalar ``lat``/``lon``; CF attributes.

    Notes
    -----
    Wet days follow a first-order Markov chain with monthly wet-day probabilities (mean
    wet-spell persistence P(wet | wet) = p + 0.25); amounts are 0.1 mm plus a gamma variate
    (shape 0.75) scaled by a per-year lognormal factor (sigma 0.2); amounts are then
    rescaled per calendar month so that the long-term monthly means (before ``dry_from``)
    equal the climatology above: annual mean 366.5 mm, 61.7 % in June-August, about 65 wet
    days a year. Temperature is a cosine seasonal cycle (-10 degC mid-January, 23 degC
    mid-July) plus AR(1) anomalies (lag-1 0.75, sd 3 degC), 1 degC cooler on wet days;
    the diurnal range is 13 degC (9 on wet days).
    """
    times = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="D")
    if len(times) == 0:
        raise InputError(f"synthetic_history: no days between {start} and {end}")
    rng = np.random.default_rng(seed)
    month = times.month.to_numpy() - 1
    p_wet = (_MONTH_WET_DAYS / _DAYS_IN_MONTH)[month]
    mean_amount = (_MONTH_TOTAL_MM / _MONTH_WET_DAYS)[month]

    # Wet-day occurrence: Markov chain with stationary probability p_wet.
    p11 = np.minimum(p_wet + 0.25, 0.95)
    p01 = p_wet * (1.0 - p11) / (1.0 - p_wet)
    u = rng.random(len(times))
    wet = np.zeros(len(times), dtype=bool)
    state = False
    for i in range(len(times)):
        state = u[i] < (p11[i] if state else p01[i])
        wet[i] = state

    # Amounts: 0.1 mm + gamma, a lognormal factor per year.
    years = times.year.to_numpy()
    uniq_years, year_idx = np.unique(years, return_inverse=True)
    year_factor = np.exp(_YEAR_SIGMA * rng.standard_normal(len(uniq_years)) - _YEAR_SIGMA**2 / 2)
    raw = rng.gamma(_GAMMA_SHAPE, 1.0, len(times))
    amount = np.where(wet, 0.1 + raw * (mean_amount - 0.1) / _GAMMA_SHAPE, 0.0)
    amount = amount * np.where(wet, year_factor[year_idx], 1.0)

    normal = np.ones(len(times), dtype=bool)
    if dry_from is not None:
        normal = times < pd.Timestamp(dry_from)
    # Rescale per calendar month so the long-term monthly means match the climatology.
    n_years = max(normal.sum() / 365.25, 1e-9)
    for m in range(12):
        sel = (month == m) & normal
        total = amount[sel].sum() / n_years
        if total > 0:
            amount[month == m] *= _MONTH_TOTAL_MM[m] / total
    precip = np.round(amount, 1)
    precip[wet & (precip < 0.1)] = 0.1

    # Temperature.
    doy = times.day_of_year.to_numpy().astype(float)
    clim = _T_MEAN + _T_AMP * np.cos(2 * np.pi * (doy - _T_PEAK_DOY) / 365.25)
    phi, sd = 0.75, 3.0
    shocks = rng.standard_normal(len(times)) * sd * math.sqrt(1 - phi**2)
    anomaly = np.empty(len(times))
    anomaly[0] = shocks[0] / math.sqrt(1 - phi**2)
    for i in range(1, len(times)):
        anomaly[i] = phi * anomaly[i - 1] + shocks[i]
    t2m = clim + anomaly - 1.0 * wet
    dtr = np.where(wet, 9.0, 13.0)

    if dry_from is not None:
        dry = ~normal
        precip = np.where(dry, np.round(precip * dry_factor, 1), precip)
        t2m = np.where(dry, t2m + dry_warming, t2m)

    t2m = np.round(t2m, 1)
    coords = {"time": times, "lat": float(lat), "lon": float(lon)}
    ds = xr.Dataset(
        {
            "precip": (
                "time",
                precip,
                {
                    "units": "mm",
                    # CF: precipitation_amount is kg m-2; an amount in mm is a water depth.
                    "standard_name": "lwe_thickness_of_precipitation_amount",
                    "long_name": "daily precipitation amount",
                    "cell_methods": "time: sum (interval: 1 day)",
                },
            ),
            "t2m": (
                "time",
                t2m,
                {
                    "units": "degC",
                    "standard_name": "air_temperature",
                    "long_name": "daily mean 2 m air temperature",
                    "cell_methods": "time: mean (interval: 1 day)",
                },
            ),
            "t2m_max": (
                "time",
                np.round(t2m + dtr / 2.0, 1),
                {
                    "units": "degC",
                    "standard_name": "air_temperature",
                    "long_name": "daily maximum 2 m air temperature",
                    "cell_methods": "time: maximum (interval: 1 day)",
                },
            ),
            "t2m_min": (
                "time",
                np.round(t2m - dtr / 2.0, 1),
                {
                    "units": "degC",
                    "standard_name": "air_temperature",
                    "long_name": "daily minimum 2 m air temperature",
                    "cell_methods": "time: minimum (interval: 1 day)",
                },
            ),
        },
        coords=coords,
    )
    ds["lat"].attrs = {"units": "degrees_north", "standard_name": "latitude"}
    ds["lon"].attrs = {"units": "degrees_east", "standard_name": "longitude"}
    ds["time"].attrs = {
        "standard_name": "time",
        "long_name": "day (value = that day's total or mean)",
        "bounds": "time_bnds",
    }
    # CF: the daily sums, means and extremes (cell_methods) cover [day, next day).
    day = ds["time"].values
    ds["time_bnds"] = (("time", "nv"), np.stack([day, day + np.timedelta64(1, "D")], axis=1))
    ds.attrs = {
        "Conventions": "CF-1.8",
        "title": "Synthetic daily climate series for Ejin Horo Banner (not observations)",
        "institution": "cityops",
        "source": "cityops.scenarios.climate.synthetic_history (seeded stochastic weather generator)",
        "history": (
            f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} synthetic_history(start={start!s}, "
            f"end={end!s}, seed={seed}, dry_from={dry_from!s}, dry_factor={dry_factor}, "
            f"dry_warming={dry_warming})"
        ),
        "comment": (
            "annual precipitation 366.5 mm on average, 61.7 % in June-August (seed 002:1436: "
            "340-400 mm, 61 %); temperature -10 degC in January to 23 degC in July"
        ),
    }
    return ds


def write_synthetic_history(path: str | os.PathLike, **kw) -> Path:
    """Write :func:`synthetic_history` (keywords passed on) to a CF NetCDF4 file.

    The file is written beside the target under a temporary name and moved into place
    (:func:`cityops.fsio.atomic_path`): a failure leaves no partial file. Returns the path.
    """
    from cityops.fsio import atomic_path

    out = Path(path)
    if out.is_dir():
        raise InputError(f"{out}: is a folder; expected a NetCDF file name")
    ds = synthetic_history(**kw)
    encoding = {
        name: {"zlib": True, "complevel": 4, "dtype": "float32", "_FillValue": None}
        for name in ds.data_vars
        if name != "time_bnds"
    }
    encoding["time"] = {"units": "days since 1970-01-01", "calendar": "standard", "dtype": "int32"}
    encoding["time_bnds"] = {**encoding["time"], "_FillValue": None}
    with atomic_path(out) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)
    return out
