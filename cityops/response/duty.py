"""The duty roster (值班表) of a jurisdiction: who is on duty, the leader on duty (带班领导),
holiday duty tables, the zero-report rule and the contact directory (issue 19 item 8).

The rules come from the seeds as data (``data/jurisdictions/<name>/duty.yaml``): 24 h duty and
a leader on duty every day, holiday duty tables, zero reports, no informal staff on duty and
the monthly table due by the 25th (three days before a statutory holiday) (001:10); the
emergency contact directory re-issued every half year (001:11). This module loads and
validates the file (one-line :class:`~cityops.errors.DataFileError` naming the file and the
field), says who is on duty at a UTC time (:func:`on_duty`: duty days change at the roster's
handover time, Beijing time) and checks a range of duty days (:func:`check_roster`).

A duty day ``D`` runs from ``D`` at the handover time to ``D + 1`` at the same time (local
time of the roster's ``timezone``); "day" below always means such a duty day.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from cityops.errors import DataFileError, InputError
from cityops.resources import load_yaml
from cityops.timeutil import parse_utc

__all__ = [
    "ROSTER_FILE",
    "DutyRules",
    "Finding",
    "OnDuty",
    "Person",
    "Roster",
    "check_roster",
    "default_check_range",
    "duty_day",
    "duty_html",
    "duty_lines",
    "jurisdiction_duty_lines",
    "jurisdiction_roster",
    "load_roster",
    "month_end",
    "on_duty",
]

#: The roster's file name inside a jurisdiction folder.
ROSTER_FILE = "duty.yaml"
#: A duty day is one calendar day: the only shift length the roster model supports.
HOURS_PER_DAY = 24
PROBLEM, NOTE = "problem", "note"
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class Person:
    """Someone on the contact directory who can be put on duty.

    Attributes
    ----------
    id : str
        Key used by the roster.
    name, role, unit, phone : str
        As shown on the briefing (``phone`` may be empty).
    formal_staff : bool
        A formal employee; 001:10 bars security guards and other informal staff from duty.
    illustrative : bool
        A placeholder, not a real person (shown as such wherever the name appears).
    """

    id: str
    name: str
    role: str = ""
    unit: str = ""
    phone: str = ""
    formal_staff: bool = True
    illustrative: bool = True


@dataclass(frozen=True)
class DutyRules:
    """The duty rules of a roster (``rules:`` of ``duty.yaml``), each from a seed line."""

    shift_hours: int
    handover: dt.time
    leader_on_duty: bool
    holiday_tables: bool
    formal_staff_only: bool
    zero_report_required: bool
    zero_report_time: dt.time | None
    roster_due_day: int
    holiday_table_due_days: int
    directory_refresh_months: int


@dataclass(frozen=True)
class _Rotation:
    start: dt.date
    end: dt.date
    officers: tuple[str, ...]
    leaders: tuple[str, ...]
    leader_days: int

    def assign(self, day: dt.date) -> tuple[str | None, str | None]:
        n = (day - self.start).days
        officer = self.officers[n % len(self.officers)] if self.officers else None
        leader = self.leaders[(n // self.leader_days) % len(self.leaders)] if self.leaders else None
        return officer, leader


@dataclass(frozen=True)
class Roster:
    """A validated duty roster; build it with :func:`load_roster`."""

    path: Path
    timezone: str
    office: str
    illustrative: bool
    source: tuple[str, ...]
    rules: DutyRules
    duty_phone: str
    duty_phone_illustrative: bool
    directory_updated: tuple[dt.date, ...]
    people: Mapping[str, Person]
    contacts: tuple[Mapping[str, Any], ...]
    rotations: tuple[_Rotation, ...]
    overrides: Mapping[dt.date, Mapping[str, str]]
    holiday_days: Mapping[dt.date, Mapping[str, str]]

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def assignment(self, day: dt.date) -> tuple[str | None, str | None, str]:
        """``(officer id, leader id, where from)`` of a duty day; ids are None when unset.

        A holiday table row wins over an override, which wins over the rotations.
        """
        if day in self.holiday_days:
            row = self.holiday_days[day]
            return row.get("officer"), row.get("leader"), f"holiday table {row['holiday']}"
        officer = leader = None
        where = ""
        for rot in self.rotations:
            if rot.start <= day <= rot.end:
                officer, leader = rot.assign(day)
                where = f"rotation {rot.start}..{rot.end}"
                break
        if day in self.overrides:
            row = self.overrides[day]
            officer = row.get("officer", officer)
            leader = row.get("leader", leader)
            where = "override"
        return officer, leader, where

    def directory_edition(self, day: dt.date) -> dt.date | None:
        """The directory edition in force on ``day``: the latest ``updated`` not after it."""
        past = [d for d in self.directory_updated if d <= day]
        return max(past) if past else None


@dataclass(frozen=True)
class OnDuty:
    """Who is on duty at one time (:func:`on_duty`)."""

    when_utc: pd.Timestamp
    day: dt.date
    start_utc: pd.Timestamp
    end_utc: pd.Timestamp
    officer: Person | None
    leader: Person | None
    source: str
    roster: Roster = field(repr=False)

    @property
    def illustrative(self) -> bool:
        """Whether anyone shown (or the roster as a whole) is a placeholder."""
        people = [p for p in (self.officer, self.leader) if p is not None]
        return self.roster.illustrative or any(p.illustrative for p in people)


@dataclass(frozen=True)
class Finding:
    """One result of :func:`check_roster`.

    Attributes
    ----------
    kind : str
        ``missing_officer``, ``missing_leader``, ``holiday_table_missing``,
        ``informal_staff``, ``holiday_table_not_holiday``, ``directory_stale``,
        ``directory_due``, ``directory_missing``, ``zero_report``, ``holiday_data_missing``.
    severity : str
        ``"problem"`` (the command exits non-zero) or ``"note"``.
    message : str
        One line, English.
    first, last : datetime.date or None
        The duty days concerned (consecutive days of the same kind are merged).
    source : str
        The seed line of the rule.
    """

    kind: str
    severity: str
    message: str
    first: dt.date | None = None
    last: dt.date | None = None
    source: str = ""

    def line(self) -> str:
        days = ""
        if self.first is not None:
            days = str(self.first) if self.first == self.last else f"{self.first}..{self.last}"
            days += "  "
        src = f" ({self.source})" if self.source else ""
        return f"{self.severity:<7s} {days}{self.kind}: {self.message}{src}"


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------
def _err(path: Path, where: str, what: str) -> DataFileError:
    return DataFileError(f"{path}: field '{where}': {what}")


def _str(value: Any, path: Path, where: str, *, required: bool = True) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise _err(path, where, "missing; expected a non-empty text")
        return ""
    if not isinstance(value, str | int):
        raise _err(path, where, f"expected a text, got {value!r}")
    return str(value).strip()


def _bool(value: Any, path: Path, where: str) -> bool:
    if not isinstance(value, bool):
        raise _err(path, where, f"expected true or false, got {value!r}")
    return value


def _int(value: Any, path: Path, where: str, *, low: int, high: int | None = None) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise _err(path, where, f"expected a whole number {bound}, got {value!r}")
    return value


def _date(value: Any, path: Path, where: str) -> dt.date:
    if isinstance(value, dt.datetime):
        raise _err(path, where, f"expected a date YYYY-MM-DD, got a time {value!r}")
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise _err(path, where, f"cannot read {value!r} as a date (expected YYYY-MM-DD)") from None


def _hhmm(value: Any, path: Path, where: str) -> dt.time:
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 8:30 as 510 (base 60).
        raise _err(path, where, f'read as the number {value}; write the time quoted, e.g. "08:30"')
    match = _HHMM.match(str(value).strip()) if isinstance(value, str) else None
    if not match:
        raise _err(path, where, f'expected a time "HH:MM" (Beijing time), got {value!r}')
    return dt.time(int(match[1]), int(match[2]))


def _mapping(value: Any, path: Path, where: str) -> Mapping[str, Any]:
    if value is None:
        raise _err(path, where, "missing; expected a mapping")
    if not isinstance(value, Mapping):
        raise _err(path, where, f"expected a mapping, got {type(value).__name__}")
    return value


def _list(value: Any, path: Path, where: str, *, required: bool = True) -> list:
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise _err(path, where, f"expected a list, got {type(value).__name__}")
    return value


def _rules(data: Any, path: Path) -> DutyRules:
    r = _mapping(data, path, "rules")
    hours = _int(r.get("shift_hours"), path, "rules.shift_hours", low=1)
    if hours != HOURS_PER_DAY:
        raise _err(
            path,
            "rules.shift_hours",
            f"only one {HOURS_PER_DAY} h duty a day is "
            f"supported (001:10 24小时在岗值班), got {hours}",
        )
    zero = _mapping(r.get("zero_report"), path, "rules.zero_report")
    zero_time = zero.get("time")
    return DutyRules(
        shift_hours=hours,
        handover=_hhmm(r.get("handover"), path, "rules.handover"),
        leader_on_duty=_bool(r.get("leader_on_duty"), path, "rules.leader_on_duty"),
        holiday_tables=_bool(r.get("holiday_tables"), path, "rules.holiday_tables"),
        formal_staff_only=_bool(r.get("formal_staff_only"), path, "rules.formal_staff_only"),
        zero_report_required=_bool(zero.get("required"), path, "rules.zero_report.required"),
        zero_report_time=(
            None if zero_time is None else _hhmm(zero_time, path, "rules.zero_report.time")
        ),
        roster_due_day=_int(r.get("roster_due_day"), path, "rules.roster_due_day", low=1, high=28),
        holiday_table_due_days=_int(
            r.get("holiday_table_due_days"), path, "rules.holiday_table_due_days", low=0
        ),
        directory_refresh_months=_int(
            r.get("directory_refresh_months"), path, "rules.directory_refresh_months", low=1
        ),
    )


def _people(data: Any, path: Path) -> dict[str, Person]:
    people: dict[str, Person] = {}
    for i, p in enumerate(_list(data, path, "directory.people"), 1):
        where = f"directory.people[{i}]"
        p = _mapping(p, path, where)
        pid = _str(p.get("id"), path, f"{where}.id")
        if pid in people:
            raise _err(path, f"{where}.id", f"{pid!r} is listed twice")
        if "illustrative" not in p:
            raise _err(
                path,
                f"{where}.illustrative",
                "missing; say true for a placeholder, false for a real person",
            )
        people[pid] = Person(
            id=pid,
            name=_str(p.get("name"), path, f"{where}.name"),
            role=_str(p.get("role"), path, f"{where}.role", required=False),
            unit=_str(p.get("unit"), path, f"{where}.unit", required=False),
            phone=_str(p.get("phone"), path, f"{where}.phone", required=False),
            formal_staff=_bool(p.get("formal_staff", True), path, f"{where}.formal_staff"),
            illustrative=_bool(p.get("illustrative"), path, f"{where}.illustrative"),
        )
    if not people:
        raise _err(path, "directory.people", "empty; expected the people the roster names")
    return people


def _ref(value: Any, people: Mapping[str, Person], path: Path, where: str) -> str:
    pid = _str(value, path, where)
    if pid not in people:
        raise _err(path, where, f"{pid!r} is not in directory.people")
    return pid


def _rotations(data: Any, people: Mapping[str, Person], path: Path) -> tuple[_Rotation, ...]:
    rotations = []
    for i, r in enumerate(_list(data, path, "roster", required=False), 1):
        where = f"roster[{i}]"
        r = _mapping(r, path, where)
        start = _date(r.get("from"), path, f"{where}.from")
        end = _date(r.get("to"), path, f"{where}.to")
        if end < start:
            raise _err(path, f"{where}.to", f"{end} is before from {start}")
        officers = tuple(
            _ref(v, people, path, f"{where}.officers[{j}]")
            for j, v in enumerate(_list(r.get("officers"), path, f"{where}.officers"), 1)
        )
        leaders = tuple(
            _ref(v, people, path, f"{where}.leaders[{j}]")
            for j, v in enumerate(_list(r.get("leaders", []), path, f"{where}.leaders"), 1)
        )
        if not officers:
            raise _err(path, f"{where}.officers", "empty; expected at least one duty officer")
        leader_days = _int(r.get("leader_days", 1), path, f"{where}.leader_days", low=1)
        for other in rotations:
            if start <= other.end and other.start <= end:
                raise _err(
                    path,
                    f"{where}.from",
                    f"{start}..{end} overlaps the rotation {other.start}..{other.end}",
                )
        rotations.append(_Rotation(start, end, officers, leaders, leader_days))
    return tuple(sorted(rotations, key=lambda r: r.start))


def _day_rows(
    rows: Iterable[Any], people: Mapping[str, Person], path: Path, where: str, *, extra: dict
) -> dict[dt.date, dict[str, str]]:
    out: dict[dt.date, dict[str, str]] = {}
    for j, row in enumerate(rows, 1):
        w = f"{where}[{j}]"
        row = _mapping(row, path, w)
        day = _date(row.get("date"), path, f"{w}.date")
        if day in out:
            raise _err(path, f"{w}.date", f"{day} is listed twice")
        entry = dict(extra)
        for role in ("officer", "leader"):
            if row.get(role) is not None:
                entry[role] = _ref(row.get(role), people, path, f"{w}.{role}")
        if "officer" not in entry and "leader" not in entry:
            raise _err(path, w, "expected an officer and/or a leader")
        entry["note"] = _str(row.get("note"), path, f"{w}.note", required=False)
        out[day] = entry
    return out


def load_roster(path: str | Path) -> Roster:
    """Load and validate a duty roster (``duty.yaml``).

    Parameters
    ----------
    path : str or pathlib.Path
        The YAML file.

    Returns
    -------
    Roster

    Raises
    ------
    DataFileError
        One line naming the file and the field (``roster[1].officers[2]``) and what was
        expected: unreadable YAML, a missing rule, an unquoted handover time, a person the
        directory does not list, a date listed twice, overlapping rotations.

    Examples
    --------
    >>> from cityops.geo.jurisdiction import load_jurisdiction
    >>> roster = load_roster(load_jurisdiction("ejin-horo").path / "duty.yaml")
    >>> roster.rules.directory_refresh_months
    6
    """
    path = Path(path)
    data = load_yaml(path)
    source = data.get("source")
    source = [source] if isinstance(source, str) else source
    if not source or not all(isinstance(s, str) and s.strip() for s in source):
        raise _err(path, "source", "expected the seed lines the rules come from (text or list)")
    timezone = _str(data.get("timezone"), path, "timezone")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise _err(
            path, "timezone", f"unknown time zone {timezone!r}; expected e.g. Asia/Shanghai"
        ) from None
    rules = _rules(data.get("rules"), path)
    directory = _mapping(data.get("directory"), path, "directory")
    updated = directory.get("updated")
    if updated is None or updated == []:
        raise _err(path, "directory.updated", "missing; expected the date(s) it was issued")
    updated = updated if isinstance(updated, list) else [updated]
    editions = tuple(
        sorted(_date(d, path, f"directory.updated[{i}]") for i, d in enumerate(updated, 1))
    )
    people = _people(directory.get("people"), path)
    contacts = []
    for i, c in enumerate(
        _list(directory.get("contacts"), path, "directory.contacts", required=False), 1
    ):
        c = _mapping(c, path, f"directory.contacts[{i}]")
        contacts.append(
            {
                "name": _str(c.get("name"), path, f"directory.contacts[{i}].name"),
                "phone": _str(c.get("phone"), path, f"directory.contacts[{i}].phone"),
                "illustrative": _bool(
                    c.get("illustrative", True), path, f"directory.contacts[{i}].illustrative"
                ),
            }
        )
    phone = data.get("duty_phone") or {}
    phone = _mapping(phone, path, "duty_phone")
    rotations = _rotations(data.get("roster"), people, path)
    overrides = _day_rows(
        _list(data.get("overrides"), path, "overrides", required=False),
        people,
        path,
        "overrides",
        extra={},
    )
    holiday_days: dict[dt.date, dict[str, str]] = {}
    tables = _list(data.get("holiday_tables"), path, "holiday_tables", required=False)
    for i, table in enumerate(tables, 1):
        where = f"holiday_tables[{i}]"
        table = _mapping(table, path, where)
        name = _str(table.get("holiday"), path, f"{where}.holiday")
        rows = _day_rows(
            _list(table.get("days"), path, f"{where}.days"),
            people,
            path,
            f"{where}.days",
            extra={"holiday": name},
        )
        for day in rows:
            if day in holiday_days:
                raise _err(
                    path,
                    f"{where}.days",
                    f"{day} is already in the table {holiday_days[day]['holiday']}",
                )
        holiday_days.update(rows)
    return Roster(
        path=path,
        timezone=timezone,
        office=_str(data.get("office"), path, "office", required=False),
        illustrative=_bool(data.get("illustrative", False), path, "illustrative"),
        source=tuple(s.strip() for s in source),
        rules=rules,
        duty_phone=_str(phone.get("number"), path, "duty_phone.number", required=False),
        duty_phone_illustrative=_bool(
            phone.get("illustrative", True), path, "duty_phone.illustrative"
        ),
        directory_updated=editions,
        people=people,
        contacts=tuple(contacts),
        rotations=rotations,
        overrides=overrides,
        holiday_days=holiday_days,
    )


def jurisdiction_roster(jurisdiction: Any) -> Roster | None:
    """The roster of a jurisdiction (a :class:`~cityops.geo.jurisdiction.Jurisdiction`, a
    name or a folder), or None when its folder has no ``duty.yaml``."""
    if not hasattr(jurisdiction, "path"):
        from cityops.geo.jurisdiction import load_jurisdiction

        jurisdiction = load_jurisdiction(jurisdiction)
    path = Path(jurisdiction.path) / ROSTER_FILE
    return load_roster(path) if path.is_file() else None


# --------------------------------------------------------------------------------------------
# Who is on duty
# --------------------------------------------------------------------------------------------
def _local(roster: Roster, when: Any) -> dt.datetime:
    ts = parse_utc(when, what="time")
    return ts.tz_localize("UTC").tz_convert(roster.timezone).to_pydatetime()


def duty_day(roster: Roster, when: Any) -> dt.date:
    """The duty day in progress at ``when`` (UTC; aware times are converted).

    Before the handover time (local) it is still the previous day's duty.
    """
    local = _local(roster, when)
    day = local.date()
    return day - dt.timedelta(days=1) if local.time() < roster.rules.handover else day


def _shift_start(roster: Roster, day: dt.date) -> pd.Timestamp:
    local = dt.datetime.combine(day, roster.rules.handover, tzinfo=roster.tz)
    return pd.Timestamp(local).tz_convert("UTC").tz_localize(None)


def on_duty(roster: Roster, when: Any) -> OnDuty:
    """Who is on duty, and the leader on duty, at ``when``.

    Parameters
    ----------
    roster : Roster
    when : time-like
        UTC (naive times are UTC; aware times are converted; ``"now"`` is the wall clock).

    Returns
    -------
    OnDuty
        The duty day, its start and end (UTC), the officer and the leader (None where the
        roster has nobody) and where the assignment comes from.

    Examples
    --------
    With the handover at 08:30 Beijing time (00:30 UTC), 00:29 UTC is still the previous
    day's duty and 00:30 UTC the new day's:

    >>> from cityops.geo.jurisdiction import load_jurisdiction
    >>> roster = load_roster(load_jurisdiction("ejin-horo").path / "duty.yaml")
    >>> on_duty(roster, "2026-07-11T00:29Z").day, on_duty(roster, "2026-07-11T00:30Z").day
    (datetime.date(2026, 7, 10), datetime.date(2026, 7, 11))
    """
    ts = parse_utc(when, what="time")
    day = duty_day(roster, ts)
    officer, leader, where = roster.assignment(day)
    start = _shift_start(roster, day)
    return OnDuty(
        when_utc=ts,
        day=day,
        start_utc=start,
        end_utc=_shift_start(roster, day + dt.timedelta(days=1)),
        officer=roster.people.get(officer) if officer else None,
        leader=roster.people.get(leader) if leader else None,
        source=where,
        roster=roster,
    )


# --------------------------------------------------------------------------------------------
# Checking
# --------------------------------------------------------------------------------------------
def month_end(day: dt.date) -> dt.date:
    """The last day of ``day``'s month."""
    return (pd.Timestamp(day) + pd.offsets.MonthEnd(0)).date()


