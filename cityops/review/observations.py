"""Observed levels: what really happened, per unit × hazard × review window (interfaces.md §6).

Observations go through the same rule engine as forecasts (:func:`cityops.rules.evaluate`), so
an observed level means exactly what a forecast level means: "50 mm in 12 h" is the same sum
over ``(t - 12 h, t]`` at each valid time ``t``.

Inputs (recognised by content, not by file name):

* **Gridded analyses** — anything :func:`cityops.ingest.open_forecast` reads (NetCDF, among them
  the scenario generator's observed files and the CMA hourly merged precipitation CMPA, GRIB,
  MICAPS diamond 4). Several files of one run are combined by ingest; several analyses with
  their own times (one file per hour) are read one by one and joined along time.
* **Station observations** — a CSV file with the columns ``station_id, lon, lat, time_utc`` and
  canonical variables (``precip, snowfall, t2m, t2m_max, t2m_min, tsurf, wind, gust, vis, rh,
  pm25, dust, cape, …`` in the units of ``cityops/data/variables.yaml``; a header
  ``t2m[K]`` or ``vis (km)`` states other units, converted with pint), plus ``dew_point`` (rh is
  derived from it when absent); or MICAPS diamond 1 surface files (one time each; several files
  are several times). Gridded and station inputs cannot be mixed in one call.

Station conventions (``cityops/data/observations.yaml``):

* ``time_utc`` is ISO 8601; naive times are UTC, times with an offset are converted.
* An amount (``precip``, ``snowfall``) is the amount over the hour ending at ``time_utc``, unless
  a ``precip_period_h`` column gives another period (in hours). MICAPS diamond 1 carries the
  6 h precipitation.
* Amounts are placed on each station's own steps: an amount covers the step from the end of
  the station's previous amount. An amount over a shorter period leaves an unobserved gap
  before it (counted as no rain, never as rain); an amount over a longer period overlaps the
  previous one and is not used (said in the note). A station whose amounts come less often than
  its other reports (hourly temperature, 6-hourly rain) has the rain-based hazards evaluated on
  the amounts' own steps and the others on every report.
* Windows the steps cannot fill are "not evaluated" by the engine as for forecasts: a single
  MICAPS file's 6 h rain evaluates rainstorm yellow (6 h) and blue (12 h, partial window: counts
  only if already reached), not orange or red (3 h).
* A unit's level is the highest level at any of the stations inside it (point in polygon,
  boundary included); a unit with no station is not evaluated ("no station in unit").

Gridded conventions: a unit's level is its highest level at any valid time of the window,
each time's level taken exactly as in the town risk table, under the jurisdiction's level
policy (:class:`cityops.geo.risk.UnitLevelRule`: by default a tenth of the unit's area at
one time, or its seat or an exposure point; ``level_policy.yaml``); ``observed_area_fraction`` is the area-weighted share of the unit whose cells reach the
level at some valid time of the window (as ``area_fraction`` in ``town_hazards.csv``).

Review windows are half-open ``[start, end)`` on valid time, aligned to 00 UTC
(:mod:`cityops.review.windows`). A rolling window ending in the review window may begin before
it: it is the observed exceedance at that valid time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
import xarray as xr

from cityops.cluster import keep_in_client
from cityops.errors import InputError
from cityops.geo.jurisdiction import Jurisdiction, Unit, load_jurisdiction
from cityops.geo.masks import cell_area_km2, overlap_weights
from cityops.geo.risk import UnitLevelRule, counting_cells
from cityops.ingest import expand_paths, open_forecast
from cityops.ingest.stations import (
    STATION_COLUMNS,
    derive_rh,
    observation_kind,
    read_station_csv,  # re-exported: the reader's earlier home
    read_stations,
)
from cityops.resources import canonical_variables, load_yaml, package_data
from cityops.review.windows import ReviewWindow, parse_window, review_windows
from cityops.rules import HazardResult, RuleTable, evaluate, load_rule_table
from cityops.rules.seasons import bind_seasons
from cityops.timeutil import iso_utc

__all__ = ["OBSERVED_COLUMNS", "observation_kind", "observed_levels", "read_station_csv"]

log = logging.getLogger("cityops")

#: Columns of :func:`observed_levels`, in order.
OBSERVED_COLUMNS = [
    "town_code",
    "town_name",
    "hazard",
    "window_start_utc",
    "window_end_utc",
    "observed_level",
    "observed_onset_utc",
    "observed_peak_value",
    "units",
    "observed_area_fraction",
    "source",
    "evaluated",
    "note",
]

#: Length of a degree of latitude, for the grid-spacing note (as cityops.geo.risk).
_KM_PER_DEG_LAT = 111.2


@cache
def _config() -> dict:
    return load_yaml(package_data("data", "observations.yaml"))


def _amount_variables() -> tuple[str, ...]:
    return tuple(_config()["amounts"])


# --------------------------------------------------------------------------------------------
# Recognising and reading the inputs
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Aggregation to units (shared by grids and stations)
# --------------------------------------------------------------------------------------------


def _per_unit(da: xr.DataArray, spatial: list[str], cells: list[np.ndarray], how: str):
    """Max or min of ``da`` over each unit's cells / stations: array (unit, time), NaN where a
    unit has none or only missing values (as :func:`cityops.geo.risk.town_hazards` reduces)."""
    arr = np.asarray(da.transpose("time", *spatial).values, dtype=float)
    arr = arr.reshape(arr.shape[0], -1)
    out = np.full((len(cells), arr.shape[0]), np.nan)
    fill = -np.inf if how == "max" else np.inf
    for k, idx in enumerate(cells):
        if idx.size:
            sub = np.where(np.isnan(arr[:, idx]), fill, arr[:, idx])
            red = sub.max(axis=1) if how == "max" else sub.min(axis=1)
            out[k] = np.where(np.isfinite(red), red, np.nan)
    return out


@dataclass
class _Part:
    """One evaluated hazard on one dataset, with the cells / stations counting for each unit.

    The unit × time series (level, and per condition whether it holds, its value and whether
    it has data) are computed once here, for all windows.
    """

    result: HazardResult
    touch: xr.DataArray  # (unit, <space dims>) bool
    weights: xr.DataArray | None = None  # area weights (unit, <space dims>): grids only
    unit_rule: UnitLevelRule | None = None  # grids: the town table's level policy

    def __post_init__(self) -> None:
        res = self.result
        spatial = [d for d in self.touch.dims if d != "unit"]
        flat = np.asarray(self.touch.transpose("unit", *spatial).values, dtype=bool)
        cells = [np.flatnonzero(row) for row in flat.reshape(flat.shape[0], -1)]
        self.times = pd.DatetimeIndex(res.level["time"].values)
        self.members = np.array([c.size > 0 for c in cells])
        if self.unit_rule is not None:
            # The town risk table's own rule (jurisdiction level policy), not a copy of it.
            series, other = self.unit_rule.series(res.level)
            self.level = np.asarray(series, dtype=float).reshape(len(cells), -1)
            if other != ["time"]:
                raise InputError(f"observed levels: unexpected dims {other}; expected time")
        else:
            self.level = _per_unit(res.level, spatial, cells, "max")
        self.valid = np.zeros_like(self.level, dtype=bool)
        self.conditions: dict[int, list[dict]] = {}
        for lv, results in res.conditions.items():
            entries = []
            for crs in results:
                if not crs.evaluated:
                    entries.append({"crs": crs})
                    continue
                how = "max" if crs.condition.op in (">=", ">") else "min"
                value = _per_unit(crs.value, spatial, cells, how)
                self.valid |= ~np.isnan(value)
                holds = _per_unit(crs.holds.astype("int8"), spatial, cells, "max")
                entries.append({"crs": crs, "how": how, "holds": holds > 0, "value": value})
            self.conditions[lv] = entries

    def in_window(self, window: ReviewWindow) -> np.ndarray:
        return np.asarray((self.times >= window.start) & (self.times < window.end))


def _unit_summary(parts: list[_Part], u: int, window: ReviewWindow) -> dict | None:
    """Observed level, onset, peak value and area fraction of unit ``u`` (position) in a window,
    from the parts with data there; None when none has any."""
    active = []
    for part in parts:
        m = part.in_window(window)
        if part.members[u] and m.any() and part.valid[u, m].any():
            active.append((part, m))
    if not active:
        return None
    level = max(int(np.nanmax(p.level[u, m])) for p, m in active)
    onset = None
    if level:
        onset = min(
            p.times[m][np.argmax(p.level[u, m] >= level)]
            for p, m in active
            if (p.level[u, m] >= level).any()
        )
    peak, units = _peak(active, u, _key_condition(active, u, level))
    area = np.nan
    if any(p.weights is not None for p, _ in active):
        area = 0.0  # as town_hazards: the overlap weights of the cells reaching the level
        for part, m in active:
            if level:
                cell_max = part.result.level.isel(time=np.flatnonzero(m)).max("time")
                area += float(part.weights.isel(unit=u).where(cell_max >= level, 0).sum())
        area = round(area, 4)
    return {
        "observed_level": level,
        "observed_onset_utc": pd.NaT if onset is None else onset,
        "observed_peak_value": peak,
        "units": units,
        "observed_area_fraction": area,
        "notes": [n for p, _ in active for n in p.result.notes],
    }


def _key_condition(active: list, u: int, level: int) -> tuple[int, int] | None:
    """(level, index) of the condition that explains the level, as town_hazards chooses it:
    the first condition of the level that holds in the unit; for level 0 the first evaluated
    condition of the lowest level."""
    conditions = active[0][0].conditions
    if level:
        for i in range(len(conditions.get(level, []))):
            if any("holds" in p.conditions[level][i] and p.conditions[level][i]["holds"][u, m].any()
                   for p, m in active):  # fmt: skip
                return level, i
    for lv in [level] if level else sorted(conditions):
        for i in range(len(conditions.get(lv, []))):
            if any("value" in p.conditions[lv][i] for p, _ in active):
                return lv, i
    return None


def _peak(active: list, u: int, key: tuple[int, int] | None) -> tuple[float, str]:
    """The peak (max for ">=" criteria, min for "<") of the key condition's value in the window,
    rounded as in town_hazards, and its units."""
    if key is None:
        return np.nan, ""
    lv, i = key
    entries = [(p.conditions[lv][i], m) for p, m in active if "value" in p.conditions[lv][i]]
    how = entries[0][0]["how"]
    units = entries[0][0]["crs"].condition.units
    values = np.concatenate([e["value"][u, m] for e, m in entries])
    if not np.isfinite(values).any():
        return np.nan, units
    return round(float(np.nanmax(values) if how == "max" else np.nanmin(values)), 2), units


@dataclass
class _Inputs:
    """Evaluated observations, whatever their kind, and what the rows say about them."""

    parts: dict[str, list[_Part]]  # evaluated parts per hazard
    reasons: dict[str, list[str]]  # per hazard evaluated nowhere: why
    times: pd.DatetimeIndex  # valid times of the observations (default review period)
    step_starts: pd.DatetimeIndex | None  # start of each step (grids: coverage notes)
    members: dict[str, bool]  # unit code -> has cells / stations
    no_member_note: str
    unit_notes: dict[str, list[str]]
    hazard_notes: dict[str, list[str]]
    sources: Callable[[str, ReviewWindow], str]  # file names behind a unit's window


# --------------------------------------------------------------------------------------------
# Gridded analyses
# --------------------------------------------------------------------------------------------


def _in_client(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` loaded when no larger than the in-memory size, else lazy: its rules are then
    computed by the cluster's workers under ``--scheduler`` (:func:`cityops.cluster.keep_in_client`)."""
    return ds.load() if keep_in_client(ds.nbytes) else ds


