"""Postures from the plan's text (issue #19 items 6-7): seasons add owners, not levels; the big
loop is the HQ's decision; holidays and events have postures and tasks of their own."""

from __future__ import annotations

import pandas as pd
import pytest

from cityops.pipeline import assess
from cityops.response import load_plan, posture_for
from cityops.response.planning import plan_response
from cityops.scenarios.dataset import make_scenario

SEAT, MAUSOLEUM = "150627100", "150627106"


@pytest.fixture(scope="module")
def plan():
    return load_plan("ejin-horo")


def _table(rows):
    base = {"evaluated": True, "extreme": False, "onset_utc": "2026-07-10T06:00:00Z", "town_name": "镇",
            "end_utc": "2026-07-10T12:00:00Z", "issue_by_utc": "2026-07-10T03:00:00Z"}  # fmt: skip
    return pd.DataFrame([{**base, **r} for r in rows])


def _postures(plan, rows, periods=None, kinds=None):
    resp = plan_response(_table(rows), plan, banner_code="150627", periods=periods,
                         asset_kinds=kinds)  # fmt: skip
    return resp, resp.postures.set_index("town_code")


def _season(key="heating_season"):
    return pd.DataFrame([{"kind": "season", "name_zh": "供暖期", "name_en": "heating season",
                          "unit_code": "", "start": "2026-10-15", "end": "2027-04-15",
                          "expected_crowd": pd.NA, "owners": ["九泰热力"], "source": "x",
                          "key": key}])  # fmt: skip


def test_no_rule_reaches_the_big_loop_by_itself(plan):
    for level in range(5):
        for extreme in (False, True):
            assert posture_for(plan, level, extreme=extreme)["loop"] != "big"
    assert posture_for(plan, 4, big_loop=True)["loop"] == "big"
    assert "000:133" in posture_for(plan, 4, big_loop=True)["basis"]


def test_quiet_heating_season_day_is_routine(plan):
    _, post = _postures(plan, [{"town_code": SEAT, "hazard": "cold_wave", "level": 0}],
                        periods=_season())  # fmt: skip
    assert post.loc[SEAT, "posture"] == "routine" and post.loc[SEAT, "posture_basis"] == ""


def test_blue_gale_in_the_heating_season_is_iv_attention(plan):
    resp, post = _postures(plan, [{"town_code": SEAT, "hazard": "gale", "level": 1}],
                           periods=_season())  # fmt: skip
    assert post.loc[SEAT, "posture"] == "iv_attention"
    assert "000:137" in post.loc[SEAT, "posture_basis"]
    assert set(resp.tasks["loop"]) <= {"small", "middle"}


def test_red_lightning_on_part_of_one_town_is_the_middle_loop(plan):
    rows = [{"town_code": "150627102", "hazard": "lightning", "level": 4},
            {"town_code": SEAT, "hazard": "lightning", "level": 0}]  # fmt: skip
    _, post = _postures(plan, rows, periods=_season("fire_season"))
    assert post.loc["150627102", "posture"] == "ii_response"
    assert post.loc["150627102", "posture_zh"] == "Ⅱ级 响应"
    assert post.loc[SEAT, "posture"] == "routine"


def test_red_extreme_rainstorm_over_the_seat_stays_middle_loop_with_basis(plan):
    rows = [{"town_code": SEAT, "hazard": "rainstorm", "level": 4, "extreme": True}]
    _, post = _postures(plan, rows)
    assert post.loc[SEAT, "posture"] == "ii_response"
    assert "000:135" in post.loc[SEAT, "posture_basis"]
    assert "000:133" in post.loc[SEAT, "posture_basis"]  # the big loop: the HQ decides


def _holiday(name="国庆节"):
    return pd.DataFrame([{"kind": "holiday", "name_zh": name, "name_en": "National Day",
                          "unit_code": "", "start": "2026-10-01", "end": "2026-10-07",
                          "expected_crowd": pd.NA, "owners": [], "source": "x",
                          "key": "national_day"}])  # fmt: skip


def test_quiet_national_day_at_the_mausoleum_is_not_routine(plan):
    rows = [{"town_code": MAUSOLEUM, "hazard": "gale", "level": 0},
            {"town_code": "150627102", "hazard": "gale", "level": 0}]  # fmt: skip
    resp, post = _postures(plan, rows, periods=_holiday(),
                           kinds={MAUSOLEUM: {"scenic_spot"}})  # fmt: skip
    assert post.loc[MAUSOLEUM, "posture"] == "iii_alert"
    assert post.loc[MAUSOLEUM, "periods"] == "国庆节"
    assert post.loc["150627102", "posture"] == "routine"  # no crowded site there
    measures = set(resp.tasks["measure"])
    assert {"period_duty", "period_crowded_site_inspection", "period_security_traffic",
            "period_fire_safety"} <= measures  # fmt: skip
    # the period's tasks start from its first day (00:00 Beijing = 16:00 UTC the day before)
    assert set(resp.tasks["onset_utc"]) == {"2026-09-30T16:00:00Z"}


