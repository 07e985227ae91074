"""Special periods: statutory holidays, seasons and local important events (spec §1.5, §5).

The Ejin Horo plan covers extreme weather, major holidays and important events together
(seed-requirements §5). This module lists the periods that overlap a date range and raises the
attention level of the town risk table's rows that fall in them.

* Statutory holidays come from the maintained ``chinese-calendar`` package (official adjusted
  days off); ``cityops/data/holidays.yaml`` is the fallback for years the package does not know.
* Seasons (flood, heating, geological-hazard key period, fire) are data:
  ``cityops/data/seasons.yaml``.
* Important events are a user-editable file per jurisdiction: ``<jurisdiction>/events.yaml``.
* The raising rules are data: ``cityops/data/attention.yaml``.

All period dates are Beijing calendar dates, first and last day inclusive.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from cityops.errors import DataFileError, InputError
from cityops.geo.jurisdiction import Jurisdiction
from cityops.resources import load_yaml, package_data
from cityops.timeutil import REPORT_TZ, parse_utc

__all__ = [
    "COLUMNS",
    "KINDS",
    "Period",
    "apply_attention",
    "holidays",
    "load_attention_rules",
    "load_events",
    "seasons",
    "special_periods",
]

log = logging.getLogger("cityops")

#: Period kinds.
KINDS = ("holiday", "event", "season")
#: Values of a season's ``units`` (seasons.yaml): whole jurisdiction, or the units with
#: registered geological-hazard points.
SEASON_SCOPES = ("", "geohazard_points")
#: Columns of :func:`special_periods` (``key``: holiday keys joined by "+", season key, or "").
COLUMNS = [
    "kind",
    "name_zh",
    "name_en",
    "unit_code",
    "start",
    "end",
    "expected_crowd",
    "owners",
    "source",
    "key",
]
EVENT_FIELDS = ("name_zh", "name_en", "unit", "start", "end", "expected_crowd", "owners")
_LEVEL_MAX = 4


@dataclass(frozen=True)
class Period:
    """One special period.

    Attributes
    ----------
    kind : str
        ``"holiday"``, ``"event"`` or ``"season"``.
    name_zh, name_en : str
        Names; a holiday period merging two holidays is named ``"国庆节、中秋节"``.
    start, end : datetime.date
        First and last day (inclusive, Beijing dates).
    unit_code : str
        Unit the period belongs to; ``""`` for the whole jurisdiction.
    expected_crowd : int or None
        Expected number of people (events only).
    owners : tuple of str
        Responsible departments.
    source : str
        Where the period comes from.
    key : str
        Holiday keys joined by ``"+"`` (``"national_day+mid_autumn_festival"``), the season key,
        or ``""`` for events.
    scope : str
        Seasons only: ``"geohazard_points"`` for a season of the units with registered
        geological-hazard points (``units`` in seasons.yaml), else ``""``.
    """

    kind: str
    name_zh: str
    name_en: str
    start: dt.date
    end: dt.date
    unit_code: str = ""
    expected_crowd: int | None = None
    owners: tuple[str, ...] = field(default=())
    source: str = ""
    key: str = ""
    #: Seasons only: ``"geohazard_points"`` = the units with registered geological-hazard
    #: points (set per unit by :func:`special_periods`); ``""`` = as ``unit_code`` says.
    scope: str = ""

    def overlaps(self, start: dt.date, end: dt.date) -> bool:
        """Whether the period shares a day with ``[start, end]``."""
        return self.start <= end and self.end >= start

    def row(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name_zh": self.name_zh,
            "name_en": self.name_en,
            "unit_code": self.unit_code,
            "start": self.start,
            "end": self.end,
            "expected_crowd": self.expected_crowd,
            "owners": list(self.owners),
            "source": self.source,
            "key": self.key,
        }


def _as_date(value: Any, what: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, pd.Timestamp):
        return value.date()
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise InputError(f"{what}: cannot read {value!r} as a date (expected YYYY-MM-DD)") from None


# ---- holidays ----------------------------------------------------------------------------
def _holiday_table_path() -> Path:
    return package_data("data", "holidays.yaml")


@cache
def _holiday_table() -> tuple[dict[str, dict[str, str]], dict[int, list[dict]], str]:
    path = _holiday_table_path()
    data = load_yaml(path)
    names = data.get("names")
    years = data.get("years")
    if not isinstance(names, dict) or not isinstance(years, dict):
        raise DataFileError(f"{path}: needs 'names' and 'years' mappings")
    table: dict[int, list[dict]] = {}
    for year, periods in years.items():
        if not isinstance(periods, list):
            raise DataFileError(f"{path}: year {year}: expected a list of periods")
        rows = []
        for i, p in enumerate(periods, 1):
            where = f"{path}: year {year} row {i}"
            if not isinstance(p, dict):
                raise DataFileError(f"{where}: expected a mapping")
            keys = p.get("holidays")
            keys = [keys] if isinstance(keys, str) else keys
            if not keys or any(k not in names for k in keys):
                raise DataFileError(f"{where}, field 'holidays': unknown or missing {keys!r}")
            try:
                start = _as_date(p.get("start"), f"{where}, field 'start'")
                end = _as_date(p.get("end"), f"{where}, field 'end'")
            except InputError as err:
                raise DataFileError(str(err)) from None
            if end < start:
                raise DataFileError(f"{where}, field 'end': {end} is before start {start}")
            rows.append({"holidays": list(keys), "start": start, "end": end})
        table[int(year)] = rows
    return names, table, str(data.get("source", ""))


def _package_days(year: int) -> dict[dt.date, str] | None:
    """Labelled days off of ``year`` from ``chinese-calendar`` (None: the year is unknown)."""
    try:
        import chinese_calendar
    except ImportError:  # pragma: no cover - the package is a dependency
        return None
    days: dict[dt.date, str] = {}
    day = dt.date(year, 1, 1)
    try:
        while day.year == year:
            on_holiday, name = chinese_calendar.get_holiday_detail(day)
            if on_holiday and name:
                member = next((h for h in chinese_calendar.Holiday if h.value == name), None)
                days[day] = member.name if member is not None else str(name)
            day += dt.timedelta(days=1)
    except NotImplementedError:
        return None
    return days


def _package_source() -> str:
    try:
        import chinese_calendar

        version = getattr(chinese_calendar, "__version__", "?")
    except ImportError:  # pragma: no cover
        version = "?"
    return f"chinese-calendar {version} (State Council holiday notices)"


def _table_days(year: int) -> dict[dt.date, list[str]] | None:
    _, table, _ = _holiday_table()
    if year not in table:
        return None
    days: dict[dt.date, list[str]] = {}
    for p in table[year]:
        day = p["start"]
        while day <= p["end"]:
            days[day] = list(p["holidays"])
            day += dt.timedelta(days=1)
    return days


def holidays(start: Any, end: Any) -> list[Period]:
    """Statutory holiday periods of China overlapping ``[start, end]``.

    Each period runs from the first to the last consecutive day off (weekends inside and
    adjusted days included); holidays that touch (National Day and Mid-Autumn in 2025) form one
    period named after both, the longer first.

    Parameters
    ----------
    start, end : date-like
        First and last day of the range (inclusive).

    Returns
    -------
    list of Period
        ``kind="holiday"``, ``unit_code=""``, in date order.

    Warns
    -----
    UserWarning
        A year in the range is known neither to ``chinese-calendar`` nor to
        ``cityops/data/holidays.yaml`` (its holidays are then missing).
    """
    start = _as_date(start, "holidays start")
    end = _as_date(end, "holidays end")
    names, _, table_source = _holiday_table()
    # Look a little beyond the range so periods crossing its edges (or the new year) are whole.
    lo, hi = start - dt.timedelta(days=16), end + dt.timedelta(days=16)
    labels: dict[dt.date, list[str]] = {}
    sources: dict[dt.date, str] = {}
    for year in range(lo.year, hi.year + 1):
        pkg = _package_days(year)
        if pkg is not None:
            for day, key in pkg.items():
                labels.setdefault(day, []).append(key)
                sources[day] = _package_source()
            continue
        table = _table_days(year)
        if table is None:
            if year in range(start.year, end.year + 1):
                msg = (
                    f"no statutory-holiday data for {year}: neither chinese-calendar nor "
                    f"{_holiday_table_path()} knows it; add the year to that table"
                )
                warnings.warn(msg, stacklevel=2)
                log.warning(msg)
            continue
        log.info("holidays %s: chinese-calendar lacks the year, using %s", year, "holidays.yaml")
        for day, keys in table.items():
            if day not in labels:
                labels[day] = list(keys)
                sources[day] = f"cityops/data/holidays.yaml: {table_source}"
    periods: list[Period] = []
    run: list[dt.date] = []

    def close(run: list[dt.date]) -> None:
        counts: dict[str, int] = {}
        for day in run:
            for key in labels[day]:
                counts[key] = counts.get(key, 0) + 1
        keys = sorted(counts, key=lambda k: -counts[k])  # stable: ties keep first appearance
        zh = "、".join(names.get(k, {}).get("name_zh", k) for k in keys)
        en = " and ".join(names.get(k, {}).get("name_en", k) for k in keys)
        periods.append(
            Period(
                kind="holiday",
                name_zh=zh,
                name_en=en,
                start=run[0],
                end=run[-1],
                source=sources[run[0]],
                key="+".join(keys),
            )
        )

    for day in sorted(labels):
        if run and (day - run[-1]).days != 1:
            close(run)
            run = []
        run.append(day)
    if run:
        close(run)
    return [p for p in periods if p.overlaps(start, end)]


# ---- seasons -----------------------------------------------------------------------------
def _month_day(value: Any, where: str) -> tuple[int, int]:
    try:
        month, day = (int(x) for x in str(value).split("-"))
        dt.date(2001, month, day)  # not a leap year: 02-29 is refused
    except (ValueError, TypeError):
        raise DataFileError(f"{where}: cannot read {value!r} as MM-DD") from None
    return month, day


def seasons(start: Any, end: Any, *, path: str | Path | None = None) -> list[Period]:
    """Seasons (``cityops/data/seasons.yaml``) overlapping ``[start, end]``.

    Parameters
    ----------
    start, end : date-like
        First and last day of the range (inclusive).
    path : str or Path, optional
        Another seasons file of the same format.

    Returns
    -------
    list of Period
        ``kind="season"``, ``unit_code=""``, one per season window and year, in date order.
    """
    start = _as_date(start, "seasons start")
    end = _as_date(end, "seasons end")
    path = Path(path) if path is not None else package_data("data", "seasons.yaml")
    data = load_yaml(path)
    items = data.get("seasons")
    if not isinstance(items, list):
        raise DataFileError(f"{path}: missing 'seasons' list")
    out: list[Period] = []
    for i, s in enumerate(items, 1):
        where = f"{path}: season {i}"
        if not isinstance(s, dict):
            raise DataFileError(f"{where}: expected a mapping")
        for fld in ("key", "name_zh", "name_en", "windows"):
            if not s.get(fld):
                raise DataFileError(f"{where}, field {fld!r}: missing")
        if not isinstance(s["windows"], list):
            raise DataFileError(f"{where}, field 'windows': expected a list")
        scope = str(s.get("units") or "")
        if scope not in SEASON_SCOPES:
            raise DataFileError(
                f"{where}, field 'units': {scope!r} is not one of {', '.join(SEASON_SCOPES[1:])}"
            )
        for w in s["windows"]:
            if not isinstance(w, dict):
                raise DataFileError(f"{where}, field 'windows': expected {{start, end}} mappings")
            m0, d0 = _month_day(w.get("start"), f"{where}, field 'windows.start'")
            m1, d1 = _month_day(w.get("end"), f"{where}, field 'windows.end'")
            crosses = (m1, d1) < (m0, d0)
            for year in range(start.year - 1, end.year + 1):
                first = dt.date(year, m0, d0)
                last = dt.date(year + 1 if crosses else year, m1, d1)
                p = Period(
                    kind="season",
                    name_zh=str(s["name_zh"]),
                    name_en=str(s["name_en"]),
                    start=first,
                    end=last,
                    owners=tuple(str(o) for o in s.get("owners") or ()),
                    source=" ".join(str(s.get("source", data.get("source", ""))).split()),
                    key=str(s["key"]),
                    scope=scope,
                )
                if p.overlaps(start, end):
                    out.append(p)
    return sorted(out, key=lambda p: (p.start, p.key))


# ---- events ------------------------------------------------------------------------------
def _event_lines(path: Path) -> dict[int, int]:
    """Row number (1-based) -> line number of each event in the file (best effort)."""
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
        for key, value in node.value:
            if key.value == "events" and isinstance(value, yaml.SequenceNode):
                return {i: item.start_mark.line + 1 for i, item in enumerate(value.value, 1)}
    except Exception:
        pass
    return {}


def load_events(jurisdiction: Jurisdiction, path: str | Path | None = None) -> list[Period]:
    """Read and validate a jurisdiction's important events.

    Parameters
    ----------
    jurisdiction : Jurisdiction
        Resolves each row's ``unit`` (code, name or alias; ``""`` = whole jurisdiction).
    path : str or Path, optional
        Events file; default ``<jurisdiction folder>/events.yaml`` (no file: no events).

    Returns
    -------
    list of Period
        ``kind="event"``, in file order.

    Raises
    ------
    DataFileError
        One line naming the file, the row (1 = first event, with its line) and the field:
        a missing field, an unreadable date, ``end`` before ``start``, an unknown unit, a
        negative crowd or owners that are not a list.
    """
    if path is None:
        path = Path(jurisdiction.path) / "events.yaml"
        if not path.exists():
            return []
    path = Path(path)
    data = load_yaml(path)
    rows = data.get("events")
    if rows is None:
        return []
    if not isinstance(rows, list):
        raise DataFileError(f"{path}: 'events' must be a list")
    lines = _event_lines(path)
    file_source = str(data.get("source", ""))
    out: list[Period] = []
    for i, row in enumerate(rows, 1):
        where = f"{path}: row {i}" + (f" (line {lines[i]})" if i in lines else "")
        if not isinstance(row, dict):
            raise DataFileError(f"{where}: expected a mapping of event fields")

        def bad(fld: str, why: str, where: str = where) -> DataFileError:
            return DataFileError(f"{where}, field {fld!r}: {why}")

        for fld in EVENT_FIELDS:
            value = row.get(fld)
            if value is None or (fld != "unit" and isinstance(value, str) and not value.strip()):
                raise bad(fld, "missing")
        try:
            start = _as_date(row["start"], "start")
        except InputError:
            raise bad("start", f"cannot read {row['start']!r} as a date (YYYY-MM-DD)") from None
        try:
            end = _as_date(row["end"], "end")
        except InputError:
            raise bad("end", f"cannot read {row['end']!r} as a date (YYYY-MM-DD)") from None
        if end < start:
            raise bad("end", f"{end} is before start {start}")
        unit_key = str(row["unit"]).strip()
        if unit_key:
            try:
                unit_code = jurisdiction.unit(unit_key).code
            except InputError as err:
                raise bad("unit", str(err)) from None
        else:
            unit_code = ""
        crowd = row["expected_crowd"]
        if isinstance(crowd, bool) or not isinstance(crowd, int) or crowd < 0:
            raise bad("expected_crowd", f"expected a whole number >= 0, got {crowd!r}")
        owners = row["owners"]
        if isinstance(owners, str):
            owners = [owners]
        if not isinstance(owners, list) or not owners:
            raise bad("owners", "expected a non-empty list of departments")
        source = " ".join(str(row.get("source") or file_source).split())
        out.append(
            Period(
                kind="event",
                name_zh=str(row["name_zh"]).strip(),
                name_en=str(row["name_en"]).strip(),
                start=start,
                end=end,
                unit_code=unit_code,
                expected_crowd=crowd,
                owners=tuple(str(o).strip() for o in owners),
                source=source,
            )
        )
    return out


def _scoped(periods: list[Period], jurisdiction: Jurisdiction) -> list[Period]:
    """Seasons of a scope (``units: geohazard_points``) as one period per unit of the scope:
    the geological-hazard key period concerns only the towns with registered points."""
    out: list[Period] = []
    towns: list[str] | None = None
    for p in periods:
        if p.scope != "geohazard_points":
            out.append(p)
            continue
        if towns is None:
            from cityops.geo.geohazard import geohazard_towns

            towns = geohazard_towns(jurisdiction)
        out.extend(dataclasses.replace(p, unit_code=code, scope="") for code in towns)
    return out


def special_periods(
    jurisdiction: Jurisdiction,
    start: Any,
    end: Any,
    *,
    events_path: str | Path | None = None,
    seasons_path: str | Path | None = None,
) -> pd.DataFrame:
    """All holidays, events and seasons overlapping ``[start, end]``.

    Parameters
    ----------
    jurisdiction : Jurisdiction
        Whose events (``<folder>/events.yaml``) are read.
    start, end : date-like
        First and last day (inclusive, Beijing dates); ``end`` may equal ``start``.
    events_path, seasons_path : str or Path, optional
        Other events / seasons files.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`: kind (holiday|event|season), name_zh, name_en, unit_code
        (``""`` = whole jurisdiction), start, end (``datetime.date``), expected_crowd
        (``Int64``, missing except for events), owners (list of str), source, key. Sorted by
        start, kind.

    Raises
    ------
    InputError
        Unreadable dates or ``end`` before ``start``.
    DataFileError
        A bad events, seasons or holidays file.

    Examples
    --------
    >>> j = load_jurisdiction("ejin-horo")
    >>> special_periods(j, "2026-07-10", "2026-07-12")[["kind", "name_zh"]]  # doctest: +SKIP
    """
    start = _as_date(start, "special_periods start")
    end = _as_date(end, "special_periods end")
    if end < start:
        raise InputError(f"special_periods: end {end} is before start {start}")
    periods = [
        *holidays(start, end),
        *(p for p in load_events(jurisdiction, events_path) if p.overlaps(start, end)),
        *_scoped(seasons(start, end, path=seasons_path), jurisdiction),
    ]
    order = {k: i for i, k in enumerate(KINDS)}
    periods.sort(key=lambda p: (p.start, order[p.kind]))
    frame = pd.DataFrame([p.row() for p in periods], columns=COLUMNS)
    frame["expected_crowd"] = frame["expected_crowd"].astype("Int64")
    for col in ("kind", "name_zh", "name_en", "unit_code", "source", "key"):
        frame[col] = frame[col].astype(object)
    return frame


# ---- attention ---------------------------------------------------------------------------
_RULE_FIELDS = {
    "id",
    "description",
    "kinds",
    "seasons",
    "hazards",
    "min_level",
    "units",
    "raise",
    "add_owners",
    "owners",
    "concerns",
}


def _str_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str | int):
        return [str(value)]
    if not isinstance(value, list):
        raise DataFileError(f"{where}: expected a list")
    return [str(v) for v in value]


def load_attention_rules(
    rules: str | Path | Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Read and validate the attention rules (format: ``cityops/data/attention.yaml``).

    Parameters
    ----------
    rules : str, Path, mapping or list of mappings, optional
        A rules file, its parsed content (``{"rules": [...]}``) or the list of rules; default
        the shipped ``cityops/data/attention.yaml``.

    Returns
    -------
    list of dict
        Normalised rules (every field present).

    Raises
    ------
    DataFileError
        Unknown fields, unknown kinds, negative raise…, naming the rule.
    """
    if rules is None:
        rules = package_data("data", "attention.yaml")
    if isinstance(rules, str | Path):
        label = str(rules)
        data: Any = load_yaml(rules)
    else:
        label = "attention rules"
        data = rules
    items = data.get("rules") if isinstance(data, Mapping) else data
    if not isinstance(items, list):
        raise DataFileError(f"{label}: expected a 'rules' list")
    out = []
    for i, r in enumerate(items, 1):
        if not isinstance(r, Mapping):
            raise DataFileError(f"{label}: rule {i}: expected a mapping")
        where = f"{label}: rule {i} ({r.get('id', '?')})"
        unknown = set(r) - _RULE_FIELDS
        if unknown:
            raise DataFileError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        kinds = _str_list(r.get("kinds"), f"{where}, field 'kinds'")
        if not kinds or any(k not in KINDS for k in kinds):
            raise DataFileError(f"{where}, field 'kinds': expected some of {', '.join(KINDS)}")
        raise_by = r.get("raise", 0)
        min_level = r.get("min_level", 1)
        for fld, value in (("raise", raise_by), ("min_level", min_level)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 4:
                raise DataFileError(f"{where}, field {fld!r}: expected 0..4, got {value!r}")
        out.append(
            {
                "id": str(r.get("id", f"rule{i}")),
                "kinds": kinds,
                "seasons": _str_list(r.get("seasons"), f"{where}, field 'seasons'"),
                "hazards": _str_list(r.get("hazards"), f"{where}, field 'hazards'"),
                "units": _str_list(r.get("units"), f"{where}, field 'units'"),
                "min_level": min_level,
                "raise": raise_by,
                "add_owners": bool(r.get("add_owners", False)),
                "owners": _str_list(r.get("owners"), f"{where}, field 'owners'"),
                "concerns": _str_list(r.get("concerns"), f"{where}, field 'concerns'"),
            }
        )
    return out


def _rule_applies(rule: dict[str, Any], period: Mapping[str, Any], row: Mapping[str, Any]) -> bool:
    if period["kind"] not in rule["kinds"]:
        return False
    if rule["seasons"] and period.get("key", "") not in rule["seasons"]:
        return False
    if rule["hazards"] and str(row["hazard"]) not in rule["hazards"]:
        return False
    if rule["units"] and str(row["town_code"]) not in rule["units"]:
        return False
    return int(row["_level"]) >= rule["min_level"]


def _level(value: Any, i: int) -> int:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return 0
    try:
        return int(float(value))
    except (TypeError, ValueError):
        raise InputError(
            f"town table row {i}, field 'level': expected 0..4, got {value!r}"
        ) from None


def _utc(value: Any, what: str) -> pd.Timestamp | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)) or str(value) == "":
        return None
    return parse_utc(value, what=what)


def _period_label(period: Mapping[str, Any]) -> str:
    label = str(period["name_zh"])
    crowd = period.get("expected_crowd")
    if crowd is not None and not pd.isna(crowd):
        label += f"（预计{int(crowd)}人）"
    return label


def _join(items: Iterable[str], sep: str) -> str:
    return sep.join(dict.fromkeys(i for i in items if i))


def apply_attention(
    town_table: pd.DataFrame,
    periods: pd.DataFrame,
    *,
    rules: str | Path | Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
) -> pd.DataFrame:
    """Raise the attention level of town hazard rows that fall in special periods.

    A period applies to a row when its days (Beijing dates, inclusive) overlap the hazard's
    ``onset_utc``..``end_utc`` seen in Beijing time (a missing end means the onset instant;
    a row without onset has no time and no period applies) and its ``unit_code`` is the row's
    ``town_code`` or ``""`` (whole jurisdiction). The rules (:func:`load_attention_rules`)
    then act: the largest ``raise`` of the rules that hold counts (raises do not add up) and
    ``attention_level`` never exceeds 4 (red).

    Parameters
    ----------
    town_table : pandas.DataFrame
        Town risk table with columns town_code, hazard, level (0..4), onset_utc (ISO 8601 UTC
        or ``""``), end_utc (same; optional).
    periods : pandas.DataFrame
        :func:`special_periods` output (``key`` is optional).
    rules : str, Path, mapping or list, optional
        Attention rules; default ``cityops/data/attention.yaml``.

    Returns
    -------
    pandas.DataFrame
        A copy with ``attention_level`` (int 0..4), ``special_conditions`` (the applying
        periods, ``"; "``-joined, e.g. ``"那达慕大会（预计30000人）"``), ``extra_owners``
        (``"、"``-joined departments added by the rules) and ``extra_concerns`` (``"; "``-joined).

    Raises
    ------
    InputError
        A missing column or an unreadable level or time.
    """
    missing = [c for c in ("town_code", "hazard", "level", "onset_utc") if c not in town_table]
    if missing:
        raise InputError(f"apply_attention: town table lacks column(s) {', '.join(missing)}")
    missing = [c for c in ("kind", "name_zh", "unit_code", "start", "end") if c not in periods]
    if missing:
        raise InputError(f"apply_attention: periods lack column(s) {', '.join(missing)}")
    rule_list = load_attention_rules(rules)
    tz = REPORT_TZ
    plist = []
    for rec in periods.to_dict("records"):
        first = _as_date(rec["start"], "period start")
        last = _as_date(rec["end"], "period end")
        rec["_from"] = pd.Timestamp(first).tz_localize(tz).tz_convert("UTC").tz_localize(None)
        rec["_to"] = (
            (pd.Timestamp(last) + pd.Timedelta(days=1)).tz_localize(tz).tz_convert("UTC")
        ).tz_localize(None)
        rec["unit_code"] = "" if pd.isna(rec["unit_code"]) else str(rec["unit_code"])
        rec.setdefault("owners", [])
        rec.setdefault("key", "")
        plist.append(rec)

    out = town_table.copy()
    levels, conditions, owners_col, concerns_col = [], [], [], []
    for i, row in enumerate(town_table.to_dict("records"), 1):
        level = _level(row["level"], i)
        row["_level"] = level
        onset = _utc(row["onset_utc"], f"town table row {i}, field 'onset_utc'")
        end = _utc(row.get("end_utc"), f"town table row {i}, field 'end_utc'")
        labels: list[str] = []
        owners: list[str] = []
        concerns: list[str] = []
        raise_by = 0
        if onset is not None:
            stop = end if end is not None and end > onset else onset + pd.Timedelta(seconds=1)
            for p in plist:
                if p["unit_code"] not in ("", str(row["town_code"])):
                    continue
                if not (onset < p["_to"] and stop > p["_from"]):
                    continue
                labels.append(_period_label(p))
                for rule in rule_list:
                    if not _rule_applies(rule, p, row):
                        continue
                    raise_by = max(raise_by, rule["raise"])
                    if rule["add_owners"]:
                        p_owners = p["owners"]
                        owners.extend(
                            str(o) for o in (p_owners if isinstance(p_owners, list | tuple) else [])
                        )
                    owners.extend(rule["owners"])
                    concerns.extend(rule["concerns"])
        levels.append(min(_LEVEL_MAX, level + raise_by))
        conditions.append(_join(labels, "; "))
        owners_col.append(_join(owners, "、"))
        concerns_col.append(_join(concerns, "; "))
    out["attention_level"] = pd.Series(levels, index=out.index, dtype="int64")
    out["special_conditions"] = pd.Series(conditions, index=out.index, dtype=object)
    out["extra_owners"] = pd.Series(owners_col, index=out.index, dtype=object)
    out["extra_concerns"] = pd.Series(concerns_col, index=out.index, dtype=object)
    return out
