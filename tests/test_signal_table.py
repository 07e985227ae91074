"""The shipped warning-signal tables checked against the standards' own words.

``EXPECTED`` below is hand-transcribed from ``shared/spec/warning-signals.md`` (CMA Order No. 16,
2007; Beaufort scale GB/T 28591-2012; haze revision 2013; MCI grades GB/T 20481-2017) and
``shared/spec/seed-requirements.md`` §1.1 (Ejin Horo Annex 3). It is deliberately NOT read from
``cityops/rules/tables/*.yaml``: a test generated from the shipped table could not catch a wrong
number in it. The only numbers read from the tables are cityops configuration that the standard
does not give: the probability thresholds of the qualitative lightning and hail criteria
("可能 / 很大 / 非常大"), and of those only the order is asserted.

Wording → comparison (warning-signals.md, interfaces.md §2):
"以上", "以下", "达到", "小于等于" are inclusive (≥, ≤); "低于", "小于" are strict (<).
Every bound is probed on both sides. For ≥ / ≤ a forecast exactly AT the bound reaches the
level and one just outside does not; for < the bound itself does not and just inside does.
Each case is built so that the row's other conditions hold comfortably.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from cityops.rules import evaluate, load_rule_table
from tests.conftest import make_forecast

NATIONAL = load_rule_table("national")
ANNEX3 = load_rule_table("ejin-horo-annex3")
HAZE_2013 = load_rule_table("haze-2013")

COLOUR = {1: "blue", 2: "yellow", 3: "orange", 4: "red"}

# Beaufort force -> lower bound in m/s (GB/T 28591-2012), copied by hand from the standard.
# "风力N级以上" is compared with the unrounded speed: >= FORCE[N].
FORCE = {
    3: 3.4, 4: 5.5, 5: 8.0, 6: 10.8, 7: 13.9, 8: 17.2, 9: 20.8,
    10: 24.5, 11: 28.5, 12: 32.7, 13: 37.0, 14: 41.5, 15: 46.2,
}  # fmt: skip

# Start times. 16:00 UTC is 00:00 Beijing time, so daily criteria see whole Beijing days.
JULY = pd.Timestamp("2026-07-10T00:00")
JULY_00BJT = pd.Timestamp("2026-07-19T16:00")
JANUARY_00BJT = pd.Timestamp("2026-01-14T16:00")
JANUARY = pd.Timestamp("2026-01-15T00:00")
OCTOBER = pd.Timestamp("2026-10-10T00:00")

HEAVY_DUST = 5000.0  # ug m-3: a dust storm's near-surface concentration, far above any proxy
FREEZING_RAIN = 10.0  # mm per hour on a frozen road: as much impact as precipitation can have


# --------------------------------------------------------------------------------------------
# The standard, transcribed.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bound:
    """One numeric bound of a row: ``quantity op value`` in canonical units.

    ``quantity`` names what the case varies: ``precip 3 h`` (sum over the window), ``wind``,
    ``gust``, ``drop`` (fall of the daily minimum), ``tmin`` (daily minimum), ``tmax``,
    ``tmax 3 days``, ``vis``, ``rh``, ``tsurf``, ``mci``. ``step`` is how far "just beyond"
    lies (a multiple of 1/4 where values are summed, so every sum is exact in binary).
    """

    quantity: str
    op: str  # "≥", "≤", "<", ">"
    value: float
    step: float = 0.1

    def probe(self, side: str) -> tuple[float, bool]:
        """(value to put in the forecast, whether the level must be reached)."""
        inclusive = self.op in ("≥", "≤")
        if side == "at":
            return self.value, inclusive
        away = {"≥": -1, "≤": +1, "<": -1, ">": +1}[self.op] * self.step
        # Inclusive: just outside (not reached). Strict: just inside (reached).
        return self.value + away, not inclusive

    def __str__(self) -> str:
        return f"{self.quantity}{self.op}{self.value:g}"


def ge(q, v, step=0.1):
    return Bound(q, "≥", v, step)


def le(q, v, step=0.1):
    return Bound(q, "≤", v, step)


def lt(q, v, step=0.1):
    return Bound(q, "<", v, step)


@dataclass(frozen=True)
class Row:
    hazard: str
    level: int
    lead_h: int | None  # the "N小时内" of the text; None where the standard gives none
    bounds: tuple[Bound, ...]
    wording: str

    @property
    def id(self) -> str:
        return f"{self.hazard}-{COLOUR[self.level]}"


Q = 0.25  # the "just beyond" step of accumulated amounts and of cold-wave temperatures

# fmt: off
EXPECTED: tuple[Row, ...] = (
    # 台风 Typhoon: "…可能或者已经受热带气旋影响，沿海或者陆地平均风力达N级以上，或者阵风M级以上"
    Row("typhoon", 1, 24, (ge("wind", FORCE[6]), ge("gust", FORCE[8])),
        "24小时内…平均风力达6级以上，或者阵风8级以上"),
    Row("typhoon", 2, 24, (ge("wind", FORCE[8]), ge("gust", FORCE[10])),
        "24小时内…平均风力达8级以上，或者阵风10级以上"),
    Row("typhoon", 3, 12, (ge("wind", FORCE[10]), ge("gust", FORCE[12])),
        "12小时内…平均风力达10级以上，或者阵风12级以上"),
    Row("typhoon", 4, 6, (ge("wind", FORCE[12]), ge("gust", FORCE[14])),
        "6小时内…平均风力达12级以上，或者阵风达14级以上"),
    # 暴雨 Rainstorm: "N小时内降雨量将达X毫米以上" (以上: ≥)
    Row("rainstorm", 1, 12, (ge("precip 12 h", 50.0, Q),), "12小时内降雨量将达50毫米以上"),
    Row("rainstorm", 2, 6, (ge("precip 6 h", 50.0, Q),), "6小时内降雨量将达50毫米以上"),
    Row("rainstorm", 3, 3, (ge("precip 3 h", 50.0, Q),), "3小时内降雨量将达50毫米以上"),
    Row("rainstorm", 4, 3, (ge("precip 3 h", 100.0, Q),), "3小时内降雨量将达100毫米以上"),
    # 暴雪 Blizzard (water equivalent): "N小时内降雪量将达X毫米以上"
    Row("blizzard", 1, 12, (ge("snowfall 12 h", 4.0, Q),), "12小时内降雪量将达4毫米以上"),
    Row("blizzard", 2, 12, (ge("snowfall 12 h", 6.0, Q),), "12小时内降雪量将达6毫米以上"),
    Row("blizzard", 3, 6, (ge("snowfall 6 h", 10.0, Q),), "6小时内降雪量将达10毫米以上"),
    Row("blizzard", 4, 6, (ge("snowfall 6 h", 15.0, Q),), "6小时内降雪量将达15毫米以上"),
    # 寒潮 Cold wave: "N小时内最低气温将要下降X℃以上，最低气温小于等于Y℃，陆地平均风力可达Z级以上"
    Row("cold_wave", 1, 48, (ge("drop", 8.0, Q), le("tmin", 4.0, Q), ge("wind", FORCE[5])),
        "48小时内最低气温将要下降8℃以上，最低气温小于等于4℃，陆地平均风力可达5级以上"),
    Row("cold_wave", 2, 24, (ge("drop", 10.0, Q), le("tmin", 4.0, Q), ge("wind", FORCE[6])),
        "24小时内最低气温将要下降10℃以上，最低气温小于等于4℃，陆地平均风力可达6级以上"),
    Row("cold_wave", 3, 24, (ge("drop", 12.0, Q), le("tmin", 0.0, Q), ge("wind", FORCE[6])),
        "24小时内最低气温将要下降12℃以上，最低气温小于等于0℃，陆地平均风力可达6级以上"),
    Row("cold_wave", 4, 24, (ge("drop", 16.0, Q), le("tmin", 0.0, Q), ge("wind", FORCE[6])),
        "24小时内最低气温将要下降16℃以上，最低气温小于等于0℃，陆地平均风力可达6级以上"),
    # 大风 Gale: "N小时内可能受大风影响，平均风力可达X级以上，或者阵风Y级以上"
    Row("gale", 1, 24, (ge("wind", FORCE[6]), ge("gust", FORCE[7])), "平均风力可达6级以上，或者阵风7级以上"),
    Row("gale", 2, 12, (ge("wind", FORCE[8]), ge("gust", FORCE[9])), "平均风力可达8级以上，或者阵风9级以上"),
    Row("gale", 3, 6, (ge("wind", FORCE[10]), ge("gust", FORCE[11])), "平均风力可达10级以上，或者阵风11级以上"),
    Row("gale", 4, 6, (ge("wind", FORCE[12]), ge("gust", FORCE[13])), "平均风力可达12级以上，或者阵风13级以上"),
    # 沙尘暴 Sandstorm: "(能见度小于X米)" (小于: <); needs a dust indicator, never vis alone
    Row("sandstorm", 2, 12, (lt("vis", 1000.0),), "12小时内可能出现沙尘暴天气（能见度小于1000米）"),
    Row("sandstorm", 3, 6, (lt("vis", 500.0),), "6小时内可能出现强沙尘暴天气（能见度小于500米）"),
    Row("sandstorm", 4, 6, (lt("vis", 50.0),), "6小时内可能出现特强沙尘暴天气（能见度小于50米）"),
    # 高温 Heat. Yellow has no "N小时内" in the standard: its lead is not asserted.
    Row("heat", 2, None, (ge("tmax 3 days", 35.0),), "连续三天日最高气温将在35℃以上"),
    Row("heat", 3, 24, (ge("tmax", 37.0),), "24小时内最高气温将升至37℃以上"),
    Row("heat", 4, 24, (ge("tmax", 40.0),), "24小时内最高气温将升至40℃以上"),
    # 干旱 Drought: "预计未来一周综合气象干旱指数达到重旱/特旱"; GB/T 20481-2017:
    # 重旱 -2.0 < MCI <= -1.5, 特旱 MCI <= -2.0, so "reaches" means MCI <= the grade's top.
    Row("drought", 3, 168, (le("mci", -1.5, 0.01),), "预计未来一周综合气象干旱指数达到重旱"),
    Row("drought", 4, 168, (le("mci", -2.0, 0.01),), "预计未来一周综合气象干旱指数达到特旱"),
    # 雷电 Lightning: qualitative ("可能 / 可能性很大 / 可能性非常大"): no number in the standard.
    Row("lightning", 2, 6, (), "6小时内可能发生雷电活动"),
    Row("lightning", 3, 2, (), "2小时内发生雷电活动的可能性很大，或者已经受雷电活动影响"),
    Row("lightning", 4, 2, (), "2小时内发生雷电活动的可能性非常大，或者已经有强烈的雷电活动发生"),
    # 冰雹 Hail: qualitative.
    Row("hail", 3, 6, (), "6小时内可能出现冰雹天气，并可能造成雹灾"),
    Row("hail", 4, 2, (), "2小时内出现冰雹可能性极大，并可能造成重雹灾"),
    # 霜冻 Frost: "地面最低温度将要下降到X℃以下" (以下: ≤); applied in the growing season
    Row("frost", 1, 48, (le("tsurf", 0.0),), "48小时内地面最低温度将要下降到0℃以下"),
    Row("frost", 2, 24, (le("tsurf", -3.0),), "24小时内地面最低温度将要下降到零下3℃以下"),
    Row("frost", 3, 24, (le("tsurf", -5.0),), "24小时内地面最低温度将要下降到零下5℃以下"),
    # 大雾 Fog: "能见度小于X米的雾" (<); fog is moist air: RH < 80 % is not fog (QX/T 113-2010)
    Row("fog", 2, 12, (lt("vis", 500.0), ge("rh", 80.0)), "12小时内可能出现能见度小于500米的雾"),
    Row("fog", 3, 6, (lt("vis", 200.0), ge("rh", 80.0)), "6小时内可能出现能见度小于200米的雾"),
    Row("fog", 4, 2, (lt("vis", 50.0), ge("rh", 80.0)), "2小时内可能出现能见度小于50米的雾"),
    # 霾 Haze (2007): "能见度小于X米的霾"; haze is dry: RH < 80 % and no precipitation
    Row("haze", 2, 12, (lt("vis", 3000.0), lt("rh", 80.0)), "12小时内可能出现能见度小于3000米的霾"),
    Row("haze", 3, 6, (lt("vis", 2000.0), lt("rh", 80.0)), "6小时内可能出现能见度小于2000米的霾"),
    # 道路结冰 Road icing: "当路表温度低于0℃，出现降水" (低于: <); levels by lead and impact
    Row("road_icing", 2, 12, (lt("tsurf", 0.0),), "当路表温度低于0℃，出现降水，12小时内可能出现对交通有影响的道路结冰"),
    Row("road_icing", 3, 6, (lt("tsurf", 0.0),), "当路表温度低于0℃，出现降水，6小时内可能出现对交通有较大影响的道路结冰"),
    Row("road_icing", 4, 2, (lt("tsurf", 0.0),), "当路表温度低于0℃，出现降水，2小时内可能出现或者已经出现对交通有很大影响的道路结冰"),
)
# fmt: on

HAZARDS = (
    "typhoon rainstorm blizzard cold_wave gale sandstorm heat drought lightning hail frost fog "
    "haze road_icing"
).split()  # interfaces.md §2


# --------------------------------------------------------------------------------------------
# Forecast builders: one bound at the probed value, the row's other conditions comfortable.
# --------------------------------------------------------------------------------------------


def spread(total: float, hours: int) -> list[float]:
    """``total`` mm over exactly ``hours`` consecutive hours, in quarter-millimetre amounts so
    that every partial sum is exact in binary (50 mm in 3 h = 16.5 + 16.5 + 17.0)."""
    base = math.floor(total / hours * 4) / 4
    amounts = [base] * (hours - 1) + [total - base * (hours - 1)]
    assert sum(amounts) == total and min(amounts) > 0
    return amounts


def rain_case(var: str, amounts: list[float]) -> xr.Dataset:
    """Dry hours, then ``amounts`` hour by hour, then dry hours."""
    return make_forecast({var: np.array([0.0] * 3 + list(amounts) + [0.0] * 3)})


def point_case(n: int = 6, issued: pd.Timestamp = JULY, **values: float) -> xr.Dataset:
    return make_forecast({k: np.full(n, v) for k, v in values.items()}, issued=issued)


def wind_case(wind: float | None = None, gust: float | None = None) -> xr.Dataset:
    """A steady wind (gusts as strong as the mean) or gusts in a moderate 5 m/s breeze."""
    if gust is None:
        gust = wind
    if wind is None:
        wind = 5.0  # force 3
    return point_case(wind=wind, gust=gust)


def days_series(values: list[float], shape: list[float]) -> np.ndarray:
    """Hourly series over whole Beijing days, one value per day added to a 24-h ``shape``."""
    return np.concatenate([np.asarray(shape) + v for v in values])


# Coldest 00-08 BJT, mildest in the afternoon: the daily minimum is the day's value.
NIGHT_COLD = [0.0] * 8 + [6.0] * 8 + [3.0] * 8
# Hottest in the step ending 15 BJT, 14 °C cooler at night.
AFTERNOON_PEAK = [-14.0] * 8 + [-6.0] * 6 + [0.0] + [-4.0] * 9

# Cold wave: per level, (drop, daily minimum, mean wind) that hold the row comfortably and fail
# the next level up (blue: 24 h drops of 5 °C < yellow's 10; yellow: Tmin 2 °C > orange's 0;
# orange: drop 13 °C < red's 16; wind 9 m/s is force 5, below force 6).
COLD_WAVE_COMFORT = {1: (10.0, 2.0, 9.0), 2: (11.0, 2.0, 12.0), 3: (13.0, -2.0, 12.0),
                     4: (18.0, -2.0, 12.0)}  # fmt: skip


def cold_wave_case(
    level: int, drop: float | None = None, tmin: float | None = None, wind: float | None = None
) -> xr.Dataset:
    """Three whole Beijing days from 00 BJT. Blue's drop is over 48 h (day 1 -> day 3, half
    each day); the others' over 24 h (day 2 -> day 3)."""
    d0, t0, w0 = COLD_WAVE_COMFORT[level]
    drop = d0 if drop is None else drop
    tmin = t0 if tmin is None else tmin
    wind = w0 if wind is None else wind
    if level == 1:
        mins = [tmin + drop, tmin + drop / 2, tmin]
    else:
        mins = [tmin + drop, tmin + drop, tmin]
    t2m = days_series(mins, NIGHT_COLD)
    return make_forecast({"t2m": t2m, "wind": np.full(t2m.size, wind)}, issued=JANUARY_00BJT)


