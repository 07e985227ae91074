"""Levels that mean what the signal means (issue 15 items 2-5 and the rule semantics).

The CLI-level tests build small synthetic CF forecasts over Ejin Horo, run
``cityops assess FC [--observed OBS] [--history H] --out DIR`` in a subprocess and read
``town_hazards.csv``. Every expectation comes from the standard's wording (quoted), not from
the shipped table.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cityops.geo.jurisdiction import load_jurisdiction
from cityops.rules import evaluate, load_rule_table
from cityops.rules.resolution import compare, steps, threshold_steps
from tests.conftest import SAMPLES, make_forecast

ENV = {**os.environ, "MPLBACKEND": "agg"}
LAT = np.round(np.arange(38.85, 39.90, 0.05), 3)
LON = np.round(np.arange(108.95, 110.50, 0.05), 3)
ISSUED = pd.Timestamp("2026-07-10T12:00")
SEAT = "150627100"  # 阿勒腾席热镇
NATIONAL = load_rule_table("national")


def cityops(*args):
    return subprocess.run(
        [sys.executable, "-m", "cityops.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=900,
    )


def assess_row(tmp_path, forecast, hazard, *, observed=None, history=None, extra=()):
    """Run ``cityops assess`` and return the seat town's row for ``hazard``."""
    fc = tmp_path / "fc.nc"
    forecast.to_netcdf(fc)
    args = ["assess", fc]
    if observed is not None:
        args += ["--observed", observed]
    if history is not None:
        args += ["--history", history]
    out = tmp_path / "out"
    res = cityops(*args, *extra, "--out", out)
    assert res.returncode == 0, res.stderr
    table = pd.read_csv(out / "town_hazards.csv", dtype={"town_code": str})
    return table[(table.town_code == SEAT) & (table.hazard == hazard)].iloc[0]


def float32(ds):
    """As a model writes it: float32 amounts (binary, so 15.3 is 15.30000019)."""
    for v in ds.data_vars:
        ds[v] = ds[v].astype("float32")
    return ds


def series(values, n=12, at=0):
    out = np.zeros(n)
    out[at : at + len(values)] = values
    return out


# --------------------------------------------------------------------------------------------
# Item 2: exact thresholds lost to binary rounding
# --------------------------------------------------------------------------------------------


def test_cli_decimal_rain_reaching_50_mm_in_3_h_is_orange_and_extreme(tmp_path):
    """暴雨橙色预警信号: "3小时内降雨量将达50毫米以上" (以上 is inclusive). 15.3 + 15.4 + 19.3 mm
    is 50.0 mm in 3 h: orange, and the Annex 3 extreme criterion (50 mm in 3 h) is met,
    although the float32 sum is 49.99999905 mm."""
    assert np.float32(15.3) + (np.float32(15.4) + np.float32(19.3)) < 50  # in this order
    fc = float32(make_forecast({"precip": series([15.3, 15.4, 19.3])}, lat=LAT, lon=LON,
                               issued=ISSUED))  # fmt: skip
    row = assess_row(tmp_path, fc, "rainstorm")
    assert row.level == 3
    assert str(row.extreme).lower() == "true"


def test_cli_wind_recorded_to_01_m_s_is_judged_as_recorded(tmp_path):
    """大风蓝色预警信号: "平均风力可达6级以上"; force 6 is 10.8-13.8 m/s (GB/T 28591-2012).
    Wind is recorded to 0.1 m/s: 10.75 m/s is recorded 10.8 m/s, force 6, blue."""
    fc = make_forecast({"wind": series([10.75], n=6), "gust": np.zeros(6)}, lat=LAT, lon=LON,
                       issued=ISSUED)  # fmt: skip
    assert assess_row(tmp_path, float32(fc), "gale").level == 1


def test_recording_rule_is_round_half_away_from_zero():
    # 10.65 is 10.6499996 in float32: recorded 10.7; 49.94 is 49.9; -0.05 is -0.1.
    assert steps(np.float32(10.65), 0.1) == 107
    assert steps(np.float32(49.94), 0.1) == 499
    assert steps(np.float32(49.96), 0.1) == 500
    assert steps(-0.05, 0.1) == -1
    assert threshold_steps(10.8, 0.1) == 108.0
    assert not compare(np.float32(49.94), ">=", 50.0, 0.1)
    assert compare(np.float64(49.99999905), ">=", 50.0, 0.1)


#: Windowed levels: (hazard, level, variable, window hours, bound in mm).
WINDOWED = [
    ("rainstorm", 1, "precip", 12, "50"),
    ("rainstorm", 2, "precip", 6, "50"),
    ("rainstorm", 3, "precip", 3, "50"),
    ("rainstorm", 4, "precip", 3, "100"),
    ("blizzard", 1, "snowfall", 12, "4"),
    ("blizzard", 2, "snowfall", 12, "6"),
    ("blizzard", 3, "snowfall", 6, "10"),
    ("blizzard", 4, "snowfall", 6, "15"),
]


