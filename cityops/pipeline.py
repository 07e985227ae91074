"""The shared work of every command: forecast files to the town risk table.

``assess`` runs ingest, the active rule set, the jurisdiction's own extreme-weather judgement
(when its ``jurisdiction.yaml`` declares criteria, e.g. Ejin Horo's Annex 3) and the town
aggregation once; the CLI, the batch and the notebooks all call it.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from cityops import cluster as _cluster
from cityops.freshness import check_reference_time
from cityops.fsio import atomic_path, clean_stale, make_stage, publish_folder, run_lock, write_text
from cityops.geo import geohazard
from cityops.geo.calendar import apply_attention, special_periods
from cityops.geo.exposure import evaluate_assets, load_assets
from cityops.geo.jurisdiction import Jurisdiction, load_jurisdiction
from cityops.geo.masks import overlap_weights
from cityops.geo.risk import counting_cells, town_hazards
from cityops.ingest import open_forecast
from cityops.response import Response, load_plan, plan_response
from cityops.rules import LevelResult, evaluate, load_rule_table
from cityops.rules.drought_input import add_drought_index
from cityops.rules.observed import (
    history_daily_min,
    join_observed,
    open_observed,
    past_notes,
    settle_observed,
)
from cityops.rules.seasons import bind_seasons
from cityops.text import person_csv
from cityops.timeutil import parse_utc

__all__ = ["EXTREME_RULES", "Assessment", "assess", "publish_assessment", "write_assessment"]

log = logging.getLogger("cityops")

#: Without a cluster, forecasts up to this size are loaded into memory before the rules run
#: (the setting and its cluster default: :mod:`cityops.cluster`).
IN_MEMORY_BYTES = _cluster.IN_MEMORY_BYTES

#: The shipped extreme-weather table of Ejin Horo (Annex 3). It is applied to a jurisdiction
#: only when its ``jurisdiction.yaml`` names it under ``extreme_criteria`` (data-driven:
#: ``Jurisdiction.extreme_criteria``); a jurisdiction without criteria has no extreme flag.
EXTREME_RULES = "ejin-horo-annex3"


#: Ensemble share of members needed to report a level (interfaces.md §2).
DEFAULT_REPORT_PROBABILITY = 0.3


@dataclass
class Assessment:
    """Everything derived from one forecast for one jurisdiction."""

    forecast: xr.Dataset
    jurisdiction: Jurisdiction
    levels: LevelResult
    #: Levels of the jurisdiction's own extreme-weather criteria (None: it declares none).
    extreme: LevelResult | None
    weights: xr.DataArray
    table: pd.DataFrame
    now: pd.Timestamp
    sources: list[str]
    #: Holidays, events and seasons overlapping the forecast (cityops.geo.calendar).
    periods: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: Exposure points whose own triggers are met (cityops.geo.exposure).
    assets: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: Geological-hazard meteorological risk grade per town with registered points
    #: (cityops.geo.geohazard.geohazard_risk); empty without a point register.
    geohazards: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: The same per registered point (points at risk, monitors, responsible persons).
    geohazard_points: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: Postures and tasks from the jurisdiction's plan (None without a plan folder).
    response: Response | None = None
    #: The series the rules ran on when observations were joined before the forecast
    #: (``source`` coordinate: observed/forecast; cityops.rules.observed), else None.
    joined: xr.Dataset | None = None

    @cached_property
    def counting_cells(self) -> xr.DataArray:
        """Per unit, the grid cells whose values count for it (see
        :func:`cityops.geo.risk.counting_cells`)."""
        areas = {str(c): self.jurisdiction.area_km2(str(c)) for c in self.weights["unit"].values}
        return counting_cells(self.weights, areas)

    @property
    def issued(self) -> pd.Timestamp:
        return parse_utc(self.forecast.attrs["issued"])

    @property
    def is_exercise(self) -> bool:
        """Scenario (drill) inputs: CAP status Exercise, exempt from the staleness check."""
        return bool(self.forecast.attrs.get("cityops_scenario")) or (
            self.forecast.attrs.get("status") == "Exercise"
        )

    def levels_dataset(self) -> xr.Dataset:
        """CF dataset of the level fields, the Annex 3 flags and the aggregated values."""
        ds = self.levels.to_dataset()
        criteria = self.jurisdiction.extreme_criteria
        for res in self.extreme if self.extreme is not None else ():
            if res.evaluated:
                flag = (res.level >= 1).astype("int8")
                flag.attrs = {
                    "long_name": f"{criteria.name_en} ({res.rules.name_en})"
                    if criteria is not None
                    else f"extreme-weather criterion ({res.rules.name_en})",
                    # CF: flag_values of the variable's own type (int8), not Python ints.
                    "flag_values": np.array([0, 1], dtype=np.int8),
                    "flag_meanings": "not_extreme extreme",
                    "units": "1",
                    "source": res.rules.levels[0].source,
                }
                ds[f"{res.hazard}_extreme"] = flag
        ds.attrs["jurisdiction"] = self.jurisdiction.name
        ds.attrs["jurisdiction_path"] = str(self.jurisdiction.path)
        ds.attrs["forecast_sources"] = ", ".join(self.sources)
        # Drill inputs: a signal issued from this run is an Exercise (cityops issue).
        ds.attrs["cityops_exercise"] = "true" if self.is_exercise else "false"
        return ds


def assess(
    paths: str | Path | Sequence[str | Path],
    *,
    jurisdiction: str | Path | Jurisdiction = "ejin-horo",
    rules: str | Path = "national",
    now=None,
    report_probability: float = DEFAULT_REPORT_PROBABILITY,
    mapping: str | Path | None = None,
    observed: str | Path | Sequence[str | Path] | None = None,
    history: str | Path | None = None,
    in_memory_bytes: int | None = None,
) -> Assessment:
    """Evaluate every rule on a forecast and aggregate to the jurisdiction's units.

    Parameters
    ----------
    paths : path, glob or list of paths
        Forecast file(s) (see :func:`cityops.ingest.open_forecast`).
    jurisdiction : str, path or Jurisdiction, optional
        Jurisdiction folder name or path (default ``ejin-horo``).
    rules : str or path, optional
        Active rule set: ``national`` (default) or a YAML rule table.
    now : time, optional
        Reference time for lead times and tiers (default: the forecast's ``issued``).
    report_probability : float, optional
        Ensemble share needed to report a level.
    mapping : path, optional
        A user variable mapping (YAML) for source names ingest does not know.
    observed : path(s), optional
        Recent observations: grids (any ingestible file) or stations (CSV
        ``station_id, lon, lat, time_utc, <variables>`` or MICAPS diamond 1). Observed steps
        before the reference time are joined to the forecast in one series, so windows
        straddling it count both; the observed level at the reference time keeps its signal
        only where the forecast says the phenomenon continues (:mod:`cityops.rules.observed`).
    history : path, optional
        Daily precipitation/temperature history (NetCDF) for the drought index MCI (without
        it the drought rows are "not evaluated"); its daily minimum temperature ``t2m_min``
        gives the cold wave the day before the forecast.
    in_memory_bytes : int, optional
        Cropped forecasts up to this size are loaded into this process and evaluated with
        numpy; larger ones stay lazy (dask), and with a dask.distributed client active their
        rule evaluation and town aggregation run on its workers. Default: the command's
        ``--in-memory-bytes``, else ``CITYOPS_IN_MEMORY_BYTES``, else 256 MiB without a
        cluster and dask's ``array.chunk-size`` with one (:func:`cityops.cluster.in_memory_limit`).

    Returns
    -------
    Assessment
    """
    juris = (
        jurisdiction if isinstance(jurisdiction, Jurisdiction) else load_jurisdiction(jurisdiction)
    )
    # Cropped to the jurisdiction before anything is loaded: a national file costs what the
    # banner needs. The grid must cover the jurisdiction.
    forecast = open_forecast(
        paths, bounds=juris.bounds, mapping=mapping, in_memory_bytes=in_memory_bytes
    )
    source = forecast.attrs.get("cityops_source_files", str(paths))
    issued = parse_utc(forecast.attrs["issued"])
    now_ts = parse_utc(now) if now is not None else issued
    check_reference_time(issued, now_ts, source=source.split(", ")[0])
    on_cluster = False
    if _cluster.keep_in_client(forecast.nbytes, in_memory_bytes=in_memory_bytes):
        # Small (cropped) forecasts are faster in numpy than as a dask graph of many tiny
        # tasks; larger ones stay lazy until the rules are computed.
        forecast = forecast.load()
    else:
        # With a cluster, the rules and the aggregation of a large grid run on its workers.
        on_cluster = _cluster.active_client() is not None
    # Seasonal rows (frost) take the jurisdiction's dates (cityops.rules.seasons).
    table = bind_seasons(load_rule_table(rules), juris.path)
    timezone = juris.timezone
    prior = None
    if history is not None:
        lat = float(forecast["lat"].mean())
        forecast = add_drought_index(forecast, history, lat=lat, timezone=timezone)
        prior = history_daily_min(history, timezone)
    now_ts = parse_utc(now) if now is not None else parse_utc(forecast.attrs["issued"])
    series, joined = forecast, None
    if observed is not None:
        obs = open_observed(observed, bounds=juris.bounds, mapping=mapping)
        names = [Path(str(p)).name for p in (observed if isinstance(observed, (list, tuple))
                                              else [observed])]  # fmt: skip
        joined = join_observed(forecast, obs, now=now_ts, source=", ".join(names))
        series = joined.dataset
    # Rules stay lazy until here; compute them once, together: into this process, or on the
    # cluster's workers, where the fields stay for the aggregation (gathered at the end).
    kwargs = {"timezone": timezone, "prior_daily_min": prior}
    levels = evaluate(series, table, **kwargs)
    extreme = None
    if juris.extreme_criteria is not None:  # only the criteria the jurisdiction declares
        extreme_table = bind_seasons(load_rule_table(juris.extreme_criteria.rules), juris.path)
        extreme = evaluate(series, extreme_table, **kwargs)
    if on_cluster:  # both rule sets in one graph: the inputs they share are read once
        _persist_on_cluster(levels, extreme)
    else:
        for result in (levels, extreme):
            if result is not None:
                result.load()
    past: dict = {}
    if joined is not None:
        past = settle_observed(levels, joined, timezone=timezone)
        if extreme is not None:
            settle_observed(extreme, joined, timezone=timezone)
    # DataArrays, so a curvilinear grid keeps its own dimension names.
    weights = overlap_weights(juris, forecast["lat"], forecast["lon"])
    frame = town_hazards(
        levels,
        juris,
        extreme=extreme,
        weights=weights,
        now=now_ts,
        report_probability=report_probability,
    )
    if past:
        frame = _add_notes(frame, past_notes(past, weights, joined.cut))
    if on_cluster:  # the fields from the workers, for levels.nc, the briefings and plots
        levels.load()
        if extreme is not None:
            extreme.load()
    periods, frame = _special_periods(juris, forecast, frame)
    assets, geohazards, geo_points, asset_kinds = _exposure(juris, forecast)
    if not geohazards.empty:
        # Only towns whose registered points reach a grade get a geological-hazard concern.
        owner = geohazards.attrs.get("owner") or "自然资源局"
        frame = geohazard.add_geohazard_concerns(frame, geohazards, owner=owner)
    response = None
    plan = juris.response_plan
    if plan is not None and plan.folder is not None:  # a plan with its tables loaded
        response = plan_response(
            frame, load_plan(plan.folder), now=now_ts, banner_code=str(juris.code),
            periods=periods, asset_kinds=asset_kinds, timezone=juris.timezone,
        )  # fmt: skip
    return Assessment(
        forecast=forecast,
        jurisdiction=juris,
        levels=levels,
        extreme=extreme,
        weights=weights,
        table=frame,
        now=now_ts,
        sources=source.split(", "),
        periods=periods,
        assets=assets,
        geohazards=geohazards,
        geohazard_points=geo_points,
        response=response,
        joined=series if joined is not None and joined.joined else None,
    )


def _persist_on_cluster(*results: LevelResult | None) -> None:
    """Compute every level field and condition result of ``results`` on the cluster's
    workers and keep them there (``dask.persist``, one graph), in place.

    The aggregation then runs next to them (:func:`cityops.geo.risk.town_hazards` computes
    its grid reductions as tasks), and :meth:`LevelResult.load` gathers them afterwards.
    """
    import dask

    slots: list[tuple[object, str]] = []
    for res in (r for result in results if result is not None for r in result):
        if res.evaluated:
            slots.append((res, "level"))
        for crs in (c for cl in res.conditions.values() for c in cl):
            if crs.evaluated:
                slots += [(crs, "value"), (crs, "holds")]
    arrays = dask.persist(*(getattr(obj, attr) for obj, attr in slots))
    for (obj, attr), value in zip(slots, arrays, strict=True):
        setattr(obj, attr, value)
    names = sorted({a.data.name for a in arrays if a.chunks is not None})
    log.debug("rules on the cluster: %s", " ".join(names))


def _add_notes(frame: pd.DataFrame, notes: dict[tuple[str, str], str]) -> pd.DataFrame:
    """Append per (unit, hazard) notes to the town table's ``note``."""
    frame = frame.copy()
    for i, row in frame.iterrows():
        extra = notes.get((str(row["town_code"]), str(row["hazard"])))
        if extra:
            frame.at[i, "note"] = "; ".join(p for p in (row["note"], extra) if p)
    return frame


def _exposure(
    juris: Jurisdiction, forecast: xr.Dataset
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, set[str]]]:
    """Triggered exposure points, and the geological-hazard risk grade of the towns with
    registered points and of each point, when the jurisdiction's folder has an asset register
    (``assets.csv``) and a point register (``geohazard_points.yaml``). Without ``precip`` the
    points are listed as not assessed (never as no risk). Also, from the same registers read
    once: unit code to the kinds of exposure points it holds (``geohazard_point`` where the
    geological-hazard register has points)."""
    assets = towns = points = pd.DataFrame()
    kinds: dict[str, set[str]] = {}
    if (juris.path / "assets.csv").exists():
        register = load_assets(juris)
        assets = evaluate_assets(forecast, register, timezone=juris.timezone)
        kinds = {str(u): set(g["kind"]) for u, g in register.groupby("unit")}
    if (juris.path / geohazard.FILE_NAME).exists():
        register = geohazard.load_geohazard_points(juris)
        points = geohazard.evaluate_geohazard_points(forecast, register, juris)
        towns = geohazard.town_geohazard_risk(points, juris)
        for code in dict.fromkeys(register["town_code"]):
            kinds.setdefault(str(code), set()).add("geohazard_point")
    return assets, towns, points, kinds


