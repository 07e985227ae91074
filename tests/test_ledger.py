"""The task ledger (interfaces.md §7) and ``cityops tasks``."""

from __future__ import annotations

import csv
import multiprocessing
import sqlite3

import pandas as pd
import pytest

from cityops import ledger
from cityops.errors import InputError
from cityops.tasks_cli import add_tasks_parser, run_tasks

TOWN = "150627100"
RUN1 = "2026-07-10T00:00Z"


def _row(
    measure,
    *,
    town=TOWN,
    hazard="rainstorm",
    onset="2026-07-10T12:00Z",
    end="2026-07-10T18:00Z",
    due="2026-07-10T10:00Z",
    level=2,
    loop="middle",
    text="text",
):
    return {
        "town_code": town,
        "hazard": hazard,
        "measure": measure,
        "loop": loop,
        "lead_unit": "住建局",
        "supporting_units": ["应急局", "交通局"],
        "due_utc": due,
        "onset_utc": onset,
        "end_utc": end,
        "level": level,
        "source": "brief 2026-07-10T00Z",
        "text_zh": text,
    }


#: Signals in force in these tests: tasks start issued (without, a run only proposes them).
LIVE = [(TOWN, "rainstorm"), (TOWN, "blizzard"), ("150627101", "rainstorm")]


def merge(db, frame, **kw):
    kw.setdefault("live", LIVE)
    return ledger.merge_run(db, frame, **kw)


def _frame(*rows):
    return pd.DataFrame(list(rows))


@pytest.fixture
def db(tmp_path):
    return tmp_path / "var" / "ledger.sqlite"


def _count(db, table):
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_schema_pragmas_and_default_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CITYOPS_LEDGER", raising=False)
    assert ledger.default_ledger_path() == tmp_path / "var" / "ledger.sqlite"
    monkeypatch.setenv("CITYOPS_LEDGER", str(tmp_path / "x" / "l.sqlite"))
    conn = ledger.connect()
    try:
        assert (tmp_path / "x" / "l.sqlite").exists()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
        assert (
            conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
            == ledger.SCHEMA_VERSION
        )
    finally:
        conn.close()
    ledger.connect().close()  # reopening does not migrate twice
    assert _count(tmp_path / "x" / "l.sqlite", "schema_version") == ledger.SCHEMA_VERSION


def test_merge_twice_no_duplicates_and_task_id(db):
    frame = _frame(_row("rain_underpass_closure"), _row("rain_drainage_patrol"))
    first = merge(db, frame, run_time=RUN1)
    assert first["inserted"] == 2
    assert "150627100-rainstorm-rain_underpass_closure-E20260710T1200" in first["task_ids"]
    second = merge(db, frame, run_time="2026-07-10T06:00Z")
    assert second["inserted"] == 0 and second["unchanged"] == 2
    assert _count(db, "tasks") == 2 and _count(db, "episodes") == 1
    assert _count(db, "task_history") == 2  # nothing changed, nothing recorded
    task = ledger.get_task(db, first["task_ids"][0])
    assert task["state"] == "issued" and task["supporting_units"] == "应急局、交通局"


def test_update_existing_task(db):
    merge(db, _frame(_row("m1")), run_time=RUN1)
    stats = merge(
        db,
        _frame(_row("m1", level=3, due="2026-07-10T08:00Z", text="worse")),
        run_time="2026-07-10T03:00Z",
    )
    assert stats["updated"] == 1
    task = ledger.get_task(db, stats["task_ids"][0])
    assert (task["level"], task["due_utc"], task["text_zh"]) == (3, "2026-07-10T08:00:00Z", "worse")
    assert task["created_utc"] == "2026-07-10T00:00:00Z"
    assert task["updated_utc"] == "2026-07-10T03:00:00Z"


