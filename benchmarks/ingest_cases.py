"""Ingest benchmark (issue 17): a realistic county download, its floors and ``assess`` on it.

The download is what a county bureau fetches from ECMWF (or CMA): a deterministic run at
0.125° over China (73–135 E, 18–54 N: 497 × 289 points, latitudes north to south as ECMWF
stores them), 72 hourly steps, 6 surface variables, written with ecCodes as GRIB2 (16 bits
per value, simple packing, as ECMWF disseminates):

=======  ==========  =========================  =======  ===================================
short    paramId     typeOfLevel, level         step     what
=======  ==========  =========================  =======  ===================================
tp       228         surface                    0-h      total precipitation since the start (m)
2t       167         heightAboveGround 2        h        2 m temperature (K)
10u/10v  165/166     heightAboveGround 10       h        10 m wind components (m s-1)
10fg     49          heightAboveGround 10       (h-1)-h  10 m gust, maximum over the hour
vis      3020        surface                    h        visibility (m)
=======  ==========  =========================  =======  ===================================

The same values are written as NetCDF-4 (float32, contiguous, CDS-style names ``tp``,
``t2m``, ``u10``, ``v10``, ``fg10``, ``vis``; ``tp`` a running total per the ECMWF
convention of ``aliases.yaml``).

Each case runs in its own process (``python benchmarks/ingest_cases.py CASE PATH``) and
prints one JSON line: the least wall time of :data:`REPEATS` runs after one warm-up (the
file in the page cache in both the floor and the measured case) and the peak resident memory
(``ru_maxrss``) of the process. Files are built once and kept in :data:`CACHE`.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

#: The cityops checkout measured (``CITYOPS_BENCH_ROOT`` measures another one, e.g. the code
#: before a change, against the same files and floors).
ROOT = Path(os.environ.get("CITYOPS_BENCH_ROOT") or Path(__file__).resolve().parents[1])
#: Where the built files are kept between runs (rebuilt when :data:`VERSION` changes).
CACHE = Path("/tmp/cityops-bench-ingest")
VERSION = "1"
REFERENCE = pd.Timestamp("2026-07-10T00:00")
LON0, LON1, LAT0, LAT1, STEP = 73.0, 135.0, 18.0, 54.0, 0.125
HOURS = tuple(range(1, 73))
#: 16 bits per value: ECMWF's dissemination packing for surface fields.
BITS_PER_VALUE = 16
REPEATS = 3
#: The NetCDF floor reads the banner's box plus the margin ``open_forecast`` uses (degrees).
MARGIN = 0.3
#: The variables a county download holds: (shortName, paramId, typeOfLevel, level,
#: productDefinitionTemplateNumber, NetCDF name).
VARIABLES = (
    ("tp", 228, "surface", 0, 8, "tp"),
    ("2t", 167, "heightAboveGround", 2, 0, "t2m"),
    ("10u", 165, "heightAboveGround", 10, 0, "u10"),
    ("10v", 166, "heightAboveGround", 10, 0, "v10"),
    ("10fg", 49, "heightAboveGround", 10, 8, "fg10"),
    ("vis", 3020, "surface", 0, 0, "vis"),
)
_NC_ATTRS = {
    "tp": {"units": "m", "long_name": "Total precipitation"},
    "t2m": {"units": "K", "long_name": "2 metre temperature", "standard_name": "air_temperature"},
    "u10": {"units": "m s**-1", "long_name": "10 metre U wind component"},
    "v10": {"units": "m s**-1", "long_name": "10 metre V wind component"},
    "fg10": {"units": "m s**-1", "long_name": "10 metre wind gust since previous post-processing"},
    "vis": {"units": "m", "long_name": "Visibility"},
}


def _eccodes():
    """ecCodes, imported after pyproj (the import-order crash in cityops.ingest.grib)."""
    import importlib

    import pyproj  # noqa: F401

    return importlib.import_module("eccodes")


def grid() -> tuple[np.ndarray, np.ndarray]:
    """Latitudes (north to south) and longitudes of the download."""
    lats = np.linspace(LAT1, LAT0, round((LAT1 - LAT0) / STEP) + 1)
    lons = np.linspace(LON0, LON1, round((LON1 - LON0) / STEP) + 1)
    return lats, lons


def fields(h: int, lat2: np.ndarray, lon2: np.ndarray, rain_total: np.ndarray) -> dict:
    """The six fields at step ``h`` (``rain_total`` is updated in place, in mm)."""
    phase = 2 * np.pi * h / 24
    # A storm crossing the Ordos plateau west to east, 0-6 mm/h, plus light rain in the south.
    cx = 105.0 + 0.12 * h
    storm = 6.0 * np.exp(-(((lon2 - cx) / 1.5) ** 2 + ((lat2 - 39.5) / 1.0) ** 2))
    rain_total += storm + 0.3 * (lat2 < 30)
    t2m = 288.0 + 12.0 * np.cos(np.deg2rad(lat2)) + 6.0 * np.sin(phase - lon2 / 15)
    u10 = 3.0 + 4.0 * np.sin(np.deg2rad(lat2 * 3) + phase)
    v10 = 2.0 * np.cos(np.deg2rad(lon2 * 2) - phase)
    gust = 1.6 * np.hypot(u10, v10) + 2.0 + storm
    vis = np.clip(25000.0 - 3500.0 * storm - 2000.0 * np.cos(phase), 150.0, None)
    return {
        "tp": rain_total / 1000.0,
        "t2m": t2m,
        "u10": u10,
        "v10": v10,
        "fg10": gust,
        "vis": vis,
    }


def build(folder: Path = CACHE) -> dict[str, Path]:
    """The GRIB2 and NetCDF files of the download (built once, kept in ``folder``)."""
    import netCDF4

    eccodes = _eccodes()
    folder.mkdir(parents=True, exist_ok=True)
    grib, nc = folder / f"county-v{VERSION}.grib2", folder / f"county-v{VERSION}.nc"
    if grib.exists() and nc.exists():
        return {"grib": grib, "netcdf": nc}
    lats, lons = grid()
    lat2, lon2 = np.meshgrid(lats, lons, indexing="ij")
    sample = eccodes.codes_grib_new_from_samples("GRIB2")
    eccodes.codes_set(sample, "centre", "ecmf")
    eccodes.codes_set(sample, "dataDate", int(REFERENCE.strftime("%Y%m%d")))
    eccodes.codes_set(sample, "dataTime", int(REFERENCE.strftime("%H%M")))
    eccodes.codes_set_key_vals(
        sample,
        {
            "Ni": lons.size,
            "Nj": lats.size,
            "latitudeOfFirstGridPointInDegrees": LAT1,
            "latitudeOfLastGridPointInDegrees": LAT0,
            "longitudeOfFirstGridPointInDegrees": LON0,
            "longitudeOfLastGridPointInDegrees": LON1,
            "iDirectionIncrementInDegrees": STEP,
            "jDirectionIncrementInDegrees": STEP,
            "jScansPositively": 0,
            "iScansNegatively": 0,
        },
    )
    templates = {}
    for short, pid, tol, level, pdt, name in VARIABLES:
        h = eccodes.codes_clone(sample)
        eccodes.codes_set(h, "productDefinitionTemplateNumber", pdt)
        eccodes.codes_set(h, "paramId", pid)
        eccodes.codes_set(h, "typeOfLevel", tol)
        eccodes.codes_set(h, "level", level)
        eccodes.codes_set(h, "stepUnits", 1)
        eccodes.codes_set(h, "bitsPerValue", BITS_PER_VALUE)
        templates[name] = (short, h)
    tmp_grib, tmp_nc = grib.with_suffix(".part"), nc.with_suffix(".ncpart")
    ds = netCDF4.Dataset(tmp_nc, "w", format="NETCDF4")
    ds.createDimension("time", len(HOURS))
    ds.createDimension("latitude", lats.size)
    ds.createDimension("longitude", lons.size)
    t = ds.createVariable("time", "i4", ("time",))
    t.units = f"hours since {REFERENCE:%Y-%m-%d %H:%M:%S}"
    t.standard_name = "time"
    t[:] = np.array(HOURS)
    for name, values, units in (("latitude", lats, "degrees_north"),
                                ("longitude", lons, "degrees_east")):  # fmt: skip
        v = ds.createVariable(name, "f8", (name,))
        v.units = units
        v[:] = values
    ds.institution = "European Centre for Medium-Range Weather Forecasts"
    ds.forecast_reference_time = REFERENCE.strftime("%Y-%m-%dT%H:%M:%SZ")
    ncvars = {}
    for name, attrs in _NC_ATTRS.items():
        v = ds.createVariable(name, "f4", ("time", "latitude", "longitude"))
        v.setncatts(attrs)
        ncvars[name] = v
    rain = np.zeros_like(lat2)
    with tmp_grib.open("wb") as fh:
        for i, h in enumerate(HOURS):
            values = fields(h, lat2, lon2, rain)
            for name, (short, tmpl) in templates.items():
                m = eccodes.codes_clone(tmpl)
                if short == "tp":
                    eccodes.codes_set(m, "stepRange", f"0-{h}")
                elif short == "10fg":
                    eccodes.codes_set(m, "stepRange", f"{h - 1}-{h}")
                else:
                    eccodes.codes_set(m, "step", h)
                eccodes.codes_set_values(m, values[name].ravel())
                eccodes.codes_write(m, fh)
                eccodes.codes_release(m)
                ncvars[name][i] = values[name].astype("f4")
    ds.close()
    for _, tmpl in templates.values():
        eccodes.codes_release(tmpl)
    eccodes.codes_release(sample)
    tmp_grib.rename(grib)
    tmp_nc.rename(nc)
    return {"grib": grib, "netcdf": nc}


def _box() -> tuple[float, float, float, float]:
    from cityops.geo.jurisdiction import load_jurisdiction

    return load_jurisdiction("ejin-horo").bounds


def grib_floor(path: Path) -> None:
    """One ecCodes pass: every message's header, the needed ones decoded, the banner's box
    (plus margin) cut out by index slicing."""
    eccodes = _eccodes()
    lon0, lat0, lon1, lat1 = _box()
    lats, lons = grid()
    rows = np.flatnonzero((lats >= lat0 - MARGIN) & (lats <= lat1 + MARGIN))
    cols = np.flatnonzero((lons >= lon0 - MARGIN) & (lons <= lon1 + MARGIN))
    rs, cs = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
    needed = {v[0] for v in VARIABLES}
    out = []
    with path.open("rb") as fh:
        while (h := eccodes.codes_grib_new_from_file(fh)) is not None:
            try:
                if eccodes.codes_get(h, "shortName") in needed:
                    ni, nj = eccodes.codes_get(h, "Ni"), eccodes.codes_get(h, "Nj")
                    out.append(eccodes.codes_get_values(h).reshape(nj, ni)[rs, cs].copy())
            finally:
                eccodes.codes_release(h)
    assert len(out) == len(HOURS) * len(VARIABLES)


def netcdf_floor(path: Path) -> None:
    """An xarray slice read of the banner's box (plus margin) from the NetCDF file."""
    import xarray as xr

    lon0, lat0, lon1, lat1 = _box()
    with xr.open_dataset(path, engine="netcdf4") as ds:
        box = ds.sel(
            latitude=slice(lat1 + MARGIN, lat0 - MARGIN),
            longitude=slice(lon0 - MARGIN, lon1 + MARGIN),
        ).load()
    assert box["tp"].shape[1] > 1


def ingest_file(path: Path) -> None:
    """``cityops.ingest.open_forecast`` cropped to the banner, values read (``.load()``): the
    ingest part of ``assess``."""
    from cityops.ingest import open_forecast

    open_forecast(path, bounds=_box()).load()


def assess_file(path: Path) -> None:
    """``cityops.pipeline.assess`` on the file (the Ejin Horo banner, national rules)."""
    from cityops.pipeline import assess

    assess(path)


CASES = {
    "grib-floor": grib_floor,
    "netcdf-floor": netcdf_floor,
    "ingest": ingest_file,
    "assess": assess_file,
}


def main(argv: list[str]) -> int:
    if argv[0] == "build":
        print(json.dumps({k: str(v) for k, v in build().items()}))
        return 0
    sys.path.insert(0, str(ROOT))
    run, path = CASES[argv[0]], Path(argv[1])
    run(path)  # warm-up: imports, caches, page cache
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        run(path)
        times.append(time.perf_counter() - t0)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    print(json.dumps({"seconds": min(times), "peak_rss_mb": rss / 2**20}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
