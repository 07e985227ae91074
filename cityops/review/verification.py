"""Event-based verification of the warnings issued over an event (interfaces.md §6).

A *case* is one unit × hazard × review window: one row of the observed-levels table
(:mod:`cityops.review.observations`). :func:`verify` sets, per case, the highest level warned,
the outcome (hit, miss, false alarm, correct negative), the level error and the lead time;
:func:`scores_table` and :func:`kpis` count the outcomes and compute the scores with the
``scores`` library; :func:`grid_scores` does the same cell by cell on level fields.

Vocabulary (spec/warning-signals.md, "Verification vocabulary"): POD 命中率 = H/(H+M);
FAR = FA/(H+FA), the false-alarm *ratio* — in Chinese practice 空报率 (not the false-alarm rate
POFD); 漏报率 = M/(H+M) = 1 − POD; CSI (TS) = H/(H+M+FA); ETS = (H−Hr)/(H+M+FA−Hr) with
Hr = (H+FA)(H+M)/N; frequency bias = (H+FA)/(H+M); lead time 预警提前量 = observed onset −
issue time of the first warning at or above the observed level.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from cityops.errors import DataFileError, InputError
from cityops.resources import load_yaml, package_data
from cityops.rules.table import level_names

__all__ = [
    "CASE_COLUMNS",
    "EXTRA_COLUMNS",
    "KPI_DESCRIPTIONS",
    "OUTCOMES",
    "SCORE_COLUMNS",
    "LeadTarget",
    "LeadTargets",
    "grid_scores",
    "kpis",
    "load_lead_targets",
    "scores_table",
    "verify",
]

#: Columns of ``verification.csv`` in contract order (interfaces.md §6).
CASE_COLUMNS = [
    "town_code",
    "hazard",
    "window_start_utc",
    "window_end_utc",
    "warned_level",
    "observed_level",
    "outcome",
    "level_error",
    "first_warning_utc",
    "observed_onset_utc",
    "lead_time_min",
]
#: Columns that follow :data:`CASE_COLUMNS`.
EXTRA_COLUMNS = [
    "lead_target",
    "lead_met",
    "warned_area_fraction",
    "observed_area_fraction",
    "over_warned_area_fraction",
    "evaluated",
    "note",
    "town_name",
    "lead_target_min",
    "late_warning_utc",
]
OUTCOMES = ("hit", "miss", "false_alarm", "correct_negative")
_WARNED = ("hit", "false_alarm")
_OCCURRED = ("hit", "miss")

#: Columns the observed-levels table must have.
OBSERVED_REQUIRED = (
    "town_code",
    "hazard",
    "window_start_utc",
    "window_end_utc",
    "observed_level",
    "observed_onset_utc",
    "evaluated",
)
#: Columns the warnings table must have (:data:`cityops.review.warnings.WARNING_COLUMNS`).
WARNINGS_REQUIRED = ("town_code", "hazard", "level", "issued_utc", "onset_utc")

#: Columns of :func:`scores_table` (after the grouping columns).
SCORE_COLUMNS = [
    "cases",
    "not_evaluated",
    "hits",
    "misses",
    "false_alarms",
    "correct_negatives",
    "pod",
    "far",
    "csi",
    "ets",
    "frequency_bias",
    "miss_rate",
    "false_alarm_ratio_zh",
    "median_lead_time_min",
    "lead_met_fraction",
    "warned_after_onset",
]
_COUNTS = ("cases", "not_evaluated", "hits", "misses", "false_alarms", "correct_negatives")

#: What each figure of :func:`kpis` means (for reports).
KPI_DESCRIPTIONS = {
    "cases": "evaluated cases (unit × hazard × window) 评估个例数",
    "not_evaluated": "cases whose observation could not be evaluated 未评估个例数",
    "hits": "warned and observed 命中",
    "misses": "observed, not warned 漏报",
    "false_alarms": "warned, not observed 空报",
    "correct_negatives": "neither warned nor observed 正确否定",
    "pod": "probability of detection H/(H+M) 命中率",
    "far": "false alarm ratio FA/(H+FA)",
    "csi": "critical success index (threat score TS) H/(H+M+FA) 临界成功指数",
    "ets": "equitable threat score (H−Hr)/(H+M+FA−Hr), Hr=(H+FA)(H+M)/N 公平技巧评分",
    "frequency_bias": "frequency bias (H+FA)/(H+M) 频率偏差",
    "miss_rate": "漏报率 M/(H+M) = 1 − POD",
    "false_alarm_ratio_zh": "空报率 FA/(H+FA): the same as FAR (the false-alarm ratio, not POFD)",
    "median_lead_time_min": "median lead time of hits, minutes 预警提前量中位数",
    "lead_met_fraction": "share of cases with a lead time that met their target",
    "warned_after_onset": "misses warned only after the observed onset (late warnings: not hits)",
}

_MINUTE = pd.Timedelta(minutes=1)


# --------------------------------------------------------------------------- lead targets
@dataclass(frozen=True)
class LeadTarget:
    """One lead-time target of the plan (``cityops/data/lead_targets.yaml``)."""

    name: str
    name_zh: str
    name_en: str
    min_lead_min: float
    max_lead_min: float | None
    source: str


@dataclass(frozen=True)
class LeadTargets:
    """The lead-time targets and which hazards they apply to."""

    targets: dict[str, LeadTarget]
    #: hazard → target name.
    by_hazard: dict[str, str]
    #: Hazards measured against the convective target only when the case is convective.
    convective_when_flagged: frozenset[str]
    default: str
    #: jurisdiction name → {plan target → the jurisdiction's own target}.
    jurisdictions: dict[str, dict[str, str]] = field(default_factory=dict)
    source: str = ""

    def target_for(
        self, hazard: str, *, convective: bool = False, jurisdiction: str | None = None
    ) -> LeadTarget:
        """The target a case of ``hazard`` is measured against.

        Parameters
        ----------
        hazard : str
        convective : bool, optional
            The event was convective (short-duration heavy rain, thunderstorm gale).
        jurisdiction : str, optional
            Jurisdiction name; its own targets replace the plan's (e.g. Kangbashi 15–20 min
            for sudden events).
        """
        if convective and hazard in self.convective_when_flagged:
            name = "convective"
        else:
            name = self.by_hazard.get(hazard, self.default)
        name = self.jurisdictions.get(str(jurisdiction), {}).get(name, name)
        return self.targets[name]


def _parse_lead_targets(data: Mapping, where: str) -> LeadTargets:
    def fail(message: str) -> DataFileError:
        return DataFileError(f"{where}: {message}")

    raw = data.get("targets")
    if not isinstance(raw, Mapping) or not raw:
        raise fail("missing 'targets' mapping")
    targets = {}
    for name, spec in raw.items():
        if not isinstance(spec, Mapping):
            raise fail(f"targets.{name}: expected a mapping")
        try:
            low = float(spec["min_lead_min"])
            high = None if spec.get("max_lead_min") is None else float(spec["max_lead_min"])
        except (KeyError, TypeError, ValueError):
            raise fail(f"targets.{name}: min_lead_min must be a number of minutes") from None
        if low < 0 or (high is not None and high < low):
            raise fail(f"targets.{name}: expected 0 <= min_lead_min <= max_lead_min")
        if not spec.get("source"):
            raise fail(f"targets.{name}: 'source' (the plan's wording and line) is required")
        targets[str(name)] = LeadTarget(
            str(name),
            str(spec.get("name_zh", name)),
            str(spec.get("name_en", name)),
            low,
            high,
            str(spec["source"]),
        )
    hazards = data.get("hazards") or {}
    default = str(hazards.get("default", "alert"))
    flagged = frozenset(map(str, hazards.get("convective_when_flagged", ())))
    by_hazard = {}
    for name, members in hazards.items():
        if name in ("default", "convective_when_flagged"):
            continue
        if name not in targets:
            raise fail(f"hazards.{name}: no such target (expected one of {', '.join(targets)})")
        for hazard in members or ():
            by_hazard[str(hazard)] = str(name)
    if default not in targets:
        raise fail(f"hazards.default: no such target {default!r}")
    if flagged and "convective" not in targets:
        raise fail("hazards.convective_when_flagged needs a 'convective' target")
    juris = {}
    for jname, mapping in (data.get("jurisdictions") or {}).items():
        for plan, own in (mapping or {}).items():
            if plan not in targets or own not in targets:
                raise fail(f"jurisdictions.{jname}.{plan}: unknown target {own!r}")
        juris[str(jname)] = {str(k): str(v) for k, v in (mapping or {}).items()}
    return LeadTargets(targets, by_hazard, flagged, default, juris, str(data.get("source", "")))


@cache
def _default_lead_targets() -> LeadTargets:
    path = package_data("data", "lead_targets.yaml")
    return _parse_lead_targets(load_yaml(path), str(path))


def load_lead_targets(source: str | Path | Mapping | LeadTargets | None = None) -> LeadTargets:
    """The lead-time targets: the shipped table, a YAML file or an already-read mapping.

    Raises
    ------
    DataFileError
        The table is malformed (one line naming the file and the entry).
    """
    if source is None:
        return _default_lead_targets()
    if isinstance(source, LeadTargets):
        return source
    if isinstance(source, Mapping):
        return _parse_lead_targets(source, "lead targets")
    return _parse_lead_targets(load_yaml(source), str(source))


# --------------------------------------------------------------------------- input checks
def _utc(series: pd.Series, *, what: str) -> pd.Series:
    """Naive UTC datetime64[ns] from Timestamps, datetime64 or ISO strings (empty = NaT)."""
    if pd.api.types.is_datetime64_any_dtype(series):
        out = series
        if getattr(series.dt, "tz", None) is not None:
            out = series.dt.tz_convert("UTC").dt.tz_localize(None)
        return out.astype("datetime64[ns]")
    values = series.astype(object).where(series.notna(), None)
    values = values.map(lambda v: None if isinstance(v, str) and not v.strip() else v)
    try:
        out = pd.to_datetime(values, utc=True, format="ISO8601")
    except (ValueError, TypeError) as err:
        raise InputError(f"{what}: cannot read the times ({err}); expected ISO 8601") from None
    return out.dt.tz_localize(None).astype("datetime64[ns]")


def _bools(series: pd.Series) -> pd.Series:
    def one(v) -> bool:
        if isinstance(v, bool | np.bool_):
            return bool(v)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return False
        return str(v).strip().lower() in ("true", "1", "yes", "t")

    return series.map(one).astype(bool)


def _require(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(
            f"{what}: column {missing[0]!r} is missing (expected {', '.join(columns)})"
        )


def _observed_frame(observed: pd.DataFrame) -> pd.DataFrame:
    what = "observed levels"
    _require(observed, OBSERVED_REQUIRED, what)
    obs = observed.reset_index(drop=True).copy()
    obs["town_code"] = obs["town_code"].astype(str)
    obs["hazard"] = obs["hazard"].astype(str)
    for col in ("window_start_utc", "window_end_utc", "observed_onset_utc"):
        obs[col] = _utc(obs[col], what=f"{what}: column {col!r}")
    if obs[["window_start_utc", "window_end_utc"]].isna().any().any():
        raise InputError(f"{what}: column 'window_start_utc'/'window_end_utc' has empty times")
    level = pd.to_numeric(obs["observed_level"], errors="coerce")
    bad = level.notna() & ~level.isin(list(level_names()))
    if bad.any():
        raise InputError(
            f"{what}: column 'observed_level': {observed['observed_level'][bad].iloc[0]!r} "
            "is not a level (expected an integer 0-4)"
        )
    obs["observed_level"] = level.astype("Int64")
    claimed = _bools(obs["evaluated"])
    obs["evaluated"] = claimed & obs["observed_level"].notna()
    obs["observed_area_fraction"] = pd.to_numeric(
        obs.get("observed_area_fraction", pd.Series(np.nan, index=obs.index)), errors="coerce"
    ).astype("float64")
    obs["note"] = obs.get("note", pd.Series("", index=obs.index)).fillna("").astype(str)
    unlevelled = claimed & ~obs["evaluated"]
    obs.loc[unlevelled, "note"] = obs.loc[unlevelled, "note"].map(
        lambda n: "; ".join(filter(None, [n, "observed level missing: not evaluated"]))
    )
    obs["town_name"] = obs.get("town_name", pd.Series("", index=obs.index)).fillna("").astype(str)
    obs["convective"] = (
        _bools(obs["convective"]) if "convective" in obs.columns else pd.Series(False, obs.index)
    )
    return obs


def _warnings_frame(warnings: pd.DataFrame) -> pd.DataFrame:
    what = "warnings"
    _require(warnings, WARNINGS_REQUIRED, what)
    w = pd.DataFrame(
        {
            "town_code": warnings["town_code"].astype(str),
            "hazard": warnings["hazard"].astype(str),
            "level": pd.to_numeric(warnings["level"], errors="coerce"),
            "issued_utc": _utc(warnings["issued_utc"], what=f"{what}: column 'issued_utc'"),
            "onset_utc": _utc(warnings["onset_utc"], what=f"{what}: column 'onset_utc'"),
            "expires_utc": _utc(
                warnings.get("expires_utc", pd.Series(pd.NaT, index=warnings.index)),
                what=f"{what}: column 'expires_utc'",
            ),
            "area_fraction": pd.to_numeric(
                warnings.get("area_fraction", pd.Series(np.nan, index=warnings.index)),
                errors="coerce",
            ),
        }
    )
    if w["issued_utc"].isna().any():
        raise InputError(f"{what}: column 'issued_utc' has empty times")
    w["onset_utc"] = w["onset_utc"].fillna(w["issued_utc"])
    return w[w["level"] >= 1].reset_index(drop=True)


# --------------------------------------------------------------------------- cases
def _belonging(obs: pd.DataFrame, w: pd.DataFrame) -> pd.DataFrame:
    """(case, warning) pairs where the warning belongs to the case.

    Issued before the window end (strictly), and its valid period ``[onset, expires]`` (the
    onset alone when expires is unknown) is not empty and meets ``[start, end)``.
    """
    cases = obs[
        ["town_code", "hazard", "window_start_utc", "window_end_utc", "observed_level"]
    ].reset_index(names="_case")
    pairs = cases.merge(w, on=["town_code", "hazard"], how="inner")
    end = pairs["expires_utc"].fillna(pairs["onset_utc"])
    keep = (
        (pairs["issued_utc"] < pairs["window_end_utc"])
        & (pairs["onset_utc"] < pairs["window_end_utc"])
        & (end >= pairs["window_start_utc"])
        & (end >= pairs["onset_utc"])
    )
    return pairs[keep]


def verify(
    warnings: pd.DataFrame,
    observed: pd.DataFrame,
    *,
    plan_tiers: str | Path | Mapping | LeadTargets | None = None,
    jurisdiction=None,
    threshold_level: int = 1,
    convective: Iterable[str] = (),
) -> pd.DataFrame:
    """Verify the warnings against the observed levels, case by case.

    Parameters
    ----------
    warnings : pandas.DataFrame
        Warnings issued (:mod:`cityops.review.warnings`): at least ``town_code, hazard, level,
        issued_utc, onset_utc``; ``expires_utc`` and ``area_fraction`` when known.
    observed : pandas.DataFrame
        Observed levels (:mod:`cityops.review.observations`): one row per case, with
        ``town_code, hazard, window_start_utc, window_end_utc, observed_level,
        observed_onset_utc, evaluated`` and optionally ``observed_area_fraction, note,
        town_name`` and ``convective`` (bool: the event was convective).
    plan_tiers : path, mapping or LeadTargets, optional
        Lead-time targets (default ``cityops/data/lead_targets.yaml``).
    jurisdiction : str or Jurisdiction, optional
        Its own targets replace the plan's (``kangbashi``: sudden events 15–20 min). Default:
        ``observed.attrs["jurisdiction"]`` when the observed table carries it.
    threshold_level : int, optional
        A case is warned / observed when its level reaches this (default 1, any signal).
    convective : iterable of str, optional
        Hazards that were convective in this event throughout (e.g. ``{"rainstorm", "gale"}``
        for a thunderstorm outbreak), in addition to the observed table's ``convective``.

    Returns
    -------
    pandas.DataFrame
        One row per row of ``observed``, in its order: :data:`CASE_COLUMNS` then
        :data:`EXTRA_COLUMNS`. Times are naive UTC Timestamps.

    Notes
    -----
    - A warning belongs to a case when it was issued before the window end (issued exactly
      at the end: not counted) and its valid period ``[onset, expires]`` — the onset alone when
      ``expires`` is unknown — meets the window ``[start, end)`` (onset exactly at the start:
      counted). ``warned_level`` is the highest level of the warnings that belong.
    - ``outcome`` compares ``warned_level`` and ``observed_level`` with ``threshold_level``;
      it is empty for a case whose observation is not evaluated.
    - ``level_error`` = warned − observed (orange warned, red observed: −1, still a hit).
    - ``first_warning_utc``: the issue time of the first warning at or above the observed
      level (when an event was observed; otherwise of the first warning at any level), and
      ``lead_time_min`` = observed onset − that time, in minutes; negative when the warning
      came after the onset (kept, and said in ``note``). NaN without such a warning or onset
      — in particular when every warning was below the observed level (said in ``note``).
    - ``lead_target`` names the target of ``plan_tiers`` the case is measured against,
      ``lead_target_min`` its minimum lead and ``lead_met`` whether the lead time reached it
      (NA without a lead time).
    - ``warned_area_fraction`` is the largest area share among the warnings at the warned
      level (0 when nothing was warned, NaN when the warnings do not say);
      ``over_warned_area_fraction`` = max(0, warned − observed share), NaN when either is
      unknown.
    """
    obs = _observed_frame(observed)
    w = _warnings_frame(warnings)
    targets = load_lead_targets(plan_tiers)
    if jurisdiction is None:
        jurisdiction = observed.attrs.get("jurisdiction")  # set by observed_levels()
    juris_name = getattr(jurisdiction, "name", jurisdiction)
    convective = set(convective)
    n = len(obs)

    pairs = _belonging(obs, w)
    # A warning issued after the observed onset did not warn anybody of it: it is late, not
    # a hit with a negative lead (the case counts as a miss unless an earlier one warned).
    onset_of = pairs["_case"].map(obs["observed_onset_utc"])
    late_mask = (pairs["issued_utc"] > onset_of).fillna(False).to_numpy(bool)
    late_first = pairs[late_mask].groupby("_case")["issued_utc"].min()
    late_warning = late_first.reindex(range(n)).astype("datetime64[ns]")
    pairs = pairs[~late_mask]
    warned = pairs.groupby("_case")["level"].max()
    warned_level = warned.reindex(range(n), fill_value=0).astype("int64")

    need = pairs["observed_level"].fillna(0).astype("int64").clip(lower=1)
    first = pairs[pairs["level"] >= need].groupby("_case")["issued_utc"].min()
    first_warning = first.reindex(range(n)).astype("datetime64[ns]")

    at_top = pairs[pairs["level"] == pairs["_case"].map(warned)]
    area = at_top.groupby("_case")["area_fraction"].max()  # NaN when all are NaN
    warned_area = area.reindex(range(n)).astype("float64")
    warned_area[warned_level == 0] = 0.0

    evaluated = obs["evaluated"].to_numpy(bool)
    obs_level = obs["observed_level"]
    is_warned = warned_level.to_numpy() >= threshold_level
    occurred = obs_level.fillna(0).to_numpy(int) >= threshold_level
    outcome = np.select(
        [is_warned & occurred, occurred, is_warned],
        ["hit", "miss", "false_alarm"],
        "correct_negative",
    ).astype(object)
    outcome[~evaluated] = ""

    level_error = (warned_level.astype("Int64") - obs_level).where(evaluated, pd.NA)
    lead = (obs["observed_onset_utc"] - first_warning) / _MINUTE
    lead = lead.where(evaluated & (obs_level.fillna(0) >= 1).to_numpy(bool)).astype("float64")

    chosen = [
        targets.target_for(
            hz,
            convective=bool(flag) or hz in convective,
            jurisdiction=juris_name,
        )
        for hz, flag in zip(obs["hazard"], obs["convective"], strict=True)
    ]
    target_min = pd.Series([t.min_lead_min for t in chosen], dtype="float64")
    lead_met = pd.Series(
        [pd.NA if math.isnan(x) else bool(x >= t) for x, t in zip(lead, target_min, strict=True)],
        dtype="boolean",
    )

    obs_area = obs["observed_area_fraction"]
    over = (warned_area - obs_area).clip(lower=0)  # NaN when either is NaN

    names = level_names()
    notes = []
    for i in range(n):
        parts = [obs["note"].iat[i]] if obs["note"].iat[i] else []
        if evaluated[i]:
            ol, wl = int(obs_level.iat[i]), int(warned_level.iat[i])
            if ol >= 1 and 1 <= wl < ol:
                parts.append(
                    f"no warning at the observed level ({names[ol]['name']}); highest warned "
                    f"{names[wl]['name']}"
                )
            if ol >= 1 and pd.isna(obs["observed_onset_utc"].iat[i]):
                parts.append("observed onset unknown: no lead time")
            if pd.notna(late_warning.iat[i]) and pd.notna(obs["observed_onset_utc"].iat[i]):
                after = (late_warning.iat[i] - obs["observed_onset_utc"].iat[i]) / _MINUTE
                parts.append(
                    f"a warning issued {after:.0f} min after the observed onset counts as late, "
                    "not as a warning"
                )
        notes.append("; ".join(parts))

    out = pd.DataFrame(
        {
            "town_code": obs["town_code"],
            "hazard": obs["hazard"],
            "window_start_utc": obs["window_start_utc"],
            "window_end_utc": obs["window_end_utc"],
            "warned_level": warned_level,
            "observed_level": obs_level,
            "outcome": pd.Series(outcome, dtype=object),
            "level_error": level_error.astype("Int64"),
            "first_warning_utc": first_warning,
            "observed_onset_utc": obs["observed_onset_utc"],
            "lead_time_min": lead,
            "lead_target": [t.name for t in chosen],
            "lead_met": lead_met,
            "warned_area_fraction": warned_area,
            "observed_area_fraction": obs_area,
            "over_warned_area_fraction": over,
            "evaluated": pd.Series(evaluated, dtype=bool),
            "note": notes,
            "town_name": obs["town_name"],
            "lead_target_min": target_min,
            "late_warning_utc": late_warning,
        }
    )
    return out[CASE_COLUMNS + EXTRA_COLUMNS]


# --------------------------------------------------------------------------- scores
def _contingency(
    fcst_events: xr.DataArray,
    obs_events: xr.DataArray,
    *,
    reduce_dims=None,
    preserve_dims=None,
) -> xr.Dataset:
    """Counts and scores of binary events (1/0, NaN = no data) with ``scores``; NaN where a
    score is undefined (no event observed, no warning, no case), never a division warning."""
    from scores.categorical import BinaryContingencyManager

    table = BinaryContingencyManager(fcst_events, obs_events).transform(
        reduce_dims=reduce_dims, preserve_dims=preserve_dims
    )
    counts = table.get_counts()
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = {
            "pod": table.probability_of_detection(),
            "far": table.false_alarm_ratio(),
            "csi": table.critical_success_index(),
            "ets": table.equitable_threat_score(),
            "frequency_bias": table.frequency_bias(),
        }
        scores = {k: v.where(np.isfinite(v)) for k, v in scores.items()}
    ds = xr.Dataset(
        {
            "hits": counts["tp_count"],
            "misses": counts["fn_count"],
            "false_alarms": counts["fp_count"],
            "correct_negatives": counts["tn_count"],
            **scores,
            "miss_rate": 1 - scores["pod"],
            "false_alarm_ratio_zh": scores["far"],
        }
    )
    for name, var in ds.items():
        var.attrs["long_name"] = KPI_DESCRIPTIONS.get(str(name), str(name))
    return ds


def _group_scores(cases: pd.DataFrame) -> dict:
    evaluated = cases["evaluated"].astype(bool) & cases["outcome"].isin(OUTCOMES)
    ev = cases[evaluated]
    fcst = xr.DataArray(ev["outcome"].isin(_WARNED).to_numpy(float), dims="case")
    obs = xr.DataArray(ev["outcome"].isin(_OCCURRED).to_numpy(float), dims="case")
    ds = _contingency(fcst, obs, reduce_dims="all")
    out: dict = {"cases": len(ev), "not_evaluated": int((~evaluated).sum())}
    for name in ("hits", "misses", "false_alarms", "correct_negatives"):
        out[name] = int(ds[name])
    for name in ("pod", "far", "csi", "ets", "frequency_bias", "miss_rate", "false_alarm_ratio_zh"):
        out[name] = float(ds[name])
    leads = pd.to_numeric(ev.loc[ev["outcome"] == "hit", "lead_time_min"], errors="coerce")
    leads = leads.dropna()
    out["median_lead_time_min"] = float(leads.median()) if len(leads) else np.nan
    met = (
        ev["lead_met"].dropna().astype(bool) if "lead_met" in ev.columns else pd.Series(dtype=bool)
    )
    out["lead_met_fraction"] = float(met.mean()) if len(met) else np.nan
    late = ev["late_warning_utc"] if "late_warning_utc" in ev else pd.Series(dtype=object)
    # Occurred cases whose only warning at the level came after the onset (counted as misses).
    out["warned_after_onset"] = int((pd.notna(late) & (ev["outcome"] == "miss")).sum())
    return out


def scores_table(cases: pd.DataFrame, *, by: str | list[str] | None = None) -> pd.DataFrame:
    """Contingency counts and scores of verified cases, overall or by group.

    Parameters
    ----------
    cases : pandas.DataFrame
        Output of :func:`verify` (at least ``outcome``, ``evaluated``, ``lead_time_min``).
    by : str or list of str, optional
        Grouping columns (e.g. ``"hazard"``); default one row for all cases.

    Returns
    -------
    pandas.DataFrame
        The ``by`` columns, then :data:`SCORE_COLUMNS` (see :data:`KPI_DESCRIPTIONS`).
        Counts are of evaluated cases; scores come from
        :class:`scores.categorical.BinaryContingencyManager` and are NaN where undefined (e.g.
        POD without any observed event). ``false_alarm_ratio_zh`` (空报率) equals ``far``;
        ``miss_rate`` (漏报率) is 1 − ``pod``; ``median_lead_time_min`` is over hits.
    """
    _require(cases, ("outcome", "evaluated", "lead_time_min"), "verification cases")
    if by is None:
        keys: list[str] = []
        rows = [_group_scores(cases)]
    else:
        keys = [by] if isinstance(by, str) else list(by)
        _require(cases, keys, "verification cases")
        rows = []
        for key, group in cases.groupby(keys, sort=True, dropna=False):
            key = key if isinstance(key, tuple) else (key,)
            rows.append({**dict(zip(keys, key, strict=True)), **_group_scores(group)})
    frame = pd.DataFrame(rows, columns=keys + SCORE_COLUMNS)
    for col in (*_COUNTS, "warned_after_onset"):
        frame[col] = frame[col].astype("int64")
    return frame


def _json_value(value):
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    return value


def kpis(cases: pd.DataFrame) -> dict:
    """Key figures of the review for ``kpis.json``: overall and per hazard.

    Returns
    -------
    dict
        ``{"overall": {...}, "by_hazard": {hazard: {...}}}``, each with the keys of
        :data:`SCORE_COLUMNS` (``hits, misses, false_alarms, correct_negatives, pod, far, csi,
        ets, frequency_bias, miss_rate`` (漏报率 = 1 − POD), ``false_alarm_ratio_zh`` (空报率,
        which *is* the FAR), ``median_lead_time_min`` …). JSON-serialisable: NaN becomes
        ``None`` (null).
    """
    overall = scores_table(cases).to_dict("records")[0]
    by_hazard = {}
    if len(cases):
        for row in scores_table(cases, by="hazard").to_dict("records"):
            hazard = str(row.pop("hazard"))
            by_hazard[hazard] = {k: _json_value(v) for k, v in row.items()}
    return {
        "overall": {k: _json_value(v) for k, v in overall.items()},
        "by_hazard": by_hazard,
    }


def grid_scores(
    forecast_levels: xr.DataArray,
    observed_levels: xr.DataArray,
    *,
    threshold_level: int = 1,
    reduce_dims=None,
    preserve_dims=None,
) -> xr.Dataset:
    """Cell-by-cell scores of a forecast level field against an observed one.

    Parameters
    ----------
    forecast_levels, observed_levels : xarray.DataArray
        Levels 0–4 on the same grid (e.g. the maximum over time of each); NaN where there is
        no data (those cells are left out). numpy- or dask-backed.
    threshold_level : int, optional
        A cell is an event where its level reaches this (default 1).
    reduce_dims, preserve_dims : optional
        As in ``scores``: which dimensions to sum over (default all).

    Returns
    -------
    xarray.Dataset
        ``hits, misses, false_alarms, correct_negatives, pod, far, csi, ets, frequency_bias,
        miss_rate, false_alarm_ratio_zh`` (scalars when every dimension is reduced), from
        :class:`scores.categorical.BinaryContingencyManager`; NaN where undefined.

    Raises
    ------
    InputError
        The two fields are not on the same grid.
    """
    try:
        fcst, obs = xr.align(forecast_levels, observed_levels, join="exact")
    except ValueError as err:
        raise InputError(
            f"grid scores: forecast and observed levels are not on the same grid ({err})"
        ) from None
    fcst_events = xr.where(fcst.notnull(), fcst >= threshold_level, np.nan)
    obs_events = xr.where(obs.notnull(), obs >= threshold_level, np.nan)
    ds = _contingency(fcst_events, obs_events, reduce_dims=reduce_dims, preserve_dims=preserve_dims)
    ds.attrs["threshold_level"] = int(threshold_level)
    return ds
