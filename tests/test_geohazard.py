"""Geological-hazard points and the geological-hazard meteorological risk warning (issue 19 #9).

Seed 002:1426: 68 points (61 ground subsidence, 7 collapse), only in 纳林陶亥镇 (46), 乌兰木伦镇
(18) and 札萨克镇 (4); 阿勒腾席热镇 (阿镇), 红庆河镇, 苏布尔嘎镇 and 伊金霍洛镇 have none. Each
point is graded by the warning's rule table (cityops/rules/tables/geohazard-meteo-risk.yaml):

    grade 1 四级: 24 h >= 25 mm or 72 h >= 40 mm     grade 3 二级: 24 h >= 70 mm or 72 h >= 100 mm
    grade 2 三级: 24 h >= 50 mm or 72 h >= 70 mm     grade 4 一级: 24 h >= 100 mm or 72 h >= 150 mm

("以上" inclusive), one grade lower at points of low-prone zones (C1-C4), only in the key
period 1 May - 30 Sep.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
import xarray as xr
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cityops.errors import DataFileError
from cityops.geo import load_jurisdiction
from cityops.geo.exposure import load_geohazard_zones
from cityops.geo.geohazard import (
    evaluate_geohazard_points,
    geohazard_towns,
    geohazard_warning_table,
    load_geohazard_points,
)

JUR = load_jurisdiction("ejin-horo")
POINTS = load_geohazard_points(JUR)
TABLE = geohazard_warning_table(POINTS, JUR)
NARIN, ULAN, JASAG = "150627103", "150627102", "150627101"
A_ZHEN, EJIN_HORO_TOWN = "150627100", "150627106"
NO_POINTS = (A_ZHEN, "150627104", "150627105", EJIN_HORO_TOWN)
JULY = pd.Timestamp("2026-07-10T01:00")


def one(point_id: str) -> pd.DataFrame:
    sub = POINTS[POINTS["point_id"] == point_id].reset_index(drop=True)
    sub.attrs.update(POINTS.attrs)
    return sub


MID = one("GH-B2-01")  # zone B2, mid-prone, 纳林陶亥镇
LOW = one("GH-C1-01")  # zone C1, low-prone, 纳林陶亥镇


def at_point(
    point: pd.DataFrame,
    series: list[float] | np.ndarray,
    *,
    start: pd.Timestamp = JULY,
    units: str = "mm",
    scale: float = 1.0,
) -> xr.Dataset:
    """Hourly rain ``series`` (mm per hour step) on a 3 x 3 grid of 0.05° around the point."""
    lon, lat = float(point.loc[0, "lon"]), float(point.loc[0, "lat"])
    lats, lons = lat + np.array([-0.05, 0, 0.05]), lon + np.array([-0.05, 0, 0.05])
    series = np.asarray(series, float)
    times = pd.date_range(start, periods=len(series), freq="h")
    data = np.broadcast_to(series[:, None, None], (len(series), 3, 3)) * scale
    return xr.Dataset(
        {"precip": (("time", "lat", "lon"), data.copy(), {"units": units})},
        coords={"time": times, "lat": lats, "lon": lons},
        attrs={"issued": (start - pd.Timedelta("1h")).strftime("%Y-%m-%dT%H:%M:%SZ")},
    )


def grade(point: pd.DataFrame, series, **kw) -> pd.Series:
    return evaluate_geohazard_points(at_point(point, series, **kw), point, JUR, table=TABLE).iloc[0]


def pulses(*amounts_at: tuple[int, float], hours: int = 80) -> np.ndarray:
    """Rain ``amount`` (mm) in the single hour ``at``, nothing else."""
    out = np.zeros(hours)
    for at, amount in amounts_at:
        out[at] += amount
    return out


# --------------------------------------------------------------------------------------------
# The register
# --------------------------------------------------------------------------------------------
def test_register_counts_match_the_seed():
    assert len(POINTS) == 68 and POINTS["point_id"].is_unique
    assert POINTS.groupby("town_code").size().to_dict() == {NARIN: 46, ULAN: 18, JASAG: 4}
    assert POINTS["type"].value_counts().to_dict() == {"subsidence": 61, "collapse": 7}
    assert set(POINTS["type_zh"]) == {"地面塌陷", "崩塌"}
    zones = load_geohazard_zones(JUR).set_index("zone")
    got = POINTS.groupby(["zone", "type"]).size()
    for zone, z in zones.iterrows():
        for kind in ("collapse", "subsidence"):
            assert got.get((zone, kind), 0) == z[kind], (zone, kind)
    # Collapse from road cuts, subsidence from mining goafs (002:1474-1522).
    assert (POINTS.loc[POINTS["type"] == "collapse", "cause"] == "road_cut").all()
    assert (POINTS.loc[POINTS["type"] == "subsidence", "cause"] == "mining_goaf").all()


def test_register_is_marked_illustrative_and_points_lie_in_their_town():
    assert POINTS.attrs["illustrative"]
    assert POINTS["illustrative"].all() and POINTS["approximate"].all()
    assert POINTS["monitor"].str.startswith("示例").all()
    assert POINTS["responsible"].str.startswith("示例").all()
    assert POINTS["name_zh"].str.contains("示例").all()
    assert POINTS["source"].str.contains("002:1426").all()
    for p in POINTS.itertuples():
        assert JUR.unit(p.town_code).geometry.covers(shapely.Point(p.lon, p.lat)), p.point_id


def test_towns_without_points_get_none():
    towns = geohazard_towns(JUR)
    assert sorted(towns) == [JASAG, ULAN, NARIN]
    assert not set(NO_POINTS) & set(towns)
    # A jurisdiction without a register has no geohazard towns.
    assert geohazard_towns("kangbashi") == []


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "ejin-horo"
    shutil.copytree(JUR.path, folder, ignore=shutil.ignore_patterns("review", "plan"))
    return folder


def _edit(folder: Path, change) -> None:
    path = folder / "geohazard_points.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def _set(i: int, **fields):
    def change(data):
        data["points"][i].update(fields)

    return change


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (_set(1, id="GH-B1-01"), r"point 2 \(GH-B1-01\), field 'id': duplicate of point 1"),
        (_set(0, type="sinkhole"), r"field 'type': unknown type 'sinkhole'"),
        (_set(0, cause="rain"), r"field 'cause': unknown cause 'rain'"),
        (_set(0, town="150627100"), r"field 'town': .*not a town of zone B1"),
        (_set(0, zone="Z9"), r"field 'zone': unknown zone 'Z9'"),
        (_set(0, monitor=""), r"field 'monitor': missing"),
        (_set(0, lon="east"), r"field 'lon': expected a number"),
        (_set(0, lon=109.3), r"field 'lon': point 109.3, .* lies outside"),
        (_set(0, threat={"people": -1}), r"field 'threat.people'"),
        (_set(0, illustrative="yes"), r"field 'illustrative': expected true or false"),
        (lambda d: d["points"].pop(0), r"zone B1 has 2 collapse point\(s\), the zones file says 3"),
        (_set(0, type="subsidence", cause="mining_goaf"), r"zone B1 has 2 collapse point"),
    ],
)
def test_register_errors_name_the_file_and_field(tmp_path, change, match):
    folder = _copy(tmp_path)
    _edit(folder, change)
    with pytest.raises(DataFileError, match=match) as err:
        load_geohazard_points(folder)
    assert "geohazard_points.yaml" in str(err.value) and "\n" not in str(err.value)


# --------------------------------------------------------------------------------------------
# The warning: exact thresholds ("以上" is >=), a hand-computed example, units, monotonicity
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rain", "level"),
    [
        (pulses((5, 24.9)), 0),
        (pulses((5, 25.0)), 1),  # 24 h >= 25 mm: 四级
        (pulses((5, 49.9)), 1),
        (pulses((5, 50.0)), 2),  # 24 h >= 50 mm: 三级
        (pulses((5, 69.9)), 2),
        (pulses((5, 70.0)), 3),  # 24 h >= 70 mm: 二级
        (pulses((5, 99.9)), 3),
        (pulses((5, 100.0)), 4),  # 24 h >= 100 mm: 一级
        # 72 h criteria, with every 24 h total below 25 mm: 30 h apart, within 72 h.
        (pulses((2, 20.0), (32, 19.9)), 0),
        (pulses((2, 20.0), (32, 20.0)), 1),  # 72 h >= 40 mm
        (pulses((2, 24.0), (30, 23.0), (60, 23.0)), 2),  # 72 h = 70 mm
        (pulses((2, 24.0), (30, 23.0), (60, 22.9)), 1),  # 69.9 mm
    ],
)
def test_exact_thresholds_at_a_mid_prone_point(rain, level):
    row = grade(MID, rain)
    assert row["evaluated"] and row["level"] == level
    assert (row["grade_zh"] == "") is (level == 0)


def test_low_prone_points_are_one_grade_lower():
    assert grade(LOW, pulses((5, 49.9)))["level"] == 0
    assert grade(LOW, pulses((5, 50.0)))["level"] == 1
    assert grade(LOW, pulses((5, 100.0)))["level"] == 3


def test_hand_computed_example():
    # 10 mm an hour for 6 hours from 01 UTC on 10 July (09 Beijing time), then dry:
    # the 24 h total reaches 30 mm at the 3rd step (03 UTC: 四级 at the mid point), 50 mm at
    # the 5th (05 UTC: 三级), and tops at 60 mm; the 72 h total is the same 60 mm (< 70).
    rain = [10.0] * 6 + [0.0] * 30
    mid = grade(MID, rain)
    assert mid["level"] == 2 and mid["rain_level"] == 2
    assert mid["grade_zh"] == "三级（黄色）：风险较高"
    assert mid["first_time_utc"] == "2026-07-10T03:00:00Z"
    assert mid["peak_time_utc"] == "2026-07-10T05:00:00Z"
    assert mid["rain_24h"] == 60.0 and mid["rain_72h"] == 60.0
    assert mid["trigger_zh"] == "24小时累计降水量≥50 mm"
    # The low-prone point: 三级 rain gives 四级, first reached when the rain reaches 三级.
    low = grade(LOW, rain)
    assert low["level"] == 1 and low["rain_level"] == 2
    assert low["first_time_utc"] == low["peak_time_utc"] == "2026-07-10T05:00:00Z"
    assert low["trigger_zh"] == "24小时累计降水量≥50 mm"


def test_unit_invariance_mm_and_m():
    rain = pulses((3, 30.0), (20, 26.0), (50, 18.0))
    mm = evaluate_geohazard_points(at_point(MID, rain), MID, JUR, table=TABLE)
    m = evaluate_geohazard_points(at_point(MID, rain, units="m", scale=1e-3), MID, JUR, table=TABLE)
    cols = ["level", "rain_level", "first_time_utc", "peak_time_utc", "trigger_zh"]
    pd.testing.assert_frame_equal(mm[cols], m[cols])
    assert m.loc[0, "rain_24h"] == pytest.approx(mm.loc[0, "rain_24h"]) == 56.0
    assert m.loc[0, "rain_72h"] == pytest.approx(74.0) and mm.loc[0, "level"] == 2


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.lists(st.floats(0, 40, allow_nan=False), min_size=30, max_size=60),
    extra=st.lists(st.floats(0, 40, allow_nan=False), min_size=60, max_size=60),
)
def test_more_rain_never_lowers_the_grade(base, extra):
    more = np.asarray(base) + np.asarray(extra[: len(base)])
    for point in (MID, LOW):
        a, b = grade(point, base), grade(point, more)
        assert b["level"] >= a["level"]
        assert b["rain_24h"] >= a["rain_24h"] - 1e-6


def test_not_assessed_is_never_no_risk():
    # Outside the key period: not assessed (no grade, a note), whatever the rain.
    jan = grade(MID, [30.0] * 6, start=pd.Timestamp("2026-01-10T01:00"))
    assert not jan["evaluated"] and jan["level"] == 0 and "key period" in jan["note"]
    # No precipitation in the forecast: not assessed, with the reason.
    ds = at_point(MID, [1.0] * 6).rename({"precip": "t2m"})
    ds["t2m"].attrs["units"] = "degC"
    row = evaluate_geohazard_points(ds, MID, JUR, table=TABLE).iloc[0]
    assert not row["evaluated"] and "precip" in row["note"]
    # A point outside the forecast grid.
    far = at_point(LOW, [30.0] * 6)
    row = evaluate_geohazard_points(far, MID, JUR, table=TABLE).iloc[0]
    assert not row["evaluated"] and "outside the grid" in row["note"]


# --------------------------------------------------------------------------------------------
# The Assessment and the briefing
# --------------------------------------------------------------------------------------------
LAT = np.round(np.arange(38.90, 39.85, 0.05), 2)
LON = np.round(np.arange(109.0, 110.45, 0.05), 2)


def _banner_rain(path: Path, start: str, per_hour: float = 6.0) -> Path:
    """12 hours of ``per_hour`` mm over the whole banner, then 12 dry hours."""
    times = pd.date_range(start, periods=24, freq="h")
    p = np.zeros((24, LAT.size, LON.size))
    p[:12] = per_hour
    ds = xr.Dataset(
        {"precip": (("time", "lat", "lon"), p, {"units": "mm"})},
        coords={"time": times, "lat": LAT, "lon": LON},
        attrs={"issued": (pd.Timestamp(start) - pd.Timedelta("1h")).strftime("%Y-%m-%dT%H:%M:%SZ")},
    )
    ds.to_netcdf(path)
    return path


@pytest.fixture(scope="module")
def july(tmp_path_factory):
    from cityops.pipeline import assess

    return assess(_banner_rain(tmp_path_factory.mktemp("gh") / "july.nc", "2026-07-10T01:00"))


def test_assessment_grades_only_towns_with_points(july):
    towns = july.geohazards.set_index("town_code")
    assert sorted(towns.index) == [JASAG, ULAN, NARIN]
    # 72 mm in 24 h: 二级 at mid-prone points, 三级 at low-prone ones; the town takes the top.
    assert (towns["level"] == 3).all() and towns.loc[NARIN, "points_at_risk"] == 46
    assert towns.loc[NARIN, "rain_24h"] == 72.0
    pts = july.geohazard_points
    assert len(pts) == 68 and set(pts.loc[pts["prone"] == "low", "level"]) == {2}
    table = july.table
    geo = table["extra_concerns"].str.contains("地质灾害")
    assert set(table.loc[geo, "town_code"]) == {JASAG, ULAN, NARIN}
    assert set(table.loc[geo, "hazard"]) == {"rainstorm"}
    for code in NO_POINTS:
        rows = table[table["town_code"] == code]
        assert not rows["extra_concerns"].str.contains("地质灾害").any(), code
        assert not rows["special_conditions"].str.contains("地质灾害").any(), code
        assert "自然资源局" not in "".join(rows["extra_owners"]), code


def test_briefing_lists_points_monitors_and_grade(july):
    from cityops.geo.summary import risk_summary
    from cityops.report.briefing import geohazard_html, periods_html

    zh = geohazard_html(july, NARIN)
    assert "地质灾害隐患点与气象风险" in zh
    assert "二级（橙色）：风险高" in zh and "46/46处隐患点" in zh
    for p in POINTS[POINTS["town_code"] == NARIN].itertuples():
        assert p.point_id in zh and p.monitor in zh and p.responsible in zh
    assert "示例" in zh and "非真实台账" in zh and "cityops假设" in zh
    en = geohazard_html(july, NARIN, lang="en")
    assert "Geological-hazard points and weather risk" in en and "Monitor" in en
    assert "grade II (orange): high risk" in en and "illustrative" in en
    rain = risk_summary(july, NARIN).set_index("hazard").loc["rainstorm"]
    assert "地质灾害隐患点46处" in rain["threatens"]
    assert "地质灾害防治重点时段" in periods_html(july, NARIN)
    for code in NO_POINTS:
        assert geohazard_html(july, code) == "" and geohazard_html(july, code, lang="en") == ""
        assert "地质灾害" not in periods_html(july, code)
        summary = risk_summary(july, code)
        assert not summary["threatens"].str.contains("地质灾害").any()


def test_briefing_without_a_grade_and_unassessed(tmp_path):
    from cityops.pipeline import assess
    from cityops.report.briefing import geohazard_html

    light = assess(_banner_rain(tmp_path / "light.nc", "2026-07-10T01:00", per_hour=1.0))
    text = geohazard_html(light, ULAN)
    assert "18处隐患点均未达到预警等级" in text and "24小时累计最大12 mm" in text
    winter = assess(_banner_rain(tmp_path / "winter.nc", "2026-01-10T01:00"))
    text = geohazard_html(winter, ULAN)
    # Never a reassuring "no risk" when nothing could be assessed.
    assert "无法评估" in text and "不代表无风险" in text and "未达到" not in text
    assert "5月1日—9月30日" in text
    assert "cannot be assessed" in geohazard_html(winter, ULAN, lang="en")
    assert geohazard_html(winter, A_ZHEN) == ""
