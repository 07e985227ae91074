"""GRIB reader: raw cfgrib datasets from GFS-like fixtures written with ecCodes, real GFS files,
bad files, and the pyproj/ecCodes import-order crash (checked in a subprocess)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cityops.errors import InputError
from cityops.ingest.grib import combine_steps, is_grib, open_grib
from tests.grib_fixtures import (
    REFERENCE,
    STEPS,
    bucket_start,
    grid,
    precip_rate,
    write_gfs_like,
    write_grib1,
    write_message,
)

ROOT = Path(__file__).resolve().parents[1]
REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
GFS_2011 = REALDATA / "gfs.t12z.pgrbf120.2p5deg.grib2"
GFS_2008 = REALDATA / "gfs_2p5_2008021312_f000-f072.grb2"
ORDOS = {"latitude": 39.6, "longitude": 109.7}

real = pytest.mark.skipif(not REALDATA.is_dir(), reason=f"{REALDATA} (real GRIB files) is absent")


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def gfs(tmp_path_factory) -> Path:
    return write_gfs_like(tmp_path_factory.mktemp("gfs") / "gfs_like.grib2", buckets="6h")


@pytest.fixture(scope="module")
def gfs_ds(gfs):
    """The GFS-like fixture opened once (tests only read it)."""
    return open_grib(gfs)


@pytest.fixture(scope="module")
def ifs(tmp_path_factory) -> Path:
    return write_gfs_like(tmp_path_factory.mktemp("ifs") / "ifs_like.grib2", buckets="running")


# ---------------------------------------------------------------------------------------------
# Fixtures


def test_is_grib(gfs, tmp_path):
    text = tmp_path / "notes.grib2"
    text.write_text("not a grib file\n")
    assert is_grib(gfs)
    assert not is_grib(text)
    assert not is_grib(tmp_path / "missing.grib2")


def test_gfs_like_raw_names_coords_and_attrs(gfs):
    before = _listing(gfs.parent)
    ds = open_grib(gfs)
    assert _listing(gfs.parent) == before  # no .idx beside the file

    assert set(ds.data_vars) == {"t2m", "tmax", "tmin", "u10", "v10", "gust", "prmsl", "tp"}
    # Raw coordinates as cfgrib names them; vertical scalar coordinates dropped.
    assert {"time", "step", "valid_time", "latitude", "longitude"} <= set(ds.coords)
    for vertical in ("heightAboveGround", "surface", "meanSea", "isobaricInhPa"):
        assert vertical not in ds.coords
    assert ds["time"].ndim == 0 and pd.Timestamp(ds["time"].values) == REFERENCE
    assert list(ds["step"].values) == [np.timedelta64(h, "h") for h in STEPS]
    np.testing.assert_array_equal(ds["valid_time"].values, ds["time"].values + ds["step"].values)
    lats, lons = grid()
    np.testing.assert_array_equal(ds["latitude"].values, lats)  # descending, as stored
    assert ds["latitude"].values[0] > ds["latitude"].values[-1]
    np.testing.assert_array_equal(ds["longitude"].values, lons)

    expected = {  # name: (shortName, stepType, typeOfLevel, level, units)
        "t2m": ("2t", "instant", "heightAboveGround", 2.0, "K"),
        "tmax": ("tmax", "max", "heightAboveGround", 2.0, "K"),
        "tmin": ("tmin", "min", "heightAboveGround", 2.0, "K"),
        "u10": ("10u", "instant", "heightAboveGround", 10.0, "m s**-1"),
        "v10": ("10v", "instant", "heightAboveGround", 10.0, "m s**-1"),
        "gust": ("gust", "instant", "surface", 0.0, "m s**-1"),
        "prmsl": ("prmsl", "instant", "meanSea", 0.0, "Pa"),
        "tp": ("tp", "accum", "surface", 0.0, "kg m**-2"),
    }
    for name, (short, step_type, level_type, level, units) in expected.items():
        attrs = ds[name].attrs
        assert attrs["GRIB_shortName"] == short, name
        assert attrs["GRIB_cfVarName"] == name
        assert attrs["GRIB_stepType"] == step_type, name
        assert attrs["GRIB_typeOfLevel"] == level_type, name
        assert attrs["GRIB_level"] == level, name
        assert attrs["units"] == units, name
        assert "GRIB_name" in attrs
    assert ds.attrs["cityops_reader"] == "grib"
    assert ds.attrs["source"] == str(gfs)
    assert "gfs_like.grib2" in ds.attrs["history"]

    # Values as documented in tests/grib_fixtures.py (float32 storage, 24-bit packing).
    t2m = ds["t2m"].sel(step=np.timedelta64(6, "h"))
    np.testing.assert_allclose(
        t2m.sel(latitude=40.5, longitude=108.0), 293.15 + 1.5 + 2.0, atol=1e-3
    )
    np.testing.assert_allclose(
        ds["u10"].isel(step=0, latitude=0), 3.0 + 0.5 * (lons - 108.0), atol=1e-4
    )
    np.testing.assert_allclose(
        ds["tmin"].isel(step=slice(1, None)), ds["t2m"].isel(step=slice(0, -1)).values, atol=1e-3
    )
    assert np.isnan(ds["tp"].isel(step=0)).all()  # GFS: no precipitation at step 0
    assert np.isnan(ds["tmax"].isel(step=0)).all()


def test_bucket_and_running_totals_are_told_apart(gfs_ds, ifs):
    buckets = gfs_ds["tp"]
    running = open_grib(ifs)["tp"]
    start_b = buckets.attrs["accumulation_start"]
    np.testing.assert_array_equal(start_b, [np.nan, 0, 0, 6, 6, 12, 12, 18, 18])
    np.testing.assert_array_equal(running.attrs["accumulation_start"], np.zeros(len(STEPS)))
    np.testing.assert_array_equal(buckets.attrs["GRIB_endStep"][1:], STEPS[1:])
    np.testing.assert_array_equal(buckets.attrs["GRIB_startStep"], start_b)

    # Both encode the same weather: per-step amounts from each accumulation style.
    def step_amounts(da):
        starts = np.asarray(da.attrs["accumulation_start"])
        out = []
        for i in range(1, len(STEPS)):
            total = da.isel(step=i).values
            if starts[i] == starts[i - 1]:
                total = total - da.isel(step=i - 1).values
            out.append(total)
        return np.array(out)

    np.testing.assert_allclose(step_amounts(buckets), step_amounts(running), atol=1e-3)
    in_box = step_amounts(buckets)[:, 0, 0]  # 40.5 N 108 E is in the rain box
    outside = step_amounts(buckets)[:, -1, -1]
    np.testing.assert_allclose(in_box, [0, 0, 6, 6, 0, 3, 3, 0], atol=1e-3)
    np.testing.assert_allclose(outside, [0, 0, 0, 0, 0, 3, 3, 0], atol=1e-3)
    lats, lons = grid()
    lat2, lon2 = np.meshgrid(lats, lons, indexing="ij")
    np.testing.assert_allclose(
        running.isel(step=-1), precip_rate(0, 24, lat2, lon2, 108.0), atol=1e-3
    )
    assert bucket_start(12, "6h") == 6 and bucket_start(9, "6h") == 6


def test_max_min_periods_recorded(gfs_ds):
    ds = gfs_ds
    for name in ("tmax", "tmin"):
        attrs = ds[name].attrs
        np.testing.assert_array_equal(attrs["GRIB_startStep"][1:], np.array(STEPS[1:]) - 3)
        assert "accumulation_start" not in attrs  # only accumulations
    assert "GRIB_startStep" not in ds["t2m"].attrs


def test_ensemble_has_number(tmp_path):
    path = write_gfs_like(tmp_path / "ens.grib2", buckets="running", members=3, steps=(0, 6, 12))
    ds = open_grib(path)
    assert list(ds["number"].values) == [0, 1, 2]
    assert ds["t2m"].dims[:2] == ("number", "step")
    np.testing.assert_allclose(ds["t2m"].sel(number=2) - ds["t2m"].sel(number=0), 2.0, atol=1e-3)
    np.testing.assert_allclose(ds["tp"].sel(number=1), 1.5 * ds["tp"].sel(number=0), atol=1e-3)
    np.testing.assert_array_equal(ds["tp"].attrs["accumulation_start"], [0, 0, 0])


def test_single_step_file_keeps_scalar_step(tmp_path):
    ds = open_grib(write_gfs_like(tmp_path / "f012.grib2", steps=[12]))
    assert ds["step"].ndim == 0 and ds["valid_time"].ndim == 0
    assert ds["step"].values == np.timedelta64(12, "h")
    assert pd.Timestamp(ds["valid_time"].values) == REFERENCE + pd.Timedelta("12h")
    assert ds["tp"].attrs["accumulation_start"] == 6.0
    assert ds["tp"].attrs["GRIB_endStep"] == 12.0
    np.testing.assert_allclose(ds["tp"].sel(latitude=40.5, longitude=108.0), 12.0, atol=1e-3)


def test_variable_known_at_other_steps(tmp_path):
    # orog only at step 0: cfgrib leaves it out of the surface group; it is read alone.
    ds = open_grib(write_gfs_like(tmp_path / "orog.grib2", orography=True))
    assert "orog" in ds and "gust" in ds
    assert ds["orog"].dims == ds["gust"].dims
    np.testing.assert_allclose(ds["orog"].isel(step=0), 1300.0)
    assert np.isnan(ds["orog"].isel(step=slice(1, None))).all()


def test_longitudes_0_360_kept_raw(tmp_path):
    ds = open_grib(write_gfs_like(tmp_path / "west.grib2", lon_first=250.0, steps=[0, 3]))
    np.testing.assert_array_equal(ds["longitude"].values, grid(250.0)[1])
    assert ds["longitude"].values.min() == 250.0


def test_chunks_give_dask(gfs, gfs_ds):
    lazy = open_grib(gfs, chunks={})
    assert lazy["t2m"].chunks is not None
    np.testing.assert_allclose(lazy["t2m"].values, gfs_ds["t2m"].values)


def test_name_collision_keeps_first(tmp_path, caplog):
    skin = {"discipline": 0, "parameterCategory": 0, "parameterNumber": 0}
    path = tmp_path / "collide.grib2"
    with path.open("wb") as fh:
        write_message(
            fh,
            params=skin,
            type_of_level="surface",
            level=0,
            values=np.full((5, 7), 290.0),
            lon_first=108.0,
            step=0,
        )
        write_message(
            fh,
            params=skin,
            type_of_level="heightAboveGround",
            level=10,
            values=np.full((5, 7), 280.0),
            lon_first=108.0,
            step=0,
        )
    with caplog.at_level(logging.WARNING, logger="cityops"):
        ds = open_grib(path)
    assert list(ds.data_vars) == ["t"]
    assert ds["t"].attrs["GRIB_typeOfLevel"] == "surface"
    np.testing.assert_allclose(ds["t"], 290.0)
    assert "dropped" in caplog.text and "heightAboveGround" in caplog.text
    assert "dropped" in ds.attrs["history"]


def test_grib1(tmp_path):
    ds = open_grib(write_grib1(tmp_path / "old.grib"))
    assert ds.attrs["GRIB_edition"] == 1
    assert {"t2m", "tp"} <= set(ds.data_vars)
    np.testing.assert_array_equal(ds["tp"].attrs["accumulation_start"], [np.nan, 0, 6])
    np.testing.assert_allclose(ds["tp"].isel(step=2, latitude=0, longitude=0), 12.0, atol=1e-3)


def test_combine_steps_one_file_per_lead(tmp_path, gfs_ds):
    files = [write_gfs_like(tmp_path / f"f{h:03d}.grib2", steps=[h]) for h in (9, 3, 6, 12)]
    combined = combine_steps([open_grib(f) for f in files])
    assert list(combined["step"].values) == [np.timedelta64(h, "h") for h in (3, 6, 9, 12)]
    np.testing.assert_array_equal(combined["tp"].attrs["accumulation_start"], [0, 0, 6, 6])
    np.testing.assert_array_equal(combined["tmax"].attrs["GRIB_startStep"], [0, 3, 6, 9])
    whole = gfs_ds.sel(step=combined["step"])
    np.testing.assert_allclose(combined["tp"], whole["tp"])
    np.testing.assert_array_equal(combined["valid_time"], whole["valid_time"])
    assert combined["tp"].attrs["GRIB_stepType"] == "accum"
    other_run = write_gfs_like(
        tmp_path / "other.grib2", steps=[3], reference=REFERENCE + pd.Timedelta("6h")
    )
    with pytest.raises(InputError, match="different reference times"):
        combine_steps([open_grib(files[0]), open_grib(other_run)])


# ---------------------------------------------------------------------------------------------
# Bad files


def _one_line(err: pytest.ExceptionInfo, path: Path) -> str:
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message
    return message


def test_bad_files_raise_input_error(tmp_path, gfs):
    truncated = tmp_path / "cut.grib2"
    data = gfs.read_bytes()
    truncated.write_bytes(data[: len(data) // 2 + 17])
    text = tmp_path / "readme.grib2"
    text.write_text("this is text, not GRIB\n")
    empty = tmp_path / "empty.grib2"
    empty.write_bytes(b"")
    upper = write_gfs_like(tmp_path / "upper.grib2", surface=False, steps=[0])
    cases = {
        truncated: "truncated",
        text: "not a GRIB file",
        empty: "not a GRIB file",
        upper: "no surface fields",
        tmp_path / "missing.grib2": "not found",
    }
    for path, expected in cases.items():
        with pytest.raises(InputError) as err:
            open_grib(path)
        assert expected in _one_line(err, path)
    assert not list(tmp_path.glob("*.idx"))


# ---------------------------------------------------------------------------------------------
# Import order: ecCodes' bundled PROJ/SQLite vs pyproj (crash at exit, status 134/139)


def _run(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_subprocess_exit_status_after_grib_then_pyproj(gfs, tmp_path):
    out = tmp_path / "roundtrip.nc"
    proc = _run(f"""
        from cityops.ingest.grib import open_grib
        ds = open_grib({str(gfs)!r})
        t = float(ds["t2m"].isel(step=0).mean())
        import cityops.geo.jurisdiction as j
        x, y = j._laea_transformer(109.7, 39.6).transform(110.0, 39.8)
        import pyproj
        crs = pyproj.CRS("EPSG:4326")
        ds.drop_vars(["valid_time"]).to_netcdf({str(out)!r}, engine="netcdf4")
        print("ok", round(t, 2), round(x), round(y), crs.name)
    """)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("ok ")
    assert "WGS 84" in proc.stdout
    assert "unable to set PROJ database path" not in proc.stderr


# The hazard itself (findlibs < 0.1.4 loaded the ecCodes wheels' bundled PROJ globally) is gone
# with the pinned findlibs: tests/test_environment.py runs plain scripts (no cityops) in every
# import order and requires exit status 0.


# ---------------------------------------------------------------------------------------------
# Real files (../shared/realdata)


@real
@pytest.mark.realdata
def test_real_gfs_2011_f120():
    before = _listing(REALDATA)
    ds = open_grib(GFS_2011)
    assert _listing(REALDATA) == before  # read-only folder: no .idx written
    assert pd.Timestamp(ds["time"].values) == pd.Timestamp("2011-01-10T12:00")
    assert ds["step"].ndim == 0 and ds["step"].values == np.timedelta64(120, "h")
    assert ds["latitude"].values[0] == 90.0 and ds["latitude"].values[-1] == -90.0
    assert ds["longitude"].values.min() == 0.0 and ds["longitude"].values.max() == 357.5
    assert {"t2m", "tmax", "tmin", "u10", "v10", "gust", "tp", "sdwe", "cape", "prmsl"} <= set(
        ds.data_vars
    )
    assert ds["t2m"].attrs["units"] == "K"
    ordos = ds["t2m"].sel(ORDOS, method="nearest") - 273.15
    assert -25.0 <= float(ordos) <= 0.0
    # 6-h bucket: 114-120 h.
    assert ds["tp"].attrs["GRIB_stepType"] == "accum"
    assert ds["tp"].attrs["accumulation_start"] == 114.0
    assert ds["tp"].attrs["GRIB_endStep"] == 120.0
    # NCEP's old TMAX/TMIN: statistical processing "missing" (stepType instant), period 114-120.
    assert ds["tmax"].attrs["GRIB_startStep"] == 114.0
    assert (ds["tmax"] >= ds["tmin"] - 0.01).all()


@real
@pytest.mark.realdata
def test_real_gfs_2008_several_steps():
    before = _listing(REALDATA)
    ds = open_grib(GFS_2008)
    assert _listing(REALDATA) == before
    assert pd.Timestamp(ds["time"].values) == pd.Timestamp("2008-02-13T12:00")
    assert list(ds["step"].values) == [np.timedelta64(h, "h") for h in (0, 24, 48, 72)]
    # Surface content of this file: sea-level pressure at every step, precipitation in 6-h
    # buckets ending at 24, 48, 72 h (18-24, 42-48, 66-72: not 24-h buckets).
    assert {"prmsl", "tp"} <= set(ds.data_vars)
    np.testing.assert_array_equal(ds["tp"].attrs["accumulation_start"], [np.nan, 18, 42, 66])
    np.testing.assert_array_equal(ds["tp"].attrs["GRIB_endStep"], [np.nan, 24, 48, 72])
    prmsl = ds["prmsl"].sel(ORDOS, method="nearest")
    assert ((prmsl > 99000) & (prmsl < 106000)).all()
    if "t2m" in ds:  # the file holds no 2 m temperature (only 200/500/850 hPa upper air)
        ordos = ds["t2m"].sel(ORDOS, method="nearest") - 273.15
        assert ((ordos > -25) & (ordos < 5)).all()
