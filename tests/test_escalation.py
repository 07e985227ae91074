"""Escalation that runs: the plan's follow-up rules (plan/timing.yaml) on the ledger, through
the library, ``cityops tasks escalate`` and every brief (issue #19 item 4)."""

from __future__ import annotations

import argparse

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cityops import deadlines, ledger
from cityops.response import load_plan
from cityops.tasks_cli import add_tasks_parser, run_tasks

TOWN = "150627100"
RULES = load_plan("ejin-horo").timing["followup"]
ISSUE = "2026-07-10T02:00Z"  # 10:00 Beijing


def _task(measure, *, level=4, due="2026-07-10T06:00Z", loop="middle"):
    return {
        "town_code": TOWN, "hazard": "rainstorm", "measure": measure, "loop": loop,
        "lead_unit": "住建局", "supporting_units": "应急局", "due_utc": due,
        "onset_utc": "2026-07-10T06:00Z", "end_utc": "2026-07-10T12:00Z", "level": level,
        "source": "000:131", "text_zh": "措施", "triggers": f"{TOWN} rainstorm {level}",
    }  # fmt: skip


@pytest.fixture
def db(tmp_path):
    return tmp_path / "ledger.sqlite"


def _merge(db, *rows, live=True):
    pairs = [(TOWN, "rainstorm")] if live else []
    return ledger.merge_run(db, pd.DataFrame(list(rows)), run_time=ISSUE, live=pairs)


def _tid(measure):
    return ledger.task_id_for(TOWN, "rainstorm", measure, "E20260710T0600")


def test_plan_rules_have_clocks_states_and_sources():
    ids = {r["id"] for r in RULES}
    assert {"feedback_within_3_days", "acknowledge_signal", "measure_deadline"} <= ids
    for rule in RULES:
        assert rule["clock"] in deadlines.CLOCKS and rule["basis"] == "calendar"
        assert rule["source"]
    ack = next(r for r in RULES if r["id"] == "acknowledge_signal")
    assert ack["assumption"] is True  # hour limits are cityops' own, said so
    assert {lvl: p["value"] for lvl, p in ack["by_level"].items()} == {4: 1, 3: 2, 2: 6, 1: 12}


def test_red_signal_task_not_acknowledged_within_1_hour_escalates_once(db):
    _merge(db, _task("m1", due="2026-07-10T08:00Z"))
    assert ledger.check_escalation(db, "2026-07-10T03:00Z", rules=RULES) == []  # exactly 1 h
    (done,) = ledger.check_escalation(db, "2026-07-10T03:00:01Z", rules=RULES)
    assert done["task_id"] == _tid("m1") and done["rules"] == ["acknowledge_signal"]
    assert done["escalated"] == 1
    # idempotent: the same or a later run within two weeks escalates nothing more
    assert ledger.check_escalation(db, "2026-07-10T03:00:01Z", rules=RULES) == []
    assert ledger.check_escalation(db, "2026-07-20T00:00Z", rules=RULES) == []
    task = ledger.get_task(db, _tid("m1"))
    assert task["escalated"] == 1 and task["state"] == "issued"  # state kept
    last = ledger.task_history(db, _tid("m1"))[-1]
    assert last["actor"] == ledger.ESCALATION_ACTOR and "acknowledge_signal" in last["note"]


def test_orange_gets_two_hours_and_acknowledging_in_time_escapes(db):
    _merge(db, _task("late", level=3), _task("quick", level=3))
    ledger.update_state(
        db, _tid("quick"), "acknowledged", actor="住建局值班", at="2026-07-10T03:59Z"
    )
    assert ledger.check_escalation(db, "2026-07-10T04:00Z", rules=RULES) == []
    (done,) = ledger.check_escalation(db, "2026-07-10T04:01Z", rules=RULES)
    assert done["task_id"] == _tid("late")


def test_measure_deadline_missed_unless_on_site(db):
    _merge(db, _task("a", due="2026-07-10T02:30Z"), _task("b", due="2026-07-10T02:30Z"))
    for tid in (_tid("a"), _tid("b")):
        ledger.update_state(db, tid, "acknowledged", actor="x", at="2026-07-10T02:10Z")
    ledger.update_state(db, _tid("b"), "on_site", actor="y", at="2026-07-10T02:29Z")
    (done,) = ledger.check_escalation(db, "2026-07-10T02:31Z", rules=RULES)
    assert done["task_id"] == _tid("a") and done["rules"] == ["measure_deadline"]


def test_proposed_tasks_never_escalate(db):
    _merge(db, _task("m1"), live=False)
    assert ledger.get_task(db, _tid("m1"))["state"] == "proposed"
    assert ledger.check_escalation(db, "2026-09-01T00:00Z", rules=RULES) == []


