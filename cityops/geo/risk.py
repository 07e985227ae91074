"""Town-level risk: the level fields aggregated to jurisdiction units (interfaces.md §4).

A unit reaches a level when any grid cell overlapping it reaches the level (a storm core over
part of a town warns the town); ``area_fraction`` says how much of the unit is affected.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from cityops.geo.jurisdiction import Jurisdiction
from cityops.geo.masks import cell_area_km2, overlap_weights
from cityops.resources import load_yaml, package_data
from cityops.rules.engine import ConditionResult, HazardResult, LevelResult
from cityops.rules.table import level_names
from cityops.timeutil import iso_utc, parse_utc

__all__ = ["COLUMNS", "RiskOptions", "tier_for_lead", "town_hazards"]

log = logging.getLogger("cityops")

#: Columns of town_hazards.csv in contract order (interfaces.md §4); more may follow.
COLUMNS = [
    "town_code",
    "town_name",
    "hazard",
    "level",
    "level_name",
    "onset_utc",
    "issue_by_utc",
    "peak_time_utc",
    "peak_value",
    "units",
    "lead_hours",
    "tier",
    "extreme",
    "area_fraction",
    "probability",
    "evaluated",
    "note",
]
EXTRA_COLUMNS = [
    "hazard_name_zh",
    "hazard_name_en",
    "end_utc",
    "overdue",
    "max_member_level",
    "national_level_of_extreme",
    "main_text_colour",
    "criterion",
    "source",
]


@dataclass(frozen=True)
class RiskOptions:
    """Options of the town aggregation.

    Attributes
    ----------
    now : pandas.Timestamp or None
        Reference time (UTC); default the forecast's ``issued``.
    report_probability : float
        Ensemble share of members needed to report a level (interfaces.md §2).
    """

    now: pd.Timestamp | None = None
    report_probability: float = 0.3
    min_cell_overlap: float = 0.25


def _spatial_dims(weights: xr.DataArray) -> list[str]:
    """The grid dims of overlap weights (or of a mask derived from them): all but ``unit``."""
    return [d for d in weights.dims if d != "unit"]


def counting_cells(
    weights: xr.DataArray, unit_areas_km2: dict[str, float], *, min_cell_overlap: float = 0.25
) -> xr.DataArray:
    """Cells whose level counts for each unit.

    A cell counts when at least ``min_cell_overlap`` of its area lies in the unit, so a
    sliver of a neighbouring storm cell does not warn a whole town; the unit's largest-overlap
    cell always counts, so a unit smaller than a cell still gets its cell. Cell areas are
    equal-area polygon areas (:func:`cityops.geo.masks.cell_area_km2`), on regular and
    curvilinear grids alike.
    """
    spatial = _spatial_dims(weights)
    cell_km2 = xr.DataArray(
        cell_area_km2(weights["lat"], weights["lon"]).values, dims=tuple(spatial)
    )
    areas = xr.DataArray(
        [unit_areas_km2.get(str(c), 0.0) for c in weights["unit"].values],
        dims="unit",
        coords={"unit": weights["unit"]},
    )
    share_of_cell = weights * areas / cell_km2
    largest = (weights == weights.max(spatial)) & (weights > 0)
    return (share_of_cell >= min_cell_overlap) | largest


def _tiers() -> list[dict]:
    return load_yaml(package_data("data", "levels.yaml"))["tiers"]


def tier_for_lead(lead_hours: float) -> str:
    """Warning tier of the Ejin Horo plan for a lead time in hours (interfaces.md §2)."""
    for row in _tiers():
        if "min_lead_h" not in row:
            return row["tier"]
        lo = float(row["min_lead_h"])
        if lead_hours > lo or (row.get("min_inclusive") and lead_hours == lo):
            return row["tier"]
    return _tiers()[-1]["tier"]


def _reduce_cells(field: xr.DataArray, touch: xr.DataArray, how: str) -> xr.DataArray:
    """Max or min of ``field`` over the cells that count for each unit (NaN where none)."""
    fill = -np.inf if how == "max" else np.inf
    spatial = _spatial_dims(touch)
    masked = field.astype("float32").where(touch, fill)
    out = masked.max(spatial) if how == "max" else masked.min(spatial)
    return out.where(np.isfinite(out))


def _first_time(mask: xr.DataArray) -> pd.Timestamp | None:
    """First time where ``mask`` (dim time) is True."""
    values = np.asarray(mask.values, dtype=bool)
    if not values.any():
        return None
    return pd.Timestamp(mask["time"].values[int(np.argmax(values))])


def _key_condition(res: HazardResult, level: int, touch: xr.DataArray) -> ConditionResult | None:
    """The condition that explains a unit's level: the first one of that level that holds
    in the unit; for level 0 the first evaluated condition of the lowest level."""
    if level > 0:
        candidates = res.conditions.get(level, [])
        for crs in candidates:
            if crs.evaluated and bool(crs.holds.where(touch, False).any()):
                return crs
        return next((c for c in candidates if c.evaluated), None)
    for lv in sorted(res.conditions):
        crs = next((c for c in res.conditions[lv] if c.evaluated), None)
        if crs is not None:
            return crs
    return None


def _unit_rows(
    res: HazardResult,
    weights: xr.DataArray,
    _area,
    extreme_res: HazardResult | None,
    extreme_info: dict,
    opts: RiskOptions,
    now: pd.Timestamp,
) -> list[dict]:
    """Rows of one evaluated hazard for every unit with geometry."""
    names = level_names()
    rows = []
    areas = {str(c): _area(c) for c in weights["unit"].values}
    touch_all = counting_cells(weights, areas, min_cell_overlap=opts.min_cell_overlap)
    # Unit x time (x member) level series: the max over the cells touching each unit.
    town_level = _reduce_cells(res.level, touch_all, "max").compute()
    cell_max = res.level.max("time")
    extreme_series = None
    if extreme_res is not None and extreme_res.evaluated:
        extreme_series = _reduce_cells(extreme_res.level, touch_all, "max").compute()
    has_members = "member" in res.level.dims
    p = opts.report_probability
    for code in weights["unit"].values:
        w = weights.sel(unit=code)
        touch = touch_all.sel(unit=code)
        series = town_level.sel(unit=code)  # (time[, member])
        probability = np.nan
        max_member_level = np.nan
        if has_members:
            reached = series.max("time")
            shares = {lv: float((reached >= lv).mean("member")) for lv in range(1, 5)}
            level = max([lv for lv in range(1, 5) if shares[lv] >= p], default=0)
            probability = shares[level] if level else shares[1]
            max_member_level = int(reached.max())
            # Onset: first time by which the share of members at >= level reaches p.
            onset_mask = ((series >= level).cumsum("time") > 0).mean("member") >= p
            cell_hit = ((cell_max >= level).mean("member") >= p) if level else None
        else:
            level = int(series.max())
            onset_mask = series >= level
            cell_hit = (cell_max >= level) if level else None
        onset = _first_time(onset_mask) if level else None
        end = None
        if level:
            after = np.asarray(
                (series >= level).values
                if not has_members
                else ((series >= level).mean("member") >= p).values
            )
            idx = np.flatnonzero(after)
            end = pd.Timestamp(series["time"].values[idx[-1]]) if idx.size else None
        rule = res.rules.level_rule(level) if level else None
        issue_by = onset - rule.lead if (onset is not None and rule is not None) else None
        area_fraction = float(w.where(cell_hit, 0).sum()) if level else 0.0
        # Peak of the quantity that set the level.
        crs = _key_condition(res, level, touch)
        peak_time = peak_value = None
        units = ""
        if crs is not None:
            how = "max" if crs.condition.op in (">=", ">") else "min"
            vseries = _reduce_cells(crs.value, touch, how)
            if has_members:
                # The value reached by at least a share p of members.
                q = 1 - p if how == "max" else p
                vseries = vseries.quantile(q, dim="member").drop_vars("quantile")
            vseries = vseries.compute()
            if bool(vseries.notnull().any()):
                idx = int(vseries.argmax("time") if how == "max" else vseries.argmin("time"))
                peak_time = pd.Timestamp(vseries["time"].values[idx])
                peak_value = round(float(vseries.values[idx]), 2)
            units = crs.condition.units
        lead_hours = (onset - now) / pd.Timedelta("1h") if onset is not None else np.nan
        extreme = False
        if extreme_series is not None:
            ext = extreme_series.sel(unit=code)
            if has_members:
                extreme = bool(float((ext.max("time") >= 1).mean("member")) >= p)
            else:
                extreme = bool(int(ext.max()) >= 1)
        notes = list(res.notes)
        if extreme and extreme_info.get("national_equivalent"):
            notes.append(
                f"Annex 3 criterion met (national {extreme_info['national_equivalent']} "
                f"numbers; the plan's main text names {extreme_info.get('main_text_colour')})"
            )
        rows.append(
            {
                "town_code": str(code),
                "hazard": res.hazard,
                "level": level,
                "level_name": names[level]["name"],
                "onset_utc": iso_utc(onset),
                "issue_by_utc": iso_utc(issue_by),
                "peak_time_utc": iso_utc(peak_time),
                "peak_value": peak_value,
                "units": units,
                "lead_hours": None if np.isnan(lead_hours) else round(float(lead_hours), 2),
                # An onset taken from observations is under way, whatever the lead says.
                "tier": (
                    "ongoing"
                    if level and res.observed_until is not None and onset <= res.observed_until
                    else (tier_for_lead(lead_hours) if level else "")
                ),
                "extreme": extreme,
                "area_fraction": round(area_fraction, 4),
                "probability": None if np.isnan(probability) else round(probability, 3),
                "evaluated": True,
                "note": "; ".join(notes),
                "end_utc": iso_utc(end),
                "overdue": bool(issue_by is not None and issue_by < now),
                "max_member_level": None if np.isnan(max_member_level) else max_member_level,
                "criterion": crs.condition.describe() if crs is not None else "",
                "source": rule.source if rule is not None else "",
            }
        )
    return rows


def town_hazards(
    result: LevelResult,
    jurisdiction: Jurisdiction,
    *,
    extreme: LevelResult | None = None,
    weights: xr.DataArray | None = None,
    now=None,
    report_probability: float = 0.3,
) -> pd.DataFrame:
    """The town risk table: one row per unit x hazard of the rule set (interfaces.md §4).

    Parameters
    ----------
    result : LevelResult
        Levels from :func:`cityops.rules.evaluate` with the active rule set.
    jurisdiction : Jurisdiction
        Units to aggregate to.
    extreme : LevelResult, optional
        Levels from the Ejin Horo Annex 3 table; sets the ``extreme`` column.
    weights : xarray.DataArray, optional
        Precomputed :func:`cityops.geo.overlap_weights` for the grid.
    now : time, optional
        Reference time (default: the forecast's ``issued``).
    report_probability : float, optional
        Ensemble share needed to report a level (default 0.3).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS` then extra columns; rows ordered by unit then hazard.
    """
    opts = RiskOptions(
        now=parse_utc(now) if now is not None else result.issued,
        report_probability=report_probability,
    )
    now_ts = opts.now
    if now_ts is None:
        raise ValueError("a reference time is needed: the forecast has no 'issued'")
    first = next((r.level for r in result if r.evaluated), None)
    if weights is None and first is not None:
        if first["lat"].ndim == 2:  # curvilinear: keep the grid's dim names
            weights = overlap_weights(jurisdiction, first["lat"], first["lon"])
        else:
            weights = overlap_weights(jurisdiction, first["lat"].values, first["lon"].values)
    units = {u.code: u for u in jurisdiction.units}
    rows: list[dict] = []
    for res in result:
        ext_res = extreme.hazards.get(res.hazard) if extreme is not None else None
        ext_info = dict(ext_res.rules.extra) if ext_res is not None else {}
        if res.evaluated and weights is not None:
            with_geom = [c for c in weights["unit"].values if units[str(c)].has_geometry]
            hazard_rows = _unit_rows(
                res,
                weights.sel(unit=with_geom),
                jurisdiction.area_km2,
                ext_res,
                ext_info,
                opts,
                now_ts,
            )
        else:
            hazard_rows = []
        done = {r["town_code"] for r in hazard_rows}
        for unit in jurisdiction.units:
            if unit.code in done:
                continue
            reason = "; ".join(res.notes) if not res.evaluated else "unit has no geometry"
            hazard_rows.append(
                {
                    "town_code": unit.code,
                    "hazard": res.hazard,
                    "level": 0,
                    "level_name": "none",
                    "evaluated": False,
                    "note": reason,
                    "extreme": False,
                    "area_fraction": 0.0,
                }
            )
        for row in hazard_rows:
            unit = units[row["town_code"]]
            row["town_name"] = unit.name_zh
            row["hazard_name_zh"] = res.rules.name_zh
            row["hazard_name_en"] = res.rules.name_en
            row["national_level_of_extreme"] = ext_info.get("national_equivalent", "")
            row["main_text_colour"] = ext_info.get("main_text_colour", "")
        rows.extend(hazard_rows)
    frame = pd.DataFrame(rows)
    for col in COLUMNS + EXTRA_COLUMNS:
        if col not in frame:
            frame[col] = None
    order = {u.code: i for i, u in enumerate(jurisdiction.units)}
    hazard_order = {h: i for i, h in enumerate(result.hazards)}
    frame = frame.sort_values(
        ["town_code", "hazard"],
        key=lambda s: s.map(order) if s.name == "town_code" else s.map(hazard_order),
        kind="stable",
    ).reset_index(drop=True)
    # Grid coarser than a unit: say so.
    if weights is not None:
        if weights["lat"].ndim == 1:
            lat_values = weights["lat"].values
            dlat = float(abs(np.diff(lat_values).mean())) if lat_values.size > 1 else 0
            cell_km = dlat * 111.2
        else:
            cell_km = float(np.sqrt(cell_area_km2(weights["lat"], weights["lon"]).mean()))
        for code in weights["unit"].values:
            unit = units[str(code)]
            if unit.has_geometry and cell_km**2 > jurisdiction.area_km2(unit):
                mask = frame["town_code"] == unit.code
                frame.loc[mask, "note"] = (
                    frame.loc[mask, "note"]
                    .fillna("")
                    .map(
                        lambda n: (
                            (n + "; " if n else "")
                            + f"grid spacing {cell_km:.0f} km is coarser than this unit"
                        )
                    )
                )
    frame["note"] = frame["note"].fillna("")
    frame["level"] = frame["level"].astype(int)
    frame["max_member_level"] = frame["max_member_level"].astype("Int64")
    return frame[COLUMNS + EXTRA_COLUMNS]