def _holiday_periods(start: dt.date, end: dt.date) -> tuple[list, list[str]]:
    """Statutory holiday periods overlapping ``[start, end]`` and the warnings about years the
    holiday data does not know (returned, not logged: the check reports them as notes)."""
    from cityops.geo.calendar import holidays

    quiet = logging.Filter("cityops.never")  # drops every record of the "cityops" logger
    logger = logging.getLogger("cityops")
    logger.addFilter(quiet)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            periods = holidays(start, end)
    finally:
        logger.removeFilter(quiet)
    return periods, [str(w.message) for w in caught]


def _holiday_days(start: dt.date, end: dt.date) -> tuple[dict[dt.date, str], list[str]]:
    """Statutory holiday days in ``[start, end]`` (Chinese name) and warnings about years the
    holiday data does not know."""
    periods, caught = _holiday_periods(start, end)
    days: dict[dt.date, str] = {}
    for p in periods:
        day = max(p.start, start)
        while day <= min(p.end, end):
            days[day] = p.name_zh
            day += dt.timedelta(days=1)
    return days, caught


def default_check_range(roster: Roster, now: Any) -> tuple[dt.date, dt.date, str]:
    """The duty days that must be on the roster at ``now``: from the current duty day to
    the end of the month, to the end of next month once next month's table is due (after
    ``rules.roster_due_day``), and to the end of any statutory holiday whose table is due
    (``rules.holiday_table_due_days`` before it starts) (001:10).

    Returns
    -------
    (first, last, why)
    """
    rules = roster.rules
    today = duty_day(roster, now)
    end = month_end(today)
    why = f"to the end of {today:%Y-%m}"
    if today.day > rules.roster_due_day:
        end = month_end(end + dt.timedelta(days=1))
        due = today.replace(day=rules.roster_due_day)
        why = f"to the end of {end:%Y-%m}: its table was due by {due} (001:10)"
    look = end + dt.timedelta(days=rules.holiday_table_due_days + 1)
    periods, _ = _holiday_periods(today, look)  # check_roster reports unknown years
    for p in periods:
        due = p.start - dt.timedelta(days=rules.holiday_table_due_days)
        if due < today and p.end > end:
            end = p.end
            why = f"to the end of {p.name_zh} {p.end}: its holiday table was due by {due} (001:10)"
    return today, end, why