def test_clock_starts_at_the_signal_not_the_run(db):
    _merge(db, _task("m1", due="2026-07-12T00:00Z"), live=False)
    # the signal is issued 5 h after the run that proposed the task
    ledger.record_signals(db, [{
        "town_code": TOWN, "hazard": "rainstorm", "level": 4, "action": "issue",
        "issued_utc": "2026-07-10T07:00:00Z", "issuer": "值班员", "identifier": "sig-1",
        "status": "Actual", "run": "run", "run_issued_utc": ISSUE, "supersedes": None,
        "valid_from_utc": "2026-07-10T08:00:00Z", "valid_to_utc": "2026-07-10T12:00:00Z",
        "note": "",
    }])  # fmt: skip
    assert ledger.get_task(db, _tid("m1"))["state"] == "issued"
    assert ledger.check_escalation(db, "2026-07-10T08:00Z", rules=RULES) == []
    (done,) = ledger.check_escalation(db, "2026-07-10T08:01Z", rules=RULES)
    assert done["rules"] == ["acknowledge_signal"]


def test_calendar_days_run_over_the_national_day(db):
    # Blue (12 h to acknowledge): acknowledged; then no further move. Feedback counts from
    # the issue on 1 Oct (Beijing) in calendar days: missed from 5 Oct 00:00 Beijing.
    ledger.merge_run(db, pd.DataFrame([_task("m1", level=1, due="")]),
                     run_time="2026-09-30T17:00Z", live=[(TOWN, "rainstorm")])  # fmt: skip
    ledger.update_state(db, _tid("m1"), "dispatched", actor="x", at="2026-09-30T18:00Z")
    rules = [r for r in RULES if r["id"] in ("act_within_1_day", "ordinary_closure_7_days")]
    (first,) = ledger.check_escalation(db, "2026-10-02T16:00Z", rules=rules)  # 3 Oct 00:00
    assert first["rules"] == ["act_within_1_day"]  # not acknowledged within 1 calendar day


@settings(max_examples=60, deadline=None)
@given(
    start=st.datetimes(min_value=pd.Timestamp("2026-01-01"), max_value=pd.Timestamp("2027-12-01")),
    later=st.timedeltas(min_value=pd.Timedelta(0), max_value=pd.Timedelta(days=60)),
    extra=st.timedeltas(min_value=pd.Timedelta(0), max_value=pd.Timedelta(days=60)),
    level=st.sampled_from([1, 2, 3, 4]),
)
def test_a_broken_rule_stays_broken_as_time_passes(start, later, extra, level):
    task = {"state": "issued", "loop": "middle", "level": level}
    start = pd.Timestamp(start)
    clocks = {"issued": start, "due": start + pd.Timedelta(hours=3), "last_change": start}
    now = start + later
    before = {b["rule"] for b in deadlines.breaches(task, clocks, now, rules=RULES)}
    after = {b["rule"] for b in deadlines.breaches(task, clocks, now + extra, rules=RULES)}
    assert before <= after
    # and a task further on never breaks more rules than one behind it
    ahead = {b["rule"] for b in deadlines.breaches(dict(task, state="on_site"), clocks,
                                                    now, rules=RULES)}  # fmt: skip
    assert ahead <= before


def _cli(argv):
    parser = argparse.ArgumentParser()
    add_tasks_parser(parser.add_subparsers(dest="command"))
    return run_tasks(parser.parse_args(argv))


def test_cli_escalate_dry_run_then_run_then_nothing(db, capsys):
    _merge(db, _task("m1", due="2026-07-10T08:00Z"))
    now = "2026-07-10T03:30Z"
    assert _cli(["tasks", "escalate", "--now", now, "--dry-run", "--ledger", str(db)]) == 0
    out = capsys.readouterr().out
    assert "would escalate x1" in out and "acknowledge_signal" in out
    assert ledger.get_task(db, _tid("m1"))["escalated"] == 0  # dry run wrote nothing
    assert _cli(["tasks", "escalate", "--now", now, "--ledger", str(db)]) == 0
    assert "1 task(s) escalated" in capsys.readouterr().out
    assert _cli(["tasks", "escalate", "--now", now, "--ledger", str(db)]) == 0
    assert "0 task(s) escalated" in capsys.readouterr().out
    assert _cli(["tasks", "list", "--ledger", str(db)]) == 0
    assert "ESCALATED x1" in capsys.readouterr().out


def test_bad_rule_in_timing_is_refused_on_load(tmp_path):
    import shutil

    from cityops.errors import DataFileError

    plan = tmp_path / "plan"
    shutil.copytree(load_plan("ejin-horo").path, plan)
    text = (plan / "timing.yaml").read_text(encoding="utf-8")
    (plan / "timing.yaml").write_text(
        text.replace("clock: due", "clock: sometime"), encoding="utf-8"
    )
    with pytest.raises(DataFileError, match=r"timing.yaml.*measure_deadline.*clock"):
        load_plan(plan)
