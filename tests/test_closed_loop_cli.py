"""The command's closed loop through the CLI (issue #19, "done when"): a brief proposes tasks,
issuing a signal activates them, a department acknowledges, resolves, another approves and
closes; a stalled task is escalated by ``cityops tasks escalate``; the review shows it all."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cityops import ledger
from cityops.review.run import ReviewInputs, run_review
from cityops.scenarios import write_scenario

ALTAN = "150627100"


def cityops(*args):
    return subprocess.run(
        [sys.executable, "-m", "cityops.cli", "-q", *map(str, args)],
        capture_output=True, text=True, timeout=900,
        env={**os.environ, "MPLBACKEND": "agg"},
    )  # fmt: skip


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    d = tmp_path_factory.mktemp("loop")
    fc = write_scenario("july-rainstorm", d / "fc.nc", observed_out=d / "obs.nc")
    db = d / "ledger.sqlite"
    res = cityops("brief", fc, "--out", d / "run", "--towns", "阿镇", "--ledger", db,
                  "--now", "2026-07-10T10:30Z")  # fmt: skip
    assert res.returncode == 0, res.stderr
    proposed = ledger.list_tasks(db, town=ALTAN)
    res = cityops("issue", d / "run", "--hazard", "rainstorm", "--towns", "阿镇", "--by", "值班预报员 王",
                  "--at", "2026-07-10T10:40Z", "--ledger", db)  # fmt: skip
    assert res.returncode == 0, res.stderr
    return {"dir": d, "fc": fc, "obs": d / "obs.nc", "db": db, "proposed": proposed}


def _rain_task(db, measure_part):
    tasks = [t for t in ledger.list_tasks(db, town=ALTAN, hazard="rainstorm")
             if measure_part in t["measure"] and t["state"] == "issued"]  # fmt: skip
    assert tasks, measure_part
    return tasks[0]["task_id"]


def test_brief_proposes_and_the_signal_activates(loop):
    states = {t["state"] for t in loop["proposed"] if "rainstorm" in t["triggers"]}
    assert "proposed" in states  # before the signal nothing is live...
    after = ledger.list_tasks(loop["db"], town=ALTAN, hazard="rainstorm")
    assert any(t["state"] == "issued" for t in after)  # ...the issue starts the clocks


def test_work_a_task_to_sign_off_and_escalate_a_stalled_one(loop):
    db = loop["db"]
    tid = _rain_task(db, "rain_")
    steps = [
        ("update", tid, "--state", "acknowledged", "--by", "住建局 张", "--role", "旗住房和城乡建设局"),
        ("update", tid, "--state", "on_site", "--by", "住建局 张"),
        ("update", tid, "--state", "resolved", "--by", "住建局 张", "--note", "已排水"),
    ]  # fmt: skip
    for step in steps:
        res = cityops("tasks", *step, "--ledger", db)
        assert res.returncode == 0, res.stderr
    # the resolver cannot approve; the lead department does
    res = cityops("tasks", "update", tid, "--state", "approved", "--by", "住建局 张",
                  "--role", "旗住房和城乡建设局", "--ledger", db)  # fmt: skip
    assert res.returncode == 2 and "cannot approve" in res.stderr
    for step in (("update", tid, "--state", "approved", "--by", "住建局 局长", "--role", "旗住房和城乡建设局"),
                 ("close", tid, "--by", "住建局 局长", "--role", "旗住房和城乡建设局")):  # fmt: skip
        res = cityops("tasks", *step, "--ledger", db)
        assert res.returncode == 0, res.stderr
    assert ledger.get_task(db, tid)["state"] == "closed"
    # a task nobody touched: escalated by the cron command, once
    res = cityops("tasks", "escalate", "--now", "2026-07-10T12:00Z", "--ledger", db)
    assert res.returncode == 0, res.stderr
    assert "acknowledge_signal" in res.stdout and tid not in res.stdout
    again = cityops("tasks", "escalate", "--now", "2026-07-10T12:00Z", "--ledger", db)
    assert again.stdout.strip().endswith("0 task(s) escalated")
    # an incident at 09:00 UTC (较大): reported within 2 h? nobody did: overdue at the review
    res = cityops("incident", "open", "--kind", "incident", "--scale", "较大", "--at",
                  "2026-07-10T09:00Z", "--by", "指挥部值班", "--town", "阿镇", "--exercise",
                  "--ledger", db)  # fmt: skip
    assert res.returncode == 0, res.stderr
    # the review shows the closed task, the escalations and the overdue report clock
    review = run_review(ReviewInputs(forecast=str(loop["fc"]), observed=str(loop["obs"]),
                                     ledger=str(db), now="2026-07-10T12:00Z"))  # fmt: skip
    tl = review.timeline.set_index("task_id")
    assert tl.loc[tid, "state"] == "closed" and tl.loc[tid, "escalated"] == 0
    assert (tl["escalated"] > 0).any()
    assert "acknowledge_signal" in set(tl.loc[tl["escalated"] > 0, "escalation_rules"])
    assert review.response["tasks"]["escalated"] > 0
    from cityops.report.review import response_html

    page = response_html(review)
    assert "督办升级的任务" in page and "预警信号发布后" in page
    assert "突发事件信息报送时限" in page and "超时未报" in page and "001:12" in page
    assert review.response["report_clocks"]["overdue"] == 1