def decimal_parts(bound: str, n: int, draw) -> list[float]:
    """``n`` amounts in 0.1 mm (not all binary-exact) summing exactly to ``bound``."""
    total = int(Decimal(bound) * 10)
    cuts = sorted(draw(st.lists(st.integers(0, total), min_size=n - 1, max_size=n - 1)))
    tenths = [b - a for a, b in itertools.pairwise([0, *cuts, total])]
    return [float(Decimal(t) / 10) for t in tenths]


@pytest.mark.parametrize(("hazard", "level", "var", "hours", "bound"), WINDOWED)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_decimal_amounts_reaching_the_bound_reach_it_in_any_order(
    hazard, level, var, hours, bound, data
):
    """ "N小时内降雨量/降雪量将达X毫米以上": amounts in 0.1 mm that sum to the bound reach it,
    in every order of the steps, in the fused levels and in the conditions' own ``holds``;
    0.1 mm less does not reach it."""
    parts = decimal_parts(bound, hours, data.draw)
    order = data.draw(st.permutations(parts))
    for amounts, reached in ((order, True), ([*order[:-1], max(order[-1] - 0.1, 0)], False)):
        # The guard itself sums in tenths: a float sum would call 0.1 + 4.6 + 1.3 short of 6.
        less = sum(round(a * 10) for a in order[:-1]) + max(round(order[-1] * 10) - 1, 0)
        if not reached and less >= round(float(bound) * 10):
            continue
        ds = float32(make_forecast({var: series(amounts, n=hours + 2, at=1)}))
        res = evaluate(ds, NATIONAL, hazards=[hazard])[hazard]
        top = int(res.level.max())
        held = bool(res.holds(level).any())
        assert (top >= level) == reached, (amounts, top)
        assert held == reached, amounts
        assert (res.reference_level() == res.level).all()


# --------------------------------------------------------------------------------------------
# Item 3: observed and forecast amounts summed in one window
# --------------------------------------------------------------------------------------------


def observed_grid(tmp_path, rain_last_hours, hours=6):
    times = pd.date_range(ISSUED - pd.Timedelta(hours=hours - 1), periods=hours, freq="h")
    obs = make_forecast({"precip": series(rain_last_hours, n=hours, at=hours - len(rain_last_hours))},
                        lat=LAT, lon=LON, times=times,
                        issued=ISSUED - pd.Timedelta(hours=hours))  # fmt: skip
    path = tmp_path / "obs.nc"
    float32(obs).to_netcdf(path)
    return path


def test_cli_observed_and_forecast_rain_sum_in_one_window(tmp_path):
    """暴雨橙色预警信号: "3小时内降雨量将达50毫米以上". 30 mm observed in the last 2 h and 25 mm
    forecast in the next hour is 55 mm in the 3 h ending an hour from now: orange."""
    obs = observed_grid(tmp_path, [15.0, 15.0])
    fc = make_forecast({"precip": series([25.0])}, lat=LAT, lon=LON, issued=ISSUED)
    assert assess_row(tmp_path, fc, "rainstorm").level == 0  # 25 mm alone: no signal
    row = assess_row(tmp_path, fc, "rainstorm", observed=obs)
    assert row.level == 3
    assert row.onset_utc == "2026-07-10T13:00:00Z"
    assert "joined before the forecast" in row.note


def test_cli_observed_station_csv_joins_the_forecast(tmp_path):
    """The same from a station CSV (``station_id, lon, lat, time_utc, precip``), as the review
    reads it: the station counts in the forecast cell containing it."""
    seat = next(u for u in load_jurisdiction("ejin-horo").units if u.code == SEAT)
    csv = tmp_path / "stations.csv"
    rows = [
        f"53543,{seat.seat_lon},{seat.seat_lat},{t:%Y-%m-%dT%H:%M:%SZ},{p}"
        for t, p in zip(pd.date_range(ISSUED - pd.Timedelta("3h"), periods=4, freq="h"),
                        [0.0, 0.0, 15.0, 15.0], strict=True)
    ]  # fmt: skip
    csv.write_text("station_id,lon,lat,time_utc,precip\n" + "\n".join(rows) + "\n")
    fc = make_forecast({"precip": series([25.0])}, lat=LAT, lon=LON, issued=ISSUED)
    row = assess_row(tmp_path, fc, "rainstorm", observed=csv)
    assert row.level == 3
    assert "stations" in row.note


# --------------------------------------------------------------------------------------------
# Item 4: "或者已达…且降雨可能持续"
# --------------------------------------------------------------------------------------------


