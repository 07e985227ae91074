"""Response review: how fast tasks moved through the ledger, and the response-timeliness KPIs.

:func:`task_timeline` reads the task ledger (:mod:`cityops.ledger`) and gives one row per task
with the times it reached each state and the elapsed real time between them (computed from
UTC: a task dispatched at 23:30 and on site at 00:30 Beijing time took 60 minutes, whatever the
calendar says). :func:`response_kpis` turns a timeline, and optionally incident records and
heating complaints (:mod:`cityops.review.records`), into the review's response figures.

Deadlines
---------
- ``due_utc`` is the task's own deadline as the ledger holds it (the measure's deadline from
  ``plan/measures.yaml``, relative to onset or issue, in hours); ``overdue`` says whether the
  task was resolved after it, or was still unresolved at ``now``.
- ``feedback_due_utc`` and ``closure_due_utc`` are the plan's follow-up limits (feedback in 3
  days; closure in 7 days, or 1 month for the big loop) read from ``plan/timing.yaml`` *with
  that file's basis*: calendar days where it says ``basis: calendar`` (the Ejin Horo plan's
  reading), working days (:func:`cityops.ledger.add_workdays`, official holidays and make-up
  days) where it says ``basis: working``. Day limits count Beijing calendar dates as the ledger
  does: a limit of N days from a task issued on Beijing date D is missed once the Beijing date
  is past D + N, i.e. the deadline is 00:00 Beijing time the day after.

The ledger's escalation flag (``escalated``, set by :func:`cityops.ledger.check_escalation` from
the same plan rules, :mod:`cityops.deadlines`) is reported as recorded, beside the lateness
(``feedback_late``, ``closure_late``). Which plan rule applies to
which loop is configured in ``cityops/data/response_targets.yaml`` (``task_deadlines``).

Reported times are UTC; the report layer shows Beijing time.
"""

from __future__ import annotations

import math
import operator
import sqlite3
from collections.abc import Iterable, Mapping
from functools import cache
from os import PathLike
from pathlib import Path
from typing import Any

import pandas as pd

from cityops import ledger as ledger_db
from cityops.deadlines import plan_deadline
from cityops.errors import DataFileError, InputError
from cityops.resources import load_yaml, package_data
from cityops.response.plan import Plan, load_plan
from cityops.review.records import HEATING, INCIDENTS, as_records
from cityops.timeutil import parse_utc

__all__ = [
    "MINUTE_COLUMNS",
    "TIMELINE_COLUMNS",
    "load_response_targets",
    "plan_deadline",
    "report_clock_figures",
    "report_clock_table",
    "response_kpis",
    "task_timeline",
]

#: Columns of :func:`task_timeline`, in order.
TIMELINE_COLUMNS = (
    "task_id",
    "town_code",
    "hazard",
    "episode",
    "measure",
    "loop",
    "lead_unit",
    "group",
    "level",
    "issued_utc",
    "dispatched_utc",
    "on_site_utc",
    "resolved_utc",
    "closed_utc",
    "stood_down_utc",
    "min_to_dispatch",
    "min_to_on_site",
    "min_dispatch_to_on_site",
    "min_to_resolution",
    "min_to_sign_off",
    "visits",
    "due_utc",
    "overdue",
    "feedback_due_utc",
    "feedback_late",
    "closure_due_utc",
    "closure_late",
    "deadline_basis",
    "escalated",
    "escalated_utc",
    "escalation_rules",
    "state",
    "still_open",
)

#: Elapsed-time columns (minutes) and what they measure.
MINUTE_COLUMNS = {
    "min_to_dispatch": ("issued_utc", "dispatched_utc"),
    "min_to_on_site": ("issued_utc", "on_site_utc"),
    "min_dispatch_to_on_site": ("dispatched_utc", "on_site_utc"),
    "min_to_resolution": ("issued_utc", "resolved_utc"),
    "min_to_sign_off": ("issued_utc", "closed_utc"),
}

_TIME_COLUMNS = tuple(c for c in TIMELINE_COLUMNS if c.endswith("_utc"))
_MINUTE = pd.Timedelta(minutes=1)
_ACTION_STATES = ("dispatched", "on_site", "resolved")
_OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


# --------------------------------------------------------------------------------------------
# Targets (cityops/data/response_targets.yaml)
# --------------------------------------------------------------------------------------------
def _bad(path: Path, entry: Any, field: str, problem: str) -> DataFileError:
    return DataFileError(f"{path}: entry {entry!r}, field {field!r}: {problem}")


