"""Follow-up deadlines and escalation rules: the one owner of their meaning.

The plan's follow-up rules (``plan/timing.yaml`` ``followup``) say how long a task may take to
reach a state, counted from a clock, on a calendar or working-day basis:

- ``clock``: ``issued`` (the task's signal was issued: its first move to ``issued``), ``due``
  (the measure's own deadline, ``due_utc``), ``last_change`` (the task's last state change:
  a stall), ``last_escalation`` (the last escalation: escalating again);
- ``until``: the state the task must have reached when the period ends (states follow the
  ledger's order: reaching ``on_site`` also passes ``dispatched`` and ``acknowledged``);
  ``null`` for a rule that is shown but never escalates;
- ``period``: ``{value, unit}`` in minute, hour, day, week or month; or ``by_level``: one
  period per warning level (1 blue .. 4 red) for hour-scale weather rules;
- ``basis``: ``calendar`` or ``working`` (official working days in mainland China);
- ``loops``: optional, the loops (big, middle, small) the rule applies to.

Counting: minutes and hours are elapsed time. Days (weeks = 7 days) count Beijing dates, a limit
of N days from a clock on Beijing date D ends at 00:00 Beijing time after date D + N (calendar)
or after the N-th working day after D (working); months are calendar months. A task breaks a
rule when ``now`` is past the deadline and it has not reached ``until``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from cityops.errors import InputError
from cityops.timeutil import REPORT_TZ, parse_utc

__all__ = [
    "CLOCKS",
    "PERIOD_UNITS",
    "add_workdays",
    "breaches",
    "is_workday",
    "period_of",
    "plan_deadline",
    "reached",
    "report_clocks",
]

PERIOD_UNITS = ("minute", "hour", "day", "week", "month")
BASES = ("calendar", "working")
CLOCKS = ("issued", "due", "last_change", "last_escalation")
#: Order in which a task moves (the ledger's states up to 销号); ``until`` counts on it.
PROGRESS = ("proposed", "issued", "dispatched", "acknowledged", "on_site", "resolved",
            "approved", "closed")  # fmt: skip
_DAY = dt.timedelta(days=1)
_DAYS_PER_WEEK = 7


def is_workday(day: dt.date) -> bool:
    """Official working day in mainland China (holidays, make-up days); Mon–Fri outside the
    years ``chinese_calendar`` knows."""
    try:
        import chinese_calendar

        return bool(chinese_calendar.is_workday(day))
    except (ImportError, NotImplementedError):
        return day.weekday() < 5


def add_workdays(day: dt.date, n: int) -> dt.date:
    """The ``n``-th working day after ``day`` (``day`` itself not counted)."""
    count = 0
    while count < n:
        day += _DAY
        if is_workday(day):
            count += 1
    return day


def _beijing_date(ts: pd.Timestamp) -> dt.date:
    return ts.tz_localize("UTC").tz_convert(REPORT_TZ).date()


def _end_of_beijing_day(day: dt.date) -> pd.Timestamp:
    """00:00 Beijing time the day after ``day``, as naive UTC."""
    return pd.Timestamp(day + _DAY).tz_localize(REPORT_TZ).tz_convert("UTC").tz_localize(None)


def period_of(rule: Mapping[str, Any], level: int | None = None) -> dict | None:
    """The rule's period for a task at warning ``level``: ``period``, or the ``by_level`` entry
    (None when the rule has no period for that level)."""
    by_level = rule.get("by_level")
    if by_level:
        return by_level.get(int(level)) if level is not None else None
    return rule.get("period")


def plan_deadline(start, rule: Mapping[str, Any], *, level: int | None = None) -> pd.Timestamp:
    """The deadline of a follow-up rule for a clock started at ``start``.

    Parameters
    ----------
    start : time-like
        When the clock starts (UTC; naive = UTC).
    rule : mapping
        A ``followup`` entry: ``period: {value, unit}`` (or ``by_level``) and
        ``basis: calendar|working``.
    level : int, optional
        Warning level (1-4) picking the period of a ``by_level`` rule.

    Returns
    -------
    pandas.Timestamp
        Naive UTC; see the module notes for how days, working days and months count.

    Examples
    --------
    >>> rule = {"period": {"value": 3, "unit": "day"}, "basis": "working"}
    >>> str(plan_deadline("2026-09-30T17:00Z", rule))  # 1 Oct 01:00 Beijing; National Day
    '2026-10-10 16:00:00'
    """
    ts = parse_utc(start, what="deadline start")
    period, basis = period_of(rule, level) or {}, rule.get("basis")
    value, unit = period.get("value"), period.get("unit")
    if unit not in PERIOD_UNITS or not isinstance(value, (int, float)) or value < 0:
        raise InputError(f"follow-up rule {rule.get('id')!r}: unusable period {period!r}")
    if basis not in BASES:
        raise InputError(f"follow-up rule {rule.get('id')!r}: basis {basis!r} (calendar|working)")
    if unit in ("minute", "hour"):
        return ts + pd.Timedelta(**{f"{unit}s": value})
    day = _beijing_date(ts)
    if unit == "month":
        return _end_of_beijing_day((pd.Timestamp(day) + pd.DateOffset(months=int(value))).date())
    days = int(value) * (_DAYS_PER_WEEK if unit == "week" else 1)
    if basis == "working":
        return _end_of_beijing_day(add_workdays(day, days))
    return _end_of_beijing_day(day + dt.timedelta(days=days))


def reached(state: str, until: str) -> bool:
    """Whether a task in ``state`` has reached ``until`` (stood down counts as done)."""
    if state == "stood_down":
        return True
    return PROGRESS.index(state) >= PROGRESS.index(until)


def breaches(
    task: Mapping[str, Any], clocks: Mapping[str, Any], now, *, rules: Sequence[Mapping]
) -> list[dict]:
    """The follow-up rules a task breaks at ``now``.

    Parameters
    ----------
    task : mapping
        A ledger task: ``state``, ``loop``, ``level``.
    clocks : mapping
        Start times by clock name (``issued``, ``due``, ``last_change``, ``last_escalation``);
        a missing or empty clock means the rules on it do not apply (yet).
    now : time-like
    rules : sequence of mappings
        The plan's ``followup`` rules.

    Returns
    -------
    list of dict
        ``{"rule", "deadline", "text_zh", "text_en"}`` for each rule broken, in rule order.
    """
    now_ts = parse_utc(now, what="now")
    out = []
    for rule in rules:
        until = rule.get("until")
        if until is None or reached(task["state"], until):
            continue
        if rule.get("loops") and task.get("loop") not in rule["loops"]:
            continue
        start = clocks.get(rule["clock"])
        if start is None or start == "" or pd.isna(start):
            continue
        level = task.get("level")
        if period_of(rule, level) is None:
            continue
        deadline = plan_deadline(start, rule, level=level)
        if now_ts > deadline or (_is_day_rule(rule, level) and now_ts >= deadline):
            out.append(
                {
                    "rule": rule["id"],
                    "deadline": deadline,
                    "text_zh": rule.get("text_zh", ""),
                    "text_en": rule.get("text_en", ""),
                }
            )
    return out


def _is_day_rule(rule: Mapping[str, Any], level) -> bool:
    # A day limit's deadline is the first instant after the allowed dates.
    return (period_of(rule, level) or {}).get("unit") in ("day", "week", "month")


def report_clocks(kind: str, scale: str, occurred, *, rules: Sequence[Mapping]) -> list[dict]:
    """The report clocks an incident starts (``timing.yaml`` ``report_clocks``).

    Parameters
    ----------
    kind : str
        ``incident``, ``geohazard`` or ``geohazard_danger``.
    scale : str
        Incident scale id (general, large, major, especially_major).
    occurred : time-like
        When it happened (事发), UTC; every clock starts then.
    rules : sequence of mappings
        The plan's report-clock rules.

    Returns
    -------
    list of dict
        ``clock_id``, ``due_utc`` (naive UTC), ``channel``, ``report_to``, ``source``,
        ``text_zh``, ``text_en`` for each rule that applies, in rule order.
    """
    start = parse_utc(occurred, what="occurred")
    out = []
    for rule in rules:
        if kind not in rule["kinds"]:
            continue
        if "any" not in rule["scales"] and scale not in rule["scales"]:
            continue
        period = {"period": rule["within"], "basis": "calendar", "id": rule["id"]}
        out.append(
            {
                "clock_id": rule["id"],
                "due_utc": plan_deadline(start, period),
                "channel": rule.get("channel", ""),
                "report_to": rule.get("report_to", ""),
                "source": rule["source"],
                "text_zh": rule.get("text_zh", ""),
                "text_en": rule.get("text_en", ""),
            }
        )
    return out
