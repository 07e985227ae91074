"""Levels that mean what the signal's wording says (issue 15, items 6-10, rule-table parts).

Each case is written from the wording of the standard (CMA Order No. 16, 2007, as in
``shared/spec/warning-signals.md``; GB/T 20481-2017 for the drought index), not from the
shipped tables, and driven through the command line: ``cityops assess FORECAST --out DIR``,
then ``town_hazards.csv`` (and ``levels.nc``) are read. The forecasts are small synthetic CF
grids covering the whole banner, every cell with the same time series, so every unit with a
polygon gets the level the series gives.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from cityops.errors import DataFileError
from cityops.rules import evaluate, load_rule_table
from cityops.rules.drought import (
    drought_indices,
    load_drought_config,
    spi,
    weighted_precipitation,
)
from cityops.rules.seasons import HazardSeason, bind_seasons, load_hazard_seasons
from cityops.scenarios.climate import synthetic_history, write_synthetic_history
from cityops.units import ureg
from tests.conftest import ROOT, SAMPLES, make_forecast

ENV = {**os.environ, "MPLBACKEND": "agg"}
NATIONAL = load_rule_table("national")

# A coarse grid over the whole banner (bounds 109.00-110.42 E, 38.92-39.80 N) and Kangbashi.
LAT = tuple(np.round(np.arange(38.85, 39.90, 0.05), 3))
LON = tuple(np.round(np.arange(108.95, 110.50, 0.05), 3))
SEAT = "150627100"  # 阿勒腾席热镇
POLYGON_UNITS = [
    "150627100", "150627101", "150627102", "150627103", "150627104", "150627105",
    "150627106", "150627400", "150627407",
]  # fmt: skip  # 水岸新城 (150627L01) has no polygon and stays not evaluated


def cityops(*args):
    return subprocess.run(
        [sys.executable, "-m", "cityops.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=900,
    )


def utc(text: str) -> pd.Timestamp:
    """A naive UTC timestamp (what the canonical dataset holds)."""
    return pd.Timestamp(text).tz_convert(None)


def banner_forecast(values: dict, issued: str, **kw) -> xr.Dataset:
    return make_forecast(values, lat=LAT, lon=LON, issued=utc(issued), **kw)


def assess(tmp_path: Path, ds: xr.Dataset, *extra, name="fc") -> pd.DataFrame:
    """Run ``cityops assess`` on ``ds``; the town_hazards table (exit 0 asserted)."""
    path = tmp_path / f"{name}.nc"
    ds.to_netcdf(path)
    out = tmp_path / f"out_{name}"
    res = cityops("assess", path, "--out", out, *extra)
    assert res.returncode == 0, res.stderr
    return pd.read_csv(out / "town_hazards.csv", dtype={"town_code": str})


def rows(table: pd.DataFrame, hazard: str) -> pd.DataFrame:
    return table[(table.hazard == hazard) & table.town_code.isin(POLYGON_UNITS)]


def row(table: pd.DataFrame, hazard: str, code: str = SEAT) -> pd.Series:
    return table[(table.hazard == hazard) & (table.town_code == code)].iloc[0]


def hour(issued: str, h: int) -> str:
    return (pd.Timestamp(issued) + pd.Timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------
# Item 6: road icing needs precipitation on a road below 0 °C at every level
# --------------------------------------------------------------------------------------------

JAN = "2026-01-15T00:00Z"


def test_rain_on_a_warm_road_that_freezes_later_is_not_road_icing(tmp_path):
    """道路结冰 (every level): "当路表温度低于0℃，出现降水" - the precipitation must fall on a
    road below 0 °C. Here 1 mm/h falls for three hours on a +2 °C road, which then freezes
    (-1 °C) with no more precipitation: no level at all (before, orange without yellow)."""
    tsurf = [2.0] * 4 + [-1.0] * 8
    precip = [0.0, 1.0, 1.0, 1.0] + [0.0] * 8
    table = assess(tmp_path, banner_forecast({"tsurf": tsurf, "precip": precip}, JAN))
    icing = rows(table, "road_icing")
    assert len(icing) == len(POLYGON_UNITS) and icing.evaluated.all()
    assert (icing.level == 0).all()
    assert (icing.units == "mm").all()  # the amount that ices the road, not a temperature


def test_rain_on_a_frozen_road_gives_nested_levels(tmp_path):
    """ "当路表温度低于0℃，出现降水": on a -1 °C road, hourly 0.04, 0.3, 0.8, 0.2 mm.
    By hand (cityops impact proxy: yellow >= 0.1 mm in the step or in 3 h, orange >= 1 mm
    in 3 h; amounts judged as recorded to 0.1 mm, so 0.04 mm is a trace, 0.0 mm): 3 h sums
    0.04, 0.34, 1.14, 1.3, 1.0, 0.2, 0 recorded 0.0, 0.3, 1.1, 1.3, 1.0, 0.2, 0.0 -> levels
    0, 2, 3, 3, 3, 2, 0. Yellow holds at every hour orange does; orange from hour 3."""
    precip = [0.04, 0.3, 0.8, 0.2] + [0.0] * 8
    ds = banner_forecast({"tsurf": np.full(12, -1.0), "precip": precip}, JAN)
    table = assess(tmp_path, ds)
    seat = row(table, "road_icing")
    assert seat.level == 3 and seat.onset_utc == hour(JAN, 3)
    assert seat.units == "mm"
    levels = xr.open_dataset(tmp_path / "out_fc" / "levels.nc")["road_icing_level"]
    series = levels.isel(lat=10, lon=15).values.tolist()
    assert series[:8] == [0, 2, 3, 3, 3, 2, 0, 0]


@settings(max_examples=40, deadline=None)
@given(
    precip=st.lists(st.sampled_from([0.0, 0.05, 0.1, 0.4, 1.0, 2.5, 6.0]), min_size=8, max_size=8),
    tsurf=st.lists(st.sampled_from([-3.0, -0.1, 0.0, 0.5, 2.0]), min_size=8, max_size=8),
)
def test_road_icing_levels_nest_and_need_a_frozen_road(precip, tsurf):
    """Whatever the series: red => orange => yellow, and no level without precipitation
    that fell on a road below 0 °C within the last 3 h while the road is still below 0 °C."""
    ds = make_forecast({"precip": precip, "tsurf": tsurf}, issued=utc(JAN))
    res = evaluate(ds, NATIONAL, hazards=["road_icing"])["road_icing"]
    y, o, r = (res.holds(k).values for k in (2, 3, 4))
    assert not (o & ~y).any() and not (r & ~o).any()
    p, t = np.asarray(precip), np.asarray(tsurf)
    frozen = np.where(t < 0, p, 0.0)
    recent = np.array([frozen[max(0, i - 2) : i + 1].sum() for i in range(len(p))])
    # Amounts are judged as recorded to 0.1 mm (rounded half away from zero: 0.05 -> 0.1).
    recorded = np.floor(recent / 0.1 + 0.5 + 1e-3)
    level = res.level.values[:, 0, 0]
    assert not ((level > 0) & ~((recorded >= 1) & (t < 0))).any()


# --------------------------------------------------------------------------------------------
# Item 7: haze excludes dust-driven low visibility
# --------------------------------------------------------------------------------------------

APR = "2026-04-08T00:00Z"


@pytest.fixture(scope="module")
def spring_gale(tmp_path_factory):
    path = SAMPLES / "spring-gale.nc"
    if not path.exists():
        path = tmp_path_factory.mktemp("gale") / "spring-gale.nc"
        res = cityops("scenario", "spring-gale", "--out", path)
        assert res.returncode == 0, res.stderr
    return path


def test_spring_gale_has_no_haze_at_the_edge_of_the_sandstorm(spring_gale, tmp_path):
    """霾 (2007): "能见度小于3000米的霾"; haze excludes sand and dust (spec: "haze excludes fog
    and precipitation ... never visibility alone"; a sandstorm needs a dust indicator). The
    spring-gale scenario has a sandstorm (dust thousands of ug/m3) and clear air ahead of
    the front (25 km): low visibility there is dust, never haze. Before, 8 of 9 units were
    haze yellow with the peak in the sandstorm hour."""
    out = tmp_path / "gale"
    res = cityops("assess", spring_gale, "--out", out)
    assert res.returncode == 0, res.stderr
    table = pd.read_csv(out / "town_hazards.csv", dtype={"town_code": str})
    haze = rows(table, "haze")
    assert haze.evaluated.all() and (haze.level == 0).all()
    assert row(table, "sandstorm").level == 3  # the sandstorm itself is still there


def test_dust_nearby_is_not_haze_but_real_haze_is(tmp_path):
    """Hours 1-5: a dust episode (dust 300, 950, 3000, 950, 300 ug/m3, visibility 2,800 m
    and 900 m at the edges and the core, gusts force 8). The edge hours have dust below the
    sandstorm proxy (1,000 ug/m3) and visibility below 3,000 m, but the neighbouring hour is
    a sandstorm: dust, not haze. Hours 10-14: still air (gust 5 m/s), RH 60 %, dust 150,
    visibility 2,500 m: "12小时内可能出现能见度小于3000米的霾" - haze yellow from hour 10."""
    n = 18
    vis = np.full(n, 20000.0)
    dust = np.full(n, 150.0)
    gust = np.full(n, 5.0)
    vis[:5] = [9000.0, 2800.0, 900.0, 2800.0, 9000.0]
    dust[:5] = [300.0, 950.0, 3000.0, 950.0, 300.0]
    gust[:5] = 18.0
    vis[9:14] = 2500.0
    ds = banner_forecast(
        {"vis": vis, "dust": dust, "gust": gust, "rh": np.full(n, 60.0), "precip": 0.0}, APR
    )
    table = assess(tmp_path, ds)
    seat = row(table, "haze")
    assert seat.level == 2 and seat.onset_utc == hour(APR, 10)


def test_low_visibility_in_a_gale_is_not_haze_without_a_dust_indicator():
    """Without a dust variable: visibility 2,500 m, RH 30 %, gusts force 7 (13.9 m/s, the
    gale blue gust) - wind that raises dust does not leave haze: no level; with gusts of
    13.8 m/s the same air is haze yellow (the exclusion is strict at the Beaufort bound)."""
    base = {"vis": np.full(6, 2500.0), "rh": 30.0, "precip": 0.0}
    windy = make_forecast({**base, "gust": 13.9}, issued=utc(APR))
    calm = make_forecast({**base, "gust": 13.8}, issued=utc(APR))
    assert int(evaluate(windy, NATIONAL, hazards=["haze"])["haze"].level.max()) == 0
    assert int(evaluate(calm, NATIONAL, hazards=["haze"])["haze"].level.max()) == 2


# --------------------------------------------------------------------------------------------
# Item 8: the frost season is jurisdiction data, in dates
# --------------------------------------------------------------------------------------------


def frost_night(issued: str, ground: float) -> xr.Dataset:
    """A clear night: ground surface at ``ground`` degC from 02 to 06 BJT, +5 degC else."""
    tsurf = np.full(24, 5.0)
    tsurf[17:22] = ground  # issued 00 UTC = 08 BJT; hours 18-22 are 02-06 BJT
    return banner_forecast({"tsurf": tsurf}, issued)


def test_frost_in_march_and_november_nights_is_outside_the_crop_season(tmp_path):
    """霜冻 is about agriculture: "地面最低温度将要下降到0℃以下，对农业将产生影响". In Ejin
    Horo crops are not in the field in mid-March or mid-November, when nights below 0 °C
    are the normal state: no frost signal, and the row says why."""
    for issued in ("2026-03-15T00:00Z", "2026-11-15T00:00Z"):
        table = assess(tmp_path, frost_night(issued, -4.0), name=issued[:7])
        frost = rows(table, "frost")
        assert (frost.level == 0).all(), issued
        assert frost.note.str.contains("outside its season").all()


def test_late_frost_in_june_is_signalled_and_kangbashi_uses_the_default(tmp_path):
    """Late frost: on 10 June the ground falls to -3.0 °C: "24小时内地面最低温度将要下降到
    零下3℃以下" - frost yellow in Ejin Horo (its own season file) and in Kangbashi (no file
    of its own: the documented Ordos default in cityops/data/hazard_seasons.yaml)."""
    ds = frost_night("2026-06-10T00:00Z", -3.0)
    ejin = assess(tmp_path, ds, name="june")
    assert row(ejin, "frost").level == 2
    assert row(ejin, "frost").onset_utc == hour("2026-06-10T00:00Z", 18)
    kbs = assess(tmp_path, ds, "--jurisdiction", "kangbashi", name="june_kbs")
    frost = kbs[kbs.hazard == "frost"]
    assert (frost[frost.evaluated].level == 2).all() and frost.evaluated.any()


def test_a_jurisdiction_season_file_sets_the_dates(tmp_path):
    """The season is place data: a copy of Kangbashi whose hazard_seasons.yaml says frost
    matters in March makes the same March night frost blue... (ground -1 °C: "下降到0℃以下")."""
    import shutil

    folder = tmp_path / "kbs"
    shutil.copytree(ROOT / "data" / "jurisdictions" / "kangbashi", folder)
    (folder / "hazard_seasons.yaml").write_text(
        "source: test\nseasons:\n  crop_frost:\n"
        '    windows: [{start: "03-01", end: "03-31"}]\n    source: "a test crop calendar"\n',
        encoding="utf-8",
    )
    table = assess(tmp_path, frost_night("2026-03-15T00:00Z", -1.0), "--jurisdiction", folder)
    frost = table[(table.hazard == "frost") & table.evaluated]
    assert len(frost) and (frost.level == 1).all()


def test_a_broken_season_file_is_refused_with_one_line(tmp_path):
    import shutil

    folder = tmp_path / "kbs"
    shutil.copytree(ROOT / "data" / "jurisdictions" / "kangbashi", folder)
    (folder / "hazard_seasons.yaml").write_text(
        'seasons:\n  crop_frost:\n    windows: [{start: "3-1", end: "03-31"}]\n    source: x\n',
        encoding="utf-8",
    )
    path = tmp_path / "fc.nc"
    frost_night("2026-03-15T00:00Z", -1.0).to_netcdf(path)
    res = cityops("assess", path, "--out", tmp_path / "out", "--jurisdiction", folder)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "hazard_seasons.yaml" in lines[0] and "'3-1'" in lines[0]
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "out" / "town_hazards.csv").exists()


def test_season_dates_are_inclusive_local_dates():
    """Window 04-20..06-20 (Beijing dates, inclusive): 20 June 23:00 BJT is in, 21 June 00:30
    BJT out; the step ending at 24:00 on 20 June belongs to 20 June."""
    season = HazardSeason("t", (("04-20", "06-20"),), "test")
    times = pd.DatetimeIndex(["2026-06-20T15:00", "2026-06-20T16:00", "2026-06-20T16:30"])
    assert season.mask(times, "Asia/Shanghai").tolist() == [True, True, False]
    winter = HazardSeason("w", (("11-01", "02-28"),), "test")  # across the new year
    jan = pd.DatetimeIndex(["2026-01-10T00:00", "2026-06-10T00:00"])
    assert winter.mask(jan, "Asia/Shanghai").tolist() == [True, False]


def test_default_and_ejin_horo_seasons_have_sources_and_june():
    default = load_hazard_seasons()["crop_frost"]
    ejin = load_hazard_seasons(ROOT / "data" / "jurisdictions" / "ejin-horo")["crop_frost"]
    for season in (default, ejin):
        assert season.source and "frost" in season.source
        june = pd.DatetimeIndex(["2026-06-12T18:00"])  # 13 June 02 BJT
        march, nov = pd.DatetimeIndex(["2026-03-15T18:00"]), pd.DatetimeIndex(["2026-11-15T18:00"])
        assert season.mask(june, "Asia/Shanghai")[0]
        assert not season.mask(march, "Asia/Shanghai")[0]
        assert not season.mask(nov, "Asia/Shanghai")[0]
    bound = bind_seasons(NATIONAL, ROOT / "data" / "jurisdictions" / "ejin-horo")
    assert bound["frost"].season == ejin and NATIONAL["frost"].season == default


def test_a_season_key_unknown_to_the_data_is_refused(tmp_path):
    from cityops.rules.table import parse_rule_table

    data = {"ruleset": "t", "source": "s", "extends": "national",
            "hazards": {"frost": {"season": "nope", "levels": [
                {"level": 1, "lead": "48 h", "source": "s",
                 "any": [{"variable": "tsurf", "op": "<=", "threshold": "0 degC"}]}]}}}  # fmt: skip
    with pytest.raises(DataFileError, match="season"):
        parse_rule_table(data, tmp_path / "t.yaml")


# --------------------------------------------------------------------------------------------
# Item 9: drought (GB/T 20481-2017)
# --------------------------------------------------------------------------------------------


def daily(values, start="2026-01-01") -> xr.DataArray:
    t = pd.date_range(start, periods=len(values), freq="D")
    return xr.DataArray(np.asarray(values, float), dims="time", coords={"time": t},
                        attrs={"units": "mm"})  # fmt: skip


def test_spiw60_uses_the_standards_decay_085_by_hand():
    """GB/T 20481-2017 SPIW60: WAP = sum_n a**n P_n over 60 days with a = 0.85. With 10 mm
    two days before and 5 mm on the day: WAP = 5 + 0.85**2 * 10 = 5 + 7.225 = 12.225 mm;
    the day before: 0.85 * 10 = 8.5 mm."""
    decay = load_drought_config()["spiw"]["decay"]
    assert decay == 0.85
    values = np.zeros(68)
    values[65], values[67] = 10.0, 5.0
    wap = weighted_precipitation(daily(values), days=60, decay=decay)
    assert float(wap[-1]) == pytest.approx(12.225)
    assert float(wap[-2]) == pytest.approx(8.5)
    assert "0.85" in load_drought_config()["spiw"]["source"]


def test_reference_period_excludes_the_target_period():
    """The SPI of a target day is calibrated on a reference that ends before the target's
    longest accumulation (150 days) begins: for 1 July 2026 the reference is the 30 years
    2 Feb 1996 - 1 Feb 2026 (1 July - 150 days = 1 Feb), so the developing drought (from
    1 May 2026) is not part of its own climatology. The SPI90 equals one calibrated on that
    period explicitly."""
    hist = synthetic_history(start="1990-01-01", end="2026-07-10", dry_from="2026-05-01")
    out = drought_indices(hist, since="2026-07-01")
    assert out.attrs["calibration_period"] == "1996-02-02/2026-02-01"
    assert out["mci"].attrs["calibration_period"] == "1996-02-02/2026-02-01"
    explicit = spi(hist["precip"], 90, calibration=("1996-02-02", "2026-02-01"),
                   since="2026-07-01")  # fmt: skip
    np.testing.assert_allclose(out["spi90"].values, explicit.values)
    # Calibrating on the whole history (target included) understates the drought.
    naive = spi(hist["precip"], 90, calibration=("1996-02-02", "2026-07-10"), since="2026-07-01")
    assert float(out["spi90"].sel(time="2026-07-10")) <= float(naive.sel(time="2026-07-10"))


def test_a_history_too_short_for_a_reference_before_the_target_is_refused():
    from cityops.errors import InputError

    hist = synthetic_history(start="2022-01-01", end="2026-07-10")
    with pytest.raises(InputError, match="reference period"):
        drought_indices(hist, since="2026-07-01")


def test_winter_drought_row_says_ka_is_zero(tmp_path):
    """GB/T 20481-2017 MCI = Ka * (...): the shipped seasonal factor is Ka = 0 in November-
    March, so the MCI is 0 by construction in January: the drought row must say that its
    level 0 is not an all-clear (干旱橙色: "预计未来一周综合气象干旱指数达到重旱")."""
    n = 72
    ds = banner_forecast({"precip": np.zeros(n), "t2m": np.full(n, -10.0)}, "2027-01-15T16:00Z")
    history = tmp_path / "hist.nc"
    write_synthetic_history(history, start="1990-01-01", end="2027-01-15")
    table = assess(tmp_path, ds, "--history", history)
    drought = rows(table, "drought")
    assert drought.evaluated.all() and (drought.level == 0).all()
    assert drought.note.str.contains("Ka = 0 in Jan").all()
    assert drought.note.str.contains("not an all-clear").all()


def test_dry_summer_drought_row_with_reference_before_the_drought(tmp_path):
    """干旱橙色/红色: "预计未来一周综合气象干旱指数达到重旱/特旱". A summer with a tenth of the usual
    rain from 1 May: MCI reaches severe (orange) or extreme (red) in the week from 10 July,
    the reference period ending before the spell began."""
    hist = synthetic_history(start="1990-01-01", end="2026-07-09", dry_from="2026-05-01")
    path = tmp_path / "hist.nc"
    hist.to_netcdf(path)
    n = 72
    ds = banner_forecast({"precip": np.zeros(n), "t2m": np.full(n, 26.0)}, "2026-07-09T16:00Z")
    table = assess(tmp_path, ds, "--history", path)
    drought = rows(table, "drought")
    assert drought.evaluated.all() and (drought.level >= 3).all()


# --------------------------------------------------------------------------------------------
# Item 10 (tables): rain is liquid; a fall of temperature is a difference
# --------------------------------------------------------------------------------------------


def test_rainstorm_counts_rain_not_snow_water(tmp_path):
    """暴雨: "3小时内降雨量将达50毫米以上" - 降雨量 is rain. Hours 1-3: 20 mm/h of water
    equivalent, all snow (snowfall = precip): that is 暴雪 ("6小时内降雪量将达15毫米以上": red),
    not 暴雨. Hours 20-22: 20 mm/h with 2 mm/h of snow: 18 mm/h of rain, 54 mm in 3 h ->
    rainstorm orange ("3小时内降雨量将达50毫米以上") at hour 22 (36 mm at hour 21)."""
    n = 30
    precip, snow = np.zeros(n), np.zeros(n)
    precip[0:3] = snow[0:3] = 20.0
    precip[19:22], snow[19:22] = 20.0, 2.0
    ds = banner_forecast({"precip": precip, "snowfall": snow}, JAN)
    table = assess(tmp_path, ds)
    # 20 mm of snow water in hour 1 already reaches 15 mm in 6 h: red from hour 1.
    assert row(table, "blizzard").level == 4 and row(table, "blizzard").onset_utc == hour(JAN, 1)
    rain = row(table, "rainstorm")
    assert rain.level == 3 and rain.onset_utc == hour(JAN, 22)
    assert rain.peak_value == pytest.approx(54.0)
    assert "phase unknown" not in str(rain.note)


def test_rainstorm_without_snowfall_says_the_phase_is_unknown(tmp_path):
    """Without snowfall in the forecast the phase is unknown: all precipitation is counted as
    rain (55 mm in 3 h: orange) and the row says so."""
    precip = [15.3, 15.4, 24.3] + [0.0] * 9
    table = assess(tmp_path, banner_forecast({"precip": precip}, JAN))
    rain = row(table, "rainstorm")
    assert rain.level == 3
    assert "phase unknown" in rain.note


def test_cold_wave_fall_is_a_temperature_difference(tmp_path):
    """寒潮橙色: "24小时内最低气温将要下降12℃以上，最低气温小于等于0℃，陆地平均风力可达6级以上".
    Day 1 (Beijing) at 12 °C, day 2 at -2 °C, mean wind 11 m/s (force 6): the fall is 14 °C,
    a difference (pint delta_degC, 14 K), shown so in the row's units; orange."""
    n = 48
    t2m = np.r_[np.full(24, 12.0), np.full(24, -2.0)]
    ds = banner_forecast({"t2m": t2m, "wind": np.full(n, 11.0)}, "2026-01-14T16:00Z")
    table = assess(tmp_path, ds)
    cold = row(table, "cold_wave")
    assert cold.level == 3
    assert cold.units == "delta_degC" and cold.peak_value == pytest.approx(14.0)
    assert ureg.Quantity(cold.peak_value, cold.units).to("kelvin").magnitude == pytest.approx(14.0)
    levels = xr.open_dataset(tmp_path / "out_fc" / "levels.nc")
    drops = [v for v in levels.data_vars if "daily_drop" in v]
    # levels.nc is CF: a difference in K (delta_degC is no UDUNITS unit; issue 15 "Outputs
    # that conform", tests/test_cf_conformance.py).
    assert drops and all(levels[v].attrs["units"] == "K" for v in drops)
    # Every unit shown in the table is one pint reads.
    for units in table.units.dropna().unique():
        ureg.parse_units(units)
