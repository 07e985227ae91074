"""Speed targets of the data path (not timed unit tests: run with ``make bench``).

- ``assess`` of a banner-size sample (3 km, 72 h): target < 2 s.
- The explorer (``cityops.explore``): one valid-time slider step on the sample redraws in
  well under a second (target < 0.5 s, median of 10 steps).
- The rule engine on a national-size grid (0.05°, 700 x 1200 cells, 72 h) lazily with dask:
  rainstorm levels for the whole grid, target < 120 s and peak memory well under 8 GiB.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cityops.pipeline import assess  # noqa: E402
from cityops.rules import evaluate, load_rule_table  # noqa: E402


def bench_assess(sample: Path) -> float:
    assess(sample)  # warm caches (imports, rule tables, jurisdiction)
    t0 = time.perf_counter()
    assess(sample)
    return time.perf_counter() - t0


def bench_explore_step(sample: Path, steps: int = 10) -> float:
    from cityops.explore import Explorer

    ex = Explorer(sample)
    ex.hazard.value = "rainstorm"
    times = []
    for i in range(steps):
        t0 = time.perf_counter()
        ex.time.value = (i + 1) % (ex.time.max + 1)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def bench_engine_large(ny: int = 700, nx: int = 1200, nt: int = 72) -> float:
    times = pd.date_range("2026-07-10T01:00", periods=nt, freq="h")
    rain = da.random.default_rng(0).gamma(0.3, 4.0, size=(nt, ny, nx), chunks=(nt, 175, 300))
    ds = xr.Dataset(
        {"precip": (("time", "lat", "lon"), rain.astype("float32"), {"units": "mm"})},
        coords={"time": times, "lat": np.linspace(18, 53, ny), "lon": np.linspace(73, 135, nx)},
        attrs={"issued": "2026-07-10T00:00:00Z"},
    )
    t0 = time.perf_counter()
    level = evaluate(ds, load_rule_table("national"), hazards=["rainstorm"])["rainstorm"].level
    level.max("time").compute()
    return time.perf_counter() - t0


if __name__ == "__main__":
    sample = ROOT / "data" / "samples" / "july-rainstorm.nc"
    print(f"assess july-rainstorm sample: {bench_assess(sample):.2f} s (target < 2 s)")
    print(f"explorer time-slider step: {bench_explore_step(sample):.3f} s (target < 0.5 s)")
    print(f"rainstorm levels, 700x1200x72 lazy: {bench_engine_large():.1f} s (target < 120 s)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak memory: {peak:.2f} GiB (target < 8 GiB)")
