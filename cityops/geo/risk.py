"""Town-level risk: the level fields aggregated to jurisdiction units (interfaces.md §4).

How a unit gets its level is the jurisdiction's policy (:mod:`cityops.geo.policy`, data in
``level_policy.yaml``). By default (``area_share``) a level holds for a unit at a time when the
cells reaching it cover at least a tenth of the unit's area at that time, or when the cell of
its seat or of one of its exposure points reaches it; ``any_cell`` takes the level of any cell
that counts for the unit. ``area_fraction`` says how much of the unit reaches the level at
some time. A unit with a seat but no polygon is assessed on a disc around the seat (marked
approximate); a unit with neither is not assessed, and says so.
"""

from __future__ import annotations

import functools
import logging
import uuid
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from cityops.geo.jurisdiction import Jurisdiction
from cityops.geo.masks import SparseWeights, cell_area_km2, sparse_overlap_weights
from cityops.geo.policy import LevelPolicy
from cityops.resources import load_yaml, package_data
from cityops.rules.engine import ConditionResult, HazardResult, LevelResult
from cityops.rules.table import level_names
from cityops.timeutil import iso_utc, parse_utc

__all__ = [
    "COLUMNS",
    "RiskOptions",
    "UnitLevelRule",
    "tier_for_lead",
    "town_hazards",
    "unit_level_series",
]

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
    "proposed_level",
    "next_level",
    "next_due_utc",
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
    policy: LevelPolicy = field(default_factory=LevelPolicy)


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


#: Note on the rows of a unit assessed on a disc around its seat (it has no polygon).
SEAT_DISC = "approximate: no polygon, assessed on a {km} km disc around the unit's seat"
#: Note on the rows of a unit that has neither a polygon nor a seat.
NO_LOCATION = "not assessed: the unit has no location (no polygon and no seat)"


def _unit_cells(
    weights: SparseWeights, jurisdiction: Jurisdiction
) -> tuple[_UnitCells, list[str], np.ndarray]:
    """The units with geometry as :class:`_UnitCells` under the jurisdiction's policy, their
    codes, and which of ``weights``' units they are (bool)."""
    policy = jurisdiction.policy
    units = {u.code: u for u in jurisdiction.units}
    unit_km2 = dict(zip(jurisdiction.codes, jurisdiction._unit_areas, strict=True))
    keep = np.array([units[str(c)].has_geometry for c in weights.units], dtype=bool)
    with_geom = weights.select(keep)
    codes = list(with_geom.units)
    areas = np.array([unit_km2[c] for c in codes], dtype=float)
    points = _anchor_points(jurisdiction, policy)
    anchors = [
        with_geom.cells_at(*np.asarray(points[c], float).reshape(-1, 2).T)
        if points.get(c)
        else np.zeros(0, np.int64)
        for c in codes
    ]
    return _UnitCells(with_geom, areas, policy, anchors), codes, keep


class UnitLevelRule:
    """The jurisdiction's level policy on one grid, built once (counting cells, area weights,
    anchor cells): :meth:`series` then takes each unit's level series from any level field on
    that grid, exactly as the town risk table takes it (the review's observed levels use it).
    """

    def __init__(self, weights: xr.DataArray | SparseWeights, jurisdiction: Jurisdiction):
        if isinstance(weights, xr.DataArray):
            weights = SparseWeights.from_dataarray(weights)
        self.cells, _, self.keep = _unit_cells(weights, jurisdiction)

    def series(self, level: xr.DataArray) -> tuple[np.ndarray, list[str]]:
        """``(unit, *other dims)`` float32 in the order of the weights' units (NaN for a unit
        without geometry), and the names of the other dims."""
        raw, other = self.cells.level_series(level)
        out = np.full((len(self.keep), *raw.shape[1:]), np.nan, dtype=np.float32)
        out[self.keep] = raw
        return out, other


def unit_level_series(
    level: xr.DataArray, weights: xr.DataArray | SparseWeights, jurisdiction: Jurisdiction
) -> tuple[np.ndarray, list[str]]:
    """Each unit's level at each time under the jurisdiction's level policy (one field; for
    several fields on one grid build a :class:`UnitLevelRule` once)."""
    return UnitLevelRule(weights, jurisdiction).series(level)