def test_cli_observed_exceedance_keeps_its_level_only_while_rain_continues(tmp_path):
    """暴雨橙色预警信号: "3小时内降雨量将达50毫米以上，或者已达50毫米以上且降雨可能持续".
    60 mm observed in the last 3 h: orange and ongoing while rain is forecast in the next hour;
    reported as past (not an ongoing signal) when the forecast is dry."""
    obs = observed_grid(tmp_path, [20.0, 20.0, 20.0])
    wet = make_forecast({"precip": series([0.5])}, lat=LAT, lon=LON, issued=ISSUED)
    row = assess_row(tmp_path, wet, "rainstorm", observed=obs)
    assert row.level == 3 and row.tier == "ongoing"
    dry = make_forecast({"precip": np.zeros(12)}, lat=LAT, lon=LON, issued=ISSUED)
    row = assess_row(tmp_path, dry, "rainstorm", observed=obs)
    assert row.level == 0
    assert row.tier != "ongoing"
    assert "observed level 3 until" in row.note and "not forecast to continue" in row.note


# --------------------------------------------------------------------------------------------
# Item 5: cold wave on the first forecast day, wind of the cold-air process
# --------------------------------------------------------------------------------------------

JANUARY = pd.Timestamp("2026-01-15T00:00")  # 08 BJT: the first Beijing day is partial


def cold_forecast():
    """From 08 BJT on 15 January: 2 °C falling to -3 °C by the evening, force 6 (12 m/s)
    behind the front; -3 °C and light wind after."""
    t2m = np.full(48, -3.0)
    t2m[:8] = np.linspace(2.0, -3.0, 8)
    wind = np.full(48, 4.0)
    wind[4:12] = 12.0
    return make_forecast({"t2m": t2m, "wind": wind}, lat=LAT, lon=LON, issued=JANUARY)


def test_cli_cold_wave_on_the_first_forecast_day_from_the_history(tmp_path):
    """寒潮橙色预警信号: "24小时内最低气温将要下降12℃以上，最低气温小于等于0℃，陆地平均风力可达
    6级以上". The day before the forecast (14 January, from the history) had a minimum of
    10 °C; 15 January falls to -3 °C: 13 °C, with force 6. Without the day before, no fall
    can be found on the first (partial) day."""
    from cityops.scenarios.climate import synthetic_history

    hist = synthetic_history(start="2019-01-01", end="2026-01-14")
    last = hist["time"].values[-1]
    for var in ("t2m_min", "t2m", "t2m_max"):
        if var in hist:
            hist[var].loc[{"time": last}] = 10.0 if var != "t2m_max" else 14.0
    path = tmp_path / "history.nc"
    hist.to_netcdf(path)
    assert assess_row(tmp_path, cold_forecast(), "cold_wave").level == 0
    row = assess_row(tmp_path, cold_forecast(), "cold_wave", history=path)
    assert row.level == 3
    assert row.onset_utc.startswith("2026-01-15")


def test_cli_cold_wave_from_observations_of_the_day_before(tmp_path):
    """The same with the day before observed (hourly t2m, joined before the forecast)."""
    times = pd.date_range(JANUARY - pd.Timedelta("31h"), periods=32, freq="h")
    obs = make_forecast({"t2m": np.full(32, 10.0), "wind": np.full(32, 4.0)}, lat=LAT, lon=LON,
                        times=times, issued=times[0] - pd.Timedelta("1h"))  # fmt: skip
    path = tmp_path / "obs.nc"
    obs.to_netcdf(path)
    row = assess_row(tmp_path, cold_forecast(), "cold_wave", observed=path)
    assert row.level == 3


# --------------------------------------------------------------------------------------------
# One rule semantics: the fused kernel is a backend of evaluate
# --------------------------------------------------------------------------------------------

SCENARIO_FILES = sorted(
    p for p in SAMPLES.glob("*.nc") if not p.name.endswith((".observed.nc", ".history.nc"))
)


@pytest.mark.skipif(not SCENARIO_FILES, reason="run `make samples` first")
@pytest.mark.parametrize("path", SCENARIO_FILES, ids=lambda p: p.stem)
def test_fused_levels_equal_the_xarray_reference_on_every_scenario(path):
    from cityops.ingest import open_forecast

    ds = open_forecast(path).load()
    for name in ("national", "ejin-horo-annex3", "haze-2013"):
        result = evaluate(ds, load_rule_table(name)).load()
        for res in result:
            if not res.evaluated:
                continue
            ref = res.reference_level()
            diff = int((ref != res.level).sum())
            assert diff == 0, f"{path.stem} {name} {res.hazard}: {diff} values differ"
            for crs in (c for cl in res.conditions.values() for c in cl):
                if crs.evaluated:
                    assert crs.value is not None and crs.holds is not None, crs
                    assert crs.value.sizes["time"] == res.level.sizes["time"]
