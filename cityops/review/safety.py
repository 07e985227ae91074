"""The urban safe-operation index (城市安全运行量化评估, plan item 15(2), 002:1076-1078).

A per-unit score over an event window, built from an indicator system the jurisdiction
configures in ``data/jurisdictions/<name>/review/safety_index.yaml``. Every component stays
visible: the output has, for each component, its raw value, the number of records behind it,
its 0-100 sub-score and its weight, next to the weighted total; the index is never a single
opaque number.

Inputs (each optional; a component whose input is absent is "not evaluated"):

=============  ========================================  ===================  ===============
input          table                                     time in the window   boolean flags
=============  ========================================  ===================  ===============
``hotline``    12345 tickets (:mod:`~.records`)          ``received_utc``     ``closed``
``alarms``     alarm records                             ``time_utc``         —
``incidents``  incident records                          ``reported_utc``     ``handled``
``tasks``      :func:`~.response.task_timeline`          ``issued_utc``       ``closed``,
               (stood-down tasks left out)                                    ``resolved``,
                                                                              ``on_time``
``cases``      verification cases (one per unit ×        window overlaps      ``lead_met``
               hazard × window)
=============  ========================================  ===================  ===============

``closed`` (hotline) = the ticket has a ``closed_utc``; ``closed`` (tasks) = state ``closed``
(销号); ``resolved`` = state resolved or closed; ``on_time`` = not ``overdue``. Any other
column of the input can be named as a flag if it is boolean.

Component configuration (YAML list ``components``)::

    - id: alarms                      # ascii id; output columns alarms_raw, alarms_n, ...
      name_zh: 报警次数
      name_en: Alarms
      input: alarms                   # one of the inputs above
      measure: count                  # count = records in the unit; share = share of records
      flag: null                      #   with `flag` true (records with the flag empty are
                                      #   left out)
      where: {type: [waterlogging]}   # optional: keep records whose column is one of these
      direction: lower_better         # or higher_better
      normalise: {method: bounds, best: 0, worst: 20}
      #   or {method: per_population, per: 10000, best: 0, worst: 5} (counts per `per`
      #   residents, then bounds; population from the `population` argument or block)
      weight: 0.15                    # weights of all components sum to 1
      source: "002:1076"
      notes: "..."

Sub-score = 100 × (raw − worst) / (best − worst), clipped to 0-100 (so ``best`` scores 100 and
``worst`` 0; ``lower_better`` needs best < worst, ``higher_better`` best > worst). A count with
no records in a unit is a real 0 when the input was given; a share with no records, or a
per-population count without a population, is not evaluated for that unit. The total is the
weighted mean of the evaluated sub-scores (weights renormalised over them);
``weight_evaluated`` says how much of the configured weight it rests on and ``not_evaluated``
lists what was left out and why.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from cityops.errors import DataFileError, InputError
from cityops.resources import load_yaml
from cityops.review.records import ALARMS, HOTLINE, INCIDENTS, as_records
from cityops.timeutil import parse_utc

__all__ = [
    "INPUTS",
    "Component",
    "SafetyConfig",
    "load_safety_config",
    "safety_index",
    "tally",
]

#: The inputs a component may use and the time column that places a record in the window.
INPUTS: Mapping[str, str] = MappingProxyType(
    {
        "hotline": "received_utc",
        "alarms": "time_utc",
        "incidents": "reported_utc",
        "tasks": "issued_utc",
        "cases": "window_start_utc",
    }
)
MEASURES = ("count", "share")
DIRECTIONS = ("lower_better", "higher_better")
METHODS = ("bounds", "per_population")
#: Tolerance of the check that weights sum to 1.
WEIGHT_TOLERANCE = 1e-6
#: Sub-scores run from 0 (worst) to this value (best).
SCORE_MAX = 100.0
_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_TRUE = frozenset({"true", "1", "yes", "是"})
_FALSE = frozenset({"false", "0", "no", "否"})


@dataclass(frozen=True)
class Component:
    """One indicator of the index (see the module docstring for the fields)."""

    id: str
    name_zh: str
    name_en: str
    input: str
    measure: str
    direction: str
    method: str
    best: float
    worst: float
    weight: float
    source: str
    flag: str | None = None
    where: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    per: float | None = None
    notes: str = ""

    def describe(self) -> dict[str, Any]:
        """The component as a plain dict (for reports and ``attrs``)."""
        return {
            "id": self.id,
            "name_zh": self.name_zh,
            "name_en": self.name_en,
            "input": self.input,
            "measure": self.measure,
            "flag": self.flag,
            "where": {k: list(v) for k, v in self.where.items()},
            "direction": self.direction,
            "normalise": {
                "method": self.method,
                "per": self.per,
                "best": self.best,
                "worst": self.worst,
            },
            "weight": self.weight,
            "source": self.source,
            "notes": self.notes,
        }


@dataclass(frozen=True)
class SafetyConfig:
    """A validated index configuration."""

    path: Path
    title_zh: str
    title_en: str
    source: str
    components: tuple[Component, ...]
    population: Mapping[str, float] = field(default_factory=dict)
    population_source: str = ""
    notes: str = ""


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------
def _bad(path: Path, entry: Any, field_: str, problem: str) -> DataFileError:
    return DataFileError(f"{path}: component {entry!r}, field {field_!r}: {problem}")


def _number(path: Path, cid: str, field_: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _bad(path, cid, field_, f"expected a number, got {value!r}")
    return float(value)


def _component(path: Path, raw: Any, i: int, seen: set[str]) -> Component:
    if not isinstance(raw, dict):
        raise _bad(path, i + 1, "(entry)", "expected a mapping")
    cid = raw.get("id")
    if not isinstance(cid, str) or not _ID.match(cid):
        raise _bad(path, cid if cid else i + 1, "id", "expected an ascii id like hotline_tickets")
    if cid in seen:
        raise _bad(path, cid, "id", "duplicate id")
    seen.add(cid)
    for key in ("name_zh", "name_en", "source"):
        if not str(raw.get(key) or "").strip():
            raise _bad(path, cid, key, "missing")
    if raw.get("input") not in INPUTS:
        raise _bad(path, cid, "input", f"expected one of {', '.join(INPUTS)}")
    if raw.get("measure") not in MEASURES:
        raise _bad(path, cid, "measure", f"expected one of {', '.join(MEASURES)}")
    flag = raw.get("flag")
    if raw["measure"] == "share" and not (isinstance(flag, str) and flag):
        raise _bad(path, cid, "flag", "a share needs the boolean column it counts")
    if raw["measure"] == "count" and flag:
        raise _bad(path, cid, "flag", "a count takes no flag (use where: to filter)")
    where = raw.get("where") or {}
    if not isinstance(where, dict) or not all(
        isinstance(v, (list, tuple, str)) for v in where.values()
    ):
        raise _bad(path, cid, "where", "expected {column: [values]}")
    where = {
        str(k): tuple(str(x) for x in ([v] if isinstance(v, str) else v)) for k, v in where.items()
    }
    direction = raw.get("direction")
    if direction not in DIRECTIONS:
        raise _bad(path, cid, "direction", f"expected one of {', '.join(DIRECTIONS)}")
    norm = raw.get("normalise")
    if not isinstance(norm, dict) or norm.get("method") not in METHODS:
        raise _bad(path, cid, "normalise", f"expected {{method: {'|'.join(METHODS)}, ...}}")
    best = _number(path, cid, "normalise.best", norm.get("best"))
    worst = _number(path, cid, "normalise.worst", norm.get("worst"))
    if best == worst:
        raise _bad(path, cid, "normalise", "best and worst must differ")
    if (direction == "lower_better") != (best < worst):
        raise _bad(
            path,
            cid,
            "normalise",
            f"{direction} needs best {'<' if direction == 'lower_better' else '>'} worst "
            f"(got best {best:g}, worst {worst:g})",
        )
    per = None
    if norm["method"] == "per_population":
        if raw["measure"] != "count":
            raise _bad(path, cid, "normalise", "per_population applies to counts only")
        per = _number(path, cid, "normalise.per", norm.get("per"))
        if per <= 0:
            raise _bad(path, cid, "normalise.per", "expected a positive number of residents")
    weight = _number(path, cid, "weight", raw.get("weight"))
    if not 0 < weight <= 1:
        raise _bad(path, cid, "weight", f"expected 0 < weight <= 1, got {weight:g}")
    return Component(
        id=cid,
        name_zh=str(raw["name_zh"]),
        name_en=str(raw["name_en"]),
        input=raw["input"],
        measure=raw["measure"],
        direction=direction,
        method=norm["method"],
        best=best,
        worst=worst,
        weight=weight,
        source=str(raw["source"]),
        flag=flag or None,
        where=MappingProxyType(where),
        per=per,
        notes=str(raw.get("notes") or ""),
    )


def _population(path: Path, raw: Any) -> tuple[dict[str, float], str]:
    if raw is None:
        return {}, ""
    if not isinstance(raw, dict) or not isinstance(raw.get("towns", {}), dict):
        raise DataFileError(f"{path}: field 'population': expected {{source, towns: {{code: n}}}}")
    towns = {}
    for code, value in (raw.get("towns") or {}).items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise DataFileError(
                f"{path}: field 'population', town {code!r}: expected a positive number"
            )
        towns[str(code)] = float(value)
    if towns and not str(raw.get("source") or "").strip():
        raise DataFileError(f"{path}: field 'population': missing source")
    return towns, str(raw.get("source") or "")


def _config_path(source: str | PathLike) -> Path:
    path = Path(source).expanduser()
    if path.suffix in (".yaml", ".yml"):
        return path
    if path.is_dir() or any(s in str(source) for s in ("/", "\\")):
        return path / "review" / "safety_index.yaml"
    from cityops.geo.jurisdiction import jurisdiction_search_path

    for folder in jurisdiction_search_path():
        candidate = folder / str(source) / "review" / "safety_index.yaml"
        if candidate.is_file():
            return candidate
    raise InputError(
        f"no safe-operation index configuration for jurisdiction {str(source)!r} "
        "(expected review/safety_index.yaml in its folder)"
    )


def load_safety_config(source: str | PathLike = "ejin-horo") -> SafetyConfig:
    """Load and validate an index configuration.

    Parameters
    ----------
    source : str or os.PathLike, default "ejin-horo"
        A YAML file, a jurisdiction folder (its ``review/safety_index.yaml``) or a
        jurisdiction name.

    Returns
    -------
    SafetyConfig

    Raises
    ------
    DataFileError
        One line naming the file, the component and the field (e.g. weights that do not sum
        to 1).
    """
    path = _config_path(source)
    data = load_yaml(path)
    if not str(data.get("source") or "").strip():
        raise DataFileError(f"{path}: field 'source': missing source citation")
    raw_components = data.get("components")
    if not isinstance(raw_components, list) or not raw_components:
        raise DataFileError(f"{path}: field 'components': expected a non-empty list")
    seen: set[str] = set()
    components = tuple(_component(path, raw, i, seen) for i, raw in enumerate(raw_components))
    total = sum(c.weight for c in components)
    if abs(total - 1) > WEIGHT_TOLERANCE:
        raise DataFileError(
            f"{path}: field 'weight': component weights sum to {total:g}, expected 1 "
            f"({', '.join(f'{c.id} {c.weight:g}' for c in components)})"
        )
    population, pop_source = _population(path, data.get("population"))
    return SafetyConfig(
        path=path,
        title_zh=str(data.get("title_zh") or ""),
        title_en=str(data.get("title_en") or ""),
        source=str(data["source"]),
        components=components,
        population=MappingProxyType(population),
        population_source=pop_source,
        notes=str(data.get("notes") or ""),
    )


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------
def _flags(values: pd.Series, what: str) -> pd.Series:
    """A boolean column as True/False/NaN (object), from bools, 0/1 or words."""

    def one(v):
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            return np.nan
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        word = str(v).strip().casefold()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        if word in ("", "nan", "none"):
            return np.nan
        raise InputError(f"{what}: {v!r} is not a boolean")

    return values.map(one).astype(object)


def _window(frame: pd.DataFrame, name: str, start, end) -> pd.DataFrame:
    if start is None and end is None:
        return frame
    if name == "cases":
        s = pd.to_datetime(frame["window_start_utc"])
        e = pd.to_datetime(frame["window_end_utc"]) if "window_end_utc" in frame else s
        keep = pd.Series(True, index=frame.index)
        if end is not None:
            keep &= s < end
        if start is not None:
            keep &= e > start
        return frame[keep]
    t = pd.to_datetime(frame[INPUTS[name]])
    keep = pd.Series(True, index=frame.index)
    if start is not None:
        keep &= t >= start
    if end is not None:
        keep &= t < end
    return frame[keep]


def _prepare(name: str, source) -> pd.DataFrame:
    if name == "hotline":
        frame = as_records(source, HOTLINE)
        frame["closed"] = frame["closed_utc"].notna()
        return frame
    if name == "alarms":
        return as_records(source, ALARMS)
    if name == "incidents":
        return as_records(source, INCIDENTS)
    if not isinstance(source, pd.DataFrame):
        raise InputError(f"{name}: expected a DataFrame")
    needed = {
        "tasks": ("town_code", "issued_utc", "state"),
        "cases": ("town_code", "window_start_utc"),
    }[name]
    missing = [c for c in needed if c not in source.columns]
    if missing:
        raise InputError(f"{name} table: missing column(s) {', '.join(missing)}")
    frame = source.copy()
    frame["town_code"] = frame["town_code"].astype(str)
    if name == "tasks":
        frame = frame[frame["state"] != "stood_down"].copy()
        frame["closed"] = frame["state"] == "closed"
        frame["resolved"] = frame["state"].isin(("resolved", "closed"))
        if "overdue" in frame.columns:
            late = _flags(frame["overdue"], "tasks column 'overdue'")
            frame["on_time"] = late.map({True: False, False: True}).astype(object)
    return frame


def _component_values(
    comp: Component, frame: pd.DataFrame, towns: list[str], population: Mapping[str, float]
) -> tuple[pd.Series, pd.Series, dict[str, str]]:
    """Raw value, record count and not-evaluated reasons per town."""
    for column in (*comp.where, *([comp.flag] if comp.flag else [])):
        if column not in frame.columns:
            raise InputError(
                f"safe-operation index component {comp.id!r}: input {comp.input!r} has no "
                f"column {column!r}"
            )
    for column, allowed in comp.where.items():
        frame = frame[frame[column].astype(str).isin(allowed)]
    reasons: dict[str, str] = {}
    if comp.measure == "count":
        n = frame.groupby("town_code").size().reindex(towns, fill_value=0).astype(float)
        raw = n.copy()
        if comp.method == "per_population":
            for town in towns:
                pop = population.get(town)
                if pop is None:
                    raw[town] = np.nan
                    reasons[town] = "no population"
                else:
                    raw[town] = n[town] / pop * comp.per
    else:
        flags = _flags(frame[comp.flag], f"{comp.input} column {comp.flag!r}")
        known = frame.assign(_flag=flags)[flags.notna()]
        n = known.groupby("town_code").size().reindex(towns, fill_value=0).astype(float)
        hits = known[known["_flag"].astype(bool)].groupby("town_code").size()
        raw = (hits.reindex(towns, fill_value=0) / n.replace(0, np.nan)).astype(float)
        for town in towns:
            if n[town] == 0:
                reasons[town] = f"no {comp.input} records"
    return raw, n, reasons


def safety_index(
    *,
    hotline=None,
    alarms=None,
    incidents=None,
    tasks: pd.DataFrame | None = None,
    cases: pd.DataFrame | None = None,
    config: SafetyConfig | str | PathLike = "ejin-horo",
    start=None,
    end=None,
    towns: Iterable[str] | None = None,
    population: Mapping[str, float] | pd.Series | None = None,
) -> pd.DataFrame:
    """The safe-operation index per unit over ``[start, end)``, every component visible.

    Parameters
    ----------
    hotline, alarms, incidents : str, os.PathLike or pandas.DataFrame, optional
        Record tables (:mod:`cityops.review.records`).
    tasks : pandas.DataFrame, optional
        :func:`cityops.review.response.task_timeline` output.
    cases : pandas.DataFrame, optional
        Verification cases (``town_code, hazard, window_start_utc, window_end_utc, outcome,
        lead_met, ...``).
    config : SafetyConfig, str or os.PathLike, default "ejin-horo"
        The indicator system (:func:`load_safety_config`).
    start, end : time-like, optional
        The event window (UTC); records are kept when their time is in ``[start, end)``
        (cases when their window overlaps it).
    towns : iterable of str, optional
        Unit codes, one row each (default: every unit found in the inputs, sorted).
    population : mapping or pandas.Series, optional
        Residents per unit code for ``per_population`` components (default: the
        configuration's ``population`` block).

    Returns
    -------
    pandas.DataFrame
        One row per unit: ``town_code``; per component ``<id>_raw`` (the value: a count, a
        count per N residents or a share 0-1), ``<id>_n`` (records behind it), ``<id>_score``
        (0-100), ``<id>_weight``; then ``total`` (weighted mean of the evaluated sub-scores),
        ``weight_evaluated`` (share of the configured weight it rests on) and
        ``not_evaluated`` ("id (reason); ..."). ``attrs["components"]`` describes the
        components, ``attrs["config"]`` the file.
    """
    cfg = config if isinstance(config, SafetyConfig) else load_safety_config(config)
    start_ts = parse_utc(start, what="index start") if start is not None else None
    end_ts = parse_utc(end, what="index end") if end is not None else None
    given = {
        "hotline": hotline,
        "alarms": alarms,
        "incidents": incidents,
        "tasks": tasks,
        "cases": cases,
    }
    frames = {
        name: _window(_prepare(name, src), name, start_ts, end_ts)
        for name, src in given.items()
        if src is not None
    }
    if towns is None:
        codes = sorted({c for f in frames.values() for c in f["town_code"].astype(str)})
    else:
        codes = list(dict.fromkeys(str(t) for t in towns))
    pop = dict(cfg.population)
    if population is not None:
        pop = {str(k): float(v) for k, v in dict(population).items()}

    out = pd.DataFrame({"town_code": codes})
    weighted = pd.Series(0.0, index=codes)
    weight_sum = pd.Series(0.0, index=codes)
    reasons: dict[str, list[str]] = {c: [] for c in codes}
    for comp in cfg.components:
        if comp.input not in frames:
            raw = pd.Series(np.nan, index=codes)
            n = pd.Series(np.nan, index=codes)
            why = dict.fromkeys(codes, f"no {comp.input} data")
        else:
            raw, n, why = _component_values(comp, frames[comp.input], codes, pop)
        score = (SCORE_MAX * (raw - comp.worst) / (comp.best - comp.worst)).clip(0, SCORE_MAX)
        for town, reason in why.items():
            reasons[town].append(f"{comp.id} ({reason})")
        ok = score.notna()
        weighted[ok] += score[ok] * comp.weight
        weight_sum[ok] += comp.weight
        out[f"{comp.id}_raw"] = raw.to_numpy()
        out[f"{comp.id}_n"] = n.to_numpy()
        out[f"{comp.id}_score"] = score.to_numpy()
        out[f"{comp.id}_weight"] = comp.weight
    out["total"] = (weighted / weight_sum.replace(0, np.nan)).to_numpy()
    out["weight_evaluated"] = weight_sum.to_numpy()
    out["not_evaluated"] = ["; ".join(reasons[c]) for c in codes]
    out.attrs["components"] = [c.describe() for c in cfg.components]
    out.attrs["config"] = {
        "path": str(cfg.path),
        "title_zh": cfg.title_zh,
        "title_en": cfg.title_en,
        "source": cfg.source,
        "population_source": cfg.population_source if population is None else "argument",
    }
    return out


def tally(
    records: pd.DataFrame,
    *,
    by: Iterable[str] | str,
    time_column: str | None = None,
    start=None,
    end=None,
) -> pd.DataFrame:
    """Counts of records by some columns (alarms by town and type, tickets by category, ...).

    Parameters
    ----------
    records : pandas.DataFrame
        Any record table (:mod:`cityops.review.records`).
    by : str or iterable of str
        Columns to group by, e.g. ``["town_code", "type"]``.
    time_column : str, optional
        Time column for the window (needed with ``start``/``end``).
    start, end : time-like, optional
        Keep records with ``start <= time < end`` (UTC).

    Returns
    -------
    pandas.DataFrame
        The ``by`` columns and ``count``, largest count first (ties in column order).
    """
    keys = [by] if isinstance(by, str) else list(by)
    missing = [c for c in [*keys, *([time_column] if time_column else [])] if c not in records]
    if missing:
        raise InputError(f"tally: records have no column(s) {', '.join(missing)}")
    frame = records
    if start is not None or end is not None:
        if not time_column:
            raise InputError("tally: start/end need time_column")
        t = pd.to_datetime(frame[time_column])
        keep = pd.Series(True, index=frame.index)
        if start is not None:
            keep &= t >= parse_utc(start, what="tally start")
        if end is not None:
            keep &= t < parse_utc(end, what="tally end")
        frame = frame[keep]
    counts = frame.groupby(keys, dropna=False).size().rename("count").reset_index()
    return counts.sort_values(
        ["count", *keys], ascending=[False, *([True] * len(keys))], kind="stable"
    ).reset_index(drop=True)