def _open_grids(files: list[Path], juris: Jurisdiction, mapping) -> xr.Dataset:
    """One canonical dataset: ingest's own combination for files of one run, else each
    analysis read on its own and joined along time."""
    try:
        return _in_client(open_forecast(files, bounds=juris.bounds, mapping=mapping))
    except InputError as err:
        if len(files) == 1 or "different runs" not in str(err):
            raise
    parts = [_in_client(open_forecast(f, bounds=juris.bounds, mapping=mapping)) for f in files]
    common = set(parts[0].data_vars)
    for p in parts[1:]:
        common &= set(p.data_vars)
    if not common:
        raise InputError(
            f"{files[0]}: the observed grids share no variable; expected the same variables "
            "in every file"
        )
    try:
        ds = xr.concat(
            [p[sorted(common)] for p in parts],
            dim="time",
            data_vars="all",
            coords="minimal",
            compat="override",
            join="exact",
            combine_attrs="override",
        ).sortby("time")
    except ValueError:
        raise InputError(
            f"{files[0]}: the observed grids differ; expected analyses on one grid"
        ) from None
    times = pd.DatetimeIndex(ds["time"].values)
    if times.has_duplicates:
        raise InputError(
            f"{files[0]}: valid time {iso_utc(times[times.duplicated()][0])} appears in two "
            "observed files"
        )
    ds.attrs["issued"] = iso_utc(pd.Timestamp(ds["step_start"].values[0]))
    ds.attrs["cityops_source_files"] = ", ".join(str(f) for f in files)
    return ds


