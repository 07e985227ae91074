"""A jurisdiction's response plan as validated data (``data/jurisdictions/<name>/plan/``).

Files (all YAML with a ``source``)::

    groups.yaml          HQ groups: id, name_zh/en, lead_unit, member_units, duties, source
    special_plans.yaml   special work plans: number, id, names, owners, hazards, source
    measures.yaml        measures by hazard and minimum level (see the file's header)
    timing.yaml          follow-up rules, heating "four ones", response-posture mapping
    roles_channels.yaml  illustrative dissemination table by level

Every file is validated on load; a problem raises :class:`~cityops.errors.DataFileError` with
one line naming the file, the entry id and the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cityops.deadlines import BASES, CLOCKS, PERIOD_UNITS, PROGRESS
from cityops.errors import DataFileError, InputError
from cityops.resources import load_yaml, package_data

__all__ = [
    "FOUR_STOPS",
    "HAZARDS",
    "LOOPS",
    "PERIOD_KINDS",
    "Group",
    "Measure",
    "Plan",
    "SpecialPlan",
    "assign_loop",
    "load_plan",
    "measures_for",
    "posture_for",
]

#: Loops of the plan (002:1086-1092): 综合处置大闭环 / 行业处置中闭环 / 企业处置小闭环.
LOOPS = ("big", "middle", "small")
#: The four stops 四停 (002:1008).
FOUR_STOPS = ("stop_classes", "stop_work", "stop_business", "stop_transport")
DEADLINE_BASES = ("onset", "issue")
#: Special periods with measures of their own (000 title, 000:38): a measure's ``hazard`` may
#: name them; the period's start is their onset.
PERIOD_KINDS = ("holiday", "event")
LEVELS = (1, 2, 3, 4)
_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_SOURCE = re.compile(r"\d+:\d+")


def _national_hazards() -> tuple[str, ...]:
    data = load_yaml(package_data("rules", "tables", "national.yaml"))
    return (*data.get("hazards", {}), "low_temperature")


#: Hazard ids: those of ``cityops/rules/tables/national.yaml`` plus ``low_temperature``.
HAZARDS: tuple[str, ...] = _national_hazards()


@dataclass(frozen=True)
class Group:
    id: str
    number: int
    name_zh: str
    name_en: str
    lead_unit: str
    member_units: tuple[str, ...]
    duties_zh: str
    duties_en: str
    source: str


@dataclass(frozen=True)
class SpecialPlan:
    number: int
    id: str
    name_zh: str
    name_en: str
    owners: tuple[str, ...]
    hazards: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class Measure:
    id: str
    hazards: tuple[str, ...]
    min_level: int
    text_zh: str
    text_en: str
    lead_unit: str
    supporting_units: tuple[str, ...]
    #: A big-loop measure (000:133): acted on when the HQ decides the big loop.
    hq_decision: bool
    plan: str
    group: str
    deadline_relative_to: str
    deadline_hours: float
    four_stop: str | None
    source: str
    extreme_only: bool = False
    note: str = ""
    #: Only for units holding exposure points of this kind (e.g. ``geohazard_point``).
    unit_has: str = ""
    #: banner: one task per episode for the whole jurisdiction; town: one per town.
    scope: str = "town"
    #: The hazard part of the task's identity: "all" or the measure's hazards joined by "+".
    hazard_key: str = ""

    @property
    def deadline(self) -> dict[str, Any]:
        return {"relative_to": self.deadline_relative_to, "hours": self.deadline_hours}

    def applies(self, hazard: str, level: int, *, extreme: bool = False) -> bool:
        """Whether the measure applies to ``hazard`` at ``level``.

        An ``extreme: true`` measure needs the Annex 3 extreme flag or a red (4) level: every
        Annex 3 criterion is at or below the national red threshold.
        """
        if hazard not in self.hazards or level < self.min_level:
            return False
        return not self.extreme_only or extreme or level >= 4


@dataclass(frozen=True)
class Plan:
    jurisdiction: str
    path: Path
    groups: tuple[Group, ...]
    special_plans: tuple[SpecialPlan, ...]
    measures: tuple[Measure, ...]
    timing: Mapping[str, Any]
    posture: Mapping[str, Any]
    roles_channels: Mapping[str, Any]
    hq: Mapping[str, Any] = field(default_factory=dict)

    def group(self, group_id: str) -> Group:
        return next(g for g in self.groups if g.id == group_id)

    def special_plan(self, plan_id: str) -> SpecialPlan:
        return next(p for p in self.special_plans if p.id == plan_id)


# --------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------
def _fail(path: Path, entry: Any, field_: str, problem: str) -> DataFileError:
    return DataFileError(f"{path}: entry {entry!r}, field {field_!r}: {problem}")


def _text(path: Path, raw: Mapping, entry: Any, key: str, *, required: bool = True) -> str:
    value = raw.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise _fail(path, entry, key, "expected a non-empty string")
    return value.strip()


def _texts(path: Path, raw: Mapping, entry: Any, key: str) -> tuple[str, ...]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _fail(path, entry, key, "expected a list of strings")
    return tuple(v.strip() for v in value)


def _int(path: Path, raw: Mapping, entry: Any, key: str) -> int:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(path, entry, key, f"expected an integer, got {value!r}")
    return value


def _source(path: Path, raw: Mapping, entry: Any) -> str:
    src = _text(path, raw, entry, "source")
    if not _SOURCE.search(src):
        raise _fail(path, entry, "source", f"expected a seed file:line citation, got {src!r}")
    return src


def _entries(path: Path, data: Mapping, key: str) -> list[dict[str, Any]]:
    items = data.get(key)
    if not isinstance(items, list) or not items:
        raise DataFileError(f"{path}: missing or empty list {key!r}")
    for i, raw in enumerate(items):
        if not isinstance(raw, dict):
            raise _fail(path, f"#{i}", key, "expected a mapping")
    return items


def _entry_id(path: Path, raw: Mapping, index: int, seen: set[str]) -> str:
    value = raw.get("id")
    if not isinstance(value, str) or not _ID.match(value):
        raise _fail(path, f"#{index}", "id", f"expected a lower-case ascii id, got {value!r}")
    if value in seen:
        raise _fail(path, value, "id", "duplicate id")
    seen.add(value)
    return value


#: Who carries a measure out (measures.yaml ``scope``).
SCOPES = ("banner", "town")
#: Joins the hazards of a measure in its task identity ("lightning.hail"); "all" for every hazard.
HAZARD_KEY_SEP = "."


def hazards_of_key(key: str) -> tuple[str, ...]:
    """The hazard ids a task's hazard key stands for (``("all",)`` for every hazard)."""
    return tuple(str(key).split(HAZARD_KEY_SEP))