def _special_periods(juris: Jurisdiction, forecast: xr.Dataset, frame: pd.DataFrame):
    """Holidays, events and seasons over the forecast (Beijing dates) and the attention levels
    they give; the jurisdiction's own attention rules when its folder has them."""
    times = pd.DatetimeIndex(forecast["time"].values).tz_localize("UTC").tz_convert(juris.timezone)
    periods = special_periods(juris, times[0].date(), times[-1].date())
    own = juris.path / "attention.yaml"
    frame = apply_attention(frame, periods, rules=own if own.exists() else None)
    return periods, frame


def _csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for col in ("extreme", "evaluated", "overdue"):
        # Unknown stays empty: bool(NaN) is True, so a not-evaluated row read "overdue".
        out[col] = out[col].map(lambda v: "" if pd.isna(v) else ("true" if v else "false"))
    return out


def write_table(frame: pd.DataFrame, out_dir: Path) -> None:
    """``town_hazards.csv`` and ``.json`` (interfaces.md §4) into ``out_dir``, each atomically."""
    # Opened in spreadsheets too: formula-like text is neutralised (the JSON keeps it as is).
    write_text(Path(out_dir) / "town_hazards.csv", person_csv(_csv_frame(frame)))
    records = json.loads(frame.to_json(orient="records", force_ascii=False))
    write_text(
        Path(out_dir) / "town_hazards.json", json.dumps(records, ensure_ascii=False, indent=1)
    )


