"""Geological-hazard points and the geological-hazard meteorological risk warning.

Files in ``data/jurisdictions/<name>/``::

    geohazard_points.yaml   the register of hazard points (隐患点): zone, town, type, threat,
                            monitor (监测员) and responsible person (责任人), location
    geohazard_zones.yaml    susceptibility zones (cityops.geo.exposure.load_geohazard_zones):
                            each point's zone and the point counts the register must match

The rain trigger of a point is the geological-hazard meteorological risk warning
(地质灾害气象风险预警, seed 002:1570): a rule table (``warning_rules`` of the register, by
default ``cityops/rules/tables/geohazard-meteo-risk.yaml``) whose levels 1-4 are the grades
四级 (blue) .. 一级 (red). The table is evaluated by :func:`cityops.rules.evaluate`, the one owner
of windows, partial windows, units, missing values and the season (the key period, dates
from ``hazard_seasons.yaml``); each point reads the engine's level at its **nearest grid cell**
(as the asset register does) and the susceptibility class of its zone shifts the grade
(``susceptibility_offset`` of the table). Nothing here sums or compares windows.

Only towns with registered points get geological-hazard output: a town without points has
no row, no concern and no briefing section (seed 002:1426: 阿勒腾席热镇, 红庆河镇, 苏布尔嘎镇
and 伊金霍洛镇 have none). A point that cannot be assessed (outside the key period, outside the
grid, no rain input, no window the data can fill) says so and never reads as "no risk".
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely
import xarray as xr

from cityops.errors import DataFileError, InputError
from cityops.geo.exposure import (
    APPROXIMATE_TOLERANCE_KM,
    _cell_index,
    _iso,
    _jurisdiction,
    _reason,
    load_geohazard_zones,
)
from cityops.geo.jurisdiction import Jurisdiction
from cityops.resources import load_yaml
from cityops.rules import evaluate, load_rule_table
from cityops.rules.seasons import bind_seasons
from cityops.rules.table import RuleTable

__all__ = [
    "CAUSES",
    "FILE_NAME",
    "GEOHAZARD_TYPES",
    "POINT_COLUMNS",
    "add_geohazard_concerns",
    "evaluate_geohazard_points",
    "geohazard_risk",
    "geohazard_towns",
    "geohazard_warning_table",
    "grade_label",
    "load_geohazard_points",
    "town_geohazard_risk",
]

logger = logging.getLogger(__name__)

#: Name of the register in a jurisdiction folder.
FILE_NAME = "geohazard_points.yaml"
#: Rule table used when the register names none.
DEFAULT_RULES = "geohazard-meteo-risk"
#: Hazard id of the warning in its rule table.
HAZARD = "geohazard"

#: The plan's hazard types (seed 002:1414): id -> (zh, en). The banner has only the first two
#: (002:1426).
GEOHAZARD_TYPES: dict[str, tuple[str, str]] = {
    "collapse": ("崩塌", "collapse"),
    "subsidence": ("地面塌陷", "ground subsidence"),
    "landslide": ("滑坡", "landslide"),
    "debris_flow": ("泥石流", "debris flow"),
    "ground_fissure": ("地裂缝", "ground fissure"),
    "ground_settlement": ("地面沉降", "ground settlement"),
}
#: Causes named by the zones (002:1474-1522): id -> (zh, en).
CAUSES: dict[str, tuple[str, str]] = {
    "road_cut": ("筑路切坡", "road cut"),
    "mining_goaf": ("采空区", "mining goaf"),
    "other": ("其他", "other"),
}

_REQUIRED = ("id", "zone", "town", "type", "cause", "name_zh", "monitor", "responsible",
             "lon", "lat")  # fmt: skip

#: Columns of :func:`load_geohazard_points`.
POINT_COLUMNS = [
    "point_id", "zone", "prone", "town_code", "town_name", "type", "type_zh", "type_en",
    "cause", "cause_zh", "name_zh", "name_en", "people", "property_zh", "property_en", "monitor",
    "responsible", "responsible_unit", "lon", "lat", "approximate", "illustrative", "source",
]  # fmt: skip


# --------------------------------------------------------------------------------------------
# Register
# --------------------------------------------------------------------------------------------
def _flag(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    raise DataFileError(f"{where}: expected true or false, got {value!r}")


def load_geohazard_points(
    jurisdiction: Jurisdiction | str | Path = "ejin-horo", path: str | Path | None = None
) -> pd.DataFrame:
    """Read and validate the geological-hazard point register of a jurisdiction.

    Parameters
    ----------
    jurisdiction : Jurisdiction or str
        Jurisdiction (or its name/folder); the register is ``<folder>/geohazard_points.yaml``.
    path : str or Path, optional
        Another register of the same format.

    Returns
    -------
    pandas.DataFrame
        One row per point, columns :data:`POINT_COLUMNS`. ``attrs`` hold ``path, source,
        illustrative, owner`` and ``warning_rules`` (rule-table name or path).

    Raises
    ------
    DataFileError
        One line naming the file, the point and the field: a missing or unknown field value,
        a duplicate id, a town the zone does not cover, a point outside its town's polygon,
        or counts per zone and type that differ from the zones file.
    """
    jur = _jurisdiction(jurisdiction)
    path = Path(path) if path is not None else jur.path / FILE_NAME
    if not path.exists():
        raise DataFileError(f"{path}: file not found")
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise DataFileError(f"{path}: expected a mapping with a 'points' list")
    items = data.get("points")
    if not isinstance(items, list) or not items:
        raise DataFileError(f"{path}: field 'points': expected a non-empty list")
    zones = load_geohazard_zones(jur)
    zone_of = {z["zone"]: z for z in zones.to_dict("records")}
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise DataFileError(f"{path}: field 'defaults': expected a mapping")
    file_flags = {}
    for key in ("illustrative", "approximate"):
        file_flags[key] = _flag(data.get(key, False), f"{path}: field {key!r}")
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for n, raw in enumerate(items, 1):
        rows.append(_point(raw, n, path, jur, zone_of, defaults, file_flags, seen))
    frame = pd.DataFrame(rows, columns=POINT_COLUMNS)
    _check_counts(frame, zones, path)
    rules = str(data.get("warning_rules") or DEFAULT_RULES)
    frame.attrs.update(
        path=str(path),
        jurisdiction=jur.name,
        source=str(data.get("source", "")),
        illustrative=bool(frame["illustrative"].any()),
        owner=str(data.get("owner", "自然资源局")),
        warning_rules=rules,
    )
    if frame.attrs["illustrative"]:
        logger.info("%s: geohazard point register is ILLUSTRATIVE (invented details)", path)
    return frame


def _point(
    raw: Any,
    n: int,
    path: Path,
    jur: Jurisdiction,
    zone_of: dict[str, dict[str, Any]],
    defaults: dict[str, Any],
    flags: dict[str, bool],
    seen: dict[str, int],
) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise DataFileError(f"{path}: point {n}: expected a mapping")
    label = f"point {n}" + (f" ({raw['id']})" if raw.get("id") else "")

    def where(fld: str) -> str:
        return f"{path}: {label}, field {fld!r}"

    raw = {**defaults, **raw}
    for fld in _REQUIRED:
        if raw.get(fld) is None or str(raw.get(fld)).strip() == "":
            raise DataFileError(f"{where(fld)}: missing")
    pid = str(raw["id"]).strip()
    if pid in seen:
        raise DataFileError(f"{where('id')}: duplicate of point {seen[pid]}")
    seen[pid] = n
    zone = str(raw["zone"])
    if zone not in zone_of:
        raise DataFileError(f"{where('zone')}: unknown zone {zone!r} (zones: {', '.join(zone_of)})")
    z = zone_of[zone]
    town = str(raw["town"])
    if town not in jur:
        raise DataFileError(f"{where('town')}: unknown unit {town!r} in jurisdiction {jur.name}")
    unit = jur.unit(town)
    if unit.code not in z["towns"]:
        raise DataFileError(
            f"{where('town')}: {unit} is not a town of zone {zone} "
            f"({', '.join(z['towns']) or 'none'})"
        )
    kind = str(raw["type"])
    if kind not in GEOHAZARD_TYPES:
        raise DataFileError(
            f"{where('type')}: unknown type {kind!r} (allowed: {', '.join(GEOHAZARD_TYPES)})"
        )
    cause = str(raw["cause"])
    if cause not in CAUSES:
        raise DataFileError(
            f"{where('cause')}: unknown cause {cause!r} (allowed: {', '.join(CAUSES)})"
        )
    coords = {}
    for fld, lo, hi in (("lon", -180, 180), ("lat", -90, 90)):
        try:
            num = float(raw[fld])
        except (TypeError, ValueError):
            raise DataFileError(f"{where(fld)}: expected a number, got {raw[fld]!r}") from None
        if math.isnan(num) or not lo <= num <= hi:
            raise DataFileError(f"{where(fld)}: {num} is outside {lo}..{hi}")
        coords[fld] = num
    point = shapely.Point(coords["lon"], coords["lat"])
    if unit.has_geometry and not unit.geometry.covers(point):
        tol = APPROXIMATE_TOLERANCE_KM / 111.0 if unit.approximate else 0.0
        if not (tol and unit.geometry.distance(point) <= tol):
            raise DataFileError(
                f"{where('lon')}: point {coords['lon']}, {coords['lat']} lies outside {unit}"
            )
    threat = raw.get("threat") or {}
    if not isinstance(threat, dict):
        raise DataFileError(f"{where('threat')}: expected {{people, property_zh, property_en}}")
    people = threat.get("people", 0)
    if isinstance(people, bool) or not isinstance(people, int) or people < 0:
        raise DataFileError(f"{where('threat.people')}: expected a whole number >= 0")
    return {
        "point_id": pid,
        "zone": zone,
        "prone": z["prone"],
        "town_code": unit.code,
        "town_name": unit.name_zh,
        "type": kind,
        "type_zh": GEOHAZARD_TYPES[kind][0],
        "type_en": GEOHAZARD_TYPES[kind][1],
        "cause": cause,
        "cause_zh": CAUSES[cause][0],
        "name_zh": str(raw["name_zh"]),
        "name_en": str(raw.get("name_en") or ""),
        "people": int(people),
        "property_zh": str(threat.get("property_zh", "")),
        "property_en": str(threat.get("property_en", "")),
        "monitor": str(raw["monitor"]),
        "responsible": str(raw["responsible"]),
        "responsible_unit": str(raw.get("responsible_unit") or ""),
        "lon": coords["lon"],
        "lat": coords["lat"],
        "approximate": _flag(raw.get("approximate", flags["approximate"]), where("approximate")),
        "illustrative": _flag(
            raw.get("illustrative", flags["illustrative"]), where("illustrative")
        ),
        "source": str(raw.get("source", "")),
    }


def _check_counts(frame: pd.DataFrame, zones: pd.DataFrame, path: Path) -> None:
    """The register holds exactly the points the zones count, type by type."""
    for z in zones.to_dict("records"):
        here = frame[frame["zone"] == z["zone"]]
        for kind in ("collapse", "subsidence"):
            got, want = int((here["type"] == kind).sum()), int(z[kind])
            if got != want:
                raise DataFileError(
                    f"{path}: field 'points': zone {z['zone']} has {got} {kind} point(s), "
                    f"the zones file says {want}"
                )
        other = here[~here["type"].isin(["collapse", "subsidence"])]
        if len(other):
            raise DataFileError(
                f"{path}: field 'points': zone {z['zone']} counts only collapse and subsidence, "
                f"not {other.iloc[0]['type']} ({other.iloc[0]['point_id']})"
            )


def geohazard_towns(jurisdiction: Jurisdiction | str | Path = "ejin-horo") -> list[str]:
    """Unit codes with registered points, in register order ([] without a register)."""
    jur = _jurisdiction(jurisdiction)
    if not (jur.path / FILE_NAME).exists():
        return []
    return list(dict.fromkeys(load_geohazard_points(jur)["town_code"]))


# --------------------------------------------------------------------------------------------
# The warning: a rule table
# --------------------------------------------------------------------------------------------
def geohazard_warning_table(
    points: pd.DataFrame, jurisdiction: Jurisdiction | str | Path = "ejin-horo"
) -> RuleTable:
    """The register's warning rule table, with the jurisdiction's season dates.

    ``warning_rules`` of the register is a shipped table's name or a YAML path (relative to
    the jurisdiction folder). The table must have the hazard ``geohazard`` and a
    ``susceptibility_offset`` for every susceptibility class of the register's zones.
    """
    jur = _jurisdiction(jurisdiction)
    name = str(points.attrs.get("warning_rules") or DEFAULT_RULES)
    where = f"{points.attrs.get('path', FILE_NAME)}: field 'warning_rules'"
    ref: str | Path = name
    if name.endswith((".yaml", ".yml")):
        ref = Path(name) if Path(name).is_absolute() else jur.path / name
    table = bind_seasons(load_rule_table(ref), jur.path)
    if HAZARD not in table:
        raise DataFileError(f"{where}: rule table {table.ruleset} has no hazard {HAZARD!r}")
    offsets = table[HAZARD].extra.get("susceptibility_offset") or {}
    missing = sorted(set(points["prone"]) - set(offsets))
    if missing or not all(isinstance(v, int) for v in offsets.values()):
        raise DataFileError(
            f"{table.path}: hazard {HAZARD}, field 'susceptibility_offset': expected whole "
            f"numbers for {', '.join(sorted(set(points['prone'])))}"
        )
    return table


def grade_label(table_or_rules: Any, level: int, lang: str = "zh") -> str:
    """The grade of a level in words (``三级（黄色）：风险较高``), from the rule table."""
    rules = table_or_rules[HAZARD] if isinstance(table_or_rules, RuleTable) else table_or_rules
    grades = rules.extra.get("grades") or {}
    grade = grades.get(int(level)) or grades.get(str(int(level))) or {}
    return str(grade.get(lang) or grade.get("en") or level)


def _window_hours(cond: Any) -> int | None:
    return None if cond.window is None else int(cond.window / pd.Timedelta("1h"))


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------
def evaluate_geohazard_points(
    forecast: xr.Dataset,
    points: pd.DataFrame,
    jurisdiction: Jurisdiction | str | Path = "ejin-horo",
    *,
    table: RuleTable | None = None,
) -> pd.DataFrame:
    """The geological-hazard meteorological risk grade of every registered point.

    The warning's rule table (:func:`geohazard_warning_table`) is evaluated by
    :func:`cityops.rules.evaluate` on the whole forecast; each point reads the engine's level
    at its nearest grid cell (any ensemble member), inside the table's season (the key
    period). The point's grade is that level plus the ``susceptibility_offset`` of its zone's
    class, clipped to 0..4.

    Parameters
    ----------
    forecast : xarray.Dataset
        Canonical forecast with ``precip`` (any units pint converts to mm).
    points : pandas.DataFrame
        From :func:`load_geohazard_points`.
    jurisdiction : Jurisdiction or str
    table : RuleTable, optional
        Another warning table (default: the register's).

    Returns
    -------
    pandas.DataFrame
        One row per point (register order): the register columns plus ``evaluated`` (False:
        not assessed, never "no risk"), ``in_key_period``, ``rain_level`` (the table's level
        at the cell), ``level`` (the point's grade 0..4), ``grade_zh, grade_en``,
        ``first_time_utc`` (first valid time at grade >= 1), ``peak_time_utc`` (first valid
        time at the top grade), ``rain_<N>h`` (largest amount of each window of the table
        in the key period, mm, any member), ``trigger_zh,
        trigger_en`` (the criteria met at the peak), ``probability`` (ensemble share at the
        top grade; NaN for one member) and ``note``.
    """
    jur = _jurisdiction(jurisdiction)
    if "time" not in forecast.dims:
        raise InputError("forecast has no 'time' dimension")
    table = table if table is not None else geohazard_warning_table(points, jur)
    rules = table[HAZARD]
    offsets = rules.extra.get("susceptibility_offset") or {}
    res = evaluate(forecast, table, timezone=jur.timezone, hazards=[HAZARD])[HAZARD]
    times = pd.DatetimeIndex(forecast["time"].values)
    season = np.ones(len(times), bool) if res.season is None else np.asarray(res.season, bool)
    # One value field per window (the 24 h and 72 h sums), shared by every level.
    windows: dict[int, Any] = {}
    for rule in rules.levels:
        for crs in res.conditions.get(rule.level, []):
            hours = _window_hours(crs.condition)
            if hours is not None and crs.evaluated and hours not in windows:
                windows[hours] = crs.value
    rain_cols = [f"rain_{h}h" for h in sorted({_window_hours(c) for r in rules.levels
                                               for c in r.conditions} - {None})]  # fmt: skip
    rows: list[dict[str, Any]] = []
    idx: list[dict[str, int] | None] = []
    for rec in points.to_dict("records"):
        row = {**rec, "evaluated": False, "in_key_period": bool(season.any()), "rain_level": 0,
               "level": 0, "grade_zh": "", "grade_en": "", "first_time_utc": "",
               "peak_time_utc": "", **dict.fromkeys(rain_cols, math.nan), "trigger_zh": "",
               "trigger_en": "", "probability": math.nan, "note": ""}  # fmt: skip
        cell: dict[str, int] | None = None
        if not res.evaluated:
            row["note"] = f"not evaluated: {_reason(res.notes)}"
        elif not season.any():
            row["note"] = f"outside the key period ({rules.season.describe()}): not assessed"
        else:
            cell, why = _cell_index(forecast, rec["lon"], rec["lat"])
            if cell is None:
                row["note"] = f"not evaluated: {why}"
        rows.append(row)
        idx.append(cell)
    wanted = [i for i, c in enumerate(idx) if c is not None]
    if wanted:
        _read_cells(res, windows, [idx[i] for i in wanted], [rows[i] for i in wanted],
                    times=times, season=season, offsets=offsets, rules=rules)  # fmt: skip
    out = pd.DataFrame(rows)
    out.attrs.update(
        method="nearest grid cell",
        ruleset=table.ruleset,
        rule_source=table.source,
        assumption=bool(rules.extra.get("assumption", False)),
        illustrative=bool(points.attrs.get("illustrative", False)),
        owner=str(points.attrs.get("owner", "")),
        season=rules.season.describe() if rules.season is not None else "",
        season_windows=list(rules.season.windows) if rules.season is not None else [],
    )
    return out


def _read_cells(
    res: Any,
    windows: dict[int, Any],
    cells: list[dict[str, int]],
    rows: list[dict[str, Any]],
    *,
    times: pd.DatetimeIndex,
    season: np.ndarray,
    offsets: dict[str, int],
    rules: Any,
) -> None:
    """Fill the rows of the points whose cells are known from the engine's fields (one
    vectorised read of all cells)."""
    import dask

    dims = list(cells[0])
    at = {d: xr.DataArray([c[d] for c in cells], dims="gh_point") for d in dims}
    level = res.level.isel(at)
    values = {h: v.isel(at) for h, v in windows.items()}
    holds = {
        rule.level: [(c.condition, c.holds.isel(at)) for c in res.conditions[rule.level]
                     if c.evaluated]
        for rule in rules.levels if rule.level in res.conditions
    }  # fmt: skip
    level, values, holds = dask.compute(level, values, holds)
    ensemble = "member" in level.dims
    for n, row in enumerate(rows):
        lev = level.isel(gh_point=n).transpose("time", ...)
        lev_m = np.asarray(lev.values, dtype=float).reshape(len(times), -1)
        vals = {
            h: np.asarray(v.isel(gh_point=n).transpose("time", ...).values, float).reshape(
                len(times), -1
            )
            for h, v in values.items()
        }
        filled = np.zeros(len(times), bool)
        for v in vals.values():
            filled |= ~np.all(np.isnan(v), axis=1)
        valid = season & filled
        if not valid.any():
            row["note"] = "not evaluated: no window the data can fill in the key period"
            continue
        row["evaluated"] = True
        offset = int(offsets.get(row["prone"], 0))
        grade_m = np.clip(np.where(valid[:, None], lev_m, 0) + offset, 0, 4)
        grade_m = np.where(np.where(valid[:, None], lev_m, 0) > 0, grade_m, 0)
        grade = grade_m.max(axis=1)
        top = int(grade.max())
        row["rain_level"] = int(np.where(valid[:, None], lev_m, 0).max())
        row["level"] = top
        if top >= 1:
            first = int(np.argmax(grade >= 1))
            k = int(np.argmax(grade == top))
            row["first_time_utc"] = _iso(times[first])
            row["peak_time_utc"] = _iso(times[k])
            row["grade_zh"] = grade_label(rules, top, "zh")
            row["grade_en"] = grade_label(rules, top, "en")
            rain_level = top - offset
            met = []
            for cond, hold in holds.get(rain_level, []):
                h = np.asarray(hold.isel(gh_point=n).transpose("time", ...).values, bool)
                if h.reshape(len(times), -1)[k].any():
                    met.append(cond)
            row["trigger_zh"] = "或".join(c.describe("zh") for c in met)
            row["trigger_en"] = " or ".join(c.describe("en") for c in met)
            if ensemble:
                row["probability"] = float((grade_m[k] >= top).mean())
        for h, v in vals.items():
            vv = np.where(valid[:, None], v, np.nan)
            row[f"rain_{h}h"] = (
                round(float(np.nanmax(vv)), 1) if not np.all(np.isnan(vv)) else math.nan
            )
        if not valid.all() and season.all():
            row["note"] = "windows at the start of the forecast the data cannot fill are not judged"


# --------------------------------------------------------------------------------------------
# Per town
# --------------------------------------------------------------------------------------------
def geohazard_risk(
    forecast: xr.Dataset,
    points: pd.DataFrame,
    jurisdiction: Jurisdiction | str | Path = "ejin-horo",
) -> pd.DataFrame:
    """The geological-hazard meteorological risk grade per town with registered points:
    :func:`evaluate_geohazard_points` then :func:`town_geohazard_risk`."""
    jur = _jurisdiction(jurisdiction)
    return town_geohazard_risk(evaluate_geohazard_points(forecast, points, jur), jur)


def town_geohazard_risk(
    evaluated: pd.DataFrame, jurisdiction: Jurisdiction | str | Path = "ejin-horo"
) -> pd.DataFrame:
    """The grade per town with registered points: the highest grade of its points.

    Parameters
    ----------
    evaluated : pandas.DataFrame
        From :func:`evaluate_geohazard_points`.

    Returns
    -------
    pandas.DataFrame
        One row per town with points (register order): ``town_code, town_name, points_all,
        evaluated`` (at least one point assessed), ``in_key_period, level, grade_zh,
        grade_en, points_at_risk`` (points at grade >= 1), ``point_ids`` (those points,
        comma-separated), ``first_time_utc`` (earliest of its points), ``peak_time_utc,
        trigger_zh, trigger_en`` (of the first point at the top grade), ``rain_<N>h``
        (largest over its assessed points), ``not_evaluated`` (points not assessed) and
        ``note``. ``attrs`` are those of ``evaluated``.
    """
    jur = _jurisdiction(jurisdiction)
    pts = evaluated
    rain_cols = [c for c in pts.columns if c.startswith("rain_") and c != "rain_level"]
    rows = []
    for code in dict.fromkeys(pts["town_code"]):
        sub = pts[pts["town_code"] == code]
        done = sub[sub["evaluated"]]
        row: dict[str, Any] = {
            "town_code": code,
            "town_name": jur.unit(code).name_zh,
            "points_all": len(sub),
            "evaluated": bool(len(done)),
            "in_key_period": bool(sub["in_key_period"].any()),
            "level": 0,
            "grade_zh": "",
            "grade_en": "",
            "points_at_risk": 0,
            "point_ids": "",
            "first_time_utc": "",
            "peak_time_utc": "",
            **{c: (float(done[c].max()) if len(done) else math.nan) for c in rain_cols},
            "trigger_zh": "",
            "trigger_en": "",
            "not_evaluated": int(len(sub) - len(done)),
            "note": "",
        }
        notes = list(dict.fromkeys(n for n in sub.loc[~sub["evaluated"], "note"] if n))
        if not len(done):
            row["note"] = notes[0] if notes else "not evaluated"
        elif notes:
            row["note"] = f"{row['not_evaluated']} point(s) {'; '.join(notes)}"
        at_risk = done[done["level"] >= 1]
        if len(at_risk):
            top = int(at_risk["level"].max())
            peak = at_risk[at_risk["level"] == top].sort_values("peak_time_utc").iloc[0]
            row.update(
                level=top,
                grade_zh=peak["grade_zh"],
                grade_en=peak["grade_en"],
                points_at_risk=len(at_risk),
                point_ids=",".join(at_risk["point_id"]),
                first_time_utc=min(at_risk["first_time_utc"]),
                peak_time_utc=peak["peak_time_utc"],
                trigger_zh=peak["trigger_zh"],
                trigger_en=peak["trigger_en"],
            )
        rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs.update(pts.attrs)
    return out


def add_geohazard_concerns(
    frame: pd.DataFrame, towns: pd.DataFrame, *, owner: str = "自然资源局"
) -> pd.DataFrame:
    """The town table with a geological-hazard concern on the rainstorm row of each town
    whose points reach a grade (``extra_concerns``, ``extra_owners`` of
    :func:`cityops.geo.calendar.apply_attention`). Towns without registered points, or whose
    points reach no grade, are left alone."""
    if towns is None or towns.empty or "extra_concerns" not in frame:
        return frame
    frame = frame.copy()
    for t in towns[towns["level"] >= 1].to_dict("records"):
        text = (
            f"地质灾害气象风险{t['grade_zh']}（{t['points_at_risk']}处隐患点） "
            f"geological-hazard meteorological risk {t['grade_en']} "
            f"({t['points_at_risk']} hazard points)"
        )
        rows = frame.index[
            (frame["town_code"] == t["town_code"]) & (frame["hazard"] == "rainstorm")
        ]
        for i in rows:
            concerns = [c for c in str(frame.at[i, "extra_concerns"] or "").split("; ") if c]
            owners = [o for o in str(frame.at[i, "extra_owners"] or "").split("、") if o]
            frame.at[i, "extra_concerns"] = "; ".join(dict.fromkeys([*concerns, text]))
            frame.at[i, "extra_owners"] = "、".join(dict.fromkeys([*owners, owner]))
    return frame