def _grid_inputs(files: list[Path], table: RuleTable, juris: Jurisdiction, mapping) -> _Inputs:
    """Gridded analyses evaluated once; every unit with geometry has cells."""
    ds = _open_grids(files, juris, mapping)
    if "member" in ds.dims:
        raise InputError(
            f"{files[0]}: has an ensemble 'member' dimension; expected one analysis of what "
            "happened (no members)"
        )
    result = evaluate(ds, table, timezone=juris.timezone)
    # Lazy (above the in-memory size): load() computes it where dask runs, on the cluster's
    # workers under --scheduler (it logs the names of the rule fields it computes).
    result.load()
    weights = overlap_weights(juris, ds["lat"], ds["lon"])
    areas = {str(c): juris.area_km2(str(c)) for c in weights["unit"].values}
    touch = counting_cells(weights, areas, min_cell_overlap=juris.policy.min_cell_overlap)
    rule = UnitLevelRule(weights, juris)  # built once for every hazard
    unit_notes: dict[str, list[str]] = {u.code: [] for u in juris.units}
    for code, note in _coarse_grid_notes(weights, juris).items():
        unit_notes[code].append(note)
    names = ", ".join(f.name for f in files)
    return _Inputs(
        parts={r.hazard: [_Part(r, touch, weights, rule)] for r in result if r.evaluated},
        reasons={r.hazard: list(r.notes) for r in result if not r.evaluated},
        times=pd.DatetimeIndex(ds["time"].values),
        step_starts=pd.DatetimeIndex(ds["step_start"].values)
        if "step_start" in ds.coords
        else None,
        members={u.code: u.has_geometry for u in juris.units},
        no_member_note="unit has no geometry",
        unit_notes=unit_notes,
        hazard_notes={},
        sources=lambda code, window: names,
    )


