"""Time windows on irregular steps: sums and extremes over (t - window, t].

The value at valid time ``t`` stands for the step ending at ``t`` (interfaces.md §1). A window
of length N at ``t`` covers (t - N, t]. It is

- ``full`` when t - N is a step boundary at or after the start of the first step;
- ``partial`` when t - N lies before the first step's start (the forecast starts mid-window:
  the partial amount counts only if it already meets the threshold);
- ``unaligned`` when t - N falls inside a step (the data are too coarse for this window).

Windows are evaluated on time, not on counts of steps, so hourly-then-3-hourly runs work.

How (chosen by measurement, ``benchmarks/RESULTS.md``): a window ending at step ``t`` holds
the steps ``lo[t] .. t`` (:func:`window_index`, from the step starts), so

- a **sum** of float64 data is summed step by step, ``x[t] + x[t-1] + ...``, in the order of
  the original implementation (bit-identical), all windows of a variable in one accumulation
  (the 6 h sum goes on from the 3 h one);
- a **sum** of float32 data over *regular* windows (a fixed number of steps; partial at the
  start) is built by doubling, ``S(2m) = S(m) + S(m)`` shifted by ``m``: 3, 6 and 12 h in four
  slab additions instead of eleven. Its float32 rounding may differ from a step-by-step sum in
  the last bit (each window's decomposition is fixed, so the value never depends on which
  other windows are computed with it). Irregular windows up to :data:`DIRECT_STEPS` steps are
  summed step by step; longer irregular ones are differences of float64 prefix sums,
  ``C[t + 1] - C[lo[t]]``, exact for realistic amounts (24-bit mantissas well inside 53 bits),
  so the window sum is the correctly rounded float32 of the exact sum (cells whose series
  holds ±inf are summed step by step);
- a **maximum/minimum** comes from a sparse table of power-of-two windows (``fmax``/``fmin``,
  so NaN is skipped): ``log2(window steps)`` passes whatever the window.

NaN: a step whose own value is NaN gives NaN; earlier NaN steps count as nothing (sum) or are
skipped (max/min, NaN only when the whole window is NaN).

The numpy kernels work along axis 0 of ``(time, ...)`` arrays and cell by cell, so a space
chunk of a dask array gives the same values as the whole grid in memory;
:func:`window_reduce` applies them with :func:`xarray.apply_ufunc` (dask stays lazy, time must
be one chunk: it is rechunked to one if not).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

__all__ = [
    "FULL",
    "PARTIAL",
    "UNALIGNED",
    "reduce_windows",
    "step_starts",
    "window_index",
    "window_reduce",
    "window_reduce_many",
    "window_status",
]

FULL, PARTIAL, UNALIGNED = "full", "partial", "unaligned"


def step_starts(time: xr.DataArray | pd.DatetimeIndex, first_step: pd.Timedelta | None = None):
    """Start of each step, given the valid (end) times.

    Parameters
    ----------
    time : DatetimeIndex or DataArray
        Valid times, strictly increasing.
    first_step : Timedelta, optional
        Length of the first step. Default: the length of the second step, or 1 h for a
        single-time file (documented assumption, logged by ingest).

    Returns
    -------
    pandas.DatetimeIndex
    """
    times = pd.DatetimeIndex(np.asarray(time))
    if first_step is None:
        first_step = times[1] - times[0] if len(times) > 1 else pd.Timedelta("1h")
    starts = times[:-1].insert(0, times[0] - first_step)
    return pd.DatetimeIndex(starts)


def window_status(
    time: xr.DataArray | pd.DatetimeIndex,
    window: pd.Timedelta,
    *,
    first_step: pd.Timedelta | None = None,
) -> np.ndarray:
    """Status (``full``, ``partial``, ``unaligned``) of the window ending at each time."""
    times = pd.DatetimeIndex(np.asarray(time))
    starts = step_starts(times, first_step)
    begin = (times - window).values
    boundaries = np.union1d(starts.values[:1], times.values)
    pos = np.clip(np.searchsorted(boundaries, begin), 0, len(boundaries) - 1)
    status = np.full(len(times), UNALIGNED, dtype=object)
    status[boundaries[pos] == begin] = FULL
    status[begin < starts.values[0]] = PARTIAL
    return status


def window_index(
    time: xr.DataArray | pd.DatetimeIndex,
    window: pd.Timedelta,
    *,
    first_step: pd.Timedelta | None = None,
) -> np.ndarray:
    """First step of the window ending at each time: the window at step ``t`` holds the steps
    ``lo[t] .. t`` (those starting at or after ``t - window``; step ``t`` itself always).

    Returns
    -------
    numpy.ndarray of int64, non-decreasing, ``lo[t] <= t``.
    """
    times = pd.DatetimeIndex(np.asarray(time))
    starts = step_starts(times, first_step)
    begin = (times - window).values
    lo = np.searchsorted(starts.values, begin, side="left")
    return np.minimum(lo, np.arange(len(times))).astype(np.int64)


def _runs(values: np.ndarray) -> list[tuple[int, int, int]]:
    """Runs ``(a, b, v)`` of equal ``values[a:b] == v``."""
    if values.size == 0:
        return []
    cut = np.flatnonzero(np.diff(values)) + 1
    starts = np.r_[0, cut]
    ends = np.r_[cut, values.size]
    return [(int(a), int(b), int(values[a])) for a, b in zip(starts, ends, strict=True)]


def _sum_direct(x: np.ndarray, lo: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out[t] = x[t] + x[t-1] + ... + x[lo[t]]`` in ``out``'s dtype, step by step (NaN of
    earlier steps as 0): the order of the original shifted-copy implementation."""
    return _sums_nested(x, [lo], out.dtype, outs=[out])[0]


