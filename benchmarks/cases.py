"""Benchmark cases, each run in its own process by ``benchmarks/run.py`` (peak memory is the
process's ``ru_maxrss``). ``python benchmarks/cases.py CASE [options]`` prints one JSON line.

Cases
-----
engine-memory N          national rule set on an in-memory N x N x 72 h float32 grid, beside the
                         floor and the naive rolling implementation, per hazard and in total
engine-dask N [M]        the same on a lazy (dask) grid, space chunks and whole time, M members;
                         computes every level field chunk by chunk (reduced to its time maximum
                         and a checksum, so no full-grid field is held) and a strip of rows in full
strip N ROWS FILE        in-memory evaluation of the first ROWS rows of the N x N grid, compared
                         with the strip saved by engine-dask (identity of the two paths)
aggregate N UNITS        town aggregation of the N x N levels to UNITS synthetic polygons
weights N UNITS          sparse overlap weights of an N x N 0.01° grid and UNITS synthetic
                         polygons: before (shapely path) and after (exactextract path), the
                         cached second call, and the floor (exactextract's coverage of the same
                         polygons in plain lon/lat, no densifying or equal-area mapping)
"""

from __future__ import annotations

import json
import operator
import os
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import dask  # noqa: E402
import xarray as xr  # noqa: E402
from synthetic import NATIONAL_INPUTS, synthetic_forecast, synthetic_jurisdiction  # noqa: E402

from cityops.rules import evaluate, fused, load_rule_table  # noqa: E402
from cityops.rules.table import Group  # noqa: E402
from cityops.units import convert_dataarray  # noqa: E402

THREADS = int(os.environ.get("CITYOPS_BENCH_THREADS", os.cpu_count() or 1))
REPEATS = int(os.environ.get("CITYOPS_BENCH_REPEATS", "5"))


def rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def best(f, repeats: int = REPEATS) -> float:
    """Least wall time of ``repeats`` runs (the machine is shared: the least is the least
    disturbed)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)


def floor_numpy(arrays: list[np.ndarray], threads: int) -> float:
    """One numpy reduction ``x.max(axis=0)`` over each array; with ``threads`` > 1 the
    array's second axis is split between threads (same thread count as the engine)."""
    if threads == 1:
        return best(lambda: [a.max(axis=0) for a in arrays])
    with ThreadPoolExecutor(threads) as ex:

        def run():
            for a in arrays:
                n = a.shape[1]
                cut = [slice(i * n // threads, (i + 1) * n // threads) for i in range(threads)]
                list(ex.map(lambda s, a=a: a[:, s].max(axis=0), cut))

        return best(run)


# ------------------------------------------------------------------------ naive
_CMP = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


def naive_evaluate(ds: xr.Dataset, table, hazards=None) -> dict[str, xr.DataArray]:
    """A straightforward xarray implementation: per rule, ``rolling(time=n).sum()`` (hourly
    steps), ``groupby`` local day for daily rules, one comparison per condition, levels
    combined with ``xr.where``. No caching, no fusion."""
    import pandas as pd

    local = pd.DatetimeIndex(ds["time"].values).tz_localize("UTC").tz_convert("Asia/Shanghai")
    day = xr.DataArray(
        (local - pd.Timedelta("1ns")).tz_localize(None).normalize().values,
        dims="time",
        coords={"time": ds["time"]},
    )
    out = {}
    for rules in table:
        if hazards is not None and rules.hazard not in hazards:
            continue
        if any(r not in ds.attrs and r not in ds.data_vars for r in rules.requires):
            continue
        level = None
        for rule in rules.levels:
            holds = _naive_group(ds, rule.criteria, day)
            if holds is None and rule.proxy is not None:
                holds = _naive_group(ds, rule.proxy, day)
            if holds is None:
                continue
            contrib = xr.where(holds, np.int8(rule.level), np.int8(0))
            level = contrib if level is None else np.maximum(level, contrib)
        if level is not None and rules.season is not None:
            times = pd.DatetimeIndex(ds["time"].values)
            level = level.where(xr.DataArray(rules.season.mask(times, "Asia/Shanghai"),
                                             dims="time"), 0)  # fmt: skip
        if level is not None:
            out[rules.hazard] = level
    return out


def _naive_group(ds, group: Group, day):
    parts = []
    for item in group.items:
        h = _naive_group(ds, item, day) if isinstance(item, Group) else _naive_cond(ds, item, day)
        if h is None:
            if group.mode == "all" and (isinstance(item, Group) or item.required):
                return None
            continue
        parts.append(h)
    if not parts:
        return None
    out = parts[0]
    for h in parts[1:]:
        out = (out | h) if group.mode == "any" else (out & h)
    return out


def _naive_cond(ds, c, day):
    var = next((v for v in c.variables if v in ds.data_vars), None)
    if var is None:
        return None
    da = convert_dataarray(ds[var], c.units)
    cmp = _CMP[c.op]
    if c.reduce == "point":
        return cmp(da, c.threshold)
    if c.reduce in ("sum", "max", "min"):
        n = int(c.window / np.timedelta64(1, "h"))
        rolled = getattr(da.rolling(time=n, min_periods=1), c.reduce)()
        return cmp(rolled, c.threshold)
    grouped = da.assign_coords(day=day).groupby("day")
    daily = grouped.max() if c.reduce == "daily_max" else grouped.min()
    if c.reduce == "daily_drop":
        drop = daily.shift(day=1) - daily
        for k in range(2, c.consecutive_days + 1):
            drop = np.fmax(drop, daily.shift(day=k) - daily)
        return cmp(drop.sel(day=day), c.threshold)
    flags = cmp(daily, c.threshold)
    if c.consecutive_days > 1:
        n = c.consecutive_days
        ends = flags.astype(int).rolling(day=n, min_periods=n).sum() == n
        run = ends
        for k in range(1, n):
            run = run | ends.shift(day=-k, fill_value=False)
        flags = run
    holds = flags.sel(day=day)
    return holds & cmp(da, c.threshold) if c.at_step else holds


# ------------------------------------------------------------------------ cases
def hazard_inputs(table, ds) -> dict[str, list[str]]:
    """Variables each evaluated hazard reads (first present of each condition)."""
    out = {}
    for rules in table:
        names = []
        for rule in rules.levels:
            for c in rule.conditions:
                var = next((v for v in c.variables if v in ds.data_vars), None)
                if var and var not in names:
                    names.append(var)
        out[rules.hazard] = names
    return out


def read_levels(result):
    """Every level field of an :func:`evaluate` result (in-memory input: computed when first
    read, so a timing must read them)."""
    return [res.level for res in result if res.evaluated]


def reference_load(result) -> None:
    """What ``LevelResult.load()`` computed before issue 17: every condition's value and
    holds by the per-condition xarray path (:meth:`ConditionResult.reference`)."""
    import dask

    pairs = [c.reference() for res in result for cl in res.conditions.values() for c in cl
             if c.evaluated]  # fmt: skip
    dask.compute(*[a for pair in pairs for a in pair])


def case_engine_memory(n: int) -> dict:
    table = load_rule_table("national")
    ds = synthetic_forecast(n, n).compute()
    arrays = {v: ds[v].values for v in NATIONAL_INPUTS}
    rss_data = rss_gib()
    result = {"case": "engine-memory", "grid": f"72 x {n} x {n}", "threads": THREADS}
    fused.THREADS = THREADS
    # Levels: evaluate computes every level field (numpy input: eagerly, fused).
    result["floor"] = floor_numpy(list(arrays.values()), THREADS)
    result["engine"] = best(lambda: read_levels(evaluate(ds, table)))
    # The operational call, as assess makes it: levels and every condition's value and
    # holds, by the fused kernel (issue 17); beside it the per-condition xarray reference
    # that load() used before (same run, same floor).
    result["load"] = best(lambda: evaluate(ds, table).load(), max(1, REPEATS // 2))
    result["load_reference"] = best(lambda: reference_load(evaluate(ds, table)), 1)
    fused.THREADS = 1
    result["floor_1"] = floor_numpy(list(arrays.values()), 1)
    result["engine_1"] = best(lambda: read_levels(evaluate(ds, table)))
    levels = evaluate(ds, table)
    naive = naive_evaluate(ds, table)
    # Sanity: share of level values where the naive implementation agrees with the engine
    # (rolling sums accumulate float32 rounding differently: exact thresholds may differ).
    result["naive_agrees"] = {
        h: float((lev.values == levels[h].level.values).mean()) for h, lev in naive.items()
    }
    per = {}  # one thread for the engine and the floor, as the naive path runs
    inputs = hazard_inputs(table, ds)
    for res in levels:
        if not res.evaluated:
            continue
        h = res.hazard
        used = [arrays[v] for v in inputs[h] if v in arrays]
        per[h] = {
            "inputs": inputs[h],
            "floor": floor_numpy(used, 1),
            "engine": best(lambda h=h: read_levels(evaluate(ds, table, hazards=[h])), 3),
            "naive": best(lambda h=h: naive_evaluate(ds, table, hazards=[h]), 1),
        }
    result["per_hazard"] = per
    fused.THREADS = THREADS
    result["naive"] = sum(p["naive"] for p in per.values())
    result["rss_data_gib"] = rss_data
    result["rss_gib"] = rss_gib()
    return result


def case_engine_rss(n: int) -> dict:
    """Peak memory of the in-memory evaluation alone (input data counted separately)."""
    table = load_rule_table("national")
    ds = synthetic_forecast(n, n).compute()
    rss_data = rss_gib()
    fused.THREADS = THREADS
    read_levels(evaluate(ds, table))
    return {"case": "engine-rss", "grid": f"72 x {n} x {n}", "rss_data_gib": rss_data,
            "rss_gib": rss_gib()}  # fmt: skip


def case_naive_rss(n: int) -> dict:
    table = load_rule_table("national")
    ds = synthetic_forecast(n, n).compute()
    rss_data = rss_gib()
    naive_evaluate(ds, table)
    return {"case": "naive-rss", "grid": f"72 x {n} x {n}", "rss_data_gib": rss_data,
            "rss_gib": rss_gib()}  # fmt: skip


def case_engine_dask(n: int, members: int = 0, strip_rows: int = 0, strip_file: str = "") -> dict:
    """Lazy grid, space chunks x whole time, threaded scheduler with THREADS workers. The
    figure includes making the synthetic data chunk by chunk; ``gen`` is that alone."""
    dask.config.set(scheduler="threads", num_workers=THREADS)
    table = load_rule_table("national")
    chunks = (250, 250)
    ds = synthetic_forecast(n, n, members=members or None, chunks=chunks)
    result = {"case": "engine-dask", "grid": f"{members or 1} x 72 x {n} x {n}",
              "threads": THREADS, "chunks": f"{'1 x ' if members else ''}72 x {chunks[0]} x {chunks[1]}"}  # fmt: skip
    # The same reduction over the lazily made inputs: generation + one pass.
    lazy = [ds[v].data for v in NATIONAL_INPUTS]
    result["gen_floor"] = best(lambda: dask.compute(*[a.max(axis=0) for a in lazy]), 1)
    t0 = time.perf_counter()
    res = evaluate(ds, table)
    levels = [r.level for r in res if r.evaluated]
    outs = [lv.max("time") for lv in levels] + [lv.sum(dtype="int64") for lv in levels]
    strips = [lv.isel(lat=slice(0, strip_rows)) for lv in levels] if strip_rows else []
    computed = dask.compute(*outs, *strips)
    result["engine"] = time.perf_counter() - t0
    result["rss_gib"] = rss_gib()
    names = [r.hazard for r in res if r.evaluated]
    result["checksums"] = {
        h: int(c) for h, c in zip(names, computed[len(levels) : 2 * len(levels)], strict=True)
    }
    if strip_rows:
        np.savez(
            strip_file,
            **{
                h: np.asarray(s.values)
                for h, s in zip(names, computed[2 * len(levels) :], strict=True)
            },
        )
    # Numpy floor on materialised inputs, one variable at a time (after the RSS reading).
    gen, floor = 0.0, 0.0
    for v in NATIONAL_INPUTS:
        t0 = time.perf_counter()
        x = ds[v].values
        gen += time.perf_counter() - t0
        floor += floor_numpy([x.reshape(-1, *x.shape[-2:]) if members else x], THREADS)
        del x
    result["gen"] = gen
    result["floor"] = floor
    return result


def case_strip(n: int, rows: int, strip_file: str) -> dict:
    table = load_rule_table("national")
    ds = synthetic_forecast(n, n).isel(lat=slice(0, rows)).compute()
    fused.THREADS = THREADS
    res = evaluate(ds, table)
    saved = np.load(strip_file)
    same = {
        r.hazard: bool(np.array_equal(r.level.values, saved[r.hazard])) for r in res if r.evaluated
    }
    return {"case": "strip", "grid": f"72 x {rows} x {n}", "identical": same}


def case_aggregate(n: int, units: int) -> dict:
    from cityops.geo.masks import sparse_overlap_weights
    from cityops.geo.risk import town_hazards

    table = load_rule_table("national")
    ds = synthetic_forecast(n, n).compute()
    fused.THREADS = THREADS
    levels = evaluate(ds, table)
    del ds
    lat, lon = levels["rainstorm"].level["lat"].values, levels["rainstorm"].level["lon"].values
    t0 = time.perf_counter()
    juris = synthetic_jurisdiction(units, lat, lon)
    t1 = time.perf_counter()
    weights = sparse_overlap_weights(juris, lat, lon)
    weights.cell_km2()
    t2 = time.perf_counter()
    rss_before = rss_gib()
    frame = town_hazards(levels, juris, weights=weights)  # warm (lazy condition values)
    agg = best(lambda: town_hazards(levels, juris, weights=weights), 3)
    return {
        "case": "aggregate", "grid": f"72 x {n} x {n}", "units": units, "rows": len(frame),
        "polygons": t1 - t0, "weights": t2 - t1, "aggregate": agg, "nnz": int(weights.matrix.nnz),
        "rss_before_gib": rss_before, "rss_gib": rss_gib(),
        "levels_reached": int((frame["level"] > 0).sum()),
    }  # fmt: skip


def case_weights(n: int, units: int) -> dict:
    from exactextract import exact_extract
    from exactextract.raster import NumPyRasterSource

    from cityops.geo import masks

    lat = np.round(39.0 + 0.01 * np.arange(n), 6)
    lon = np.round(109.0 + 0.01 * np.arange(n), 6)
    juris = synthetic_jurisdiction(units, lat, lon)
    edges_lat, edges_lon = masks.cell_edges(lat), masks.cell_edges(lon)

    def floor():
        raster = NumPyRasterSource(
            np.zeros((n, n)), edges_lon[0], edges_lat[0], edges_lon[-1], edges_lat[-1]
        )
        features = [
            {"type": "Feature", "properties": {}, "geometry": u.geometry.__geo_interface__}
            for u in juris.units
        ]
        exact_extract(raster, features, ["cell_id", "coverage"])

    def after():
        return masks.sparse_overlap_weights(juris, lat, lon, cache=False)

    def before():
        return masks.sparse_overlap_weights(juris, lat, lon, method="shapely", cache=False)

    new, old = after(), before()  # warm (imports, projection set-up) and compare
    repeats = min(REPEATS, 3)
    t_floor = best(floor, repeats)
    t_after = best(after, repeats)
    t_before = best(before, 1 if units > 100 else 2)
    masks.sparse_overlap_weights.cache_clear()
    first = masks.sparse_overlap_weights(juris, lat, lon)
    t0 = time.perf_counter()
    second = masks.sparse_overlap_weights(juris, lat, lon)
    t_cached = time.perf_counter() - t0
    t0 = time.perf_counter()
    first.cell_km2()
    t_cell_km2 = time.perf_counter() - t0
    diff = abs(new.matrix - old.matrix)
    return {
        "case": "weights", "grid": f"{n} x {n}", "units": units, "floor": t_floor,
        "before": t_before, "after": t_after, "cached": t_cached, "same_object": second is first,
        "cell_km2": t_cell_km2, "max_abs_diff": float(diff.max()) if diff.nnz else 0.0,
        "nnz_before": int(old.matrix.nnz), "nnz_after": int(new.matrix.nnz),
    }  # fmt: skip


CASES = {
    "engine-memory": lambda a: case_engine_memory(int(a[0])),
    "engine-rss": lambda a: case_engine_rss(int(a[0])),
    "naive-rss": lambda a: case_naive_rss(int(a[0])),
    "engine-dask": lambda a: case_engine_dask(
        int(a[0]),
        int(a[1]) if len(a) > 1 else 0,
        int(a[2]) if len(a) > 2 else 0,
        a[3] if len(a) > 3 else "",
    ),
    "strip": lambda a: case_strip(int(a[0]), int(a[1]), a[2]),
    "aggregate": lambda a: case_aggregate(int(a[0]), int(a[1])),
    "weights": lambda a: case_weights(int(a[0]), int(a[1])),
}

if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore")
    print(json.dumps(CASES[sys.argv[1]](sys.argv[2:])))
