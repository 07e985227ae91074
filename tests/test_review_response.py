"""Response review from the task ledger (cityops.review.response); expected values by hand."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest

from cityops import ledger
from cityops.errors import InputError
from cityops.response.plan import load_plan
from cityops.review import response
from cityops.review.records import read_heating, read_incidents

TOWN = "150627100"
OTHER = "150627106"


def _row(measure, *, town=TOWN, loop="middle", due="2026-07-10T10:00Z", hazard="rainstorm"):
    return {
        "town_code": town,
        "hazard": hazard,
        "measure": measure,
        "loop": loop,
        "lead_unit": "旗住房和城乡建设局",
        "supporting_units": "",
        "due_utc": due,
        "onset_utc": "2026-07-10T12:00Z",
        "end_utc": "2026-07-10T18:00Z",
        "level": 3,
        "source": "test",
        "text_zh": "",
    }


def _merge(db, *rows, run="2026-07-10T00:00Z"):
    # The signals are issued: the run's tasks start issued (otherwise proposed).
    live = [(r["town_code"], r["hazard"]) for r in rows]
    return ledger.merge_run(db, pd.DataFrame(list(rows)), run_time=run, live=live)["task_ids"]


def _move(db, task_id, *steps):
    for state, at in steps:
        if state == "closed":  # 销号 after approval by the lead department (another actor)
            ledger.update_state(db, task_id, "approved", actor="lead department",
                                role="旗住房和城乡建设局", at=at)  # fmt: skip
        ledger.update_state(db, task_id, state, actor="duty officer", at=at)


@pytest.fixture
def db(tmp_path):
    return tmp_path / "ledger.sqlite"


@pytest.fixture(scope="module")
def working_plan():
    """The Ejin Horo plan with every follow-up period read as working days."""
    plan = load_plan("ejin-horo")
    timing = dict(plan.timing)
    timing["followup"] = [dict(r, basis="working") for r in plan.timing["followup"]]
    return dataclasses.replace(plan, timing=timing)


def test_dispatch_2330_on_site_0030_beijing_is_60_minutes(db):
    # issued 23:00 Beijing (15:00 UTC); dispatched 23:30; on site 00:30 the next day (Beijing)
    (tid,) = _merge(db, _row("m1"), run="2026-07-10T15:00Z")
    _move(
        db,
        tid,
        ("dispatched", "2026-07-10T15:30Z"),
        ("on_site", "2026-07-10T16:30Z"),
        ("resolved", "2026-07-10T18:00Z"),
        ("closed", "2026-07-11T02:00Z"),
    )
    row = response.task_timeline(db, now="2026-07-12T00:00Z").iloc[0]
    assert row["min_dispatch_to_on_site"] == 60
    assert row["min_to_dispatch"] == 30
    assert row["min_to_on_site"] == 90
    assert row["min_to_resolution"] == 180
    assert row["min_to_sign_off"] == 660  # 15:00Z -> 02:00Z next day
    assert row["issued_utc"] == pd.Timestamp("2026-07-10T15:00")
    assert row["closed_utc"] == pd.Timestamp("2026-07-11T02:00")
    assert row["state"] == "closed" and not row["still_open"] and row["visits"] == 1
    assert list(response.task_timeline(db, now="2026-07-12T00:00Z").columns) == list(
        response.TIMELINE_COLUMNS
    )


def test_plan_deadlines_calendar_days_across_beijing_midnight(db):
    # The shipped plan says calendar days. 23:00 Beijing 30 Sep (15:00Z) and 01:00 Beijing
    # 1 Oct (17:00Z) are two hours apart but on different Beijing dates.
    (early,) = _merge(db, _row("early"), run="2026-09-30T15:00Z")
    (late,) = _merge(db, _row("late", town=OTHER), run="2026-09-30T17:00Z")
    tl = response.task_timeline(db, now="2026-10-02T00:00Z").set_index("task_id")
    # feedback 3 days: 30 Sep + 3 = 3 Oct -> missed from 00:00 Beijing 4 Oct = 3 Oct 16:00Z
    assert tl.loc[early, "feedback_due_utc"] == pd.Timestamp("2026-10-03T16:00")
    # 1 Oct + 3 = 4 Oct -> 4 Oct 16:00Z
    assert tl.loc[late, "feedback_due_utc"] == pd.Timestamp("2026-10-04T16:00")
    # closure, middle loop, 7 days: 1 Oct + 7 = 8 Oct -> 8 Oct 16:00Z
    assert tl.loc[late, "closure_due_utc"] == pd.Timestamp("2026-10-08T16:00")
    assert set(tl["deadline_basis"]) == {"calendar"}


def test_plan_deadlines_working_days_over_national_day(db, working_plan):
    # chinese_calendar 2026: 1-7 Oct National Day holiday; Sat 10 Oct is a make-up working day;
    # Sun 11 Oct off. Issued 1 Oct 01:00 Beijing (30 Sep 17:00Z).
    (tid,) = _merge(db, _row("m1"), run="2026-09-30T17:00Z")
    (big,) = _merge(db, _row("m2", loop="big", town=OTHER), run="2026-09-30T17:00Z")
    _move(db, tid, ("dispatched", "2026-10-09T02:00Z"))  # first feedback: 9 Oct 10:00 Beijing
    tl = response.task_timeline(db, now="2026-10-20T00:00Z", plan=working_plan)
    tl = tl.set_index("task_id")
    # 3 working days after 1 Oct: 8, 9, 10 Oct -> deadline 00:00 Beijing 11 Oct = 10 Oct 16:00Z
    assert tl.loc[tid, "feedback_due_utc"] == pd.Timestamp("2026-10-10T16:00")
    assert not tl.loc[tid, "feedback_late"]
    # 7 working days: 8, 9, 10, 12, 13, 14, 15 Oct -> 15 Oct 16:00Z
    assert tl.loc[tid, "closure_due_utc"] == pd.Timestamp("2026-10-15T16:00")
    assert tl.loc[tid, "closure_late"]  # still on its way on 20 Oct
    # big loop: one calendar month, 1 Oct -> 1 Nov -> 1 Nov 16:00Z
    assert tl.loc[big, "closure_due_utc"] == pd.Timestamp("2026-11-01T16:00")
    assert not tl.loc[big, "closure_late"]
    assert tl.loc[big, "feedback_late"]  # never acted on
    assert set(tl["deadline_basis"]) == {"working"}
    # the same task under the plan's calendar days: feedback by 4 Oct 16:00Z -> late
    cal = response.task_timeline(db, now="2026-10-20T00:00Z").set_index("task_id")
    assert cal.loc[tid, "feedback_due_utc"] == pd.Timestamp("2026-10-04T16:00")
    assert cal.loc[tid, "feedback_late"]


def test_plan_deadline_function():
    rule = {"period": {"value": 3, "unit": "day"}, "basis": "working"}
    assert response.plan_deadline("2026-09-30T17:00Z", rule) == pd.Timestamp("2026-10-10T16:00")
    same_day = {"period": {"value": 0, "unit": "day"}, "basis": "calendar"}
    # 23:30 Beijing 10 Jul -> end of that Beijing day, 10 Jul 16:00Z
    assert response.plan_deadline("2026-07-10T15:30Z", same_day) == pd.Timestamp("2026-07-10T16:00")
    hours = {"period": {"value": 2, "unit": "hour"}, "basis": "calendar"}
    assert response.plan_deadline("2026-07-10T15:30Z", hours) == pd.Timestamp("2026-07-10T17:30")
    with pytest.raises(InputError, match="basis"):
        response.plan_deadline("2026-07-10", {"period": {"value": 1, "unit": "day"}})


def test_overdue_against_task_due(db):
    ids = _merge(db, _row("a_late"), _row("b_on_time"), _row("c_open"), _row("d_stood_down"))
    a, b, c, d = ids
    _move(db, a, ("resolved", "2026-07-10T11:00Z"))  # due 10:00Z
    _move(db, b, ("on_site", "2026-07-10T08:00Z"), ("resolved", "2026-07-10T09:00Z"))
    _move(db, d, ("stood_down", "2026-07-10T11:00Z"))
    tl = response.task_timeline(db, now="2026-07-10T12:00Z").set_index("task_id")
    assert tl.loc[a, "overdue"] and not tl.loc[b, "overdue"]
    assert tl.loc[c, "overdue"] and tl.loc[c, "still_open"]
    assert not tl.loc[d, "overdue"]
    assert tl.loc[d, "stood_down_utc"] == pd.Timestamp("2026-07-10T11:00")
    # before the due time nothing open is overdue yet
    early = response.task_timeline(db, now="2026-07-10T09:30Z").set_index("task_id")
    assert not early.loc[c, "overdue"]


def test_reopened_task_counts_visits_and_final_resolution(db):
    (tid,) = _merge(db, _row("m1"))
    _move(
        db,
        tid,
        ("on_site", "2026-07-10T01:00Z"),
        ("resolved", "2026-07-10T02:00Z"),
        ("on_site", "2026-07-10T05:00Z"),  # the fix did not hold
        ("resolved", "2026-07-10T06:00Z"),
    )
    row = response.task_timeline(db, now="2026-07-11T00:00Z").iloc[0]
    assert row["visits"] == 2
    assert row["on_site_utc"] == pd.Timestamp("2026-07-10T01:00")
    assert row["resolved_utc"] == pd.Timestamp("2026-07-10T06:00")
    assert row["min_to_resolution"] == 360


def test_filters_and_escalation_flag(db):
    _merge(db, _row("m1"), _row("m2", town=OTHER))
    rules = load_plan("ejin-horo").timing["followup"]
    ledger.check_escalation(db, "2026-07-20T00:00Z", rules=rules)  # the plan's rules
    tl = response.task_timeline(db, now="2026-07-20T00:00Z", towns=[OTHER])
    assert list(tl["town_code"]) == [OTHER]
    assert tl.iloc[0]["escalated"] == 1
    assert response.task_timeline(db, now="2026-07-20T00:00Z", end="2026-07-09T00:00Z").empty
    assert response.task_timeline(db, now="2026-07-20T00:00Z", start="2026-07-11T00:00Z").empty
    assert len(response.task_timeline(db, now="2026-07-20T00:00Z", start="2026-07-10T17:00Z")) == 2


def test_missing_ledger_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no task ledger here"):
        response.task_timeline(tmp_path / "nope.sqlite")


def test_closure_rate_per_loop(db):
    ids = _merge(
        db,
        _row("mid_closed"),
        _row("mid_resolved"),
        _row("mid_open"),
        _row("small_1", loop="small"),
        _row("small_2", loop="small"),
        _row("big_gone", loop="big"),
    )
    by = dict(zip(["big_gone", "mid_closed", "mid_open", "mid_resolved", "small_1", "small_2"],
                  ids, strict=True))  # fmt: skip
    for name in ("mid_closed", "small_1", "small_2"):
        _move(db, by[name], ("resolved", "2026-07-10T05:00Z"), ("closed", "2026-07-10T06:00Z"))
    _move(db, by["mid_resolved"], ("resolved", "2026-07-10T05:00Z"))
    _move(db, by["big_gone"], ("stood_down", "2026-07-10T03:00Z"))
    kpis = response.response_kpis(response.task_timeline(db, now="2026-07-11T00:00Z"))
    loops = kpis["closure_by_loop"]
    assert loops["middle"] == {
        "tasks": 3,
        "closed": 1,
        "resolved_or_closed": 2,
        "closure_rate": pytest.approx(1 / 3),
        "resolution_rate": pytest.approx(2 / 3),
    }
    assert loops["small"]["closure_rate"] == 1.0
    assert loops["big"] == {
        "tasks": 0,
        "closed": 0,
        "resolved_or_closed": 0,
        "closure_rate": None,
        "resolution_rate": None,
    }
    tasks = kpis["tasks"]
    assert (tasks["total"], tasks["stood_down"], tasks["active"]) == (6, 1, 5)
    assert tasks["closure_rate"] == pytest.approx(3 / 5)
    assert tasks["still_open"] == 1 and tasks["overdue"] == 1  # mid_open, due 10:00Z
    # to_resolution: 300 min for the four resolved tasks (issued 00:00Z, resolved 05:00Z)
    assert kpis["median_minutes"]["to_resolution"] == 300
    assert kpis["median_minutes"]["to_sign_off"] == 360
    assert kpis["median_minutes"]["to_dispatch"] is None
    # absent data -> absent figures
    assert "four_ones" not in kpis and "rescue_on_scene_2h" not in kpis
    json.dumps(kpis)


HEATING_CSV = """\
# tiny illustrative file
complaint_id,town_code,received_utc,answered_utc,dispatched_utc,on_site_utc,resolved_utc,visits
C1,150627100,2026-01-22T00:00:00Z,2026-01-22T00:00:40Z,2026-01-22T00:01:30Z,2026-01-22T00:50:00Z,2026-01-22T01:30:00Z,1
C2,150627100,2026-01-22T01:00:00Z,2026-01-22T01:01:30Z,2026-01-22T01:02:00Z,2026-01-22T02:10:00Z,2026-01-22T03:00:00Z,1
C3,150627100,2026-01-22T02:00:00Z,2026-01-22T02:00:30Z,2026-01-22T02:02:00Z,2026-01-22T02:30:00Z,2026-01-22T05:00:00Z,2
C4,150627106,2026-01-22T03:00:00+08:00,2026-01-22T03:00:20+08:00,2026-01-22T03:00:50+08:00,2026-01-22T03:45:00+08:00,,1
"""


def test_four_ones_hand_computed(tmp_path):
    path = tmp_path / "heating.csv"
    path.write_text(HEATING_CSV, encoding="utf-8")
    table = read_heating(path)
    assert table.loc[3, "received_utc"] == pd.Timestamp("2026-01-21T19:00")  # +08:00 -> UTC
    four = response.response_kpis(_empty(), heating=path)["four_ones"]
    assert four["complaints"] == 4
    # answered <= 1 min: C1 40 s, C3 30 s, C4 20 s; C2 90 s late
    assert (four["answered"]["count"], four["answered"]["share"]) == (3, 0.75)
    # dispatched <= 1 min after answering: C1 50 s, C2 30 s, C4 30 s; C3 90 s late
    assert four["dispatched"]["count"] == 3
    # on site <= 1 h after dispatch: C1 48.5 min, C3 28 min, C4 44 min; C2 68 min late
    assert four["on_site"]["count"] == 3
    # solved in one visit: C1, C2; C3 took 2 visits; C4 not resolved
    assert (four["solved"]["count"], four["solved"]["share"]) == (2, 0.5)
    assert (four["all_four"]["count"], four["all_four"]["share"]) == (1, 0.25)
    assert four["source"] == "002:1030"


def _empty():
    return pd.DataFrame(columns=list(response.TIMELINE_COLUMNS))


def _incidents(*rows):
    cols = ["incident_id", "town_code", "type", "scale", "reported_utc", "dispatched_utc",
            "on_scene_utc", "relief_utc", "handled", "relief_needed"]  # fmt: skip
    return pd.DataFrame([dict(zip(cols, r, strict=True)) for r in rows])


def test_rescue_within_2h_met():
    table = _incidents(
        # large: 1 h 59 min and exactly 2 h (inclusive) -> both within
        ("I1", TOWN, "围墙倒塌", "较大", "2026-07-10T12:00Z", "2026-07-10T12:10Z",
         "2026-07-10T14:09Z", "2026-07-10T15:00Z", "true", "true"),
        ("I2", TOWN, "人员被困", "major", "2026-07-10T12:00Z", "2026-07-10T12:30Z",
         "2026-07-10T14:30Z", "2026-07-10T23:00Z", "true", "true"),
        # general: 3 h, out of the 2 h scope; relief after 11 h (not within 10 h)
        ("I3", TOWN, "道路积水", "一般", "2026-07-10T12:00Z", "2026-07-10T12:00Z",
         "2026-07-10T15:00Z", "2026-07-10T23:00Z", "true", "true"),
        # large without a dispatch order: not in scope; no relief needed
        ("I4", OTHER, "停电", "large", "2026-07-10T12:00Z", "", "", "", "false", "false"),
    )  # fmt: skip
    kpis = response.response_kpis(_empty(), incidents=table)
    rescue = kpis["rescue_on_scene_2h"]
    assert (rescue["incidents"], rescue["within"], rescue["share"]) == (2, 2, 1.0)
    assert rescue["target"] == 0.9 and rescue["target_op"] == ">=" and rescue["met"] is True
    assert rescue["source"] == "004:269-271"
    relief = kpis["initial_relief_10h"]
    # needing relief: I1 (3 h), I2 (11 h), I3 (11 h) -> 1 of 3 within 10 h
    assert (relief["incidents"], relief["within"]) == (3, 1)
    assert relief["share"] == pytest.approx(1 / 3) and relief["met"] is False
    assert kpis["incidents"] == 4


def test_rescue_within_2h_not_met():
    table = _incidents(
        ("I1", TOWN, "x", "large", "2026-07-10T12:00Z", "2026-07-10T12:00Z",
         "2026-07-10T14:01Z", "", "true", "false"),  # 2 h 01 min
        ("I2", TOWN, "x", "especially_major", "2026-07-10T12:00Z", "2026-07-10T12:00Z",
         "2026-07-10T13:00Z", "", "true", "false"),
        ("I3", TOWN, "x", "large", "2026-07-10T12:00Z", "2026-07-10T12:00Z", "", "",
         "false", "false"),  # never reached the scene
    )  # fmt: skip
    kpis = response.response_kpis(_empty(), incidents=table)
    rescue = kpis["rescue_on_scene_2h"]
    assert (rescue["incidents"], rescue["within"]) == (3, 1)
    assert rescue["met"] is False
    # nobody needed relief: no share, no verdict (never invented)
    relief = kpis["initial_relief_10h"]
    assert relief["incidents"] == 0 and relief["share"] is None and relief["met"] is None


def test_incident_reader_errors(tmp_path):
    header = ("incident_id,town_code,type,scale,reported_utc,dispatched_utc,on_scene_utc,"
              "relief_utc,handled\n")  # fmt: skip
    bad_time = tmp_path / "bad_time.csv"
    bad_time.write_text(header + "I1,150627100,x,一般,yesterday,,,,true\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad_time\.csv: column 'reported_utc', row 1"):
        read_incidents(bad_time)
    order = tmp_path / "order.csv"
    order.write_text(
        header + "I1,150627100,x,较大,2026-07-10T12:00Z,2026-07-10T13:00Z,2026-07-10T12:30Z,,1\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError, match=r"order\.csv: column 'on_scene_utc', row 1: .*before"):
        read_incidents(order)
    scale = tmp_path / "scale.csv"
    scale.write_text(header + "I1,150627100,x,huge,2026-07-10T12:00Z,,,,no\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"scale\.csv: column 'scale', row 1: unknown"):
        read_incidents(scale)
    missing = tmp_path / "missing.csv"
    missing.write_text("incident_id,town_code\nI1,150627100\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"missing\.csv: missing column\(s\) type, scale"):
        read_incidents(missing)


def test_samples_match_their_readme():
    from cityops.review.safety import load_safety_config

    samples = load_safety_config().path.parent / "samples"
    kpis = response.response_kpis(
        _empty(),
        incidents=samples / "incidents.csv",
        heating=samples / "heating_complaints.csv",
    )
    assert kpis["rescue_on_scene_2h"]["share"] == 0.5
    assert kpis["rescue_on_scene_2h"]["met"] is False
    assert kpis["initial_relief_10h"]["share"] == 0.75
    assert kpis["initial_relief_10h"]["met"] is True
    assert kpis["four_ones"]["all_four"]["count"] == 4
    assert "ILLUSTRATIVE" in (samples / "README.md").read_text(encoding="utf-8")


def test_targets_file_is_validated(tmp_path):
    bad = tmp_path / "targets.yaml"
    bad.write_text(
        "source: x\nincident_scales: [{id: large, rank: 2}]\n"
        "incident_targets:\n  - {id: t, from: reported_utc, to: relief_utc, "
        "within: {value: 2, unit: hour}, target: {op: '>=', value: 90}, source: s}\n"
        "task_deadlines: {feedback: f, closure_by_loop: {big: a, middle: b, small: c}}\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError, match=r"entry 't', field 'target'"):
        response.load_response_targets(bad)
