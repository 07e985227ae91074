"""Fault injection in the briefing batch (issue 11).

A kernel killed mid-run, a template cell raising, the disk full while writing, SIGTERM (and
SIGKILL) during the rename step, a locked ledger: the other towns finish, the index marks the
failure, a dying run leaves the previous good run in place, the next run recovers, and the
ledger stays consistent (integrity check, WAL, no duplicate task, history in step).

Runs that must die are run in a child process (``CHILD`` below) that patches the batch, then
calls the ``cityops`` command line; the machinery tests replace the notebooks by a stub
(``_run_unit``), the unit faults execute real notebooks.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import nbformat
import pytest
import xarray as xr
import yaml

from cityops import brief as batch
from cityops.brief import BriefOptions, run_briefings, template_path
from cityops.errors import CityopsError, InputError, PartialFailure
from cityops.resources import package_data
from cityops.scenarios import write_scenario

KILLED, RAISING, DISK_FULL, GOOD = "150627100", "150627101", "150627102", "150627103"

#: The child process: patches the batch as ``cfg`` says, then runs ``cityops`` with its argv.
CHILD = r"""
import errno, json, os, signal, sys
from pathlib import Path

cfg = json.loads(sys.argv[1])
from cityops import brief as batch

if cfg.get("stub_units"):  # the batch machinery without notebooks
    def stub(code, forecast, stage, opts, final=None, *extra):
        (stage / code).mkdir(parents=True, exist_ok=True)
        (stage / code / "briefing.html").write_text("<html>stub</html>", encoding="utf-8")
        return None
    batch._run_unit = stub

if cfg.get("disk_full_notebook"):  # the disk is full when papermill writes one notebook
    import papermill.engines, papermill.execute
    real_write = papermill.engines.write_ipynb
    def write_ipynb(nb, path):
        if Path(path).parent.name == cfg["disk_full_notebook"]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_write(nb, path)
    papermill.engines.write_ipynb = papermill.execute.write_ipynb = write_ipynb

if cfg.get("kill_after_aside"):  # a signal once the previous run is moved aside for the new
    real_replace = os.replace
    def replace(src, dst):
        real_replace(src, dst)
        if ".old-" in Path(dst).name:
            os.kill(os.getpid(), getattr(signal, cfg["kill_after_aside"]))
    os.replace = replace

from cityops.cli import main
sys.exit(main(cfg["argv"]))
"""


@pytest.fixture(scope="module")
def rain(tmp_path_factory):
    """A forecast with tasks for the ledger: the July rainstorm drill, its first 24 h, with a
    rule table of the rainstorm signals only (the faults are in the machinery; this keeps
    every run short)."""
    folder = tmp_path_factory.mktemp("rain")
    full = write_scenario("july-rainstorm", folder / "full.nc")
    with xr.open_dataset(full) as ds:
        ds.isel(time=slice(0, 24)).load().to_netcdf(folder / "rain.nc")
    table = yaml.safe_load(package_data("rules", "tables", "national.yaml").read_text("utf-8"))
    table["hazards"] = {"rainstorm": table["hazards"]["rainstorm"]}
    (folder / "rules.yaml").write_text(yaml.safe_dump(table, allow_unicode=True), "utf-8")
    return folder / "rain.nc"


def options(rain, **kw) -> BriefOptions:
    return BriefOptions(rules=str(rain.parent / "rules.yaml"), **kw)


def run_child(tmp_path, cfg: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    script = tmp_path / "child.py"
    script.write_text(CHILD, encoding="utf-8")
    env = {**os.environ, "MPLBACKEND": "agg", **cfg.pop("env", {})}
    return subprocess.run(
        [sys.executable, str(script), json.dumps(cfg)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=tmp_path,
    )


def brief_argv(rain, out, db, towns: str, jobs: int = 2) -> list[str]:
    rules = rain.parent / "rules.yaml"
    return f"brief {rain} --rules {rules} --out {out} --ledger {db} --towns {towns} --jobs {jobs}".split()


def previous_run(out):
    """A good run already in place (with the marker of a brief run); its files' contents."""
    from cityops.fsio import write_marker

    (out / GOOD).mkdir(parents=True)
    write_marker(out, "brief")
    (out / "index.html").write_text("<html>previous good run</html>", encoding="utf-8")
    (out / GOOD / "briefing.html").write_text("<html>previous briefing</html>", encoding="utf-8")
    return snapshot(out)