@cache
def _load_targets(path: str) -> dict[str, Any]:
    where = Path(path)
    data = load_yaml(where)
    if not str(data.get("source") or "").strip():
        raise _bad(where, "(file)", "source", "missing source citation")
    scales = data.get("incident_scales")
    if not isinstance(scales, list) or not scales:
        raise _bad(where, "incident_scales", "incident_scales", "expected a non-empty list")
    lookup: dict[str, str] = {}
    rank: dict[str, int] = {}
    for raw in scales:
        sid = raw.get("id") if isinstance(raw, dict) else None
        if not isinstance(sid, str) or not sid:
            raise _bad(where, sid, "id", "each incident scale needs an id")
        if not isinstance(raw.get("rank"), int):
            raise _bad(where, sid, "rank", "expected an integer")
        rank[sid] = raw["rank"]
        for name in (sid, raw.get("name_zh"), raw.get("name_en"), *raw.get("aliases", [])):
            if name:
                lookup[str(name).strip().casefold()] = sid
    targets = []
    seen: set[str] = set()
    for raw in data.get("incident_targets") or []:
        tid = raw.get("id") if isinstance(raw, dict) else None
        if not isinstance(tid, str) or not tid or tid in seen:
            raise _bad(where, tid, "id", "each incident target needs a unique id")
        seen.add(tid)
        for key in ("from", "to"):
            if raw.get(key) not in INCIDENTS.times + INCIDENTS.optional_times:
                raise _bad(where, tid, key, "expected a time column of the incidents CSV")
        within = raw.get("within")
        if (
            not isinstance(within, dict)
            or not isinstance(within.get("value"), (int, float))
            or within.get("unit") not in ("minute", "hour")
            or within["value"] <= 0
        ):
            raise _bad(where, tid, "within", "expected {value: N > 0, unit: minute|hour}")
        if raw.get("min_scale") is not None and raw["min_scale"] not in rank:
            raise _bad(where, tid, "min_scale", f"expected null or one of {', '.join(rank)}")
        target = raw.get("target")
        if (
            not isinstance(target, dict)
            or target.get("op") not in _OPS
            or not isinstance(target.get("value"), (int, float))
            or not 0 <= target["value"] <= 1
        ):
            raise _bad(where, tid, "target", "expected {op: >=|>|<=|<, value: share 0-1}")
        if not str(raw.get("source") or "").strip():
            raise _bad(where, tid, "source", "missing source citation")
        unit = "minutes" if within["unit"] == "minute" else "hours"
        targets.append({**raw, "within_td": pd.Timedelta(**{unit: within["value"]})})
    deadlines = data.get("task_deadlines")
    if (
        not isinstance(deadlines, dict)
        or not isinstance(deadlines.get("feedback"), str)
        or not isinstance(deadlines.get("closure_by_loop"), dict)
        or set(deadlines["closure_by_loop"]) != set(ledger_db.LOOPS)
    ):
        raise _bad(
            where,
            "task_deadlines",
            "task_deadlines",
            f"expected feedback: <rule id> and closure_by_loop for {', '.join(ledger_db.LOOPS)}",
        )
    return {
        "path": where,
        "source": data["source"],
        "scales": scales,
        "scale_lookup": lookup,
        "scale_rank": rank,
        "incident_targets": targets,
        "task_deadlines": deadlines,
    }


def load_response_targets(path: str | PathLike | None = None) -> dict[str, Any]:
    """The response targets, validated (``cityops/data/response_targets.yaml`` by default).

    Parameters
    ----------
    path : str or os.PathLike, optional
        Another targets file with the same layout.

    Returns
    -------
    dict
        ``path``, ``source``, ``scales`` (list), ``scale_lookup`` (name → scale id),
        ``scale_rank`` (scale id → rank), ``incident_targets`` (list of dicts, each with a
        ``within_td`` Timedelta), ``task_deadlines``.

    Raises
    ------
    DataFileError
        One line naming the file, the entry and the field.
    """
    target = Path(path) if path is not None else package_data("data", "response_targets.yaml")
    return _load_targets(str(target.resolve()))