def _anchor_points(jurisdiction: Jurisdiction, policy: LevelPolicy) -> dict[str, list]:
    """``{unit code: [(lon, lat), ...]}`` of the policy's anchors: the unit's seat and the
    exposure points of the jurisdiction's asset register that lie in it."""
    out: dict[str, list] = {}
    if "seat" in policy.anchors:
        for unit in jurisdiction.units:
            if unit.seat_lon is not None and unit.seat_lat is not None:
                out.setdefault(unit.code, []).append((unit.seat_lon, unit.seat_lat))
    if "exposure_points" in policy.anchors:
        for code, lon, lat in _exposure_points(jurisdiction):
            out.setdefault(code, []).append((lon, lat))
    return out


def _exposure_points(jurisdiction: Jurisdiction) -> list[tuple[str, float, float]]:
    """Unique ``(unit, lon, lat)`` of the asset register, if the jurisdiction has one."""
    path = jurisdiction.path
    if not ((path / "assets.csv").exists() or (path / "assets.yaml").exists()):
        return []
    from cityops.geo.exposure import load_assets

    assets = load_assets(jurisdiction)
    if assets.empty:
        return []
    first = assets.drop_duplicates("asset_id")
    return [
        (str(r.unit), float(r.lon), float(r.lat))
        for r in first.itertuples()
        if str(r.unit) in jurisdiction.codes
    ]


@functools.cache
def _tiers() -> list[dict]:
    """The plan's tiers (levels.yaml), read once: ``tier_for_lead`` runs for every row."""
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


