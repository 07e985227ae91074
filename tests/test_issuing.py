"""Issuing a warning as a recorded act, and the review counting from the issue (issue 18,
items 1 and 6), through the CLI on the sample rainstorm."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pandas as pd
import pytest

from cityops import ledger
from cityops.scenarios import write_scenario

ENV_KEYS = {"MPLBACKEND": "agg"}
ALTAN, EJIN, JASAG, LINGANG, HONGQ = "150627100", "150627106", "150627101", "150627407", "150627105"


def cityops(*args, env=None):
    import os

    return subprocess.run(
        [sys.executable, "-m", "cityops.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **ENV_KEYS, **(env or {})},
        timeout=600,
    )


def one_error(res, *words):
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cityops: error: "), res.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture(scope="module")
def drill(tmp_path_factory):
    """The sample rainstorm assessed; a forecaster issues two towns red and three orange,
    later updates one and lifts another."""
    d = tmp_path_factory.mktemp("issue")
    fc = write_scenario("july-rainstorm", d / "fc.nc", observed_out=d / "obs.nc")
    res = cityops("-q", "assess", fc, "--out", d / "run")
    assert res.returncode == 0, res.stderr
    db = d / "ledger.sqlite"
    steps = [
        # the run proposes red for 阿镇; 伊金霍洛镇 red on the forecaster's judgement
        ("--towns", "阿镇", "--at", "2026-07-10T03:00Z"),
        ("--towns", "伊金霍洛镇", "--level", "red", "--at", "2026-07-10T03:00Z"),
        ("--towns", "临港经济区", "--at", "2026-07-10T03:30Z"),  # proposed orange
        ("--towns", "札萨克镇,红庆河镇", "--level", "橙色", "--at", "2026-07-10T04:00Z"),
        ("--towns", "伊金霍洛镇", "--level", "3", "--at", "2026-07-10T06:00Z"),  # update
        ("--towns", "红庆河镇", "--lift", "--at", "2026-07-10T09:00Z"),  # lift
    ]
    outs = []
    for extra in steps:
        res = cityops("issue", d / "run", "--hazard", "rainstorm", "--by", "值班预报员 王", *extra,
                      "--ledger", db)  # fmt: skip
        assert res.returncode == 0, res.stderr
        outs.append(res.stdout)
    return {"dir": d, "run": d / "run", "db": db, "obs": d / "obs.nc", "stdout": outs}


def test_every_act_is_in_the_ledger(drill):
    res = cityops("signals", "--ledger", drill["db"])
    assert res.returncode == 0, res.stderr
    from io import StringIO

    s = pd.read_csv(StringIO(res.stdout), dtype=str, keep_default_na=False)
    assert len(s) == 7
    assert (s.status == "Exercise").all()  # scenario inputs are a drill
    assert (s.issuer == "值班预报员 王").all()
    first = s[s.town_code == ALTAN].iloc[0]
    assert (first.level, first.action, first.issued_utc) == ("4", "issue", "2026-07-10T03:00:00Z")
    # valid from the run's onset (after the issue time), as the run proposed it
    assert first.valid_from_utc > first.issued_utc
    ejin = s[s.town_code == EJIN].reset_index(drop=True)
    assert list(ejin.action) == ["issue", "update"] and list(ejin.level) == ["4", "3"]
    assert ejin.supersedes[1] == ejin.identifier[0] and ejin.superseded_by[0] == ejin.identifier[1]
    hq = s[s.town_code == HONGQ].reset_index(drop=True)
    assert list(hq.action) == ["issue", "lift"] and hq.level[1] == "0"
    assert "update" in drill["stdout"][4] and "replaces" in drill["stdout"][4]


def test_review_counts_lead_time_from_the_issue(drill):
    out = drill["dir"] / "review"
    res = cityops("-q", "review", "--forecast", drill["db"], "--observed", drill["obs"],
                  "--out", out, "--no-case", "--ledger", drill["db"])  # fmt: skip
    assert res.returncode == 0, res.stderr
    warnings = pd.read_csv(out / "warnings.csv", dtype=str, keep_default_na=False)
    assert set(warnings.source) == {"ledger"}
    assert set(warnings.town_code) == {ALTAN, EJIN, LINGANG, JASAG, HONGQ}
    cases = pd.read_csv(out / "verification.csv", dtype=str, keep_default_na=False)
    day = cases[
        (cases.hazard == "rainstorm") & (cases.window_start_utc.str.startswith("2026-07-10"))
    ]
    # Lead times count from the issue times in the ledger, never from the model run (00 UTC).
    issued = ledger.list_signals(drill["db"])
    warned = day[(day.first_warning_utc != "") & (day.outcome == "hit")]
    assert len(warned) >= 1, day.to_dict("records")
    for case in warned.itertuples():
        times = set(issued[issued.town_code == case.town_code].issued_utc)
        assert case.first_warning_utc in times, (case.town_code, case.first_warning_utc, times)
        assert case.first_warning_utc != "2026-07-10T00:00:00Z"
        lead = pd.Timestamp(case.observed_onset_utc) - pd.Timestamp(case.first_warning_utc)
        assert float(case.lead_time_min) == lead / pd.Timedelta("1min")
    # A unit nobody issued a signal for is a miss, whatever the run proposed.
    assert (day[day.town_code == "150627104"].outcome == "miss").all()


def test_refusals_write_nothing(drill, tmp_path):
    db = drill["db"]
    before = len(ledger.list_signals(db))
    run = drill["run"]
    cases = [
        (("--towns", "阿镇", "--at", "2099-01-01T00:00Z"), ("in the future",)),
        (("--towns", "阿镇", "--at", "2026-07-09T00:00Z"), ("before the forecast was issued",)),
        (("--towns", "纳林陶亥镇", "--lift"), ("150627103", "no rainstorm signal in force")),
        (("--towns", "乌兰木伦镇"), ("150627102", "proposes no rainstorm signal", "--level")),
        (("--towns", "水岸新城", "--level", "2"), ("150627L01", "not assessed")),
        (("--towns", "阿镇", "--lift", "--level", "2"), ("--lift and --level",)),
        (("--towns", "阿镇", "--level", "5"), ("--level '5'",)),
        # all or none: the second unit fails, the first is not recorded either
        (("--towns", "临港经济区,乌兰木伦镇", "--at", "2026-07-10T10:00Z"), ("150627102",)),
        # the same act twice
        (("--towns", "阿镇", "--at", "2026-07-10T03:00Z"), ("already recorded",)),
    ]
    for extra, words in cases:
        res = cityops("issue", run, "--hazard", "rainstorm", "--by", "王", *extra, "--ledger", db)
        one_error(res, *words)
    res = cityops("issue", run, "--hazard", "rainstorm", "--by", "王\ncityops: forged",
                  "--towns", "阿镇", "--ledger", db)  # fmt: skip
    one_error(res, "--by")
    res = cityops("issue", tmp_path, "--hazard", "rainstorm", "--by", "王", "--towns", "阿镇",
                  "--ledger", db)  # fmt: skip
    one_error(res, "not a cityops brief or assess run")
    assert len(ledger.list_signals(db)) == before


def test_signals_never_creates_a_ledger(tmp_path):
    res = cityops("signals", "--ledger", tmp_path / "typo.sqlite")
    one_error(res, "typo.sqlite")
    assert list(tmp_path.iterdir()) == []


def test_a_version_1_ledger_gains_the_signals_table(tmp_path):
    db = tmp_path / "old.sqlite"
    ledger.connect(db).close()
    with sqlite3.connect(db) as conn:  # as a cityops of schema 1 left it
        conn.execute("DROP TABLE signals")
        conn.execute("DELETE FROM schema_version WHERE version = 2")
    conn = ledger.connect(db, create=False)
    try:
        assert ledger.list_signals(conn).empty
        version = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
        assert version == ledger.SCHEMA_VERSION == 2
    finally:
        conn.close()