def heat_case(peaks: list[float]) -> xr.Dataset:
    """Whole Beijing days from 00 BJT, each day peaking at its value."""
    return make_forecast({"t2m": days_series(peaks, AFTERNOON_PEAK)}, issued=JULY_00BJT)


FOG_VIS = {2: 300.0, 3: 100.0, 4: 20.0}  # inside the level, outside the next
HAZE_VIS = {2: 2500.0, 3: 1500.0}


def build(row: Row, quantity: str, value: float) -> xr.Dataset:
    """A forecast putting ``quantity`` at ``value``; everything else holds the row."""
    h, lv = row.hazard, row.level
    if h in ("rainstorm", "blizzard"):
        var, hours, _ = quantity.split()
        return rain_case(var, spread(value, int(hours)))
    if h in ("gale", "typhoon"):
        ds = wind_case(**{quantity: value})
        if h == "typhoon":
            ds.attrs["tropical_cyclone"] = "yes"
        return ds
    if h == "cold_wave":
        return cold_wave_case(lv, **{quantity: value})
    if h == "heat":
        # Yellow: the first of three days carries the probe, the other two 36 °C (< orange's
        # 37): just below 35 leaves a run of two days, which is not "连续三天".
        return heat_case([value, 36.0, 36.0] if quantity == "tmax 3 days" else [value, 30.0, 30.0])
    if h == "sandstorm":
        return point_case(vis=value, dust=HEAVY_DUST)
    if h == "fog":
        return point_case(**{"vis": FOG_VIS[lv], "rh": 95.0, quantity: value})
    if h == "haze":
        return point_case(**{"vis": HAZE_VIS[lv], "rh": 50.0, "precip": 0.0, quantity: value})
    if h == "frost":
        return point_case(tsurf=value, issued=OCTOBER)
    if h == "drought":
        return point_case(mci=value)
    if h == "road_icing":
        return point_case(tsurf=value, precip=FREEZING_RAIN)
    raise AssertionError(f"no builder for {h}")


