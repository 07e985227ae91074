"""Station observations: readers and the checks they share with grids (interfaces.md §6).

* :func:`read_station_csv` — a CSV with the columns ``station_id, lon, lat, time_utc`` and
  canonical variables (``precip, snowfall, t2m, t2m_max, t2m_min, tsurf, wind, gust, vis, rh,
  pm25, dust, cape, …`` in the units of ``cityops/data/variables.yaml``; a header ``t2m[K]`` or
  ``vis (km)`` states other units, converted with pint), plus ``dew_point``;
* :func:`read_micaps1_stations` — MICAPS diamond 1 surface files (one time each);
* :func:`observation_kind` — what an observed file is, from its content;
* :func:`read_stations` — several station files in one table;
* :func:`derive_rh` — relative humidity from temperature and dew point where a report lacks it.

Every variable goes through the same plausibility checks as forecast grids
(:mod:`cityops.ingest.plausibility`: ``valid_min``/``valid_max``, amounts per period, wrong-unit
fields, undeclared missing codes such as 9999): a station table that says 9999 mm, or Kelvin
without a unit (293 "degC"), is refused with the file, the line and the column, instead of
scoring a correct forecast as a miss.

Station conventions (``cityops/data/observations.yaml``): ``time_utc`` is ISO 8601 (naive
times are UTC); an amount covers the hour ending at ``time_utc`` unless ``precip_period_h``
gives another period; empty cells are missing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from cityops.errors import InputError
from cityops.ingest import expand_paths, sniff_format
from cityops.ingest.micaps import read_micaps1
from cityops.ingest.plausibility import (
    check_bounds,
    check_missing_codes,
    check_period_amounts,
    max_for_period,
    summarize,
)
from cityops.resources import canonical_variables, load_yaml, package_data
from cityops.units import convert_dataarray

__all__ = [
    "STATION_COLUMNS",
    "check_station_values",
    "derive_rh",
    "observation_kind",
    "read_micaps1_stations",
    "read_station_csv",
    "read_stations",
]

log = logging.getLogger("cityops")

#: Columns of the station table (:func:`read_station_csv`) besides the variables.
STATION_COLUMNS = ["station_id", "lon", "lat", "time_utc", "period_h", "source"]

_HEADER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:[\[(]\s*([^\])]*?)\s*[\])])?\s*$")


@cache
def _config() -> dict:
    return load_yaml(package_data("data", "observations.yaml"))


def _amount_variables() -> tuple[str, ...]:
    return tuple(_config()["amounts"])


def check_station_values(
    values: np.ndarray,
    name: str,
    *,
    path: Path,
    column: str,
    raw: np.ndarray | None = None,
    raw_units: str | None = None,
    period_h: np.ndarray | None = None,
    line_of: Callable[[np.ndarray], int] | None = None,
) -> None:
    """The grid checks (:mod:`cityops.ingest.plausibility`) on one station column.

    Raises
    ------
    InputError
        Naming the file, the line of the first bad report and the column; with the hint to
        state the units in the header (``t2m[K]``) when none were given.
    """
    da = xr.DataArray(np.asarray(values, dtype=float), dims="report")
    raw_da = None if raw is None else xr.DataArray(np.asarray(raw, dtype=float), dims="report")
    if raw_units:
        raw_da = raw_da.assign_attrs(units=raw_units) if raw_da is not None else None
    summary = summarize(da, name, raw=raw_da)
    if summary.all_missing:
        return
    spec = canonical_variables()[name]
    lo = float(spec.get("valid_min", -np.inf)) - float(spec.get("valid_tolerance", 0.0))
    hi = float(spec.get("valid_max", np.inf)) + float(spec.get("valid_tolerance", 0.0))
    bad = (da.values < lo) | (da.values > hi)
    where = f"{path}: line {line_of(bad)}" if line_of is not None and bad.any() else str(path)
    where_period = str(path)
    if period_h is not None and line_of is not None:
        hours = np.broadcast_to(np.asarray(period_h, dtype=float), da.shape)
        limits = np.array([max_for_period(name, float(h)) or np.inf for h in hours])
        over = da.values > limits
        if over.any():
            where_period = f"{path}: line {line_of(over)}"
    hint = (
        "" if raw_units else f"; state other units in the header, e.g. {column}[K] or {column}(km)"
    )
    try:
        check_bounds(summary, name, source=where, label=column, raw_units=raw_units)
        if period_h is not None:
            check_period_amounts(
                da.values, np.asarray(period_h, dtype=float), name, source=where_period,
                label=column, raw_units=raw_units, summary=summary,
            )  # fmt: skip
        found = np.asarray(raw if raw is not None else values, dtype=float)
        coded = np.zeros(found.shape, dtype=bool)
        for code in summary.codes:
            coded |= np.abs(found - code) <= 1e-6 * abs(code)
        at = f"{path}: line {line_of(coded)}" if line_of is not None and coded.any() else where
        check_missing_codes(summary, name, source=at, label=column)
    except InputError as err:
        raise InputError(f"{err}{hint}") from None


def _is_station_csv(path: Path) -> bool:
    """Whether the file's first line is a station-CSV header."""
    with path.open("rb") as fh:
        head = fh.read(4096)
    first = head.split(b"\n", 1)[0].decode("utf-8-sig", errors="replace").strip()
    fields = [f.strip().strip('"').strip() for f in first.split(",")]
    names = []
    for f in fields:
        m = _HEADER.match(f)
        names.append(m.group(1).lower() if m else f.lower())
    # One required column is enough to be a station CSV: the reader then names what is missing.
    required = _config()["csv"]["required"]
    return len(fields) > 1 and any(r in names for r in required)


