"""Rule tables: the warning criteria as validated data (YAML with a source per row).

A table maps each hazard to its levels; a level holds when any of its conditions holds
(``any:``) or when all of them hold (``all:``). Every condition names the variable(s), how
values are reduced over time, the comparison and the threshold with its units.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

from cityops import units as _units
from cityops.errors import DataFileError
from cityops.resources import load_yaml, package_data
from cityops.rules.derived import derived_inputs, rule_variables
from cityops.rules.seasons import HazardSeason, load_hazard_seasons
from cityops.units import convert_quantity, parse_quantity

__all__ = [
    "Condition",
    "Group",
    "HazardRules",
    "LevelRule",
    "RuleTable",
    "beaufort_lower_bound",
    "level_names",
    "load_rule_table",
]

log = logging.getLogger("cityops")

OPERATORS = (">=", ">", "<=", "<")
REDUCTIONS = ("point", "sum", "max", "min", "daily_max", "daily_min", "daily_drop")
GRADINGS = ("intensity", "lead")


@dataclass(frozen=True)
class Condition:
    """One comparison: ``reduce(variable over window) op threshold``.

    Attributes
    ----------
    variables : tuple of str
        Canonical variable names in order of preference (the first present is used).
    reduce : str
        ``point`` (the value at each valid time), ``sum``/``max``/``min`` over ``window``,
        ``daily_max``/``daily_min`` by local calendar day, or ``daily_drop``: how much the
        daily minimum fell from ``consecutive_days`` days before (a temperature difference).
    window : pandas.Timedelta or None
        Accumulation window for ``sum``/``max``/``min``.
    op : str
        One of ``>=``, ``>``, ``<=``, ``<``.
    threshold : float
        Threshold in the canonical units of the variable (``units``).
    units : str
        Canonical units of the variable (and of ``threshold``).
    threshold_text : str
        The threshold as written in the table (e.g. ``"force 6"``, ``"50 mm"``).
    consecutive_days : int
        For daily reductions: number of consecutive days that must satisfy the comparison.
        For ``daily_drop``: the number of days over which the daily value falls (the cold
        wave's 24 h = 1, 48 h = 2).
    at_step : bool
        For ``daily_max``/``daily_min``: hold only at the steps whose own value meets the
        threshold (``onset: step``, e.g. the hot afternoon of a heat run) rather than on the
        whole qualifying day (the default, so daily conditions combine with ``all:``).
    required : bool
        In an ``all:`` level, whether the level can be judged without this condition's
        variable (``required: false``: judged on the other conditions, with a note).
    """

    variables: tuple[str, ...]
    reduce: str
    op: str
    threshold: float
    units: str
    threshold_text: str
    window: pd.Timedelta | None = None
    consecutive_days: int = 1
    required: bool = True
    at_step: bool = False

    @property
    def key(self) -> str:
        """A stable identifier of the aggregated quantity (variable, reduction, window)."""
        win = f"_{int(self.window / pd.Timedelta('1min'))}min" if self.window is not None else ""
        days = f"_{self.consecutive_days}d" if self.consecutive_days > 1 else ""
        return f"{self.variables[0]}_{self.reduce}{win}{days}"

    @property
    def value_units(self) -> str:
        """Units of the aggregated value: those of the variable, except a ``daily_drop``,
        a temperature difference (``delta_degC``: a fall of 10 °C is not 10 °C)."""
        return "delta_degC" if self.reduce == "daily_drop" else self.units

    @property
    def inputs(self) -> tuple[str, ...]:
        """The variables named and, for derived ones, the canonical variables they are built
        from (``rain`` from ``precip`` and ``snowfall``)."""
        out = list(self.variables)
        for var in self.variables:
            out += [v for v in derived_inputs(var) if v not in out]
        return tuple(out)

    def describe(self, lang: str | None = None) -> str:
        """The condition as text: compact for tables (``precip 3 h sum >= 50 mm``, the
        default), or for readers in ``"zh"`` (``3小时累计降水量≥50 mm``) or ``"en"``
        (``3 h total precipitation amount ≥ 50 mm``)."""
        if lang == "en":
            name = rule_variables()[self.variables[0]]["long_name"].split(" (")[0]
            name = name.replace(" over the step", "")
            prefix = ""
            if self.window is not None:
                hours = self.window / pd.Timedelta("1h")
                how = {"sum": "total", "max": "maximum", "min": "minimum"}[self.reduce]
                prefix = f"{hours:g} h {how} "
            elif self.reduce == "daily_drop":
                op = {">=": "≥", ">": ">", "<=": "≤", "<": "<"}[self.op]
                hours = 24 * self.consecutive_days
                text = display_units(self.threshold_text)
                return f"fall of the daily minimum temperature within {hours} h {op} {text}"
            elif self.reduce.startswith("daily"):
                prefix = (
                    "daily "
                    if self.consecutive_days == 1
                    else (f"{self.consecutive_days} consecutive days of daily ")
                )
            op = {">=": "≥", ">": ">", "<=": "≤", "<": "<"}[self.op]
            text = self.threshold_text
            if text.lower().startswith("force"):
                text = f"force {text.split()[1]} ({self.threshold:g} m/s)"
            return f"{prefix}{name} {op} {display_units(text)}"
        if lang == "zh":
            name = rule_variables()[self.variables[0]].get("long_name_zh", self.variables[0])
            prefix = ""
            if self.window is not None:
                hours = self.window / pd.Timedelta("1h")
                how = {"sum": "累计", "max": "最大", "min": "最小"}[self.reduce]
                prefix = f"{hours:g}小时{how}"
            elif self.reduce == "daily_drop":
                op = {">=": "≥", ">": ">", "<=": "≤", "<": "<"}[self.op]
                hours = 24 * self.consecutive_days
                return f"{hours}小时内日最低气温下降{op}{display_units(self.threshold_text)}"
            elif self.reduce.startswith("daily"):
                prefix = "日" if self.consecutive_days == 1 else f"连续{self.consecutive_days}天日"
            op = {">=": "≥", ">": ">", "<=": "≤", "<": "<"}[self.op]
            text = self.threshold_text
            if text.lower().startswith("force"):
                text = f"{text.split()[1]}级（{self.threshold:g} m/s）"
            return f"{prefix}{name}{op}{display_units(text)}"
        win = ""
        if self.window is not None:
            hours = self.window / pd.Timedelta("1h")
            win = f" {hours:g} h {self.reduce}"
        elif self.reduce != "point":
            win = f" {self.reduce}"
        days = f" x{self.consecutive_days} d" if self.consecutive_days > 1 else ""
        return f"{self.variables[0]}{win}{days} {self.op} {self.threshold_text}"


def display_units(text: str) -> str:
    """Units as readers write them (``degC`` -> ``°C``, ``m s-1`` -> ``m/s``)."""
    for a, b in (("delta_degC", "°C"), ("degC", "°C"), ("m s-1", "m/s"), ("percent", "%"),
                 ("ug m-3", "µg/m³"), ("J kg-1", "J/kg")):  # fmt: skip
        text = text.replace(a, b)
    return "" if text.strip() == "1" else text


@dataclass(frozen=True)
class Group:
    """Conditions combined with ``any`` (or) or ``all`` (and); items may be groups."""

    mode: str
    items: tuple[Condition | Group, ...]

    def flat(self) -> tuple[Condition, ...]:
        """Every condition of the group, depth first."""
        out: list[Condition] = []
        for item in self.items:
            out.extend(item.flat() if isinstance(item, Group) else [item])
        return tuple(out)


@dataclass(frozen=True)
class LevelRule:
    """The criterion of one level of one hazard.

    ``criteria`` is evaluated; ``proxy``, when given, is used only if the criteria cannot be
    evaluated for want of inputs (e.g. lightning from CAPE and precipitation when there is no
    lightning probability), and every output then says a proxy was used.
    """

    level: int
    lead: pd.Timedelta
    criteria: Group
    text_zh: str
    source: str
    proxy: Group | None = None
    proxy_note: str = ""

    @property
    def mode(self) -> str:
        return self.criteria.mode

    @property
    def conditions(self) -> tuple[Condition, ...]:
        """The criteria's conditions followed by the proxy's."""
        proxy = self.proxy.flat() if self.proxy is not None else ()
        return self.criteria.flat() + proxy


@dataclass(frozen=True)
class HazardRules:
    """All levels of one hazard, lowest first."""

    hazard: str
    name_zh: str
    name_en: str
    grading: str
    levels: tuple[LevelRule, ...]
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    #: Local dates in which the hazard applies (None: all year); see cityops.rules.seasons.
    season: HazardSeason | None = None

    def name(self, lang: str = "zh") -> str:
        return self.name_zh if lang == "zh" else self.name_en

    def level_rule(self, level: int) -> LevelRule | None:
        for rule in self.levels:
            if rule.level == level:
                return rule
        return None

    @property
    def variables(self) -> set[str]:
        """Every variable the levels read, with the inputs of derived ones."""
        return {v for rule in self.levels for c in rule.conditions for v in c.inputs}

    @property
    def requires(self) -> tuple[str, ...]:
        """Inputs beyond the grid's variables (e.g. a tropical-cyclone track)."""
        return tuple(self.extra.get("requires", ()))


@dataclass(frozen=True)
class RuleTable:
    """A named, versioned set of hazard rules."""

    ruleset: str
    title_zh: str
    title_en: str
    source: str
    version: str
    path: Path
    hazards: dict[str, HazardRules] = field(hash=False)

    def __iter__(self):
        return iter(self.hazards.values())

    def __getitem__(self, hazard: str) -> HazardRules:
        return self.hazards[hazard]

    def __contains__(self, hazard: object) -> bool:
        return hazard in self.hazards


@cache
def _beaufort() -> dict[int, float]:
    data = load_yaml(package_data("data", "beaufort.yaml"))
    return {int(k): float(v) for k, v in data["lower_ms"].items()}


def beaufort_lower_bound(force: int) -> float:
    """Lower bound (m/s, inclusive) of Beaufort force ``force`` (GB/T 28591-2012)."""
    table = _beaufort()
    if force not in table:
        raise KeyError(f"Beaufort force {force} is not in GB/T 28591-2012 (0-17)")
    return table[force]


@cache
def level_names() -> dict[int, dict[str, str]]:
    """Level number to its names and colour (``cityops/data/levels.yaml``)."""
    data = load_yaml(package_data("data", "levels.yaml"))
    return {int(row["level"]): row for row in data["levels"]}


@cache
def level_words() -> dict[str, int]:
    """Words naming a level: 1, blue, Blue, 蓝色 … → 1 (from ``levels.yaml``)."""
    words: dict[str, int] = {}
    for level, row in level_names().items():
        for key in ("name", "name_en", "name_zh"):
            if row.get(key):
                words[str(row[key]).lower()] = int(level)
        words[str(level)] = int(level)
    return words


def parse_level(value) -> int | None:
    """A level 0-4 from an integer or a level name (``红色``, ``red``, ``红色预警``); None when
    it is not one. The one reader of levels people type (signal logs, CAP, ``--level``)."""
    text = str(value).strip().lower().removesuffix("预警").removesuffix("warning").strip()
    if re.fullmatch(r"[0-4](\.0*)?", text):
        return int(float(text))
    return level_words().get(text)


def _fail(path: Path, where: str, message: str) -> DataFileError:
    return DataFileError(f"{path}: {where}: {message}")


def _parse_condition(raw: Any, path: Path, where: str) -> Condition:
    if not isinstance(raw, dict):
        raise _fail(path, where, "a condition must be a mapping")
    registry = rule_variables()
    variables = raw.get("variable")
    if isinstance(variables, str):
        variables = [variables]
    if not variables or not isinstance(variables, list):
        raise _fail(path, where, "field 'variable' is missing")
    for var in variables:
        if var not in registry:
            raise _fail(
                path,
                where,
                f"field 'variable': unknown variable {var!r}; expected one of "
                f"{', '.join(registry)}",
            )
    units_set = {registry[v]["units"] for v in variables}
    if len(units_set) != 1:
        raise _fail(path, where, "field 'variable': alternatives must share units")
    units = units_set.pop()
    reduce = raw.get("reduce", "point")
    if reduce not in REDUCTIONS:
        raise _fail(path, where, f"field 'reduce': {reduce!r} is not one of {REDUCTIONS}")
    op = raw.get("op")
    if op not in OPERATORS:
        raise _fail(path, where, f"field 'op': {op!r} is not one of {OPERATORS}")
    window = None
    if reduce in ("sum", "max", "min"):
        if "window" not in raw:
            raise _fail(path, where, f"field 'window' is required with reduce: {reduce}")
        window = _parse_duration(raw["window"], path, where, "window")
    elif "window" in raw:
        raise _fail(path, where, f"field 'window' makes no sense with reduce: {reduce}")
    days = int(raw.get("consecutive_days", 1))
    if reduce == "daily_drop" and units != "degC":
        raise _fail(path, where, "reduce: daily_drop applies to temperatures")
    if days < 1 or (days > 1 and not reduce.startswith("daily")):
        raise _fail(path, where, "field 'consecutive_days' needs a daily reduction and >= 1")
    text = raw.get("threshold")
    if text is None:
        raise _fail(path, where, "field 'threshold' is missing")
    text = str(text).strip()
    if text.lower().startswith("force"):
        try:
            force = int(text.split()[1])
            value_ms = beaufort_lower_bound(force)
        except (IndexError, ValueError, KeyError) as err:
            raise _fail(path, where, f"field 'threshold': {text!r} ({err})") from None
        quantity = _units.registry().Quantity(value_ms, "m/s")
    else:
        quantity = parse_quantity(text, where=f"{path}: {where}: field 'threshold'")
    try:
        # Round away conversion noise (0.5 km -> 500.0000000001 m) so "exactly at the
        # threshold" stays exact. A drop is a temperature difference, not a temperature.
        target = "delta_degC" if reduce == "daily_drop" else units
        threshold = float(f"{convert_quantity(quantity, target):.10g}")
    except Exception:
        raise _fail(
            path, where, f"field 'threshold': {text!r} is not convertible to {units}"
        ) from None
    required = raw.get("required", True)
    if not isinstance(required, bool):
        raise _fail(path, where, "field 'required' must be true or false")
    onset = raw.get("onset", "day" if reduce.startswith("daily") else "step")
    if onset not in ("day", "step"):
        raise _fail(path, where, "field 'onset' must be 'day' or 'step'")
    return Condition(
        required=required,
        at_step=onset == "step",
        variables=tuple(variables),
        reduce=reduce,
        op=op,
        threshold=threshold,
        units=units,
        threshold_text=text,
        window=window,
        consecutive_days=days,
    )


def _parse_duration(value: Any, path: Path, where: str, name: str) -> pd.Timedelta:
    try:
        td = pd.Timedelta(str(value).replace(" ", ""))
    except ValueError:
        raise _fail(path, where, f"field {name!r}: {value!r} is not a duration") from None
    if td <= pd.Timedelta(0):
        raise _fail(path, where, f"field {name!r}: must be positive")
    return td


def _parse_group(raw: Any, path: Path, where: str) -> Group:
    """``{any: [...]}`` or ``{all: [...]}``; items are conditions or nested groups."""
    if not isinstance(raw, dict):
        raise _fail(path, where, "a criterion must be a mapping")
    modes = [m for m in ("any", "all") if m in raw]
    if len(modes) != 1:
        raise _fail(path, where, "needs exactly one of 'any' or 'all'")
    mode = modes[0]
    items = raw[mode]
    if not isinstance(items, list) or not items:
        raise _fail(path, where, f"field {mode!r} must be a non-empty list")
    parsed: list[Condition | Group] = []
    for i, item in enumerate(items):
        sub = f"{where} condition {i + 1}"
        if isinstance(item, dict) and ("any" in item or "all" in item):
            parsed.append(_parse_group(item, path, sub))
        else:
            parsed.append(_parse_condition(item, path, sub))
    return Group(mode, tuple(parsed))


def _parse_level(raw: Any, path: Path, where: str) -> LevelRule:
    if not isinstance(raw, dict):
        raise _fail(path, where, "a level must be a mapping")
    level = raw.get("level")
    if level not in (1, 2, 3, 4):
        raise _fail(path, where, f"field 'level': {level!r} is not 1..4")
    where = f"{where} level {level}"
    criteria = _parse_group({k: raw[k] for k in ("any", "all") if k in raw}, path, where)
    proxy = None
    if "proxy" in raw:
        proxy = _parse_group(raw["proxy"], path, f"{where} proxy")
        if not raw.get("proxy_note"):
            raise _fail(path, where, "a proxy needs a 'proxy_note' saying what it stands for")
    if "source" not in raw:
        raise _fail(path, where, "field 'source' is missing (every row names its source)")
    return LevelRule(
        level=int(level),
        lead=_parse_duration(raw["lead"], path, where, "lead")
        if raw.get("lead")
        else pd.Timedelta(0),
        criteria=criteria,
        text_zh=str(raw.get("text_zh", "")),
        source=str(raw["source"]),
        proxy=proxy,
        proxy_note=str(raw.get("proxy_note", "")),
    )


def _parse_season(extra: dict[str, Any], path: Path, where: str) -> HazardSeason | None:
    """``season: KEY`` (dates from cityops/data/hazard_seasons.yaml until a jurisdiction's
    replace them, :func:`cityops.rules.seasons.bind_seasons`), or the older
    ``season_months: [...]`` (whole local months)."""
    key, months = extra.get("season"), extra.get("season_months")
    if key is not None and months is not None:
        raise _fail(path, where, "give 'season' or 'season_months', not both")
    if key is not None:
        seasons = load_hazard_seasons()
        if key not in seasons:
            raise _fail(path, where, f"field 'season': {key!r} is not one of {sorted(seasons)}")
        return seasons[str(key)]
    if months is None:
        return None
    if not isinstance(months, list) or not all(isinstance(m, int) and 1 <= m <= 12 for m in months):
        raise _fail(path, where, "field 'season_months' must list months 1..12")
    last = {m: pd.Timestamp(2000, m, 1).days_in_month for m in months}
    windows = tuple((f"{m:02d}-01", f"{m:02d}-{last[m]:02d}") for m in sorted(set(months)))
    return HazardSeason(f"months {months}", windows, f"{path}: season_months", str(path))


def parse_rule_table(data: dict[str, Any], path: Path) -> RuleTable:
    """Validate a rule table already read from YAML.

    A table with ``extends: NAME`` starts from that table: each hazard it lists replaces the
    base's hazard of that id (or adds a new one, e.g. ``low_temperature``), and ``remove:``
    drops hazards. This is how a province or county overrides national rows.
    """
    for key in ("ruleset", "source", "hazards"):
        if key not in data:
            raise _fail(path, "top level", f"field {key!r} is missing")
    hazards: dict[str, HazardRules] = {}
    if data.get("extends"):
        base = load_rule_table(str(data["extends"]))
        hazards.update(base.hazards)
        for name in data.get("remove", []) or []:
            if name not in hazards:
                raise _fail(path, "field 'remove'", f"{name!r} is not in {base.ruleset}")
            del hazards[name]
    if not isinstance(data["hazards"], dict):
        raise _fail(path, "top level", "field 'hazards' must be a mapping")
    if not data["hazards"] and not data.get("extends"):
        raise _fail(path, "top level", "field 'hazards' is empty")
    for hazard, spec in data["hazards"].items():
        where = f"hazard {hazard}"
        if not (isinstance(hazard, str) and hazard.isascii() and hazard[:1].isalpha()
                and all(c.isalnum() or c == "_" for c in hazard)):  # fmt: skip
            raise _fail(path, where, "the id is not ASCII letters, digits, '_' (ids name files)")
        if not isinstance(spec, dict) or not isinstance(spec.get("levels"), list):
            raise _fail(path, where, "needs a 'levels' list")
        if not spec["levels"] and not spec.get("requires"):
            raise _fail(path, where, "needs at least one level")
        levels = tuple(
            sorted((_parse_level(r, path, where) for r in spec["levels"]), key=lambda r: r.level)
        )
        if len({r.level for r in levels}) != len(levels):
            raise _fail(path, where, "a level appears twice")
        grading = spec.get("grading", "intensity")
        if grading not in GRADINGS:
            raise _fail(path, where, f"field 'grading': {grading!r} is not one of {GRADINGS}")
        extra = {
            k: v for k, v in spec.items() if k not in ("levels", "name_zh", "name_en", "grading")
        }
        hazards[hazard] = HazardRules(
            hazard=hazard,
            name_zh=str(spec.get("name_zh", hazard)),
            name_en=str(spec.get("name_en", hazard)),
            grading=grading,
            levels=levels,
            extra=extra,
            season=_parse_season(extra, path, where),
        )
    return RuleTable(
        ruleset=str(data["ruleset"]),
        title_zh=str(data.get("title_zh", data["ruleset"])),
        title_en=str(data.get("title_en", data["ruleset"])),
        source=str(data["source"]),
        version=str(data.get("version", "")),
        path=path,
        hazards=hazards,
    )


def load_rule_table(name_or_path: str | Path = "national") -> RuleTable:
    """Load a shipped rule table by name (``national``, ``ejin-horo-annex3``) or a YAML file.

    Parameters
    ----------
    name_or_path : str or path
        A shipped table's name or a path to a YAML rule table.

    Returns
    -------
    RuleTable

    Raises
    ------
    DataFileError
        When the file is missing or a row is malformed; the message names the row and field.
    """
    path = Path(name_or_path)
    if path.is_dir():
        raise DataFileError(f"{path}: is a folder; expected a YAML rule table or a shipped name")
    if not path.suffix:
        shipped = package_data("rules", "tables", f"{name_or_path}.yaml")
        if not shipped.exists():
            names = sorted(p.stem for p in shipped.parent.glob("*.yaml"))
            raise DataFileError(f"unknown rule set {name_or_path!r}; shipped: {', '.join(names)}")
        path = shipped
    path = path.resolve()
    chain = _LOADING.__dict__.setdefault("chain", [])
    if path in chain:
        # extends: itself, or a cycle (a -> b -> a): refuse before recursing without end.
        cycle = " -> ".join(str(p) for p in [*chain[chain.index(path) :], path])
        raise DataFileError(
            f"{chain[-1]}: extends {path.name} makes a cycle ({cycle}); expected 'extends' to "
            "name another rule table"
        )
    chain.append(path)
    try:
        return _load_cached(path)
    finally:
        chain.pop()


#: The tables being loaded in this thread (``extends`` chain), to detect cycles.
_LOADING = threading.local()


@cache
def _load_cached(path: Path) -> RuleTable:
    table = parse_rule_table(load_yaml(path), path)
    log.debug("loaded rule table %s (%s) from %s", table.ruleset, table.version, path)
    return table