@functools.lru_cache(maxsize=64)
def _nested_plan(lows_key: tuple[bytes, ...]) -> tuple[tuple[int, ...], tuple[tuple, ...]]:
    """Order of the windows (shortest first) and, per window, the slab additions
    ``(k, a, b)``: ``acc[a:b] += x[a-k:b-k]`` that take the shorter sum to this one."""
    lows = [np.frombuffer(k, dtype=np.int64) for k in lows_key]
    n = lows[0].size if lows else 0
    backs = [np.arange(n) - lo for lo in lows]
    order = tuple(sorted(range(len(lows)), key=lambda i: int(backs[i].sum())))
    done = np.zeros(n, dtype=np.int64)
    steps = []
    for i in order:
        back = backs[i]
        adds = []
        for k in range(1, int(back.max(initial=0)) + 1):
            for a, b, add in _runs(((done < k) & (back >= k)).astype(np.int8)):
                if add:
                    adds.append((k, a, b))
        done = np.maximum(done, back)
        steps.append(tuple(adds))
    return order, tuple(steps)


def _sums_nested(
    x: np.ndarray, lows: Sequence[np.ndarray], acc_dtype, *, outs=None
) -> list[np.ndarray]:
    """Window sums for several ``lo`` by one accumulation ``x[t] + x[t-1] + ...`` in
    ``acc_dtype``, longest window last (windows of one series are nested: each sum goes on
    from the shorter one's). NaN of earlier steps count as 0."""
    order, steps = _nested_plan(tuple(np.ascontiguousarray(lo, np.int64).tobytes() for lo in lows))
    if outs is not None and np.dtype(acc_dtype) == x.dtype:
        acc = outs[order[-1]]  # the longest window's sum is the accumulator
        np.copyto(acc, x)
    else:
        acc = x.astype(acc_dtype, copy=True)
    zero = np.where(np.isnan(x), 0, x) if np.isnan(x.max(initial=0)) else x
    if zero.dtype != acc.dtype:
        zero = zero.astype(acc_dtype)
    results: list[np.ndarray | None] = [None] * len(lows)
    for pos, i in enumerate(order):
        for k, a, b in steps[pos]:
            acc[a:b] += zero[a - k : b - k]
        if outs is not None:
            if outs[i] is not acc:
                np.copyto(outs[i], acc, casting="unsafe")
            results[i] = outs[i]
        elif pos == len(order) - 1 and acc.dtype == x.dtype:
            results[i] = acc
        else:
            results[i] = acc.astype(x.dtype)
    return results  # type: ignore[return-value]