# --------------------------------------------------------------------------------------------
# Plan deadlines
# --------------------------------------------------------------------------------------------
def _followup_rules(plan: Plan, targets: Mapping[str, Any]) -> tuple[dict, dict[str, dict]]:
    rules = {r["id"]: r for r in plan.timing.get("followup", [])}
    spec = targets["task_deadlines"]
    wanted = [spec["feedback"], *spec["closure_by_loop"].values()]
    missing = [rid for rid in wanted if rid not in rules]
    if missing:
        raise DataFileError(
            f"{targets['path']}: task_deadlines name follow-up rule(s) {', '.join(missing)} "
            f"that {plan.path / 'timing.yaml'} does not have"
        )
    return rules[spec["feedback"]], {
        loop: rules[rid] for loop, rid in spec["closure_by_loop"].items()
    }


def _as_plan(plan: Plan | str | PathLike) -> Plan:
    return plan if isinstance(plan, Plan) else load_plan(plan)


# --------------------------------------------------------------------------------------------
# Timeline
# --------------------------------------------------------------------------------------------
def _open_ledger(source) -> tuple[sqlite3.Connection, bool]:
    if isinstance(source, sqlite3.Connection):
        return source, False
    path = ledger_db.default_ledger_path(source)
    return ledger_db.connect(path, create=False), True