def result(ds: xr.Dataset, hazard: str, table=None):
    """The evaluated hazard (national table unless ``table`` is given)."""
    table = NATIONAL if table is None else table
    return evaluate(ds, table, hazards=[hazard])[hazard]


def top(ds: xr.Dataset, hazard: str, table=None) -> int:
    """The highest level reached anywhere at any valid time."""
    res = result(ds, hazard, table)
    assert res.evaluated, f"{hazard} not evaluated: {res.notes}"
    return int(res.level.max())


# --------------------------------------------------------------------------------------------
# 1. Levels, leads and every numeric bound of the national table.
# --------------------------------------------------------------------------------------------


def test_national_table_has_every_hazard_and_exactly_the_standards_levels():
    assert set(NATIONAL.hazards) == set(HAZARDS)
    for hazard in HAZARDS:
        expected = sorted(r.level for r in EXPECTED if r.hazard == hazard)
        shipped = [rule.level for rule in NATIONAL[hazard].levels]
        assert shipped == expected, f"{hazard}: levels {shipped}, standard {expected}"


@pytest.mark.parametrize("row", [r for r in EXPECTED if r.lead_h is not None], ids=lambda r: r.id)
def test_lead_is_the_standards_within_n_hours(row):
    rule = NATIONAL[row.hazard].level_rule(row.level)
    assert rule.lead == pd.Timedelta(hours=row.lead_h), row.wording