def test_weaker_run_stands_down_absent_task(db):
    merge(db, _frame(_row("m1"), _row("m2")), run_time=RUN1)
    stats = merge(db, _frame(_row("m1", level=1)), run_time="2026-07-10T06:00Z")
    assert stats["stood_down"] == 1
    m2 = ledger.task_id_for(TOWN, "rainstorm", "m2", "E20260710T1200")
    assert ledger.get_task(db, m2)["state"] == "stood_down"
    assert _count(db, "tasks") == 2
    hist = ledger.task_history(db, m2)
    assert hist[-1]["from_state"] == "issued" and hist[-1]["to_state"] == "stood_down"
    # the hazard comes back: the task is re-issued, not duplicated
    again = merge(db, _frame(_row("m1"), _row("m2")), run_time="2026-07-10T09:00Z")
    assert again["reissued"] == 1 and ledger.get_task(db, m2)["state"] == "issued"
    # a run that evaluated the town/hazard and found nothing stands everything down
    gone = merge(
        db,
        _frame(_row("m1")).iloc[0:0],
        run_time="2026-07-10T11:00Z",
        assessed=[(TOWN, "rainstorm")],
    )
    assert gone["stood_down"] == 2


def test_stand_down_only_in_covered_episode(db):
    merge(db, _frame(_row("m1")), run_time=RUN1)
    later = _row("m2", onset="2026-07-15T12:00Z", end="2026-07-15T18:00Z")
    stats = merge(db, _frame(later), run_time="2026-07-14T00:00Z")
    assert stats["stood_down"] == 0 and stats["episodes_opened"] == 1
    assert (
        ledger.get_task(db, ledger.task_id_for(TOWN, "rainstorm", "m1", "E20260710T1200"))["state"]
        == "issued"
    )


def test_closed_tasks_untouched_by_merge(db):
    ids = merge(db, _frame(_row("m1"), _row("m2")), run_time=RUN1)["task_ids"]
    for state in ("dispatched", "on_site", "resolved"):
        ledger.update_state(db, ids[0], state, actor="王工", note=state)
    ledger.update_state(db, ids[0], "approved", actor="住建局 李", role="住建局", note="审核")
    ledger.update_state(db, ids[0], "closed", actor="住建局 李", note="销号")
    before = ledger.get_task(db, ids[0])
    n_hist = len(ledger.task_history(db, ids[0]))
    stats = merge(db, _frame(_row("m1", level=4, text="new")), run_time="2026-07-10T06:00Z")
    merge(db, _frame(_row("m2")), run_time="2026-07-10T07:00Z")  # m1 absent
    assert stats["skipped_closed"] == 1
    assert ledger.get_task(db, ids[0]) == before
    assert len(ledger.task_history(db, ids[0])) == n_hist


def test_invalid_transitions_raise(db):
    tid = merge(db, _frame(_row("m1")), run_time=RUN1)["task_ids"][0]
    ledger.update_state(db, tid, "dispatched", actor="a")
    with pytest.raises(
        InputError, match="cannot go from dispatched to closed; it must be resolved"
    ):
        ledger.update_state(db, tid, "closed", actor="a")
    with pytest.raises(InputError, match="cannot go from dispatched to issued"):
        ledger.update_state(db, tid, "issued", actor="a")
    with pytest.raises(InputError, match="unknown state"):
        ledger.update_state(db, tid, "done", actor="a")
    with pytest.raises(InputError, match="needs an actor"):
        ledger.update_state(db, tid, "on_site", actor=" ")
    with pytest.raises(InputError, match="no such task"):
        ledger.update_state(db, "nope", "on_site", actor="a")
    assert ledger.get_task(db, tid)["state"] == "dispatched"


def test_history_keeps_actor_time_note(db):
    tid = merge(db, _frame(_row("m1")), run_time=RUN1)["task_ids"][0]
    ledger.update_state(
        db, tid, "dispatched", actor="值班员张三", note="电话通知", at="2026-07-10T01:00Z"
    )
    ledger.update_state(db, tid, "on_site", actor="李四", note="到场", at="2026-07-10T02:00Z")
    hist = ledger.task_history(db, tid)
    assert [
        (h["actor"], h["time_utc"], h["from_state"], h["to_state"], h["note"]) for h in hist[1:]
    ] == [
        ("值班员张三", "2026-07-10T01:00:00Z", "issued", "dispatched", "电话通知"),
        ("李四", "2026-07-10T02:00:00Z", "dispatched", "on_site", "到场"),
    ]
    assert hist[0]["actor"] == "cityops brief" and hist[0]["to_state"] == "issued"