def _hazards(path: Path, raw: Mapping, entry: str, key: str) -> tuple[str, ...]:
    value = raw.get(key)
    if value == "all":
        return HAZARDS
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values:
        raise _fail(path, entry, key, "expected a hazard id, a list of them or 'all'")
    for h in values:
        if h not in HAZARDS + PERIOD_KINDS:
            known = ", ".join(HAZARDS + PERIOD_KINDS)
            raise _fail(path, entry, key, f"unknown hazard id {h!r} (known: {known})")
    return tuple(values)


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------
def _load_groups(path: Path) -> tuple[tuple[Group, ...], dict[str, Any]]:
    data = load_yaml(path)
    _source(path, data, "(file)")
    seen: set[str] = set()
    groups = []
    for i, raw in enumerate(_entries(path, data, "groups")):
        gid = _entry_id(path, raw, i, seen)
        groups.append(
            Group(
                id=gid,
                number=_int(path, raw, gid, "number"),
                name_zh=_text(path, raw, gid, "name_zh"),
                name_en=_text(path, raw, gid, "name_en"),
                lead_unit=_text(path, raw, gid, "lead_unit"),
                member_units=_texts(path, raw, gid, "member_units"),
                duties_zh=_text(path, raw, gid, "duties_zh"),
                duties_en=_text(path, raw, gid, "duties_en"),
                source=_source(path, raw, gid),
            )
        )
    hq = data.get("hq", {})
    if not isinstance(hq, dict):
        raise _fail(path, "hq", "hq", "expected a mapping")
    return tuple(groups), hq