def _coarse_grid_notes(weights: xr.DataArray, juris: Jurisdiction) -> dict[str, str]:
    """The note "grid spacing N km is coarser than this unit", as in the town risk table."""
    if weights["lat"].ndim == 1:
        lat = weights["lat"].values
        cell_km = float(abs(np.diff(lat).mean())) * _KM_PER_DEG_LAT if lat.size > 1 else 0.0
    else:
        cell_km = float(np.sqrt(cell_area_km2(weights["lat"], weights["lon"]).mean()))
    notes = {}
    for unit in juris.units:
        if unit.has_geometry and cell_km**2 > juris.area_km2(unit):
            notes[unit.code] = f"grid spacing {cell_km:.0f} km is coarser than this unit"
    return notes


def _coverage_note(times: pd.DatetimeIndex, starts: pd.DatetimeIndex, window: ReviewWindow):
    """The note "steps ending in this window cover N of M h …" when they do not fill it."""
    inside = (times >= window.start) & (times < window.end)
    covered = (times[inside] - starts[inside]).sum()
    length = window.end - window.start
    if covered >= length:
        return ""
    return (
        f"steps ending in this window cover {covered / pd.Timedelta('1h'):g} of "
        f"{length / pd.Timedelta('1h'):g} h of this window"
    )


# --------------------------------------------------------------------------------------------
# Stations
# --------------------------------------------------------------------------------------------


@dataclass
class _Layout:
    """One station's time axis for one role (``all``, ``inst`` or ``amount``)."""

    role: str
    times: tuple
    first_step: pd.Timedelta | None
    rows: pd.DataFrame


