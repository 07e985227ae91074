"""The fused level kernel and the window kernels: same results whatever the path.

- dask (space chunks) gives exactly the levels and values of the in-memory evaluation;
- the fused levels equal the levels combined from each condition's own ``holds``;
- tiles of any size give the same levels;
- window sums/extremes equal the original shifted-copy definition (irregular steps, NaN).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from cityops.resources import canonical_variables
from cityops.rules import evaluate, fused, load_rule_table, window_reduce
from cityops.rules.windows import step_starts, window_reduce_many

TABLES = ("national", "ejin-horo-annex3", "haze-2013")

#: name: (offset, scale, power): offset + scale * u**power, u uniform; every rule fires.
SHAPES = {
    "precip": (0, 60, 8), "snowfall": (0, 8, 8), "t2m": (-5, 40, 1), "t2m_max": (-2, 44, 1),
    "t2m_min": (-12, 30, 1), "tsurf": (-8, 40, 1), "wind": (0, 36, 2), "gust": (0, 46, 2),
    "vis": (10, 20000, 2), "rh": (5, 95, 1), "pm25": (0, 600, 4), "dust": (0, 1500, 4),
    "cape": (0, 3000, 2), "p_lightning": (0, 1, 1), "p_hail": (0, 1, 2),
}  # fmt: skip


def forecast(ny=9, nx=11, nt=60, *, members=None, seed=0, issued="2026-04-10T00:00"):
    """Random float32 canonical forecast with some NaN (April: frost in season)."""
    rng = np.random.default_rng(seed)
    issued = pd.Timestamp(issued)
    shape = (nt, ny, nx) if members is None else (members, nt, ny, nx)
    dims = ("time", "lat", "lon") if members is None else ("member", "time", "lat", "lon")
    units = canonical_variables()
    data = {}
    for name, (offset, scale, power) in SHAPES.items():
        values = (offset + scale * rng.random(shape) ** power).astype("float32")
        values[rng.random(shape) < 0.02] = np.nan
        data[name] = (dims, values, {"units": units[name]["units"]})
    coords = {
        "time": pd.date_range(issued + pd.Timedelta("1h"), periods=nt, freq="h"),
        "lat": 39.0 + 0.03 * np.arange(ny),
        "lon": 109.0 + 0.03 * np.arange(nx),
    }
    if members is not None:
        coords["member"] = np.arange(members)
    return xr.Dataset(data, coords=coords, attrs={"issued": f"{issued:%Y-%m-%dT%H:%M:%SZ}"})


@pytest.mark.parametrize("table", TABLES)
def test_dask_space_chunks_give_the_in_memory_results(table):
    ds = forecast()
    rules = load_rule_table(table)
    memory = evaluate(ds, rules)
    lazy = evaluate(ds.chunk({"lat": 4, "lon": 5}), rules)
    assert all(res.level.chunks is not None for res in lazy if res.evaluated)
    lazy.load()
    for res in memory:
        other = lazy[res.hazard]
        assert res.evaluated == other.evaluated and res.notes == other.notes
        if not res.evaluated:
            continue
        assert res.level.dims == other.level.dims
        np.testing.assert_array_equal(res.level.values, other.level.values)
        for level, conds in res.conditions.items():
            for a, b in zip(conds, other.conditions[level], strict=True):
                if a.evaluated:
                    np.testing.assert_array_equal(a.value.values, b.value.values)
                    np.testing.assert_array_equal(a.holds.values, b.holds.values)


def test_dask_time_chunks_are_joined():
    ds = forecast().chunk({"time": 20, "lat": 5})
    memory = evaluate(ds.compute(), load_rule_table("national"))
    lazy = evaluate(ds, load_rule_table("national"))
    for res in memory:
        if res.evaluated:
            np.testing.assert_array_equal(res.level.values, lazy[res.hazard].level.values)


@pytest.mark.parametrize(("table", "members"), [(t, None) for t in TABLES] + [("national", 3)])
def test_fused_levels_equal_the_conditions_combined(table, members):
    ds = forecast(members=members, seed=1)
    result = evaluate(ds, load_rule_table(table))
    for res in result:
        if not res.evaluated:
            continue
        expected = xr.zeros_like(res.level)
        for rule in res.rules.levels:
            holds = res.holds(rule.level)
            if holds is not None:
                expected = np.maximum(expected, xr.where(holds, rule.level, 0))
        if res.rules.season is not None:
            in_season = res.rules.season.mask(pd.DatetimeIndex(ds["time"].values), "Asia/Shanghai")
            expected = expected.where(xr.DataArray(in_season, dims="time"), 0)
        np.testing.assert_array_equal(
            res.level.values, expected.transpose(*res.level.dims).values, err_msg=res.hazard
        )


def test_any_tile_size_gives_the_same_levels(monkeypatch):
    ds = forecast(ny=13, nx=17, seed=2)
    reference = evaluate(ds, load_rule_table("national"))
    for values, threads in ((60 * 5, 1), (60 * 40, 2), (30, 1)):  # 30: tiles within a row
        monkeypatch.setattr(fused, "TILE_VALUES", values)
        monkeypatch.setattr(fused, "THREADS", threads)
        tiled = evaluate(ds, load_rule_table("national"))
        for res in reference:
            if res.evaluated:
                np.testing.assert_array_equal(res.level.values, tiled[res.hazard].level.values)


def shifted_copies(da: xr.DataArray, window: pd.Timedelta, how: str, first_step=None):
    """The original definition: one shifted copy per step the window can hold."""
    times = pd.DatetimeIndex(da["time"].values)
    starts = step_starts(times, first_step)
    n = len(times)
    out = da
    for k in range(1, n):
        back_start = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
        back_start[k:] = starts.values[:-k]
        inside = xr.DataArray(back_start >= (times - window).values, dims="time")
        shifted = da.shift(time=k).where(inside)
        if how == "sum":
            out = out + shifted.fillna(0)
        else:
            out = (np.fmax if how == "max" else np.fmin)(out, shifted)
    return out.astype(da.dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("seed", range(2))
def test_window_kernels_equal_the_shifted_copy_definition(dtype, seed):
    rng = np.random.default_rng(seed)
    steps = rng.choice([10, 60, 60, 60, 180], size=30)  # minutes: irregular
    times = pd.Timestamp("2026-07-10") + pd.to_timedelta(np.cumsum(steps), "min")
    x = rng.gamma(0.5, 10, size=(30, 4, 3)).astype(dtype)
    x[rng.random(x.shape) < 0.15] = np.nan
    da = xr.DataArray(x, dims=("time", "lat", "lon"), coords={"time": times})
    for hours in (1, 3, 6, 12, 24):
        window = pd.Timedelta(hours=hours)
        for how in ("sum", "max", "min"):
            got = window_reduce(da, window, how, first_step=pd.Timedelta("1h"))
            want = shifted_copies(da, window, how, first_step=pd.Timedelta("1h"))
            if how == "sum" and dtype == "float32" and hours == 24:
                # long windows of float32: exact float64 prefix sums, rounded once
                np.testing.assert_allclose(got.values, want.values, rtol=1e-6)
            else:
                np.testing.assert_array_equal(got.values, want.values)
            lazy = window_reduce(da.chunk({"lat": 1}), window, how, first_step=pd.Timedelta("1h"))
            np.testing.assert_array_equal(lazy.values, got.values)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_regular_window_sums_whatever_else_is_computed(dtype):
    # Hourly steps: float32 sums by doubling (last-bit rounding may differ from step by step),
    # float64 step by step as before; a window's value never depends on the other windows.
    rng = np.random.default_rng(7)
    times = pd.date_range("2026-07-10T01:00", periods=40, freq="h")
    x = rng.gamma(0.4, 12, size=(40, 5, 4)).astype(dtype)
    x[rng.random(x.shape) < 0.1] = np.nan
    da = xr.DataArray(x, dims=("time", "lat", "lon"), coords={"time": times})
    windows = [pd.Timedelta(hours=h) for h in (1, 3, 5, 6, 12, 24)]
    together = window_reduce_many(da, windows, "sum", first_step=pd.Timedelta("1h"))
    for window, many in zip(windows, together, strict=True):
        alone = window_reduce(da, window, "sum", first_step=pd.Timedelta("1h"))
        np.testing.assert_array_equal(many.values, alone.values)
        want = shifted_copies(da, window, "sum", first_step=pd.Timedelta("1h"))
        if dtype == "float32":
            np.testing.assert_allclose(alone.values, want.values, rtol=1e-6)
        else:
            np.testing.assert_array_equal(alone.values, want.values)
        assert np.array_equal(np.isnan(alone.values), np.isnan(x))
