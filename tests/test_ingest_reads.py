"""Ingest reads only what it needs (issue 17), with results identical to reading everything.

* NetCDF: the crop is a contiguous hyperslab of the file's own grid, found before reading
  (``crop_window``); the canonical dataset equals the one cropped after opening the whole grid.
* GRIB: the one-pass reader (headers once, only the fields used decoded, once each, cut to the
  window as decoded) gives the raw dataset cfgrib gives, and looking concept keys up once per
  parameter definition gives the headers read message by message.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import cityops.ingest as ingest
import cityops.ingest.canonical as canonical
import cityops.ingest.grib as grib
from tests.grib_fixtures import write_gfs_like, write_grib1

REALDATA = pytest.importorskip("tests.conftest").SHARED / "realdata"
BOUNDS = (109.004, 38.918, 110.424, 39.801)  # Ejin Horo banner
real = pytest.mark.skipif(not REALDATA.is_dir(), reason=f"{REALDATA} (real GRIB files) is absent")


def _without_history(ds: xr.Dataset) -> xr.Dataset:
    out = ds.copy()
    out.attrs.pop("history", None)
    return out


# ---------------------------------------------------------------------------------------------
# NetCDF


def _global_grid(path, *, lon_0_360: bool, descending: bool):
    """0.25° t2m on a global grid (latitudes as stored), 4 hourly steps; the value at each
    cell says where it is: 1000 lat + lon (K), so a wrong cut shows in the values."""
    lat = np.arange(-90, 90.01, 0.25)[::-1] if descending else np.arange(-90, 90.01, 0.25)
    lon = np.arange(0, 360, 0.25) if lon_0_360 else np.arange(-180, 180, 0.25)
    time = pd.date_range("2026-07-10T01", periods=4, freq="h")
    where = 1000.0 * lat[:, None] + ((lon + 180) % 360 - 180)[None, :]
    values = np.broadcast_to(200.0 + where / 1000.0, (4, lat.size, lon.size)).astype("f4")
    ds = xr.Dataset(
        {"t2m": (("time", "latitude", "longitude"), values, {"units": "K"})},
        coords={"time": time, "latitude": lat, "longitude": lon},
        attrs={"forecast_reference_time": "2026-07-10T00:00:00Z"},
    )
    ds.to_netcdf(path)
    return path


@pytest.mark.parametrize("lon_0_360", [False, True])
@pytest.mark.parametrize("descending", [False, True])
def test_netcdf_crop_window_is_a_hyperslab_with_the_same_result(
    tmp_path, monkeypatch, lon_0_360, descending
):
    path = _global_grid(tmp_path / "g.nc", lon_0_360=lon_0_360, descending=descending)
    with xr.open_dataset(path) as raw:
        window = canonical.crop_window(raw, BOUNDS)
        cut = raw.isel(window)
    # Contiguous on disk: one slice per axis (the banner is far from the 0/360 seam).
    assert all(isinstance(v, slice) for v in window.values())
    # The cut covers the banner plus the margin, and not much more: a few dozen cells.
    assert cut.sizes["latitude"] * cut.sizes["longitude"] < 20 * 20
    windowed = ingest.open_forecast(path, bounds=BOUNDS)
    monkeypatch.setattr(ingest, "crop_window", lambda *a, **k: None)
    whole = ingest.open_forecast(path, bounds=BOUNDS).load()
    xr.testing.assert_identical(windowed.load(), whole)
    # 1000 lat + lon survives the cut and the flip to ascending latitudes.
    t = windowed["t2m"].isel(time=0)
    expected = 200.0 + (1000.0 * t["lat"] + t["lon"]) / 1000.0 - 273.15
    np.testing.assert_allclose(t.values, expected.values, atol=1e-3)


def test_window_across_the_0_360_seam_keeps_positions(tmp_path):
    # A box straddling 0° on a 0-360 grid: two pieces on disk, read as positions.
    path = _global_grid(tmp_path / "g.nc", lon_0_360=True, descending=True)
    with xr.open_dataset(path) as raw:
        window = canonical.crop_window(raw, (-1.0, 10.0, 1.0, 11.0))
    assert isinstance(window["longitude"], np.ndarray)
    lon = np.arange(0, 360, 0.25)[window["longitude"]]
    assert lon.min() == 0.0 and lon.max() == 359.75


def test_grid_not_covering_gives_no_window_and_the_usual_error(tmp_path):
    path = _global_grid(tmp_path / "g.nc", lon_0_360=False, descending=False)
    with xr.open_dataset(path) as raw:
        small = raw.isel(longitude=slice(0, 40))
        assert canonical.crop_window(small, BOUNDS) is None


# ---------------------------------------------------------------------------------------------
# GRIB


@pytest.fixture(scope="module")
def grib_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("grib")
    files = [
        write_gfs_like(d / "gfs.grib2", buckets="6h"),
        write_gfs_like(d / "ifs.grib2", buckets="running"),
        write_gfs_like(d / "ens.grib2", buckets="3h", members=3),
        write_gfs_like(d / "one.grib2", steps=[6]),
        write_gfs_like(d / "orog.grib2", orography=True),
        write_grib1(d / "old.grib"),
    ]
    if REALDATA.is_dir():
        files += sorted(REALDATA.glob("*.grb2")) + sorted(REALDATA.glob("*.grib2"))
    return files


def _through_cfgrib(path, monkeypatch):
    def fallback(*args, **kwargs):
        raise grib._Fallback("test: cfgrib")

    with monkeypatch.context() as m:
        m.setattr(grib, "_read_direct", fallback)
        return grib.open_grib(path).load()


def test_one_pass_reader_gives_cfgrib_dataset(grib_files, monkeypatch):
    for path in grib_files:
        direct = grib.open_grib(path)
        by_cfgrib = _through_cfgrib(path, monkeypatch)
        xr.testing.assert_identical(_without_history(direct.load()), _without_history(by_cfgrib))


def test_definition_cache_gives_every_message_header(grib_files, monkeypatch):
    for path in grib_files:
        cached = grib.scan_grib(path)
        with monkeypatch.context() as m:
            m.setattr(grib, "_definition", lambda fh, offset: None)
            one_by_one = grib.scan_grib(path)
        assert cached == one_by_one, path


def test_only_the_fields_used_are_decoded_once_each(tmp_path, monkeypatch):
    path = write_gfs_like(tmp_path / "gfs.grib2", buckets="6h")
    decoded: list[int] = []
    codes = grib._eccodes()
    real_get_values = codes.codes_get_values

    def counting(h):
        decoded.append(int(codes.codes_get(h, "offset", int)))
        return real_get_values(h)

    monkeypatch.setattr(codes, "codes_get_values", counting)
    ds = ingest.open_forecast(path, bounds=BOUNDS)
    used = {"t2m", "u10", "v10", "gust", "tp", "tmax", "tmin"}  # not prmsl, not 850 hPa t
    needed = [m.offset for m in grib.scan_grib(path) if m.name in used and grib._is_surface(m)]
    assert sorted(decoded) == sorted(needed)  # each once, nothing else
    assert {"precip", "t2m", "wind", "gust"} <= set(ds.data_vars)


def test_grib_windowed_equals_cropping_the_whole_grid(grib_files, monkeypatch):
    for path in grib_files[:5]:
        windowed = ingest.open_forecast(path, bounds=BOUNDS).load()
        with monkeypatch.context() as m:
            m.setattr(ingest, "crop_window", lambda *a, **k: None)
            whole = ingest.open_forecast(path, bounds=BOUNDS).load()
        xr.testing.assert_identical(windowed, whole)


@real
def test_real_gfs_canonical_is_the_same_through_cfgrib(monkeypatch):
    path = REALDATA / "gfs.t12z.pgrbf120.2p5deg.grib2"
    direct = ingest.open_forecast(path, bounds=BOUNDS).load()
    with monkeypatch.context() as m:
        m.setattr(grib, "_read_direct", lambda *a, **k: (_ for _ in ()).throw(grib._Fallback("")))
        by_cfgrib = ingest.open_forecast(path, bounds=BOUNDS).load()
    xr.testing.assert_identical(_without_history(direct), _without_history(by_cfgrib))