def snapshot(folder) -> dict:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def leftovers(out) -> list[str]:
    """Stages and earlier runs of ``out`` left beside it."""
    return sorted(p.name for p in out.parent.glob(f".{out.name}.*") if not p.name.endswith("lock"))


def ledger_state(db) -> dict:
    """Check the ledger is consistent; return row counts."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        duplicates = conn.execute(
            "SELECT town_code, hazard, measure, episode FROM tasks "
            "GROUP BY town_code, hazard, measure, episode HAVING COUNT(*) > 1"
        ).fetchall()
        assert duplicates == []
        states = dict(conn.execute("SELECT task_id, state FROM tasks").fetchall())
        chains: dict[str, list] = {}
        for task_id, before, after in conn.execute(
            "SELECT task_id, from_state, to_state FROM task_history ORDER BY id"
        ):
            chains.setdefault(task_id, []).append((before, after))
        counts = {
            t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("tasks", "task_history", "episodes", "cap_alerts")
        }
    # Every task has a history that starts with its proposal (no signal issued yet) or its
    # issue, and ends in its state.
    assert set(chains) == set(states)
    for task_id, chain in chains.items():
        assert chain[0] in ((None, "proposed"), (None, "issued")), task_id
        assert all(a[1] == b[0] for a, b in itertools.pairwise(chain)), task_id
        assert chain[-1][1] == states[task_id], task_id
    return counts


def stub_units(monkeypatch):
    def stub(code, forecast, stage, opts, final=None, *extra):
        (stage / code).mkdir(parents=True, exist_ok=True)
        (stage / code / "briefing.html").write_text("<html>stub</html>", encoding="utf-8")

    monkeypatch.setattr(batch, "_run_unit", stub)


# --------------------------------------------------------------------------- unit faults


@pytest.mark.slow
def test_killed_kernel_raising_cell_and_full_disk_fail_only_their_units(rain, tmp_path):
    """Real kernels: one is killed mid-run, one cell raises, one notebook cannot be written
    (disk full); the fourth unit finishes; exit status 3; the index and run.json name the
    failures; the run's tasks are in a consistent ledger."""
    templates = tmp_path / "templates"
    templates.mkdir()
    nb = nbformat.read(template_path(), as_version=4)
    nb.cells.insert(
        4,
        nbformat.v4.new_code_cell(
            "import os, signal\n"
            f'if p["town"] == "{KILLED}":\n'
            "    os.kill(os.getpid(), signal.SIGKILL)  # the kernel dies mid-run\n"
            f'if p["town"] == "{RAISING}":\n'
            '    raise RuntimeError("deliberately broken cell")'
        ),
    )
    nbformat.write(nb, templates / "town_briefing.ipynb")
    out, db = tmp_path / "run", tmp_path / "ledger.sqlite"
    towns = ",".join([KILLED, RAISING, DISK_FULL, GOOD])
    proc = run_child(
        tmp_path,
        {
            "argv": brief_argv(rain, out, db, towns),
            "disk_full_notebook": DISK_FULL,
            "env": {"CITYOPS_TEMPLATES": str(templates)},
        },
    )
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert f"cityops: failed {KILLED}: DeadKernelError: Kernel died" in lines
    assert f"cityops: failed {RAISING}: RuntimeError: deliberately broken cell" in lines
    assert any(
        line.startswith(f"cityops: failed {DISK_FULL}: OSError: [Errno 28] No space left")
        for line in lines
    ), proc.stderr
    assert f"{GOOD} briefing done" in proc.stderr
    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert sorted(run["failures"]) == [KILLED, RAISING, DISK_FULL]
    index = (out / "index.html").read_text(encoding="utf-8")
    for text in ("Kernel died", "deliberately broken cell", "No space left on device"):
        assert text in index
    assert f'href="{GOOD}/briefing.html"' in index
    assert f'href="{KILLED}/briefing.html"' not in index
    assert (out / GOOD / "briefing.html").stat().st_size > 10_000
    for code in (KILLED, RAISING, DISK_FULL):
        assert not (out / code / "briefing.html").exists()
        assert (out / code / "tasks.csv").exists()  # the plan's tasks are there all the same
    assert leftovers(out) == []
    counts = ledger_state(db)
    assert counts["tasks"] > 0
    assert counts["cap_alerts"] == 0  # the run's CAP files are drafts: nothing was sent


