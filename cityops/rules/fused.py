"""Fused level kernel: every hazard's level field in one pass over the inputs.

The engine (:mod:`cityops.rules.engine`) compiles the evaluable part of a rule table into a
small program (:class:`Leaf` comparisons combined by ``any``/``all`` groups, one expression
per level) and runs it here on plain numpy arrays ``(time, ...)``. The grid is walked in
tiles of a few hundred thousand values (all times of a few thousand cells), so each tile's
inputs, window sums, daily extremes and comparisons stay in the processor's cache: the inputs
are read from memory once, the level fields written once, instead of one full-grid pass per
condition. Within a tile, reduced fields (one running sum per variable for all its windows,
daily extremes) and comparisons shared by several hazards or levels are computed once.

This kernel is a backend of :func:`cityops.rules.evaluate`; the per-condition xarray path of
the engine is the reference semantics. The numerics are the same: same window kernels of
:mod:`cityops.rules.windows`, same comparison at the data's resolution
(:func:`cityops.rules.resolution.compare`), NaN compares False. ``tests/test_fused.py`` checks
the levels against the conditions' own ``holds`` and ``tests/test_level_semantics.py`` the
levels of every shipped scenario against the xarray path. Cells are independent, so a dask
space chunk gives the values of the whole grid.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cityops.rules.resolution import TOLERANCE, at_resolution, compare, threshold_steps
from cityops.rules.windows import DIRECT_STEPS, reduce_windows

__all__ = [
    "THREADS",
    "TILE_VALUES",
    "HazardProgram",
    "Leaf",
    "converted_dtype",
    "daily_drop",
    "leaves",
    "run_program",
    "span_days",
]

#: Values per variable in one tile (time x cells). Chosen by measurement on 72 x 500 x 500
#: float32 grids (2**16 to 2**20 tried, benchmarks/RESULTS.md): 1 MiB per float32 buffer, so a
#: tile's buffers stay in the last-level cache while numpy's per-call overhead stays small.
TILE_VALUES = 1 << 18

#: Threads of the fused kernel on in-memory (numpy) input; inside dask tasks it runs in one
#: thread (dask runs the chunks in parallel).
THREADS = os.cpu_count() or 1


@dataclass(eq=False)
class Leaf:
    """One evaluable condition, in the terms of the kernel."""

    key: tuple
    input: int
    reduce: str
    op: str
    threshold: float
    #: window conditions: first step of each window (``windows.window_index``) and the valid
    #: times where the window is evaluable (None: all)
    lo: np.ndarray | None = None
    window_key: Any = None
    evaluable: np.ndarray | None = None
    #: daily conditions: local day of each step, start of each day, complete days
    day_index: np.ndarray | None = None
    day_starts: np.ndarray | None = None
    complete: np.ndarray | None = None
    #: daily_drop: daily minima of the days just before the data (history), oldest first
    prior: np.ndarray | None = None
    days: int = 1
    at_step: bool = False
    #: recording resolution of the variable (None: compared unrounded)
    resolution: float | None = None
    #: daily extremes over this many days ending on each day (the cold-air process)
    span: int = 1


@dataclass(eq=False)
class HazardProgram:
    """Levels of one hazard: ``(level, expression)`` with expressions of :class:`Leaf`,
    ``("any", [...])`` or ``("all", [...])``; ``season`` masks the valid times (None: all)."""

    hazard: str
    levels: list[tuple[int, Any]] = field(default_factory=list)
    season: np.ndarray | None = None


def _tiles(shape: tuple[int, ...], cells: int):
    """Index tuples covering ``shape`` in blocks of about ``cells`` cells (C order)."""
    if not shape:
        yield ()
        return
    inner = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
    if inner <= cells:
        step = max(1, cells // max(inner, 1))
        for i in range(0, shape[0], step):
            yield (slice(i, min(i + step, shape[0])),) + (slice(None),) * (len(shape) - 1)
        return
    for i in range(shape[0]):
        for rest in _tiles(shape[1:], cells):
            yield (i, *rest)


class _Compiler:
    """Turns hazard programs into a flat list of numpy steps over numbered slots.

    Each step reads slots and writes one (or, for windows, several). Slots of the tile's
    shape live in a few reused buffers (a slot's buffer is free again after its last read),
    so a tile allocates nothing but its few small daily arrays and window sums, and its
    working set stays in cache. A condition shared by several levels or hazards is computed
    once per tile.
    """

    def __init__(self, dtypes: list[np.dtype]) -> None:
        self.dtypes = dtypes
        self.steps: list[tuple] = []
        self.kinds: list[Any] = []  # per slot: a dtype (pooled, tile-shaped) or None
        self.memo: dict[Any, int] = {}

    def slot(self, kind) -> int:
        self.kinds.append(kind)
        return len(self.kinds) - 1

    def load(self, i: int) -> int:
        key = ("load", i)
        if key not in self.memo:
            out = self.slot(self.dtypes[i])
            self.steps.append(("load", out, i))
            self.memo[key] = out
        return self.memo[key]

    def windows(self, leaf: Leaf, wanted: list) -> int:
        key = ("win", leaf.input, leaf.reduce, leaf.window_key)
        if key not in self.memo:
            src = self.load(leaf.input)
            longest = max(int((np.arange(lo.size) - lo).max(initial=0)) for _, lo in wanted)
            pooled = leaf.reduce == "sum" and longest <= DIRECT_STEPS
            kind = self.dtypes[leaf.input] if pooled else None
            outs = [self.slot(kind) for _ in wanted]
            self.steps.append(("windows", tuple(outs), src, leaf.reduce, [lo for _, lo in wanted]))
            for (wkey, _), o in zip(wanted, outs, strict=True):
                self.memo[("win", leaf.input, leaf.reduce, wkey)] = o
        return self.memo[key]

    def daily(self, leaf: Leaf, how: str, span: int = 1) -> int:
        key = ("daily", leaf.input, how, span)
        if key not in self.memo:
            src = self.load(leaf.input)
            out = self.slot(None)
            bounds = [*leaf.day_starts.tolist(), len(leaf.day_index)]
            self.steps.append(("daily", out, src, how, bounds, span))
            self.memo[key] = out
        return self.memo[key]

    def holds(self, leaf: Leaf, windows: dict) -> int:
        key = ("holds", leaf.key)
        if key in self.memo:
            return self.memo[key]
        out = self.slot(np.dtype(bool))
        if leaf.reduce == "point":
            self.steps.append(
                ("cmp", out, self.load(leaf.input), leaf.op, leaf.threshold, leaf.resolution)
            )
        elif leaf.reduce in ("sum", "max", "min"):
            src = self.windows(leaf, windows[(leaf.input, leaf.reduce)])
            self.steps.append(("cmp", out, src, leaf.op, leaf.threshold, leaf.resolution))
            if leaf.evaluable is not None:
                self.steps.append(("mask", out, leaf.evaluable))
        elif leaf.reduce == "daily_drop":
            daily = self.daily(leaf, "min")
            self.steps.append(
                ("drop", out, daily, leaf.op, leaf.threshold, leaf.days, leaf.complete,
                 leaf.day_index, leaf.resolution, leaf.prior)
            )  # fmt: skip
        else:
            how = "max" if leaf.reduce == "daily_max" else "min"
            daily = self.daily(leaf, how, leaf.span)
            self.steps.append(
                ("days", out, daily, leaf.op, leaf.threshold, leaf.days, leaf.day_index,
                 leaf.resolution)
            )  # fmt: skip
            if leaf.at_step:
                tmp = self.slot(np.dtype(bool))
                self.steps.append(
                    ("cmp", tmp, self.load(leaf.input), leaf.op, leaf.threshold, leaf.resolution)
                )
                self.steps.append(("and", out, out, tmp))
        self.memo[key] = out
        return out

    def expr(self, node, windows: dict) -> int:
        if isinstance(node, Leaf):
            return self.holds(node, windows)
        mode, items = node
        parts = [self.expr(item, windows) for item in items]
        if len(parts) == 1:
            return parts[0]
        op = "or" if mode == "any" else "and"
        out = self.slot(np.dtype(bool))
        self.steps.append((op, out, parts[0], parts[1]))
        for p in parts[2:]:
            self.steps.append((op, out, out, p))
        return out

    def value(self, leaf: Leaf, windows: dict) -> int:
        """Slot of the condition's reduced quantity at each step, before recording (window
        sums and extremes NaN where the window is unaligned); shared by conditions that
        differ only in their threshold."""
        if leaf.reduce == "point":
            return self.load(leaf.input)
        if leaf.reduce in ("sum", "max", "min"):
            return self.windows(leaf, windows[(leaf.input, leaf.reduce)])
        if leaf.reduce == "daily_drop":
            key = ("dropv", leaf.input, leaf.days, leaf.complete.tobytes(),
                   None if leaf.prior is None else leaf.prior.tobytes())  # fmt: skip
            if key not in self.memo:
                out = self.slot(None)
                self.steps.append(("dropv", out, self.daily(leaf, "min"), leaf.days,
                                   leaf.complete, leaf.prior))  # fmt: skip
                self.memo[key] = out
            return self.memo[key]
        how = "max" if leaf.reduce == "daily_max" else "min"
        return self.daily(leaf, how, leaf.span)

    def output(self, leaf: Leaf, what: str, index: int, windows: dict) -> None:
        """Store the condition's ``value`` (as recorded) or ``holds`` in output ``index``."""
        if what == "holds":
            self.steps.append(("store", None, self.holds(leaf, windows), index))
            return
        daily = leaf.reduce.startswith("daily")
        self.steps.append(
            ("storev", None, self.value(leaf, windows), index, leaf.resolution,
             leaf.evaluable if leaf.reduce in ("sum", "max", "min") else None,
             leaf.day_index if daily else None)
        )  # fmt: skip

    def hazard(self, prog: HazardProgram, index: int, windows: dict) -> None:
        level = None
        for k, node in prog.levels:
            h = self.expr(node, windows)
            if level is None:
                level = self.slot(np.dtype(np.int8))
                self.steps.append(("level", level, h, k))
            else:
                tmp = self.slot(np.dtype(np.int8))
                self.steps.append(("level", tmp, h, k))
                self.steps.append(("max", level, level, tmp))
        if prog.season is not None and not prog.season.all():
            self.steps.append(("season", level, prog.season))
        self.steps.append(("store", None, level, index))

    def allocate(self) -> tuple[list[tuple[Any, int] | None], dict[Any, int]]:
        """Buffer of each pooled slot (``(dtype, number)``), reusing freed buffers; and the
        number of buffers per dtype."""
        last: dict[int, int] = {}
        for n, step in enumerate(self.steps):
            for s in _reads(step):
                last[s] = n
        free: dict[Any, list[int]] = {}
        count: dict[Any, int] = {}
        where: list[tuple[Any, int] | None] = [None] * len(self.kinds)
        for n, step in enumerate(self.steps):
            outs = step[1] if isinstance(step[1], tuple) else (step[1],)
            for o in outs:
                if o is None or where[o] is not None or self.kinds[o] is None:
                    continue
                kind = self.kinds[o]
                if free.get(kind):
                    where[o] = (kind, free[kind].pop())
                else:
                    where[o] = (kind, count.get(kind, 0))
                    count[kind] = count.get(kind, 0) + 1
            for s in set(_reads(step)) | {o for o in outs if o is not None}:
                if last.get(s, -1) <= n and where[s] is not None:
                    kind, num = where[s]
                    if num not in free.setdefault(kind, []):
                        free[kind].append(num)
        return where, count