def test_weather_during_an_event_raises_one_more_never_to_the_big_loop(plan):
    event = pd.DataFrame([{"kind": "event", "name_zh": "那达慕大会", "name_en": "Naadam",
                           "unit_code": SEAT, "start": "2026-07-10", "end": "2026-07-12",
                           "expected_crowd": 30000, "owners": ["文旅局"], "source": "x",
                           "key": ""}])  # fmt: skip
    _, quiet = _postures(plan, [{"town_code": SEAT, "hazard": "gale", "level": 0}], event)
    assert quiet.loc[SEAT, "posture"] == "ii_response"  # 30,000 people: middle loop
    _, red = _postures(plan, [{"town_code": SEAT, "hazard": "rainstorm", "level": 4}], event)
    assert red.loc[SEAT, "posture"] == "ii_response"
    small = event.assign(expected_crowd=2000)
    _, blue = _postures(plan, [{"town_code": SEAT, "hazard": "gale", "level": 1}], small)
    assert blue.loc[SEAT, "posture"] == "ii_response"  # event (III) + weather: one more


def test_assess_a_quiet_national_day_end_to_end(tmp_path):
    path = tmp_path / "nd.nc"
    make_scenario("quiet-day", issued="2026-09-30T16:00Z").to_netcdf(path)
    A = assess(path)
    post = A.response.postures.set_index("town_code")
    assert post.loc[MAUSOLEUM, "posture"] == "iii_alert"  # the Mausoleum's scenic area
    assert (A.table["level"] == 0).all()
    assert len(A.response.tasks) == 4


def test_hq_consultation_proposed_for_red_extreme_over_the_seat_only(plan):
    rows = [{"town_code": SEAT, "hazard": "rainstorm", "level": 4, "extreme": True},
            {"town_code": "150627102", "hazard": "rainstorm", "level": 2}]  # fmt: skip
    resp, _ = _postures(plan, rows)
    assert resp.hq_consultation.startswith("seat=150627100@") and "000:133" in resp.hq_consultation
    rows[0]["extreme"] = False  # red but not extreme: no proposal
    assert _postures(plan, rows)[0].hq_consultation == ""
    far = [{"town_code": "150627102", "hazard": "rainstorm", "level": 4, "extreme": True},
           {"town_code": SEAT, "hazard": "rainstorm", "level": 0},
           {"town_code": "150627103", "hazard": "rainstorm", "level": 0}]  # fmt: skip
    assert _postures(plan, far)[0].hq_consultation == ""  # one unit of three, not the seat


def test_loops_come_from_the_plan_text_with_their_source(plan):
    from cityops.response.plan import assign_loop

    m = {x.id: x for x in plan.measures}
    # the weather bureau relaying a warning with several departments: the middle loop
    relay = m["general_warning_relay"]
    assert assign_loop(plan, relay, 1) == ("middle", "middle_several_departments@000:135")
    # a company's own measure at blue/yellow: the small loop
    heat = next(x for x in plan.measures if "公司" in x.lead_unit)
    assert assign_loop(plan, heat, 1)[0] == "small" and "000:137" in assign_loop(plan, heat, 1)[1]
    # high risk (orange, red) is the middle loop whoever leads
    assert assign_loop(plan, heat, 3) == ("middle", "middle_high_risk@000:135")
    # a big-loop measure is big only by the HQ's decision
    big = next(x for x in plan.measures if x.hq_decision)
    assert assign_loop(plan, big, 4)[0] == "middle"
    assert assign_loop(plan, big, 4, big_loop=True) == ("big", "big_by_hq_decision@000:133")


def test_the_hq_decision_makes_the_big_loop(plan):
    rows = [{"town_code": SEAT, "hazard": "rainstorm", "level": 4, "extreme": True}]
    resp = plan_response(_table(rows), plan, banner_code="150627", big_loop=True)
    assert resp.postures.iloc[0]["posture"] == "i_full_response"
    assert "big" in set(resp.tasks["loop"])
    assert set(plan_response(_table(rows), plan, banner_code="150627").tasks["loop"]) == {"middle"}


def test_geohazard_patrol_only_where_points_are_registered(plan):
    rows = [{"town_code": SEAT, "hazard": "rainstorm", "level": 3},
            {"town_code": MAUSOLEUM, "hazard": "rainstorm", "level": 3},
            {"town_code": "150627103", "hazard": "rainstorm", "level": 2}]  # fmt: skip
    kinds = {"150627103": {"geohazard_point"}}
    resp, _ = _postures(plan, rows, kinds=kinds)
    (patrol,) = resp.tasks[resp.tasks["measure"] == "rain_geohazard_patrol"].to_dict("records")
    assert patrol["triggers"] == "150627103 rainstorm 2"  # not 阿镇 nor 伊金霍洛镇 (002:1426)
    resp, _ = _postures(plan, rows[:2], kinds=kinds)
    assert "rain_geohazard_patrol" not in set(resp.tasks["measure"])
