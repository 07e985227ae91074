"""Process health: the exit status of every command, run as a scheduler runs it (a subprocess
of the installed ``cityops`` script), and the ecCodes/pyproj import order.

0 success, 2 bad input (one line on stderr, no traceback), 3 partial batch, 141 reader gone
(docs/process_health.md). What ``tests/test_cli.py`` and ``tests/test_review_run.py`` already
check (assess and brief contracts, unknown town, stale forecast, review contract) is not
repeated here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from tests.conftest import ROOT

SCRIPT = Path(sys.executable).with_name("cityops")
CITYOPS = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "cityops.cli"]
STORM_TOWN = "150627100"  # 阿勒腾席热镇: red rainstorm in july-rainstorm


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


@pytest.fixture(scope="module")
def drill(tmp_path_factory):
    """``cityops scenario NAME --out F --observed O --ledger L``: the 'write' case, reused."""
    folder = tmp_path_factory.mktemp("drill")
    paths = {
        "forecast": folder / "july.nc",
        "observed": folder / "july.observed.nc",
        "ledger": folder / "drill.sqlite",
    }
    res = cityops("-q", "scenario", "july-rainstorm", "--out", paths["forecast"],
                  "--observed", paths["observed"], "--ledger", paths["ledger"])  # fmt: skip
    paths["result"] = res
    return paths


@pytest.fixture
def ledger(drill, tmp_path):
    """A private copy of the drill ledger (tasks in every state)."""
    path = tmp_path / "ledger.sqlite"
    shutil.copy(drill["ledger"], path)
    return path


def task_in(ledger: Path, state: str) -> str:
    res = cityops("tasks", "--ledger", ledger, "list", "--state", state)
    assert_ok(res)
    ids = [line.split()[0] for line in res.stdout.splitlines() if line.strip()]
    assert ids, f"the drill ledger has no {state} task"
    return ids[0]


# ---------------------------------------------------------------------------------------------
# The parser


def test_version_exit_0():
    res = cityops("--version")
    assert_ok(res)
    assert res.stdout.strip().startswith("cityops ")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nope"],
        ["assess"],
        ["brief", "f.nc", "--lang", "fr"],
        ["review", "--forecast", "f.nc"],
        ["sign", "run"],
        ["scenario", "--seed", "x"],
        ["tasks"],
        ["tasks", "update", "T1"],
        ["tasks", "list", "--state", "lost"],
    ],
    ids=lambda a: " ".join(a) or "(none)",
)
def test_usage_errors_are_one_line_exit_2(argv):
    line = assert_error(cityops(*argv), 2, "error:")
    assert "--help" in line


# ---------------------------------------------------------------------------------------------
# scenario


def test_scenario_write_exit_0(drill):
    assert_ok(drill["result"])
    for key in ("forecast", "observed", "ledger"):
        assert drill[key].exists() and str(drill[key]) in drill["result"].stdout


def test_scenario_list_exit_0_and_closed_pipe_is_141():
    assert_ok(cityops("scenario", "--list"))
    # The reader goes away before anything is written (``cityops scenario --list | true``):
    # quietly 141, never "internal error: BrokenPipeError".
    proc = subprocess.Popen(
        [*CITYOPS, "scenario", "--list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "MPLBACKEND": "agg"},
    )
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, stderr
    assert stderr == ""


@pytest.mark.parametrize(
    ("argv", "word"),
    [
        (["scenario", "no-such-scenario", "--out", "{tmp}/x.nc"], "no-such-scenario"),
        (["scenario", "quiet-day"], "--out"),
        (["scenario", "quiet-day", "--out", "{tmp}"], "folder"),
    ],
)
def test_scenario_bad_input_exit_2(argv, word, tmp_path):
    assert_error(cityops(*(a.format(tmp=tmp_path) for a in argv)), 2, word)


# ---------------------------------------------------------------------------------------------
# assess (success: tests/test_cli.py; a GRIB file: tests/test_ingest_grib.py)


@pytest.mark.parametrize(
    ("option", "word"),
    [(["--rules", "no-such-rules"], "no-such-rules"), (["--jurisdiction", "atlantis"], "atlantis")],
)
def test_assess_bad_option_exit_2(drill, tmp_path, option, word):
    res = cityops("-q", "assess", drill["forecast"], "--out", tmp_path / "run", *option)
    assert_error(res, 2, word)
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------------
# tasks


def test_tasks_every_subcommand_exit_0(ledger, tmp_path):
    assert_ok(cityops("tasks", "--ledger", ledger, "list"))
    issued = task_in(ledger, "issued")
    res = cityops("tasks", "--ledger", ledger, "show", issued)
    assert_ok(res)
    assert f"task_id: {issued}" in res.stdout
    res = cityops("tasks", "--ledger", ledger, "update", issued, "--state", "dispatched",
                  "--by", "值班员", "--note", "派单")  # fmt: skip
    assert_ok(res)
    assert res.stdout.strip() == f"{issued}: dispatched"
    resolved = task_in(ledger, "resolved")
    res = cityops("tasks", "--ledger", ledger, "update", resolved, "--state", "approved",
                  "--by", "局长", "--role", "牵头部门")  # fmt: skip
    assert_ok(res)
    res = cityops("tasks", "--ledger", ledger, "close", resolved, "--by", "局长")
    assert_ok(res)
    assert res.stdout.strip() == f"{resolved}: closed"
    out = tmp_path / "export" / "tasks.csv"
    assert_ok(cityops("tasks", "--ledger", ledger, "export", "--out", out))
    assert out.read_text(encoding="utf-8").startswith("task_id,")


def test_tasks_bad_input_exit_2(ledger, tmp_path):
    assert_error(cityops("tasks", "--ledger", ledger, "show", "no-such-task"), 2, "no-such-task")
    assert_error(
        cityops("tasks", "--ledger", ledger, "update", "no-such-task", "--state", "dispatched",
                "--by", "x"),
        2, "no-such-task",
    )  # fmt: skip
    closed = task_in(ledger, "closed")
    assert_error(cityops("tasks", "--ledger", ledger, "close", closed, "--by", "x"), 2, closed)
    issued = task_in(ledger, "issued")
    assert_error(cityops("tasks", "--ledger", ledger, "close", issued, "--by", "x"), 2, issued)
    # An export target that is a folder or cannot be created: bad input, not an internal error.
    assert_error(cityops("tasks", "--ledger", ledger, "export", "--out", tmp_path), 2, "folder")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert_error(
        cityops("tasks", "--ledger", ledger, "export", "--out", blocker / "t.csv"), 2, "a-file"
    )
    assert_error(cityops("tasks", "--ledger", blocker / "sub" / "l.sqlite", "list"), 2, "a-file")


# ---------------------------------------------------------------------------------------------
# sign


@pytest.fixture(scope="module")
def sign_run(drill, tmp_path_factory):
    """An assess run of the drill forecast at a time its proposals are due."""
    run = tmp_path_factory.mktemp("run") / "run"
    assert_ok(
        cityops("-q", "assess", drill["forecast"], "--out", run, "--now", "2026-07-10T10:30Z")
    )
    return run


def test_sign_exit_0_then_bad_input_exit_2(sign_run, tmp_path):
    db = tmp_path / "l.sqlite"
    res = cityops("sign", sign_run, "--by", "王值班", "--ledger", db, "--at", "2026-07-10T10:40Z")
    assert_ok(res)
    assert res.stdout.count("\n") >= 1 and "issue " in res.stdout
    again = cityops("sign", sign_run, "--by", "王值班", "--ledger", db, "--at", "2026-07-10T10:41Z")
    assert_ok(again)  # nothing new to issue: still 0
    assert "nothing to issue" in again.stdout
    assert_error(cityops("sign", tmp_path / "nowhere", "--by", "x", "--ledger", db), 2,
                 "not a cityops brief or assess run")  # fmt: skip
    assert_error(cityops("sign", sign_run, "--by", "", "--ledger", db), 2, "--by")
    assert_error(cityops("sign", sign_run, "--by", "a\x01b", "--ledger", db), 2, "--by")
    assert_error(cityops("sign", sign_run, "--by", "two\nlines", "--ledger", db), 2, "--by")


# ---------------------------------------------------------------------------------------------
# review (success: tests/test_review_run.py and the slow test below)


def test_review_unsafe_case_id_refused_before_any_work(drill, tmp_path):
    out = tmp_path / "review"
    res = cityops("-q", "review", "--forecast", drill["forecast"], "--observed",
                  drill["observed"], "--out", out, "--case-id", "../evil",
                  "--case-library", tmp_path / "cases", timeout=120)  # fmt: skip
    assert_error(res, 2, "../evil")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no output, no case, no ../evil


def test_review_bad_findings_exit_2(drill, tmp_path):
    findings = tmp_path / "findings.yaml"
    findings.write_text("findings: [unclosed\n", encoding="utf-8")
    res = cityops("-q", "review", "--forecast", drill["forecast"], "--observed",
                  drill["observed"], "--out", tmp_path / "review", "--no-case",
                  "--findings", findings)  # fmt: skip
    assert_error(res, 2, "findings.yaml")
    assert not (tmp_path / "review").exists()


# ---------------------------------------------------------------------------------------------
# brief: bad input is fast; success and partial run notebooks (slow)


@pytest.mark.parametrize(
    ("option", "word"),
    [([], "--out"), (["--out", "{tmp}/b", "--kernel", "no-such-kernel"], "no-such-kernel")],
)
def test_brief_bad_input_exit_2(drill, tmp_path, option, word):
    res = cityops("-q", "brief", drill["forecast"], *(o.format(tmp=tmp_path) for o in option))
    assert_error(res, 2, word)
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_brief_one_unit_no_ledger_exit_0(drill, tmp_path):
    ledger = tmp_path / "must-not-exist.sqlite"
    res = cityops("-q", "brief", drill["forecast"], "--out", tmp_path / "b", "--towns",
                  STORM_TOWN, "--jobs", "1", "--no-ledger",
                  env={"CITYOPS_LEDGER": str(ledger)})  # fmt: skip
    assert_ok(res)
    assert res.stdout.strip() == str(tmp_path / "b" / "index.html")
    assert (tmp_path / "b" / STORM_TOWN / "briefing.html").exists()
    assert not ledger.exists()


@pytest.mark.slow
def test_brief_partial_exit_3(drill, tmp_path):
    """One unit's notebook raises: the others finish, exit 3, each failure named."""
    templates = tmp_path / "templates"
    templates.mkdir()
    nb = nbformat.read(ROOT / "templates" / "town_briefing.ipynb", as_version=4)
    nb.cells.insert(4, nbformat.v4.new_code_cell(
        'if p["town"] == "150627104":\n    raise RuntimeError("deliberately broken unit")'
    ))  # fmt: skip
    nbformat.write(nb, templates / "town_briefing.ipynb")
    out = tmp_path / "b"
    res = cityops("-q", "brief", drill["forecast"], "--out", out, "--towns",
                  f"{STORM_TOWN},150627104", "--jobs", "2", "--no-ledger",
                  env={"CITYOPS_TEMPLATES": str(templates)})  # fmt: skip
    assert res.returncode == 3, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    assert "cityops: failed 150627104: RuntimeError: deliberately broken unit" in res.stderr
    assert (out / STORM_TOWN / "briefing.html").exists()
    assert "deliberately broken unit" in (out / "index.html").read_text(encoding="utf-8")