class _UnitCells:
    """The cells that count for each unit (:func:`counting_cells`) as sparse rows, and
    reductions of gridded fields over them: one gather and one segmented reduction per
    field for all units at once, however many units there are."""

    def __init__(
        self,
        weights: SparseWeights,
        unit_km2: np.ndarray,
        policy: LevelPolicy,
        anchors: list[np.ndarray] | None = None,
    ):
        from scipy import sparse

        min_cell_overlap = policy.min_cell_overlap
        self.policy = policy

        w = weights.matrix.tocsr()
        w.sort_indices()
        self.weights = w
        self.spatial = weights.dims
        self.n_units = w.shape[0]
        rows = np.repeat(np.arange(self.n_units), np.diff(w.indptr))
        cell_km2 = weights.cell_km2()[w.indices]
        with np.errstate(divide="ignore", invalid="ignore"):
            share_of_cell = w.data * unit_km2[rows] / cell_km2
        top = np.zeros(self.n_units)
        filled = np.diff(w.indptr) > 0
        if w.nnz:
            top[filled] = np.maximum.reduceat(w.data, w.indptr[:-1][filled])
        largest = (w.data == top[rows]) & (w.data > 0)
        count = (share_of_cell >= min_cell_overlap) | largest
        self.touch = sparse.csr_matrix(
            (np.ones(int(count.sum())), w.indices[count], np.r_[0, np.cumsum(
                np.bincount(rows[count], minlength=self.n_units))]),
            shape=w.shape,
        )  # fmt: skip
        self.filled = np.diff(self.touch.indptr) > 0
        # Anchor cells (seat, exposure points) per unit: their own level sets the unit's.
        anchors = anchors or [np.zeros(0, dtype=np.int64)] * self.n_units
        cols = [np.unique(a[a >= 0]) for a in anchors]
        self.anchor = sparse.csr_matrix(
            (np.ones(sum(c.size for c in cols)),
             np.concatenate(cols).astype(np.int64) if cols else np.zeros(0, np.int64),
             np.r_[0, np.cumsum([c.size for c in cols])]),
            shape=w.shape,
        )  # fmt: skip
        # Area weights restricted to the cells any unit uses (a level field is read there only).
        self.used = np.unique(np.r_[w.indices, self.anchor.indices]).astype(np.int64)
        self.w_used = w[:, self.used]
        # Reductions computed ahead as dask tasks (:meth:`precompute`): {(kind, id(field),
        # options): (field, result)}; the field is kept so that its id is not reused.
        self._done: dict[tuple, tuple[xr.DataArray, object]] = {}

    def __getstate__(self) -> dict:
        # Sent to dask workers (:meth:`precompute`) without the fields of the cache.
        return {**self.__dict__, "_done": {}}

    def _cached(self, kind: str, field: xr.DataArray, *options):
        hit = self._done.get((kind, id(field), *options))
        return None if hit is None else hit[1]

    def _rows(self, field: xr.DataArray) -> tuple[np.ndarray, list[str], tuple[int, ...]]:
        other = [d for d in field.dims if d not in self.spatial]
        arr = np.asarray(field.transpose(*other, *self.spatial).values)
        extra = arr.shape[: len(other)]
        return arr.reshape(int(np.prod(extra, dtype=np.int64)), -1), other, extra

    def level_series(self, level: xr.DataArray) -> tuple[np.ndarray, list[str]]:
        """Each unit's level at each time (and member) under the jurisdiction's policy:
        ``(unit, *other dims)`` float32 (NaN where a unit has no cell)."""
        done = self._cached("series", level)
        if done is not None:
            return done
        if self.policy.rule == "any_cell":
            out, other = self.reduce(level, "max")
        else:
            arr, other, extra = self._rows(level)
            out = np.zeros((self.n_units, arr.shape[0]), dtype=np.float32)
            sub = arr[:, self.used]
            step = max(1, (1 << 24) // max(1, self.used.size))
            share_min = self.policy.min_area_share - 1e-9
            for a in range(0, sub.shape[0], step):
                block = sub[a : a + step]
                for lv in range(1, 5):
                    hit = (block >= lv).astype(np.float64)
                    share = np.asarray(self.w_used @ hit.T)  # (unit, block)
                    out[:, a : a + step][share >= share_min] = lv
            out[~self.filled] = np.nan
            out = out.reshape(self.n_units, *extra)
        if self.anchor.nnz:
            anchored, _ = self.reduce(level, "max", matrix=self.anchor)
            out = np.fmax(out, anchored)
        return out, other

    def reduce(self, field: xr.DataArray, how: str, *, matrix=None) -> tuple[np.ndarray, list[str]]:
        """Max or min of ``field`` over each unit's cells (or over the cells of ``matrix``):
        ``(unit, *other dims)`` float32, NaN where a unit has no cell or only missing
        values."""
        if matrix is None:
            done = self._cached("reduce", field, how)
            if done is not None:
                return done
        arr, other, extra = self._rows(field)
        t = self.touch if matrix is None else matrix
        filled = np.diff(t.indptr) > 0
        out = np.full((arr.shape[0], self.n_units), np.nan, dtype=np.float32)
        f = np.fmax if how == "max" else np.fmin
        starts = t.indptr[:-1][filled]
        if t.nnz:
            step = max(1, (1 << 24) // t.nnz)  # bound the gathered block
            for a in range(0, arr.shape[0], step):
                block = arr[a : a + step][:, t.indices].astype(np.float32, copy=False)
                out[a : a + step, filled] = f.reduceat(block, starts, axis=1)
        out[~np.isfinite(out)] = np.nan
        return out.T.reshape(self.n_units, *extra), other

    def any(self, mask: xr.DataArray) -> np.ndarray:
        """Units with a counting cell where ``mask`` holds at some time (or member)."""
        done = self._cached("any", mask)
        if done is not None:
            return done
        other = [d for d in mask.dims if d not in self.spatial]
        cells = np.asarray(mask.any(other).transpose(*self.spatial).values).ravel() if other else (
            np.asarray(mask.transpose(*self.spatial).values).ravel())  # fmt: skip
        return (self.touch @ cells.astype(np.float64)) > 0

    def area_hit(self, level: xr.DataArray, p: float) -> np.ndarray:
        """``(unit, 4)``: per level 1-4 the share of each unit's area whose cells reach it at
        some time (with members: in at least a share ``p`` of them)."""
        done = self._cached("area", level, p)
        if done is not None:
            return done
        cell_max = level.max("time")
        other = [d for d in cell_max.dims if d not in self.spatial]
        cm = np.asarray(cell_max.transpose(*other, *self.spatial).values).reshape(
            -1, self.weights.shape[1]
        )
        members = "member" in level.dims
        hit = np.stack(
            [((cm >= lv).mean(axis=0) >= p) if members else (cm[0] >= lv) for lv in range(1, 5)],
            axis=1,
        ).astype(np.float64)
        return self.weights @ hit

    def precompute(self, jobs: list[tuple[str, xr.DataArray, tuple]]) -> None:
        """Compute the reductions ``jobs`` (``(kind, field, options)``, kind one of
        ``series``, ``reduce``, ``any``, ``area``) of dask-backed fields as dask tasks, all in
        one ``dask.compute``, and keep the results for the methods above to return.

        With a dask.distributed client active the tasks run on its workers, next to the
        (persisted) fields; each is named ``cityops-aggregate-<token>`` so the scheduler's
        task records show them. The results are those of the methods on the computed fields.
        """
        import dask
        from dask.base import tokenize

        jobs = [j for j in jobs if j[1] is not None and j[1].chunks is not None]
        if not jobs:
            return
        me = dask.delayed(self, name=f"{AGGREGATE_TASK}-cells-{uuid.uuid4().hex}")
        tasks = []
        for kind, data, options in jobs:
            name = f"{AGGREGATE_TASK}-{tokenize(id(self), kind, data, options)}"
            tasks.append(
                dask.delayed(_run_reduction, pure=True)(me, kind, data, options, dask_key_name=name)
            )
        for (kind, data, options), value in zip(jobs, dask.compute(*tasks), strict=True):
            self._done[(kind, id(data), *options)] = (data, value)


#: Key prefix of the aggregation tasks (:meth:`_UnitCells.precompute`) in dask's records.
AGGREGATE_TASK = "cityops-aggregate"


def _run_reduction(cells: _UnitCells, kind: str, field: xr.DataArray, options: tuple):
    """One reduction of :meth:`_UnitCells.precompute` on a computed field (run by a worker)."""
    if kind == "series":
        return cells.level_series(field)
    if kind == "reduce":
        return cells.reduce(field, *options)
    if kind == "any":
        return cells.any(field)
    return cells.area_hit(field, *options)


def _aggregation_jobs(
    result: LevelResult, extreme: LevelResult | None, p: float
) -> list[tuple[str, xr.DataArray, tuple]]:
    """Every grid reduction :func:`town_hazards` may ask of the level and condition fields
    (the key condition of a unit is chosen from the levels, so every evaluated condition's
    reductions are listed)."""
    jobs: list[tuple[str, xr.DataArray, tuple]] = []
    for res in result:
        if not res.evaluated:
            continue
        jobs += [("series", res.level, ()), ("area", res.level, (p,))]
        for crs in (c for cl in res.conditions.values() for c in cl if c.evaluated):
            how = "max" if crs.condition.op in (">=", ">") else "min"
            jobs += [("reduce", crs.value, (how,)), ("any", crs.holds, ())]
        ext = extreme.hazards.get(res.hazard) if extreme is not None else None
        if ext is not None and ext.evaluated:
            jobs.append(("series", ext.level, ()))
    return jobs


def _member_time(values: np.ndarray, dims: list[str]) -> np.ndarray:
    """``(unit, member, time)`` from a reduction's ``(unit, *dims)`` (member of size 1 when
    the field has none)."""
    if "member" not in dims:
        values = values[:, np.newaxis]
        dims = ["member", *dims]
    order = [0, 1 + dims.index("member"), 1 + dims.index("time")]
    return values.transpose(order)


def _last_true(mask: np.ndarray) -> np.ndarray:
    """Index of the last True along the last axis (-1 when none)."""
    n = mask.shape[-1]
    last = n - 1 - np.argmax(mask[..., ::-1], axis=-1)
    return np.where(mask.any(axis=-1), last, -1)


def _unit_rows(
    res: HazardResult,
    cells: _UnitCells,
    codes: list[str],
    extreme_res: HazardResult | None,
    extreme_info: dict,
    opts: RiskOptions,
    now: pd.Timestamp,
) -> list[dict]:
    """Rows of one evaluated hazard for every unit with geometry (``codes``, the rows of
    ``cells``), computed for all units at once."""
    names = level_names()
    p = opts.report_probability
    has_members = "member" in res.level.dims
    # Unit x member x time level series under the jurisdiction's policy.
    raw, dims = cells.level_series(res.level)
    series = _member_time(raw, dims)
    times = res.level["time"].values
    reached = np.fmax.reduce(series, axis=2)  # (unit, member)
    probability = np.full(len(codes), np.nan)
    max_member_level = np.full(len(codes), np.nan)
    if has_members:
        shares = np.stack([(reached >= lv).mean(axis=1) for lv in range(1, 5)], axis=1)
        level = np.zeros(len(codes), dtype=int)
        for lv in range(1, 5):
            level[shares[:, lv - 1] >= p] = lv
        probability = np.where(level > 0, shares[np.arange(len(codes)), np.maximum(level, 1) - 1],
                               shares[:, 0])  # fmt: skip
        max_member_level = np.fmax.reduce(reached, axis=1)
        at_level = series >= level[:, None, None]
        onset_mask = np.logical_or.accumulate(at_level, axis=2).mean(axis=1) >= p
        after = at_level.mean(axis=1) >= p
    else:
        level = np.nan_to_num(reached[:, 0], nan=0).astype(int)
        onset_mask = series[:, 0] >= level[:, None]
        after = onset_mask
    onset_idx = np.where(onset_mask.any(axis=1), np.argmax(onset_mask, axis=1), -1)
    end_idx = _last_true(after)
    level_onsets = _level_onsets(series, p if has_members else None)
    # Share of each unit's area reaching its level at any time: weights of the cells hit.
    area = cells.area_hit(res.level, p)  # (unit, 4)
    keys = _key_conditions(res, level, cells)
    episode = _episodes(after, onset_idx, level)
    peaks = _peaks(res, level, keys, cells, opts, has_members, episode)
    extreme = np.zeros(len(codes), dtype=bool)
    if extreme_res is not None and extreme_res.evaluated:
        # The Annex 3 flag holds for a unit by the same policy as its level (not any cell).
        raw, dims = cells.level_series(extreme_res.level)
        ext = np.fmax.reduce(_member_time(raw, dims), axis=2) >= 1
        extreme = ext.mean(axis=1) >= p if has_members else ext[:, 0]
    rows = []
    for u, code in enumerate(codes):
        lv = int(level[u])
        onset = pd.Timestamp(times[onset_idx[u]]) if lv and onset_idx[u] >= 0 else None
        end = pd.Timestamp(times[end_idx[u]]) if lv and end_idx[u] >= 0 else None
        rule = res.rules.level_rule(lv) if lv else None
        issue_by = onset - rule.lead if (onset is not None and rule is not None) else None
        crs = keys[u]
        peak_time, peak_value = peaks[u]
        lead_hours = (onset - now) / pd.Timedelta("1h") if onset is not None else np.nan
        proposed, next_level, next_due = _proposal(
            res, lv, [level_onsets[k][u] for k in range(4)], times, now
        )
        notes = list(res.notes)
        if extreme[u] and extreme_info.get("national_equivalent"):
            notes.append(
                f"Annex 3 criterion met (national {extreme_info['national_equivalent']} "
                f"numbers; the plan's main text names {extreme_info.get('main_text_colour')})"
            )
        rows.append(
            {
                "town_code": str(code),
                "hazard": res.hazard,
                "level": lv,
                "level_name": names[lv]["name"],
                "onset_utc": iso_utc(onset),
                "issue_by_utc": iso_utc(issue_by),
                "peak_time_utc": iso_utc(peak_time),
                "peak_value": peak_value,
                "units": crs.condition.value_units if crs is not None else "",
                "lead_hours": None if np.isnan(lead_hours) else round(float(lead_hours), 2),
                # An onset taken from observations is under way, whatever the lead says.
                "tier": (
                    "ongoing"
                    if lv and res.observed_until is not None and onset <= res.observed_until
                    else (tier_for_lead(lead_hours) if lv else "")
                ),
                "extreme": bool(extreme[u]),
                "area_fraction": round(float(area[u, lv - 1]), 4) if lv else 0.0,
                "probability": None
                if np.isnan(probability[u])
                else round(float(probability[u]), 3),
                "evaluated": True,
                "note": "; ".join(notes),
                "end_utc": iso_utc(end),
                "overdue": bool(issue_by is not None and issue_by < now),
                "max_member_level": (
                    None if np.isnan(max_member_level[u]) else int(max_member_level[u])
                ),
                "criterion": crs.condition.describe() if crs is not None else "",
                "source": rule.source if rule is not None else "",
                "proposed_level": proposed,
                "next_level": next_level or None,
                "next_due_utc": iso_utc(next_due),
            }
        )
    return rows


def _level_onsets(series: np.ndarray, p: float | None) -> list[np.ndarray]:
    """Per level 1-4, the time index at which each unit first reaches it (-1: never).

    ``series`` is (unit, member, time); with members (``p`` given) a level is reached once the
    share of members that have reached it is at least ``p``.
    """
    out = []
    for lv in range(1, 5):
        at = series >= lv
        mask = np.logical_or.accumulate(at, axis=2).mean(axis=1) >= p if p is not None else at[:, 0]
        out.append(np.where(mask.any(axis=1), np.argmax(mask, axis=1), -1))
    return out


def _proposal(
    res: HazardResult, level: int, onsets: list[int], times: np.ndarray, now: pd.Timestamp
) -> tuple[int, int, pd.Timestamp | None]:
    """The level a run proposes to issue now, and the next level above it with its due time.

    A signal is proposed once its issue-by time (onset of that level − the level's lead, the
    standard's "within N h") is reached, or its onset is observed: the national signals are
    issued N hours ahead, not as soon as a model shows them (issue 18 item 2). Higher levels
    are an outlook: ``next_level`` is the lowest of them the unit reaches, due at its
    issue-by time (0 and None when the proposal is the unit's level).
    """
    proposed, pending = 0, []
    for lv in range(1, level + 1):
        idx = onsets[lv - 1]
        rule = res.rules.level_rule(lv)
        if idx < 0 or rule is None:
            continue
        onset = pd.Timestamp(times[idx])
        due = onset - rule.lead
        observed = res.observed_until is not None and onset <= res.observed_until
        if observed or due <= now:
            proposed = lv
        else:
            pending.append((lv, due))
    above = [(lv, due) for lv, due in pending if lv > proposed]
    if not above:
        return proposed, 0, None
    return proposed, *above[0]


def _key_conditions(
    res: HazardResult, level: np.ndarray, cells: _UnitCells
) -> list[ConditionResult | None]:
    """Per unit, the condition that explains its level: the first one of that level that
    holds in the unit; for level 0 the first evaluated condition of the lowest level."""
    keys: list[ConditionResult | None] = [None] * len(level)
    lowest = None
    for lv in sorted(res.conditions):
        lowest = next((c for c in res.conditions[lv] if c.evaluated), None)
        if lowest is not None:
            break
    for u in np.flatnonzero(level == 0):
        keys[u] = lowest
    for lv in sorted(set(level[level > 0].tolist())):
        units = np.flatnonzero(level == lv)
        candidates = [c for c in res.conditions.get(lv, []) if c.evaluated]
        open_ = np.ones(len(units), dtype=bool)
        for crs in candidates:
            if not open_.any():
                break
            holds_in = cells.any(crs.holds)[units]
            for i in np.flatnonzero(open_ & holds_in):
                keys[units[i]] = crs
            open_ &= ~holds_in
        fallback = candidates[0] if candidates else None
        for i in np.flatnonzero(open_):
            keys[units[i]] = fallback
    return keys


def _episodes(after: np.ndarray, onset_idx: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Per unit ``(first, last)`` time index of the episode that set its level: from the
    onset while the level holds (``after``, unit x time); the whole forecast for level 0."""
    n = after.shape[1]
    out = np.tile(np.array([0, n - 1]), (len(level), 1))
    for u in np.flatnonzero((level > 0) & (onset_idx >= 0)):
        start = int(onset_idx[u])
        stops = np.flatnonzero(~after[u, start + 1 :])
        out[u] = (start, start + int(stops[0]) if stops.size else n - 1)
    return out


def _peaks(res, level, keys, cells: _UnitCells, opts: RiskOptions, has_members: bool, episode=None):
    """Per unit ``(peak_time, peak_value)`` of its key condition's aggregated value, within
    the episode that set the unit's level (``episode``: unit x (first, last) index)."""
    p = opts.report_probability
    out: list[tuple] = [(None, None)] * len(level)
    groups: dict[int, list[int]] = {}
    for u, crs in enumerate(keys):
        if crs is not None:
            groups.setdefault(id(crs), []).append(u)
    for members in groups.values():
        crs = keys[members[0]]
        how = "max" if crs.condition.op in (">=", ">") else "min"
        raw, dims = cells.reduce(crs.value, how)
        units = np.asarray(members)
        vtimes = crs.value["time"].values
        if has_members and "member" in dims:
            # The value reached by at least a share p of members.
            q = 1 - p if how == "max" else p
            with warnings.catch_warnings():  # all members missing at a time: NaN, as meant
                warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
                da = xr.DataArray(raw[units], dims=["unit", *dims]).quantile(q, dim="member")
            vs = np.asarray(da.drop_vars("quantile").transpose("unit", "time").values)
        else:
            vs = _member_time(raw[units], dims)[:, 0]
        for i, u in enumerate(units):
            v = vs[i]
            ok = ~np.isnan(v)
            if episode is not None and len(v) == res.level.sizes["time"]:
                first, last = episode[u]
                inside = np.zeros(len(v), dtype=bool)
                inside[first : last + 1] = True
                ok &= inside
            if not ok.any():
                continue
            w = np.where(ok, v, -np.inf if how == "max" else np.inf)
            idx = int(np.argmax(w) if how == "max" else np.argmin(w))
            out[u] = (pd.Timestamp(vtimes[idx]), round(float(v[idx]), 2))
    return out


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
    weights : xarray.DataArray or SparseWeights, optional
        Precomputed :func:`cityops.geo.overlap_weights` for the grid, or its sparse form
        :func:`cityops.geo.masks.sparse_overlap_weights` (many units, large grids).
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
        policy=jurisdiction.policy,
    )
    now_ts = opts.now
    if now_ts is None:
        raise ValueError("a reference time is needed: the forecast has no 'issued'")
    first = next((r.level for r in result if r.evaluated), None)
    if weights is None and first is not None:
        if first["lat"].ndim == 2:  # curvilinear: keep the grid's dim names
            weights = sparse_overlap_weights(jurisdiction, first["lat"], first["lon"])
        else:
            weights = sparse_overlap_weights(jurisdiction, first["lat"].values, first["lon"].values)
    if isinstance(weights, xr.DataArray):
        weights = SparseWeights.from_dataarray(weights)
    units = {u.code: u for u in jurisdiction.units}
    unit_km2 = dict(zip(jurisdiction.codes, jurisdiction._unit_areas, strict=True))
    cells = codes = None
    if weights is not None and first is not None:
        cells, codes, _ = _unit_cells(weights, jurisdiction)
        # Lazy (dask) levels: the grid reductions run as dask tasks (on a cluster's workers).
        cells.precompute(_aggregation_jobs(result, extreme, opts.report_probability))
    rows: list[dict] = []
    for res in result:
        ext_res = extreme.hazards.get(res.hazard) if extreme is not None else None
        ext_info = dict(ext_res.rules.extra) if ext_res is not None else {}
        if res.evaluated and cells is not None:
            hazard_rows = _unit_rows(res, cells, codes, ext_res, ext_info, opts, now_ts)
        else:
            hazard_rows = []
        done = {r["town_code"] for r in hazard_rows}
        for unit in jurisdiction.units:
            if unit.code in done:
                continue
            reason = "; ".join(res.notes) if not res.evaluated else ""
            if units[unit.code].geometry_source == "none":
                reason = f"{NO_LOCATION}; {reason}" if reason else NO_LOCATION
            elif not reason:
                reason = "unit has no geometry"
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
            if unit.seat_disc:
                disc = SEAT_DISC.format(km=f"{opts.policy.seat_disc_km:g}")
                row["note"] = f"{row['note']}; {disc}" if row.get("note") else disc
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
        lat_dims, lat_values, _ = weights.coords["lat"]
        if np.ndim(lat_values) == 1:
            dlat = float(abs(np.diff(lat_values).mean())) if np.size(lat_values) > 1 else 0
            cell_km = dlat * 111.2
        else:
            lon_dims, lon_values, _ = weights.coords["lon"]
            lat2 = xr.DataArray(lat_values, dims=lat_dims)
            lon2 = xr.DataArray(lon_values, dims=lon_dims)
            cell_km = float(np.sqrt(cell_area_km2(lat2, lon2).mean()))
        for code in weights.units:
            unit = units[str(code)]
            if unit.has_geometry and cell_km**2 > unit_km2[unit.code]:
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
    # Unknown stays empty for rows not evaluated (never 0: "nothing to issue").
    for col in ("proposed_level", "next_level"):
        frame[col] = pd.to_numeric(frame[col]).astype("Int64")
    return frame[COLUMNS + EXTRA_COLUMNS]
