"""(c) the briefing batch, and scaling on a dask.distributed cluster (issue 10).

Run: ``.venv/bin/python benchmarks/batch_cluster.py`` (about 3 minutes; needs ``make samples``
and the ``cityops`` kernel). Prints a Markdown table for ``benchmarks/RESULTS.md``.

- **batch**: ``cityops brief`` of the july-rainstorm sample for all 10 Ejin Horo units against
  one town (``--towns 150627100``), both with ``--jobs 2 --no-ledger``, wall time of the whole
  command (kernel start-up included), least of ``REPEAT`` runs; target: all ≤ 3 × one.
- **scaling**: the national rule set on a synthetic 72 × 1000 × 1000 dask grid (chunks
  72 × 250 × 250) on a ``LocalCluster`` of 1 and of 2 single-threaded worker processes.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

REPEAT = 2
SAMPLE = ROOT / "data" / "samples" / "july-rainstorm.nc"


def brief_seconds(towns: str) -> float:
    best = float("inf")
    for _ in range(REPEAT):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            subprocess.run(
                [str(ROOT / ".venv" / "bin" / "cityops"), "-q", "brief", str(SAMPLE),
                 "--out", f"{tmp}/run", "--towns", towns, "--jobs", "2", "--no-ledger"],
                check=True, capture_output=True,
            )  # fmt: skip
            best = min(best, time.perf_counter() - t0)
    return best


def cluster_seconds(workers: int, ny: int = 1000, nx: int = 1000) -> float:
    import dask
    from distributed import Client, LocalCluster
    from synthetic import synthetic_forecast

    from cityops.rules import evaluate, load_rule_table

    table = load_rule_table("national")
    with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None) as cluster:
        with Client(cluster):
            ds = synthetic_forecast(ny, nx)
            fields = [r.level.max("time") for r in evaluate(ds, table) if r.evaluated]
            dask.compute(*fields)  # warm-up: imports and serialisation on the workers
            t0 = time.perf_counter()
            ds = synthetic_forecast(ny, nx, seed=1)
            fields = [r.level.max("time") for r in evaluate(ds, table) if r.evaluated]
            dask.compute(*fields)
            return time.perf_counter() - t0


if __name__ == "__main__":
    one = brief_seconds("150627100")
    every = brief_seconds("all")
    print("| batch | wall s |\n|---|---|")
    print(f"| one town (150627100) | {one:.1f} |")
    print(f"| all 10 units | {every:.1f} |")
    print(f"| all / one | **{every / one:.2f}x** (target ≤ 3x) |\n")
    w1, w2 = cluster_seconds(1), cluster_seconds(2)
    print("| LocalCluster, national rules, 72 x 1000 x 1000 dask | wall s |\n|---|---|")
    print(f"| 1 worker | {w1:.1f} |\n| 2 workers | {w2:.1f} |")
    print(f"| speed-up | **{w1 / w2:.2f}x** |")