@pytest.mark.slow
def test_brief_on_grib_exit_0(tmp_path):
    """ecCodes in the batch process and in the kernel, pyproj in both: no crash at exit."""
    from tests.grib_fixtures import write_gfs_like

    grib = write_gfs_like(tmp_path / "gfs.grib2", buckets="6h")
    res = cityops("-q", "brief", grib, "--out", tmp_path / "b", "--towns", STORM_TOWN,
                  "--jobs", "1", "--no-ledger", "--allow-stale")  # fmt: skip
    assert_ok(res)
    assert (tmp_path / "b" / STORM_TOWN / "briefing.html").exists()


@pytest.mark.slow
def test_review_no_case_exit_0(drill, tmp_path):
    library = ROOT / "data" / "jurisdictions" / "ejin-horo" / "review" / "cases"
    before = sorted(p.name for p in library.iterdir()) if library.exists() else []
    res = cityops("-q", "review", "--forecast", drill["forecast"], "--observed",
                  drill["observed"], "--out", tmp_path / "review", "--no-case",
                  "--ledger", drill["ledger"])  # fmt: skip
    assert_ok(res)
    assert res.stdout.strip() == str(tmp_path / "review" / "review.html")
    after = sorted(p.name for p in library.iterdir()) if library.exists() else []
    assert after == before  # --no-case: the library is not touched


