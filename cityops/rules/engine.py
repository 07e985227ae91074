"""The rule engine: a canonical forecast Dataset in, a level Dataset out.

For each hazard of a :class:`~cityops.rules.table.RuleTable` and each grid cell and valid time,
the level is the highest level whose criterion holds (interfaces.md §2). Works on numpy and
dask alike; nothing is computed until the caller asks.

One rule semantics:

- **Reference and backend.** The per-condition xarray path
  (:meth:`ConditionResult.reference`, :meth:`HazardResult.reference_level`) is the reference
  semantics; the level fields and, on first read or :meth:`LevelResult.load`, every
  condition's ``value``/``holds`` are computed by the fused kernel
  (:mod:`cityops.rules.fused`), a backend that must give the reference DataArrays exactly
  (tested on every shipped scenario and on generated inputs, ``tests/test_fused.py``).
- **Exact thresholds.** Values are compared as recorded: a window sum, extreme, daily value
  or fall is rounded half away from zero to the variable's resolution (0.1 mm, 0.1 °C,
  0.1 m/s: ``resolution`` in ``cityops/data/variables.yaml``) and compared in whole
  resolution steps (:mod:`cityops.rules.resolution`). So 15.3 + 15.4 + 19.3 mm reaches
  50 mm in any order although its float32 sum is 49.99999905, and 10.75 m/s is recorded
  10.8 m/s, Beaufort force 6. Rounding (not a ``threshold - resolution/2`` slack) is the
  observer's rule: 49.94 mm is 49.9 mm and misses 50 mm. Both paths call the same
  :func:`cityops.rules.resolution.compare`.
- **Windows** are on time, aligned to step boundaries (:mod:`cityops.rules.windows`).
- **Cold wave.** The fall of the daily minimum is from a complete local day (forecast,
  joined observations or the ``prior_daily_min`` of a history) to a day that may be partial
  (its minimum can only be too warm); the wind is that of the cold-air process, the day of
  the minimum and the day before (``cityops/data/processes.yaml``).
- **Observations** are joined to the forecast before evaluation
  (:mod:`cityops.rules.observed`).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from cityops.errors import DataFileError
from cityops.ingest.canonical import MISSING_ATTR, UNUSABLE_ATTR
from cityops.resources import load_yaml, package_data
from cityops.rules import fused
from cityops.rules.derived import add_derived, derived_inputs
from cityops.rules.fused import HazardProgram, Leaf, daily_drop, leaves, run_program
from cityops.rules.resolution import at_resolution, compare, resolution
from cityops.rules.table import Condition, Group, HazardRules, LevelRule, RuleTable, level_names
from cityops.rules.windows import UNALIGNED, window_index, window_reduce_many, window_status
from cityops.timeutil import parse_utc
from cityops.units import convert_dataarray, linear_conversion

__all__ = [
    "ConditionResult",
    "HazardResult",
    "LevelResult",
    "evaluate",
]

log = logging.getLogger("cityops")


class ConditionResult:
    """One evaluated condition: the aggregated value and where the comparison holds.

    ``value`` is the quantity the condition compares, on the dimensions and valid times of
    the hazard's level field, as recorded (rounded to the variable's resolution,
    :mod:`cityops.rules.resolution`): the window sum/maximum/minimum ending at each valid
    time, the daily extreme of the step's local day (over the process's days where
    ``data/processes.yaml`` spans them), the fall of the daily minimum, or the value at the
    step. ``holds`` is its comparison with the threshold (False where the window is too
    coarse). Both exist for every evaluated condition (``evaluated``); for one that could not
    be evaluated they are None and ``note`` says why. Plots and the explorer draw ``value``,
    so they show what the engine judged.

    ``value`` and ``holds`` are computed when first read (numpy input) or built as a lazy
    dask graph then (dask input): :func:`evaluate` computes the level fields in one fused
    pass (:mod:`cityops.rules.fused`); the first read of any condition computes every
    condition of the call in a second fused pass (one blockwise task per space chunk on
    dask), and :meth:`LevelResult.load` computes them all together. :meth:`reference` gives
    the same fields by the per-condition xarray path.
    """

    def __init__(
        self,
        condition: Condition,
        variable: str | None,
        value: xr.DataArray | None = None,
        holds: xr.DataArray | None = None,
        note: str = "",
        *,
        lazy: Callable[[], tuple[xr.DataArray, xr.DataArray]] | None = None,
        reference: Callable[[], tuple[xr.DataArray, xr.DataArray]] | None = None,
    ) -> None:
        self.condition = condition
        self.variable = variable
        self.note = note
        self._value = value
        self._holds = holds
        self._lazy = lazy
        self._reference = reference

    def reference(self) -> tuple[xr.DataArray, xr.DataArray] | None:
        """``(value, holds)`` by the reference semantics, the per-condition xarray path
        (lazy with dask), whatever computed :attr:`value` and :attr:`holds`; None when the
        condition was not evaluated. The fused kernel must give the same DataArrays
        (``tests/test_fused.py``)."""
        return None if self._reference is None else self._reference()

    def _materialize(self) -> None:
        if self._lazy is not None:
            lazy, self._lazy = self._lazy, None
            self._value, self._holds = lazy()

    @property
    def value(self) -> xr.DataArray | None:
        self._materialize()
        return self._value

    @value.setter
    def value(self, data: xr.DataArray | None) -> None:
        self._materialize()
        self._value = data

    @property
    def holds(self) -> xr.DataArray | None:
        self._materialize()
        return self._holds

    @holds.setter
    def holds(self, data: xr.DataArray | None) -> None:
        self._materialize()
        self._holds = data

    @property
    def evaluated(self) -> bool:
        return self._lazy is not None or self._holds is not None

    def __getstate__(self) -> dict:
        # Pickled computed (a worker's result): no closures over the evaluation's plan.
        self._materialize()
        return {**self.__dict__, "_reference": None}

    def __repr__(self) -> str:
        state = "evaluated" if self.evaluated else f"not evaluated: {self.note}"
        return f"ConditionResult({self.condition.describe()}, {self.variable}, {state})"


@dataclass
class HazardResult:
    """Evaluated hazard: level field (0-4) and per level the condition results."""

    rules: HazardRules
    level: xr.DataArray | None
    conditions: dict[int, list[ConditionResult]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: Valid times inside the hazard's season (None: all), as the level field was computed.
    season: np.ndarray | None = None
    #: Last valid time taken from observations (:func:`cityops.rules.observed.settle_observed`):
    #: a level at or before it is observed, "already reached" (tier ongoing).
    observed_until: pd.Timestamp | None = None
    #: The fused pass that computes (numpy) or builds (dask) ``level`` when first read (with
    #: the conditions when :meth:`LevelResult.load` comes first: one pass for both).
    _pending: _Pending | None = field(default=None, repr=False, compare=False)

    @property
    def evaluated(self) -> bool:
        return self._pending is not None or self.__dict__.get("_level") is not None

    def __getstate__(self) -> dict:
        # Pickled computed (a worker's result): the level field, not the pending pass.
        _ = self.level
        return dict(self.__dict__)

    @property
    def hazard(self) -> str:
        return self.rules.hazard

    def holds(self, level: int) -> xr.DataArray | None:
        """Where the criterion of ``level`` holds (bool field), or None if not evaluated."""
        rule = self.rules.level_rule(level)
        if rule is None or not self.evaluated:
            return None
        return _combine(rule, self.conditions[level])

    def reference_level(self) -> xr.DataArray | None:
        """The level field by the reference semantics: the per-condition xarray path (each
        condition's ``holds``, combined by the level's ``any``/``all`` groups, the highest
        level that holds, 0 outside the season). :func:`evaluate` computes ``level`` with the
        fused kernel (:mod:`cityops.rules.fused`), a backend that must give the same field
        (``tests/test_level_semantics.py`` checks it on every shipped scenario)."""
        if not self.evaluated:
            return None
        out = xr.zeros_like(self.level, dtype=np.int8)
        for rule in self.rules.levels:
            if rule.level not in self.conditions:
                continue
            holds = self.holds(rule.level)
            if holds is None:
                continue
            holds = holds.transpose(*[d for d in self.level.dims if d in holds.dims])
            out = np.maximum(out, (holds.astype(np.int8) * np.int8(rule.level)))
        if self.season is not None:
            season = xr.DataArray(self.season, dims="time", coords={"time": self.level["time"]})
            out = out.where(season, 0)
        return out.astype(np.int8).transpose(*self.level.dims)


def _get_level(self: HazardResult) -> xr.DataArray | None:
    pending = self.__dict__.get("_pending")
    if pending is not None:
        pending.levels()
    return self.__dict__.get("_level")


def _set_level(self: HazardResult, value: xr.DataArray | None) -> None:
    self.__dict__["_level"] = value


#: The level field (0-4), computed on first read for in-memory input.
HazardResult.level = property(_get_level, _set_level)  # type: ignore[assignment]


@dataclass
class LevelResult:
    """Output of :func:`evaluate`: one :class:`HazardResult` per hazard of the table."""

    table: RuleTable
    hazards: dict[str, HazardResult]
    issued: pd.Timestamp | None

    def __getitem__(self, hazard: str) -> HazardResult:
        return self.hazards[hazard]

    def __iter__(self):
        return iter(self.hazards.values())

    def load(self) -> LevelResult:
        """Compute every level field and condition result (one shared dask graph, blockwise
        by space chunk), in place; returns self. The conditions' ``value``/``holds`` come
        from one fused-kernel pass (:meth:`ConditionResult.reference` gives the same by
        xarray). Call it once before aggregating a small (cropped) grid."""
        import dask

        slots = []
        for res in self:
            for crs in (c for cl in res.conditions.values() for c in cl):
                if crs.evaluated:
                    slots.append((crs, "value", None))
                    slots.append((crs, "holds", None))
        # after the conditions: pending level fields were computed in their pass
        slots += [(res, "level", None) for res in self if res.evaluated]
        arrays = [getattr(obj, attr) for obj, attr, _ in slots]
        names = sorted({a.data.name for a in arrays if getattr(a, "chunks", None)})
        if names:  # where they ran can be checked from the scheduler's records
            log.debug("rule fields computed by dask: %s", " ".join(names))
        for (obj, attr, _), value in zip(slots, dask.compute(*arrays), strict=True):
            setattr(obj, attr, value)
        return self

    def to_dataset(self) -> xr.Dataset:
        """CF dataset: ``<hazard>_level`` (flag values 0-4) and the aggregated values."""
        names = level_names()
        data_vars: dict[str, xr.DataArray] = {}
        for res in self:
            if not res.evaluated:
                continue
            lev = res.level.astype("int8")
            lev.attrs = {
                "long_name": f"{res.rules.name_en} warning signal level",
                "long_name_zh": f"{res.rules.name_zh}预警信号级别",
                "flag_values": np.arange(5, dtype="int8"),
                "flag_meanings": " ".join(names[i]["name"] for i in range(5)),
                "ruleset": self.table.ruleset,
                "units": "1",
            }
            data_vars[f"{res.hazard}_level"] = lev
            data_vars[f"{res.hazard}_onset"] = onset_per_level(lev, res.hazard)
            if "member" in lev.dims:
                data_vars[f"{res.hazard}_probability"] = level_probability(lev, res.hazard)
            for crs in (c for cl in res.conditions.values() for c in cl):
                if crs.value is None:
                    continue
                name = f"value_{crs.condition.key}"
                if name not in data_vars:
                    value = crs.value.astype("float32")
                    value.attrs = {
                        **{k: v for k, v in crs.value.attrs.items() if k != "standard_name"},
                        "long_name": f"{crs.condition.describe()} (aggregated)",
                        "units": crs.condition.value_units,
                    }
                    data_vars[name] = value
        ds = xr.Dataset(data_vars)
        ds.attrs = {
            "Conventions": "CF-1.8",
            "title": "cityops warning-signal levels",
            "institution": "cityops",
            "source": f"rule table {self.table.ruleset} {self.table.version}: {self.table.source}",
            "ruleset": self.table.ruleset,
            "ruleset_version": self.table.version,
            "issued": "" if self.issued is None else self.issued.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "history": f"cityops.rules.evaluate with {self.table.ruleset}",
        }
        notes = {res.hazard: "; ".join(res.notes) for res in self if res.notes}
        if notes:
            ds.attrs["cityops_notes"] = " | ".join(f"{k}: {v}" for k, v in notes.items())
        missing = [f"{r.hazard}: {'; '.join(r.notes)}" for r in self if not r.evaluated]
        ds.attrs["cityops_not_evaluated"] = " | ".join(missing)
        return ds


@functools.cache
def _signal_levels() -> xr.DataArray:
    # built on first use: a DataArray made at import makes xarray import dask.array (and scipy)
    levels = xr.DataArray(np.arange(1, 5, dtype="int8"), dims="level", attrs={
        "long_name": "signal level", "flag_values": np.arange(1, 5, dtype="int8"),
        "flag_meanings": "blue yellow orange red"})  # fmt: skip
    return levels.assign_coords(level=levels)


def onset_per_level(level: xr.DataArray, hazard: str = "") -> xr.DataArray:
    """First valid time at which each level (1-4) is reached, per cell (NaT when never)."""
    reached = level >= _signal_levels()
    first = reached.argmax("time")
    onset = level["time"].isel(time=first).where(reached.any("time"))
    onset = onset.reset_coords(drop=True)
    onset.attrs = {"long_name": f"onset of each {hazard} signal level (valid time, UTC)"}
    return onset.rename(f"{hazard}_onset")


def level_probability(level: xr.DataArray, hazard: str = "") -> xr.DataArray:
    """Share of ensemble members at or above each level (1-4), per cell and valid time."""
    prob = (level >= _signal_levels()).mean("member").astype("float32")
    prob.attrs = {"long_name": f"probability of reaching each {hazard} signal level",
                  "units": "1"}  # fmt: skip
    return prob.rename(f"{hazard}_probability")


def _local_day(time: xr.DataArray, timezone: str) -> xr.DataArray:
    """Local calendar day of each valid time (the step ending at ``t`` belongs to the day of
    ``t - 1 ns``, so 24:00 closes the day it ends)."""
    idx = pd.DatetimeIndex(time.values).tz_localize("UTC").tz_convert(timezone)
    days = (idx - pd.Timedelta("1ns")).tz_localize(None).normalize()
    return xr.DataArray(days.values, dims="time", coords={"time": time})


def _consecutive(flags: xr.DataArray, n: int) -> xr.DataArray:
    """True for days inside a run of at least ``n`` consecutive True days (dim ``day``)."""
    if n <= 1:
        return flags
    days = pd.DatetimeIndex(flags["day"].values)
    gap = np.diff(days.values).astype("timedelta64[D]") != np.timedelta64(1, "D")
    if gap.any():
        raise ValueError("local days are not consecutive: cannot count consecutive days")
    ends = flags.astype(int).rolling(day=n, min_periods=n).sum() == n
    in_run = ends
    for k in range(1, n):
        in_run = in_run | ends.shift(day=-k, fill_value=False)
    return in_run


def _span(daily: xr.DataArray, span: int, how: str) -> xr.DataArray:
    """:func:`cityops.rules.fused.span_days` on a ``day`` dimension."""
    if span <= 1:
        return daily
    f = np.fmax if how == "max" else np.fmin
    out = daily
    for k in range(1, span):
        out = f(out, daily.shift(day=k))
    return out


def _unusable(ds: xr.Dataset) -> dict[str, str]:
    """Variables ingest found but could not use, and why (``UNUSABLE_ATTR``)."""
    out = {}
    for item in str(ds.attrs.get(UNUSABLE_ATTR, "")).split(" | "):
        name, sep, why = item.partition(": ")
        if sep:
            out[name] = why
    return out


@dataclass(eq=False)
class _Spec:
    """What a condition needs on this dataset, known before any data is read: the variable,
    whether it can be evaluated (and the note), the window and day bookkeeping."""

    condition: Condition
    var: str | None
    note: str = ""
    ok: bool = False
    units: str = ""
    scale: float = 1.0
    offset: float = 0.0
    status: np.ndarray | None = None  # window status per valid time
    lo: np.ndarray | None = None  # first step of each window
    day: xr.DataArray | None = None  # local day of each valid time
    day_index: np.ndarray | None = None
    day_starts: np.ndarray | None = None
    complete: np.ndarray | None = None  # complete local days (daily_drop)
    resolution: float | None = None  # recording resolution of the variable
    prior: np.ndarray | None = None  # daily minima of the days just before (daily_drop)
    span_days: int = 1  # daily extremes over this many days ending on each day (a process)


def _condition_spec(
    ds: xr.Dataset,
    condition: Condition,
    *,
    timezone: str,
    first_step: pd.Timedelta | None,
    span_days: int = 1,
    prior: pd.Series | None = None,
) -> _Spec:
    var = next((v for v in condition.variables if v in ds.data_vars), None)
    if var is None:
        note = f"missing variable {'/'.join(condition.variables)}"
        unusable = _unusable(ds)
        why = [unusable[v] for v in condition.variables if v in unusable]
        if why:
            note = f"{'/'.join(condition.variables)} unusable ({'; '.join(why)})"
        else:
            # A derived variable (rain from precip, ...) is missing because its input is.
            sources = [v for name in condition.variables for v in derived_inputs(name)]
            bad = [v for v in dict.fromkeys(sources) if v in unusable]
            if bad:
                why = "; ".join(unusable[v] for v in bad)
                note = f"{'/'.join(bad)} unusable ({why})"
        return _Spec(condition, None, note=note)
    da = ds[var]
    scale, offset = linear_conversion(da, condition.units, source=ds.encoding.get("source", ""))
    spec = _Spec(condition, var, ok=True, units=condition.units, scale=scale, offset=offset,
                 resolution=resolution(var))  # fmt: skip
    if condition.reduce in ("daily_max", "daily_min"):
        spec.span_days = span_days
    if condition.reduce == "point":
        return spec
    if condition.reduce in ("sum", "max", "min"):
        status = window_status(da["time"], condition.window, first_step=first_step)
        evaluable = status != UNALIGNED
        if not evaluable.any():
            hours = condition.window / pd.Timedelta("1h")
            spec.ok = False
            spec.note = f"{var}: steps too coarse for a {hours:g} h window"
            return spec
        if not evaluable.all():
            spec.note = f"{var}: {int((~evaluable).sum())} valid times too coarse for the window"
        spec.status = status
        spec.lo = window_index(da["time"], condition.window, first_step=first_step)
        return spec
    spec.day = _local_day(da["time"], timezone)
    days, day_index = np.unique(spec.day.values, return_inverse=True)
    spec.day_index = day_index.astype(np.int64)
    spec.day_starts = np.searchsorted(spec.day_index, np.arange(len(days)), side="left")
    if condition.reduce == "daily_drop":
        times = pd.DatetimeIndex(da["time"].values)
        start0 = times[0] - (first_step if first_step is not None else (
            times[1] - times[0] if len(times) > 1 else pd.Timedelta("1h")))  # fmt: skip
        spec.complete = _complete_days(pd.DatetimeIndex(days), times, start0, timezone)
        spec.prior = _prior_days(prior, pd.DatetimeIndex(days), condition.consecutive_days)
        # The day the minimum falls from must be complete (a partial day's minimum is too
        # warm: the fall would be overstated), from the forecast, observations joined before
        # it or the history; the day it falls to may be partial (its minimum can only be too
        # warm, so the fall found is never more than the true one).
        if not (len(spec.prior) or spec.complete[:-1].any()):
            spec.ok = False
            spec.note = (
                f"{var}: cold-wave drop needs the minimum of a complete local day before the "
                "fall (from the forecast, observations or --history)"
            )
        return spec
    if condition.consecutive_days > 1:
        gap = np.diff(days).astype("timedelta64[D]") != np.timedelta64(1, "D")
        if gap.any():
            spec.ok = False
            spec.note = f"{var}: local days are not consecutive: cannot count consecutive days"
    return spec


class _Fields:
    """Reduced fields of one :func:`evaluate` call, each computed once: unit-converted
    variables, window reductions by (variable, reduce) with every window length the table
    asks for in one pass, daily extremes."""

    def __init__(self, ds: xr.Dataset, *, timezone: str, first_step: pd.Timedelta | None):
        self.ds = ds
        self.timezone = timezone
        self.first_step = first_step
        self.windows: dict[tuple, set] = {}
        self._cache: dict[tuple, xr.DataArray] = {}

    def want(self, spec: _Spec) -> None:
        """Register a window, so the first window of a variable computes them all."""
        c = spec.condition
        if spec.ok and c.reduce in ("sum", "max", "min"):
            self.windows.setdefault((spec.var, spec.units, c.reduce), set()).add(c.window)

    def variable(self, var: str, units: str) -> xr.DataArray:
        key = ("var", var, units)
        if key not in self._cache:
            source = self.ds.encoding.get("source", "")
            self._cache[key] = convert_dataarray(self.ds[var], units, source=source, copy=False)
        return self._cache[key]

    def window(self, var: str, units: str, how: str, window: pd.Timedelta) -> xr.DataArray:
        key = ("win", var, units, how, window)
        if key not in self._cache:
            wanted = sorted(self.windows.get((var, units, how), set()) | {window})
            da = self.variable(var, units)
            reduced = window_reduce_many(da, wanted, how, first_step=self.first_step)
            for w, r in zip(wanted, reduced, strict=True):
                self._cache[("win", var, units, how, w)] = r
        return self._cache[key]

    def daily(self, var: str, units: str, how: str, day: xr.DataArray) -> xr.DataArray:
        key = ("daily", var, units, how)
        if key not in self._cache:
            grouped = self.variable(var, units).assign_coords(day=day).groupby("day")
            self._cache[key] = grouped.max() if how == "max" else grouped.min()
        return self._cache[key]


def _condition_fields(spec: _Spec, fields: _Fields) -> tuple[xr.DataArray, xr.DataArray]:
    """``(value, holds)`` of an evaluable condition, lazily with dask. ``value`` is the reduced
    quantity as recorded (at the variable's resolution, :mod:`cityops.rules.resolution`) and
    ``holds`` its comparison with the threshold."""
    condition, var = spec.condition, spec.var
    res = spec.resolution

    def judge(x: xr.DataArray) -> xr.DataArray:
        return compare(x, condition.op, condition.threshold, res)

    def recorded(x: xr.DataArray) -> xr.DataArray:
        return at_resolution(x, res).assign_attrs(x.attrs) if res is not None else x

    da = fields.variable(var, spec.units)
    if condition.reduce == "point":
        return recorded(da), judge(da)
    if condition.reduce in ("sum", "max", "min"):
        value = fields.window(var, spec.units, condition.reduce, condition.window)
        evaluable = xr.DataArray(spec.status != UNALIGNED, dims="time", coords={"time": da["time"]})
        if not bool(evaluable.all()):
            # A window beginning inside a step has no value (not the longer step's amount).
            value = value.where(evaluable)
        return recorded(value), judge(value) & evaluable
    day = spec.day
    if condition.reduce == "daily_drop":
        daily = fields.daily(var, spec.units, "min", day)
        if daily.chunks is not None:
            daily = daily.chunk({"day": -1})
        drop = xr.apply_ufunc(
            _drop_along_last,
            daily,
            input_core_dims=[["day"]],
            output_core_dims=[["day"]],
            kwargs={"days": condition.consecutive_days, "complete": spec.complete,
                    "prior": spec.prior},
            dask="parallelized",
            output_dtypes=[daily.dtype],
        ).transpose(*daily.dims)  # fmt: skip
        drop = drop.assign_attrs(units="delta_degC")
        value = drop.sel(day=day).drop_vars("day")
        holds = judge(value).fillna(False).astype(bool)
        return recorded(value), holds
    # daily_max / daily_min by local calendar day (or over the days of a process, ``span``)
    how = "max" if condition.reduce == "daily_max" else "min"
    daily = fields.daily(var, spec.units, how, day)
    if spec.span_days > 1:
        daily = _span(daily, spec.span_days, how)
    qualifying = _consecutive(judge(daily), condition.consecutive_days)
    value = daily.sel(day=day).drop_vars("day")
    in_run = qualifying.sel(day=day).drop_vars("day")
    # With onset: step, the run starts at the first step whose own value meets the
    # threshold; otherwise the whole qualifying day holds.
    holds = in_run & judge(da) if condition.at_step else in_run
    return recorded(value), holds


def _condition_result(spec: _Spec, fields: _Fields, fast: _Pending) -> ConditionResult:
    if not spec.ok:
        return ConditionResult(spec.condition, spec.var, None, None, note=spec.note)
    return ConditionResult(
        spec.condition, spec.var, note=spec.note, lazy=lambda: fast.get(spec),
        reference=lambda: _condition_fields(spec, fields),
    )  # fmt: skip


class _Pending:
    """The fused passes of one :func:`evaluate` call, run (numpy) or built (dask) when first
    needed: the level fields on the first read of a level (:meth:`levels`); every evaluable
    condition's ``value``/``holds`` on the first read of any of them or
    :meth:`LevelResult.load` (:meth:`get`), together with the level fields if they are still
    pending, so the operational ``evaluate(...).load()`` reads the inputs once."""

    def __init__(self, plan: _Plan) -> None:
        self.plan: _Plan | None = plan
        self.programs: list[tuple[HazardResult, HazardProgram, tuple[str, ...]]] = []
        self.fields: dict[int, tuple[xr.DataArray, xr.DataArray]] | None = None

    def defer(self, programs: list) -> None:
        """Queue level programs; their results read ``level`` through :meth:`levels`."""
        self.programs += programs
        for result, _, _ in programs:
            result._pending = self

    def _take(self) -> list:
        programs, self.programs = self.programs, []
        for result, _, _ in programs:
            result._pending = None
        return programs

    def levels(self) -> None:
        if self.programs:
            self.plan.run_levels(self._take())

    def get(self, spec: _Spec) -> tuple[xr.DataArray, xr.DataArray]:
        if self.fields is None:
            self.fields = self.plan.condition_fields(self._take())
        return self.fields[id(spec)]


def _time_coords(da: xr.DataArray) -> list[str]:
    """Coordinates of ``da`` along time other than ``time`` itself (``step_start``)."""
    return [k for k, c in da.coords.items() if k != "time" and "time" in c.dims]


def _condition_meta(
    spec: _Spec, ds: xr.Dataset, what: str
) -> tuple[tuple[str, ...], dict, str | None, dict]:
    """Dimensions, coordinates, name and attributes of a condition's ``value`` or ``holds``
    as the reference xarray path (:func:`_condition_fields`) makes them."""
    c = spec.condition
    da = ds[spec.var]
    attrs = {**da.attrs, "units": spec.units}
    coords = dict(da.coords)
    name: str | None = spec.var
    if c.reduce in ("sum", "max", "min"):
        hours = c.window / pd.Timedelta("1h")
        attrs["cell_methods"] = f"time: {c.reduce} (interval: {hours:g} hours)"
        if what == "holds":
            name = None
    elif c.reduce != "point":
        # by local day: grouping drops the other coordinates along time (step_start)
        if not (what == "holds" and c.at_step):
            for k in _time_coords(da):
                coords.pop(k)
        if c.reduce == "daily_drop":
            attrs["units"] = "delta_degC"
    return da.dims, coords, name, attrs


def _drop_along_last(daily: np.ndarray, *, days: int, complete, prior) -> np.ndarray:
    """:func:`cityops.rules.fused.daily_drop` with the day axis last (for apply_ufunc)."""
    return np.moveaxis(daily_drop(np.moveaxis(daily, -1, 0), days, complete, prior), 0, -1)


def _prior_days(prior: pd.Series | None, days: pd.DatetimeIndex, n: int) -> np.ndarray:
    """Daily minima of the ``n`` local days just before ``days[0]`` (oldest first), from
    ``prior`` (indexed by local date); only the unbroken run ending the day before."""
    if prior is None or not len(days) or n < 1:
        return np.empty(0)
    index = pd.DatetimeIndex(prior.index).normalize()
    values = pd.Series(np.asarray(prior, dtype=float), index=index)
    out: list[float] = []
    for k in range(1, n + 1):
        day = days[0] - pd.Timedelta(days=k)
        if day not in values.index or not np.isfinite(values[day]):
            break
        out.insert(0, float(values[day]))
    return np.asarray(out)


def _complete_days(
    days: pd.DatetimeIndex, times: pd.DatetimeIndex, start0: pd.Timestamp, timezone: str
) -> np.ndarray:
    """Local days fully covered by the steps (a forecast starting at 08 BJT has a partial
    first day whose minimum would be too warm)."""
    begin = days.tz_localize(timezone).tz_convert("UTC").tz_localize(None)
    end = (days + pd.Timedelta("1D")).tz_localize(timezone).tz_convert("UTC").tz_localize(None)
    return np.asarray((begin >= start0) & (end <= times[-1]))


def _eval_group(group: Group, results: dict[Condition, ConditionResult]) -> xr.DataArray | None:
    """Where a group holds, or None when a required part cannot be evaluated."""
    parts = []
    for item in group.items:
        if isinstance(item, Group):
            holds, required = _eval_group(item, results), True
        else:
            holds, required = results[item].holds, item.required
        if holds is None:
            if group.mode == "all" and required:
                return None
            continue
        parts.append(holds)
    if not parts:
        return None
    out = parts[0]
    for h in parts[1:]:
        out = (out | h) if group.mode == "any" else (out & h)
    return out


def _combine(rule: LevelRule, results: list[ConditionResult]) -> xr.DataArray | None:
    """The level's criteria, or its proxy when the criteria lack inputs."""
    by_condition = {r.condition: r for r in results}
    holds = _eval_group(rule.criteria, by_condition)
    if holds is None and rule.proxy is not None:
        holds = _eval_group(rule.proxy, by_condition)
    return holds


def _plan_group(group: Group, leaves: dict[Condition, Leaf | None]):
    """:func:`_eval_group` on the kernel's terms: an expression, or None (same rules)."""
    parts = []
    for item in group.items:
        if isinstance(item, Group):
            node, required = _plan_group(item, leaves), True
        else:
            node, required = leaves[item], item.required
        if node is None:
            if group.mode == "all" and required:
                return None
            continue
        parts.append(node)
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else (group.mode, parts)


def _uses_proxy(rule: LevelRule, results: list[ConditionResult]) -> bool:
    by_condition = {r.condition: r for r in results}
    return rule.proxy is not None and _eval_group(rule.criteria, by_condition) is None


class _Plan:
    """One :func:`evaluate` call: condition specs, the fields cache and the fused programs."""

    def __init__(
        self,
        ds: xr.Dataset,
        *,
        timezone: str,
        first_step: pd.Timedelta | None,
        prior: pd.Series | None = None,
    ):
        self.ds = ds
        self.timezone = timezone
        self.first_step = first_step
        self.prior = prior
        self.fields = _Fields(ds, timezone=timezone, first_step=first_step)
        self.specs: dict[tuple[Condition, int], _Spec] = {}
        self.inputs: dict[tuple[str, str], int] = {}
        self.leaves: dict[tuple, Leaf] = {}
        self.programs: list[tuple[HazardResult, HazardProgram, tuple[str, ...]]] = []
        self.fast = _Pending(self)

    def spec(self, condition: Condition, hazard: str = "") -> _Spec:
        process = processes().get(hazard, {})
        span = 1
        if set(condition.variables) & set(process.get("variables", ())):
            span = int(process.get("span_days", 1))
        key = (condition, span)
        if key not in self.specs:
            spec = _condition_spec(
                self.ds, condition, timezone=self.timezone, first_step=self.first_step,
                span_days=span, prior=self.prior,
            )  # fmt: skip
            self.fields.want(spec)
            self.specs[key] = spec
        return self.specs[key]

    def leaf(self, spec: _Spec) -> Leaf | None:
        if not spec.ok:
            return None
        c = spec.condition
        key = (spec.var, spec.units, c.reduce, c.window, c.op, c.threshold,
               c.consecutive_days, c.at_step, spec.resolution, spec.span_days)  # fmt: skip
        if key not in self.leaves:
            index = self.inputs.setdefault((spec.var, spec.units), len(self.inputs))
            evaluable = None
            if spec.status is not None and (spec.status == UNALIGNED).any():
                evaluable = spec.status != UNALIGNED
            self.leaves[key] = Leaf(
                key=key, input=index, reduce=c.reduce, op=c.op, threshold=c.threshold,
                lo=spec.lo, window_key=c.window, evaluable=evaluable,
                day_index=spec.day_index, day_starts=spec.day_starts, complete=spec.complete,
                prior=spec.prior,
                days=c.consecutive_days, at_step=c.at_step, resolution=spec.resolution,
                span=spec.span_days,
            )  # fmt: skip
        return self.leaves[key]

    def hazard(self, rules: HazardRules) -> HazardResult:
        """The hazard's conditions (lazy) and notes; its level program is queued for
        :meth:`run`."""
        ds = self.ds
        result = HazardResult(rules=rules, level=None)
        missing_inputs = [r for r in rules.requires if r not in ds.attrs and r not in ds.data_vars]
        if missing_inputs:
            note = rules.extra.get("requires_note") or f"needs {', '.join(missing_inputs)}"
            result.notes = [f"not evaluated: {note}"]
            return result
        program = HazardProgram(rules.hazard)
        for rule in rules.levels:
            specs = [self.spec(c, rules.hazard) for c in rule.conditions]
            cond_results = [_condition_result(s, self.fields, self.fast) for s in specs]
            result.conditions[rule.level] = cond_results
            by_condition = {s.condition: self.leaf(s) for s in specs}
            expr = _plan_group(rule.criteria, by_condition)
            by_proxy = expr is None and rule.proxy is not None
            if by_proxy:
                expr = _plan_group(rule.proxy, by_condition)
            missing = [r.note for r in cond_results if r.note]
            if expr is None:
                result.notes.append(
                    f"level {rule.level} not evaluated ({'; '.join(missing) or 'no input'})"
                )
                continue
            if by_proxy:
                result.notes.append(f"level {rule.level} by proxy: {rule.proxy_note}")
            elif missing:
                result.notes.append(f"level {rule.level}: {'; '.join(missing)}")
            program.levels.append((rule.level, expr))
        evaluated = bool(program.levels)
        if evaluated and rules.season is not None:
            # Season dates are jurisdiction data (cityops.rules.seasons).
            in_season = rules.season.mask(pd.DatetimeIndex(ds["time"].values), self.timezone)
            program.season = None if in_season.all() else in_season
            result.season = program.season
            if not in_season.any():
                result.notes.append(f"outside its season ({rules.season.describe()})")
        if evaluated and rules.extra.get("note"):
            result.notes.append(str(rules.extra["note"]))
        if evaluated:
            # Missing values (NaN) in an input: windows over them count as nothing (ingest note).
            for var in sorted(rules.variables):
                if var in ds.data_vars and ds[var].attrs.get(MISSING_ATTR):
                    result.notes.append(f"{var}: {ds[var].attrs[MISSING_ATTR]}")
        if evaluated:
            # The same note can come from several levels: keep one of each.
            result.notes = list(dict.fromkeys(result.notes))
            inputs = {leaf.input for _, node in program.levels for leaf in leaves(node)}
            names = [var for (var, _), i in self.inputs.items() if i in inputs]
            dims: list[str] = []
            for var in names:
                dims += [d for d in ds[var].dims if d not in dims]
            self.programs.append((result, program, tuple(dims)))
        else:
            missing = dict.fromkeys(
                r.note for rs in result.conditions.values() for r in rs if r.note
            )
            result.notes = [f"not evaluated: {'; '.join(missing) or 'no input'}"]
        return result

    def run(self) -> None:
        """Queue the level fields of the hazards: one fused kernel per set of dimensions, run
        (numpy) or built as one dask task per space chunk (dask) on the first read of a level,
        or together with the conditions if they are asked for first (:class:`_Pending`)."""
        programs, self.programs = self.programs, []
        self.fast.defer(programs)

    def run_levels(self, items: list, conditions: dict | None = None) -> None:
        """Compute the level fields of ``items`` (``(result, program, dims)``)."""
        groups: dict[tuple[str, ...], list] = {}
        for item in items:
            groups.setdefault(item[2], []).append(item)
        for dims, group in groups.items():
            used = sorted({leaf.input for _, prog, _ in group for _, node in prog.levels
                           for leaf in leaves(node)})  # fmt: skip
            remap = {old: new for new, old in enumerate(used)}
            programs = [_remap(prog, remap) for _, prog, _ in group]
            arrays, conversions = self._inputs(used)
            levels = _apply_kernel(arrays, conversions, programs, [], [np.int8] * len(programs))
            for (result, _, _), level in zip(group, levels, strict=True):
                result.level = level.transpose(*dims).rename(f"{result.hazard}_level")

    def _inputs(self, used: list[int]) -> tuple[list[xr.DataArray], list[tuple[float, float]]]:
        """The kernel's input variables (time in one chunk) and their unit conversions."""
        keys = {i: k for k, i in self.inputs.items()}
        arrays, conversions = [], []
        for i in used:
            var, units = keys[i]
            da = self.ds[var]
            if da.chunks is not None and len(da.chunksizes.get("time", ())) > 1:
                da = da.chunk({"time": -1})
            arrays.append(da)
            spec = next(s for s in self.specs.values() if (s.var, s.units) == (var, units))
            conversions.append((spec.scale, spec.offset))
        chunked = [a for a in arrays if a.chunks is not None]
        if chunked:
            # One space chunking for all inputs (a derived variable may come finer): one
            # task per chunk of the forecast, not per chunk of the finest input.
            ref = min(chunked, key=lambda a: a.data.npartitions)
            space = {d: c for d, c in ref.chunksizes.items() if d != "time"}
            for n, a in enumerate(arrays):
                want = {d: c for d, c in space.items() if d in a.dims}
                if a.chunks is not None and any(a.chunksizes[d] != c for d, c in want.items()):
                    arrays[n] = a.chunk(want)
        return arrays, conversions

    def condition_fields(self, items: list = ()) -> dict[int, tuple[xr.DataArray, xr.DataArray]]:
        """``(value, holds)`` of every evaluable condition (by ``id`` of its spec) in one fused
        pass per set of dimensions: the numbers and metadata of :func:`_condition_fields`.
        A value is computed once for the conditions that differ only in their threshold.
        The level fields of ``items`` (pending level programs, ``(result, program, dims)``)
        are computed in the same pass (those of other dimensions by :meth:`run_levels`)."""
        groups: dict[tuple[str, ...], list[_Spec]] = {}
        for spec in self.specs.values():
            if spec.ok:
                groups.setdefault(self.ds[spec.var].dims, []).append(spec)
        rest = [item for item in items if item[2] not in groups]
        if rest:
            self.run_levels(rest)
        out: dict[int, tuple[xr.DataArray, xr.DataArray]] = {}
        for dims, specs in groups.items():
            with_levels = [item for item in items if item[2] == dims]
            leaf_of = {id(s): self.leaf(s) for s in specs}
            used = sorted({leaf.input for leaf in leaf_of.values()}
                          | {leaf.input for _, prog, _ in with_levels for _, node in prog.levels
                             for leaf in leaves(node)})  # fmt: skip
            remap = {old: new for new, old in enumerate(used)}
            programs = [_remap(prog, remap) for _, prog, _ in with_levels]
            arrays, conversions = self._inputs(used)
            outputs: list[tuple[Leaf, str]] = []
            slots: dict[tuple, int] = {}
            where: dict[int, tuple[int, int]] = {}
            renumbered: dict[int, Leaf] = {}
            for spec in specs:
                leaf = leaf_of[id(spec)]
                if id(leaf) not in renumbered:
                    renumbered[id(leaf)] = dataclasses.replace(leaf, input=remap[leaf.input])
                c = spec.condition
                value_key = ("value", spec.var, spec.units, c.reduce, spec.resolution,
                             c.window if c.reduce in ("sum", "max", "min") else None,
                             c.consecutive_days if c.reduce == "daily_drop" else None,
                             spec.span_days)  # fmt: skip
                for key, what in ((value_key, "value"), (("holds", id(leaf)), "holds")):
                    if key not in slots:
                        slots[key] = len(outputs)
                        outputs.append((renumbered[id(leaf)], what))
                where[id(spec)] = (slots[value_key], slots[("holds", id(leaf))])
            dtypes = [np.dtype(bool) if what == "holds" else
                      fused.converted_dtype(arrays[leaf.input].dtype, *conversions[leaf.input])
                      for leaf, what in outputs]  # fmt: skip
            fields = _apply_kernel(arrays, conversions, programs, outputs,
                                   [np.int8] * len(programs) + dtypes)  # fmt: skip
            for (result, _, _), level in zip(with_levels, fields, strict=False):
                result.level = level.transpose(*dims).rename(f"{result.hazard}_level")
            fields = [f.transpose(*dims) for f in fields[len(programs) :]]
            for spec in specs:
                pair = []
                for what, slot in zip(("value", "holds"), where[id(spec)], strict=True):
                    _, coords, name, attrs = _condition_meta(spec, self.ds, what)
                    data = fields[slot].variable.data
                    field_ = xr.DataArray(data, dims=dims, coords=coords, attrs=attrs)
                    field_.name = name  # not the dask array's name
                    pair.append(field_)
                out[id(spec)] = (pair[0], pair[1])
        return out


def _apply_kernel(
    arrays: list[xr.DataArray],
    conversions: list[tuple[float, float]],
    programs: list[HazardProgram],
    outputs: list[tuple[Leaf, str]],
    dtypes: list,
) -> tuple[xr.DataArray, ...]:
    """:func:`cityops.rules.fused.run_program` over DataArrays: eager on numpy input (tile
    threads), one dask task per space chunk otherwise (time must be one chunk)."""
    lazy = any(a.chunks is not None for a in arrays)
    threads = 1 if lazy else fused.THREADS

    def kernel(*values):
        data = [np.moveaxis(v, -1, 0) for v in values]
        outs = run_program(data, conversions, programs, outputs=outputs, threads=threads)
        outs = tuple(np.moveaxis(o, 0, -1) for o in outs)
        return outs if len(outs) > 1 else outs[0]

    result = xr.apply_ufunc(
        kernel,
        *arrays,
        input_core_dims=[["time"]] * len(arrays),
        output_core_dims=[["time"]] * len(dtypes),
        dask="parallelized",
        output_dtypes=dtypes,
    )
    return (result,) if len(dtypes) == 1 else tuple(result)


@functools.cache
def processes() -> dict[str, dict]:
    """Hazards judged over a weather process longer than a day (``data/processes.yaml``):
    per hazard the ``variables`` whose daily conditions span ``span_days`` days."""
    path = package_data("data", "processes.yaml")
    data = load_yaml(path)
    out = {}
    for hazard, spec in (data.get("hazards") or {}).items():
        span = spec.get("span_days") if isinstance(spec, dict) else None
        if not isinstance(span, int) or span < 1 or not spec.get("variables"):
            raise DataFileError(
                f"{path}: hazard {hazard}: needs 'variables' and an integer 'span_days' >= 1"
            )
        out[str(hazard)] = {"variables": tuple(spec["variables"]), "span_days": span}
    return out


def _remap(program: HazardProgram, remap: dict[int, int]) -> HazardProgram:
    """The program with input indices renumbered for one kernel call."""
    memo: dict[int, Leaf] = {}

    def node(n):
        if isinstance(n, Leaf):
            if id(n) not in memo:
                memo[id(n)] = dataclasses.replace(n, input=remap[n.input])
            return memo[id(n)]
        return (n[0], [node(i) for i in n[1]])

    return HazardProgram(program.hazard, [(k, node(n)) for k, n in program.levels], program.season)


def _first_step(ds: xr.Dataset, issued_ts: pd.Timestamp | None) -> pd.Timedelta | None:
    first_step = None
    times = pd.DatetimeIndex(ds["time"].values)
    if "step_start" in ds.coords and len(times):
        # Ingest records where each step starts (a single 9-12 h interval file, say).
        first_step = times[0] - pd.Timestamp(ds["step_start"].values[0])
    elif issued_ts is not None and len(times) and times[0] > issued_ts:
        # The first step runs from the issue time (the usual case for accumulations).
        first_step = times[0] - issued_ts
    if first_step is not None and first_step <= pd.Timedelta(0):
        first_step = None
    return first_step


def evaluate(
    ds: xr.Dataset,
    table: RuleTable,
    *,
    timezone: str = "Asia/Shanghai",
    hazards: list[str] | None = None,
    prior_daily_min: pd.Series | None = None,
) -> LevelResult:
    """Evaluate every hazard of a rule table on a canonical forecast.

    The level fields of all hazards are computed in one fused pass over the inputs
    (:mod:`cityops.rules.fused`) when a level is first read: eagerly for numpy input, as one
    dask task per chunk for dask input (space chunks; time is made one chunk). Each
    condition's aggregated ``value`` and ``holds`` come from one further fused pass over all
    conditions on the first read of any; :meth:`LevelResult.load` (the operational call)
    computes levels and conditions in a single pass. The per-condition xarray path stays the
    reference (:meth:`ConditionResult.reference`).

    Parameters
    ----------
    ds : xarray.Dataset
        Canonical forecast (interfaces.md §1), lazy or in memory.
    table : RuleTable
        Rules to apply (e.g. ``load_rule_table("national")``).
    timezone : str, optional
        Time zone of the local day for daily criteria (default ``Asia/Shanghai``).
    hazards : list of str, optional
        Restrict to these hazards.
    prior_daily_min : pandas.Series, optional
        Daily minimum temperature (canonical units) of local days before the data, indexed
        by local date (a daily history, :func:`cityops.rules.observed.history_daily_min`): the
        cold wave's fall from the day before a forecast that starts on a partial day.

    Returns
    -------
    LevelResult
        Per hazard the level field and the evaluated conditions; hazards that could not be
        evaluated carry the reason in ``notes``.

    Examples
    --------
    >>> from cityops.rules import evaluate, load_rule_table
    >>> result = evaluate(forecast, load_rule_table("national"))  # doctest: +SKIP
    >>> result["rainstorm"].level.max().item()  # doctest: +SKIP
    4
    """
    issued = ds.attrs.get("issued")
    issued_ts = parse_utc(issued, what="attribute 'issued'") if issued else None
    # Quantities the signals name that the forecast lacks (rain, precipitation on a frozen
    # road, ...): one definition, cityops/data/derived_variables.yaml.
    ds = add_derived(ds, {v for rules in table for v in rules.variables})
    plan = _Plan(
        ds, timezone=timezone, first_step=_first_step(ds, issued_ts), prior=prior_daily_min
    )
    out: dict[str, HazardResult] = {}
    for rules in table:
        if hazards is not None and rules.hazard not in hazards:
            continue
        out[rules.hazard] = plan.hazard(rules)
    plan.run()
    for hazard, res in out.items():
        for note in res.notes:
            log.info("%s %s: %s", table.ruleset, hazard, note)
    return LevelResult(table=table, hazards=out, issued=issued_ts)
