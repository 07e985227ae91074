"""The command line end to end, in subprocesses (exit status, stderr, files written)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from cityops.geo.risk import COLUMNS
from cityops.scenarios import SCENARIOS
from cityops.timeutil import format_local

ENV = {**os.environ, "MPLBACKEND": "agg"}


def cityops(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "cityops.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=cwd,
        timeout=900,
    )


@pytest.fixture(scope="module")
def rainstorm(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rain")
    out = folder / "july.nc"
    res = cityops("scenario", "july-rainstorm", "--out", out)
    assert res.returncode == 0, res.stderr
    return out


def test_scenario_list_names_all_situations():
    res = cityops("scenario", "--list")
    assert res.returncode == 0
    for name in (
        "quiet-day",
        "july-rainstorm",
        "january-blizzard",
        "spring-gale",
        "summer-heatwave",
        "autumn-fog",
        "2022-08-ejin-horo-extreme-rain",
    ):
        assert name in res.stdout


def test_assess_writes_contract_files(rainstorm, tmp_path):
    res = cityops("assess", rainstorm, "--out", tmp_path / "run")
    assert res.returncode == 0, res.stderr
    table = pd.read_csv(tmp_path / "run" / "town_hazards.csv", dtype={"town_code": str})
    assert list(table.columns[: len(COLUMNS)]) == COLUMNS
    records = json.loads((tmp_path / "run" / "town_hazards.json").read_text(encoding="utf-8"))
    assert len(records) == len(table)
    # The scenario's expectations hold at town seats; the storm town's polygon gives the same
    # level and onset, and the far town 纳林陶亥镇 stays quiet.
    for exp in SCENARIOS["july-rainstorm"].expected:
        if exp["town_code"] not in ("150627100", "150627103"):
            continue
        row = table[(table.town_code == exp["town_code"]) & (table.hazard == exp["hazard"])].iloc[0]
        assert row.level == exp["level"]
        assert (row.onset_utc if isinstance(row.onset_utc, str) else None) == exp["onset_utc"]
    assert (tmp_path / "run" / "levels.nc").exists()


def test_bad_input_exit_2_one_line_no_traceback(tmp_path):
    fake = tmp_path / "fake.nc"
    fake.write_text("hello")
    res = cityops("assess", fake, "--out", tmp_path / "run")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "fake.nc" in lines[0] and "Traceback" not in res.stderr
    assert not (tmp_path / "run" / "town_hazards.csv").exists()


def test_unknown_town_lists_close_matches(rainstorm, tmp_path):
    res = cityops("brief", rainstorm, "--out", tmp_path / "b", "--towns", "札萨克社区")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert not (tmp_path / "b").exists()


def test_stale_real_forecast_is_refused(tmp_path):
    import numpy as np

    from tests.conftest import make_forecast

    ds = make_forecast(
        {"precip": np.zeros(6)}, lat=np.arange(38.8, 39.95, 0.1), lon=np.arange(108.9, 110.55, 0.1)
    )
    path = tmp_path / "old.nc"
    ds.to_netcdf(path)
    res = cityops("brief", path, "--out", tmp_path / "b", "--now", "2026-07-12T00:00:00Z")
    assert res.returncode == 2 and "--allow-stale" in res.stderr


@pytest.mark.slow
def test_brief_shows_storm_in_the_right_town(rainstorm, tmp_path):
    exp = next(e for e in SCENARIOS["july-rainstorm"].expected if e["level"] == 4)
    out = tmp_path / "brief"
    # A relative forecast path, from another folder, with notebooks run in parallel.
    towns = f"{exp['town_code']},纳林陶亥镇,150627105,150627106"
    res = cityops(
        "brief",
        rainstorm.name,
        "--out",
        out,
        "--towns",
        towns,
        "--jobs",
        "2",
        cwd=rainstorm.parent,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith("index.html")
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "阿勒腾席热镇" in index and "红色" in index
    html = (out / exp["town_code"] / "briefing.html").read_text(encoding="utf-8")
    assert "阿勒腾席热镇气象风险简报" in html and "暴雨" in html and "红色" in html
    # The rainstorm row of the hazard table shows its onset in Beijing time.
    assert format_local(exp["onset_utc"], "%m-%d %H:%M") in html
    assert "def " not in html and "validate_parameters" not in html  # no code in the HTML
    assert (out / exp["town_code"] / "headline.png").stat().st_size > 10_000
    far = (out / "150627103" / "briefing.html").read_text(encoding="utf-8")
    assert "纳林陶亥镇" in far and "暴雨红色" not in far
    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert run["failures"] == {} and run["ruleset"] == "national"
    # No staging folder is left beside the output.
    hidden = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert hidden == [".brief.lock"]  # only the run lock; no staging folder


@pytest.mark.slow
def test_brief_writes_cap_drafts_and_sign_issues_an_exercise(rainstorm, tmp_path):
    out = tmp_path / "b"
    res = cityops("brief", rainstorm, "--out", out, "--towns", "150627100", "--jobs", "1",
                  "--ledger", tmp_path / "l.sqlite")  # fmt: skip
    assert res.returncode == 0, res.stderr
    cap = (out / "cap" / "cap_rainstorm.xml").read_text(encoding="utf-8")
    # A run's CAP is a draft (a proposal), the drill said in its note.
    assert "<status>Draft</status>" in cap and "演练" in cap and "+08:00" in cap
    res = cityops("sign", out, "--by", "值班预报员", "--ledger", tmp_path / "l.sqlite",
                  "--at", "2026-07-10T00:30Z")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert cap == (out / "cap" / "cap_rainstorm.xml").read_text(encoding="utf-8")  # unchanged
    sent = list((tmp_path / "issued").glob("*/cap.xml"))
    assert sent and all(
        "<status>Exercise</status>" in p.read_text(encoding="utf-8") for p in sent
    )  # scenario input: issued as an exercise, never Actual