def _milestones(task: Mapping[str, Any], history: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    first: dict[str, pd.Timestamp] = {}
    last: dict[str, pd.Timestamp] = {}
    visits = 0
    for entry in history:
        to_state, from_state = entry["to_state"], entry["from_state"]
        if to_state == from_state:  # escalation notes keep the state
            continue
        when = parse_utc(entry["time_utc"])
        first.setdefault(to_state, when)
        last[to_state] = when
        visits += to_state == "on_site"
    state = task["state"]
    resolved = last.get("resolved") if state in ("resolved", "approved", "closed") else None
    closed = last.get("closed") if state == "closed" else None
    stood_down = (
        last.get("stood_down")
        if state == "stood_down" or (state == "closed" and resolved is None)
        else None
    )
    actions = [first[s] for s in _ACTION_STATES if s in first]
    return {
        "issued_utc": first.get("issued") or parse_utc(task["created_utc"]),
        "dispatched_utc": first.get("dispatched"),
        "on_site_utc": first.get("on_site"),
        "resolved_utc": resolved,
        "closed_utc": closed,
        "stood_down_utc": stood_down,
        "first_action_utc": min(actions) if actions else None,
        "visits": visits,
    }


def _late(done, now: pd.Timestamp, due) -> bool:
    if due is None or pd.isna(due):
        return False
    return bool((done if done is not None and not pd.isna(done) else now) > due)


def task_timeline(
    ledger,
    *,
    start=None,
    end=None,
    towns: Iterable[str] | None = None,
    now=None,
    plan: Plan | str | PathLike = "ejin-horo",
    targets: str | PathLike | None = None,
) -> pd.DataFrame:
    """One row per ledger task: when it reached each state, elapsed times, deadlines.

    Parameters
    ----------
    ledger : str, os.PathLike or sqlite3.Connection
        The task ledger (a path; ``None`` = ``$CITYOPS_LEDGER`` or ``var/ledger.sqlite``); it
        must exist.
    start, end : time-like, optional
        The review period (UTC). A task is kept when it was issued by ``end`` and its life
        (issue to the end of its hazard period, whichever is later) reaches ``start``.
    towns : iterable of str, optional
        Unit codes to keep (default: all).
    now : time-like, optional
        Reference time for tasks not yet done (overdue, late, still open); default the wall
        clock. Pass the review time for reproducible output.
    plan : Plan, str or os.PathLike, default "ejin-horo"
        The response plan (its ``timing.yaml`` gives follow-up periods and their basis; its
        measures give each task's HQ group).
    targets : str or os.PathLike, optional
        Response targets file (default ``cityops/data/response_targets.yaml``): which plan
        rules give the feedback and closure deadlines per loop.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`TIMELINE_COLUMNS`: identity (``task_id, town_code, hazard, episode,
        measure, loop, lead_unit, group, level``); naive-UTC times ``issued_utc`` (first
        issue), ``dispatched_utc`` and ``on_site_utc`` (first), ``resolved_utc`` and
        ``closed_utc`` (final, NaT unless the task is resolved/closed now), ``stood_down_utc``;
        elapsed minutes :data:`MINUTE_COLUMNS`; ``visits`` (times on site; > 1 = the fix did
        not hold); ``due_utc`` and ``overdue``; ``feedback_due_utc``, ``feedback_late``,
        ``closure_due_utc``, ``closure_late``, ``deadline_basis`` (plan basis of those);
        ``escalated`` (the ledger's counter); ``state`` now; ``still_open``. Sorted by issue
        time and task id.
    """
    now_ts = parse_utc(now if now is not None else "now", what="now")
    start_ts = parse_utc(start, what="review start") if start is not None else None
    end_ts = parse_utc(end, what="review end") if end is not None else None
    plan_obj = _as_plan(plan)
    feedback_rule, closure_rules = _followup_rules(plan_obj, load_response_targets(targets))
    groups = {m.id: m.group for m in plan_obj.measures}
    keep_towns = {str(t) for t in towns} if towns is not None else None

    conn, owned = _open_ledger(ledger)
    rows = []
    try:
        for task in ledger_db.list_tasks(conn, now=now_ts):
            if keep_towns is not None and task["town_code"] not in keep_towns:
                continue
            issued = parse_utc(task["created_utc"])
            life_end = max(issued, parse_utc(task["end_utc"])) if task["end_utc"] else issued
            if (end_ts is not None and issued > end_ts) or (
                start_ts is not None and life_end < start_ts
            ):
                continue
            history = ledger_db.task_history(conn, task["task_id"])
            marks = _milestones(task, history)
            raised = ledger_db.escalations(history)
            issued = marks["issued_utc"]
            due = parse_utc(task["due_utc"]) if task["due_utc"] else None
            without_action = marks["resolved_utc"] is None and marks["stood_down_utc"] is not None
            stop = marks["resolved_utc"] or marks["stood_down_utc"]
            feedback_due = plan_deadline(issued, feedback_rule)
            closure_rule = closure_rules[task["loop"]]
            closure_due = plan_deadline(issued, closure_rule)
            bases = sorted({feedback_rule["basis"], closure_rule["basis"]})
            rows.append(
                {
                    "task_id": task["task_id"],
                    "town_code": task["town_code"],
                    "hazard": task["hazard"],
                    "episode": task["episode"],
                    "measure": task["measure"],
                    "loop": task["loop"],
                    "lead_unit": task["lead_unit"],
                    "group": groups.get(task["measure"], ""),
                    "level": task["level"],
                    **{k: v for k, v in marks.items() if k != "first_action_utc"},
                    "due_utc": due,
                    "overdue": False if without_action else _late(stop, now_ts, due),
                    "feedback_due_utc": feedback_due,
                    "feedback_late": _late(
                        marks["first_action_utc"] or marks["stood_down_utc"], now_ts, feedback_due
                    ),
                    "closure_due_utc": closure_due,
                    "closure_late": _late(stop, now_ts, closure_due),
                    "deadline_basis": "/".join(bases),
                    "escalated": int(task["escalated"] or 0),
                    "escalated_utc": parse_utc(raised[0]["time_utc"]) if raised else None,
                    "escalation_rules": ", ".join(
                        dict.fromkeys(r for e in raised for r in e["rules"])
                    ),
                    "state": task["state"],
                    "still_open": task["state"] in ledger_db.OPEN_STATES,
                }
            )
    finally:
        if owned:
            conn.close()
    frame = pd.DataFrame(rows, columns=list(TIMELINE_COLUMNS))
    for column in _TIME_COLUMNS:
        frame[column] = pd.to_datetime(frame[column]).astype("datetime64[ns]")
    for column, (a, b) in MINUTE_COLUMNS.items():
        frame[column] = (frame[b] - frame[a]) / _MINUTE
    for column in ("overdue", "feedback_late", "closure_late", "still_open"):
        frame[column] = frame[column].astype(bool)
    frame["visits"] = frame["visits"].astype(int)
    frame["escalated"] = frame["escalated"].astype(int)
    frame["level"] = pd.to_numeric(frame["level"]).astype("Int64")
    return frame.sort_values(["issued_utc", "task_id"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# KPIs
# --------------------------------------------------------------------------------------------
def _share(count: int, total: int) -> float | None:
    return count / total if total else None


def _median(values: pd.Series) -> float | None:
    values = pd.to_numeric(values, errors="coerce").dropna()
    return float(values.median()) if len(values) else None


def _task_figures(timeline: pd.DataFrame) -> dict[str, Any]:
    missing = [c for c in TIMELINE_COLUMNS if c not in timeline.columns]
    if missing:
        raise InputError(f"timeline: missing column(s) {', '.join(missing)} (see task_timeline)")
    active = timeline[timeline["state"] != "stood_down"]
    closed = active["state"] == "closed"
    done = active["state"].isin(("resolved", "closed"))
    by_loop = {}
    for loop in ledger_db.LOOPS:
        sel = active["loop"] == loop
        n, c, r = int(sel.sum()), int((sel & closed).sum()), int((sel & done).sum())
        by_loop[loop] = {
            "tasks": n,
            "closed": c,
            "resolved_or_closed": r,
            "closure_rate": _share(c, n),
            "resolution_rate": _share(r, n),
        }
    n = len(active)
    return {
        "tasks": {
            "total": len(timeline),
            "stood_down": int((timeline["state"] == "stood_down").sum()),
            "active": n,
            "closed": int(closed.sum()),
            "resolved_or_closed": int(done.sum()),
            "closure_rate": _share(int(closed.sum()), n),
            "still_open": int(timeline["still_open"].astype(bool).sum()),
            "overdue": int(timeline["overdue"].astype(bool).sum()),
            "escalated": int((pd.to_numeric(timeline["escalated"]) > 0).sum()),
            "feedback_late": int(timeline["feedback_late"].astype(bool).sum()),
            "closure_late": int(timeline["closure_late"].astype(bool).sum()),
            "reopened": int((pd.to_numeric(timeline["visits"]) > 1).sum()),
        },
        "closure_by_loop": by_loop,
        "median_minutes": {
            column.removeprefix("min_"): _median(timeline[column]) for column in MINUTE_COLUMNS
        },
    }


def _within(frame: pd.DataFrame, start: str, stop: str, limit: pd.Timedelta) -> pd.Series:
    return frame[stop].notna() & frame[start].notna() & ((frame[stop] - frame[start]) <= limit)


def _incident_target(incidents: pd.DataFrame, spec: Mapping, ranks: Mapping) -> dict[str, Any]:
    scope = incidents[spec["from"]].notna()
    if spec.get("min_scale"):
        scope &= incidents["scale"].map(ranks) >= ranks[spec["min_scale"]]
    needs = spec.get("needs")
    needs_used = bool(needs) and needs in incidents.columns
    if needs_used:
        scope &= incidents[needs].astype(bool)
    ok = scope & _within(incidents, spec["from"], spec["to"], spec["within_td"])
    n, k = int(scope.sum()), int(ok.sum())
    share = _share(k, n)
    target = spec["target"]
    return {
        "text_zh": spec.get("text_zh", ""),
        "text_en": spec.get("text_en", ""),
        "from": spec["from"],
        "to": spec["to"],
        "within_minutes": spec["within_td"] / _MINUTE,
        "min_scale": spec.get("min_scale"),
        "scope": f"{needs} true" if needs_used else "all incidents" if needs else "",
        "incidents": n,
        "within": k,
        "share": share,
        "target_op": target["op"],
        "target": float(target["value"]),
        "met": None if share is None else bool(_OPS[target["op"]](share, target["value"])),
        "source": spec["source"],
    }


def _four_ones(heating: pd.DataFrame, rules: Mapping[str, Any]) -> dict[str, Any]:
    answer = pd.Timedelta(minutes=rules["answer_minutes"])
    dispatch = pd.Timedelta(minutes=rules["dispatch_minutes"])
    on_site = pd.Timedelta(hours=rules["on_site_hours"])
    visits = int(rules["solved_in_visits"])
    flags = {
        "answered": _within(heating, "received_utc", "answered_utc", answer),
        "dispatched": _within(heating, "answered_utc", "dispatched_utc", dispatch),
        "on_site": _within(heating, "dispatched_utc", "on_site_utc", on_site),
        "solved": heating["resolved_utc"].notna()
        & heating["visits"].notna()
        & (heating["visits"].fillna(visits + 1) <= visits),
    }
    flags["all_four"] = flags["answered"] & flags["dispatched"] & flags["on_site"] & flags["solved"]
    n = len(heating)
    limits = {
        "answered": f"answered <= {rules['answer_minutes']} min after received",
        "dispatched": f"dispatched <= {rules['dispatch_minutes']} min after answered",
        "on_site": f"on site <= {rules['on_site_hours']} h after dispatched",
        "solved": f"resolved in <= {visits} visit(s)",
        "all_four": "all four",
    }
    out: dict[str, Any] = {"complaints": n}
    for key, flag in flags.items():
        k = int(flag.sum())
        out[key] = {"count": k, "of": n, "share": _share(k, n), "rule": limits[key]}
    out["text_zh"] = rules.get("text_zh", "")
    out["source"] = rules.get("source", "")
    return out


def response_kpis(
    timeline: pd.DataFrame,
    *,
    incidents=None,
    heating=None,
    plan: Plan | str | PathLike = "ejin-horo",
    targets: str | PathLike | None = None,
) -> dict[str, Any]:
    """Response-timeliness figures of a review.

    Parameters
    ----------
    timeline : pandas.DataFrame
        :func:`task_timeline` output (may be empty).
    incidents : str, os.PathLike or pandas.DataFrame, optional
        Incident records (:func:`cityops.review.records.read_incidents`).
    heating : str, os.PathLike or pandas.DataFrame, optional
        Heating complaints (:func:`cityops.review.records.read_heating`).
    plan : Plan, str or os.PathLike, default "ejin-horo"
        The response plan; its ``timing.yaml`` ``heating_four_ones`` gives the four-ones limits.
    targets : str or os.PathLike, optional
        Response targets file (default ``cityops/data/response_targets.yaml``).

    Returns
    -------
    dict
        JSON-ready. Always: ``tasks`` (total, stood_down, active = not stood down, closed,
        resolved_or_closed, closure_rate, still_open, overdue, escalated, feedback_late,
        closure_late, reopened), ``closure_by_loop`` (per loop: tasks, closed,
        resolved_or_closed, closure_rate, resolution_rate; rates over tasks not stood down,
        ``None`` without tasks), ``median_minutes`` (to_dispatch, to_on_site,
        dispatch_to_on_site, to_resolution, to_sign_off; ``None`` without data).
        With ``heating``: ``four_ones`` (complaints; answered, dispatched, on_site, solved,
        all_four each ``{count, of, share, rule}``; text_zh, source). With ``incidents``:
        ``incidents`` (count) and one entry per target of the targets file (e.g.
        ``rescue_on_scene_2h``, ``initial_relief_10h``) with incidents in scope, within,
        share, target_op, target, met (``None`` when no incident is in scope), source.
        Figures whose data is not given are absent, never estimated.
    """
    out = _task_figures(timeline)
    spec = load_response_targets(targets)
    if heating is not None:
        rules = _as_plan(plan).timing["heating_four_ones"]
        out["four_ones"] = _four_ones(as_records(heating, HEATING), rules)
    if incidents is not None:
        table = as_records(incidents, INCIDENTS)
        out["incidents"] = len(table)
        for target in spec["incident_targets"]:
            out[target["id"]] = _incident_target(table, target, spec["scale_rank"])
    return _plain(out)


def _plain(value):
    """Python scalars only (JSON-ready): numpy numbers to int/float, NaN to None."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


# --------------------------------------------------------------------------------------------
# Incident report clocks (001:12, 002:1594)
# --------------------------------------------------------------------------------------------
def report_clock_table(ledger, *, start=None, end=None, now=None) -> pd.DataFrame:
    """The report clocks (:func:`cityops.ledger.list_report_clocks`) of incidents that happened
    between ``start`` and ``end``; ``overdue`` at ``now``, ``late`` when reported after due."""
    conn, owned = _open_ledger(ledger)
    try:
        frame = ledger_db.list_report_clocks(conn, now=now)
    finally:
        if owned:
            conn.close()
    occurred = pd.to_datetime(frame["occurred_utc"]).dt.tz_localize(None)
    keep = pd.Series(True, index=frame.index)
    if start is not None:
        keep &= occurred >= parse_utc(start)
    if end is not None:
        keep &= occurred <= parse_utc(end)
    return frame[keep].reset_index(drop=True)


def report_clock_figures(clocks: pd.DataFrame) -> dict[str, int]:
    """Counts of the report clocks: ``clocks``, ``on_time``, ``late``, ``overdue``, ``open``
    (not reported and not yet due), and ``incidents``."""
    reported = clocks["reported_utc"].fillna("").astype(str).str.len() > 0
    return {
        "incidents": int(clocks["incident_id"].nunique()),
        "clocks": len(clocks),
        "on_time": int((reported & ~clocks["late"].astype(bool)).sum()),
        "late": int(clocks["late"].astype(bool).sum()),
        "overdue": int(clocks["overdue"].astype(bool).sum()),
        "open": int((~reported & ~clocks["overdue"].astype(bool)).sum()),
    }