def observation_kind(path: str | Path) -> str:
    """What an observed file is, from its content: ``grid``, ``station_csv`` or ``micaps1``.

    Parameters
    ----------
    path : str or path
        An observed file.

    Returns
    -------
    str
        ``grid`` (NetCDF, GRIB, MICAPS diamond 4: read by :func:`cityops.ingest.open_forecast`),
        ``station_csv`` (a CSV whose header names ``station_id``, ``lon``, ``lat`` or
        ``time_utc``; the reader checks it has all of them) or
        ``micaps1`` (MICAPS diamond 1 surface observations).

    Raises
    ------
    InputError
        The file is missing or in none of these formats.
    """
    path = expand_paths(path)[0]
    try:
        kind = sniff_format(path)
    except InputError:
        if _is_station_csv(path):
            return "station_csv"
        required = ", ".join(_config()["csv"]["required"])
        raise InputError(
            f"{path}: unknown observation format; expected a gridded analysis (NetCDF, GRIB, "
            f"MICAPS diamond 4), MICAPS diamond 1 or a station CSV with columns {required}, "
            "<variables>"
        ) from None
    return "micaps1" if kind == "micaps1" else "grid"


def _line(mask: np.ndarray) -> int:
    """File line number (header = 1) of the first row where ``mask`` holds."""
    return int(np.flatnonzero(mask)[0]) + 2


