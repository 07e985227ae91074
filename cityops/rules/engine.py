"""The rule engine: a canonical forecast Dataset in, a level Dataset out.

For each hazard of a :class:`~cityops.rules.table.RuleTable` and each grid cell and valid time,
the level is the highest level whose criterion holds (interfaces.md §2). Works on numpy and
dask alike; nothing is computed until the caller asks.
"""

from __future__ import annotations

import logging
import operator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from cityops.ingest.canonical import MISSING_ATTR, UNUSABLE_ATTR
from cityops.rules.table import Condition, Group, HazardRules, LevelRule, RuleTable, level_names
from cityops.rules.windows import UNALIGNED, window_reduce, window_status
from cityops.timeutil import parse_utc
from cityops.units import convert_dataarray

__all__ = [
    "ConditionResult",
    "HazardResult",
    "LevelResult",
    "apply_observed",
    "evaluate",
    "evaluate_condition",
]

log = logging.getLogger("cityops")

#: How far back an observation may lie before the reference time to count.
OBSERVED_WINDOW = pd.Timedelta("24h")

_COMPARE = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


@dataclass
class ConditionResult:
    """One evaluated condition: the aggregated value and where the comparison holds."""

    condition: Condition
    variable: str | None
    value: xr.DataArray | None
    holds: xr.DataArray | None
    note: str = ""

    @property
    def evaluated(self) -> bool:
        return self.holds is not None


