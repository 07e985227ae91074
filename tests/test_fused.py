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
from hypothesis import given, settings
from hypothesis import strategies as st

from cityops.geo.jurisdiction import load_jurisdiction
from cityops.resources import canonical_variables
from cityops.rules import evaluate, fused, load_rule_table, window_reduce
from cityops.rules.windows import step_starts, window_reduce_many
from tests.conftest import SAMPLES

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


# --------------------------------------------------------------------------------------------
# The operational call (``evaluate(...).load()``, as ``assess`` makes it): every condition's
# value and holds by the fused kernel, identical to the per-condition xarray reference
# --------------------------------------------------------------------------------------------


def assert_conditions_equal_reference(result, where=""):
    """Every evaluated condition's ``value`` and ``holds`` equal the xarray reference path's
    (data, dims, coordinates, name, attributes); returns how many were compared."""
    compared = 0
    for res in result:
        for level, conds in res.conditions.items():
            for crs in conds:
                if not crs.evaluated:
                    assert crs.value is None and crs.holds is None and crs.note
                    continue
                value, holds = crs.reference()
                what = f"{where} {res.hazard} level {level} {crs.condition.describe()}"
                try:
                    xr.testing.assert_identical(crs.value, value.compute())
                    xr.testing.assert_identical(crs.holds, holds.compute())
                except AssertionError as err:
                    raise AssertionError(what) from err
                assert crs.holds.dtype == bool and crs.value.sizes == crs.holds.sizes, what
                compared += 1
    return compared


def test_operational_load_equals_the_reference_on_every_table_with_nan_and_members():
    for members in (None, 3):
        ds = forecast(members=members, seed=3)  # 2 % NaN in every variable, April: frost
        for table in TABLES:
            result = evaluate(ds, load_rule_table(table)).load()
            assert assert_conditions_equal_reference(result, table) > 10


def test_not_evaluated_conditions_stay_not_evaluated_when_a_variable_is_missing():
    ds = forecast().drop_vars(["gust", "vis"])
    result = evaluate(ds, load_rule_table("national")).load()
    assert assert_conditions_equal_reference(result, "missing gust, vis")
    notes = [c.note for res in result for cl in res.conditions.values() for c in cl]
    assert any("missing variable" in n and "vis" in n for n in notes)


def test_conditions_are_lazy_on_dask_until_load_and_run_blockwise():
    import dask

    ds = forecast(ny=8, nx=10, seed=4)
    chunked = ds.chunk({"lat": 4, "lon": 5})  # space chunks only: windows run along time
    result = evaluate(chunked, load_rule_table("national"))

    def forbidden(*args, **kwargs):
        raise AssertionError("computed before load()")

    with dask.config.set(scheduler=forbidden):
        crs = next(c for res in result for cl in res.conditions.values() for c in cl
                   if c.evaluated)  # fmt: skip
        assert crs.value.chunks is not None and crs.holds.chunks is not None
        # blockwise: one task per space chunk of the forecast (2 x 2), never the whole grid
        level = next(res.level for res in result if crs in res.conditions.get(1, []))
        assert crs.value.chunks == crs.holds.chunks == level.chunks == chunked["precip"].chunks
    result.load()
    memory = evaluate(ds, load_rule_table("national")).load()
    for res in memory:
        other = result[res.hazard]
        for level, conds in res.conditions.items():
            for a, b in zip(conds, other.conditions[level], strict=True):
                if a.evaluated:
                    assert b.value.chunks is None  # loaded
                    xr.testing.assert_identical(a.value, b.value)
                    xr.testing.assert_identical(a.holds, b.holds)


SAMPLE_FILES = sorted(
    p for p in SAMPLES.glob("*.nc") if not p.name.endswith((".observed.nc", ".history.nc"))
)


@pytest.mark.skipif(not SAMPLE_FILES, reason="run `make samples` first")
@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.stem)
def test_operational_load_equals_the_reference_on_every_sample(path):
    # As assess evaluates: history (drought index, cold-wave prior) and observations joined.
    from cityops.ingest import open_forecast
    from cityops.rules.drought_input import add_drought_index
    from cityops.rules.observed import history_daily_min, join_observed, open_observed
    from cityops.rules.seasons import bind_seasons
    from cityops.timeutil import parse_utc

    juris = load_jurisdiction("ejin-horo")
    ds = open_forecast(path, bounds=juris.bounds).load()
    history, observed = path.with_suffix(".history.nc"), path.with_suffix(".observed.nc")
    prior = None
    if history.exists():
        ds = add_drought_index(ds, history, lat=float(ds["lat"].mean()), timezone=juris.timezone)
        prior = history_daily_min(history, juris.timezone)
    series = [ds]
    if observed.exists():
        obs = open_observed(observed, bounds=juris.bounds)
        joined = join_observed(ds, obs, now=parse_utc(ds.attrs["issued"]), source=observed.name)
        series.append(joined.dataset)
    for data in series:
        for name in TABLES:
            table = bind_seasons(load_rule_table(name), juris.path)
            result = evaluate(data, table, timezone=juris.timezone, prior_daily_min=prior).load()
            assert assert_conditions_equal_reference(result, f"{path.stem} {name}")


#: Recorded amounts (tenths), as observers and models write them, beside exact thresholds.
DECIMALS = st.integers(min_value=0, max_value=600).map(lambda k: k / 10)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    nan_share=st.sampled_from([0.0, 0.05, 0.5]),
    hours=st.sampled_from([1, 3]),
    month=st.sampled_from([1, 4, 7, 10]),
    exact=st.lists(DECIMALS, min_size=1, max_size=6),
    members=st.sampled_from([None, 2]),
)
def test_fused_conditions_equal_the_reference_on_generated_inputs(
    seed, nan_share, hours, month, exact, members
):
    rng = np.random.default_rng(seed)
    ds = forecast(ny=3, nx=2, nt=48 // hours, members=members, seed=seed,
                  issued=f"2026-{month:02d}-10T00:00")  # fmt: skip
    if hours > 1:
        ds = ds.assign_coords(time=ds["time"].values[0] + np.arange(ds.sizes["time"])
                              * np.timedelta64(hours, "h"))  # fmt: skip
    for name in ds.data_vars:
        x = ds[name].values
        x = np.round(x, 1).astype("float32")  # recorded to 0.1
        hit = rng.random(x.shape) < 0.2  # exact decimals, so sums land on thresholds
        x[hit] = rng.choice(np.asarray(exact, dtype="float32"), size=int(hit.sum()))
        x[rng.random(x.shape) < nan_share] = np.nan
        ds[name].values = x
    for table in TABLES:
        result = evaluate(ds, load_rule_table(table)).load()
        assert_conditions_equal_reference(result, table)


def test_a_loaded_result_pickles_without_its_plan():
    # A worker's result travels back pickled: computed fields, no closures over the plan.
    import pickle

    ds = forecast(seed=5)
    result = evaluate(ds, load_rule_table("national")).load()
    back = pickle.loads(pickle.dumps(result))
    for res in result:
        other = back[res.hazard]
        assert other.evaluated == res.evaluated and other.notes == res.notes
        if res.evaluated:
            xr.testing.assert_identical(other.level, res.level)
        for level, conds in res.conditions.items():
            for a, b in zip(conds, other.conditions[level], strict=True):
                if a.evaluated:
                    xr.testing.assert_identical(a.value, b.value)
                    xr.testing.assert_identical(a.holds, b.holds)