def _station_layouts(key: str, rows: pd.DataFrame, amounts: list[str]) -> tuple[list, list]:
    """Time axes of one station's reports (see the module docstring) and notes."""
    rows = rows.sort_values("time_utc").reset_index(drop=True)
    notes: list[str] = []
    has_amount = (
        rows[amounts].notna().any(axis=1).to_numpy() if amounts else np.zeros(len(rows), bool)
    )
    if not has_amount.any():
        return [_Layout("all", tuple(rows["time_utc"]), None, rows)], notes
    rows = rows.copy()
    kept, gaps, dropped = [], [], 0
    prev_end = None
    first_step = None
    for i in np.flatnonzero(has_amount):
        t = rows.at[i, "time_utc"]
        period = pd.Timedelta(hours=float(rows.at[i, "period_h"]))
        start = t - period
        if prev_end is None:
            first_step = period
        elif start > prev_end:
            gaps.append(start)
        elif start < prev_end:
            rows.loc[i, amounts] = np.nan
            dropped += 1
            continue
        kept.append(i)
        prev_end = t
    if dropped:
        what = "amount overlaps" if dropped == 1 else "amounts overlap"
        notes.append(
            f"station {key}: {dropped} {what} the previous one (period longer than the time "
            "since it) and not used"
        )
    if gaps:
        what = "gap" if len(gaps) == 1 else "gaps"
        notes.append(
            f"station {key}: {len(gaps)} unobserved {what} between amounts (taken as no rain)"
        )
    gap_rows = pd.DataFrame({"time_utc": pd.DatetimeIndex(gaps).as_unit("ns")})
    if len(kept) == len(rows):
        both = pd.concat([rows, gap_rows], ignore_index=True) if gaps else rows
        both = both.sort_values("time_utc").reset_index(drop=True)
        return [_Layout("all", tuple(both["time_utc"]), first_step, both)], notes
    inst = rows.drop(columns=amounts)
    amount_rows = rows.iloc[kept]
    if gaps:
        amount_rows = pd.concat([amount_rows, gap_rows], ignore_index=True)
    amount_rows = amount_rows.sort_values("time_utc").reset_index(drop=True)
    return [
        _Layout("inst", tuple(inst["time_utc"]), None, inst),
        _Layout("amount", tuple(amount_rows["time_utc"]), first_step, amount_rows),
    ], notes


def _station_dataset(
    layouts: list[tuple[str, _Layout]], variables: list[str], source: str
) -> xr.Dataset:
    """A (time, station) canonical dataset from stations sharing one time axis."""
    first = layouts[0][1]
    times = pd.DatetimeIndex(first.times)
    registry = canonical_variables()
    data_vars = {}
    for var in variables:
        arr = np.full((len(times), len(layouts)), np.nan)
        for j, (_, lay) in enumerate(layouts):
            if var in lay.rows:
                idx = times.get_indexer(pd.DatetimeIndex(lay.rows["time_utc"]))
                arr[idx, j] = lay.rows[var].to_numpy(dtype=float)
        if np.isnan(arr).all():
            continue  # absent at these stations: the rule says "missing variable"
        spec = registry.get(var, {"units": _config()["csv"]["extra_variables"].get(var, "1")})
        data_vars[var] = (("time", "station"), arr, {"units": spec["units"]})
    keys = [k for k, _ in layouts]
    coords = {"time": times.values, "station": keys}
    attrs = {}
    if first.first_step is not None:
        starts = np.concatenate(
            [[(times[0] - first.first_step).to_datetime64()], times.values[:-1]]
        )
        coords["step_start"] = ("time", starts)
        attrs["issued"] = iso_utc(pd.Timestamp(starts[0]))
    ds = xr.Dataset(data_vars, coords=coords, attrs=attrs)
    ds.encoding["source"] = source
    return ds


