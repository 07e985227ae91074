"""Drought composite index MCI (GB/T 20481-2017): hand-computed cases, grades, synthetic data."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from cityops.errors import DataFileError, InputError
from cityops.resources import package_data
from cityops.rules.drought import (
    composite_index,
    daylength_hours,
    drought_grade,
    drought_indices,
    drought_level,
    extraterrestrial_radiation,
    load_drought_config,
    mci,
    moisture_index,
    potential_evapotranspiration,
    spi,
    spiw60,
    weighted_precipitation,
)
from cityops.scenarios.climate import synthetic_history, write_synthetic_history


def daily(values, start="2021-01-01", name="precip", units="mm") -> xr.DataArray:
    times = pd.date_range(start, periods=len(values), freq="D")
    return xr.DataArray(
        np.asarray(values, dtype="float64"),
        dims="time",
        coords={"time": times},
        name=name,
        attrs={"units": units},
    )


@pytest.fixture(scope="module")
def history():
    """31.5 years of synthetic Ejin Horo weather (seed 0), ending the day before a forecast."""
    return synthetic_history(start="1995-01-01", end="2026-07-09")


@pytest.fixture(scope="module")
def full_history():
    return synthetic_history()


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


def test_shipped_config_values_and_sources():
    cfg = load_drought_config()
    assert cfg["weights"]["spiw60"] == 0.3 and cfg["weights"]["mi30"] == 0.5
    assert cfg["weights"]["spi90"] == 0.3 and cfg["weights"]["spi150"] == 0.2
    assert cfg["ka"]["months"] == [0, 0, 0, 0.6, 1.0, 1.2, 1.2, 1.0, 0.9, 0.4, 0, 0]
    assert "NOT checked" in cfg["ka"]["source"]
    assert cfg["spiw"]["days"] == 60 and cfg["spiw"]["decay"] == 0.85  # GB/T 20481-2017 SPIW60
    assert cfg["moisture_index"]["pet_method"] == "thornthwaite"
    assert [c["upper"] for c in cfg["grades"]["classes"]] == [None, -0.5, -1.0, -1.5, -2.0]
    for block in ("weights", "ka", "spiw", "spi", "moisture_index", "grades", "signal"):
        assert cfg[block]["source"].strip()
    # A fresh copy each time: editing one does not leak into the next.
    cfg["ka"]["months"][0] = 9.0
    assert load_drought_config()["ka"]["months"][0] == 0


def _write_config(tmp_path, edit) -> str:
    data = yaml.safe_load(package_data("data", "drought.yaml").read_text(encoding="utf-8"))
    edit(data)
    path = tmp_path / "drought-local.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return str(path)


def test_ka_of_wrong_length_names_file_and_field(tmp_path):
    path = _write_config(tmp_path, lambda d: d["ka"].update(months=[0.5] * 11))
    with pytest.raises(DataFileError) as err:
        load_drought_config(path)
    message = str(err.value)
    assert "drought-local.yaml" in message and "ka.months" in message and "11" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d["weights"].pop("source"), "weights.source"),
        (lambda d: d["spiw"].update(decay=1.5), "spiw.decay"),
        (lambda d: d["moisture_index"].update(pet_method="penman"), "moisture_index.pet_method"),
        (lambda d: d["grades"]["classes"][3].update(upper=-0.8), "grades.classes[3].upper"),
        (lambda d: d["signal"]["levels"][0].update(level=7), "signal.levels[0]"),
    ],
)
def test_config_errors_name_the_field(tmp_path, edit, field):
    path = _write_config(tmp_path, edit)
    with pytest.raises(DataFileError, match=re.escape(f"drought-local.yaml: {field}")):
        load_drought_config(path)


# ---------------------------------------------------------------------------------------------
# Hand-computed components
# ---------------------------------------------------------------------------------------------

# 30 calibration years of 2-day sums ending on 15 July: 3 zeros and these 27 amounts (mm).
POSITIVE = [1.2, 2.5, 3.1, 4.0, 4.4, 5.0, 5.8, 6.3, 7.1, 7.7, 8.2, 9.0, 9.9, 10.5, 11.3, 12.0,
            13.4, 14.1, 15.6, 17.0, 18.2, 20.5, 22.0, 24.8, 27.3, 31.0, 36.5]  # fmt: skip


def test_spi_by_hand_against_an_independent_gamma_fit():
    cfg = load_drought_config()
    cfg["spi"]["window_days"] = 0  # the sample is exactly the 30 sums ending on 15 July
    # Independent fit: shape ~ 1.9485, scale ~ 6.6224 (mean 12.90 mm = shape * scale).
    shape, _, scale = stats.gamma.fit(POSITIVE, floc=0)
    q = 3 / 30  # share of zero sums = 0.1
    # Target sums chosen so that the SPI is a round number:
    #   SPI = -1: H = Phi(-1) = 0.158655 -> G = (0.158655 - 0.1) / 0.9 = 0.065173 -> x ~ 2.588 mm
    #   SPI = +1: H = Phi(+1) = 0.841345 -> G = (0.841345 - 0.1) / 0.9 = 0.823716 -> x ~ 20.47 mm
    #   zero sum: H = q = 0.1 -> SPI = Phi^-1(0.1) = -1.28155
    x_dry = stats.gamma.ppf((stats.norm.cdf(-1.0) - q) / (1 - q), shape, scale=scale)
    x_wet = stats.gamma.ppf((stats.norm.cdf(1.0) - q) / (1 - q), shape, scale=scale)
    assert x_dry == pytest.approx(2.588, abs=1e-3) and x_wet == pytest.approx(20.47, abs=1e-2)

    times = pd.date_range("1991-01-01", "2023-12-31", freq="D")
    precip = xr.DataArray(np.zeros(len(times)), dims="time", coords={"time": times})
    precip.attrs["units"] = "mm"
    sums = [0.0] * 3 + POSITIVE
    targets = {2021: x_dry, 2022: 0.0, 2023: x_wet}
    for year in range(1991, 2024):
        total = sums[year - 1991] if year <= 2020 else targets[year]
        # Split over 14 and 15 July: the 2-day sum ending on 15 July is `total`.
        precip.loc[f"{year}-07-14"] = total / 2
        precip.loc[f"{year}-07-15"] = total / 2
    out = spi(precip, 2, calibration=("1991-01-01", "2020-12-31"), config=cfg)
    assert out.name == "spi2" and out.attrs["units"] == "1"
    assert float(out.sel(time="2021-07-15")) == pytest.approx(-1.0, abs=1e-6)
    assert float(out.sel(time="2022-07-15")) == pytest.approx(-1.2815516, abs=1e-6)
    assert float(out.sel(time="2023-07-15")) == pytest.approx(1.0, abs=1e-6)
    # The same climatology given as a separate DataArray gives the same answer.
    again = spi(precip, 2, calibration=precip.sel(time=slice(None, "2020")), config=cfg)
    assert float(again.sel(time="2021-07-15")) == pytest.approx(-1.0, abs=1e-6)
    # The first day has no 2-day sum: NaN, not a guess.
    assert np.isnan(out.isel(time=0))


def test_weighted_precipitation_by_hand():
    values = np.zeros(70)
    values[65] = 10.0  # two days before the last day
    values[67] = 5.0  # the last day (index 67 of 0..67 below)
    wap = weighted_precipitation(daily(values[:68]), days=60, decay=0.95)
    # WAP(d) = 5 + 0.95**2 * 10 = 5 + 9.025 = 14.025 mm; WAP(d-1) = 0.95 * 10 = 9.5 mm
    assert float(wap[-1]) == pytest.approx(14.025)
    assert float(wap[-2]) == pytest.approx(9.5)
    assert np.isnan(wap[58]) and not np.isnan(wap[59])  # 60 days needed


def test_thornthwaite_pet_and_mi30_by_hand_at_constant_temperature():
    t2m = daily(np.full(365, 20.0), name="t2m", units="degC")
    precip = daily(np.full(365, 2.0))
    # Heat index I = 12 * (20/5)**1.514 = 12 * 8.15678 = 97.8814
    # A = 6.75e-7 I^3 - 7.71e-5 I^2 + 1.792e-2 I + 0.49239
    #   = 0.633000 - 0.738677 + 1.754034 + 0.49239 = 2.140748
    # Unadjusted PET of a 30-day month = 16 * (10*20/I)**A = 16 * 2.043290**2.140748
    #   = 16 * 4.616768 = 73.8683 mm; at the equator N = 12 h, so PET30 = 73.8683 mm
    pet = potential_evapotranspiration(t2m, lat=0.0)
    assert float(pet[100]) == pytest.approx(73.8683 / 30, rel=1e-5)
    # MI30 = (30 * 2 - 73.8683) / 73.8683 = -13.8683 / 73.8683 = -0.187744
    mi = moisture_index(precip, t2m, lat=0.0)
    assert mi.name == "mi30"
    assert float(mi[200]) == pytest.approx(-0.187744, abs=1e-5)
    assert np.isnan(mi[28]) and not np.isnan(mi[29])
    # No evaporative demand below 0 degC: MI is undefined there, not infinite.
    cold = moisture_index(
        precip, daily(np.where(np.arange(365) < 60, -5.0, 20.0), units="degC"), lat=0.0
    )
    assert np.isnan(cold[40]) and np.isfinite(cold[200])


def test_fao56_solar_geometry_examples():
    # FAO-56 Examples 8 and 9: 20 degrees south, 3 September: Ra = 32.2 MJ m-2 day-1, N = 11.7 h.
    time = xr.DataArray(pd.DatetimeIndex(["2021-09-03"]), dims="time")
    assert float(extraterrestrial_radiation(time, -20.0)[0]) == pytest.approx(32.2, abs=0.05)
    assert float(daylength_hours(time, -20.0)[0]) == pytest.approx(11.7, abs=0.05)


def test_hargreaves_pet_by_hand():
    times = pd.DatetimeIndex(["2021-09-03"])
    tmax = xr.DataArray([26.0], dims="time", coords={"time": times}, attrs={"units": "degC"})
    tmin = xr.DataArray([14.0], dims="time", coords={"time": times}, attrs={"units": "degC"})
    ra = float(extraterrestrial_radiation(tmax["time"], -20.0)[0])
    pet = potential_evapotranspiration(
        None, lat=-20.0, method="hargreaves", t2m_max=tmax, t2m_min=tmin
    )
    # 0.0023 * 0.408 * Ra * (20 + 17.8) * sqrt(26 - 14) = 0.0023 * 0.408 * 32.2 * 37.8 * 3.4641
    expected = 0.0023 * 0.408 * ra * 37.8 * math.sqrt(12.0)
    assert float(pet[0]) == pytest.approx(expected)
    assert expected == pytest.approx(3.96, abs=0.02)


def _component(value, time="2026-07-15"):
    return xr.DataArray([value], dims="time", coords={"time": pd.DatetimeIndex([time])})


def test_mci_by_hand_in_july_is_severe():
    out = composite_index(_component(-1.0), _component(-0.8), _component(-1.2), _component(-1.0))
    # July Ka = 1.2: MCI = 1.2 * (0.3*-1 + 0.5*-0.8 + 0.3*-1.2 + 0.2*-1.0)
    #                    = 1.2 * (-0.30 - 0.40 - 0.36 - 0.20) = 1.2 * -1.26 = -1.512
    assert float(out[0]) == pytest.approx(-1.512)
    assert out.attrs["units"] == "1" and "long_name" in out.attrs
    assert int(drought_grade(out)[0]) == 3  # -2.0 < -1.512 <= -1.5: severe 重旱
    assert drought_level(out) == 3  # national drought signal: orange


def test_mci_is_zero_when_ka_is_zero():
    # January Ka = 0: whatever the components (MI may even be undefined), MCI = 0.
    out = composite_index(
        _component(-3.0, "2026-01-15"),
        _component(np.nan, "2026-01-15"),
        _component(-3.0, "2026-01-15"),
        _component(-3.0, "2026-01-15"),
    )
    assert float(out[0]) == 0.0
    # April Ka = 0.6: 0.6 * (0.3*-2 + 0.5*-0.5 + 0.3*-2 + 0.2*-2) = 0.6 * -1.85 = -1.11
    april = composite_index(
        _component(-2.0, "2026-04-20"),
        _component(-0.5, "2026-04-20"),
        _component(-2.0, "2026-04-20"),
        _component(-2.0, "2026-04-20"),
    )
    assert float(april[0]) == pytest.approx(-1.11)


# ---------------------------------------------------------------------------------------------
# Grades and the signal level
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "grade"),
    [
        (0.3, 0),
        (-0.4999, 0),
        (-0.5, 1),  # "-1.0 < MCI <= -0.5" is light: -0.5 itself is light
        (-0.9999, 1),
        (-1.0, 2),
        (-1.4999, 2),
        (-1.5, 3),
        (-1.9999, 3),
        (-2.0, 4),
        (-3.5, 4),
        (np.nan, 0),
    ],
)
def test_grade_boundaries_exactly(value, grade):
    assert int(drought_grade(value)) == grade


def test_grade_attributes_and_dtype():
    g = drought_grade(xr.DataArray([0.0, -0.7, -1.2, -1.7, -2.2], dims="time"))
    assert g.dtype == np.int8
    assert list(g.values) == [0, 1, 2, 3, 4]
    assert list(g.attrs["flag_values"]) == [0, 1, 2, 3, 4]
    assert g.attrs["flag_meanings"] == "none light moderate severe extreme"
    assert g.attrs["flag_meanings_zh"] == "无旱 轻旱 中旱 重旱 特旱"


@pytest.mark.parametrize(
    ("week", "level"),
    [
        ([-0.2, -0.9, -1.49], 0),  # moderate at worst: no national drought signal
        ([-0.2, -1.5, -1.0], 3),  # severe reached in the week: orange
        ([-1.6, -2.0, -1.9], 4),  # extreme: red
        ([np.nan] * 7, 0),
    ],
)
def test_drought_level(week, level):
    assert drought_level(np.asarray(week)) == level


# ---------------------------------------------------------------------------------------------
# Synthetic history
# ---------------------------------------------------------------------------------------------


def test_synthetic_history_climate(full_history):
    p = full_history["precip"].sel(time=slice("1991", "2025"))
    annual = p.resample(time="YS").sum()
    assert 340 <= float(annual.mean()) <= 400
    jja = p.where(p["time"].dt.month.isin([6, 7, 8]), 0.0).resample(time="YS").sum()
    assert float(jja.sum() / annual.sum()) == pytest.approx(0.61, abs=0.06)
    wet_days = (p >= 0.1).resample(time="YS").sum()
    assert 50 <= float(wet_days.mean()) <= 90
    assert 0.15 <= float(annual.std() / annual.mean()) <= 0.45  # interannual variability
    monthly_t = full_history["t2m"].groupby("time.month").mean()
    assert float(monthly_t.sel(month=1)) == pytest.approx(-10.0, abs=1.0)
    assert float(monthly_t.sel(month=7)) == pytest.approx(23.0, abs=1.0)
    assert bool((full_history["t2m_max"] >= full_history["t2m_min"]).all())
    assert full_history["precip"].attrs["units"] == "mm"


def test_synthetic_history_is_deterministic():
    a = synthetic_history(start="2020-01-01", end="2020-12-31", seed=3)
    b = synthetic_history(start="2020-01-01", end="2020-12-31", seed=3)
    c = synthetic_history(start="2020-01-01", end="2020-12-31", seed=4)
    xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())
    assert not np.array_equal(a["precip"].values, c["precip"].values)


def test_mci_mostly_no_drought_in_normal_years(full_history):
    ds = drought_indices(full_history)
    for name in ("spiw60", "spi90", "spi150"):
        x = ds[name].sel(time=slice("1992", "2025"))
        assert abs(float(x.mean())) < 0.1 and float(x.std()) == pytest.approx(1.0, abs=0.1)
    season = ds["mci"].sel(time=slice("1992", "2025"))
    season = season.where(ds["ka"].sel(time=season["time"]) > 0, drop=True)
    assert float((season > -0.5).mean()) > 0.6
    assert float((season <= -1.5).mean()) < 0.1
    assert ds["mci"].attrs["units"] == "1"


def test_dry_summer_2026_reaches_severe_drought():
    hist = synthetic_history(dry_from="2026-05-01")
    index = mci(hist, since="2026-04-01")
    summer = index.sel(time=slice("2026-07-01", "2026-08-31"))
    assert float(summer.min()) <= -1.5
    assert drought_level(index.sel(time=slice("2026-07-10", "2026-07-16"))) >= 3


def test_write_synthetic_history_roundtrip(tmp_path):
    out = write_synthetic_history(
        tmp_path / "sub" / "hist.nc", start="2020-01-01", end="2020-03-31"
    )
    assert [p.name for p in out.parent.iterdir()] == ["hist.nc"]  # no temporary left behind
    with xr.open_dataset(out) as ds:
        assert ds.attrs["Conventions"].startswith("CF-")
        assert ds["precip"].attrs["units"] == "mm" and ds.sizes["time"] == 91
        assert ds["t2m"].attrs["standard_name"] == "air_temperature"
    with pytest.raises(InputError, match="is a folder"):
        write_synthetic_history(tmp_path)


# ---------------------------------------------------------------------------------------------
# MCI over a history plus a forecast week
# ---------------------------------------------------------------------------------------------


def forecast_week(precip, start="2026-07-10", t2m=24.0) -> xr.Dataset:
    times = pd.date_range(start, periods=len(precip), freq="D")
    return xr.Dataset(
        {
            "precip": ("time", np.asarray(precip, dtype="float64"), {"units": "mm"}),
            "t2m": ("time", np.full(len(precip), t2m), {"units": "degC"}),
        },
        coords={"time": times},
    )


@settings(max_examples=20, deadline=None)
@given(
    rain=st.lists(st.floats(0.0, 40.0), min_size=7, max_size=7),
    keep=st.lists(st.floats(0.0, 1.0), min_size=7, max_size=7),
)
def test_less_recent_rain_never_raises_mci(history, rain, keep):
    wet = mci(history, forecast=forecast_week(rain), since="2026-07-10")
    drier = mci(history, forecast=forecast_week(np.multiply(rain, keep)), since="2026-07-10")
    assert wet.sizes["time"] == 7
    assert bool((drier <= wet + 1e-12).all())


def test_forecast_must_follow_the_history(history):
    with pytest.raises(InputError, match="start the day after"):
        mci(history, forecast=forecast_week([0.0] * 7, start="2026-07-12"))
    gappy = history.drop_sel(time=[pd.Timestamp("2020-05-05")])
    with pytest.raises(InputError, match="gap-free"):
        mci(gappy)
    with pytest.raises(InputError, match="'t2m' is missing"):
        mci(history.drop_vars("t2m"))


def test_stations_are_worked_on_elementwise(history):
    other = synthetic_history(start="1995-01-01", end="2026-07-09", seed=7, lat=39.2)
    stations = xr.concat([history, other], dim="station")
    both = mci(stations, since="2026-01-01")
    assert both.dims == stations["precip"].dims == ("station", "time")  # input order kept
    alone = mci(other, since="2026-01-01")
    np.testing.assert_allclose(both.isel(station=1).values, alone.values)


def test_dask_matches_numpy_and_stays_lazy(history):
    fc = forecast_week([0.0, 2.0, 0.0, 0.0, 8.0, 0.0, 0.0])
    eager = mci(history, forecast=fc, since="2026-06-01")
    lazy = mci(history.chunk({"time": 1000}), forecast=fc.chunk({"time": 7}), since="2026-06-01")
    assert lazy.chunks is not None
    np.testing.assert_allclose(lazy.values, eager.values)


def test_hargreaves_configuration_runs(history):
    cfg = load_drought_config()
    cfg["moisture_index"]["pet_method"] = "hargreaves"
    index = drought_indices(history, config=cfg, since="2026-05-01")
    assert np.isfinite(index["mci"].values).all()
    assert index["mi30"].attrs["pet_method"] == "hargreaves"


def test_spiw60_standardises_like_spi(history):
    out = spiw60(history["precip"], since="2025-01-01")
    assert out.name == "spiw60" and np.isfinite(out.values).all()
    assert float(np.abs(out).max()) <= load_drought_config()["spi"]["clip"]