BOUND_CASES = [
    pytest.param(row, bound, side, id=f"{row.id}-{bound}-{side}")
    for row in EXPECTED
    for bound in row.bounds
    for side in ("at", "beyond")
]


@pytest.mark.parametrize(("row", "bound", "side"), BOUND_CASES)
def test_each_bound_of_each_row(row, bound, side):
    value, reached = bound.probe(side)
    res = result(build(row, bound.quantity, value), row.hazard)
    assert res.evaluated, res.notes
    level = int(res.level.max())
    what = f"{row.id} ({row.wording}): {bound.quantity} = {value:g}"
    if reached:
        assert level >= row.level and bool(res.holds(row.level).any()), f"{what} gives {level}"
    else:
        assert level < row.level, f"{what} gives {level}"


@pytest.mark.parametrize(
    "row",
    [r for r in EXPECTED if r.hazard in ("rainstorm", "blizzard")],
    ids=lambda r: r.id,
)
def test_window_length_one_dry_hour_more_misses_the_level(row):
    # The same amount with a dry hour in the middle spans N + 1 hours: not "within N h".
    (bound,) = row.bounds
    var, hours, _ = bound.quantity.split()
    amounts = spread(bound.value, int(hours))
    assert top(rain_case(var, amounts), row.hazard) >= row.level
    half = len(amounts) // 2
    gapped = [*amounts[:half], 0.0, *amounts[half:]]
    assert top(rain_case(var, gapped), row.hazard) < row.level


def test_level_field_is_int8_on_time_lat_lon():
    res = result(wind_case(wind=FORCE[10]), "gale")
    assert res.level.dtype == np.int8
    assert res.level.dims == ("time", "lat", "lon")
    assert set(np.unique(res.level.values)) <= {0, 1, 2, 3, 4}


# --------------------------------------------------------------------------------------------
# Cold wave: "N小时内" is a window, not a calendar-day lag.
# --------------------------------------------------------------------------------------------


def test_cold_wave_blue_fall_within_48_h_after_a_warm_day():
    # Daily minima 4, 12 (warm sector), 3 °C: a 9 °C fall within 48 h to 3 °C (<= 4), force 5.
    t2m = days_series([4.0, 12.0, 3.0], NIGHT_COLD)
    ds = make_forecast({"t2m": t2m, "wind": np.full(t2m.size, 9.0)}, issued=JANUARY_00BJT)
    assert top(ds, "cold_wave") >= 1


def test_cold_wave_wind_on_the_frontal_evening_before_the_cold_morning():
    # Front passes day 2 at noon: force 6 (12 m/s) 12-24 BJT, 5 m/s otherwise. Daily minima
    # 12, 12, 1 °C: an 11 °C fall to 1 °C by 06 BJT on day 3, 6 hours after the gale.
    t2m = days_series([12.0, 12.0, 1.0], NIGHT_COLD)
    wind = np.full(t2m.size, 5.0)
    wind[24 + 12 : 48] = 12.0
    ds = make_forecast({"t2m": t2m, "wind": wind}, issued=JANUARY_00BJT)
    assert top(ds, "cold_wave") >= 2


# --------------------------------------------------------------------------------------------
# Typhoon: only with a tropical-cyclone input.
# --------------------------------------------------------------------------------------------