@dataclass
class HazardResult:
    """Evaluated hazard: level field (0-4) and per level the condition results."""

    rules: HazardRules
    level: xr.DataArray | None
    conditions: dict[int, list[ConditionResult]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: Last valid time taken from observations (see :func:`apply_observed`), if any.
    observed_until: pd.Timestamp | None = None

    @property
    def evaluated(self) -> bool:
        return self.level is not None

    @property
    def hazard(self) -> str:
        return self.rules.hazard

    def holds(self, level: int) -> xr.DataArray | None:
        """Where the criterion of ``level`` holds (bool field), or None if not evaluated."""
        rule = self.rules.level_rule(level)
        if rule is None or not self.evaluated:
            return None
        return _combine(rule, self.conditions[level])


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
        """Compute every level field and condition result in one pass (shared dask graph),
        in place; returns self. Call it once before aggregating a small (cropped) grid."""
        import dask

        slots = []
        for res in self:
            if res.evaluated:
                slots.append((res, "level", None))
            for crs in (c for cl in res.conditions.values() for c in cl):
                if crs.evaluated:
                    slots.append((crs, "value", None))
                    slots.append((crs, "holds", None))
        arrays = [getattr(obj, attr) for obj, attr, _ in slots]
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
                        "units": crs.condition.units,
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


_LEVELS = xr.DataArray(np.arange(1, 5, dtype="int8"), dims="level", attrs={
    "long_name": "signal level", "flag_values": np.arange(1, 5, dtype="int8"),
    "flag_meanings": "blue yellow orange red"})  # fmt: skip


def onset_per_level(level: xr.DataArray, hazard: str = "") -> xr.DataArray:
    """First valid time at which each level (1-4) is reached, per cell (NaT when never)."""
    reached = level >= _LEVELS.assign_coords(level=_LEVELS)
    first = reached.argmax("time")
    onset = level["time"].isel(time=first).where(reached.any("time"))
    onset = onset.reset_coords(drop=True)
    onset.attrs = {"long_name": f"onset of each {hazard} signal level (valid time, UTC)"}
    return onset.rename(f"{hazard}_onset")


def level_probability(level: xr.DataArray, hazard: str = "") -> xr.DataArray:
    """Share of ensemble members at or above each level (1-4), per cell and valid time."""
    prob = (level >= _LEVELS.assign_coords(level=_LEVELS)).mean("member").astype("float32")
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


def _unusable(ds: xr.Dataset) -> dict[str, str]:
    """Variables ingest found but could not use, and why (``UNUSABLE_ATTR``)."""
    out = {}
    for item in str(ds.attrs.get(UNUSABLE_ATTR, "")).split(" | "):
        name, sep, why = item.partition(": ")
        if sep:
            out[name] = why
    return out


def evaluate_condition(
    ds: xr.Dataset,
    condition: Condition,
    *,
    timezone: str = "Asia/Shanghai",
    first_step: pd.Timedelta | None = None,
) -> ConditionResult:
    """Evaluate one condition on a canonical dataset.

    Parameters
    ----------
    ds : xarray.Dataset
        Canonical forecast (interfaces.md §1).
    condition : Condition
        The condition to evaluate.
    timezone : str, optional
        Time zone of the local calendar day for daily reductions (default Beijing time).
    first_step : pandas.Timedelta, optional
        Length of the first step (default: that of the second step).

    Returns
    -------
    ConditionResult
        ``holds`` is None (with a note) when no variable is present or no window can be
        evaluated at this step length.
    """
    var = next((v for v in condition.variables if v in ds.data_vars), None)
    if var is None:
        note = f"missing variable {'/'.join(condition.variables)}"
        unusable = _unusable(ds)
        why = [unusable[v] for v in condition.variables if v in unusable]
        if why:
            note = f"{'/'.join(condition.variables)} unusable ({'; '.join(why)})"
        return ConditionResult(condition, None, None, None, note=note)
    da = convert_dataarray(ds[var], condition.units, source=ds.encoding.get("source", ""))
    compare = _COMPARE[condition.op]
    evaluable = None
    note = ""
    if condition.reduce == "point":
        value = da
    elif condition.reduce in ("sum", "max", "min"):
        status = window_status(da["time"], condition.window, first_step=first_step)
        value = window_reduce(da, condition.window, condition.reduce, first_step=first_step)
        evaluable = xr.DataArray(status != UNALIGNED, dims="time", coords={"time": da["time"]})
        if not bool(evaluable.any()):
            hours = condition.window / pd.Timedelta("1h")
            return ConditionResult(
                condition,
                var,
                None,
                None,
                note=f"{var}: steps too coarse for a {hours:g} h window",
            )
        if not bool(evaluable.all()):
            note = f"{var}: {int((~evaluable).sum())} valid times too coarse for the window"
    elif condition.reduce == "daily_drop":
        return _daily_drop(da, condition, var, timezone=timezone, first_step=first_step)
    else:  # daily_max / daily_min by local calendar day
        day = _local_day(da["time"], timezone)
        grouped = da.assign_coords(day=day).groupby("day")
        daily = grouped.max() if condition.reduce == "daily_max" else grouped.min()
        try:
            qualifying = _consecutive(
                compare(daily, condition.threshold), condition.consecutive_days
            )
        except ValueError as err:
            return ConditionResult(condition, var, None, None, note=f"{var}: {err}")
        value = daily.sel(day=day).drop_vars("day")
        in_run = qualifying.sel(day=day).drop_vars("day")
        # With onset: step, the run starts at the first step whose own value meets the
        # threshold; otherwise the whole qualifying day holds.
        holds = in_run & compare(da, condition.threshold) if condition.at_step else in_run
        return ConditionResult(condition, var, value, holds, note)
    holds = compare(value, condition.threshold)
    if evaluable is not None:
        holds = holds & evaluable
    return ConditionResult(condition, var, value, holds, note)


def _complete_days(
    days: pd.DatetimeIndex, times: pd.DatetimeIndex, start0: pd.Timestamp, timezone: str
) -> np.ndarray:
    """Local days fully covered by the steps (a forecast starting at 08 BJT has a partial
    first day whose minimum would be too warm)."""
    begin = days.tz_localize(timezone).tz_convert("UTC").tz_localize(None)
    end = (days + pd.Timedelta("1D")).tz_localize(timezone).tz_convert("UTC").tz_localize(None)
    return np.asarray((begin >= start0) & (end <= times[-1]))


def _daily_drop(
    da: xr.DataArray,
    condition: Condition,
    var: str,
    *,
    timezone: str,
    first_step: pd.Timedelta | None,
) -> ConditionResult:
    """Fall of the daily minimum over ``consecutive_days`` days (cold wave), on complete
    local days only; the value at each step is that of its day."""
    times = pd.DatetimeIndex(da["time"].values)
    start0 = times[0] - (first_step if first_step is not None else (
        times[1] - times[0] if len(times) > 1 else pd.Timedelta("1h")))  # fmt: skip
    day = _local_day(da["time"], timezone)
    daily = da.assign_coords(day=day).groupby("day").min()
    complete = _complete_days(pd.DatetimeIndex(daily["day"].values), times, start0, timezone)
    n = condition.consecutive_days
    if complete.sum() < 2:
        return ConditionResult(
            condition, var, None, None,
            note=f"{var}: cold-wave drop needs 2 complete local days "
            "(the day before the fall from the forecast or observations)",
        )  # fmt: skip
    daily = daily.where(xr.DataArray(complete, dims="day", coords={"day": daily["day"]}))
    # A fall "within 48 h" is the largest fall from any of the previous n days (a warm day
    # ahead of the front counts), not only from the day n days before.
    drop = daily.shift(day=1) - daily
    for k in range(2, n + 1):
        drop = np.fmax(drop, daily.shift(day=k) - daily)
    drop = drop.assign_attrs(units="delta_degC")
    value = drop.sel(day=day).drop_vars("day")
    holds = _COMPARE[condition.op](value, condition.threshold).fillna(False).astype(bool)
    return ConditionResult(condition, var, value, holds, "")


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


def _uses_proxy(rule: LevelRule, results: list[ConditionResult]) -> bool:
    by_condition = {r.condition: r for r in results}
    return rule.proxy is not None and _eval_group(rule.criteria, by_condition) is None


def evaluate_hazard(
    ds: xr.Dataset,
    rules: HazardRules,
    *,
    timezone: str = "Asia/Shanghai",
    first_step: pd.Timedelta | None = None,
) -> HazardResult:
    """Level field of one hazard: the highest level whose criterion holds."""
    result = HazardResult(rules=rules, level=None)
    missing_inputs = [r for r in rules.requires if r not in ds.attrs and r not in ds.data_vars]
    if missing_inputs:
        note = rules.extra.get("requires_note") or f"needs {', '.join(missing_inputs)}"
        result.notes = [f"not evaluated: {note}"]
        return result
    level = None
    for rule in rules.levels:
        cond_results = [
            evaluate_condition(ds, c, timezone=timezone, first_step=first_step)
            for c in rule.conditions
        ]
        result.conditions[rule.level] = cond_results
        holds = _combine(rule, cond_results)
        missing = [r.note for r in cond_results if r.note]
        if holds is None:
            result.notes.append(
                f"level {rule.level} not evaluated ({'; '.join(missing) or 'no input'})"
            )
            continue
        if _uses_proxy(rule, cond_results):
            result.notes.append(f"level {rule.level} by proxy: {rule.proxy_note}")
        elif missing:
            result.notes.append(f"level {rule.level}: {'; '.join(missing)}")
        contrib = xr.where(holds, np.int8(rule.level), np.int8(0))
        level = contrib if level is None else np.maximum(level, contrib)
    if level is not None and rules.season_months:
        months = pd.DatetimeIndex(ds["time"].values).tz_localize("UTC").tz_convert(timezone).month
        in_season = np.isin(months, rules.season_months)
        level = level.where(xr.DataArray(in_season, dims="time", coords={"time": ds["time"]}), 0)
        if not in_season.any():
            result.notes.append(
                f"outside its season (months {', '.join(map(str, rules.season_months))})"
            )
    if level is not None and rules.extra.get("note"):
        result.notes.append(str(rules.extra["note"]))
    if level is not None:
        # Missing values (NaN) in an input: windows over them count as nothing (ingest note).
        for var in sorted(rules.variables):
            if var in ds.data_vars and ds[var].attrs.get(MISSING_ATTR):
                result.notes.append(f"{var}: {ds[var].attrs[MISSING_ATTR]}")
    if level is not None:
        result.level = level.astype("int8").rename(f"{rules.hazard}_level")
        # The same note can come from several levels: keep one of each.
        result.notes = list(dict.fromkeys(result.notes))
    else:
        missing = dict.fromkeys(r.note for rs in result.conditions.values() for r in rs if r.note)
        result.notes = [f"not evaluated: {'; '.join(missing) or 'no input'}"]
    return result


def evaluate(
    ds: xr.Dataset,
    table: RuleTable,
    *,
    timezone: str = "Asia/Shanghai",
    hazards: list[str] | None = None,
) -> LevelResult:
    """Evaluate every hazard of a rule table on a canonical forecast.

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
    out: dict[str, HazardResult] = {}
    for rules in table:
        if hazards is not None and rules.hazard not in hazards:
            continue
        out[rules.hazard] = evaluate_hazard(ds, rules, timezone=timezone, first_step=first_step)
        for note in out[rules.hazard].notes:
            log.info("%s %s: %s", table.ruleset, rules.hazard, note)
    return LevelResult(table=table, hazards=out, issued=issued_ts)


def apply_observed(
    forecast: LevelResult,
    observed: LevelResult,
    *,
    now: pd.Timestamp,
    window: pd.Timedelta = OBSERVED_WINDOW,
) -> LevelResult:
    """Levels already reached and persisting: "or already reached and likely to continue".

    For each hazard evaluated on both, the observed level at the latest observation within
    ``window`` before the reference time ``now`` (its own windows: e.g. the 3 h sum ending
    then) is put before the forecast's valid times. Observations on another grid are matched to
    the forecast grid by nearest neighbour. Modifies and returns ``forecast``.
    """
    for hazard, res in forecast.hazards.items():
        obs = observed.hazards.get(hazard)
        if not res.evaluated or obs is None or not obs.evaluated:
            continue
        times = pd.DatetimeIndex(obs.level["time"].values)
        recent = (times <= now) & (times > now - window)
        if not recent.any():
            res.notes.append("observations: none in the last window before the reference time")
            continue
        lv = obs.level.isel(time=np.flatnonzero(recent))
        lv = lv.sel(lat=res.level["lat"], lon=res.level["lon"], method="nearest")
        lv = lv.assign_coords(lat=res.level["lat"], lon=res.level["lon"])
        if "member" in lv.dims:
            lv = lv.max("member")
        # What persists is the level still reached in the window ending at the latest
        # observation; it counts at that time ("an observed exceedance in the last window
        # counts at the reference time"), not the earlier, higher levels.
        lv = lv.isel(time=[-1]).astype("int8")
        before = pd.DatetimeIndex(res.level["time"].values)[0]
        lv = lv.isel(time=np.flatnonzero(pd.DatetimeIndex(lv["time"].values) < before))
        if lv.sizes["time"] == 0:
            continue
        if "member" in res.level.dims:
            lv = lv.expand_dims(member=res.level["member"]).transpose(*res.level.dims)
        keep = ["time", "lat", "lon", "member"]
        lv = lv.drop_vars([c for c in lv.coords if c not in keep])
        fc = res.level.drop_vars([c for c in res.level.coords if c not in keep])
        res.level = xr.concat([lv, fc], dim="time").rename(res.level.name)
        res.observed_until = pd.Timestamp(lv["time"].values[-1])
        if int(lv.max()) >= 1:
            res.notes.append(
                f"observed level {int(lv.max())} at the reference time counts (already reached "
                "and likely to continue)"
            )
    return forecast