def _load_special_plans(path: Path) -> tuple[SpecialPlan, ...]:
    data = load_yaml(path)
    _source(path, data, "(file)")
    seen: set[str] = set()
    plans = []
    for i, raw in enumerate(_entries(path, data, "plans")):
        pid = _entry_id(path, raw, i, seen)
        plans.append(
            SpecialPlan(
                number=_int(path, raw, pid, "number"),
                id=pid,
                name_zh=_text(path, raw, pid, "name_zh"),
                name_en=_text(path, raw, pid, "name_en"),
                owners=_texts(path, raw, pid, "owners"),
                hazards=_hazards(path, raw, pid, "hazards"),
                source=_source(path, raw, pid),
            )
        )
    numbers = [p.number for p in plans]
    if sorted(numbers) != list(range(1, len(plans) + 1)):
        raise _fail(path, "plans", "number", "plan numbers must run 1..N without gaps")
    return tuple(plans)


def _load_measures(path: Path, group_ids: set[str], plan_ids: set[str]) -> tuple[Measure, ...]:
    data = load_yaml(path)
    _source(path, data, "(file)")
    seen: set[str] = set()
    measures = []
    for i, raw in enumerate(_entries(path, data, "measures")):
        mid = _entry_id(path, raw, i, seen)
        hazards = _hazards(path, raw, mid, "hazard")
        level = raw.get("min_level")
        if isinstance(level, bool) or level not in LEVELS:
            raise _fail(path, mid, "min_level", f"expected 1-4 (blue..red), got {level!r}")
        if "loop" in raw:
            raise _fail(path, mid, "loop", "a task's loop is assigned from the plan's loop text "
                        "(timing.yaml loops); write hq_decision: true for a big-loop measure")  # fmt: skip
        hq_decision = raw.get("hq_decision", False)
        if not isinstance(hq_decision, bool):
            raise _fail(path, mid, "hq_decision", "expected true or false")
        plan = raw.get("plan")
        if plan not in plan_ids:
            raise _fail(path, mid, "plan", f"unknown special plan {plan!r}")
        group = raw.get("group")
        if group not in group_ids:
            raise _fail(path, mid, "group", f"unknown HQ group {group!r}")
        deadline = raw.get("deadline")
        if not isinstance(deadline, dict) or set(deadline) != {"relative_to", "hours"}:
            raise _fail(path, mid, "deadline", "expected {relative_to: onset|issue, hours: N}")
        basis, hours = deadline["relative_to"], deadline["hours"]
        if basis not in DEADLINE_BASES:
            raise _fail(path, mid, "deadline", f"relative_to must be onset or issue, got {basis!r}")
        if isinstance(hours, bool) or not isinstance(hours, (int, float)) or abs(hours) > 720:
            raise _fail(path, mid, "deadline", f"hours must be a number within ±720, got {hours!r}")
        if basis == "issue" and hours < 0:
            raise _fail(path, mid, "deadline", "a deadline cannot fall before the warning's issue")
        four_stop = raw.get("four_stop")
        if four_stop is not None and four_stop not in FOUR_STOPS:
            raise _fail(path, mid, "four_stop", f"expected one of {', '.join(FOUR_STOPS)} or null")
        conditions = raw.get("conditions") or {}
        if not isinstance(conditions, dict) or set(conditions) - {"extreme", "unit_has"}:
            raise _fail(path, mid, "conditions",
                        "only {extreme: true|false, unit_has: <exposure kind>} is understood")  # fmt: skip
        unit_has = conditions.get("unit_has", "")
        if not isinstance(unit_has, str):
            raise _fail(path, mid, "conditions", "unit_has must be an exposure kind")
        extreme_only = conditions.get("extreme", False)
        if not isinstance(extreme_only, bool):
            raise _fail(path, mid, "conditions", "extreme must be true or false")
        if hq_decision and not (level == 4 or (extreme_only and level >= 3)):
            raise _fail(
                path,
                mid,
                "hq_decision",
                "big loop is for catastrophe: needs min_level 4, or extreme: true and min_level >= 3",
            )
        scope = raw.get("scope")
        if scope not in SCOPES:
            raise _fail(path, mid, "scope", f"expected one of {', '.join(SCOPES)}, got {scope!r}")
        measures.append(
            Measure(
                id=mid,
                hazards=hazards,
                scope=scope,
                hazard_key="all" if raw.get("hazard") == "all" else HAZARD_KEY_SEP.join(hazards),
                min_level=level,
                text_zh=_text(path, raw, mid, "text_zh"),
                text_en=_text(path, raw, mid, "text_en"),
                lead_unit=_text(path, raw, mid, "lead_unit"),
                supporting_units=_texts(path, raw, mid, "supporting_units"),
                hq_decision=hq_decision,
                plan=plan,
                group=group,
                deadline_relative_to=basis,
                deadline_hours=float(hours),
                four_stop=four_stop,
                source=_source(path, raw, mid),
                extreme_only=extreme_only,
                unit_has=unit_has,
                note=_text(path, raw, mid, "note", required=False),
            )
        )
    return tuple(measures)