def test_typhoon_is_not_evaluated_without_a_tropical_cyclone_input():
    # An Ordos gale at typhoon-red speeds is a gale, not a typhoon.
    ds = wind_case(wind=FORCE[12], gust=FORCE[14])
    res = result(ds, "typhoon")
    assert not res.evaluated
    assert any("tropical" in n for n in res.notes), res.notes
    assert top(ds, "gale") == 4


def test_typhoon_is_evaluated_with_a_tropical_cyclone_flag():
    ds = wind_case(wind=5.0)
    ds.attrs["tropical_cyclone"] = "yes"
    assert top(ds, "typhoon") == 0
    ds = wind_case(wind=FORCE[12], gust=FORCE[14])
    ds.attrs["tropical_cyclone"] = "yes"
    assert top(ds, "typhoon") == 4


# --------------------------------------------------------------------------------------------
# 2. Lead-graded hazards: probability field when present, else a documented proxy.
# --------------------------------------------------------------------------------------------

PROBABILITY = {"lightning": "p_lightning", "hail": "p_hail"}


def configured_probability(table, hazard: str) -> dict[int, float]:
    """Per level, the probability threshold of the shipped table. These are cityops
    configuration (the standard's words are "可能 / 很大 / 非常大"), the only numbers this file
    reads from a table; only their order is asserted."""
    var = PROBABILITY[hazard]
    out = {}
    for rule in table[hazard].levels:
        (cond,) = [c for c in rule.criteria.flat() if var in c.variables]
        out[rule.level] = cond.threshold
    return out


@pytest.mark.parametrize("hazard", ["lightning", "hail"])
def test_higher_level_needs_higher_probability(hazard):
    p = configured_probability(NATIONAL, hazard)
    levels = sorted(p)
    assert levels == sorted(r.level for r in EXPECTED if r.hazard == hazard)
    assert all(0.0 < p[lv] <= 1.0 for lv in levels)
    assert all(p[a] < p[b] for a, b in itertools.pairwise(levels)), p


@pytest.mark.parametrize(
    ("hazard", "level"),
    [(r.hazard, r.level) for r in EXPECTED if r.hazard in PROBABILITY],
)
def test_probability_at_its_threshold_gives_the_level(hazard, level):
    threshold = configured_probability(NATIONAL, hazard)[level]
    var = PROBABILITY[hazard]
    res = result(point_case(**{var: threshold}), hazard)
    assert int(res.level.max()) == level
    assert not any("proxy" in n for n in res.notes), res.notes
    assert top(point_case(**{var: threshold - 0.01}), hazard) < level


@pytest.mark.parametrize("hazard", ["lightning", "hail"])
def test_probability_field_wins_over_the_proxy(hazard):
    # A zero probability with a violent convective environment: the probability is used.
    ds = point_case(**{PROBABILITY[hazard]: 0.0, "cape": 5000.0, "precip": 30.0})
    res = result(ds, hazard)
    assert int(res.level.max()) == 0
    assert not any("proxy" in n for n in res.notes), res.notes


@pytest.mark.parametrize("hazard", ["lightning", "hail"])
def test_without_probability_the_proxy_is_used_and_said(hazard):
    # 5000 J/kg of CAPE with 30 mm in an hour: the strongest convection either proxy can see.
    res = result(point_case(cape=5000.0, precip=30.0), hazard)
    assert int(res.level.max()) == 4
    assert any("proxy" in n for n in res.notes), res.notes
    calm = result(point_case(cape=0.0, precip=0.0), hazard)
    assert int(calm.level.max()) == 0
    assert any("proxy" in n for n in calm.notes), calm.notes


def test_road_icing_needs_precipitation_on_a_frozen_road():
    # "当路表温度低于0℃，出现降水": no precipitation, no icing signal however cold the road.
    assert top(point_case(tsurf=-10.0, precip=0.0), "road_icing") == 0
    # 0.1 mm, the smallest measured amount, on a frozen road: at least yellow ("有影响").
    assert top(point_case(tsurf=-0.1, precip=0.1), "road_icing") >= 2
    # The same rain on a road at 0 °C: not "低于0℃".
    assert top(point_case(tsurf=0.0, precip=FREEZING_RAIN), "road_icing") == 0


def test_road_icing_more_precipitation_never_lowers_the_level():
    amounts = [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, FREEZING_RAIN]
    levels = [top(point_case(tsurf=-2.0, precip=a), "road_icing") for a in amounts]
    assert levels == sorted(levels) and levels[-1] == 4, levels


def test_road_icing_notes_say_the_impact_proxy_is_used():
    res = result(point_case(tsurf=-2.0, precip=FREEZING_RAIN), "road_icing")
    assert int(res.level.max()) == 4
    assert any("proxy" in n for n in res.notes), res.notes


# --------------------------------------------------------------------------------------------
# 3. Frost only in the growing season.
# --------------------------------------------------------------------------------------------


def test_frost_outside_the_growing_season_is_level_0_with_a_note():
    res = result(point_case(tsurf=-10.0, issued=JANUARY), "frost")
    assert res.evaluated and int(res.level.max()) == 0
    assert any("season" in n for n in res.notes), res.notes


@pytest.mark.parametrize("issued", [OCTOBER, pd.Timestamp("2026-04-15T00:00")], ids=str)
def test_frost_inside_the_growing_season_reaches_the_level(issued):
    assert top(point_case(tsurf=-10.0, issued=issued), "frost") == 3


# --------------------------------------------------------------------------------------------
# 4. Haze: 2007 never on visibility alone, never in moist air or precipitation; 2013 revision.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("table", [NATIONAL, HAZE_2013], ids=lambda t: t.ruleset)
def test_haze_never_from_visibility_alone(table):
    res = result(point_case(vis=500.0), "haze", table)
    assert not res.evaluated or int(res.level.max()) == 0, res.notes


@pytest.mark.parametrize("rh", [80.0, 90.0, 100.0])
def test_haze_2007_never_in_moist_air(rh):
    assert top(point_case(vis=1000.0, rh=rh, precip=0.0), "haze") == 0