def read_station_csv(path: str | Path) -> pd.DataFrame:
    """Read a station-observation CSV into the station table, canonical names and units.

    Parameters
    ----------
    path : str or path
        UTF-8 CSV with a header row: ``station_id, lon, lat, time_utc`` then observed
        variables by canonical name (``precip, t2m, wind, gust, vis, …``; ``dew_point`` too).
        A header may state units, ``t2m[K]`` or ``vis (km)``; without, the canonical units of
        ``cityops/data/variables.yaml`` are assumed. An optional ``precip_period_h`` column
        gives the hours an amount covers (default: the hour ending at ``time_utc``).
        Other columns are ignored (logged).

    Returns
    -------
    pandas.DataFrame
        One row per report: ``station_id`` (str), ``lon``, ``lat``, ``time_utc`` (naive UTC),
        ``period_h`` (hours the amounts cover), ``source`` (file name), then the variables in
        canonical units (NaN where empty).

    Raises
    ------
    InputError
        Missing columns, no variable column, an unreadable number, time or unit, coordinates
        out of range, a negative amount or a non-positive period; the message names the file,
        the column, the line and what was expected.
    """
    path = Path(path)
    cfg = _config()["csv"]
    try:
        raw = pd.read_csv(path, dtype=str, encoding="utf-8-sig", keep_default_na=False)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise InputError(f"{path}: cannot be read as a station CSV ({err})") from None
    columns: dict[str, tuple[str, str | None]] = {}
    for col in raw.columns:
        m = _HEADER.match(str(col))
        if m is None:
            log.info("%s: column %r ignored", path, col)
            continue
        name = m.group(1).lower()
        if name in columns:
            raise InputError(f"{path}: column {name!r} appears twice; expected one column each")
        columns[name] = (col, m.group(2) or None)
    missing = [c for c in cfg["required"] if c not in columns]
    if missing:
        raise InputError(
            f"{path}: missing column(s) {', '.join(missing)}; expected "
            f"{', '.join(cfg['required'])}, <variables> (interfaces.md §6)"
        )
    registry = canonical_variables()
    extra = dict(cfg.get("extra_variables", {}))
    variables = [n for n in columns if n in registry or n in extra]
    ignored = [n for n in columns if n not in variables and n not in cfg["required"]]
    ignored = [n for n in ignored if n != cfg["period_column"]]
    if ignored:
        log.info("%s: columns not used: %s", path, ", ".join(ignored))
    if not variables:
        raise InputError(
            f"{path}: no observed variable column; expected canonical names such as precip, "
            "t2m, wind, gust, vis (interfaces.md §1)"
        )
    if raw.empty:
        raise InputError(f"{path}: no station reports after the header")

    def numbers(name: str) -> np.ndarray:
        col = raw[columns[name][0]].str.strip()
        values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
        bad = np.isnan(values) & (col != "").to_numpy() & ~col.str.lower().isin(["nan", "na"])
        if bad.any():
            line = _line(bad)
            raise InputError(
                f"{path}: line {line}: column {name!r} is {col[bad].iloc[0]!r}, not a number"
            )
        return values

    ids = raw[columns["station_id"][0]].str.strip()
    if (ids == "").any():
        raise InputError(
            f"{path}: line {_line((ids == '').to_numpy())}: empty station_id; "
            "expected a station identifier"
        )
    lon, lat = numbers("lon"), numbers("lat")
    bad = ~np.isfinite(lon) | ~np.isfinite(lat) | (np.abs(lat) > 90) | (lon < -180) | (lon > 360)
    if bad.any():
        raise InputError(
            f"{path}: line {_line(bad)}: lon/lat {lon[bad][0]}, {lat[bad][0]} "
            "out of range; expected degrees (lon -180..360, lat -90..90)"
        )
    lon = np.where(lon > 180, lon - 360, lon)
    text = raw[columns["time_utc"][0]].str.strip()
    times = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
    if times.isna().any():
        bad = times.isna().to_numpy()
        raise InputError(
            f"{path}: line {_line(bad)}: column 'time_utc' is {text[bad].iloc[0]!r}; "
            "expected an ISO 8601 time (UTC unless an offset is given)"
        )
    times = pd.DatetimeIndex(times).tz_convert("UTC").tz_localize(None).as_unit("ns")
    period = np.full(len(raw), float(cfg["default_period_h"]))
    if cfg["period_column"] in columns:
        given = numbers(cfg["period_column"])
        period = np.where(np.isnan(given), period, given)
        if (period <= 0).any():
            bad = period <= 0
            raise InputError(
                f"{path}: line {_line(bad)}: {cfg['period_column']} is "
                f"{period[bad][0]:g}; expected the hours the amounts cover (> 0)"
            )
    out = pd.DataFrame(
        {
            "station_id": ids.to_numpy(),
            "lon": lon,
            "lat": lat,
            "time_utc": times,
            "period_h": period,
            "source": path.name,
        }
    )
    for name in variables:
        values = numbers(name)
        target = registry[name]["units"] if name in registry else extra[name]
        units = columns[name][1]
        if units is not None:
            da = xr.DataArray(values, dims="report", name=name, attrs={"units": units})
            values = convert_dataarray(da, target, source=str(path)).to_numpy()
        if name in _amount_variables() and (values < 0).any():
            bad = values < 0
            raise InputError(
                f"{path}: line {_line(bad)}: {name} is {values[bad][0]:g}; "
                f"expected an amount >= 0 {target} (write a trace as 0)"
            )
        if name in registry:
            raw_values = numbers(name)
            check_station_values(
                values, name, path=path, column=columns[name][0], raw=raw_values,
                raw_units=units, period_h=period if name in _amount_variables() else None,
                line_of=_line,
            )  # fmt: skip
        out[name] = values
    return out