def test_disk_full_writing_one_page_fails_that_unit_only(rain, tmp_path, monkeypatch):
    """The page of one unit cannot be written: that unit fails (no half page), the other
    finishes. Papermill is replaced by a stand-in that writes a small executed notebook."""
    import papermill

    def execute_notebook(template, output, parameters, **kw):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_markdown_cell(f"# briefing {parameters['town']}")]
        nbformat.write(nb, output)

    from cityops.report import runner

    real_html = runner.to_html

    def to_html(notebook, html_path, lang="zh"):
        if html_path.parent.name == DISK_FULL:
            html_path.write_text("<html><body>half a pa", encoding="utf-8")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(html_path))
        return real_html(notebook, html_path, lang)

    monkeypatch.setattr(papermill, "execute_notebook", execute_notebook)
    monkeypatch.setattr(runner, "to_html", to_html)
    out = tmp_path / "run"
    with pytest.raises(PartialFailure) as err:
        run_briefings(rain, out, options(rain, towns=f"{GOOD},{DISK_FULL}", ledger=""))
    assert list(err.value.failed) == [DISK_FULL]
    assert err.value.failed[DISK_FULL].startswith("OSError: [Errno 28] No space left on device")
    assert not (out / DISK_FULL / "briefing.html").exists()
    assert "briefing 150627103" in (out / GOOD / "briefing.html").read_text(encoding="utf-8")
    assert "No space left on device" in (out / "index.html").read_text(encoding="utf-8")


# --------------------------------------------------------------------------- run faults


def test_disk_full_while_writing_the_run_keeps_the_previous_run(rain, tmp_path, monkeypatch):
    import cityops.report.index

    out, db = tmp_path / "run", tmp_path / "ledger.sqlite"
    before = previous_run(out)

    def full_disk(assessment, folder, **kw):
        (folder / "index.html").write_text("<html>half an ind", encoding="utf-8")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder / "index.html"))

    monkeypatch.setattr(cityops.report.index, "write_index", full_disk)
    stub_units(monkeypatch)
    with pytest.raises(CityopsError, match=r"No space left on device.*unchanged") as err:
        run_briefings(rain, out, options(rain, towns=f"{GOOD},{KILLED}", ledger=str(db)))
    assert err.value.exit_code == 1
    assert snapshot(out) == before
    assert leftovers(out) == []
    assert ledger_state(db)["tasks"] == 0  # the run never got in place: nothing recorded


def test_locked_ledger_after_the_run_names_the_ledger_and_keeps_the_run(
    rain, tmp_path, monkeypatch
):
    from cityops import ledger

    out, db = tmp_path / "run", tmp_path / "ledger.sqlite"
    ledger.connect(db).close()
    stub_units(monkeypatch)
    monkeypatch.setenv("CITYOPS_LEDGER_TIMEOUT", "0.5")
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as holder:
        holder.execute("BEGIN IMMEDIATE")  # another writer holds the ledger
        t0 = time.monotonic()
        with pytest.raises(InputError, match=r"locked.*is in place.*not recorded"):
            run_briefings(rain, out, options(rain, towns=GOOD, ledger=str(db)))
        assert time.monotonic() - t0 < 60
        holder.execute("ROLLBACK")
    assert (out / "index.html").exists() and leftovers(out) == []
    assert ledger_state(db)["tasks"] == 0
    run_briefings(rain, out, options(rain, towns=GOOD, ledger=str(db)))  # the same run again
    assert ledger_state(db)["tasks"] > 0


