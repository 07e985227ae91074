"""Observations joined to the forecast: one series, evaluated once.

The signals read "…将达…，或者已达…且…可能持续" (will reach, or has reached and is likely to
continue). Observed steps before the reference time and forecast steps after it are joined
into one continuous canonical series on the forecast grid (:func:`join_observed`), with a
``source`` coordinate along time (``observed``/``forecast``), so that a window straddling the
reference time counts both: 30 mm observed in the last 2 h and 25 mm forecast in the next
hour is 55 mm in 3 h. The rules are then evaluated once on the joined series
(:func:`cityops.rules.evaluate`).

Of the observed part only the level at the reference time counts (its windows ending then:
"已达" within the window); and it keeps its signal only while the forecast says the
phenomenon continues (``cityops/data/continues.yaml``, :func:`settle_observed`). Elsewhere it
is reported as past, with a note, not as an ongoing signal.

Observations may be grids (any file :func:`cityops.ingest.open_forecast` reads: regridded to
the forecast grid by nearest neighbour within one observed grid spacing) or stations (CSV
``station_id, lon, lat, time_utc, <variables>`` or MICAPS diamond 1, as the review reads
them): each station counts in the forecast cell containing it; several stations in one cell
combine as ``cityops/data/observed_join.yaml`` says (the worst of them for a warning).
Cells without a station keep the forecast alone (their observed steps are missing).

A daily history (``--history``) gives the daily minimum temperature of the days before the
forecast (:func:`history_daily_min`), the cold wave's "day before".
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from cityops.errors import DataFileError, InputError
from cityops.resources import canonical_variables, load_yaml, package_data
from cityops.rules.table import RuleTable, parse_rule_table
from cityops.timeutil import format_local, iso_utc

__all__ = [
    "JoinedSeries",
    "continues_table",
    "history_daily_min",
    "join_observed",
    "open_observed",
    "past_notes",
    "settle_observed",
]

log = logging.getLogger("cityops")

OBSERVED, FORECAST = "observed", "forecast"


@functools.cache
def _join_config() -> dict:
    path = package_data("data", "observed_join.yaml")
    data = load_yaml(path)
    for key in ("lookback", "cell_combine"):
        if key not in data:
            raise DataFileError(f"{path}: field {key!r} is missing")
    return data


@functools.cache
def continues_table() -> tuple[RuleTable, pd.Timedelta]:
    """The per-hazard "continues" conditions (``data/continues.yaml``) and the look-ahead."""
    path = package_data("data", "continues.yaml")
    data = load_yaml(path)
    within = pd.Timedelta(str(data.get("within", "1 h")).replace(" ", ""))
    return parse_rule_table(data, path), within


@dataclass
class JoinedSeries:
    """The forecast with observed steps before it (or the forecast alone, with the reason)."""

    dataset: xr.Dataset
    #: Last valid time taken from observations (the window ending then is all observed).
    cut: pd.Timestamp | None
    notes: list[str] = field(default_factory=list)

    @property
    def joined(self) -> bool:
        return self.cut is not None


# --------------------------------------------------------------------------------------------
# Reading observations
# --------------------------------------------------------------------------------------------


def open_observed(
    paths: str | Path | Sequence[str | Path], *, bounds, mapping=None
) -> xr.Dataset | pd.DataFrame:
    """Observed files as a canonical grid (Dataset) or a station table (DataFrame with
    ``station_id, lon, lat, time_utc, period_h`` and canonical variables), as the review
    reads them (:mod:`cityops.review.observations`)."""
    from cityops.ingest import expand_paths, open_forecast
    from cityops.ingest.stations import derive_rh, observation_kind, read_stations

    files = expand_paths(paths)
    kinds = {f: observation_kind(f) for f in files}
    if set(kinds.values()) == {"grid"}:
        return open_forecast(files, bounds=bounds, mapping=mapping).load()
    if "grid" in kinds.values():
        raise InputError(
            f"{files[0]}: observed input mixes gridded and station files; expected one kind"
        )
    frame, _ = derive_rh(read_stations(files, kinds=kinds))
    lon_min, lat_min, lon_max, lat_max = bounds
    inside = frame["lon"].between(lon_min, lon_max) & frame["lat"].between(lat_min, lat_max)
    frame = frame[inside].reset_index(drop=True)
    frame.attrs["source"] = ", ".join(f.name for f in files)
    return frame


def history_daily_min(path: str | Path, timezone: str) -> pd.Series | None:
    """Daily minimum temperature (degC) by local date from a daily history file (``t2m_min``;
    averaged over its spatial dimensions), or None when the file has no ``t2m_min``."""
    from cityops.units import convert_dataarray

    path = Path(path)
    try:
        ds = xr.open_dataset(path, engine="netcdf4")
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: cannot be read as NetCDF ({err})") from None
    with ds:
        if "t2m_min" not in ds:
            return None
        da = convert_dataarray(ds["t2m_min"].load(), "degC", source=str(path))
    spatial = [d for d in da.dims if d != "time"]
    if spatial:
        da = da.mean(spatial)
    # The history's days are local dates (cityops.scenarios.history, the drought input).
    days = pd.DatetimeIndex(da["time"].values).normalize()
    return pd.Series(np.asarray(da.values, dtype=float), index=days, name="t2m_min")


# --------------------------------------------------------------------------------------------
# Joining
# --------------------------------------------------------------------------------------------


def _forecast_starts(forecast: xr.Dataset) -> pd.DatetimeIndex:
    from cityops.rules.windows import step_starts

    if "step_start" in forecast.coords:
        return pd.DatetimeIndex(forecast["step_start"].values)
    issued = pd.Timestamp(forecast.attrs["issued"]).tz_localize(None)
    times = pd.DatetimeIndex(forecast["time"].values)
    first = times[0] - issued if times[0] > issued else None
    return step_starts(times, first)


def _grid_on_forecast(obs: xr.Dataset, forecast: xr.Dataset) -> xr.Dataset:
    """Observed grid on the forecast grid: nearest neighbour within one observed spacing."""
    out = obs
    for dim in ("lat", "lon"):
        spacing = float(np.abs(np.diff(obs[dim].values)).max()) if obs.sizes[dim] > 1 else 0.5
        out = out.sortby(dim).reindex(
            {dim: forecast[dim].values}, method="nearest", tolerance=spacing
        )
    return out


def _stations_on_forecast(
    frame: pd.DataFrame, forecast: xr.Dataset, times: pd.DatetimeIndex, notes: list[str]
) -> xr.Dataset:
    """Station reports on the forecast grid: each station in the cell containing it."""
    lat, lon = forecast["lat"].values, forecast["lon"].values
    combine = _join_config()["cell_combine"]
    registry = canonical_variables()
    amounts = set(load_yaml(package_data("data", "observations.yaml"))["amounts"])

    def cell(values: np.ndarray, centers: np.ndarray) -> np.ndarray:
        half = float(np.abs(np.diff(centers)).max()) / 2 if centers.size > 1 else 0.5
        idx = np.abs(values[:, None] - centers[None, :]).argmin(axis=1)
        return np.where(np.abs(values - centers[idx]) <= half + 1e-9, idx, -1)

    frame = frame[frame["time_utc"].isin(times)].copy()
    frame["i"] = cell(frame["lat"].to_numpy(float), lat)
    frame["j"] = cell(frame["lon"].to_numpy(float), lon)
    frame = frame[(frame["i"] >= 0) & (frame["j"] >= 0)]
    tpos = times.get_indexer(pd.DatetimeIndex(frame["time_utc"]))
    step_h = np.r_[np.nan, np.diff(times.values) / np.timedelta64(1, "h")]
    data_vars = {}
    mismatched = 0
    for var in [c for c in frame.columns if c in registry]:
        values = frame[var].to_numpy(float)
        if var in amounts:
            # An amount counts only when its period is the step it ends (no double counting).
            ok = np.isclose(frame["period_h"].to_numpy(float), step_h[tpos]) | (tpos == 0)
            mismatched += int((~ok & np.isfinite(values)).sum())
            values = np.where(ok, values, np.nan)
        how = combine.get(var, combine.get("default", "max"))
        arr = np.full((len(times), lat.size, lon.size), np.nan)
        f = {"max": np.fmax, "min": np.fmin}.get(how, np.fmax)
        for t, i, j, v in zip(tpos, frame["i"], frame["j"], values, strict=True):
            arr[t, i, j] = v if np.isnan(arr[t, i, j]) else f(arr[t, i, j], v)
        if np.isfinite(arr).any():
            data_vars[var] = (("time", "lat", "lon"), arr, {"units": registry[var]["units"]})
    if mismatched:
        notes.append(
            f"observations: {mismatched} station amounts whose period is not the step they end "
            "were not used"
        )
    n = frame.groupby(["i", "j"]).ngroups
    notes.append(
        f"observed steps from {frame['station_id'].nunique()} stations in {n} forecast cells; "
        "cells without a station use the forecast alone"
    )
    return xr.Dataset(data_vars, coords={"time": times.values, "lat": lat, "lon": lon})


def join_observed(
    forecast: xr.Dataset,
    observed: xr.Dataset | pd.DataFrame,
    *,
    now: pd.Timestamp,
    source: str = "",
) -> JoinedSeries:
    """One canonical series: observed steps up to the reference time, then the forecast.

    The join point (``cut``) is the latest forecast step boundary at or before ``now`` at
    which an observed step ends; observed steps ending within ``lookback``
    (``data/observed_join.yaml``) before it come first, then the forecast steps starting at
    or after it. Without such a boundary the forecast is returned alone, with the reason.

    Parameters
    ----------
    forecast : xarray.Dataset
        Canonical forecast (``lat``/``lon`` grid).
    observed : xarray.Dataset or pandas.DataFrame
        Canonical observed grid, or a station table (:func:`open_observed`).
    now : pandas.Timestamp
        Reference time (naive UTC).
    source : str
        Names of the observed files, for the notes.

    Returns
    -------
    JoinedSeries
    """
    lookback = pd.Timedelta(str(_join_config()["lookback"]).replace(" ", ""))
    starts = _forecast_starts(forecast)
    if isinstance(observed, pd.DataFrame):
        obs_times = pd.DatetimeIndex(np.unique(observed["time_utc"]))
        source = source or observed.attrs.get("source", "")
    else:
        obs_times = pd.DatetimeIndex(observed["time"].values)
    obs_times = obs_times[obs_times <= now]
    boundaries = [t for t in starts if t <= now and t in obs_times]
    if not len(obs_times):
        return JoinedSeries(forecast, None, [f"observations ({source}): none before the "
                                             "reference time; the forecast alone is used"])  # fmt: skip
    if not boundaries:
        return JoinedSeries(forecast, None, [
            f"observations ({source}) end at {iso_utc(obs_times[-1])}, not at a forecast step "
            f"boundary (forecast steps start {iso_utc(starts[0])}): not joined, the forecast "
            "alone is used"])  # fmt: skip
    cut = max(boundaries)
    obs_times = obs_times[(obs_times <= cut) & (obs_times > cut - lookback)]
    notes: list[str] = []
    if isinstance(observed, pd.DataFrame):
        obs = _stations_on_forecast(observed, forecast, obs_times, notes)
    else:
        if "lat" not in observed.dims or "lon" not in observed.dims:
            raise InputError(
                f"{source}: observed grid has no lat/lon dimensions; expected a regular grid"
            )
        obs = _grid_on_forecast(observed.sel(time=obs_times), forecast)
    fc = forecast.isel(time=np.flatnonzero(starts >= cut))
    obs_start = None
    if not isinstance(observed, pd.DataFrame) and "step_start" in observed.coords:
        first = pd.DatetimeIndex(observed["time"].values).get_loc(obs_times[0])
        obs_start = pd.Timestamp(observed["step_start"].values[first])
    if obs_start is None:
        obs_start = obs_times[0] - (obs_times[1] - obs_times[0] if len(obs_times) > 1
                                    else pd.Timedelta("1h"))  # fmt: skip
    obs_starts = pd.DatetimeIndex([obs_start, *obs_times[:-1]])
    parts = []
    missing = []
    for var in fc.data_vars:
        ref = fc[var]
        if var in obs.data_vars:
            da = obs[var].astype(ref.dtype)
        else:
            missing.append(var)
            da = xr.full_like(ref.isel(time=0, drop=True), np.nan).expand_dims(time=obs_times)
        for dim in ref.dims:
            if dim not in da.dims and dim != "time":
                da = da.expand_dims({dim: ref[dim].values})
        da = da.transpose(*ref.dims).assign_coords(
            {d: ref[d] for d in ref.dims if d != "time" and d in ref.coords}
        )
        da.attrs = ref.attrs
        parts.append(da.rename(var))
    obs_ds = xr.merge(parts, compat="override", join="override")
    obs_ds = obs_ds.assign_coords(time=obs_times.values, step_start=("time", obs_starts.values))
    fc = fc.assign_coords(step_start=("time", starts[starts >= cut].values))
    keep = {"time", "step_start", *fc.dims}
    fc = fc.drop_vars([c for c in fc.coords if c not in keep and "time" in fc[c].dims])
    joined = xr.concat([obs_ds, fc], dim="time", data_vars="all", coords="minimal",
                       compat="override", join="override")  # fmt: skip
    provenance = [OBSERVED] * len(obs_times) + [FORECAST] * fc.sizes["time"]
    joined = joined.assign_coords(source=("time", np.array(provenance, dtype=object)))
    joined["source"].attrs = {"long_name": "provenance of each step (observed or forecast)"}
    joined.attrs = dict(forecast.attrs)
    joined.encoding = dict(forecast.encoding)
    where = f" ({source})" if source else ""
    notes.insert(0, f"observed steps {iso_utc(obs_times[0])} to {iso_utc(cut)}{where} "
                    "joined before the forecast: windows straddling the reference time count "
                    "both")  # fmt: skip
    if missing:
        notes.append(f"observations lack {', '.join(missing)}: the forecast alone for these")
    joined.attrs["cityops_observed"] = "; ".join(notes)
    return JoinedSeries(joined, cut, notes)


# --------------------------------------------------------------------------------------------
# After evaluation: the observed level at the reference time, ongoing or past
# --------------------------------------------------------------------------------------------


def _going_on(joined: xr.Dataset, cut: pd.Timestamp, timezone: str) -> dict[str, xr.DataArray]:
    """Per hazard of ``continues.yaml``, on the valid times from ``cut``: where the forecast
    has said the phenomenon goes on. At ``cut``: a forecast step ending within the look-ahead
    (or the first step, when it is longer) meets the "continues" condition; at a forecast time
    ``t``: some forecast step in (cut, t] meets it."""
    from cityops.rules.engine import evaluate

    table, within = continues_table()
    times = pd.DatetimeIndex(joined["time"].values)
    after = np.flatnonzero(times > cut)
    if not after.size:
        return {}
    ahead = np.flatnonzero((times > cut) & (times <= cut + within))
    if not ahead.size:
        ahead = after[:1]  # a first step longer than the look-ahead
    result = evaluate(joined.isel(time=after), table, timezone=timezone).load()
    out = {}
    for res in result:
        if not res.evaluated:
            continue
        on = (res.level >= 1).reset_coords(drop=True)
        at_cut = on.isel(time=ahead - after[0]).any("time").expand_dims(time=[cut])
        since = on.cumsum("time") > 0
        out[res.hazard] = xr.concat([at_cut, since], dim="time")
    return out


def settle_observed(levels, joined: JoinedSeries, *, timezone: str) -> dict[str, xr.DataArray]:
    """Keep a level reached by observed amounts only where the phenomenon continues.

    The level fields (and condition fields) of ``levels`` (a :class:`LevelResult` evaluated
    on ``joined.dataset``) are cut to the join time and after. The level at the join time is
    the observed one (its windows are all observed). For a hazard of ``continues.yaml``, a
    level counts at the join time only where the forecast says the phenomenon continues
    within the look-ahead ("已达…且…可能持续"), and at a forecast time ``t`` only once the
    phenomenon is forecast at some step up to ``t`` (before that, a window straddling the
    reference time holds observed amounts alone). Levels that do not count are set to 0 and
    returned as past levels; every hazard gets a note. Hazards without a "continues"
    condition keep no observed level at the join time (noted) and their forecast levels.

    Returns
    -------
    dict
        Per hazard, the past level field (no ``time``; 0 where none), for the town notes.
    """
    if not joined.joined:
        for res in levels:
            res.notes.extend(joined.notes)
        return {}
    cut = joined.cut
    times = pd.DatetimeIndex(joined.dataset["time"].values)
    keep = np.flatnonzero(times >= cut)
    going = _going_on(joined.dataset, cut, timezone)
    _, within = continues_table()
    past: dict[str, xr.DataArray] = {}
    for res in levels:
        res.notes.extend(joined.notes)
        if not res.evaluated:
            continue
        level = res.level.isel(time=keep)
        counts = going.get(res.hazard)
        if counts is None:
            # No "continues" condition: the observed level at the join time does not count.
            counts = xr.DataArray(np.arange(level.sizes["time"]) > 0, dims="time")
        counts = counts.assign_coords(time=level["time"].values)
        dropped = (level >= 1) & ~counts
        if bool(dropped.any()):
            gone = level.where(dropped, 0).max("time")
            if "member" in gone.dims:
                gone = gone.max("member")
            top = int(gone.max())
            why = "no continuation criterion" if res.hazard not in going else "not forecast"
            res.notes.append(
                f"observed level {top} until {format_local(cut, '%H:%M')} (BJT), {why} to "
                f"continue within {within / pd.Timedelta('1h'):g} h: reported as past, not as "
                "an ongoing signal"
            )
            level = level.where(~dropped, 0)
            past[res.hazard] = gone.astype("int8")
        level = level.astype(res.level.dtype)
        if int(level.isel(time=0).max()) >= 1:
            res.notes.append(
                "observed level at the reference time counts (already reached and forecast to "
                "continue)"
            )
        res.level = level.rename(res.level.name)
        res.observed_until = cut
        if res.season is not None:
            res.season = res.season[keep]
        for crs in (c for cl in res.conditions.values() for c in cl):
            if crs.evaluated and crs.value is not None and "time" in crs.value.dims:
                crs.value = crs.value.isel(time=keep)
                crs.holds = crs.holds.isel(time=keep)
    return past


def past_notes(
    past: dict[str, xr.DataArray], weights: xr.DataArray, cut: pd.Timestamp | None
) -> dict[tuple[str, str], str]:
    """Per (unit, hazard) the note of an observed level reported as past."""
    out: dict[tuple[str, str], str] = {}
    if cut is None:
        return out
    for hazard, field_ in past.items():
        w = weights.fillna(0) > 0
        for code in weights["unit"].values:
            mask = w.sel(unit=code)
            top = int(field_.where(mask, 0).max())
            if top:
                out[(str(code), hazard)] = (
                    f"observed level {top} until {format_local(cut, '%m-%d %H:%M')} (BJT), not "
                    "forecast to continue: reported as past"
                )
    return out