def read_micaps1_stations(path: str | Path) -> pd.DataFrame:
    """A MICAPS diamond 1 file as the station table (6 h precipitation), checked as
    :func:`read_station_csv` is."""
    path = Path(path)
    df = read_micaps1(path)
    registry = canonical_variables()
    extra = _config()["csv"].get("extra_variables", {})
    keep = [c for c in df.columns if c in registry or c in extra]
    out = pd.DataFrame(
        {
            "station_id": df["station_id"].astype(str).to_numpy(),
            "lon": df["lon"].to_numpy(dtype=float),
            "lat": df["lat"].to_numpy(dtype=float),
            "time_utc": pd.DatetimeIndex(df["time_utc"]).as_unit("ns"),
            "period_h": float(df.attrs.get("precip_hours", 6)),
            "source": path.name,
        }
    )
    for name in keep:
        values = df[name].to_numpy(dtype=float)
        if name in registry:
            check_station_values(
                values, name, path=path, column=name, raw=values, raw_units=None,
                period_h=out["period_h"].to_numpy() if name in _amount_variables() else None,
                line_of=lambda mask: int(np.flatnonzero(mask)[0]) + 3,
            )  # fmt: skip
        out[name] = values
    return out


def read_stations(paths, *, kinds: dict[Path, str] | None = None) -> pd.DataFrame:
    """Station files (CSV or MICAPS diamond 1, any mix) as one station table.

    Parameters
    ----------
    paths : sequence of path-like
        The station files, read in order.
    kinds : dict, optional
        :func:`observation_kind` of each file when already known (it is found otherwise).

    Returns
    -------
    pandas.DataFrame
        The rows of every file (:data:`STATION_COLUMNS` and the canonical variables), in
        file order.

    Raises
    ------
    InputError
        An unreadable file or an implausible value (one line naming the file and line).
    """
    files = [Path(p) for p in paths]
    if not files:
        raise InputError("observed: no station file given; expected station CSV or MICAPS 1")
    kinds = kinds if kinds is not None else {f: observation_kind(f) for f in files}
    frames = [
        read_station_csv(f) if kinds[f] == "station_csv" else read_micaps1_stations(f)
        for f in files
    ]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def derive_rh(frame: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """rh from t2m and dew point where rh is missing (MetPy, Bolton 1980).

    Done only when ``derive_rh_from_dew_point`` is set in ``cityops/data/observations.yaml``.
    Returns the table (a copy when rh was derived) and a note saying so (empty otherwise).
    """
    if not _config().get("derive_rh_from_dew_point") or "dew_point" not in frame:
        return frame, ""
    if "t2m" not in frame:
        return frame, ""
    rh = frame["rh"] if "rh" in frame else pd.Series(np.nan, index=frame.index)
    need = rh.isna() & frame["t2m"].notna() & frame["dew_point"].notna()
    if not need.any():
        return frame, ""
    import metpy.calc as mpcalc

    from cityops.units import ureg

    t = ureg.Quantity(frame.loc[need, "t2m"].to_numpy(dtype=float), "degC")
    td = ureg.Quantity(
        np.minimum(frame.loc[need, "dew_point"].to_numpy(dtype=float), t.magnitude), "degC"
    )
    derived = mpcalc.relative_humidity_from_dewpoint(t, td).to("percent").magnitude
    frame = frame.copy()
    frame["rh"] = rh
    frame.loc[need, "rh"] = np.clip(derived, 0.0, 100.0)
    return frame, "rh derived from temperature and dew point"