@pytest.mark.slow
def test_sigterm_between_the_renames_keeps_the_previous_run_and_next_run_recovers(
    rain, tmp_path, monkeypatch
):
    out, db = tmp_path / "run", tmp_path / "ledger.sqlite"
    before = previous_run(out)
    cfg = {"argv": brief_argv(rain, out, db, f"{GOOD},{KILLED}"), "stub_units": True}

    # SIGTERM after the previous run was moved aside, before the new one is in.
    proc = run_child(tmp_path, {**cfg, "kill_after_aside": "SIGTERM"})
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
    assert "brief stopped by a signal: the previous run stays in place" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert snapshot(out) == before
    assert leftovers(out) == []
    assert ledger_state(db)["tasks"] == 0

    # SIGKILL at the same point cannot be caught: the previous run is left aside, the stage too.
    proc = run_child(tmp_path, {**cfg, "kill_after_aside": "SIGKILL"})
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()
    left = leftovers(out)
    assert any(".old-" in n for n in left) and any(".tmp-" in n for n in left), left
    # More debris of killed runs: an old stage with a half-written page.
    (out.parent / ".run.tmp-deadbeef" / GOOD).mkdir(parents=True)
    (out.parent / ".run.tmp-deadbeef" / GOOD / "briefing.html").write_text("<html>ha")

    # The next run (under the run lock) first puts the previous run back, then clears debris.
    batch._clean_stale(out)
    assert snapshot(out) == before
    assert leftovers(out) == []

    # ... and a run then replaces it, and records it in the ledger.
    (out.parent / ".run.tmp-0dd" / GOOD).mkdir(parents=True)
    stub_units(monkeypatch)
    index = run_briefings(rain, out, options(rain, towns=GOOD, ledger=str(db)))
    assert index == out / "index.html"
    assert "previous good run" not in index.read_text(encoding="utf-8")
    assert leftovers(out) == []
    counts = ledger_state(db)
    assert counts["tasks"] > 0

    # Running the same forecast again duplicates nothing.
    run_briefings(rain, out, options(rain, towns=GOOD, ledger=str(db)))
    assert ledger_state(db) == counts


main_thread_only = pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(),
    reason="Python runs signal handlers in the main thread only",
)


def send_sigterm():
    """SIGTERM to this (test) process, only while the batch's handler is in place."""
    assert signal.getsignal(signal.SIGTERM) is batch._on_stop_signal
    os.kill(os.getpid(), signal.SIGTERM)


@main_thread_only
def test_sigterm_once_the_new_run_is_in_place_records_it_first(rain, tmp_path, monkeypatch):
    out, db = tmp_path / "run", tmp_path / "ledger.sqlite"
    previous_run(out)
    stub_units(monkeypatch)
    real_replace = os.replace

    def replace(src, dst):
        real_replace(src, dst)
        if os.fspath(dst) == os.fspath(out) and ".tmp-" in os.fspath(src):
            send_sigterm()

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(batch.Terminated) as err:
        run_briefings(rain, out, options(rain, towns=GOOD, ledger=str(db)))
    assert err.value.code == 128 + signal.SIGTERM
    assert json.loads((out / "run.json").read_text(encoding="utf-8"))["units"] == [GOOD]
    assert leftovers(out) == []
    counts = ledger_state(db)
    assert counts["tasks"] > 0  # the published run is recorded
    assert counts["cap_alerts"] == 0  # its CAP files are drafts: no message was sent


@main_thread_only
def test_sigterm_during_the_briefings_starts_no_more_and_keeps_the_previous_run(
    rain, tmp_path, monkeypatch
):
    out, db = tmp_path / "run", tmp_path / "ledger.sqlite"
    before = previous_run(out)
    codes = ["150627100", "150627101", "150627102", "150627103", "150627104", "150627105"]
    started = []

    def unit(code, forecast, stage, opts, final=None, *extra):
        started.append(code)
        if code == codes[1]:
            send_sigterm()
        time.sleep(0.5)
        (stage / code).mkdir(parents=True, exist_ok=True)

    monkeypatch.setattr(batch, "_run_unit", unit)
    with pytest.raises(batch.Terminated):
        run_briefings(rain, out, options(rain, towns=",".join(codes), jobs=1, ledger=str(db)))
    assert started == codes[:2]  # the running one ended; no other started
    assert snapshot(out) == before and leftovers(out) == []
    assert ledger_state(db)["tasks"] == 0
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler given back


@main_thread_only
def test_stop_signals_taken_only_from_defaults_and_given_back():
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    ignored = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with batch._stop_signals():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN  # nohup stays nohup
            if before[signal.SIGTERM] is signal.SIG_DFL:
                assert signal.getsignal(signal.SIGTERM) is batch._on_stop_signal
                with pytest.raises(batch.Terminated) as err:
                    batch._on_stop_signal(signal.SIGTERM, None)
                assert err.value.code == 143
                with pytest.raises(batch.Terminated), batch._signals_held():
                    batch._on_stop_signal(signal.SIGTERM, None)  # held, raised after the step
        assert signal.getsignal(signal.SIGTERM) is before[signal.SIGTERM]
    finally:
        signal.signal(signal.SIGHUP, ignored)