def _check_period(
    path: Path, entry: Any, key: str, period: Any, *, units: tuple[str, ...], positive: bool
) -> None:
    """A ``{value: N, unit: U}`` period of ``timing.yaml``: N a number (> 0 when ``positive``,
    else >= 0), U one of ``units``."""
    value = period.get("value") if isinstance(period, dict) else None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (value <= 0 if positive else value < 0)
        or period.get("unit") not in units
    ):
        bound = "N > 0" if positive else "N >= 0"
        raise _fail(path, entry, key, f"expected {{value: {bound}, unit: {'|'.join(units)}}}")


def _load_timing(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    data = load_yaml(path)
    _source(path, data, "(file)")
    seen: set[str] = set()
    for i, raw in enumerate(_entries(path, data, "followup")):
        rid = _entry_id(path, raw, i, seen)
        if raw.get("basis") not in BASES:
            raise _fail(path, rid, "basis", f"expected {' or '.join(BASES)}")
        periods = [raw.get("period")] if "by_level" not in raw else None
        if periods is None:
            by_level = raw.get("by_level")
            if not isinstance(by_level, dict) or not set(by_level) <= set(LEVELS) or not by_level:
                raise _fail(path, rid, "by_level", "expected periods keyed by levels 1-4")
            periods = list(by_level.values())
        for period in periods:
            _check_period(path, rid, "period", period, units=PERIOD_UNITS, positive=False)
        if raw.get("clock") not in CLOCKS:
            raise _fail(path, rid, "clock", f"expected one of {', '.join(CLOCKS)}")
        if raw.get("until") is not None and raw["until"] not in PROGRESS:
            raise _fail(path, rid, "until", f"expected null or one of {', '.join(PROGRESS)}")
        if any(loop not in LOOPS for loop in raw.get("loops") or ()):
            raise _fail(path, rid, "loops", f"expected a list of {', '.join(LOOPS)}")
        _source(path, raw, rid)
    clocks = data.get("report_clocks")
    if not isinstance(clocks, dict) or not isinstance(clocks.get("rules"), list):
        raise _fail(path, "report_clocks", "report_clocks", "expected a mapping with rules")
    seen_clocks: set[str] = set()
    for i, raw in enumerate(clocks["rules"]):
        rid = _entry_id(path, raw, i, seen_clocks)
        if not raw.get("kinds") or not set(raw["kinds"]) <= set(INCIDENT_KINDS):
            raise _fail(path, rid, "kinds", f"expected a list of {', '.join(INCIDENT_KINDS)}")
        if not isinstance(raw.get("scales"), list) or not raw["scales"]:
            raise _fail(path, rid, "scales", "expected a list of incident scale ids, or [any]")
        _check_period(path, rid, "within", raw.get("within"), units=("minute", "hour"),
                      positive=True)  # fmt: skip
        _source(path, raw, rid)
    loops = data.get("loops")
    if not isinstance(loops, dict) or not isinstance(loops.get("rules"), list):
        raise _fail(path, "loops", "loops", "expected a mapping with rules")
    seen_loops: set[str] = set()
    for i, raw in enumerate(loops["rules"]):
        rid = _entry_id(path, raw, i, seen_loops)
        if raw.get("loop") not in LOOPS:
            raise _fail(path, rid, "loop", f"expected one of {', '.join(LOOPS)}")
        when = raw.get("when") or {}
        if not isinstance(when, dict) or set(when) - LOOP_CONDITIONS:
            raise _fail(path, rid, "when", f"expected conditions among {sorted(LOOP_CONDITIONS)}")
        _source(path, raw, rid)
    if loops["rules"][-1].get("when"):
        raise _fail(path, "loops", "rules", "the last rule must have no conditions (the default)")
    four = data.get("heating_four_ones")
    if not isinstance(four, dict):
        raise _fail(path, "heating_four_ones", "heating_four_ones", "missing mapping")
    _source(path, four, "heating_four_ones")
    posture = data.get("posture")
    if not isinstance(posture, dict):
        raise _fail(path, "posture", "posture", "missing mapping")
    postures = posture.get("postures")
    if not isinstance(postures, list) or not postures:
        raise _fail(path, "posture", "postures", "missing list")
    ranks = []
    for raw in postures:
        pid = raw.get("id") if isinstance(raw, dict) else None
        if not isinstance(raw, dict) or not isinstance(raw.get("rank"), int):
            raise _fail(path, pid, "rank", "expected an integer rank")
        if raw.get("loop") is not None and raw["loop"] not in LOOPS:
            raise _fail(path, pid, "loop", f"expected one of {', '.join(LOOPS)} or null")
        ranks.append(raw["rank"])
    if sorted(ranks) != list(range(len(ranks))):
        raise _fail(path, "posture", "postures", "ranks must run 0..N")
    rules = posture.get("rules")
    if not isinstance(rules, dict) or not isinstance(rules.get("by_level"), dict):
        raise _fail(path, "posture", "rules", "expected a mapping with by_level")
    for lvl in (0, *LEVELS):
        if rules["by_level"].get(lvl) not in ranks:
            raise _fail(path, "posture", "rules.by_level", f"level {lvl} maps to no posture rank")
    for key in ("extreme_rank", "period_weather_raise", "period_weather_max_rank"):
        if not isinstance(rules.get(key), int):
            raise _fail(path, "posture", f"rules.{key}", "expected an integer")
    if set(rules.get("by_level_source") or {}) != set(LEVELS):
        raise _fail(path, "posture", "rules.by_level_source", "expected a source for levels 1-4")
    top = max(ranks)
    if max(rules["by_level"].values()) >= top or rules["extreme_rank"] >= top:
        # the big loop is the HQ's decision (000:133): no weather rule may set it
        raise _fail(path, "posture", "rules", f"no rule may reach rank {top} (the HQ decides it)")
    proposal = rules.get("big_loop_proposal")
    if not isinstance(proposal, dict) or proposal.get("min_level") not in LEVELS:
        raise _fail(path, "posture", "rules.big_loop_proposal", "expected {min_level: 1-4, ...}")
    _source(path, proposal, "big_loop_proposal")
    seen_periods: set[str] = set()
    for i, raw in enumerate(rules.get("periods") or []):
        rid = _entry_id(path, raw, i, seen_periods)
        if not raw.get("kinds") or not set(raw["kinds"]) <= {"holiday", "event"}:
            raise _fail(path, rid, "kinds", "expected a list of holiday and/or event")
        if raw.get("rank") not in ranks or raw["rank"] >= top:
            raise _fail(path, rid, "rank", f"expected a posture rank below {top}")
        _source(path, raw, rid)
    timing = {k: v for k, v in data.items() if k != "posture"}
    return timing, posture


def _load_roles_channels(path: Path) -> dict[str, Any]:
    data = load_yaml(path)
    _source(path, data, "(file)")
    roles = {r.get("id") for r in _entries(path, data, "roles")}
    channels = {c.get("id") for c in _entries(path, data, "channels")}
    levels = data.get("levels")
    if not isinstance(levels, dict) or set(levels) != set(LEVELS):
        raise _fail(path, "levels", "levels", "expected entries for levels 1-4")
    for lvl, spec in levels.items():
        if not isinstance(spec, dict):
            raise _fail(path, lvl, "levels", "expected a mapping")
        for key, known in (("roles", roles), ("channels", channels)):
            unknown = [x for x in spec.get(key, []) if x not in known]
            if unknown or not spec.get(key):
                raise _fail(path, f"level {lvl}", key, f"unknown or missing ids {unknown}")
    return data


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
def _plan_dir(jurisdiction: str | Path) -> Path:
    if isinstance(jurisdiction, Path) or "/" in str(jurisdiction):
        path = Path(jurisdiction).expanduser()
        return path if path.name == "plan" or not (path / "plan").is_dir() else path / "plan"
    from cityops.geo.jurisdiction import jurisdiction_search_path

    for d in jurisdiction_search_path():
        if (d / str(jurisdiction) / "plan").is_dir():
            return d / str(jurisdiction) / "plan"
    raise InputError(f"no response plan for jurisdiction {jurisdiction!r} (no plan/ folder found)")


def load_plan(jurisdiction: str | Path = "ejin-horo") -> Plan:
    """Load and validate a jurisdiction's response plan.

    ``jurisdiction`` is a name looked up like :func:`cityops.geo.load_jurisdiction` does, or a
    path to the jurisdiction folder or its ``plan/`` folder.
    """
    folder = _plan_dir(jurisdiction)
    groups, hq = _load_groups(folder / "groups.yaml")
    special_plans = _load_special_plans(folder / "special_plans.yaml")
    measures = _load_measures(
        folder / "measures.yaml", {g.id for g in groups}, {p.id for p in special_plans}
    )
    timing, posture = _load_timing(folder / "timing.yaml")
    roles_channels = _load_roles_channels(folder / "roles_channels.yaml")
    return Plan(
        jurisdiction=folder.parent.name,
        path=folder,
        groups=groups,
        special_plans=special_plans,
        measures=measures,
        timing=MappingProxyType(timing),
        posture=MappingProxyType(posture),
        roles_channels=MappingProxyType(roles_channels),
        hq=MappingProxyType(hq),
    )


def measures_for(plan: Plan, hazard: str, level: int, *, extreme: bool = False) -> list[Measure]:
    """Measures of ``plan`` for ``hazard`` at warning ``level`` (1-4), in file order.

    ``extreme`` is the Annex 3 extreme flag; a red level counts as extreme.
    """
    if hazard not in HAZARDS + PERIOD_KINDS:
        raise InputError(f"unknown hazard id {hazard!r} (known: {', '.join(HAZARDS)})")
    if level not in LEVELS:
        raise InputError(f"warning level must be 1-4 (blue..red), got {level!r}")
    return [m for m in plan.measures if m.applies(hazard, level, extreme=extreme)]


#: Kinds of incident a report clock (timing.yaml ``report_clocks``) may name.
INCIDENT_KINDS = ("incident", "geohazard", "geohazard_danger")

#: Conditions a loop rule (timing.yaml ``loops``) may state.
LOOP_CONDITIONS = {"hq_decision", "min_level", "extreme", "multi_department", "enterprise_lead"}


def assign_loop(
    plan: Plan, measure: Measure, level: int, *, extreme: bool = False, big_loop: bool = False
) -> tuple[str, str]:
    """The loop of a task and its basis, from the plan's loop text (``timing.yaml`` ``loops``).

    The first rule whose conditions all hold gives the loop: ``hq_decision`` (a big-loop
    measure and the HQ has decided the big loop), ``min_level``, ``extreme`` (Annex 3 flag or
    red), ``multi_department`` (the measure names supporting units), ``enterprise_lead`` (the
    lead unit is a company: ``loops.enterprise_markers``). Returns ``(loop, basis)``, the basis
    as ``rule_id@000:135``.
    """
    loops = plan.timing["loops"]
    markers = tuple(loops.get("enterprise_markers") or ())
    facts = {
        "hq_decision": measure.hq_decision and big_loop,
        "extreme": bool(extreme) or level >= 4,
        "multi_department": bool(measure.supporting_units),
        "enterprise_lead": any(m in measure.lead_unit for m in markers),
    }
    for rule in loops["rules"]:
        when = rule.get("when") or {}
        ok = all(
            level >= value if key == "min_level" else facts[key] == value
            for key, value in when.items()
        )
        if ok:
            return rule["loop"], f"{rule['id']}@{cites(rule['source'])}"
    raise AssertionError("the last loop rule has no conditions")  # validated on load


_CITE = re.compile(r"\b\d{3}:\d+(?:-\d+)?")


def cites(source: str) -> str:
    """The seed line citations of a source text ("000:135, 002:1312-1313")."""
    return ", ".join(dict.fromkeys(_CITE.findall(str(source))))


def posture_for(
    plan: Plan,
    level: int,
    *,
    extreme: bool = False,
    periods: Sequence[Mapping[str, Any]] = (),
    big_loop: bool = False,
) -> dict[str, Any]:
    """The response posture of a unit (``timing.yaml`` ``posture``), with its basis.

    Parameters
    ----------
    plan : Plan
    level : int
        Highest warning level in the unit (0 = none, 1-4).
    extreme : bool, optional
        The Annex 3 extreme flag.
    periods : sequence of mappings, optional
        The posture period rules (``posture.rules.periods``) that apply to the unit: holidays
        and events in their own right; a warning during one raises the posture further.
    big_loop : bool, optional
        The HQ has decided the big loop (000:133); cityops never sets it by itself.

    Returns
    -------
    dict
        The posture entry (``id``, ``name_zh``, ``name_en``, ``loop``, ...) and ``basis``: the
        rules that set it with the plan lines they rest on, in a language-neutral form
        (``level=4@000:135; period=large_event@000:135, 002:1312-1313``) the report words.
    """
    if level not in (0, *LEVELS):
        raise InputError(f"warning level must be 0-4, got {level!r}")
    rules = plan.posture["rules"]
    rank = rules["by_level"][level]
    basis = [f"level={level}@{cites(rules['by_level_source'][level])}"] if level else []
    if extreme and rules["extreme_rank"] > rank:
        rank = rules["extreme_rank"]
        basis.append(f"extreme@{cites(rules.get('extreme_source', ''))}")
    if periods:
        best = max(periods, key=lambda p: p["rank"])
        if best["rank"] > rank:
            rank = best["rank"]
            basis.append(f"period={best['id']}@{cites(best['source'])}")
        if level > 0:
            raised = min(rank + rules["period_weather_raise"], rules["period_weather_max_rank"])
            if raised > rank:
                rank = raised
                basis.append(f"period_weather@{cites(rules.get('period_weather_source', ''))}")
    if big_loop:
        rank = max(p["rank"] for p in plan.posture["postures"])
        basis.append("hq@000:133")
    posture = next(p for p in plan.posture["postures"] if p["rank"] == rank)
    return {**posture, "basis": "; ".join(basis)}
