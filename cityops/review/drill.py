"""A drill ledger for a scenario: the tasks a briefing run issues, then a synthetic response.

The plan's yearly drill (and the review notebook's sample event) needs a task ledger whose tasks
were dispatched, reached the scene, were resolved and signed off at plausible times. This
writes one: the scenario's response tasks are merged as ``cityops brief`` would, then each task
moves through its states at times drawn from a seeded random stream per task (stated delays
in ``cityops/data/drill.yaml``). Everything it writes is marked as an exercise (the actor is
``drill``); it is never a record of a real response.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from cityops.errors import InputError
from cityops.fsio import atomic_path
from cityops.ledger import (
    ESCALATION_ACTOR,
    check_escalation,
    connect,
    merge_run,
    update_state,
)
from cityops.resources import load_yaml, package_data
from cityops.response.plan import load_plan
from cityops.response.planning import period_pairs

__all__ = ["write_drill_ledger"]

ACTOR = "drill"


def _config() -> dict:
    return load_yaml(package_data("data", "drill.yaml"))


def _rng(task_id: str, seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(task_id.encode("utf-8"))])


def write_drill_ledger(
    forecast: str | os.PathLike,
    db: str | os.PathLike,
    *,
    jurisdiction: str = "ejin-horo",
    seed: int = 0,
) -> dict:
    """Write a drill ledger for a (scenario) forecast into ``db`` (replaced if present).

    Parameters
    ----------
    forecast : path
        The forecast whose response the drill plays (a scenario file, as a rule).
    db : path
        SQLite ledger to create (an existing file is replaced atomically).
    jurisdiction : str, optional
    seed : int, optional
        Seeds the per-task delays; the same seed gives the same ledger.

    Returns
    -------
    dict
        Counts: ``tasks`` merged and ``updates`` applied.
    """
    from cityops.pipeline import assess

    db = Path(db)
    A = assess(forecast, jurisdiction=jurisdiction)
    if A.response is None or A.response.tasks.empty:
        raise InputError(f"{forecast}: the forecast issues no tasks, so there is nothing to drill")
    with atomic_path(db) as tmp:
        try:
            counts, updates = _fill(tmp, A, seed)
        finally:
            for suffix in ("-wal", "-shm"):  # SQLite's companions of the temporary file
                Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    return {"tasks": len(counts["task_ids"]), "updates": updates}


def _fill(tmp: Path, A, seed: int) -> tuple[dict, int]:
    """Merge the run's tasks into the ledger ``tmp`` and play the drill's response."""
    # The drill plays a response to signals issued as the run proposed them: its tasks start
    # issued (without a signal, a run only proposes tasks).
    table = A.table[(A.table["level"] > 0) & A.table["evaluated"].astype(bool)]
    live = list(zip(table["town_code"], table["hazard"], strict=True)) + period_pairs(A.table)
    counts = merge_run(tmp, A.response.tasks, run_time=A.now, actor="cityops brief (drill)",
                       live=live)  # fmt: skip
    cfg = _config()
    events = []
    for task_id in sorted(counts["task_ids"]):
        rng = _rng(task_id, seed)
        when = A.now
        for step in cfg["steps"]:
            if rng.uniform() >= float(step["share"]):
                break  # the drill leaves this task at its current state (still open)
            lo, hi = (float(v) for v in step["delay_minutes"])
            when = when + pd.Timedelta(minutes=float(rng.uniform(lo, hi)))
            events.append((when, task_id, step))
    # The escalation check runs as a scheduled `cityops tasks escalate` would, between the
    # drill's moves, so a task late at some moment is escalated then (not judged afterwards).
    rules = load_plan(A.jurisdiction.path).timing["followup"]
    every = pd.Timedelta(minutes=float(cfg["escalation_check_minutes"]))
    events.sort(key=lambda e: (e[0], e[1]))
    last = (events[-1][0] if events else A.now) + every
    pending = iter(events)
    event = next(pending, None)
    tick = A.now
    updates = 0
    with contextlib.closing(connect(tmp)) as conn:
        while tick <= last:
            while event is not None and event[0] <= tick:
                when, task_id, step = event
                update_state(
                    conn, task_id, step["state"], actor=step.get("actor", ACTOR),
                    role=step.get("role", ""), note=step.get("note", ""), at=when,
                )  # fmt: skip
                updates += 1
                event = next(pending, None)
            check_escalation(conn, tick, rules=rules, actor=f"{ESCALATION_ACTOR} (drill)")
            tick += every
    # Fold the write-ahead log into the file before it moves (the WAL belongs to its name).
    with contextlib.closing(sqlite3.connect(tmp)) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
    return counts, updates