def _reads(step: tuple) -> list[int]:
    """Slots a step reads."""
    kind = step[0]
    if kind in ("cmp", "windows", "daily", "drop", "days", "level", "store", "storev", "dropv"):
        return [step[2]]
    if kind in ("and", "or", "max"):
        return [step[2], step[3]]
    if kind in ("mask", "season"):
        return [step[1]]
    return []


def _along_time(mask: np.ndarray, ndim: int) -> np.ndarray:
    return mask.reshape((-1,) + (1,) * (ndim - 1))


def _consecutive(flags: np.ndarray, n: int) -> np.ndarray:
    """Days inside a run of at least ``n`` consecutive True days (axis 0)."""
    if n <= 1:
        return flags
    nd = flags.shape[0]
    ends = np.zeros_like(flags)
    if nd >= n:
        run = flags[n - 1 :].copy()
        for k in range(1, n):
            run &= flags[n - 1 - k : nd - k]
        ends[n - 1 :] = run
    in_run = ends.copy()
    for k in range(1, n):
        in_run[:-k] |= ends[k:]
    return in_run


def converted_dtype(dtype: np.dtype, scale: float, offset: float) -> np.dtype:
    """Dtype of an input after its unit conversion ``x * scale + offset``."""
    if scale != 1.0 or offset != 0.0:
        return np.result_type(dtype, np.float32(0) * scale + offset)
    return np.dtype(dtype)