# ---------------------------------------------------------------------------------------------
# ecCodes/pyproj import order (the negative control is tests/test_grib.py)


def _no_core_dump() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _python(code: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_no_core_dump,  # the warning test crashes at exit, as documented
    )


@pytest.mark.parametrize("entry", ["cityops", "cityops.cli", "cityops.pipeline"])
def test_entry_points_then_eccodes_exit_cleanly(entry, tmp_path):
    """Whatever a command imports first, ecCodes, cfgrib and xarray's engine list (what
    ``xr.open_dataset`` without ``engine=`` loads) afterwards leave pyproj working and the
    interpreter exiting with 0."""
    proc = _python(
        f"""
        import {entry}
        import eccodes, cfgrib, xarray as xr
        xr.backends.list_engines()
        import pyproj
        print(pyproj.CRS("EPSG:4326").name, eccodes.codes_get_api_version())
    """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("WGS 84")
    assert "PROJ database" not in proc.stderr


def test_cityops_after_eccodes_exits_cleanly_without_a_warning(tmp_path):
    """ecCodes first, then cityops: no crash at exit and nothing to warn about since
    findlibs >= 0.1.4 loads the wheels' bundled PROJ locally (docs/process_health.md)."""
    proc = _python(
        """
        import cfgrib
        import cityops
        import pyproj
        print("imported", pyproj.CRS("EPSG:4326").name)
    """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "imported WGS 84" in proc.stdout
    assert "RuntimeWarning" not in proc.stderr