def _station_inputs(
    files: list[Path], kinds: dict[Path, str], table: RuleTable, juris: Jurisdiction
) -> _Inputs:
    """Station reports inside the units evaluated per time axis (see the module docstring)."""
    frame, all_times = _station_frame(files, kinds, juris)
    frame, derived = derive_rh(frame)
    source = ", ".join(dict.fromkeys(f.name for f in files))
    registry = canonical_variables()
    extra = list(_config()["csv"].get("extra_variables", {}))
    variables = [
        c for c in frame.columns if (c in registry or c in extra) and frame[c].notna().any()
    ]
    amounts = [v for v in _amount_variables() if v in variables]
    stations = frame.drop_duplicates("key")[["key", "lon", "lat"]].reset_index(drop=True)
    points = shapely.points(stations["lon"].to_numpy(), stations["lat"].to_numpy())
    inside = np.zeros((len(juris.units), len(stations)), dtype=bool)
    for k, unit in enumerate(juris.units):
        if unit.has_geometry:
            inside[k] = shapely.covers(unit.geometry, points)
    in_units = inside.any(axis=0)
    unit_stations = {u.code: list(stations["key"][inside[k]]) for k, u in enumerate(juris.units)}
    unit_notes: dict[str, list[str]] = {u.code: [] for u in juris.units}
    parts: dict[str, list[_Part]] = {rules.hazard: [] for rules in table}
    reasons: dict[str, list[str]] = {rules.hazard: [] for rules in table}
    keys_in = set(stations["key"][in_units])
    groups: dict[tuple, list[tuple[str, _Layout]]] = {}
    for key, rows in frame[frame["key"].isin(keys_in)].groupby("key", sort=True):
        lays, notes = _station_layouts(str(key), rows, amounts)
        for code, keys in unit_stations.items():
            if key in keys:
                unit_notes[code].extend(notes)
        for lay in lays:
            groups.setdefault((lay.role, lay.times, lay.first_step), []).append((str(key), lay))
    uses_amounts = {rules.hazard: bool(set(rules.variables) & set(amounts)) for rules in table}
    for (role, _, _), layouts in groups.items():
        ds_vars = [v for v in variables if role != "inst" or v not in amounts]
        ds = _station_dataset(layouts, ds_vars, source)
        keys = list(ds["station"].values)
        touch = xr.DataArray(
            np.array([[k in unit_stations[u.code] for k in keys] for u in juris.units]),
            dims=("unit", "station"),
            coords={"unit": list(juris.codes), "station": keys},
        )
        result = evaluate(ds, table, timezone=juris.timezone).load()
        for res in result:
            wanted = {"all", "amount"} if uses_amounts[res.hazard] else {"all", "inst"}
            if role not in wanted:
                continue
            if res.evaluated:
                parts[res.hazard].append(_Part(res, touch))
            else:
                reasons[res.hazard].extend(res.notes)
    for code, keys in unit_stations.items():
        if keys:
            unit_notes[code].insert(0, f"stations: {', '.join(keys)}")
    hazard_notes: dict[str, list[str]] = {r.hazard: [] for r in table}
    for rules in table:
        if derived and "rh" in rules.variables:
            hazard_notes[rules.hazard].append(derived)
    if "micaps1" in kinds.values():
        explain = _config()["micaps1"]["not_in_file"]
        for rules in table:
            if rules.requires:  # not evaluated for another reason (a typhoon needs a track)
                continue
            missing = sorted(v for v in rules.variables if v not in variables and v in explain)
            hazard_notes[rules.hazard] += [
                f"MICAPS diamond 1 lacks {v}: {explain[v]}" for v in missing
            ]
    used = frame[frame["key"].isin(keys_in)]

    def sources(code: str, window: ReviewWindow) -> str:
        sel = used[
            used["key"].isin(unit_stations[code])
            & (used["time_utc"] >= window.start)
            & (used["time_utc"] < window.end)
        ]
        return ", ".join(dict.fromkeys(sel["source"])) if len(sel) else source

    return _Inputs(
        parts=parts,
        reasons=reasons,
        times=pd.DatetimeIndex(np.unique(used["time_utc"])) if len(used) else all_times,
        step_starts=None,
        members={u.code: bool(unit_stations[u.code]) for u in juris.units},
        no_member_note="no station in unit",
        unit_notes=unit_notes,
        hazard_notes=hazard_notes,
        sources=sources,
    )


# --------------------------------------------------------------------------------------------
# The public function
# --------------------------------------------------------------------------------------------


