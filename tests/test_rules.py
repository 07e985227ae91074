"""The rule engine against hand-computed cases from the national signal table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cityops.errors import DataFileError
from cityops.rules import (
    beaufort_lower_bound,
    evaluate,
    load_rule_table,
    window_reduce,
    window_status,
)
from tests.conftest import make_forecast

NATIONAL = load_rule_table("national")


def top_level(ds, hazard: str) -> int:
    return int(evaluate(ds, NATIONAL, hazards=[hazard])[hazard].level.max())


def rain_series(amounts, start: int = 5, n: int = 24) -> np.ndarray:
    series = np.zeros(n)
    series[start : start + len(amounts)] = amounts
    return series


# Hand-transcribed from CMA Order No. 16 (2007), independent of the shipped YAML.
@pytest.mark.parametrize(
    ("amounts", "expected"),
    [
        ([20.0, 20.0, 10.0], 3),  # exactly 50 mm in 3 h: orange ("50毫米以上" is inclusive)
        ([20.0, 20.0, 9.9], 0),  # 49.9 mm in 3 h, and in 12 h: nothing
        ([40.0, 40.0, 20.0], 4),  # exactly 100 mm in 3 h: red
        ([40.0, 40.0, 19.9], 3),  # 99.9 mm: orange
        ([10.0] * 5, 2),  # 50 mm in 5 h: within 6 h -> yellow, not orange
        ([5.0] * 10, 1),  # 50 mm in 10 h: within 12 h -> blue
        ([4.99] * 10, 0),
    ],
)
def test_rainstorm_levels_at_exact_thresholds(amounts, expected):
    ds = make_forecast({"precip": rain_series(amounts)})
    assert top_level(ds, "rainstorm") == expected


def test_onset_is_end_of_first_window_and_issue_by_uses_lead():
    ds = make_forecast({"precip": rain_series([20.0, 20.0, 10.0], start=5)})
    res = evaluate(ds, NATIONAL, hazards=["rainstorm"])["rainstorm"]
    series = res.level.isel(lat=0, lon=0)
    first = pd.Timestamp(series["time"].values[int(np.argmax(series.values >= 3))])
    # Steps 6, 7, 8 h after issue hold 20, 20, 10 mm: the window (05, 08] first reaches 50 mm.
    assert first == pd.Timestamp("2026-07-10T08:00")


@pytest.mark.parametrize(
    ("wind", "gust", "expected"),
    [
        (10.8, 0.0, 1),  # force 6 lower bound: blue
        # Recorded to 0.1 m/s (cityops.rules.resolution): 10.7 m/s is force 5, while 10.79
        # is recorded 10.8 m/s, force 6.
        (10.7, 13.8, 0),
        (10.79, 0.0, 1),
        (0.0, 13.9, 1),  # gust force 7
        (17.2, 0.0, 2),  # force 8: yellow
        (0.0, 20.8, 2),  # gust force 9
        (24.5, 0.0, 3),  # force 10: orange
        (24.4, 28.4, 2),
        (24.44, 28.44, 2),
        (0.0, 28.5, 3),  # gust force 11
        (32.7, 0.0, 4),  # force 12: red
        (0.0, 37.0, 4),  # gust force 13
    ],
)
def test_gale_beaufort_lower_bounds(wind, gust, expected):
    ds = make_forecast({"wind": np.full(6, wind), "gust": np.full(6, gust)})
    assert top_level(ds, "gale") == expected


def test_beaufort_table_matches_gbt_28591():
    expected = {6: 10.8, 7: 13.9, 8: 17.2, 9: 20.8, 10: 24.5, 11: 28.5, 12: 32.7, 13: 37.0}
    assert {f: beaufort_lower_bound(f) for f in expected} == expected


@pytest.mark.parametrize(
    ("vis", "expected"),
    [(500.0, 0), (499.9, 2), (200.0, 2), (199.9, 3), (50.0, 3), (49.9, 4)],
)
def test_fog_strict_less_than(vis, expected):
    # "能见度小于500米" is strict: exactly 500 m is not fog yellow.
    ds = make_forecast({"vis": np.full(6, vis)})
    assert top_level(ds, "fog") == expected


def test_heat_same_levels_in_kelvin_and_celsius():
    temps_c = np.array([30.0, 36.0, 38.2, 40.5, 33.0, 29.0])
    in_c = make_forecast({"t2m": temps_c})
    in_k = make_forecast({"t2m": temps_c + 273.15}, units={"t2m": "K"})
    a = evaluate(in_c, NATIONAL, hazards=["heat"])["heat"].level
    b = evaluate(in_k, NATIONAL, hazards=["heat"])["heat"].level
    assert int(a.max()) == 4
    np.testing.assert_array_equal(a.values, b.values)


def test_precip_in_metres_and_kg_m2_give_same_levels():
    mm = rain_series([20.0, 20.0, 10.0])
    a = make_forecast({"precip": mm})
    b = make_forecast({"precip": mm / 1000.0}, units={"precip": "m"})
    c = make_forecast({"precip": mm}, units={"precip": "kg m-2"})
    levels = [top_level(ds, "rainstorm") for ds in (a, b, c)]
    assert levels == [3, 3, 3]


def test_heat_yellow_needs_three_beijing_days():
    # Hourly from 2026-07-20 00 UTC (08 BJT) for 4 days; 36 °C at 07 UTC (15 BJT) each day.
    times = pd.date_range("2026-07-20T01:00", periods=96, freq="h")
    hour = times.hour.values
    three_days = np.where(hour == 7, 36.0, 25.0)
    two_days = three_days.copy()
    two_days[times.day.values == 22] = 25.0  # break the run on the third day
    issued = pd.Timestamp("2026-07-20T00:00")
    hot = make_forecast({"t2m": three_days}, times=times, issued=issued)
    broken = make_forecast({"t2m": two_days}, times=times, issued=issued)
    assert top_level(hot, "heat") == 2
    assert top_level(broken, "heat") == 0
    level = evaluate(hot, NATIONAL, hazards=["heat"])["heat"].level.isel(lat=0, lon=0)
    onset = pd.Timestamp(level["time"].values[int(np.argmax(level.values >= 2))])
    assert onset == pd.Timestamp("2026-07-20T07:00")  # the run's first hot hour


def test_window_status_and_partial_windows():
    times = pd.date_range("2026-07-10T01:00", periods=6, freq="h")
    times = times.append(pd.DatetimeIndex(["2026-07-10T09:00", "2026-07-10T12:00"]))
    status = window_status(times, pd.Timedelta("3h"), first_step=pd.Timedelta("1h"))
    assert list(status) == ["partial", "partial", "full", "full", "full", "full", "full", "full"]
    status_1h = window_status(times, pd.Timedelta("1h"), first_step=pd.Timedelta("1h"))
    assert list(status_1h[-2:]) == ["unaligned", "unaligned"]


def test_forecast_starting_mid_storm_counts_partial_window():
    # The first two hours already hold 60 mm: the partial 3 h window meets orange.
    ds = make_forecast({"precip": np.r_[30.0, 30.0, np.zeros(10)]})
    assert top_level(ds, "rainstorm") == 3
    # A partial window below the threshold never counts.
    ds = make_forecast({"precip": np.r_[20.0, 20.0, np.zeros(10)]})
    assert top_level(ds, "rainstorm") == 0


def test_window_sum_on_irregular_steps():
    # Hourly, then 3-hourly: the 3 h window at 12:00 is the single 3-hourly step.
    times = pd.DatetimeIndex(
        ["2026-07-10T07:00", "2026-07-10T08:00", "2026-07-10T09:00", "2026-07-10T12:00"]
    )
    import xarray as xr

    da = xr.DataArray([10.0, 20.0, 25.0, 55.0], dims="time", coords={"time": times})
    total = window_reduce(da, pd.Timedelta("3h"), "sum", first_step=pd.Timedelta("1h"))
    assert total.values.tolist() == [10.0, 30.0, 55.0, 55.0]


def test_steps_coarser_than_window_are_not_evaluated():
    times = pd.date_range("2026-07-10T06:00", periods=8, freq="6h")
    ds = make_forecast({"precip": np.full(8, 80.0)}, times=times)
    res = evaluate(ds, NATIONAL, hazards=["rainstorm"])["rainstorm"]
    # 3 h windows cannot be filled by 6 h steps; the 6 h and 12 h windows can.
    assert int(res.level.max()) == 2
    assert any("too coarse" in n for n in res.notes)


def test_missing_variable_is_reported_not_raised():
    ds = make_forecast({"precip": np.zeros(6)})
    res = evaluate(ds, NATIONAL)
    assert not res["gale"].evaluated
    assert "missing variable wind" in res["gale"].notes[0]
    assert res["rainstorm"].evaluated


def test_numpy_and_dask_give_same_levels():
    rng = np.random.default_rng(1)
    rain = rng.gamma(0.6, 12.0, size=(48, 3, 3))
    ds = make_forecast({"precip": rain[:, 0, 0]})
    ds["precip"].values[:] = rain
    eager = evaluate(ds, NATIONAL, hazards=["rainstorm"])["rainstorm"].level
    lazy = evaluate(ds.chunk({"time": 12}), NATIONAL, hazards=["rainstorm"])["rainstorm"].level
    assert lazy.chunks is not None
    np.testing.assert_array_equal(eager.values, lazy.compute().values)


@settings(max_examples=40, deadline=None)
@given(
    rain=st.lists(st.floats(0, 60, allow_nan=False), min_size=6, max_size=18),
    extra=st.floats(0, 40, allow_nan=False),
    where=st.integers(0, 17),
)
def test_more_rain_never_lowers_the_level(rain, extra, where):
    base = np.array(rain)
    more = base.copy()
    more[where % len(base)] += extra
    assert top_level(make_forecast({"precip": more}), "rainstorm") >= top_level(
        make_forecast({"precip": base}), "rainstorm"
    )


@settings(max_examples=40, deadline=None)
@given(
    wind=st.lists(st.floats(0, 40, allow_nan=False), min_size=3, max_size=12),
    extra=st.floats(0, 10, allow_nan=False),
)
def test_stronger_wind_never_lowers_the_level(wind, extra):
    base = np.array(wind)
    assert top_level(make_forecast({"wind": base + extra}), "gale") >= top_level(
        make_forecast({"wind": base}), "gale"
    )


def test_malformed_rule_file_names_row_and_field(tmp_path):
    bad = tmp_path / "local.yaml"
    bad.write_text(
        "ruleset: local\nsource: test\nhazards:\n  rainstorm:\n    levels:\n"
        "      - level: 3\n        lead: 3 h\n        any:\n"
        "          - {variable: precip, reduce: sum, window: 3 h, op: '=>', threshold: 50 mm}\n"
        "        source: test\n",
        encoding="utf-8",
    )
    with pytest.raises(DataFileError, match=r"hazard rainstorm level 3 condition 1: field 'op'"):
        load_rule_table(bad)
    bad.write_text(
        "ruleset: local\nsource: test\nhazards:\n  heat:\n    levels:\n"
        "      - level: 4\n        any:\n"
        "          - {variable: t2m, op: '>=', threshold: 40 parsecs}\n"
        "        source: test\n",
        encoding="utf-8",
    )
    with pytest.raises(DataFileError, match="threshold"):
        load_rule_table(bad)


def test_annex3_follows_its_own_numbers():
    annex3 = load_rule_table("ejin-horo-annex3")
    ds = make_forecast({"wind": np.full(6, 24.5), "t2m": np.full(6, 37.0)})
    res = evaluate(ds, annex3)
    assert int(res["gale"].level.max()) == 1  # force 10 = national orange, extreme
    assert int(res["heat"].level.max()) == 1  # 37 °C = national orange, extreme
    assert annex3["gale"].extra["main_text_colour"] == "red"
    assert annex3["gale"].extra["national_equivalent"] == "orange"


def test_low_visibility_in_dry_air_is_not_fog():
    # A sandstorm's 100 m visibility with 20 % humidity is not fog; in saturated air it is.
    dry = make_forecast({"vis": np.full(6, 100.0), "rh": np.full(6, 20.0)})
    moist = make_forecast({"vis": np.full(6, 100.0), "rh": np.full(6, 97.0)})
    assert top_level(dry, "fog") == 0
    assert top_level(moist, "fog") == 3
    # Without humidity the level is judged on visibility alone, and the note says so.
    res = evaluate(make_forecast({"vis": np.full(6, 100.0)}), NATIONAL, hazards=["fog"])["fog"]
    assert int(res.level.max()) == 3 and any("rh" in n for n in res.notes)


def test_window_straddling_calendar_hours_on_half_hourly_steps():
    # 30-min steps from 00:30: the 3 h window ending 03:30 covers (00:30, 03:30].
    times = pd.date_range("2026-07-10T00:30", periods=12, freq="30min")
    rain = np.zeros(12)
    rain[1:7] = [10.0, 10.0, 5.0, 5.0, 10.0, 10.0]  # 01:00 .. 03:30: 50 mm in 3 h
    ds = make_forecast({"precip": rain}, times=times, issued=pd.Timestamp("2026-07-10T00:00"))
    level = evaluate(ds, NATIONAL, hazards=["rainstorm"])["rainstorm"].level.isel(lat=0, lon=0)
    onset = pd.Timestamp(level["time"].values[int(np.argmax(level.values >= 3))])
    assert onset == pd.Timestamp("2026-07-10T03:30")


def test_local_table_overrides_and_adds_rows(tmp_path):
    local = tmp_path / "local.yaml"
    local.write_text(
        "ruleset: ordos-local\nextends: national\nsource: test local rules\nremove: [typhoon]\n"
        "hazards:\n"
        "  rainstorm:\n    name_zh: 暴雨\n    levels:\n"
        "      - level: 3\n        lead: 3 h\n        any:\n"
        "          - {variable: precip, reduce: sum, window: 3 h, op: '>=', threshold: 40 mm}\n"
        "        source: local test\n"
        "  low_temperature:\n    name_zh: 低温\n    levels:\n"
        "      - level: 4\n        lead: 24 h\n        any:\n"
        "          - {variable: [t2m_min, t2m], reduce: point, op: '<=', threshold: -30 degC}\n"
        "        source: local test\n",
        encoding="utf-8",
    )
    table = load_rule_table(local)
    assert "typhoon" not in table and "low_temperature" in table and "gale" in table
    ds = make_forecast({"precip": rain_series([20.0, 20.0]), "t2m": np.full(24, -30.0)})
    res = evaluate(ds, table)
    assert int(res["rainstorm"].level.max()) == 3  # 40 mm in 3 h: orange locally
    assert int(res["low_temperature"].level.max()) == 4


def test_levels_dataset_has_onset_per_level_and_member_shares():
    import xarray as xr

    ds = make_forecast({"precip": rain_series([20.0, 20.0, 10.0], start=5)})
    members = [ds["precip"] * (1.0 if m < 3 else 0.0) for m in range(10)]
    ens = ds.copy()
    ens["precip"] = xr.concat(members, dim=pd.Index(range(10), name="member"))
    ens["precip"].attrs["units"] = "mm"
    out = evaluate(ens, NATIONAL, hazards=["rainstorm"]).to_dataset()
    prob = out["rainstorm_probability"].isel(lat=0, lon=0).max("time")
    np.testing.assert_allclose(prob.sel(level=3), 0.3)  # 3 of 10 members reach orange
    np.testing.assert_allclose(prob.sel(level=4), 0.0)
    det = evaluate(ds, NATIONAL, hazards=["rainstorm"]).to_dataset()
    onset = det["rainstorm_onset"].isel(lat=0, lon=0)
    assert pd.Timestamp(onset.sel(level=3).values) == pd.Timestamp("2026-07-10T08:00")
    assert pd.isna(onset.sel(level=4).values)
    assert out["rainstorm_level"].attrs["flag_meanings"] == "none blue yellow orange red"