@pytest.mark.parametrize("precip", [0.1, 2.0])
def test_haze_2007_never_with_precipitation(precip):
    assert top(point_case(vis=1000.0, rh=50.0, precip=precip), "haze") == 0


def haze_2013_level(vis: float, rh: float, pm25: float) -> int:
    """The 2013 haze signal, transcribed from warning-signals.md (< and ≤ as written)."""
    yellow = (
        (vis < 3000 and rh < 80)
        or (vis < 3000 and rh >= 80 and 115 < pm25 <= 150)
        or (vis < 5000 and 150 < pm25 <= 250)
    )
    orange = (
        (vis < 2000 and rh < 80)
        or (vis < 2000 and rh >= 80 and 150 < pm25 <= 250)
        or (vis < 5000 and 250 < pm25 <= 500)
    )
    red = (
        (vis < 1000 and rh < 80)
        or (vis < 1000 and rh >= 80 and 250 < pm25 <= 500)
        or (vis < 5000 and pm25 > 500)
    )
    return 4 if red else 3 if orange else 2 if yellow else 0


# (vis m, RH %, PM2.5 ug/m3) -> expected level, each alternative probed at its bounds. Upper
# PM2.5 bounds ("≤ 150", "≤ 250") are seen where the next alternative does not take over.
# fmt: off
HAZE_2013_CASES = [
    # Yellow (a): vis < 3000 and RH < 80 %
    ("Y-a vis just under 3000", 2999.9, 79.9, 50.0, 2),
    ("Y-a vis at 3000", 3000.0, 79.9, 50.0, 0),
    ("Y-a RH at 80: moist, clean: mist not haze", 2999.9, 80.0, 50.0, 0),
    # Yellow (b): vis < 3000, RH ≥ 80 %, 115 < PM2.5 ≤ 150
    ("Y-b PM at 115 (not >)", 2999.9, 80.0, 115.0, 0),
    ("Y-b PM just over 115", 2999.9, 80.0, 115.1, 2),
    ("Y-b PM at 150 (≤)", 2999.9, 80.0, 150.0, 2),
    ("Y-b RH at 80 (≥)", 2999.9, 80.0, 130.0, 2),
    ("Y-b vis at 3000", 3000.0, 90.0, 130.0, 0),
    # Yellow (c): vis < 5000 and 150 < PM2.5 ≤ 250, whatever the humidity
    ("Y-c PM at 150 (not >)", 4999.9, 90.0, 150.0, 0),
    ("Y-c PM just over 150", 4999.9, 90.0, 150.1, 2),
    ("Y-c PM at 250 (≤)", 4999.9, 90.0, 250.0, 2),
    ("Y-c vis at 5000", 5000.0, 90.0, 200.0, 0),
    ("Y-c dry air too", 4999.9, 50.0, 200.0, 2),
    # Orange (a): vis < 2000 and RH < 80 %
    ("O-a vis just under 2000", 1999.9, 79.9, 50.0, 3),
    ("O-a vis at 2000: yellow (a)", 2000.0, 79.9, 50.0, 2),
    ("O-a RH at 80, clean", 1999.9, 80.0, 50.0, 0),
    # Orange (b): vis < 2000, RH ≥ 80 %, 150 < PM2.5 ≤ 250
    ("O-b PM at 150: yellow (b)", 1999.9, 80.0, 150.0, 2),
    ("O-b PM just over 150", 1999.9, 80.0, 150.1, 3),
    ("O-b PM at 250 (≤)", 1999.9, 80.0, 250.0, 3),
    ("O-b vis at 2000: yellow (c)", 2000.0, 80.0, 200.0, 2),
    # Orange (c): vis < 5000 and 250 < PM2.5 ≤ 500
    ("O-c PM at 250: yellow (c)", 4999.9, 90.0, 250.0, 2),
    ("O-c PM just over 250", 4999.9, 90.0, 250.1, 3),
    ("O-c PM at 500 (≤)", 4999.9, 90.0, 500.0, 3),
    ("O-c vis at 5000", 5000.0, 90.0, 400.0, 0),
    # Red (a): vis < 1000 and RH < 80 %
    ("R-a vis just under 1000", 999.9, 79.9, 50.0, 4),
    ("R-a vis at 1000: orange (a)", 1000.0, 79.9, 50.0, 3),
    ("R-a RH at 80, clean", 999.9, 80.0, 50.0, 0),
    # Red (b): vis < 1000, RH ≥ 80 %, 250 < PM2.5 ≤ 500
    ("R-b PM at 250: orange (b)", 999.9, 80.0, 250.0, 3),
    ("R-b PM just over 250", 999.9, 80.0, 250.1, 4),
    ("R-b PM at 500 (≤)", 999.9, 80.0, 500.0, 4),
    ("R-b vis at 1000: orange (c)", 1000.0, 80.0, 400.0, 3),
    # Red (c): vis < 5000 and PM2.5 > 500, whatever the humidity
    ("R-c PM at 500: orange (c)", 4999.9, 99.0, 500.0, 3),
    ("R-c PM just over 500", 4999.9, 99.0, 500.1, 4),
    ("R-c vis at 5000", 5000.0, 50.0, 900.0, 0),
]
# fmt: on


@pytest.mark.parametrize(
    ("vis", "rh", "pm25", "expected"),
    [pytest.param(*c[1:], id=c[0]) for c in HAZE_2013_CASES],
)
def test_haze_2013_alternatives_at_their_bounds(vis, rh, pm25, expected):
    assert haze_2013_level(vis, rh, pm25) == expected  # the transcription agrees with itself
    assert top(point_case(vis=vis, rh=rh, pm25=pm25), "haze", HAZE_2013) == expected