def observed_levels(
    paths: str | Path | Sequence[str | Path],
    *,
    jurisdiction: str | Path | Jurisdiction = "ejin-horo",
    rules: str | Path | RuleTable = "national",
    window: str | pd.Timedelta = "24h",
    start=None,
    end=None,
    mapping: str | Path | None = None,
) -> pd.DataFrame:
    """Observed levels per unit × hazard × review window, by the forecasts' rule engine.

    Parameters
    ----------
    paths : path, glob or list of paths
        Gridded analyses (NetCDF, GRIB, MICAPS diamond 4: anything
        :func:`cityops.ingest.open_forecast` reads) or station observations (CSV
        ``station_id, lon, lat, time_utc, <variables>`` or MICAPS diamond 1 files). The kind
        is recognised from the content; grids and stations cannot be mixed in one call.
    jurisdiction : str, path or Jurisdiction, optional
        Units to aggregate to (default ``ejin-horo``).
    rules : str, path or RuleTable, optional
        Rule set (default ``national``), the same as the forecasts'.
    window : str or pandas.Timedelta, optional
        Review window length, aligned to 00 UTC (default ``24h``; see
        :func:`cityops.review.windows.parse_window`).
    start, end : time, optional
        Review period (UTC); default the observations' first and last valid time. Windows
        are those of :func:`cityops.review.windows.review_windows`; a window without
        observations is "not evaluated".
    mapping : path, optional
        A user variable mapping (YAML) for gridded files whose names ingest does not know.

    Returns
    -------
    pandas.DataFrame
        One row per window × unit × hazard of the rule set (also when the level is 0), with
        the columns :data:`OBSERVED_COLUMNS`: ``town_code``, ``town_name``, ``hazard``,
        ``window_start_utc``, ``window_end_utc`` (naive UTC Timestamps), ``observed_level``
        (int 0-4: the highest level at any valid time in ``[start, end)``),
        ``observed_onset_utc`` (first valid time in the window at which that level is
        reached; NaT for 0), ``observed_peak_value`` and ``units`` (the aggregated quantity
        that set the level, e.g. the 3 h sum for rainstorm orange), ``observed_area_fraction``
        (share of the unit's area reaching the level in the window; grids only, NaN for
        stations), ``source`` (file names), ``evaluated`` (bool) and ``note`` (why not
        evaluated; stations used; caveats).

    Raises
    ------
    InputError
        Unreadable or unknown file, no usable variable, a grid not covering the
        jurisdiction, grids mixed with stations, an ensemble given as observations, a bad
        window or period; one line naming the file, the variable and what was expected.

    Examples
    --------
    >>> from cityops.review.observations import observed_levels
    >>> obs = observed_levels("obs.nc", window="24h")  # doctest: +SKIP
    >>> obs.query("hazard == 'rainstorm' and observed_level > 0")  # doctest: +SKIP
    """
    files = expand_paths(paths)
    if not files:
        raise InputError("observed: no file given; expected gridded analyses or station files")
    juris = (
        jurisdiction if isinstance(jurisdiction, Jurisdiction) else load_jurisdiction(jurisdiction)
    )
    table = rules if isinstance(rules, RuleTable) else load_rule_table(rules)
    table = bind_seasons(table, juris.path)  # seasonal rows take the jurisdiction's dates
    length = parse_window(window)
    kinds = {f: observation_kind(f) for f in files}
    grids = [f for f in files if kinds[f] == "grid"]
    if grids and len(grids) < len(files):
        station = next(f for f in files if kinds[f] != "grid")
        raise InputError(
            f"{station}: station observations mixed with gridded analyses ({grids[0]}); "
            "expected one kind per call (review the grids and the stations separately)"
        )
    if grids:
        inputs = _grid_inputs(grids, table, juris, mapping)
    else:
        inputs = _station_inputs(files, kinds, table, juris)
    windows = review_windows(
        start if start is not None else inputs.times.min(),
        end if end is not None else inputs.times.max(),
        length,
    )
    rows = [
        row
        for win in windows
        for u, unit in enumerate(juris.units)
        for row in _unit_rows(inputs, table, u, unit, win)
    ]
    out = pd.DataFrame(rows, columns=OBSERVED_COLUMNS)
    out["observed_level"] = out["observed_level"].astype(int)
    out["evaluated"] = out["evaluated"].astype(bool)
    for col in ("window_start_utc", "window_end_utc", "observed_onset_utc"):
        out[col] = pd.to_datetime(out[col]).astype("datetime64[ns]")
    for col in ("observed_peak_value", "observed_area_fraction"):
        out[col] = out[col].astype(float)
    out.attrs = {"ruleset": table.ruleset, "jurisdiction": juris.name, "window": str(length)}
    return out