def write_assessment(assessment: Assessment, out_dir: str | Path) -> Path:
    """Write ``levels.nc``, ``town_hazards.csv`` and ``town_hazards.json`` into ``out_dir``.

    Each file is written under a temporary name beside it and renamed into place
    (:func:`cityops.fsio.atomic_path`), so a reader never sees a half-written file. The
    ``assess`` command publishes a whole folder instead (:func:`publish_assessment`).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ds, encoding = levels_for_netcdf(assessment.levels_dataset())
    with atomic_path(out_dir / "levels.nc") as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding)
    write_table(assessment.table, out_dir)
    return out_dir


_COORD_ATTRS = {
    "time": {"standard_name": "time", "long_name": "valid time (end of the step)", "axis": "T"},
    "lat": {"standard_name": "latitude", "long_name": "latitude", "units": "degrees_north"},
    "lon": {"standard_name": "longitude", "long_name": "longitude", "units": "degrees_east"},
}


def levels_for_netcdf(ds: xr.Dataset) -> tuple[xr.Dataset, dict]:
    """``levels.nc`` as CF 1.8 wants it (checked with cfchecker, tests/test_cf_conformance.py).

    Returns the dataset to write and its encoding. Beyond :meth:`Assessment.levels_dataset`:

    - ``time_bnds`` (time, nv): the CF bounds of each step, ``[step_start, time]``, named by
      ``time``'s ``bounds`` attribute (values with ``cell_methods`` over ``time`` cover the
      step); ``step_start`` stays for the readers that use it;
    - ``units: "1"`` on the ``level`` coordinate (signal levels 1-4, a flag coordinate) and
      on ``member`` (ensemble member numbers); ``time``, ``lat`` and ``lon`` named and with
      units even when the forecast file had none;
    - temperature differences in ``K`` (pint's ``delta_degC``, as in ``town_hazards.csv``,
      is no UDUNITS unit; a fall of 14 degC is 14 K);
    - no ``_FillValue`` on coordinates; a declared ``_FillValue`` on times that may be
      missing (onsets never reached), so that a CF reader masks them instead of reading
      the most negative int64 as a date;
    - ``time``, ``step_start`` and ``time_bnds`` in minutes since the first step's start, as
      int32 (float64 if a time is not a whole minute): cfchecker 4.1 counts only int32 and
      floating-point bounds as numeric.
    """
    ds = ds.copy()
    for name in ("level", "member"):
        if name in ds.coords:
            ds[name].attrs.setdefault("units", "1")
    # Coordinates say what they are whatever the forecast file said (ingest renames them).
    for name, attrs in _COORD_ATTRS.items():
        if name in ds.coords:
            for key, value in attrs.items():
                ds[name].attrs.setdefault(key, value)
    for var in ds.data_vars.values():
        if var.attrs.get("units") == "delta_degC":
            var.attrs["units"] = "K"
            var.attrs["comment"] = "temperature difference: 1 K is 1 degC of difference"
    axis = ("time", "step_start", "time_bnds")
    time_units, axis_dtype = None, None
    if "time" in ds.dims and "step_start" in ds.coords and ds.sizes["time"]:
        bounds = np.stack([ds["step_start"].values, ds["time"].values], 1)
        start = pd.Timestamp(bounds.min())
        time_units = f"minutes since {start.strftime('%Y-%m-%d %H:%M:%S')}"
        minutes = (bounds - start.to_datetime64()) / np.timedelta64(1, "m")
        whole = bool((minutes == np.round(minutes)).all()) and float(minutes.max()) < 2**31
        axis_dtype = "int32" if whole else "float64"
        ds["time_bnds"] = (("time", "nv"), bounds)
        ds["time"].attrs["bounds"] = "time_bnds"
    encoding: dict[str, dict] = {}
    for name, var in ds.variables.items():
        enc: dict = {"_FillValue": None} if name in ds.coords else {"zlib": True, "complevel": 4}
        if np.issubdtype(var.dtype, np.datetime64) and time_units is not None:
            enc["units"] = time_units
        if name in axis and axis_dtype is not None:
            enc.update(_FillValue=None, dtype=axis_dtype)
        elif np.issubdtype(var.dtype, np.datetime64) and name not in ds.coords:
            enc.update(_FillValue=np.iinfo(np.int64).min, dtype="int64")
        encoding[name] = enc
    return ds, encoding


def publish_assessment(
    assessment: Assessment, out: str | Path, *, lock_timeout: float | None = None
) -> Path:
    """``cityops assess --out DIR``: the files built beside ``DIR``, published as one run.

    ``DIR`` must be new, empty or an earlier ``assess`` run (:func:`cityops.fsio.check_out_dir`,
    which the command calls before any work); it is replaced whole, as a ``brief`` run is.
    """
    out = Path(out).resolve()
    with run_lock(out, lock_timeout):
        clean_stale(out)
        stage = make_stage(out)
        try:
            write_assessment(assessment, stage)
            publish_folder(stage, out, "assess")
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
    return out