def run_program(
    arrays: list[np.ndarray],
    conversions: list[tuple[float, float]],
    hazards: list[HazardProgram],
    *,
    outputs: list[tuple[Leaf, str]] = (),
    tile_values: int | None = None,
    threads: int = 1,
) -> list[np.ndarray]:
    """Level fields (int8, ``(time, ...)``) of ``hazards`` from ``(time, ...)`` inputs, then
    the condition fields asked for in ``outputs``.

    Parameters
    ----------
    arrays : list of numpy.ndarray
        Inputs with time first, broadcastable to one shape.
    conversions : list of (scale, offset)
        Unit conversion of each input (``x * scale + offset``, skipped for ``(1, 0)``).
    hazards : list of HazardProgram
    outputs : list of (Leaf, {"value", "holds"})
        Condition fields to return after the level fields, in the same pass: a leaf's
        ``value`` as recorded (the reduced quantity at each step, rounded to its resolution,
        NaN where its window is unaligned; dtype of the converted input) or ``holds`` (bool).
        The same numbers as the engine's per-condition xarray path.
    tile_values : int, optional
        Values per input in one tile (default :data:`TILE_VALUES`).
    threads : int
        Threads sharing the tiles (numpy releases the GIL in its loops). 1 inside dask
        tasks, which dask already runs in parallel.
    """
    arrays = list(np.broadcast_arrays(*arrays)) if len(arrays) > 1 else list(arrays)
    shape = arrays[0].shape
    nt = shape[0]
    windows: dict[tuple[int, str], list] = {}
    every = [leaf for prog in hazards for _, node in prog.levels for leaf in leaves(node)]
    for leaf in [*every, *(leaf for leaf, _ in outputs)]:
        if leaf.reduce in ("sum", "max", "min"):
            wanted = windows.setdefault((leaf.input, leaf.reduce), [])
            if all(k != leaf.window_key for k, _ in wanted):
                wanted.append((leaf.window_key, leaf.lo))
    dtypes = [converted_dtype(a.dtype, *conv) for a, conv in zip(arrays, conversions, strict=True)]
    comp = _Compiler(dtypes)
    outs = []
    for prog in hazards:
        outs.append(np.empty(shape, dtype=np.int8))
        if prog.season is not None and not prog.season.any():
            outs[-1][...] = 0  # out of season throughout: level 0
            continue
        comp.hazard(prog, len(outs) - 1, windows)
    for leaf, what in outputs:
        if what not in ("value", "holds"):
            raise ValueError(f"output must be 'value' or 'holds', not {what!r}")
        outs.append(np.empty(shape, dtype=bool if what == "holds" else dtypes[leaf.input]))
        comp.output(leaf, what, len(outs) - 1, windows)
    where, count = comp.allocate()
    cells = max(1, (tile_values or TILE_VALUES) // max(nt, 1))
    size = nt * min(cells, int(np.prod(shape[1:], dtype=np.int64)) or 1)
    tiles = list(_tiles(shape[1:], cells))
    threads = max(1, min(threads, len(tiles)))

    def work(part: list) -> None:
        pool = {kind: [np.empty(size, dtype=kind) for _ in range(n)] for kind, n in count.items()}
        scratch = _Scratch(size)
        bound: dict[tuple, list] = {}
        for index in part:
            idx = (slice(None), *index)
            tshape = (nt, *arrays[0][(0, *index)].shape)
            if tshape not in bound:
                bound[tshape] = _bind(
                    comp.steps, where, pool, tshape, arrays, conversions, outs, scratch
                )
            for step in bound[tshape]:
                step(idx)

    if threads == 1:
        work(tiles)
    else:
        from concurrent.futures import ThreadPoolExecutor

        chunk = -(-len(tiles) // threads)
        with ThreadPoolExecutor(threads) as ex:
            list(ex.map(work, [tiles[i : i + chunk] for i in range(0, len(tiles), chunk)]))
    return outs


class _Scratch:
    """Two float64 buffers of a tile: :func:`cityops.rules.resolution.compare` and
    :func:`~cityops.rules.resolution.at_resolution` of a tile without allocating (the same
    float64 operations in the same order, so the same bits; numpy's temporaries of a tile are
    fresh pages on every call)."""

    def __init__(self, size: int) -> None:
        self.a = np.empty(size, dtype=np.float64)
        self.b = np.empty(size, dtype=np.float64)

    def _steps(self, x: np.ndarray, res: float) -> np.ndarray:
        # resolution.steps: sign(x) * floor(|x| / res + 0.5 + TOLERANCE), in float64
        t = self.a[: x.size].reshape(x.shape)
        sign = self.b[: x.size].reshape(x.shape)
        np.abs(x, out=t)
        np.divide(t, res, out=t)
        np.add(t, 0.5, out=t)
        np.add(t, TOLERANCE, out=t)
        np.floor(t, out=t)
        np.sign(x, out=sign)
        return np.multiply(sign, t, out=t)

    def fits(self, x: np.ndarray, res: float | None) -> bool:
        return res is not None and x.dtype.kind == "f" and x.size <= self.a.size

    def compare(self, x: np.ndarray, op: str, threshold: float, res: float | None, out):
        if not self.fits(x, res):
            return compare(x, op, threshold, res, out=out)
        k = self._steps(x, res)
        return _UFUNC[op](k, threshold_steps(threshold, res), out=out)

    def record(self, x: np.ndarray, res: float | None, dest: np.ndarray) -> None:
        """``dest[...] = at_resolution(x, res)``."""
        if not self.fits(x, res):
            dest[...] = at_resolution(x, res)
            return
        k = self._steps(x, res)
        np.multiply(k, res, out=k)
        np.copyto(dest, k, casting="unsafe")


_UFUNC = {">=": np.greater_equal, ">": np.greater, "<=": np.less_equal, "<": np.less}


def _bind(steps, where, pool, tshape, arrays, conversions, outs, scratch=None) -> list:
    """The steps as callables of the tile index, over buffers viewed in the tile's shape."""
    n = int(np.prod(tshape, dtype=np.int64))
    views = {
        (kind, i): buf[:n].reshape(tshape) for kind, bufs in pool.items()
        for i, buf in enumerate(bufs)
    }  # fmt: skip
    reg: list[Any] = [views[w] if w is not None else None for w in where]
    scratch = scratch if scratch is not None else _Scratch(n)
    return [_step(step, reg, arrays, conversions, outs, tshape, scratch) for step in steps]


def _step(step, reg, arrays, conversions, outs, tshape, scratch):
    kind, out = step[0], step[1]
    if kind == "cmp":
        op, a, b, res, o = step[3], reg[step[2]], step[4], step[5], reg[out]
        if a is None:  # a window or daily result, made per tile
            src = step[2]
            return lambda idx: scratch.compare(reg[src], op, b, res, o)
        return lambda idx: scratch.compare(a, op, b, res, o)
    if kind in ("and", "or", "max"):
        f = {"and": np.logical_and, "or": np.logical_or, "max": np.maximum}[kind]
        a, b, o = reg[step[2]], reg[step[3]], reg[out]
        return lambda idx: f(a, b, out=o)
    if kind == "level":
        a, k, o = reg[step[2]].view(np.int8), np.int8(step[3]), reg[out]
        return lambda idx: np.multiply(a, k, out=o)
    if kind == "load":
        src, o = arrays[step[2]], reg[out]
        scale, offset = conversions[step[2]]
        if scale != 1.0 or offset != 0.0:
            return lambda idx: np.copyto(o, src[idx] * scale + offset)
        return lambda idx: np.copyto(o, src[idx])  # one read; later passes are contiguous
    if kind == "store":
        dest, a = outs[step[3]], reg[step[2]]
        return lambda idx: dest.__setitem__(idx, a)
    if kind == "storev":
        dest, src, res, evaluable, day_index = outs[step[3]], step[2], step[4], step[5], step[6]
        hole = None if evaluable is None else _along_time(~evaluable, len(tshape))

        def storev(idx):
            x = reg[src]
            if day_index is not None:
                x = np.take(x, day_index, axis=0)
            elif hole is not None:
                x = np.where(hole, np.nan, x).astype(x.dtype, copy=False)
            scratch.record(x, res, dest[idx])

        return storev
    if kind == "dropv":
        src, n, complete, prior = step[2], step[3], step[4], step[5]

        def dropv(idx):
            reg[out] = daily_drop(reg[src], n, complete, prior)

        return dropv
    if kind == "mask":
        o, m = reg[out], _along_time(step[2], reg[out].ndim)
        return lambda idx: np.logical_and(o, m, out=o)
    if kind == "season":
        o, m = reg[out], _along_time(step[2], reg[out].ndim).view(np.int8)
        return lambda idx: np.multiply(o, m, out=o)
    if kind == "windows":
        src, how, lows, targets = step[2], step[3], step[4], out
        if all(reg[t] is not None for t in targets):  # short sums into reused buffers
            bufs = [reg[t] for t in targets]
            return lambda idx: reduce_windows(reg[src], lows, how, outs=bufs)

        def windows(idx):
            for t, r in zip(targets, reduce_windows(reg[src], lows, how), strict=True):
                reg[t] = r

        return windows
    if kind == "daily":
        f = np.fmax if step[3] == "max" else np.fmin
        src, bounds, span = step[2], step[4], step[5]

        def daily(idx):
            # fmax over each day's contiguous steps (NaN skipped; reduceat is 30x slower)
            x = reg[src]
            d = np.stack([f.reduce(x[a:b], axis=0) for a, b in itertools.pairwise(bounds)])
            reg[out] = span_days(d, span, step[3])

        return daily
    if kind == "days":
        op, src, thr, n, day_index, res, o = (
            step[3], step[2], step[4], step[5], step[6], step[7], reg[out])  # fmt: skip
        return lambda idx: np.take(
            _consecutive(compare(reg[src], op, thr, res), n), day_index, axis=0, out=o
        )
    if kind == "drop":
        op, src, thr, n, complete, day_index, res, prior, o = (
            step[3], step[2], step[4], step[5], step[6], step[7], step[8], step[9], reg[out])  # fmt: skip
        return lambda idx: np.take(
            compare(daily_drop(reg[src], n, complete, prior), op, thr, res), day_index, axis=0,
            out=o,
        )  # fmt: skip
    raise ValueError(kind)  # pragma: no cover


def daily_drop(
    daily: np.ndarray, days: int, complete: np.ndarray, prior: np.ndarray | None = None
) -> np.ndarray:
    """Largest fall of the daily minimum (axis 0) from any of the ``days`` days before.

    The day it falls from must be complete (``complete``) or one of the ``prior`` days (daily
    minima of the days just before the data, oldest first: history or observations); the
    day it falls to may be partial (a partial day's minimum is never below the true one, so
    the fall is never overstated). NaN where no such day exists. The one implementation of
    the cold-wave fall, used by the fused kernel and the engine's xarray path."""
    prior = np.empty(0) if prior is None else np.asarray(prior, dtype=daily.dtype)
    p = prior.size
    full = np.concatenate([np.broadcast_to(prior.reshape((p,) + (1,) * (daily.ndim - 1)),
                                           (p, *daily.shape[1:])), daily])  # fmt: skip
    src = full.copy()
    src[p:][~np.asarray(complete, dtype=bool)] = np.nan
    drop = np.full_like(full, np.nan)
    for k in range(1, days + 1):
        step = np.full_like(full, np.nan)
        step[k:] = src[:-k] - full[k:]
        drop = np.fmax(drop, step)
    return drop[p:]


def span_days(daily: np.ndarray, span: int, how: str) -> np.ndarray:
    """Extreme over the ``span`` days ending on each day (axis 0; NaN skipped): a process
    that runs over more than one calendar day (the cold-air process: the wind behind the
    front on the evening before the coldest morning)."""
    if span <= 1:
        return daily
    f = np.fmax if how == "max" else np.fmin
    out = daily.copy()
    for k in range(1, span):
        f(out[k:], daily[:-k], out=out[k:])
    return out


def leaves(node):
    """The :class:`Leaf` objects of an expression, depth first."""
    if isinstance(node, Leaf):
        yield node
        return
    for item in node[1]:
        yield from leaves(item)