def _unit_rows(
    inputs: _Inputs, table: RuleTable, u: int, unit: Unit, window: ReviewWindow
) -> list[dict]:
    """The rows of one unit (position ``u``) in one window, one per hazard of the table."""
    coverage = (
        _coverage_note(inputs.times, inputs.step_starts, window)
        if inputs.step_starts is not None
        else ""
    )
    source = inputs.sources(unit.code, window)
    rows = []
    for rules in table:
        row = {
            "town_code": unit.code,
            "town_name": unit.name_zh,
            "hazard": rules.hazard,
            "window_start_utc": window.start,
            "window_end_utc": window.end,
            "observed_level": 0,
            "observed_onset_utc": pd.NaT,
            "observed_peak_value": np.nan,
            "units": "",
            "observed_area_fraction": np.nan,
            "source": source,
            "evaluated": False,
            "note": "",
        }
        parts = inputs.parts.get(rules.hazard, [])
        notes = list(inputs.hazard_notes.get(rules.hazard, []))
        if not inputs.members[unit.code]:
            reason = inputs.no_member_note if unit.has_geometry else "unit has no geometry"
            notes.insert(0, reason)
        elif not any(p.members[u] for p in parts):
            notes = (inputs.reasons.get(rules.hazard) or ["not evaluated"]) + notes
        else:
            summary = _unit_summary(parts, u, window)
            if summary is None:
                notes.insert(0, "no valid observation in this window")
            else:
                notes = summary.pop("notes") + notes + [coverage]
                row.update(summary, evaluated=True)
        if inputs.members[unit.code]:
            notes.extend(inputs.unit_notes[unit.code])
        row["note"] = "; ".join(dict.fromkeys(n for n in notes if n))
        rows.append(row)
    return rows


def _station_frame(
    files: list[Path], kinds: dict[Path, str], juris: Jurisdiction
) -> tuple[pd.DataFrame, pd.DatetimeIndex]:
    """The station reports within the jurisdiction's bounds in one table, with a station
    ``key``, and the times of all reports (whatever their place)."""
    frame = read_stations(files, kinds=kinds)
    all_times = pd.DatetimeIndex(np.unique(frame["time_utc"]))
    lon_min, lat_min, lon_max, lat_max = juris.bounds
    near = frame["lon"].between(lon_min, lon_max) & frame["lat"].between(lat_min, lat_max)
    frame = frame[near].reset_index(drop=True)
    # A station is its id; an id met at places further apart than the tolerance is several
    # stations (real files reuse placeholder ids).
    tol = float(_config()["station_identity_tolerance_deg"])
    coords = frame.groupby("station_id")[["lon", "lat"]].agg(lambda s: s.max() - s.min())
    moving = set(coords.index[(coords["lon"] > tol) | (coords["lat"] > tol)])
    frame["key"] = [
        f"{sid}@{lon:.2f},{lat:.2f}" if sid in moving else sid
        for sid, lon, lat in zip(frame["station_id"], frame["lon"], frame["lat"], strict=True)
    ]
    variables = [c for c in frame.columns if c not in (*STATION_COLUMNS, "key")]
    dup = frame.duplicated(["key", "time_utc"], keep=False)
    if dup.any():
        block = frame[dup].sort_values(["key", "time_utc"])
        same = block.groupby(["key", "time_utc"])[variables].nunique(dropna=False).max(axis=1) <= 1
        if not same.all():
            key, time = same.index[~same.to_numpy()][0]
            src = ", ".join(
                dict.fromkeys(block[(block.key == key) & (block.time_utc == time)].source)
            )
            raise InputError(
                f"{src}: station {key} reports twice at {iso_utc(time)} with different values; "
                "expected one report per station and time"
            )
        frame = frame.drop_duplicates(["key", "time_utc"], keep="first")
    return frame.reset_index(drop=True), all_times
