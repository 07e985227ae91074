"""Meteorological drought composite index MCI (GB/T 20481-2017) from daily data.

.. math::

    MCI = K_a \\, (a \\, SPIW_{60} + b \\, MI_{30} + c \\, SPI_{90} + d \\, SPI_{150})

with the northern/western weights a = 0.3, b = 0.5, c = 0.3, d = 0.2 and a seasonal factor
:math:`K_a` by calendar month. Every parameter (weights, Ka, the SPIW decay, the PET method,
the grade bounds, the signal mapping) lives in ``cityops/data/drought.yaml`` with a source
line; see :func:`load_drought_config`.

Components
----------
- ``SPI_n`` (:func:`spi`): the precipitation summed over the n days ending on the day,
  standardised against the sums ending on the same days of year (+/- ``spi.window_days``) of
  the calibration history with a gamma distribution (``scipy.stats.gamma.fit``, ``floc=0``)
  mixed with the probability ``q`` of a zero sum, ``H = q + (1 - q) G``, and transformed
  with ``scipy.stats.norm.ppf``; clipped to +/- ``spi.clip``.
- ``SPIW60`` (:func:`spiw60`): the same standardisation of the weighted precipitation
  ``WAP = sum_{k=0}^{59} decay**k P(d - k)`` (:func:`weighted_precipitation`).
- ``MI30`` (:func:`moisture_index`): ``(P30 - PET30) / PET30`` with daily PET from
  Thornthwaite (default; temperature and latitude) or Hargreaves (Tmax, Tmin, latitude)
  (:func:`potential_evapotranspiration`), summed over 30 days.

Missing data and dask
---------------------
A window holding a missing day gives NaN (no silent filling); so do the first n - 1 days of
a series and cells with too few calibration sums. The gamma fits (one per day of year per
cell, per index) are computed eagerly from the calibration history (about 30 microseconds
each: ~0.1 s per cell for the full year of the three SPI-type indices, restrict the output
with ``since=`` for operational runs). The n-day sums and the transform of the target days
stay lazy when the input is dask-backed. Extra dimensions (station, lat/lon grid, member)
are worked on elementwise.

Examples
--------
>>> from cityops.rules.drought import mci, drought_grade, drought_level
>>> from cityops.scenarios.climate import synthetic_history
>>> hist = synthetic_history(start="1995-01-01", end="2026-07-10", dry_from="2026-05-01")
>>> index = mci(hist, since="2026-07-04")  # doctest: +SKIP
>>> drought_level(index)  # doctest: +SKIP
4
"""

from __future__ import annotations

import copy
import logging
import math
import os
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from cityops.errors import DataFileError, InputError
from cityops.resources import load_yaml, package_data
from cityops.units import convert_dataarray

__all__ = [
    "composite_index",
    "daylength_hours",
    "drought_grade",
    "drought_indices",
    "drought_level",
    "extraterrestrial_radiation",
    "load_drought_config",
    "mci",
    "moisture_index",
    "potential_evapotranspiration",
    "spi",
    "spiw60",
    "weighted_precipitation",
]

log = logging.getLogger("cityops")

PET_METHODS = ("thornthwaite", "hargreaves")
COMPONENTS = ("spiw60", "mi30", "spi90", "spi150")
_REFERENCE = "GB/T 20481-2017 气象干旱等级 (Grades of meteorological drought)"

# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


def _default_path() -> Path:
    return package_data("data", "drought.yaml")


@cache
def _load_cached(path: str, mtime_ns: int) -> dict[str, Any]:
    return _validate(load_yaml(path), path)


