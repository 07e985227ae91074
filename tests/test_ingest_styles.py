"""The same weather in the shapes real sources use gives identical canonical values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from cityops.errors import InputError
from cityops.ingest import open_forecast
from cityops.ingest.canonical import deaccumulate
from tests.conftest import SHARED

ISSUED = pd.Timestamp("2026-07-10T00:00")
HOURS = 12
LAT = np.arange(38.5, 40.51, 0.25)
LON = np.arange(108.5, 111.01, 0.25)
BOUNDS = (109.004, 38.918, 110.424, 39.801)  # Ejin Horo Banner


def weather():
    """Hourly rain (mm, over the hour ending at each time) and 2 m temperature (°C)."""
    t = np.arange(1, HOURS + 1)[:, None, None]
    lat2, lon2 = np.meshgrid(LAT, LON, indexing="ij")
    core = np.exp(-((lon2 - 109.75) ** 2 + (lat2 - 39.58) ** 2) / 0.1)
    rain = (np.where((t >= 4) & (t <= 8), 12.0, 0.5) * core).astype("float64")
    temp = (22.0 + 6 * np.sin(np.pi * t / 12) + 0 * lat2).astype("float64")
    return rain, temp


def canonical_reference():
    rain, temp = weather()
    return rain, temp


def era5_like(path):
    """ERA5 from the CDS: valid_time dimension, latitudes descending, 0-360 longitudes,
    tp in metres over the hour ending at the valid time, t2m in K, no reference time."""
    rain, temp = weather()
    times = ISSUED + pd.to_timedelta(np.arange(1, HOURS + 1), unit="h")
    ds = xr.Dataset(
        {
            "tp": (("valid_time", "latitude", "longitude"), rain[:, ::-1] / 1000, {"units": "m"}),
            "t2m": (
                ("valid_time", "latitude", "longitude"),
                temp[:, ::-1] + 273.15,
                {"units": "K"},
            ),
        },
        coords={
            "valid_time": times,
            "latitude": LAT[::-1],
            "longitude": LON % 360,
            "number": 0,
            "expver": ("valid_time", ["0001"] * HOURS),
        },
        attrs={
            "Conventions": "CF-1.7",
            "institution": "European Centre for Medium-Range Weather Forecasts",
        },
    )
    ds.to_netcdf(path)
    return path


def ifs_like(path, *, members: int | None = None):
    """ECMWF IFS (cfgrib-style NetCDF): reference time + step, tp running total in m, and the
    centre attributes cfgrib writes (the ECMWF convention "tp accumulated since the start"
    is known by them, never guessed from rising values)."""
    rain, temp = weather()
    running = np.cumsum(rain, axis=0) / 1000
    dims = ("step", "latitude", "longitude")
    data = {"tp": (dims, running, {"units": "m"}), "t2m": (dims, temp + 273.15, {"units": "K"})}
    coords = {
        "time": ISSUED,
        "step": pd.to_timedelta(np.arange(1, HOURS + 1), unit="h"),
        "latitude": LAT,
        "longitude": LON,
    }
    ds = xr.Dataset(
        data,
        coords=coords,
        attrs={
            "GRIB_centre": "ecmf",
            "institution": "European Centre for Medium-Range Weather Forecasts",
        },
    )
    if members:
        ds = xr.concat([ds] * members, dim=pd.Index(range(members), name="number"))
    ds.to_netcdf(path)
    return path


def assert_same_weather(ds, *, member=None):
    rain, temp = canonical_reference()
    sub = ds.sel(lat=slice(38.5, 40.5), lon=slice(108.5, 111.0))
    if member is not None:
        sub = sub.isel(member=member)
    ilat = np.searchsorted(LAT, sub["lat"].values)
    ilon = np.searchsorted(LON, sub["lon"].values)
    np.testing.assert_allclose(sub["precip"].values, rain[:, ilat][:, :, ilon], atol=1e-4)
    np.testing.assert_allclose(sub["t2m"].values, temp[:, ilat][:, :, ilon], atol=1e-4)
    assert ds["precip"].attrs["units"] == "mm" and ds["t2m"].attrs["units"] == "degC"
    assert ds.attrs["issued"] == "2026-07-10T00:00:00Z"
    assert pd.Timestamp(ds["step_start"].values[0]) == ISSUED


def test_era5_like_interval_amounts(tmp_path):
    ds = open_forecast(era5_like(tmp_path / "era5.nc"), bounds=BOUNDS)
    assert_same_weather(ds)
    assert ds["lat"].values[0] < ds["lat"].values[-1]  # ascending after crop
    assert float(ds["lon"].min()) >= 108 and float(ds["lon"].max()) <= 111.1
    assert "no forecast reference time" in ds.attrs["history"]
    assert "tp: interval" in ds.attrs["history"]


def test_ifs_like_running_totals_are_differenced(tmp_path):
    ds = open_forecast(ifs_like(tmp_path / "ifs.nc"), bounds=BOUNDS)
    assert_same_weather(ds)
    assert "running totals differenced" in ds.attrs["history"]


def test_one_file_per_lead_time(tmp_path):
    whole = xr.open_dataset(ifs_like(tmp_path / "ifs.nc"))
    paths = []
    for i in range(HOURS):
        p = tmp_path / f"lead_{i + 1:03d}.nc"
        whole.isel(step=i).to_netcdf(p)  # scalar step, as cfgrib gives for one message
        paths.append(p)
    ds = open_forecast(str(tmp_path / "lead_*.nc"), bounds=BOUNDS)
    assert ds.sizes["time"] == HOURS
    assert_same_weather(ds)


def test_ensemble_number_becomes_member(tmp_path):
    ds = open_forecast(ifs_like(tmp_path / "ens.nc", members=3), bounds=BOUNDS)
    assert ds.sizes["member"] == 3
    assert_same_weather(ds, member=2)


def test_crop_happens_before_loading_and_global_grid(tmp_path):
    lat = np.arange(-90, 90.1, 1.0)
    lon = np.arange(0, 360, 1.0)
    times = ISSUED + pd.to_timedelta([6, 12], unit="h")
    ds = xr.Dataset(
        {"t2m": (("time", "lat", "lon"), np.full((2, lat.size, lon.size), 290.0), {"units": "K"})},
        coords={"time": times, "lat": lat, "lon": lon},
        attrs={"issued": "2026-07-10T00:00:00Z"},
    )
    ds.to_netcdf(tmp_path / "global.nc")
    out = open_forecast(tmp_path / "global.nc", bounds=BOUNDS)
    assert out.sizes["lat"] < 10 and out.sizes["lon"] < 10
    assert float(out["lon"].min()) < 109.004 and float(out["lon"].max()) > 110.424
    np.testing.assert_allclose(out["t2m"].values, 16.85, atol=1e-4)


def test_rate_in_mm_per_hour_becomes_amount(tmp_path):
    rain, _ = weather()
    times = ISSUED + pd.to_timedelta(np.arange(1, HOURS + 1), unit="h")
    ds = xr.Dataset(
        {"crain": (("time", "lat", "lon"), rain, {"units": "mm h-1"})},
        coords={"time": times, "lat": LAT, "lon": LON},
    )
    ds.to_netcdf(tmp_path / "cmpa.nc")
    out = open_forecast(tmp_path / "cmpa.nc", bounds=BOUNDS)
    i, j = np.searchsorted(LAT, out["lat"].values[0]), np.searchsorted(LON, out["lon"].values[0])
    np.testing.assert_allclose(out["precip"].values[:, 0, 0], rain[:, i, j], atol=1e-5)


def test_user_mapping_adds_names_and_units(tmp_path):
    _, temp = weather()
    times = ISSUED + pd.to_timedelta(np.arange(1, HOURS + 1), unit="h")
    ds = xr.Dataset(
        {"temp2m": (("time", "lat", "lon"), temp)},  # no units in the file
        coords={"time": times, "lat": LAT, "lon": LON},
        attrs={"issued": "2026-07-10T00:00:00Z"},
    )
    ds.to_netcdf(tmp_path / "custom.nc")
    with pytest.raises(InputError, match="no usable variable"):
        open_forecast(tmp_path / "custom.nc", bounds=BOUNDS)
    mapping = tmp_path / "map.yaml"
    mapping.write_text("variables:\n  temp2m: {name: t2m, units: degC}\n", encoding="utf-8")
    out = open_forecast(tmp_path / "custom.nc", bounds=BOUNDS, mapping=mapping)
    assert out["t2m"].attrs["units"] == "degC"
    assert "units degC from the user mapping" in out.attrs["history"]


def test_snow_on_the_ground_is_never_snowfall(tmp_path):
    times = ISSUED + pd.to_timedelta(np.arange(1, 4), unit="h")
    ds = xr.Dataset(
        {
            "sd": (("time", "lat", "lon"), np.full((3, LAT.size, LON.size), 0.05), {"units": "m"}),
            "t2m": (
                ("time", "lat", "lon"),
                np.full((3, LAT.size, LON.size), 270.0),
                {"units": "K"},
            ),
        },
        coords={"time": times, "lat": LAT, "lon": LON},
        attrs={"issued": "2026-07-10T00:00:00Z"},
    )
    ds.to_netcdf(tmp_path / "snow.nc")
    out = open_forecast(tmp_path / "snow.nc", bounds=BOUNDS)
    assert "snowfall" not in out and "t2m" in out


def test_grid_not_covering_is_refused(tmp_path):
    times = ISSUED + pd.to_timedelta([1, 2], unit="h")
    ds = xr.Dataset(
        {"t2m": (("time", "lat", "lon"), np.zeros((2, 3, 3)), {"units": "degC"})},
        coords={"time": times, "lat": [30.0, 30.1, 30.2], "lon": [100.0, 100.1, 100.2]},
        attrs={"issued": "2026-07-10T00:00:00Z"},
    )
    ds.to_netcdf(tmp_path / "elsewhere.nc")
    with pytest.raises(InputError, match=r"elsewhere\.nc.*does not cover"):
        open_forecast(tmp_path / "elsewhere.nc", bounds=BOUNDS)


def test_deaccumulate_clips_negative_noise():
    times = ISSUED + pd.to_timedelta([1, 2, 3, 4], unit="h")
    da = xr.DataArray([1.0, 3.0, 2.9999, 5.0], dims="time", coords={"time": times},
                      attrs={"units": "mm"})  # fmt: skip
    out, label = deaccumulate(da, kind="running", issued=ISSUED)
    np.testing.assert_allclose(out.values, [1.0, 2.0, 0.0, 2.0001], atol=1e-9)
    assert "1 negatives set to 0" in label


def test_gfs_style_buckets_from_accumulation_starts():
    # 6 h buckets: 0-3, 0-6, 6-9, 6-12 h totals.
    times = ISSUED + pd.to_timedelta([3, 6, 9, 12], unit="h")
    da = xr.DataArray([3.0, 5.0, 4.0, 10.0], dims="time", coords={"time": times},
                      attrs={"units": "mm", "accumulation_start": [0, 0, 6, 6]})  # fmt: skip
    out, label = deaccumulate(da, kind="auto", issued=ISSUED)
    np.testing.assert_allclose(out.values, [3.0, 2.0, 4.0, 6.0])
    assert label.startswith("bucket")


real = pytest.mark.skipif(not (SHARED / "realdata").exists(), reason="../shared/realdata absent")


@real
def test_real_cma_ecmwf_interval_file():
    ds = open_forecast(SHARED / "realdata" / "BT18010120.012.nc", bounds=BOUNDS)
    assert ds.attrs["issued"] == "2018-01-01T12:00:00Z"
    assert pd.Timestamp(ds["time"].values[0]) == pd.Timestamp("2018-01-02T00:00")
    # The file holds the 9-12 h amount: its step starts 3 h before the valid time.
    assert pd.Timestamp(ds["step_start"].values[0]) == pd.Timestamp("2018-01-01T21:00")
    assert ds["precip"].attrs["units"] == "mm"
    assert 0 <= float(ds["precip"].min()) and float(ds["precip"].max()) < 50
    assert ds.sizes["lat"] < 20 and ds.sizes["lon"] < 25  # cropped


@real
def test_real_cmpa_hourly_analysis():
    ds = open_forecast(SHARED / "realdata" / "cmpa_china_hourly_precip_20170610.nc", bounds=BOUNDS)
    # 5 hours in the file (00, 01, 02, 09, 11 UTC); the skipped hours are missing steps
    # (issue 15 item 13), not 7 h and 2 h steps.
    assert ds.sizes["time"] == 12 and "precip" in ds
    assert float(ds["precip"].min()) >= 0 and float(ds["precip"].max()) < 100
    assert "crain" in ds.attrs["history"]


def test_projected_grid_with_2d_lat_lon_is_cropped(tmp_path):
    # A rotated 5 km grid: y/x dimensions with 2-D latitude/longitude coordinates (WRF-like).
    y, x = np.meshgrid(np.arange(60), np.arange(80), indexing="ij")
    lat = 38.0 + 0.045 * y + 0.004 * x
    lon = 108.0 + 0.058 * x - 0.005 * y
    times = ISSUED + pd.to_timedelta([1, 2, 3], unit="h")
    ds = xr.Dataset(
        {
            "T2": (
                ("Time", "south_north", "west_east"),
                np.full((3, 60, 80), 300.0),
                {"units": "K", "standard_name": "air_temperature"},
            ),
            "XLAT": (("south_north", "west_east"), lat),
            "XLONG": (("south_north", "west_east"), lon),
        },
        coords={"Time": times},
        attrs={"issued": "2026-07-10T00:00:00Z"},
    ).rename(Time="time")
    ds.to_netcdf(tmp_path / "wrf.nc")
    out = open_forecast(tmp_path / "wrf.nc", bounds=BOUNDS)
    assert out["lat"].dims == ("south_north", "west_east")
    assert out.sizes["south_north"] < 60 and out.sizes["west_east"] < 80
    assert float(out["lat"].min()) <= 38.918 and float(out["lon"].max()) >= 110.424
    np.testing.assert_allclose(out["t2m"].values, 26.85, atol=1e-4)
    assert "standard_name" in out.attrs["history"]
