"""Load (issue 11): the ledger under concurrent writers, a locked ledger, and the briefing batch
over 1,000 synthetic units within bounded memory."""

from __future__ import annotations

import contextlib
import itertools
import json
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import time

import pandas as pd
import pytest

from cityops import ledger
from cityops.errors import InputError

RUN = "2026-07-10T00:00Z"
WRITERS, TASKS_PER_WRITER = 4, 250
STEPS = ("dispatched", "on_site", "resolved")  # 1 merge + 3 updates per task


def _task(town: str) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "town_code": town,
                "hazard": "rainstorm",
                "measure": "rain_drainage_patrol",
                "loop": "middle",
                "lead_unit": "住建局",
                "supporting_units": "应急局",
                "due_utc": "2026-07-10T10:00Z",
                "onset_utc": "2026-07-10T12:00Z",
                "end_utc": "2026-07-10T18:00Z",
                "level": 2,
                "source": "load test",
                "text_zh": "排水巡查",
            }
        ]
    )


def _writer(path: str, worker: int) -> None:
    """1,000 write transactions, each on its own connection as the CLI does."""
    for i in range(TASKS_PER_WRITER):
        town = f"9{worker}{i:07d}"
        # a signal is in force: the task starts issued (else a run only proposes it)
        stats = ledger.merge_run(path, _task(town), run_time=RUN, actor=f"w{worker}",
                                 live=[(town, "rainstorm")])  # fmt: skip
        (task_id,) = stats["task_ids"]
        for n, state in enumerate(STEPS):
            ledger.update_state(
                path, task_id, state, actor=f"w{worker}", note=f"{i}.{n}", at=f"2026-07-10T0{n}:00Z"
            )


@pytest.mark.slow
def test_four_writers_a_thousand_updates_each_lose_nothing(tmp_path):
    db = tmp_path / "ledger.sqlite"
    ledger.connect(db).close()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(db), w)) for w in range(WRITERS)]
    t0 = time.monotonic()
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    elapsed = time.monotonic() - t0
    assert [p.exitcode for p in procs] == [0] * WRITERS
    n_tasks = WRITERS * TASKS_PER_WRITER
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0] == n_tasks
        assert conn.execute("SELECT COUNT(*) FROM episodes").fetchone()[0] == n_tasks
        assert conn.execute("SELECT state, COUNT(*) FROM tasks GROUP BY state").fetchall() == [
            ("resolved", n_tasks)
        ]
        per_actor = conn.execute(
            "SELECT actor, COUNT(*) FROM task_history GROUP BY actor ORDER BY actor"
        ).fetchall()
        assert per_actor == [(f"w{w}", 4 * TASKS_PER_WRITER) for w in range(WRITERS)]
        history: dict[str, list] = {}
        for task_id, before, after in conn.execute(
            "SELECT task_id, from_state, to_state FROM task_history ORDER BY id"
        ):
            history.setdefault(task_id, []).append((before, after))
    expected = [(None, "issued"), *itertools.pairwise(("issued", *STEPS))]
    assert len(history) == n_tasks
    assert all(chain == expected for chain in history.values())
    print(f"{WRITERS} writers x {4 * TASKS_PER_WRITER} writes: {elapsed:.1f} s")


def test_locked_ledger_is_a_clear_input_error_after_the_timeout(tmp_path, monkeypatch):
    db = tmp_path / "ledger.sqlite"
    task_id = ledger.merge_run(db, _task("150627100"), run_time=RUN,
                               live=[("150627100", "rainstorm")])["task_ids"][0]  # fmt: skip
    monkeypatch.setenv("CITYOPS_LEDGER_TIMEOUT", "0.5")
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as holder:
        holder.execute("BEGIN IMMEDIATE")  # another writer holds the ledger and does not let go
        t0 = time.monotonic()
        with pytest.raises(InputError, match=r"ledger .*ledger\.sqlite: locked") as err:
            ledger.update_state(db, task_id, "dispatched", actor="值班员")
        waited = time.monotonic() - t0
        assert 0.4 <= waited < 10, waited
        assert "\n" not in str(err.value)
        # Readers are not blocked (WAL).
        assert ledger.get_task(db, task_id)["state"] == "issued"
        # The command line: exit status 2 and one line, well before any default timeout.
        t0 = time.monotonic()
        argv = ["tasks", "--ledger", str(db), "update", task_id, "--state", "dispatched"]
        proc = subprocess.run(
            [sys.executable, "-m", "cityops.cli", *argv, "--by", "值班员"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "CITYOPS_LEDGER_TIMEOUT": "0.5"},
        )
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("cityops: error: ledger ") and "locked" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        assert time.monotonic() - t0 < 60
        holder.execute("ROLLBACK")
    assert ledger.update_state(db, task_id, "dispatched", actor="值班员")["state"] == "dispatched"


# --------------------------------------------------------------------------- 1,000 units