def test_haze_2013_every_bound_combination_in_one_forecast():
    vis = [999.9, 1000.0, 1999.9, 2000.0, 2999.9, 3000.0, 4999.9, 5000.0]
    rh = [79.9, 80.0]
    pm = [115.0, 115.1, 150.0, 150.1, 250.0, 250.1, 500.0, 500.1]
    grid = np.array([(v, r, p) for v in vis for r in rh for p in pm])
    ds = make_forecast({"vis": grid[:, 0], "rh": grid[:, 1], "pm25": grid[:, 2]})
    got = result(ds, "haze", HAZE_2013).level.isel(lat=0, lon=0).values
    want = np.array([haze_2013_level(*g) for g in grid])
    bad = [(tuple(g), int(a), int(b)) for g, a, b in zip(grid, got, want, strict=True) if a != b]
    assert not bad, f"(vis, rh, pm25, engine, standard): {bad[:10]}"


@pytest.mark.parametrize("precip", [0.5, 5.0])
def test_haze_2013_not_in_precipitation(precip):
    # Dry snow in an Ordos winter: RH 75 %, visibility 2.5 km, clean air (PM2.5 40 ug/m3).
    ds = point_case(vis=2500.0, rh=75.0, precip=precip, pm25=40.0)
    assert top(ds, "haze", HAZE_2013) == 0


def test_haze_2013_levels_and_leads():
    assert [r.level for r in HAZE_2013["haze"].levels] == [2, 3, 4]
    assert all(r.lead == pd.Timedelta(hours=24) for r in HAZE_2013["haze"].levels)


# --------------------------------------------------------------------------------------------
# 5. Sandstorm never from visibility alone; fog needs moist air.
# --------------------------------------------------------------------------------------------


def test_sandstorm_is_not_evaluated_from_visibility_alone():
    res = result(point_case(vis=30.0), "sandstorm")
    assert not res.evaluated
    assert any("dust" in n for n in res.notes), res.notes


def test_fog_with_little_dust_is_not_a_sandstorm():
    assert top(point_case(vis=30.0, rh=98.0, dust=100.0), "sandstorm") == 0
    assert top(point_case(vis=30.0, rh=98.0, dust=100.0), "fog") == 4


@pytest.mark.parametrize(("rh", "expected"), [(79.9, 0), (50.0, 0), (80.0, 4), (100.0, 4)])
def test_fog_with_rh_below_80_is_not_fog(rh, expected):
    assert top(point_case(vis=30.0, rh=rh), "fog") == expected


# --------------------------------------------------------------------------------------------
# 6. Ejin Horo Annex 3 (seed-requirements.md §1.1): one "extreme" level per hazard.
# --------------------------------------------------------------------------------------------

# (hazard, lead in h, forecast at the threshold, forecast just on the other side)
# fmt: off
ANNEX3_CASES = [
    # "≥50 mm within 3 h" (002:1322)
    ("rainstorm", 3, rain_case("precip", spread(50.0, 3)), rain_case("precip", spread(49.75, 3))),
    # "≥10 mm snowfall (water equivalent) within 6 h" (002:1323)
    ("blizzard", 6, rain_case("snowfall", spread(10.0, 6)),
     rain_case("snowfall", spread(9.75, 6))),
    # "max temperature rising to ≥37 °C within 24 h" (002:1325)
    ("heat", 24, heat_case([37.0, 30.0, 30.0]), heat_case([36.9, 30.0, 30.0])),
    # "mean wind may reach Beaufort ≥10 or gusts ≥11" within 6 h (002:1328)
    ("gale", 6, wind_case(wind=FORCE[10]), wind_case(wind=FORCE[10] - 0.1)),
    ("gale", 6, wind_case(gust=FORCE[11]), wind_case(gust=FORCE[11] - 0.1)),
    # "visibility <50 m possible within 2 h" (002:1329): strict, 49.9 is extreme, 50 is not
    ("fog", 2, point_case(vis=49.9, rh=95.0), point_case(vis=50.0, rh=95.0)),
    # MCI "reaches severe drought 重旱" in the coming week (002:1330): MCI ≤ −1.5
    ("drought", 168, point_case(mci=-1.5), point_case(mci=-1.49)),
    # "road-surface temperature <0 °C with precipitation … within 2 h" (002:1324)
    ("road_icing", 2, point_case(tsurf=-0.1, precip=FREEZING_RAIN),
     point_case(tsurf=0.0, precip=FREEZING_RAIN)),
]
# fmt: on


@pytest.mark.parametrize(
    ("hazard", "lead_h", "at", "beyond"),
    ANNEX3_CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(ANNEX3_CASES)],
)
def test_annex3_criterion_at_its_threshold_and_just_beyond(hazard, lead_h, at, beyond):
    rules = ANNEX3[hazard]
    assert [r.level for r in rules.levels] == [1]
    assert rules.levels[0].lead == pd.Timedelta(hours=lead_h)
    assert top(at, hazard, ANNEX3) == 1
    assert top(beyond, hazard, ANNEX3) == 0


def test_annex3_rainstorm_over_four_hours_is_not_extreme():
    amounts = spread(50.0, 3)
    assert top(rain_case("precip", [*amounts[:1], 0.0, *amounts[1:]]), "rainstorm", ANNEX3) == 0


def _equals_national_red(hazard: str, ds: xr.Dataset) -> None:
    annex = result(ds, hazard, ANNEX3).level
    red = result(ds, hazard, NATIONAL).level == 4
    np.testing.assert_array_equal((annex == 1).values, red.values)
    assert red.any() and not red.all()  # the comparison sees both outcomes


def test_annex3_road_icing_is_the_national_red_criterion():
    tsurf = np.repeat([-3.0, -0.1, 0.0, 1.0], 6)
    precip = np.tile([0.0, 0.1, 1.0, 2.0, 5.0, FREEZING_RAIN], 4)
    _equals_national_red("road_icing", make_forecast({"tsurf": tsurf, "precip": precip}))
    assert ANNEX3["road_icing"].levels[0].lead == pd.Timedelta(hours=2)