def _runs(days: list[dt.date]) -> list[tuple[dt.date, dt.date]]:
    runs: list[tuple[dt.date, dt.date]] = []
    for day in days:
        if runs and (day - runs[-1][1]).days == 1:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def check_roster(roster: Roster, start: Any, end: Any, *, now: Any) -> list[Finding]:
    """Check the duty days ``start``..``end`` (inclusive) of a roster, and its directory at
    ``now``.

    Parameters
    ----------
    roster : Roster
    start, end : date-like
        First and last duty day (local dates).
    now : time-like
        Reference time (UTC) for the directory's age.

    Returns
    -------
    list of Finding
        Problems: days without a duty officer, without a leader on duty (when the rules ask
        for one), statutory holiday days without a row in a holiday table, informal staff on
        duty, a directory older than ``rules.directory_refresh_months`` at ``now`` or with no
        edition before it. Notes: holiday table rows on ordinary days, a directory due for
        re-issue today, years without holiday data, and the zero-report expectation.
        Consecutive days of the same kind are one finding.

    Notes
    -----
    The directory is "re-issued every half year" (每半年更新一次, 001:11): an edition exactly
    ``directory_refresh_months`` old is due that day but not late (editions on 1 January and
    1 July keep the rule); it is stale from the next day, when its age exceeds the period.
    Months are calendar months (31 August + 6 months = 28 February).
    """
    first = _as_day(start, "start")
    last = _as_day(end, "end")
    if last < first:
        raise InputError(f"end {last} is before start {first}")
    rules = roster.rules
    holiday, unknown = _holiday_days(first, last)
    per_kind: dict[tuple[str, str], list[dt.date]] = {}

    def add(kind: str, detail: str, day: dt.date) -> None:
        per_kind.setdefault((kind, detail), []).append(day)

    day = first
    while day <= last:
        officer, leader, _ = roster.assignment(day)
        if day in holiday and rules.holiday_tables and day not in roster.holiday_days:
            add("holiday_table_missing", holiday[day], day)
        if day in roster.holiday_days and day not in holiday:
            add("holiday_table_not_holiday", roster.holiday_days[day]["holiday"], day)
        if officer is None:
            add("missing_officer", "", day)
        if leader is None and rules.leader_on_duty:
            add("missing_leader", "", day)
        if rules.formal_staff_only:
            for pid in (officer, leader):
                if pid and not roster.people[pid].formal_staff:
                    add("informal_staff", roster.people[pid].name, day)
        day += dt.timedelta(days=1)

    words = {
        "missing_officer": (PROBLEM, "no duty officer (24 h duty)", "001:10"),
        "missing_leader": (PROBLEM, "no leader on duty (领导带班)", "001:10"),
        "holiday_table_missing": (
            PROBLEM,
            "statutory holiday {d} without a holiday duty table row",
            "001:10",
        ),
        "holiday_table_not_holiday": (
            NOTE,
            "holiday table {d} lists a day that is not a statutory holiday",
            "001:10",
        ),
        "informal_staff": (
            PROBLEM,
            "{d} is not formal staff (不得安排保安等非正式职工值班)",
            "001:10",
        ),
    }
    findings: list[Finding] = []
    for (kind, detail), days in per_kind.items():
        severity, text, src = words[kind]
        for a, b in _runs(days):
            findings.append(Finding(kind, severity, text.format(d=detail), a, b, src))
    for message in unknown:
        findings.append(Finding("holiday_data_missing", NOTE, message))
    findings.extend(_directory_findings(roster, now))
    findings.append(_zero_report(roster))
    order = {PROBLEM: 0, NOTE: 1}
    return sorted(findings, key=lambda f: (order[f.severity], f.first or dt.date.min, f.kind))