def load_drought_config(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Read and validate the MCI configuration (``cityops/data/drought.yaml`` by default).

    Parameters
    ----------
    path : path, optional
        Another YAML file with the same layout (e.g. a local override).

    Returns
    -------
    dict
        A fresh copy (safe to modify) with the blocks ``weights``, ``ka``, ``spiw``,
        ``spi``, ``moisture_index``, ``thornthwaite``, ``hargreaves``, ``grades`` and
        ``signal``, each holding its ``source``; numbers as floats/ints.

    Raises
    ------
    DataFileError
        One line naming the file and the field, e.g. ``drought.yaml: ka.months must be a
        list of 12 numbers >= 0 (got 11 items)``.
    """
    target = _default_path() if path is None else Path(path)
    try:
        mtime = target.stat().st_mtime_ns
    except OSError:
        raise DataFileError(f"{target}: file not found") from None
    return copy.deepcopy(_load_cached(str(target), mtime))


def _resolve_config(config: dict[str, Any] | str | os.PathLike | None) -> dict[str, Any]:
    if config is None:
        return load_drought_config()
    if isinstance(config, dict):
        return _validate(copy.deepcopy(config), config.get("_path", "drought config"))
    return load_drought_config(config)


def _validate(data: dict[str, Any], path: str) -> dict[str, Any]:
    def fail(field: str, what: str) -> DataFileError:
        return DataFileError(f"{path}: {field} {what}")

    def block(name: str) -> dict[str, Any]:
        value = data.get(name)
        if not isinstance(value, dict):
            raise fail(name, "is missing or not a mapping")
        src = value.get("source")
        if not isinstance(src, str) or not src.strip():
            raise fail(f"{name}.source", "is missing: every entry needs a source line")
        return value

    def number(blk: str, key: str, *, lo=None, hi=None, lo_open=False, integer=False) -> float:
        value = data[blk].get(key)
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and integer:
            ok = float(value).is_integer()
        if ok and lo is not None:
            ok = value > lo if lo_open else value >= lo
        if ok and hi is not None:
            ok = value <= hi
        if not ok:
            kind = "an integer" if integer else "a number"
            rng = ""
            if lo is not None:
                rng += f" {'>' if lo_open else '>='} {lo}"
            if hi is not None:
                rng += f"{' and' if rng else ''} <= {hi}"
            raise fail(f"{blk}.{key}", f"must be {kind}{rng} (got {value!r})")
        return int(value) if integer else float(value)

    if not isinstance(data.get("source"), str):
        raise fail("source", "is missing: the file needs a top-level source line")

    block("weights")
    for key in COMPONENTS:
        data["weights"][key] = number("weights", key, lo=0)

    block("ka")
    months = data["ka"].get("months")
    if (
        not isinstance(months, list)
        or len(months) != 12
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in months)
        or any(v < 0 for v in months)
    ):
        got = f"{len(months)} items" if isinstance(months, list) else repr(months)
        raise fail(
            "ka.months", f"must be a list of 12 numbers >= 0 for January..December (got {got})"
        )
    data["ka"]["months"] = [float(v) for v in months]

    block("spiw")
    data["spiw"]["days"] = number("spiw", "days", lo=1, integer=True)
    data["spiw"]["decay"] = number("spiw", "decay", lo=0, hi=1, lo_open=True)

    block("reference")
    data["reference"]["years"] = number("reference", "years", lo=1, integer=True)
    data["reference"]["min_years"] = number("reference", "min_years", lo=1)

    block("spi")
    data["spi"]["window_days"] = number("spi", "window_days", lo=0, hi=182, integer=True)
    data["spi"]["min_samples"] = number("spi", "min_samples", lo=3, integer=True)
    data["spi"]["min_positive"] = number("spi", "min_positive", lo=3, integer=True)
    data["spi"]["zero_threshold_mm"] = number("spi", "zero_threshold_mm", lo=0)
    data["spi"]["clip"] = number("spi", "clip", lo=0, lo_open=True)

    block("moisture_index")
    data["moisture_index"]["days"] = number("moisture_index", "days", lo=1, integer=True)
    method = data["moisture_index"].get("pet_method")
    if method not in PET_METHODS:
        raise fail(
            "moisture_index.pet_method", f"must be one of {', '.join(PET_METHODS)} (got {method!r})"
        )

    block("thornthwaite")
    for key in ("base_mm", "month_days", "heat_exponent"):
        data["thornthwaite"][key] = number("thornthwaite", key, lo=0, lo_open=True)
    data["thornthwaite"]["hot_threshold_degC"] = number("thornthwaite", "hot_threshold_degC")
    for key, size in (("exponent_coefficients", 4), ("hot_coefficients", 3)):
        coeffs = data["thornthwaite"].get(key)
        if (
            not isinstance(coeffs, list)
            or len(coeffs) != size
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in coeffs)
        ):
            raise fail(f"thornthwaite.{key}", f"must be a list of {size} numbers (got {coeffs!r})")
        data["thornthwaite"][key] = [float(v) for v in coeffs]

    block("hargreaves")
    data["hargreaves"]["coefficient"] = number("hargreaves", "coefficient", lo=0, lo_open=True)
    data["hargreaves"]["t_offset_degC"] = number("hargreaves", "t_offset_degC")

    block("grades")
    classes = data["grades"].get("classes")
    if not isinstance(classes, list) or not classes:
        raise fail("grades.classes", "must be a non-empty list")
    previous = math.inf
    for i, cls in enumerate(classes):
        where = f"grades.classes[{i}]"
        if not isinstance(cls, dict) or cls.get("grade") != i or not cls.get("name"):
            raise fail(where, f"must be a mapping with grade: {i} and a name (got {cls!r})")
        upper = cls.get("upper")
        if i == 0:
            if upper is not None:
                raise fail(f"{where}.upper", f"must be null for grade 0 (got {upper!r})")
            continue
        if not isinstance(upper, int | float) or isinstance(upper, bool) or not upper < previous:
            raise fail(
                f"{where}.upper",
                f"must be a number below the previous grade's bound {previous} (got {upper!r})",
            )
        cls["upper"] = previous = float(upper)

    block("signal")
    levels = data["signal"].get("levels")
    if not isinstance(levels, list) or not levels:
        raise fail("signal.levels", "must be a non-empty list")
    for i, row in enumerate(levels):
        if (
            not isinstance(row, dict)
            or not isinstance(row.get("grade"), int)
            or not 0 < row["grade"] < len(classes)
            or not isinstance(row.get("level"), int)
            or not 0 < row["level"] <= 4
        ):
            raise fail(
                f"signal.levels[{i}]",
                f"must map a drought grade 1..{len(classes) - 1} to a signal level 1..4 (got {row!r})",
            )
    data["_path"] = path
    return data


# --------------------------------------------------------------------------------------------
# Input checks and helpers
# --------------------------------------------------------------------------------------------


def _check_daily(da: xr.DataArray, where: str) -> pd.DatetimeIndex:
    if "time" not in da.dims:
        raise InputError(f"{where}: no 'time' dimension; expected a daily series")
    try:
        times = pd.DatetimeIndex(da["time"].values)
    except (TypeError, ValueError):
        raise InputError(f"{where}: 'time' is not a datetime coordinate") from None
    if len(times) > 1:
        steps = np.unique(np.diff(times.values))
        if len(steps) != 1 or steps[0] != np.timedelta64(1, "D"):
            raise InputError(
                f"{where}: 'time' must be daily and gap-free (steps found: "
                f"{', '.join(str(pd.Timedelta(s)) for s in steps[:3])})"
            )
    return times


def _as_precip(da: xr.DataArray, where: str) -> xr.DataArray:
    """Daily precipitation in mm (a daily sum in mm, or a rate converted to mm per day)."""
    units = da.attrs.get("units")
    if units is None:
        log.info("%s: precipitation has no units; assuming mm per day", where)
        out = da.astype("float64")
    else:
        try:
            out = convert_dataarray(da, "mm", source=where)
        except InputError:
            out = convert_dataarray(da, "mm d-1", source=where)
    out.attrs = {"units": "mm"}
    return out


def _as_degc(da: xr.DataArray, where: str) -> xr.DataArray:
    if da.attrs.get("units") is None:
        log.info("%s: temperature has no units; assuming degC", where)
        out = da.astype("float64")
    else:
        out = convert_dataarray(da, "degC", source=where)
    out.attrs = {"units": "degC"}
    return out


def _noleap_doy(times: pd.DatetimeIndex) -> np.ndarray:
    """Day of year on a 365-day calendar (29 February shares 28 February's day, 59)."""
    doy = np.asarray(times.day_of_year)
    return doy - (np.asarray(times.is_leap_year) & (doy >= 60)).astype(int)


def _accumulate(precip: xr.DataArray, n: int) -> xr.DataArray:
    """Sum over the n days ending on each day; NaN until n days exist or if one is missing."""
    return precip.rolling(time=n, min_periods=n).sum()


def weighted_precipitation(
    precip_daily: xr.DataArray, days: int = 60, decay: float = 0.85
) -> xr.DataArray:
    """Weighted precipitation ``WAP(d) = sum_{k=0}^{days-1} decay**k * P(d - k)`` (mm).

    Parameters
    ----------
    precip_daily : xarray.DataArray
        Daily precipitation with a daily ``time`` dimension.
    days : int
        Number of days weighted (60 for SPIW60).
    decay : float
        Weight ratio from one day to the day before (k = 0, the day itself, weighs 1).

    Returns
    -------
    xarray.DataArray
        NaN for the first ``days - 1`` days and where a day in the window is missing.
    """
    weights = xr.DataArray(decay ** np.arange(days - 1, -1, -1, dtype="float64"), dims="window")
    windows = precip_daily.rolling(time=days, min_periods=days).construct("window")
    wap = xr.dot(windows, weights, dim="window")
    # construct() pads the first days with NaN, which the dot product propagates.
    return wap.where(precip_daily.rolling(time=days, min_periods=days).count() == days)


def _select_calibration(acc: xr.DataArray, calibration) -> xr.DataArray:
    if calibration is None:
        return acc
    if isinstance(calibration, slice):
        return acc.sel(time=calibration)
    if isinstance(calibration, tuple) and len(calibration) == 2:
        return acc.sel(time=slice(*calibration))
    raise InputError(
        f"calibration must be None, a DataArray, a slice or a (start, end) pair (got {type(calibration).__name__})"
    )


# --------------------------------------------------------------------------------------------
# Standardisation (SPI-type indices)
# --------------------------------------------------------------------------------------------


def _fit_params(calib: xr.DataArray, doys: np.ndarray, cfg: dict[str, Any]) -> xr.Dataset:
    """Mixed gamma parameters (q, shape, scale) per target day of year and cell (eager)."""
    other = [d for d in calib.dims if d != "time"]
    calib = calib.transpose("time", *other)
    values = np.asarray(calib.values, dtype="float64").reshape(calib.sizes["time"], -1)
    cal_doy = _noleap_doy(pd.DatetimeIndex(calib["time"].values))
    window = cfg["window_days"]
    zero = cfg["zero_threshold_mm"]
    ncell = values.shape[1]
    q = np.full((len(doys), ncell), np.nan)
    shape = np.full_like(q, np.nan)
    scale = np.full_like(q, np.nan)
    short = 0
    for i, d in enumerate(doys):
        dist = np.abs(cal_doy - d)
        sample = values[np.minimum(dist, 365 - dist) <= window]
        for c in range(ncell):
            s = sample[:, c]
            s = s[np.isfinite(s)]
            positive = s[s >= zero]
            if len(s) < cfg["min_samples"] or len(positive) < cfg["min_positive"]:
                short += 1
                continue
            if np.ptp(positive) <= 0:  # all equal: no spread to fit
                short += 1
                continue
            a, _, sc = _stats().gamma.fit(positive, floc=0)
            q[i, c] = 1.0 - len(positive) / len(s)
            shape[i, c], scale[i, c] = a, sc
    if short:
        log.info(
            "drought: %d of %d (day of year, cell) fits lack samples (min %d, %d non-zero): NaN",
            short,
            q.size,
            cfg["min_samples"],
            cfg["min_positive"],
        )
    dims = ("doy", *other)
    sizes = tuple(calib.sizes[d] for d in other)
    coords = {"doy": doys}
    coords.update({k: v for k, v in calib.coords.items() if set(v.dims) <= set(other)})
    return xr.Dataset(
        {
            "q": (dims, q.reshape(len(doys), *sizes)),
            "shape": (dims, shape.reshape(len(doys), *sizes)),
            "scale": (dims, scale.reshape(len(doys), *sizes)),
        },
        coords=coords,
    )


def _stats():
    """``scipy.stats``, imported when a drought index is computed (it takes about a second
    to import, and most runs never need it)."""
    from scipy import stats

    return stats


def _mixed_gamma_spi(x, q, shape, scale, *, zero: float, clip: float):
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        g = _stats().gamma.cdf(x, shape, scale=scale)
        h = np.where(x < zero, q, q + (1.0 - q) * g)
        z = _stats().norm.ppf(h)
        z = np.clip(z, -clip, clip)
    return np.where(np.isnan(x) | np.isnan(h), np.nan, z)


def _standardise(
    acc: xr.DataArray,
    calib: xr.DataArray,
    cfg: dict[str, Any],
    since,
) -> xr.DataArray:
    target = acc if since is None else acc.sel(time=slice(pd.Timestamp(since), None))
    times = pd.DatetimeIndex(target["time"].values)
    doy_t = _noleap_doy(times)
    doys = np.unique(doy_t)
    params = _fit_params(calib, doys, cfg)
    index = xr.DataArray(np.searchsorted(doys, doy_t), dims="time", coords={"time": target["time"]})
    p = params.isel(doy=index).drop_vars("doy")
    out = xr.apply_ufunc(
        _mixed_gamma_spi,
        target,
        p["q"],
        p["shape"],
        p["scale"],
        kwargs={"zero": cfg["zero_threshold_mm"], "clip": cfg["clip"]},
        dask="parallelized",
        output_dtypes=[np.float64],
        join="left",
    )
    return out.transpose(*target.dims)


def _calibration_accumulation(precip, calibration, where, accumulate) -> xr.DataArray:
    if isinstance(calibration, xr.DataArray):
        _check_daily(calibration, f"{where} calibration")
        cal = accumulate(_as_precip(calibration, f"{where} calibration"))
    else:
        cal = _select_calibration(accumulate(precip), calibration)
    if cal.sizes.get("time", 0) == 0:
        raise InputError(f"{where}: the calibration period holds no days")
    return cal


def spi(
    precip_daily: xr.DataArray,
    n: int,
    *,
    calibration=None,
    config: dict[str, Any] | str | os.PathLike | None = None,
    since=None,
) -> xr.DataArray:
    """Standardized precipitation index over the n days ending on each day.

    Parameters
    ----------
    precip_daily : xarray.DataArray
        Daily precipitation (mm, or a rate convertible to mm/day), daily ``time`` dimension,
        any other dimensions (station, lat/lon, member) worked on elementwise.
    n : int
        Accumulation length in days (90 for SPI90, 150 for SPI150).
    calibration : None, slice, (start, end) or DataArray, optional
        Climatology the sums are standardised against: None uses ``precip_daily`` itself;
        a slice or pair selects its times; a DataArray is a separate daily history.
    config : dict or path, optional
        MCI configuration (:func:`load_drought_config`); uses its ``spi`` block.
    since : date-like, optional
        Only return days from this date on (fits only their days of year: faster).

    Returns
    -------
    xarray.DataArray
        ``spi{n}``, dimensionless, NaN for the first n - 1 days and where a fit lacks data.

    Notes
    -----
    For each target day the sample is the n-day sums ending on every calibration day within
    +/- ``spi.window_days`` days of year (all years). Sums below ``zero_threshold_mm`` count
    as zero: ``q`` is their share, the rest are fitted by ``scipy.stats.gamma.fit(floc=0)``
    and ``SPI = norm.ppf(q + (1 - q) G(x))`` (``norm.ppf(q)`` for a zero sum), clipped.
    The fits are computed eagerly; the transform stays lazy for dask-backed input.
    """
    cfg = _resolve_config(config)
    n = int(n)
    if n < 1:
        raise InputError(f"spi: n must be a positive number of days (got {n})")
    _check_daily(precip_daily, "spi precip")
    precip = _as_precip(precip_daily, "spi precip")

    def accumulate(p):
        return _accumulate(p, n)

    cal = _calibration_accumulation(precip, calibration, "spi", accumulate)
    out = _standardise(accumulate(precip), cal, cfg["spi"], since)
    out.name = f"spi{n}"
    out.attrs = {
        "long_name": f"standardized precipitation index, {n}-day precipitation",
        "long_name_zh": f"{n}天标准化降水指数",
        "units": "1",
        "references": "McKee et al. (1993); WMO-No. 1090 (2012); " + _REFERENCE,
    }
    return out


def spiw60(
    precip_daily: xr.DataArray,
    *,
    calibration=None,
    config: dict[str, Any] | str | os.PathLike | None = None,
    since=None,
) -> xr.DataArray:
    """Standardized weighted precipitation index SPIW60.

    ``WAP = sum_{k=0}^{59} decay**k P(d - k)`` (:func:`weighted_precipitation`, ``days`` and
    ``decay`` from the ``spiw`` block of the configuration, 60 and 0.85 by default),
    standardised exactly like :func:`spi` (same calibration rules and parameters).

    Parameters and returns are those of :func:`spi`, without ``n``.
    """
    cfg = _resolve_config(config)
    days, decay = cfg["spiw"]["days"], cfg["spiw"]["decay"]
    _check_daily(precip_daily, "spiw60 precip")
    precip = _as_precip(precip_daily, "spiw60 precip")

    def accumulate(p):
        return weighted_precipitation(p, days, decay)

    cal = _calibration_accumulation(precip, calibration, "spiw60", accumulate)
    out = _standardise(accumulate(precip), cal, cfg["spi"], since)
    out.name = f"spiw{days}"
    out.attrs = {
        "long_name": f"standardized weighted precipitation index, {days} days, decay {decay}",
        "long_name_zh": f"{days}天标准化权重降水指数",
        "units": "1",
        "references": _REFERENCE,
    }
    return out


# --------------------------------------------------------------------------------------------
# Potential evapotranspiration and the moisture index
# --------------------------------------------------------------------------------------------


def _lat_radians(lat, where: str):
    if isinstance(lat, xr.DataArray):
        bad = bool((np.abs(lat) > 90).any())
        value = np.deg2rad(lat)
    elif lat is None:
        raise InputError(f"{where}: latitude is required (pass lat= in degrees north)")
    elif np.ndim(lat) == 0:
        bad = abs(float(lat)) > 90
        value = math.radians(float(lat))
    else:
        raise InputError(f"{where}: lat must be a number or a DataArray (got an unlabelled array)")
    if bad:
        raise InputError(f"{where}: latitude outside -90..90 degrees")
    return value


def _solar_geometry(time: xr.DataArray, lat_rad):
    """Declination, sunset hour angle and inverse Earth-Sun distance (FAO-56 eqs 23-25)."""
    doy = time.dt.dayofyear.astype("float64")
    decl = 0.409 * np.sin(2 * np.pi * doy / 365.0 - 1.39)
    cos_ws = (-np.tan(lat_rad) * np.tan(decl)).clip(-1.0, 1.0)
    ws = np.arccos(cos_ws)
    dr = 1.0 + 0.033 * np.cos(2 * np.pi * doy / 365.0)
    return decl, ws, dr


def daylength_hours(time: xr.DataArray, lat) -> xr.DataArray:
    """Astronomical day length N (hours), FAO-56 eq. 34: ``N = 24 / pi * omega_s``.

    Parameters
    ----------
    time : xarray.DataArray
        Datetime coordinate (the day of year is used).
    lat : float or xarray.DataArray
        Latitude in degrees north.
    """
    _, ws, _ = _solar_geometry(time, _lat_radians(lat, "daylength"))
    return 24.0 / np.pi * ws


def extraterrestrial_radiation(time: xr.DataArray, lat) -> xr.DataArray:
    """Daily extraterrestrial radiation Ra (MJ m-2 day-1), FAO-56 eq. 21."""
    phi = _lat_radians(lat, "extraterrestrial_radiation")
    decl, ws, dr = _solar_geometry(time, phi)
    gsc = 0.0820  # solar constant, MJ m-2 min-1
    return (
        24.0
        * 60.0
        / np.pi
        * gsc
        * dr
        * (ws * np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.sin(ws))
    )


def _heat_index(t2m_cal: xr.DataArray, cfg: dict[str, Any], where: str) -> xr.DataArray:
    monthly = t2m_cal.groupby("time.month").mean("time")
    if monthly.sizes.get("month", 0) != 12:
        raise InputError(
            f"{where}: the Thornthwaite heat index needs temperatures in all 12 calendar months "
            f"(found {monthly.sizes.get('month', 0)})"
        )
    return ((monthly.clip(min=0.0) / 5.0) ** cfg["heat_exponent"]).sum("month", skipna=False)


def _thornthwaite_daily(t2m, heat, daylen, cfg):
    c3, c2, c1, c0 = cfg["exponent_coefficients"]
    expo = c3 * heat**3 + c2 * heat**2 + c1 * heat + c0
    h0, h1, h2 = cfg["hot_coefficients"]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (10.0 * t2m.clip(min=0.0) / heat.where(heat > 0)).fillna(0.0)
    month_pet = cfg["base_mm"] * ratio**expo
    hot = h0 + h1 * t2m + h2 * t2m**2
    month_pet = xr.where(t2m >= cfg["hot_threshold_degC"], hot, month_pet)
    month_pet = xr.where(t2m > 0, month_pet, 0.0).where(t2m.notnull())
    return month_pet * (daylen / 12.0) / cfg["month_days"]


def potential_evapotranspiration(
    t2m_daily: xr.DataArray | None,
    *,
    lat,
    method: str | None = None,
    t2m_max: xr.DataArray | None = None,
    t2m_min: xr.DataArray | None = None,
    calibration=None,
    config: dict[str, Any] | str | os.PathLike | None = None,
) -> xr.DataArray:
    """Daily potential evapotranspiration (mm/day).

    Parameters
    ----------
    t2m_daily : xarray.DataArray
        Daily mean 2 m temperature (degC or convertible); used by Thornthwaite.
    lat : float or xarray.DataArray
        Latitude in degrees north (a DataArray broadcasts against the data's dimensions).
    method : {"thornthwaite", "hargreaves"}, optional
        Default: ``moisture_index.pet_method`` of the configuration.
    t2m_max, t2m_min : xarray.DataArray, optional
        Daily extremes, required by Hargreaves.
    calibration : None, slice, (start, end) or DataArray, optional
        Temperatures whose climatological monthly means give Thornthwaite's heat index I
        (default: ``t2m_daily`` itself; needs all 12 calendar months).
    config : dict or path, optional

    Returns
    -------
    xarray.DataArray
        ``pet`` in mm (per day).

    Notes
    -----
    Thornthwaite: ``16 * (10 T / I)**A * (N / 12) / 30`` mm/day for 0 < T < 26.5 degC (the
    hot branch of Willmott et al. above, 0 at T <= 0), N the day length (FAO-56 eq. 34).
    Hargreaves: ``0.0023 * 0.408 Ra (T + 17.8) sqrt(Tmax - Tmin)`` (FAO-56 eq. 52).
    """
    cfg = _resolve_config(config)
    method = method or cfg["moisture_index"]["pet_method"]
    if method not in PET_METHODS:
        raise InputError(f"pet: method must be one of {', '.join(PET_METHODS)} (got {method!r})")
    if method == "thornthwaite":
        if t2m_daily is None:
            raise InputError("pet: Thornthwaite needs the daily mean temperature t2m")
        _check_daily(t2m_daily, "pet t2m")
        t2m = _as_degc(t2m_daily, "pet t2m")
        if isinstance(calibration, xr.DataArray):
            t_cal = _as_degc(calibration, "pet calibration t2m")
        else:
            t_cal = _select_calibration(t2m, calibration)
        heat = _heat_index(t_cal, cfg["thornthwaite"], "pet")
        daylen = daylength_hours(t2m["time"], lat)
        pet = _thornthwaite_daily(t2m, heat, daylen, cfg["thornthwaite"])
    else:
        if t2m_max is None or t2m_min is None:
            raise InputError("pet: Hargreaves needs the daily extremes t2m_max and t2m_min")
        _check_daily(t2m_max, "pet t2m_max")
        tmax = _as_degc(t2m_max, "pet t2m_max")
        tmin = _as_degc(t2m_min, "pet t2m_min")
        ra = extraterrestrial_radiation(tmax["time"], lat)
        hg = cfg["hargreaves"]
        tmean = (tmax + tmin) / 2.0
        pet = hg["coefficient"] * 0.408 * ra * (tmean + hg["t_offset_degC"]).clip(min=0.0)
        pet = pet * np.sqrt((tmax - tmin).clip(min=0.0))
    pet = pet.transpose("time", ...)
    pet.name = "pet"
    pet.attrs = {
        "long_name": f"potential evapotranspiration ({method})",
        "standard_name": "water_potential_evaporation_amount",
        "units": "mm",
        "cell_methods": "time: sum (interval: 1 day)",
    }
    return pet


def moisture_index(
    precip_daily: xr.DataArray,
    t2m_daily: xr.DataArray | None,
    *,
    lat,
    n: int | None = None,
    method: str | None = None,
    t2m_max: xr.DataArray | None = None,
    t2m_min: xr.DataArray | None = None,
    calibration=None,
    config: dict[str, Any] | str | os.PathLike | None = None,
    since=None,
) -> xr.DataArray:
    """Relative moisture index ``MI_n = (P_n - PET_n) / PET_n`` over the n days ending on the day.

    Parameters
    ----------
    precip_daily, t2m_daily : xarray.DataArray
        Daily precipitation (mm) and mean temperature (degC) on the same daily times.
    lat : float or xarray.DataArray
        Latitude in degrees north.
    n : int, optional
        Window in days (default ``moisture_index.days``, 30).
    method, t2m_max, t2m_min, calibration, config
        As in :func:`potential_evapotranspiration`.
    since : date-like, optional
        Only return days from this date on.

    Returns
    -------
    xarray.DataArray
        ``mi{n}``, dimensionless, >= -1; NaN where PET_n = 0 (undefined), for the first
        n - 1 days and where a day is missing.
    """
    cfg = _resolve_config(config)
    n = int(n if n is not None else cfg["moisture_index"]["days"])
    _check_daily(precip_daily, "moisture_index precip")
    precip = _as_precip(precip_daily, "moisture_index precip")
    pet = potential_evapotranspiration(
        t2m_daily,
        lat=lat,
        method=method,
        t2m_max=t2m_max,
        t2m_min=t2m_min,
        calibration=calibration,
        config=cfg,
    )
    p_n = _accumulate(precip, n)
    pet_n = _accumulate(pet, n)
    # Dividing by NaN (not by zero) where PET_n = 0 keeps lazy (dask) runs warning-free.
    positive = pet_n.where(pet_n > 0)
    mi = (p_n - positive) / positive
    if since is not None:
        mi = mi.sel(time=slice(pd.Timestamp(since), None))
    mi = mi.transpose(*[d for d in precip.dims if d in mi.dims], ...)
    mi.name = f"mi{n}"
    mi.attrs = {
        "long_name": f"relative moisture index (P - PET) / PET over {n} days",
        "long_name_zh": f"{n}天相对湿润度指数",
        "units": "1",
        "pet_method": method or cfg["moisture_index"]["pet_method"],
        "references": _REFERENCE,
    }
    return mi


# --------------------------------------------------------------------------------------------
# The composite index, grades and the signal level
# --------------------------------------------------------------------------------------------


def _ka(time: xr.DataArray, cfg: dict[str, Any]) -> xr.DataArray:
    months = time.dt.month.values
    ka = np.asarray(cfg["ka"]["months"])[months - 1]
    return xr.DataArray(ka, dims="time", coords={"time": time.values}, name="ka")


def composite_index(
    spiw60: xr.DataArray,
    mi30: xr.DataArray,
    spi90: xr.DataArray,
    spi150: xr.DataArray,
    *,
    config: dict[str, Any] | str | os.PathLike | None = None,
) -> xr.DataArray:
    """Combine the components: ``MCI = Ka(month) * (a SPIW60 + b MI30 + c SPI90 + d SPI150)``.

    The components must share a ``time`` coordinate (Ka is taken by calendar month). Where
    Ka = 0 (winter) the index is 0 as long as SPI150 is defined (MI may be undefined there
    because PET is zero); elsewhere any missing component gives NaN.
    """
    cfg = _resolve_config(config)
    w = cfg["weights"]
    combo = w["spiw60"] * spiw60 + w["mi30"] * mi30 + w["spi90"] * spi90 + w["spi150"] * spi150
    ka = _ka(combo["time"], cfg)
    out = ka * combo
    out = xr.where((ka == 0) & spi150.notnull(), 0.0, out)
    out = out.transpose(*combo.dims)
    out.name = "mci"
    out.attrs = {
        "long_name": "meteorological drought composite index MCI",
        "long_name_zh": "气象干旱综合指数",
        "units": "1",
        "references": _REFERENCE,
        "comment": (
            f"MCI = Ka*({w['spiw60']}*SPIW60 + {w['mi30']}*MI30 + {w['spi90']}*SPI90 + "
            f"{w['spi150']}*SPI150); Ka Jan-Dec = {cfg['ka']['months']} "
            f"({cfg['ka']['source']}); SPIW decay {cfg['spiw']['decay']}; "
            f"PET {cfg['moisture_index']['pet_method']}; config {cfg.get('_path', '')}"
        ),
    }
    return out


def _dataset_var(ds: xr.Dataset, name: str, where: str) -> xr.DataArray:
    if not isinstance(ds, xr.Dataset):
        raise InputError(f"{where}: expected an xarray.Dataset (got {type(ds).__name__})")
    if name not in ds:
        raise InputError(f"{where}: variable {name!r} is missing")
    return ds[name]


#: Accumulation lengths (days) of the MCI's two plain SPI terms, SPI90 and SPI150.
SPI_WINDOWS = (90, 150)


def _target_start(since, forecast: xr.Dataset | None) -> pd.Timestamp | None:
    """First day judged: ``since``, else the forecast's first day, else None (the whole
    history is both the reference and the target: a climatology run)."""
    if since is not None:
        return pd.Timestamp(since).normalize()
    if forecast is not None and forecast.sizes.get("time", 0):
        return pd.Timestamp(forecast["time"].values[0]).normalize()
    return None


def _reference_period(
    times: pd.DatetimeIndex, target: pd.Timestamp | None, cfg: dict[str, Any]
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Calibration (reference) period of the standardised indices: it ends the day before the
    longest accumulation of the first target day begins, so the spell being judged is never
    part of its own climatology (an SPI calibrated on a sample that holds the drought itself
    understates it), and spans the latest ``reference.years`` years before that."""
    ref = cfg["reference"]
    if target is None:
        return times[0], times[-1]
    longest = max(*SPI_WINDOWS, cfg["spiw"]["days"], cfg["moisture_index"]["days"])
    end = min(times[-1], target - pd.Timedelta(days=longest))
    start = max(times[0], end - pd.DateOffset(years=int(ref["years"])) + pd.Timedelta("1D"))
    held = (end - start + pd.Timedelta("1D")) / pd.Timedelta(days=365.25)
    if held < ref["min_years"] - 1e-9:
        raise InputError(
            f"history: the reference period before the target ({start:%Y-%m-%d} to "
            f"{end:%Y-%m-%d}, ending {longest} days before {target:%Y-%m-%d}) holds "
            f"{held:.1f} years; expected at least {ref['min_years']:g} years of daily history"
        )
    return start, end


def drought_indices(
    history: xr.Dataset,
    *,
    forecast: xr.Dataset | None = None,
    lat=None,
    config: dict[str, Any] | str | os.PathLike | None = None,
    since=None,
) -> xr.Dataset:
    """All MCI components and the MCI, daily, for the history followed by the forecast.

    Parameters
    ----------
    history : xarray.Dataset
        Daily ``time`` (gap-free), ``precip`` (mm/day) and ``t2m`` (degC daily mean); also
        ``t2m_max``/``t2m_min`` when the Hargreaves PET is configured. Any other dimensions
        are worked on elementwise. The history is the calibration climatology (ideally
        30 years or more).
    forecast : xarray.Dataset, optional
        The coming days (same variables, daily, starting the day after the history ends),
        appended to the history; it is not part of the calibration. Extra dimensions (e.g.
        ``member``) broadcast against the history.
    lat : float or xarray.DataArray, optional
        Latitude in degrees north; default the ``lat`` coordinate of the history.
    config : dict or path, optional
        MCI configuration (:func:`load_drought_config`).
    since : date-like, optional
        Only compute and return days from this date on (e.g. the forecast's first day).

    Returns
    -------
    xarray.Dataset
        ``spiw60``, ``mi30``, ``spi90``, ``spi150``, ``ka`` and ``mci`` with CF attributes.
    """
    cfg = _resolve_config(config)
    variables = ["precip", "t2m"]
    if cfg["moisture_index"]["pet_method"] == "hargreaves":
        variables = ["precip", "t2m_max", "t2m_min"]
    hist = {v: _dataset_var(history, v, "history") for v in variables}
    times = _check_daily(hist["precip"], "history")
    if len(times) == 0:
        raise InputError("history: no days")
    series = hist
    if forecast is not None:
        fc = {v: _dataset_var(forecast, v, "forecast") for v in variables}
        fc_times = _check_daily(fc["precip"], "forecast")
        if len(fc_times) and fc_times[0] != times[-1] + pd.Timedelta("1D"):
            raise InputError(
                f"forecast: must start the day after the history ends ({times[-1]:%Y-%m-%d}); "
                f"starts {fc_times[0]:%Y-%m-%d}"
            )
        series = {}
        for v in variables:
            convert = _as_precip if v == "precip" else _as_degc
            parts = [convert(hist[v], f"history {v}"), convert(fc[v], f"forecast {v}")]
            series[v] = xr.concat(
                parts, dim="time", join="outer", coords="minimal", compat="override"
            )
            series[v].attrs = dict(parts[0].attrs)
    if lat is None:
        if "lat" in history.coords:
            lat = history["lat"]
        elif forecast is not None and "lat" in forecast.coords:
            lat = forecast["lat"]
        else:
            raise InputError("history: no 'lat' coordinate; pass lat= (degrees north)")
    reference = _reference_period(times, _target_start(since, forecast), cfg)
    calibration = slice(*reference)
    precip = series["precip"]
    n_mi = cfg["moisture_index"]["days"]
    out = xr.Dataset()
    out["spiw60"] = spiw60(precip, calibration=calibration, config=cfg, since=since)
    out["mi30"] = moisture_index(
        precip,
        series.get("t2m"),
        lat=lat,
        n=n_mi,
        t2m_max=series.get("t2m_max"),
        t2m_min=series.get("t2m_min"),
        calibration=calibration,
        config=cfg,
        since=since,
    )
    for n in SPI_WINDOWS:
        out[f"spi{n}"] = spi(precip, n, calibration=calibration, config=cfg, since=since)
    out["mci"] = composite_index(
        out["spiw60"], out["mi30"], out["spi90"], out["spi150"], config=cfg
    )
    out["ka"] = _ka(out["time"], cfg)
    out["ka"].attrs = {
        "long_name": "seasonal adjustment factor Ka of the MCI",
        "units": "1",
        "source": cfg["ka"]["source"],
    }
    # The reference period travels with the index (outputs say what it was calibrated on).
    out["mci"].attrs["calibration_period"] = f"{reference[0]:%Y-%m-%d}/{reference[1]:%Y-%m-%d}"
    out.attrs = {
        "title": "Meteorological drought composite index (MCI)",
        "references": _REFERENCE,
        "source": f"cityops.rules.drought; configuration {cfg.get('_path', '')}",
        "calibration_period": f"{reference[0]:%Y-%m-%d}/{reference[1]:%Y-%m-%d}",
        "history": f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} cityops.rules.drought.drought_indices",
    }
    return out


def mci(
    history: xr.Dataset,
    *,
    forecast: xr.Dataset | None = None,
    lat=None,
    config: dict[str, Any] | str | os.PathLike | None = None,
    since=None,
) -> xr.DataArray:
    """Daily meteorological drought composite index MCI (GB/T 20481-2017).

    See :func:`drought_indices` for the parameters; this returns its ``mci`` variable
    (dimensionless, CF attributes ``long_name``, ``units: "1"``, ``references``).

    Examples
    --------
    >>> hist = synthetic_history(start="1995-01-01", end="2026-07-03")  # doctest: +SKIP
    >>> week = mci(hist.sel(time=slice(None, "2026-06-26")),
    ...            forecast=hist.sel(time=slice("2026-06-27", None)),
    ...            since="2026-06-27")  # doctest: +SKIP
    """
    return drought_indices(history, forecast=forecast, lat=lat, config=config, since=since)["mci"]


def drought_grade(
    mci: xr.DataArray | float | np.ndarray,
    *,
    config: dict[str, Any] | str | os.PathLike | None = None,
) -> xr.DataArray:
    """Drought grade of each MCI value: 0 none, 1 light, 2 moderate, 3 severe, 4 extreme.

    A grade holds when MCI <= its upper bound (-0.5, -1.0, -1.5, -2.0: the standard's
    "<="), so -0.5 is light and -0.4999 none. A missing MCI is graded 0 (none) and logged.

    Returns
    -------
    xarray.DataArray
        int8 with ``flag_values`` / ``flag_meanings`` (lazy for dask-backed input).
    """
    cfg = _resolve_config(config)
    classes = cfg["grades"]["classes"]
    if not isinstance(mci, xr.DataArray):
        mci = xr.DataArray(np.asarray(mci, dtype="float64"))
    grade = xr.zeros_like(mci, dtype="int8")
    for cls in classes[1:]:
        grade = xr.where(mci <= cls["upper"], np.int8(cls["grade"]), grade)
    grade = grade.astype("int8")
    if isinstance(mci.data, np.ndarray):  # lazy input: not counted (would compute)
        missing = int(np.isnan(mci.values).sum())
        if missing:
            log.info("drought_grade: %d missing MCI value(s) graded 0 (none)", missing)
    grade.name = "drought_grade"
    grade.attrs = {
        "long_name": "meteorological drought grade from the MCI",
        "long_name_zh": "气象干旱等级",
        "units": "1",
        "flag_values": np.arange(len(classes), dtype="int8"),
        "flag_meanings": " ".join(str(c["name"]) for c in classes),
        "flag_meanings_zh": " ".join(str(c.get("name_zh", c["name"])) for c in classes),
        "references": cfg["grades"]["source"],
        "comment": "missing MCI graded 0 (none)",
    }
    return grade


def drought_level(
    mci_week: xr.DataArray | float | np.ndarray,
    *,
    config: dict[str, Any] | str | os.PathLike | None = None,
) -> int:
    """National drought signal level from the MCI of the coming week.

    Parameters
    ----------
    mci_week : xarray.DataArray or array-like
        MCI of the days to judge (e.g. the 7 forecast days, for one town or cell). The worst
        value anywhere in the array counts: reduce space beforehand if needed.
    config : dict or path, optional

    Returns
    -------
    int
        3 (orange) when severe drought (重旱, MCI <= -1.5) is reached, 4 (red) for extreme
        drought (特旱, MCI <= -2.0), else 0 (the national table has no blue or yellow
        drought signal). The crop-damage criteria are not evaluated here.
    """
    cfg = _resolve_config(config)
    grades = drought_grade(mci_week, config=cfg)
    worst = int(grades.max()) if grades.size else 0
    level = 0
    for row in cfg["signal"]["levels"]:
        if worst >= row["grade"]:
            level = max(level, int(row["level"]))
    return level
