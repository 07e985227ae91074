"""Incident report clocks (issue #19 item 5): 001:12 and 002:1594 as ledger clocks with
overdue flags, through the library and ``cityops incident``."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from cityops import ledger
from cityops.deadlines import report_clocks
from cityops.response import load_plan

RULES = load_plan("ejin-horo").timing["report_clocks"]["rules"]
T0 = "2026-07-10T03:00Z"


def _ids(kind, scale):
    return [c["clock_id"] for c in report_clocks(kind, scale, T0, rules=RULES)]


def test_which_clocks_an_incident_starts():
    assert _ids("incident", "major") == ["phone_30min_major", "written_1h_major"]
    assert _ids("incident", "especially_major") == ["phone_30min_major", "written_1h_major"]
    assert _ids("incident", "large") == ["report_2h_large_general"]
    assert _ids("incident", "general") == ["report_2h_large_general"]
    assert _ids("geohazard", "general") == ["report_2h_large_general", "geohazard_4h"]
    assert _ids("geohazard_danger", "major")[-1] == "geohazard_danger_2h"


def test_due_times_are_the_seed_periods():
    due = {c["clock_id"]: c["due_utc"] for c in report_clocks("geohazard", "major", T0,
                                                                rules=RULES)}  # fmt: skip
    t0 = pd.Timestamp(T0).tz_localize(None)
    assert due["phone_30min_major"] - t0 == pd.Timedelta("30min")  # 001:12 半小时内
    assert due["written_1h_major"] - t0 == pd.Timedelta("1h")  # 001:12 1小时内
    assert due["geohazard_4h"] - t0 == pd.Timedelta("4h")  # 002:1594 4小时内


def test_overdue_flags_at_the_boundary(tmp_path):
    db = tmp_path / "l.sqlite"
    clocks = report_clocks("incident", "major", T0, rules=RULES)
    iid = ledger.open_incident(db, kind="incident", scale="major", occurred=T0, by="值班员",
                               clocks=clocks, town_code="150627100")  # fmt: skip
    assert iid == "INC-202607101100-1"  # Beijing time of the incident
    at_due = ledger.list_report_clocks(db, now="2026-07-10T03:30Z").set_index("clock_id")
    assert not at_due.loc["phone_30min_major", "overdue"]  # exactly at the limit: in time
    after = ledger.list_report_clocks(db, now="2026-07-10T03:30:01Z").set_index("clock_id")
    assert after.loc["phone_30min_major", "overdue"]
    ledger.report_clock(db, iid, "phone_30min_major", by="值班员", at="2026-07-10T03:45Z")
    ledger.report_clock(db, iid, "written_1h_major", by="值班员", at="2026-07-10T03:50Z")
    done = ledger.list_report_clocks(db, now="2026-07-10T08:00Z").set_index("clock_id")
    assert done.loc["phone_30min_major", "late"] and not done.loc["phone_30min_major", "overdue"]
    assert not done.loc["written_1h_major", "late"]
    with pytest.raises(Exception, match="already reported"):
        ledger.report_clock(db, iid, "written_1h_major", by="值班员", at="2026-07-10T03:55Z")
    with pytest.raises(Exception, match="between the incident"):
        ledger.open_incident(db, kind="incident", scale="general", occurred=T0, by="x",
                             clocks=report_clocks("incident", "general", T0, rules=RULES))  # fmt: skip
        ledger.report_clock(db, "INC-202607101100-2", "report_2h_large_general", by="x",
                            at="2026-07-10T02:00Z")  # fmt: skip


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "cityops.cli", "incident", *map(str, args)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_cli_open_report_list(tmp_path):
    db = tmp_path / "l.sqlite"
    res = _cli("open", "--kind", "geohazard_danger", "--scale", "重大", "--at", T0, "--by", "自然资源局",
               "--town", "纳林陶亥镇", "--ledger", db)  # fmt: skip
    assert res.returncode == 0, res.stderr
    iid = res.stdout.splitlines()[0]
    assert "geohazard_danger_2h" in res.stdout and "002:1594" in res.stdout
    res = _cli("report", iid, "--clock", "geohazard_danger_2h", "--by", "自然资源局",
               "--at", "2026-07-10T04:00Z", "--ledger", db)  # fmt: skip
    assert res.returncode == 0, res.stderr
    res = _cli("list", "--now", "2026-07-10T06:00Z", "--overdue", "--ledger", db)
    assert res.returncode == 0, res.stderr
    overdue = res.stdout.splitlines()[1:]
    assert {line.split(",")[6] for line in overdue} == {"phone_30min_major", "written_1h_major"}
    bad = _cli("open", "--kind", "incident", "--scale", "巨大", "--at", T0, "--by", "x",
               "--ledger", db)  # fmt: skip
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    future = _cli("open", "--kind", "incident", "--scale", "一般", "--at", "2099-01-01T00:00Z",
                  "--by", "x", "--ledger", db)  # fmt: skip
    assert future.returncode == 2 and "future" in future.stderr


def test_a_clock_without_a_positive_period_is_refused_on_load(tmp_path):
    import shutil

    from cityops.errors import DataFileError

    plan = tmp_path / "plan"
    shutil.copytree(load_plan("ejin-horo").path, plan)
    text = (plan / "timing.yaml").read_text(encoding="utf-8")
    (plan / "timing.yaml").write_text(
        text.replace("within: {value: 30, unit: minute}", "within: {value: 0, unit: minute}"),
        encoding="utf-8",
    )
    with pytest.raises(DataFileError, match=r"phone_30min_major.*within.*N > 0"):
        load_plan(plan)