def _as_day(value: Any, what: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise InputError(f"{what}: cannot read {value!r} as a date (expected YYYY-MM-DD)") from None


def _directory_findings(roster: Roster, now: Any) -> list[Finding]:
    months = roster.rules.directory_refresh_months
    today = _local(roster, now).date()
    edition = roster.directory_edition(today)
    src = "001:11"
    if edition is None:
        return [
            Finding(
                "directory_missing",
                PROBLEM,
                f"no contact directory edition on or before {today} (directory.updated)",
                source=src,
            )
        ]
    due = (pd.Timestamp(edition) + pd.DateOffset(months=months)).date()
    if today > due:
        return [
            Finding(
                "directory_stale",
                PROBLEM,
                f"contact directory of {edition} is older "
                f"than {months} months on {today} (re-issue was due {due})",
                source=src,
            )
        ]
    if today == due:
        return [
            Finding(
                "directory_due",
                NOTE,
                f"contact directory of {edition} is due for re-issue today ({months} months)",
                source=src,
            )
        ]
    return []


def _zero_report(roster: Roster) -> Finding:
    rule = roster.rules
    if not rule.zero_report_required:
        return Finding("zero_report", NOTE, "zero reports not required by this roster's rules")
    when = (
        f"by {rule.zero_report_time:%H:%M} ({roster.timezone}) each duty day"
        if rule.zero_report_time
        else "each duty day; the seed states no time (set rules.zero_report.time)"
    )
    return Finding(
        "zero_report",
        NOTE,
        f"the duty officer reports 'nothing to report' (零报告) {when}",
        source="001:10",
    )


# --------------------------------------------------------------------------------------------
# Briefing lines
# --------------------------------------------------------------------------------------------
def _person_text(person: Person | None, lang: str) -> str:
    from cityops.i18n import t

    if person is None:
        return t("duty_unassigned", lang)
    phone = f"{'（' if lang == 'zh' else ' ('}{person.phone}{'）' if lang == 'zh' else ')'}"
    return person.name + (phone if person.phone else "")


def duty_lines(roster: Roster | None, when: Any, *, lang: str = "zh", error: str = "") -> list[str]:
    """Plain-text lines "who is on duty" for a briefing at ``when`` (UTC).

    Parameters
    ----------
    roster : Roster or None
        None: the jurisdiction has no roster, said as such ("未提供值班表").
    when : time-like
        The briefing's reference time.
    lang : {"zh", "en"}
    error : str
        A roster that could not be read: its one-line error, shown instead of hiding it.

    Returns
    -------
    list of str
        The duty line (officer, leader on duty, duty phone), then the illustrative mark and
        a stale-directory warning when they apply.
    """
    from cityops.i18n import t

    if error:
        return [t("duty_error", lang, error=error)]
    if roster is None:
        return [t("duty_no_roster", lang)]
    duty = on_duty(roster, when)
    lines = [
        t(
            "duty_line",
            lang,
            start=pd.Timestamp(duty.start_utc)
            .tz_localize("UTC")
            .tz_convert(roster.timezone)
            .strftime("%m-%d %H:%M"),
            officer=_person_text(duty.officer, lang),
            leader=_person_text(duty.leader, lang),
        )
    ]
    if roster.duty_phone:
        lines[0] += t("duty_phone", lang, phone=roster.duty_phone)
    if duty.illustrative or roster.duty_phone_illustrative:
        lines.append(t("duty_illustrative", lang))
    stale = [f for f in _directory_findings(roster, when) if f.severity == PROBLEM]
    if stale:
        lines.append(t("duty_directory_stale", lang, months=roster.rules.directory_refresh_months))
    return lines


def duty_html(lines: list[str]) -> str:
    """Duty lines (:func:`duty_lines`) as a small HTML block, the first line plain and the
    others (illustrative mark, stale directory) in a warning colour; text escaped."""
    first, rest = lines[0], lines[1:]
    extra = "".join(
        f"<div style='color:#a05a00;font-size:0.85em'>{html.escape(x)}</div>" for x in rest
    )
    return (
        "<div style='border:1px solid #ccc;background:#f6f8fa;padding:6px 10px;margin:6px 0;"
        f"max-width:900px'><div>{html.escape(first)}</div>{extra}</div>"
    )


def jurisdiction_duty_lines(jurisdiction: Any, when: Any, *, lang: str = "zh") -> list[str]:
    """:func:`duty_lines` for a jurisdiction's own roster: "no roster" when its folder has no
    ``duty.yaml``, the roster's one-line error when it is invalid (a roster typo must not stop
    a weather briefing, nor be hidden by it)."""
    try:
        roster, error = jurisdiction_roster(jurisdiction), ""
    except DataFileError as err:
        roster, error = None, str(err)
    return duty_lines(roster, when, lang=lang, error=error)
