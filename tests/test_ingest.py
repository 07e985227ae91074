"""Ingest of canonical NetCDF: units converted, bad inputs refused with one clear line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cityops.errors import InputError
from cityops.ingest import check_covers, open_forecast
from tests.conftest import make_forecast


def write(ds, path):
    ds.to_netcdf(path, engine="netcdf4")
    return path


def test_units_converted_and_recorded(tmp_path):
    ds = make_forecast(
        {"t2m": np.full(6, 300.15), "precip": np.full(6, 0.002), "vis": np.full(6, 2.5)},
        units={"t2m": "K", "precip": "m", "vis": "km"},
    )
    out = open_forecast(write(ds, tmp_path / "f.nc"))
    assert out["t2m"].attrs["units"] == "degC"
    np.testing.assert_allclose(out["t2m"].values, 27.0, rtol=1e-6)
    np.testing.assert_allclose(out["precip"].values, 2.0, rtol=1e-6)
    np.testing.assert_allclose(out["vis"].values, 2500.0, rtol=1e-6)
    assert "converted from K to degC" in out.attrs["history"]
    assert out.attrs["issued"] == "2026-07-10T00:00:00Z"


def test_several_files_make_one_forecast(tmp_path):
    ds = make_forecast({"precip": np.arange(12.0)})
    write(ds.isel(time=slice(0, 6)), tmp_path / "a.nc")
    write(ds.isel(time=slice(6, 12)), tmp_path / "b.nc")
    out = open_forecast(str(tmp_path / "*.nc"))
    assert out.sizes["time"] == 12
    np.testing.assert_array_equal(out["precip"].values[:, 0, 0], np.arange(12.0))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda ds: ds.drop_vars("precip").assign(foo=ds["precip"]), "no usable variable"),
        (lambda ds: ds.assign(precip=ds["precip"].assign_attrs(units="bananas")), "units"),
        (lambda ds: ds.isel(time=[0, 2, 1, 3]), "not increasing"),
        (lambda ds: ds.isel(time=[0, 1, 1, 2]), "duplicated time"),
    ],
)
def test_bad_inputs_get_one_line_errors(tmp_path, mutate, message):
    ds = mutate(make_forecast({"precip": np.arange(6.0)}))
    path = write(ds, tmp_path / "bad.nc")
    with pytest.raises(InputError, match=message) as err:
        open_forecast(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_variable_without_units_is_an_error(tmp_path):
    ds = make_forecast({"precip": np.arange(6.0)})
    del ds["precip"].attrs["units"]
    with pytest.raises(InputError, match="has no 'units'"):
        open_forecast(write(ds, tmp_path / "nounits.nc"))


def test_text_file_named_nc_and_truncated_file(tmp_path):
    text = tmp_path / "fake.nc"
    text.write_text("not a forecast\n")
    with pytest.raises(InputError, match="unknown file format"):
        open_forecast(text)
    good = write(make_forecast({"precip": np.arange(6.0)}), tmp_path / "good.nc")
    cut = tmp_path / "cut.nc"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(InputError, match=r"cut\.nc"):
        open_forecast(cut)


def test_missing_file_and_empty_glob(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        open_forecast(tmp_path / "nothing.nc")
    with pytest.raises(InputError, match="no file matches"):
        open_forecast(str(tmp_path / "*.nc"))


def test_grid_not_covering_the_jurisdiction():
    ds = make_forecast({"precip": np.zeros(3)})
    with pytest.raises(InputError, match="does not cover"):
        check_covers(ds, (109.0, 38.9, 110.4, 39.8), source="small.nc")


def test_time_is_valid_time_in_utc(tmp_path):
    ds = make_forecast({"precip": np.zeros(3)})
    out = open_forecast(write(ds, tmp_path / "f.nc"))
    assert pd.Timestamp(out["time"].values[0]) == pd.Timestamp("2026-07-10T01:00")


def test_fractions_and_percent(tmp_path):
    ds = make_forecast(
        {"rh": np.full(4, 0.85), "p_lightning": np.full(4, 30.0)},
        units={"rh": "1", "p_lightning": "%"},
    )
    out = open_forecast(write(ds, tmp_path / "frac.nc"))
    np.testing.assert_allclose(out["rh"].values, 85.0, rtol=1e-6)
    np.testing.assert_allclose(out["p_lightning"].values, 0.3, rtol=1e-6)