def _writer(path, worker, n):
    # one town per write, so that no run stands down another's task
    for i in range(n):
        town = f"15062{worker}{i:03d}"
        merge(path, _frame(_row("m", town=town)), run_time=RUN1, actor=f"w{worker}",
              live=[(town, "rainstorm")])  # fmt: skip
        if i % 2:
            prev = ledger.task_id_for(
                f"15062{worker}{i - 1:03d}", "rainstorm", "m", "E20260710T1200"
            )
            ledger.update_state(path, prev, "dispatched", actor=f"w{worker}")


def test_two_processes_lose_nothing(db):
    ledger.connect(db).close()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(db, w, 50)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    assert _count(db, "tasks") == 100
    assert _count(db, "episodes") == 100
    assert _count(db, "task_history") == 150  # 100 issued + 50 dispatched
    with sqlite3.connect(db) as conn:
        q = "SELECT COUNT(*) FROM tasks WHERE state = 'dispatched'"
        assert conn.execute(q).fetchone()[0] == 50
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_interrupted_write_leaves_ledger_consistent(db, monkeypatch):
    merge(db, _frame(_row("m1")), run_time=RUN1)
    before = {t: _count(db, t) for t in ("tasks", "task_history", "episodes")}
    bad = _frame(
        _row("m2", onset="2026-08-01T00:00Z", end="2026-08-01T06:00Z"),
        _row("m3"),
        _row("m4", loop="huge"),
    )
    with pytest.raises(InputError, match="loop 'huge'"):
        merge(db, bad, run_time="2026-07-10T06:00Z")
    # and an unexpected crash in the middle of the write
    calls = {"n": 0}
    real = ledger._history

    def crash(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk on fire")
        return real(*a, **k)

    monkeypatch.setattr(ledger, "_history", crash)
    with pytest.raises(RuntimeError):
        merge(db, _frame(_row("m5"), _row("m6")), run_time="2026-07-10T06:00Z")
    monkeypatch.undo()
    assert {t: _count(db, t) for t in before} == before
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert (
        ledger.get_task(db, ledger.task_id_for(TOWN, "rainstorm", "m1", "E20260710T1200"))[
            "end_utc"
        ]
        == "2026-07-10T18:00:00Z"
    )


def test_episodes_overlap_extend_and_gap_opens_new(db):
    merge(db, _frame(_row("m1")), run_time=RUN1)
    # overlapping later run: same episode, extended
    s = merge(
        db,
        _frame(_row("m1", onset="2026-07-10T16:00Z", end="2026-07-11T02:00Z")),
        run_time="2026-07-10T06:00Z",
    )
    assert s["episodes_opened"] == 0 and s["episodes_extended"] == 1
    assert s["task_ids"] == ["150627100-rainstorm-m1-E20260710T1200"]
    # touching within 6 h: still the same episode
    s = merge(
        db,
        _frame(_row("m1", onset="2026-07-11T07:00Z", end="2026-07-11T09:00Z")),
        run_time="2026-07-10T12:00Z",
    )
    assert s["task_ids"] == ["150627100-rainstorm-m1-E20260710T1200"]
    # a separate storm more than 6 h later: a new episode and a new task
    s = merge(
        db,
        _frame(_row("m1", onset="2026-07-11T16:00Z", end="2026-07-11T20:00Z")),
        run_time="2026-07-11T12:00Z",
    )
    assert s["episodes_opened"] == 1
    assert s["task_ids"] == ["150627100-rainstorm-m1-E20260711T1600"]
    assert _count(db, "tasks") == 2 and _count(db, "episodes") == 2
    with sqlite3.connect(db) as conn:
        first = conn.execute(
            "SELECT start_utc, end_utc FROM episodes ORDER BY start_utc"
        ).fetchone()
    assert first == ("2026-07-10T12:00:00Z", "2026-07-11T09:00:00Z")
    # the first episode's task was not stood down by the second storm's run
    assert ledger.get_task(db, "150627100-rainstorm-m1-E20260710T1200")["state"] == "issued"


def test_overdue():
    task = {"state": "dispatched", "due_utc": "2026-07-10T10:00:00Z"}
    assert ledger.overdue(task, "2026-07-10T10:01Z")
    assert not ledger.overdue(task, "2026-07-10T09:59Z")
    assert not ledger.overdue(dict(task, state="resolved"), "2026-07-11T00:00Z")
    assert not ledger.overdue(dict(task, state="stood_down"), "2026-07-11T00:00Z")


def _rules(*ids, **changes):
    """The Ejin Horo plan's follow-up rules named ``ids``, with fields changed."""
    from cityops.response import load_plan

    rules = {r["id"]: r for r in load_plan("ejin-horo").timing["followup"]}
    return [dict(rules[i], **changes) for i in ids]


def test_escalation_working_days_over_national_day(db):
    # issued 2026-09-30T17:00Z = 1 Oct 01:00 Beijing: holiday 1–7 Oct; workdays 8, 9, 10 (Sat,
    # make-up day) Oct -> feedback deadline is the end of 10 Oct Beijing time.
    merge(
        db,
        _frame(_row("feedback", onset="2026-10-01T00:00Z", end="2026-10-01T06:00Z")),
        run_time="2026-09-30T17:00Z",
    )
    assert (
        ledger.add_workdays(pd.Timestamp("2026-10-01").date(), 3)
        == pd.Timestamp("2026-10-10").date()
    )
    rules = _rules("feedback_within_3_days", basis="working") + _rules(
        "escalate_again_2_weeks_later"
    )
    assert ledger.check_escalation(db, "2026-10-05T00:00Z", rules=rules) == []  # 4 days: not yet
    assert ledger.check_escalation(db, "2026-10-10T15:59Z", rules=rules) == []  # 23:59 Beijing
    done = ledger.check_escalation(db, "2026-10-10T16:30Z", rules=rules)  # 11 Oct 00:30 Beijing
    assert len(done) == 1 and done[0]["escalated"] == 1
    assert done[0]["rules"] == ["feedback_within_3_days"]
    task = ledger.get_task(db, done[0]["task_id"])
    assert task["escalated"] == 1 and task["state"] == "issued"
    assert ledger.task_history(db, task["task_id"])[-1]["actor"] == ledger.ESCALATION_ACTOR
    assert ledger.check_escalation(db, "2026-10-20T00:00Z", rules=rules) == []  # < 2 weeks
    # 14 calendar days after 11 Oct (Beijing): missed from 26 Oct 00:00 Beijing
    assert ledger.check_escalation(db, "2026-10-25T15:59Z", rules=rules) == []
    again = ledger.check_escalation(db, "2026-10-25T16:00Z", rules=rules)
    assert again[0]["escalated"] == 2 and again[0]["rules"] == ["escalate_again_2_weeks_later"]


def test_escalation_closure_limits_by_loop(db):
    run = "2026-07-06T01:00Z"  # Monday 09:00 Beijing
    merge(db, _frame(_row("small", loop="small"), _row("big", loop="big")), run_time=run)
    for m in ("small", "big"):
        ledger.update_state(
            db,
            ledger.task_id_for(TOWN, "rainstorm", m, "E20260710T1200"),
            "on_site",
            actor="a",
            at="2026-07-06T02:00Z",
        )
    # working basis: 7 working days after Mon 6 Jul = Wed 15 Jul; from Thu 16 Jul (Beijing)
    # the small-loop task escalates
    rules = _rules("ordinary_closure_7_days", "complex_closure_1_month", basis="working")
    rules += _rules("escalate_after_2_weeks")
    assert ledger.check_escalation(db, "2026-07-15T12:00Z", rules=rules) == []  # 20:00 Beijing
    done = ledger.check_escalation(db, "2026-07-15T16:30Z", rules=rules)  # 16 Jul 00:30 Beijing
    assert [d["task_id"].split("-")[2] for d in done] == ["small"]
    # big loop: 1 calendar month (or a 2-week stall, whichever first)
    # stalled: no change since 6 Jul (Beijing) for 14 calendar days, from 21 Jul 00:00 Beijing
    assert ledger.check_escalation(db, "2026-07-20T15:59Z", rules=rules) == []
    stalled = ledger.check_escalation(db, "2026-07-20T16:00Z", rules=rules)
    assert [d["task_id"].split("-")[2] for d in stalled] == ["big"]
    assert stalled[0]["rules"] == ["escalate_after_2_weeks"]


def test_cap_records(db):
    assert ledger.latest_cap(db, "rainstorm") is None
    ledger.record_cap(db, "id-1", "rainstorm", "Alert", [], RUN1, "2026-07-10T00:05Z", "Draft")
    ledger.record_cap(
        db,
        "id-2",
        "rainstorm",
        "Update",
        ["cityops,id-1,2026-07-10T00:05:00+00:00"],
        "2026-07-10T06:00Z",
        "2026-07-10T06:05Z",
        "Draft",
    )
    ledger.record_cap(db, "id-9", "gale", "Alert", "", RUN1, "2026-07-10T09:00Z", "Actual")
    latest = ledger.latest_cap(db, "rainstorm")
    assert latest["identifier"] == "id-2" and latest["msg_type"] == "Update"
    assert latest["references_ids"] == "cityops,id-1,2026-07-10T00:05:00+00:00"
    ledger.record_cap(
        db,
        "id-2",
        "rainstorm",
        "Update",
        ["cityops,id-1,x"],
        "2026-07-10T06:00Z",
        "2026-07-10T06:05Z",
        "Actual",
    )  # signed: status changes, no duplicate
    assert ledger.latest_cap(db, "rainstorm")["status"] == "Actual"
    assert _count(db, "cap_alerts") == 3
    with pytest.raises(InputError):
        ledger.record_cap(db, "id-3", "rainstorm", "Bogus", [], RUN1, RUN1, "Draft")


def test_export_columns_in_order(db, tmp_path):
    ids = merge(db, _frame(_row("m1"), _row("m2")), run_time=RUN1)["task_ids"]
    out = ledger.export_tasks(db, tmp_path / "out" / "tasks.csv", now="2026-07-10T11:00Z")
    with open(out, encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert (
        tuple(rows[0])
        == ledger.EXPORT_COLUMNS
        == (
            "task_id",
            "town_code",
            "hazard",
            "episode",
            "measure",
            "loop",
            "lead_unit",
            "supporting_units",
            "state",
            "due_utc",
            "created_utc",
            "updated_utc",
            "overdue",
            "source",
        )
    )
    assert sorted(r[0] for r in rows[1:]) == ids
    assert {r[12] for r in rows[1:]} == {"true"}
    assert not list((tmp_path / "out").glob("*.tmp"))


def _cli(argv):
    import argparse

    parser = argparse.ArgumentParser(prog="cityops")
    add_tasks_parser(parser.add_subparsers(dest="command", required=True))
    return run_tasks(parser.parse_args(argv))


def test_cli(db, tmp_path, capsys):
    tid = merge(db, _frame(_row("m1")), run_time=RUN1)["task_ids"][0]
    assert _cli(["tasks", "list", "--ledger", str(db), "--town", TOWN]) == 0
    assert tid in capsys.readouterr().out
    assert (
        _cli(["tasks", "--ledger", str(db), "list", "--overdue", "--now", "2026-07-10T09:00Z"]) == 0
    )
    assert capsys.readouterr().out == ""
    assert (
        _cli(["tasks", "update", tid, "--state", "dispatched", "--by", "张三", "--ledger", str(db)])
        == 0
    )
    with pytest.raises(InputError, match="must be resolved and approved first"):
        _cli(["tasks", "close", tid, "--by", "张三", "--ledger", str(db)])
    _cli(["tasks", "update", tid, "--state", "resolved", "--by", "张三", "--ledger", str(db)])
    # 销号 needs approval first, by the lead or competent department, not by the resolver
    with pytest.raises(InputError, match="must be resolved and approved first"):
        _cli(["tasks", "close", tid, "--by", "局长", "--ledger", str(db)])
    with pytest.raises(InputError, match="cannot approve it too"):
        _cli(["tasks", "update", tid, "--state", "approved", "--by", "张三", "--role", "住建局",
              "--ledger", str(db)])  # fmt: skip
    with pytest.raises(InputError, match="--role"):
        _cli(["tasks", "update", tid, "--state", "approved", "--by", "局长", "--ledger", str(db)])
    assert _cli(["tasks", "update", tid, "--state", "approved", "--by", "局长", "--role",
                 "住建局", "--ledger", str(db)]) == 0  # fmt: skip
    assert _cli(["tasks", "close", tid, "--by", "局长", "--note", "销号", "--ledger", str(db)]) == 0
    capsys.readouterr()
    assert _cli(["tasks", "show", tid, "--ledger", str(db)]) == 0
    shown = capsys.readouterr().out
    assert "state: closed" in shown and "局长  approved -> closed  销号" in shown
    assert "局长 (住建局)  resolved -> approved" in shown
    out = tmp_path / "t.csv"
    assert _cli(["tasks", "export", "--out", str(out), "--ledger", str(db)]) == 0
    assert out.read_text(encoding="utf-8").splitlines()[0].startswith("task_id,town_code,hazard")


def test_heating_four_ones_clocks(tmp_path):
    from cityops.ledger import four_ones_breaches, list_tasks, merge_run, update_state

    db = tmp_path / "l.sqlite"
    rules = {"answer_minutes": 1, "dispatch_minutes": 1, "on_site_hours": 1, "solved_in_visits": 1}
    frame = pd.DataFrame([
        {"town_code": "150627100", "hazard": "cold_wave", "measure": "heating_raise_load",
         "loop": "small", "lead_unit": "九泰热力", "supporting_units": "", "level": 3,
         "due_utc": "2026-01-21T10:00:00Z", "onset_utc": "2026-01-21T10:00:00Z",
         "end_utc": "2026-01-21T20:00:00Z", "source": "002:1030", "text_zh": "提高供热负荷"},
    ])  # fmt: skip
    run = pd.Timestamp("2026-01-21T08:00")
    merge_run(db, frame, run_time=run, live=[("150627100", "cold_wave")])
    (task,) = list_tasks(db)
    tid = task["task_id"]
    # Dispatched after 90 s, on site after 50 min, resolved in one visit: no breach.
    update_state(db, tid, "dispatched", actor="热线", at=run + pd.Timedelta("90s"))
    update_state(db, tid, "on_site", actor="维修班", at=run + pd.Timedelta("51min"))
    update_state(db, tid, "resolved", actor="维修班", at=run + pd.Timedelta("80min"))
    assert four_ones_breaches(db, run + pd.Timedelta("2h"), measures={"heating_raise_load"},
                              rules=rules) == []  # fmt: skip
    # Sent back on site: a second visit breaks "solved in one visit".
    update_state(db, tid, "on_site", actor="维修班", note="复发", at=run + pd.Timedelta("3h"))
    (breach,) = four_ones_breaches(db, run + pd.Timedelta("4h"), measures={"heating_raise_load"},
                                   rules=rules)  # fmt: skip
    assert "2 visits" in breach["reasons"][0]
    (esc,) = ledger.check_escalation(
        db, run + pd.Timedelta("4h"), rules=[], four_ones=({"heating_raise_load"}, rules)
    )
    assert esc["task_id"] == tid and "2 visits" in " ".join(esc["reasons"])