@pytest.mark.parametrize("hazard", ["lightning", "hail"])
def test_annex3_lightning_and_hail_are_the_national_red_wording(hazard):
    p = np.round(np.arange(0.0, 1.0001, 0.05), 2)
    _equals_national_red(hazard, make_forecast({PROBABILITY[hazard]: p}))
    # and without a probability field, through the proxy
    cape = np.repeat([0.0, 1000.0, 2000.0, 3000.0, 5000.0], 5)
    precip = np.tile([0.0, 5.0, 10.0, 20.0, 40.0], 5)
    _equals_national_red(hazard, make_forecast({"cape": cape, "precip": precip}))
    assert ANNEX3[hazard].levels[0].lead == pd.Timedelta(hours=2)


# Main-text colour (000:67, 002:1000) vs the national colour of Annex 3's numbers
# (warning-signals.md "Ejin Horo" paragraph and seed §1.1 "Conflicts").
ANNEX3_COLOURS = {
    "gale": ("red", "orange"),  # force 10 / gust 11 is national orange; main text says red
    "heat": ("red", "orange"),  # 37 °C is national orange (red is 40 °C); main text says red
    "road_icing": ("orange", "red"),  # "within 2 h" is national red; main text orange-or-above
    "rainstorm": ("orange", "orange"),
    "blizzard": ("orange", "orange"),
    "fog": ("red", "red"),
    "lightning": ("red", "red"),
    "hail": ("red", "red"),
}


@pytest.mark.parametrize(("hazard", "colours"), ANNEX3_COLOURS.items())
def test_annex3_main_text_colour_and_national_equivalent(hazard, colours):
    extra = ANNEX3[hazard].extra
    assert (extra["main_text_colour"], extra["national_equivalent"]) == colours


def test_annex3_drought_is_severe_drought_national_orange():
    assert "severe" in ANNEX3["drought"].extra["main_text_colour"]
    assert ANNEX3["drought"].extra["national_equivalent"] == "orange"


def test_annex3_low_temperature_is_not_evaluated_and_says_why():
    res = result(point_case(t2m=-35.0, t2m_min=-38.0, wind=12.0), "low_temperature", ANNEX3)
    assert not res.evaluated
    assert any("Annex 3 gives no" in n for n in res.notes), res.notes
    assert ANNEX3["low_temperature"].extra["main_text_colour"] == "red"


# --------------------------------------------------------------------------------------------
# 7. Units: the engine converts the data (pint) by the dataset's ``units`` attribute.
# --------------------------------------------------------------------------------------------

# (hazard, values in canonical units, the same values in other units, their units, level)
# fmt: off
UNIT_CASES = [
    # 12.5 mm x 4 h = 50 mm within 6 h: yellow; in metres 0.0125 m x 4; 49.75 mm: nothing
    ("rainstorm", {"precip": np.array([0.0, 12.5, 12.5, 12.5, 12.5, 0.0])},
     {"precip": np.array([0.0, 0.0125, 0.0125, 0.0125, 0.0125, 0.0])}, {"precip": "m"}, 2),
    ("rainstorm", {"precip": np.array([0.0, 12.5, 12.5, 12.5, 12.25, 0.0])},
     {"precip": np.array([0.0, 0.0125, 0.0125, 0.0125, 0.01225, 0.0])}, {"precip": "m"}, 0),
    # 37 °C = 310.15 K: orange; 36.9 °C = 310.05 K: not; 40 °C = 313.15 K: red
    ("heat", {"t2m": np.full(6, 37.0)}, {"t2m": np.full(6, 310.15)}, {"t2m": "K"}, 3),
    ("heat", {"t2m": np.full(6, 36.9)}, {"t2m": np.full(6, 310.05)}, {"t2m": "K"}, 0),
    ("heat", {"t2m": np.full(6, 40.0)}, {"t2m": np.full(6, 313.15)}, {"t2m": "K"}, 4),
    # 50 m = 0.05 km is not "<50 m": orange; 49.9 m = 0.0499 km: red
    ("fog", {"vis": np.full(6, 50.0), "rh": np.full(6, 95.0)},
     {"vis": np.full(6, 0.05), "rh": np.full(6, 95.0)}, {"vis": "km"}, 3),
    ("fog", {"vis": np.full(6, 49.9), "rh": np.full(6, 95.0)},
     {"vis": np.full(6, 0.0499), "rh": np.full(6, 95.0)}, {"vis": "km"}, 4),
    ("fog", {"vis": np.full(6, 500.0), "rh": np.full(6, 95.0)},
     {"vis": np.full(6, 0.5), "rh": np.full(6, 95.0)}, {"vis": "km"}, 0),
    # force 10 = 24.5 m/s = 88.2 km/h: orange; 88.0 km/h = 24.44 m/s, recorded 24.4 m/s (wind
    # is recorded to 0.1 m/s, cityops.rules.resolution): yellow
    ("gale", {"wind": np.full(6, 24.5)}, {"wind": np.full(6, 88.2)}, {"wind": "km h-1"}, 3),
    ("gale", {"wind": np.full(6, 88.0 / 3.6)}, {"wind": np.full(6, 88.0)}, {"wind": "km h-1"}, 2),
    # force 6 = 10.8 m/s = 38.88 km/h: blue
    ("gale", {"wind": np.full(6, 10.8)}, {"wind": np.full(6, 38.88)}, {"wind": "km h-1"}, 1),
]
# fmt: on


@pytest.mark.parametrize(
    ("hazard", "canonical", "other", "units", "expected"),
    UNIT_CASES,
    ids=[f"{c[0]}-{next(iter(c[3].values()))}-{i}" for i, c in enumerate(UNIT_CASES)],
)
def test_same_levels_whatever_the_units(hazard, canonical, other, units, expected):
    a = result(make_forecast(canonical), hazard).level
    b = result(make_forecast(other, units=units), hazard).level
    assert int(a.max()) == expected
    np.testing.assert_array_equal(a.values, b.values)
