"""Small GRIB2 (and GRIB1) files written with ecCodes from its bundled samples, for tests.

:func:`write_gfs_like` writes a GFS-like surface forecast. The weather is fixed and documented
here so that other tests can assert the canonical values it must give, whatever the
accumulation style (GFS buckets or IFS running totals) or ensemble layout:

Grid: 0.5° regular lat/lon, longitudes 108.0 … 111.0 E (7 columns, 0–360 convention: the
first longitude can be moved with ``lon_first``, e.g. 250.0 for a western-hemisphere grid),
latitudes 40.5 … 38.5 N (5 rows) stored **north to south** (``jScansPositively=0``, as GFS).
Reference time 2026-07-10 00:00 UTC (:data:`REFERENCE`); steps 0, 3, …, 24 h
(:data:`STEPS`). ``lat``/``lon`` below are the cell's coordinates, ``h`` the step in hours and
``m`` the ensemble member (0 for deterministic files).

======  ==========================  ============  =======================================
name    GRIB (typeOfLevel, level)   units         value at step h
======  ==========================  ============  =======================================
2t      heightAboveGround 2         K             293.15 + 0.25 h + (lat − 38.5) + m
tmax    heightAboveGround 2, max    K             2t at h (max over (h − 3, h]); h ≥ 3
tmin    heightAboveGround 2, min    K             2t at h − 3 (min over (h − 3, h]); h ≥ 3
10u     heightAboveGround 10        m s-1         3.0 + 0.5 (lon − lon_first)
10v     heightAboveGround 10        m s-1         4.0
gust    surface                     m s-1         10.0 + 0.5 h
prmsl   meanSea                     Pa            100000 + 10 h
tp      surface, accumulation       kg m-2        see below
t       isobaricInhPa 850           K             280.0 (upper air: a reader must skip it)
======  ==========================  ============  =======================================

Precipitation rate (:func:`precip_rate`), times (1 + m/2) for member m:

* 2 mm/h from h = 6 to h = 12 in the "rain box" ``lat ≥ 39.5 and lon ≤ lon_first + 1.5``
  (3 rows × 4 columns);
* 1 mm/h from h = 15 to h = 21 everywhere.

So the amount over each 3-h step ending at h = 3, 6, 9, 12, 15, 18, 21, 24 is
0, 0, 6, 6, 0, 3, 3, 0 mm in the rain box and 0, 0, 0, 0, 0, 3, 3, 0 mm elsewhere (member 0).

``buckets="6h"`` (GFS): ``tp`` at steps 3, 6, 9, … covers 0–3, 0–6, 6–9, 6–12, 12–15, …
(the bucket resets every 6 h; no ``tp`` at step 0). ``buckets="running"`` (IFS): ``tp`` at
every step including 0 covers 0–h. ``buckets="3h"``: each step covers (h − 3, h].
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyproj  # noqa: F401  (before eccodes: see cityops.ingest.grib)

import cityops.ingest.grib  # noqa: F401  (imports pyproj before ecCodes as well)

REFERENCE = pd.Timestamp("2026-07-10T00:00")
STEPS = tuple(range(0, 25, 3))
LAT_FIRST, LAT_LAST, DLAT = 40.5, 38.5, 0.5
NLON = 7
DLON = 0.5


def grid(lon_first: float = 108.0) -> tuple[np.ndarray, np.ndarray]:
    """Latitudes (descending, as stored) and longitudes of the fixture grid."""
    lats = np.arange(LAT_FIRST, LAT_LAST - DLAT / 2, -DLAT)
    lons = lon_first + DLON * np.arange(NLON)
    return lats, lons


def precip_rate(h0: float, h1: float, lat: np.ndarray, lon: np.ndarray, lon_first: float):
    """Precipitation (mm = kg m-2) falling between hours h0 and h1, member 0, on the 2-D
    ``lat``/``lon`` arrays."""
    box = (lat >= 39.5) & (lon <= lon_first + 1.5)

    def overlap(a, b):
        return max(0.0, min(h1, b) - max(h0, a))

    return 2.0 * overlap(6, 12) * box + 1.0 * overlap(15, 21) * np.ones_like(lat)


def _codes():
    import eccodes

    return eccodes


def write_message(
    fh,
    *,
    params: dict,
    type_of_level: str,
    level: int,
    values: np.ndarray,
    lon_first: float,
    step: int,
    start: int | None = None,
    stat: int | None = None,
    number: int | None = None,
    members: int = 1,
    edition: int = 2,
    reference: pd.Timestamp = REFERENCE,
) -> None:
    """Append one message on the fixture grid to the open binary file ``fh``.

    ``params`` are ecCodes keys naming the parameter (GRIB2: discipline, parameterCategory,
    parameterNumber; GRIB1: table2Version, indicatorOfParameter); ``start`` makes it a
    statistic over ``start``–``step`` hours (``stat``: GRIB2 typeOfStatisticalProcessing, 1
    accumulation, 2 maximum, 3 minimum; GRIB1 is always an accumulation).
    """
    codes = _codes()
    if edition == 1:
        h = codes.codes_grib_new_from_samples("GRIB1")
    else:
        h = codes.codes_grib_new_from_samples("GRIB2")
    try:
        codes.codes_set(h, "centre", "kwbc")
        codes.codes_set(h, "dataDate", int(reference.strftime("%Y%m%d")))
        codes.codes_set(h, "dataTime", int(reference.strftime("%H%M")))
        if edition == 2:
            pdt = (
                (11 if number is not None else 8)
                if stat is not None
                else (1 if number is not None else 0)
            )
            codes.codes_set(h, "productDefinitionTemplateNumber", pdt)
        codes.codes_set(h, "typeOfLevel", type_of_level)
        codes.codes_set(h, "level", level)
        if stat is not None and edition == 2:
            codes.codes_set(h, "typeOfStatisticalProcessing", stat)
        for key, value in params.items():
            codes.codes_set(h, key, value)
        if number is not None:
            codes.codes_set(h, "typeOfEnsembleForecast", 1 if number == 0 else 3)
            codes.codes_set(h, "perturbationNumber", number)
            codes.codes_set(h, "numberOfForecastsInEnsemble", members)
        codes.codes_set(h, "stepUnits", 1)
        if start is not None:
            if edition == 1:
                codes.codes_set(h, "timeRangeIndicator", 4)
            codes.codes_set(h, "stepRange", f"{start}-{step}")
        else:
            codes.codes_set(h, "step", step)
        codes.codes_set_key_vals(
            h,
            {
                "Ni": NLON,
                "Nj": len(grid()[0]),
                "latitudeOfFirstGridPointInDegrees": LAT_FIRST,
                "latitudeOfLastGridPointInDegrees": LAT_LAST,
                "longitudeOfFirstGridPointInDegrees": lon_first,
                "longitudeOfLastGridPointInDegrees": lon_first + DLON * (NLON - 1),
                "iDirectionIncrementInDegrees": DLON,
                "jDirectionIncrementInDegrees": DLAT,
                "jScansPositively": 0,
                "iScansNegatively": 0,
            },
        )
        codes.codes_set(h, "bitsPerValue", 24)
        codes.codes_set_values(h, np.asarray(values, dtype=float).ravel())
        codes.codes_write(h, fh)
    finally:
        codes.codes_release(h)


_T2M = {"discipline": 0, "parameterCategory": 0, "parameterNumber": 0}
_TMAX = {"discipline": 0, "parameterCategory": 0, "parameterNumber": 4}
_TMIN = {"discipline": 0, "parameterCategory": 0, "parameterNumber": 5}
_U10 = {"discipline": 0, "parameterCategory": 2, "parameterNumber": 2}
_V10 = {"discipline": 0, "parameterCategory": 2, "parameterNumber": 3}
_GUST = {"discipline": 0, "parameterCategory": 2, "parameterNumber": 22}
_PRMSL = {"discipline": 0, "parameterCategory": 3, "parameterNumber": 1}
_TP = {"discipline": 0, "parameterCategory": 1, "parameterNumber": 8}
_OROG = {"discipline": 0, "parameterCategory": 3, "parameterNumber": 5}


def bucket_start(h: int, buckets: str) -> int:
    """Start hour of the ``tp`` accumulation ending at step ``h``."""
    if buckets == "running":
        return 0
    if buckets == "3h":
        return h - 3
    if buckets == "6h":
        return (h - 1) // 6 * 6
    raise ValueError(f"buckets must be '6h', '3h' or 'running', not {buckets!r}")


def write_gfs_like(
    path: str | Path,
    *,
    buckets: str = "6h",
    members: int | None = None,
    steps: Iterable[int] = STEPS,
    lon_first: float = 108.0,
    tmax_tmin: bool = True,
    upper_air: bool = True,
    surface: bool = True,
    orography: bool = False,
    reference: pd.Timestamp = REFERENCE,
) -> Path:
    """Write the documented GFS-like forecast (module docstring) and return its path.

    Parameters
    ----------
    buckets : {"6h", "running", "3h"}
        Accumulation periods of ``tp``: GFS 6-h buckets, IFS running totals since the start,
        or plain 3-h intervals (for 3-hourly steps).
    members : int, optional
        Ensemble size: ``number`` (perturbationNumber) 0 … members − 1; ``None`` writes a
        deterministic forecast.
    steps : iterable of int
        Steps in hours (3-hourly from 0 by default; a single step gives a one-step file).
    lon_first : float
        First longitude (0–360).
    tmax_tmin, upper_air, surface : bool
        Write ``tmax``/``tmin``, the 850 hPa temperature, and the surface fields.
    orography : bool
        Also write ``orog`` (surface, 1300 m) at the first step only, as GFS does at f000: a
        variable whose steps differ from the other surface fields.
    reference : pandas.Timestamp
        Reference (initial) time, UTC.
    """
    path = Path(path)
    bucket_start(3, buckets)  # validate
    lats, lons = grid(lon_first)
    lat2, lon2 = np.meshgrid(lats, lons, indexing="ij")
    numbers = [None] if members is None else list(range(members))
    steps = list(steps)
    with path.open("wb") as fh:
        for h in steps:
            for number in numbers:
                m = number or 0
                common = {
                    "lon_first": lon_first,
                    "step": h,
                    "number": number,
                    "members": members or 1,
                    "reference": reference,
                }
                if surface:
                    t2m = 293.15 + 0.25 * h + (lat2 - 38.5) + m
                    write_message(
                        fh,
                        params=_T2M,
                        type_of_level="heightAboveGround",
                        level=2,
                        values=t2m,
                        **common,
                    )
                    if tmax_tmin and h >= 3:
                        write_message(
                            fh,
                            params=_TMAX,
                            type_of_level="heightAboveGround",
                            level=2,
                            values=t2m,
                            start=h - 3,
                            stat=2,
                            **common,
                        )
                        write_message(
                            fh,
                            params=_TMIN,
                            type_of_level="heightAboveGround",
                            level=2,
                            values=t2m - 0.75,
                            start=h - 3,
                            stat=3,
                            **common,
                        )
                    write_message(
                        fh,
                        params=_U10,
                        type_of_level="heightAboveGround",
                        level=10,
                        values=3.0 + 0.5 * (lon2 - lon_first),
                        **common,
                    )
                    write_message(
                        fh,
                        params=_V10,
                        type_of_level="heightAboveGround",
                        level=10,
                        values=np.full_like(lat2, 4.0),
                        **common,
                    )
                    write_message(
                        fh,
                        params=_GUST,
                        type_of_level="surface",
                        level=0,
                        values=np.full_like(lat2, 10.0 + 0.5 * h),
                        **common,
                    )
                    write_message(
                        fh,
                        params=_PRMSL,
                        type_of_level="meanSea",
                        level=0,
                        values=np.full_like(lat2, 100000.0 + 10.0 * h),
                        **common,
                    )
                    if h > 0 or buckets == "running":
                        start = bucket_start(h, buckets) if h > 0 else 0
                        amount = precip_rate(start, h, lat2, lon2, lon_first) * (1 + m / 2)
                        write_message(
                            fh,
                            params=_TP,
                            type_of_level="surface",
                            level=0,
                            values=amount,
                            start=start,
                            stat=1,
                            **common,
                        )
                if orography and h == steps[0]:
                    write_message(
                        fh,
                        params=_OROG,
                        type_of_level="surface",
                        level=0,
                        values=np.full_like(lat2, 1300.0),
                        **common,
                    )
                if upper_air:
                    write_message(
                        fh,
                        params=_T2M,
                        type_of_level="isobaricInhPa",
                        level=850,
                        values=np.full_like(lat2, 280.0),
                        **common,
                    )
    return path


def write_grib1(path: str | Path, *, steps: Iterable[int] = (0, 6, 12)) -> Path:
    """A GRIB1 file with ``2t`` (as :func:`write_gfs_like`) and 6-h ``tp`` buckets."""
    path = Path(path)
    lats, lons = grid()
    lat2, lon2 = np.meshgrid(lats, lons, indexing="ij")
    with path.open("wb") as fh:
        for h in steps:
            common = {"lon_first": 108.0, "step": h, "edition": 1}
            write_message(
                fh,
                params={"table2Version": 2, "indicatorOfParameter": 11},
                type_of_level="heightAboveGround",
                level=2,
                values=293.15 + 0.25 * h + (lat2 - 38.5),
                **common,
            )
            if h > 0:
                start = bucket_start(h, "6h")
                write_message(
                    fh,
                    params={"table2Version": 2, "indicatorOfParameter": 61},
                    type_of_level="surface",
                    level=0,
                    values=precip_rate(start, h, lat2, lon2, 108.0),
                    start=start,
                    **common,
                )
    return path