#: Child process: builds the run over all units through the command line; notebooks are
#: executed for the sample units only, the others get a stub page (the machinery is measured).
SCALE_CHILD = r"""
import json, resource, sys, time
from cityops import brief as batch

cfg = json.loads(sys.argv[1])
real = batch._run_unit
def run_unit(code, forecast, stage, opts, final=None, *extra):
    if code in cfg["sample"]:
        return real(code, forecast, stage, opts, final, *extra)
    (stage / code).mkdir(parents=True, exist_ok=True)
    (stage / code / "briefing.html").write_text("<html>not executed</html>", encoding="utf-8")
    return None
batch._run_unit = run_unit

from cityops.cli import main
t0 = time.monotonic()
status = main(cfg["argv"])
with open(cfg["report"], "w") as fh:
    json.dump({
        "status": status,
        "seconds": time.monotonic() - t0,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "children_maxrss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }, fh)
sys.exit(status)
"""


def synthetic_jurisdiction(folder, nx=40, ny=25, lon0=109.1, lat0=39.0, step=0.03):
    """``nx`` x ``ny`` square units of ``step`` degrees (about one grid cell each) with the
    Ejin Horo plan, so that response planning and the ledger see every unit."""
    import shutil

    import yaml

    from cityops.geo import load_jurisdiction

    folder.mkdir(parents=True)
    features = []
    for k, (j, i) in enumerate(itertools.product(range(ny), range(nx))):
        x0, y0 = round(lon0 + i * step, 4), round(lat0 + j * step, 4)
        x1, y1 = round(x0 + step, 4), round(y0 + step, 4)
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "code": f"150699{k:03d}",
                    "name_zh": f"合成单元{k:04d}",
                    "name_en": f"Synthetic unit {k:04d}",
                    "kind": "zone",
                    "approximate": True,
                    "seat_lon": round(x0 + step / 2, 5),
                    "seat_lat": round(y0 + step / 2, 5),
                },
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]],
                },
            }
        )
    collection = {"type": "FeatureCollection", "features": features}
    (folder / "units.geojson").write_text(json.dumps(collection), encoding="utf-8")
    meta = {
        "name": "synthetic-1000",
        "code": "150699",
        "name_zh": "合成旗",
        "name_en": "Synthetic banner",
        "timezone": "Asia/Shanghai",
        "files": {"units": "units.geojson"},  # the outline is the union of the units
        "properties": {},
        "defaults": {},
        "sources": ["tests/test_load.py: a synthetic grid of square units"],
    }
    (folder / "jurisdiction.yaml").write_text(yaml.safe_dump(meta, allow_unicode=True), "utf-8")
    shutil.copytree(load_jurisdiction("ejin-horo").path / "plan", folder / "plan")
    return folder


@pytest.mark.slow
def test_a_thousand_units_in_bounded_memory_with_progress(tmp_path):
    from cityops.scenarios import write_scenario

    juris = synthetic_jurisdiction(tmp_path / "synthetic-1000")
    forecast = write_scenario("july-rainstorm", tmp_path / "rain.nc")
    out, db, report = tmp_path / "run", tmp_path / "ledger.sqlite", tmp_path / "report.json"
    sample = ["150699000", "150699512"]
    argv = f"brief {forecast} --out {out} --jurisdiction {juris} --ledger {db} --jobs 2".split()
    script = tmp_path / "scale.py"
    script.write_text(SCALE_CHILD, encoding="utf-8")
    cfg = {"argv": argv, "sample": sample, "report": str(report)}
    proc = subprocess.run(
        [sys.executable, str(script), json.dumps(cfg)],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "MPLBACKEND": "agg"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = json.loads(report.read_text())
    print(json.dumps(stats))
    # Bounded memory: the batch process and the largest notebook kernel each stay under 2 GB.
    assert stats["maxrss_mb"] < 2048 and stats["children_maxrss_mb"] < 2048, stats

    # Progress: one line per unit, the last one [1000/1000].
    progress = [line for line in proc.stderr.splitlines() if "briefing done" in line]
    assert len(progress) == 1000 and any("[1000/1000]" in line for line in progress)

    # Aggregation and response over every unit, an index row and a task list per unit.
    town = pd.read_csv(out / "town_hazards.csv", dtype={"town_code": str})
    assert town["town_code"].nunique() == 1000
    assert (town["level"] > 0).sum() > 50  # the storm reaches many units
    index = (out / "index.html").read_text(encoding="utf-8")
    assert sum(f'href="150699{k:03d}/briefing.html"' in index for k in range(1000)) == 1000
    tasks = sum(
        len(pd.read_csv(out / f"150699{k:03d}" / "tasks.csv", dtype=str)) for k in range(1000)
    )
    assert tasks > 100
    for code in sample:  # the sample's notebooks were executed for real
        assert (out / code / "briefing.html").stat().st_size > 10_000
    # The ledger holds every task exactly once: the run's whole list (one per measure and
    # owner; a unit's tasks.csv also shows the banner-level tasks it triggers).
    total = len(pd.read_csv(out / "tasks.csv", dtype=str))
    assert 0 < total < tasks
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0] == total
        n_history = "SELECT COUNT(DISTINCT task_id) FROM task_history"
        assert conn.execute(n_history).fetchone()[0] == total
    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert len(run["units"]) == 1000 and run["failures"] == {}