#: Longest window (in steps) summed step by step rather than by prefix sums: below it the
#: few slab additions beat a running sum along time (benchmarks/RESULTS.md).
DIRECT_STEPS = 16


class _Prefix:
    """Running sums of one ``(time, ...)`` float32 array in float64, shared by windows."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x
        n = x.shape[0]
        c = np.empty((n + 1, *x.shape[1:]), dtype=np.float64)
        c[0] = 0.0
        nan = np.isnan(x)
        self.has_nan = bool(nan.any())
        for t in range(n):  # slices, so a series (1-D) works too
            step = x[t : t + 1]
            if self.has_nan:
                step = np.where(nan[t : t + 1], np.float32(0), step)
            np.add(c[t : t + 1], step, out=c[t + 1 : t + 2])
        self.nan = nan if self.has_nan else None
        # ±inf anywhere in a cell's series spoils its later differences: those cells are
        # summed step by step.
        self.bad = ~np.isfinite(c[n])
        self.c = c

    def window(self, lo: np.ndarray) -> np.ndarray:
        x, c = self.x, self.c
        out = np.empty(x.shape, dtype=x.dtype)
        back = np.arange(lo.size) - lo
        with np.errstate(invalid="ignore"):  # inf - inf in cells redone below
            for a, b, d in _runs(back):
                np.subtract(c[a + 1 : b + 1], c[a - d : b - d], out=out[a:b], casting="same_kind")
        if self.has_nan:
            np.copyto(out, x, where=self.nan)
        if self.bad.any():
            idx = np.nonzero(self.bad)
            sub = x[(slice(None), *idx)]
            out[(slice(None), *idx)] = _sum_direct(sub, lo, np.empty_like(sub))
        return out


def _extreme(x: np.ndarray, lows: Sequence[np.ndarray], how: str) -> list[np.ndarray]:
    """Window max/min for each ``lo`` from one sparse table of power-of-two windows."""
    f = np.fmax if how == "max" else np.fmin
    n = x.shape[0]
    outs, plans = [], []
    for lo in lows:
        length = np.arange(n) - lo + 1
        plans.append(np.floor(np.log2(length)).astype(np.int64))
        outs.append(np.empty_like(x))
    top = max((int(p.max()) for p in plans if p.size), default=0)
    table = x  # table[j] = extreme over the 2**p steps ending at j (j >= 2**p - 1)
    for p in range(top + 1):
        width = 1 << p
        for lo, plan, out in zip(lows, plans, outs, strict=True):
            for a, b, sel in _runs((plan == p).astype(np.int8)):
                if not sel:
                    continue
                # The two (overlapping) power-of-two windows ending at t and at lo + 2**p - 1.
                other = lo[a:b] + width - 1
                for c0, c1, d in _runs(np.arange(a, b) - other):
                    f(
                        table[a + c0 : a + c1],
                        table[a + c0 - d : a + c1 - d],
                        out=out[a + c0 : a + c1],
                    )
        if p < top:
            nxt = table.copy()
            f(table[width:], table[:-width], out=nxt[width:])
            table = nxt
    return outs


def reduce_windows(
    x: np.ndarray, lows: Sequence[np.ndarray], how: str = "sum", *, outs=None
) -> list[np.ndarray]:
    """Window sums, maxima or minima of a ``(time, ...)`` numpy array, one per ``lo`` of
    :func:`window_index`, in one pass over the data (the numpy kernel of
    :func:`window_reduce`). ``outs``: arrays like ``x`` to write short-window sums into
    (the fused kernel's reused buffers); other results are new arrays."""
    if how not in ("sum", "max", "min"):
        raise ValueError(f"how must be sum, max or min, not {how!r}")
    if not np.issubdtype(x.dtype, np.floating):
        # Integers: computed in float64 and cast back, as before (NaN never occurs).
        res = reduce_windows(x.astype(np.float64), lows, how)
        return [r.astype(x.dtype) for r in res]
    if how != "sum":
        return _extreme(x, lows, how)
    if x.dtype.itemsize > 4:
        # float64: step by step, the order of the original implementation
        return _sums_nested(x, lows, x.dtype, outs=outs)
    # float32: each window by the way its own steps allow (never by what else is asked,
    # so a window's sum is the same whichever windows are computed with it)
    results: list[np.ndarray | None] = [None] * len(lows)
    kinds: dict[str, list[int]] = {"regular": [], "nested": [], "prefix": []}
    for i, lo in enumerate(lows):
        back = np.arange(lo.size) - lo
        k = int(back.max(initial=0)) + 1
        if np.array_equal(back, np.minimum(np.arange(lo.size), k - 1)):
            kinds["regular"].append(i)
        elif k - 1 <= DIRECT_STEPS:
            kinds["nested"].append(i)
        else:
            kinds["prefix"].append(i)
    pick = (lambda idx: [outs[i] for i in idx]) if outs is not None else (lambda idx: None)
    if kinds["regular"]:
        ks = [int((np.arange(lows[i].size) - lows[i]).max(initial=0)) + 1 for i in kinds["regular"]]
        for i, r in zip(
            kinds["regular"], _sums_doubling(x, ks, outs=pick(kinds["regular"])), strict=True
        ):
            results[i] = r
    if kinds["nested"]:
        sub = [lows[i] for i in kinds["nested"]]
        for i, r in zip(
            kinds["nested"], _sums_nested(x, sub, x.dtype, outs=pick(kinds["nested"])), strict=True
        ):
            results[i] = r
    if kinds["prefix"]:
        # long irregular windows: float64 prefix sums, exact for realistic amounts
        prefix = _Prefix(x)
        for i in kinds["prefix"]:
            results[i] = prefix.window(lows[i])
    return results  # type: ignore[return-value]


_SCRATCH = threading.local()


def _scratch(like: np.ndarray, n: int) -> list[np.ndarray]:
    """``n`` reusable arrays shaped like ``like`` (per thread: no allocation per tile)."""
    pool = getattr(_SCRATCH, "pool", None)
    if pool is None:
        pool = _SCRATCH.pool = {}
    key = (like.shape, like.dtype.str)
    bufs = pool.setdefault(key, [])
    while len(bufs) < n:
        bufs.append(np.empty_like(like))
    if len(pool) > 8:  # tile shapes come and go: keep the latest few
        for k in list(pool)[:-8]:
            del pool[k]
    return bufs[:n]


def _sums_doubling(x: np.ndarray, ks: Sequence[int], *, outs=None) -> list[np.ndarray]:
    """Sums over the last ``k`` steps (fewer at the start: partial windows) of regular
    windows, by doubling: ``S(2m) = S(m) + S(m) shifted by m``, ``S(m+1) = S(m) + x shifted
    by m``; 3, 6 and 12 h take four slab additions instead of eleven. The decomposition of
    each ``k`` is fixed, so its rounding does not depend on the other windows asked for.
    NaN of earlier steps count as 0; a NaN step gives NaN."""
    nan = np.isnan(x.max(initial=0))
    z = np.where(np.isnan(x), 0, x) if nan else x
    plan: list[int] = []

    def need(k: int) -> None:
        if k == 1 or k in plan:
            return
        need(k // 2 if k % 2 == 0 else k - 1)
        plan.append(k)

    for k in ks:
        need(k)
    wanted = {k: i for i, k in enumerate(ks)}
    n_temps = sum(1 for k in plan if k not in wanted or outs is None)
    # reused scratch only for the fused kernel's tiles; whole arrays get temporaries
    temps = iter(
        _scratch(x, n_temps) if outs is not None else [np.empty_like(x) for _ in range(n_temps)]
    )
    sums: dict[int, np.ndarray] = {1: z}
    for k in plan:
        out = outs[wanted[k]] if (outs is not None and k in wanted) else next(temps)
        half = k // 2 if k % 2 == 0 else k - 1
        a, b = sums[half], sums[k - half]
        out[:half] = a[:half]
        np.add(a[half:], b[:-half], out=out[half:])
        sums[k] = out
    res: list[np.ndarray] = []
    for i, k in enumerate(ks):
        src = sums[k] if k > 1 else x
        if outs is not None:
            target = outs[i]
            if target is not src:
                np.copyto(target, src)
        else:
            target = src.copy()  # temporaries and x itself are not handed out
        res.append(target)
    if nan:
        for k, target in zip(ks, res, strict=True):
            if k > 1:
                np.copyto(target, x, where=np.isnan(x))
    return res


def window_reduce_many(
    da: xr.DataArray,
    windows: Sequence[pd.Timedelta],
    how: str = "sum",
    *,
    first_step: pd.Timedelta | None = None,
) -> list[xr.DataArray]:
    """:func:`window_reduce` for several window lengths of the same data in one pass (one
    accumulation, doubling chain or sparse table serves them all); each result equals
    :func:`window_reduce` of that window alone."""
    if how not in ("sum", "max", "min"):
        raise ValueError(f"how must be sum, max or min, not {how!r}")
    windows = list(windows)
    lows = [window_index(da["time"], w, first_step=first_step) for w in windows]
    if da.chunks is not None and len(da.chunksizes.get("time", ())) > 1:
        da = da.chunk({"time": -1})

    def kernel(values: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
        x = np.moveaxis(values, -1, 0)
        res = tuple(np.moveaxis(r, 0, -1) for r in reduce_windows(x, lows, how))
        return res if len(res) > 1 else res[0]

    results = xr.apply_ufunc(
        kernel,
        da,
        input_core_dims=[["time"]],
        output_core_dims=[["time"]] * len(windows),
        dask="parallelized",
        output_dtypes=[da.dtype] * len(windows),
    )
    if len(windows) == 1:
        results = (results,)
    out = []
    for window, res in zip(windows, results, strict=True):
        res = res.transpose(*da.dims)
        attrs = dict(da.attrs)
        hours = window / pd.Timedelta("1h")
        attrs["cell_methods"] = f"time: {how} (interval: {hours:g} hours)"
        res.attrs = attrs
        res.name = da.name
        out.append(res)
    return out


def window_reduce(
    da: xr.DataArray,
    window: pd.Timedelta,
    how: str = "sum",
    *,
    first_step: pd.Timedelta | None = None,
) -> xr.DataArray:
    """Sum, maximum or minimum of ``da`` over the window (t - window, t] at each valid time.

    Lazy with dask (one task per chunk; time is one chunk). Steps falling outside the window
    contribute nothing; windows reaching before the first step hold only what exists
    (``partial``), see :func:`window_status`. Several windows of the same data:
    :func:`window_reduce_many`.

    Parameters
    ----------
    da : xarray.DataArray
        Data with a ``time`` dimension (per-step amounts for ``sum``).
    window : pandas.Timedelta
        Window length.
    how : {"sum", "max", "min"}
    first_step : pandas.Timedelta, optional
        Length of the first step (see :func:`step_starts`).

    Returns
    -------
    xarray.DataArray
        Same shape and dtype as ``da``; attrs kept, with ``cell_methods`` describing the
        window.
    """
    return window_reduce_many(da, [window], how, first_step=first_step)[0]
