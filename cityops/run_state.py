"""The run's assessment, kept in the run as plain data and read back whole.

``cityops brief`` assesses once; each unit's notebook then reads that assessment from the run
(``DIR/state/``) instead of assessing the forecast again, so the index, the per-unit pages,
CAP and tasks come from one evaluation by construction. The state is written in safe formats
only -- NetCDF for the grids and JSON for everything else -- never as serialised Python
objects: reading it back runs no code from the file (tests/test_hostile_input.py).

Layout (``FOLDER`` is ``DIR/state`` in a ``brief`` run)::

    FOLDER/state.json      manifest: versions, options, frames, attributes, array index
    FOLDER/arrays-<n>.nc   the grids, one file per coordinate set (forecast, levels, ...)

:func:`write_run_state` writes the folder; :func:`read_run_state` rebuilds an
:class:`~cityops.pipeline.Assessment` equal to the one written (the rule tables and the
jurisdiction are reloaded from their files and checked against the versions recorded).
Readers in one process share what they read (:func:`read_run_state` caches per folder and
manifest time), so a kernel that runs several units of one run reads the state once.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from cityops import __version__
from cityops.errors import InputError
from cityops.fsio import atomic_path, write_text

__all__ = ["STATE_FOLDER", "check_same_inputs", "read_run_state", "write_run_state"]

#: The state's folder inside a ``brief`` run.
STATE_FOLDER = "state"
_MANIFEST = "state.json"
#: Bumped when the layout changes: a reader refuses a state of another format.
_FORMAT = 1

# --------------------------------------------------------------------------------------
# Values and frames to JSON and back (exactly: dtypes, NaN against None, NA, NaT, times)
# --------------------------------------------------------------------------------------


def _enc(value: Any) -> Any:
    """A JSON value for ``value``; the types JSON lacks are tagged ``{"$": kind, ...}``."""
    if value is None or isinstance(value, bool | str):
        return value
    if value is pd.NA:
        return {"$": "na"}
    if value is pd.NaT:
        return {"$": "nat"}
    if isinstance(value, np.generic):
        if isinstance(value, np.datetime64 | np.timedelta64):
            return _enc(pd.Timestamp(value) if isinstance(value, np.datetime64)
                        else pd.Timedelta(value))  # fmt: skip
        return {"$": "np", "dtype": value.dtype.str, "v": _enc(value.item())}
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return {"$": "nan"}
        if math.isinf(value):
            return {"$": "inf", "sign": 1 if value > 0 else -1}
        return value
    if isinstance(value, pd.Timestamp):
        return {"$": "ts", "v": value.isoformat(), "tz": str(value.tz) if value.tz else None}
    if isinstance(value, pd.Timedelta):
        return {"$": "td", "ns": int(value.value)}
    if isinstance(value, _dt.datetime):
        return _enc(pd.Timestamp(value))
    if isinstance(value, _dt.date):
        return {"$": "date", "v": value.isoformat()}
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "OUSMm":
            return {"$": "array", "dtype": value.dtype.str, "v": [_enc(v) for v in value.tolist()]}
        return {"$": "array", "dtype": value.dtype.str, "v": _enc(value.tolist())}
    if isinstance(value, tuple):
        return {"$": "tuple", "v": [_enc(v) for v in value]}
    if isinstance(value, set | frozenset):
        return {"$": "set", "v": [_enc(v) for v in sorted(value, key=repr)]}
    if isinstance(value, list):
        return [_enc(v) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            return {"$": "dict", "items": [[_enc(k), _enc(v)] for k, v in value.items()]}
        return (
            {"$": "map", "v": {k: _enc(v) for k, v in value.items()}}
            if "$" in value
            else {k: _enc(v) for k, v in value.items()}
        )
    raise TypeError(f"run state: cannot keep a value of type {type(value).__name__}")


def _dec(value: Any) -> Any:
    """Inverse of :func:`_enc`."""
    if isinstance(value, list):
        return [_dec(v) for v in value]
    if not isinstance(value, dict):
        return value
    kind = value.get("$")
    if kind is None:
        return {k: _dec(v) for k, v in value.items()}
    if kind == "na":
        return pd.NA
    if kind == "nat":
        return pd.NaT
    if kind == "nan":
        return float("nan")
    if kind == "inf":
        return math.inf * value["sign"]
    if kind == "np":
        return np.dtype(value["dtype"]).type(_dec(value["v"]))
    if kind == "ts":
        ts = pd.Timestamp(value["v"])
        return ts.tz_convert(value["tz"]) if value["tz"] else ts
    if kind == "td":
        return pd.Timedelta(value["ns"], unit="ns")
    if kind == "date":
        return _dt.date.fromisoformat(value["v"])
    if kind == "array":
        return np.array(_dec(value["v"]), dtype=np.dtype(value["dtype"]))
    if kind == "tuple":
        return tuple(_dec(v) for v in value["v"])
    if kind == "set":
        return set(_dec(v) for v in value["v"])
    if kind == "dict":
        return {_dec(k): _dec(v) for k, v in value["items"]}
    if kind == "map":
        return {k: _dec(v) for k, v in value["v"].items()}
    raise InputError(f"run state: unknown value tag {kind!r}")


def _series_values(series: pd.Series | pd.Index) -> list:
    return [_enc(v) for v in series.astype(object).tolist()]


def _restore(values: list, dtype: str, name: Any = None) -> pd.Series:
    decoded = [_dec(v) for v in values]
    if dtype == "object":
        return pd.Series(decoded, dtype=object, name=name)
    if dtype.startswith("category"):
        raise InputError("run state: categorical columns are not kept")
    return pd.Series(decoded, dtype=object, name=name).astype(dtype)


def frame_to_json(frame: pd.DataFrame) -> dict:
    """A DataFrame as JSON (columns, dtypes, index, values and ``attrs``), exactly
    restorable by :func:`frame_from_json`."""
    for col in frame.columns:
        if isinstance(frame[col].dtype, pd.CategoricalDtype):
            raise TypeError(f"run state: column {col!r} is categorical")
    return {
        "columns": [_enc(c) for c in frame.columns],
        "columns_dtype": str(frame.columns.dtype),
        "dtypes": [str(frame[c].dtype) for c in frame.columns],
        "index": _series_values(frame.index),
        "index_dtype": str(frame.index.dtype),
        "index_name": _enc(frame.index.name),
        "range_index": isinstance(frame.index, pd.RangeIndex),
        "data": [_series_values(frame.iloc[:, i]) for i in range(frame.shape[1])],
        "attrs": _enc(dict(frame.attrs)),
    }


def frame_from_json(doc: dict) -> pd.DataFrame:
    """Inverse of :func:`frame_to_json`."""
    if doc["range_index"] and not doc["index"]:
        index = pd.RangeIndex(0)
    elif doc["range_index"]:
        first, n = doc["index"][0], len(doc["index"])
        step = doc["index"][1] - first if n > 1 else 1
        index = pd.RangeIndex(first, first + n * step, step)
    else:
        index = pd.Index(_restore(doc["index"], doc["index_dtype"]))
    index.name = _dec(doc["index_name"])
    data = {}
    for i, dtype in enumerate(doc["dtypes"]):
        data[i] = _restore(doc["data"][i], dtype).set_axis(index)
    frame = pd.DataFrame(data, index=index)
    frame.columns = pd.Index(_restore(doc["columns"], doc["columns_dtype"]))
    frame.attrs = _dec(doc["attrs"])
    return frame


# --------------------------------------------------------------------------------------
# Grids: DataArrays grouped by their coordinates, one NetCDF file per group
# --------------------------------------------------------------------------------------


def _fast_compression() -> dict:
    """zstd level 1 where the netCDF library has it (the netCDF4 wheels bundle the filter):
    as fast to write as no compression, a third of the size; else zlib level 1."""
    import netCDF4

    if getattr(netCDF4, "__has_zstandard_support__", False):
        return {"compression": "zstd", "complevel": 1}
    return {"zlib": True, "complevel": 1}


_COMPRESSION = _fast_compression()


class _Arrays:
    """Collects DataArrays under keys; writes them one NetCDF file per coordinate set, with
    every attribute and dtype kept in the manifest (NetCDF attributes cannot hold bools,
    None or nested values)."""

    def __init__(self) -> None:
        self.groups: dict[str, dict[str, xr.DataArray]] = {}
        self.index: dict[str, dict] = {}
        self._seen: dict[tuple, str] = {}

    @staticmethod
    def _signature(da: xr.DataArray) -> str:
        h = hashlib.sha1()
        for name in sorted(da.coords, key=str):
            coord = da.coords[name]
            h.update(f"{name}|{coord.dims}|{coord.dtype.str}|".encode())
            values = np.asarray(coord.values)
            h.update(values.astype(str).tobytes() if values.dtype.kind == "O" else values.tobytes())
        return h.hexdigest()[:16]

    def add(self, key: str, da: xr.DataArray | None) -> str | None:
        if da is None:
            return None
        sig = self._signature(da)
        group = self.groups.setdefault(sig, {})
        # Conditions that differ only in their threshold share one value array: kept once.
        same = (sig, id(da.data), da.dims, da.dtype.str)
        var = self._seen.get(same)
        if var is None:
            var = self._seen[same] = f"v{len(self._seen)}"
            group[var] = da
        self.index[key] = {
            "file": f"arrays-{sig}.nc",
            "var": var,
            "name": _enc(da.name),
            "dtype": da.dtype.str,
            "attrs": _enc(dict(da.attrs)),
            "coords": {
                str(c): {"dtype": da.coords[c].dtype.str, "attrs": _enc(dict(da.coords[c].attrs))}
                for c in da.coords
            },
        }
        return key

    def write(self, folder: Path) -> None:
        for sig, group in self.groups.items():
            # One signature, one set of coordinates: the Dataset is built from plain variables
            # at once (adding arrays one by one aligns each: quadratic in their number).
            first = next(iter(group.values()))
            coords = {str(c): _plain(first.coords[c].variable) for c in first.coords}
            data = {var: _plain(da.variable) for var, da in group.items()}
            ds = xr.Dataset(data, coords=coords)
            encoding = {}
            for name, v in ds.variables.items():
                enc: dict = {"_FillValue": None}
                if v.dtype.kind == "M" or v.dtype.kind == "m":
                    # exact nanoseconds; NaT kept by its own fill value
                    enc = {"units": "nanoseconds since 1970-01-01", "dtype": "int64",
                           "_FillValue": np.iinfo(np.int64).min}  # fmt: skip
                elif v.dtype.kind in "OU":
                    enc = {}
                if name not in ds.coords and v.ndim and v.dtype.kind in "fiub":
                    # Fast compression: condition fields repeat values (windows, rounding).
                    enc.update(_COMPRESSION, shuffle=True)
                encoding[name] = enc
            with atomic_path(folder / f"arrays-{sig}.nc") as tmp:
                ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding)


def _plain(variable: xr.Variable) -> xr.Variable:
    """``variable`` without attributes or encoding (the manifest keeps them)."""
    out = variable.to_base_variable().copy(deep=False)
    out.attrs, out.encoding = {}, {}
    return out


def _read_arrays(folder: Path, index: dict) -> dict[str, xr.DataArray]:
    files: dict[str, xr.Dataset] = {}
    out: dict[str, xr.DataArray] = {}
    for key, item in index.items():
        if item["file"] not in files:
            path = folder / item["file"]
            try:
                files[item["file"]] = xr.load_dataset(path, engine="netcdf4")
            except (OSError, ValueError) as err:
                raise InputError(f"{path}: run state unreadable ({err})") from None
        da = files[item["file"]][item["var"]]
        da = da.astype(np.dtype(item["dtype"]), copy=False).rename(_dec(item["name"]))
        da.attrs = _dec(item["attrs"])
        for c, meta in item["coords"].items():
            coord = da.coords[c]
            if coord.dtype.str != meta["dtype"]:
                da = da.assign_coords({c: coord.astype(np.dtype(meta["dtype"]))})
            da.coords[c].attrs = _dec(meta["attrs"])
        out[key] = da
    return out


def _dataset_items(arrays: _Arrays, prefix: str, ds: xr.Dataset | None) -> dict | None:
    """A Dataset as arrays (each data variable with its coordinates) plus its own attrs; the
    coordinates that no variable uses are kept as variables of their own."""
    if ds is None:
        return None
    names = [str(v) for v in ds.data_vars]
    for name in names:
        arrays.add(f"{prefix}/{name}", ds[name])
    coords = [str(c) for c in ds.coords]
    for c in coords:
        arrays.add(f"{prefix}/@{c}", ds.coords[c].reset_coords(drop=True))
    return {"vars": names, "coords": coords, "attrs": _enc(dict(ds.attrs))}


def _dataset_from(items: dict | None, prefix: str, arrays: dict) -> xr.Dataset | None:
    if items is None:
        return None
    coords = {c: arrays[f"{prefix}/@{c}"] for c in items["coords"]}
    ds = xr.Dataset({v: arrays[f"{prefix}/{v}"] for v in items["vars"]})
    ds = ds.assign_coords({c: da.variable for c, da in coords.items()})
    ds = ds[items["vars"]] if items["vars"] else ds
    ds.attrs = _dec(items["attrs"])
    return ds


# --------------------------------------------------------------------------------------
# Level results
# --------------------------------------------------------------------------------------


def _levels_items(arrays: _Arrays, prefix: str, result) -> dict | None:
    if result is None:
        return None
    hazards = []
    for res in result:
        item = {
            "hazard": res.hazard,
            "level": arrays.add(f"{prefix}/{res.hazard}/level", res.level),
            "notes": list(res.notes),
            "season": _enc(res.season),
            "observed_until": _enc(res.observed_until),
            "conditions": {},
        }
        for level, conds in res.conditions.items():
            item["conditions"][str(level)] = [
                {
                    "key": c.condition.key,
                    "variable": c.variable,
                    "note": c.note,
                    "value": arrays.add(f"{prefix}/{res.hazard}/{level}/{i}/value", c.value),
                    "holds": arrays.add(f"{prefix}/{res.hazard}/{level}/{i}/holds", c.holds),
                }
                for i, c in enumerate(conds)
            ]
        hazards.append(item)
    table = result.table
    return {
        "ruleset": table.ruleset,
        "version": str(table.version),
        "issued": _enc(result.issued),
        "hazards": hazards,
    }


def _levels_from(items: dict | None, table, arrays: dict, what: str):
    from cityops.rules.engine import ConditionResult, HazardResult, LevelResult

    if items is None:
        return None
    if table.ruleset != items["ruleset"] or str(table.version) != items["version"]:
        raise InputError(
            f"run state: {what} rule set is {table.ruleset} v{table.version} now, the run used "
            f"{items['ruleset']} v{items['version']}; run the briefing again"
        )
    hazards = {}
    for item in items["hazards"]:
        rules = table[item["hazard"]]
        res = HazardResult(
            rules=rules,
            level=arrays[item["level"]] if item["level"] else None,
            notes=list(item["notes"]),
            season=_dec(item["season"]),
            observed_until=_dec(item["observed_until"]),
        )
        for level, conds in item["conditions"].items():
            rule = rules.level_rule(int(level))
            out = []
            for i, c in enumerate(conds):
                condition = rule.conditions[i]
                if condition.key != c["key"]:
                    raise InputError(
                        f"run state: {what} {item['hazard']} level {level} condition {i} is "
                        f"{condition.key} now, {c['key']} in the run; run the briefing again"
                    )
                out.append(ConditionResult(
                    condition, c["variable"],
                    arrays[c["value"]] if c["value"] else None,
                    arrays[c["holds"]] if c["holds"] else None,
                    c["note"],
                ))  # fmt: skip
            res.conditions[int(level)] = out
        hazards[item["hazard"]] = res
    return LevelResult(table=table, hazards=hazards, issued=_dec(items["issued"]))


# --------------------------------------------------------------------------------------
# The assessment
# --------------------------------------------------------------------------------------

_FRAMES = ("table", "periods", "assets", "geohazards", "geohazard_points")


def write_run_state(assessment, folder: str | Path, *, inputs: dict[str, Any]) -> Path:
    """Write ``assessment`` into ``folder`` (see the module's docstring).

    Parameters
    ----------
    assessment : cityops.pipeline.Assessment
        What to keep.
    folder : path
        The state folder (created); each file is written atomically.
    inputs : dict
        The arguments of :func:`cityops.pipeline.assess` the assessment was made with
        (``forecast`` as absolute paths, ``rules``, ``now``, ``report_probability``,
        ``mapping``, ``observed``, ``history``): a reader reloads the same rule table and a
        notebook checks that its own parameters name the same inputs
        (:func:`check_same_inputs`).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = _Arrays()
    response = assessment.response
    inputs = {**inputs, "rules": _rules_arg(inputs.get("rules") or "national")}
    manifest = {
        "format": _FORMAT,
        "cityops_version": __version__,
        "jurisdiction_path": str(Path(assessment.jurisdiction.path).resolve()),
        "jurisdiction_code": str(assessment.jurisdiction.code),
        "inputs": _enc(inputs),
        "now": _enc(assessment.now),
        "sources": list(assessment.sources),
        "forecast": _dataset_items(arrays, "forecast", assessment.forecast),
        "joined": _dataset_items(arrays, "joined", assessment.joined),
        "weights": arrays.add("weights", assessment.weights),
        "levels": _levels_items(arrays, "levels", assessment.levels),
        "extreme": _levels_items(arrays, "extreme", assessment.extreme),
        "frames": {name: frame_to_json(getattr(assessment, name)) for name in _FRAMES},
        "response": None
        if response is None
        else {
            "postures": frame_to_json(response.postures),
            "tasks": frame_to_json(response.tasks),
            "dissemination": None
            if response.dissemination is None
            else frame_to_json(response.dissemination),
            "hq_consultation": response.hq_consultation,
        },
    }
    manifest["arrays"] = arrays.index
    arrays.write(folder)
    # The manifest last: a folder without it is no state.
    write_text(folder / _MANIFEST, json.dumps(manifest, ensure_ascii=False))
    return folder


def _rules_arg(rules: str | Path) -> str:
    """``national`` (or another shipped name) as is; a rule file as its absolute path."""
    return str(Path(rules).resolve()) if Path(str(rules)).is_file() else str(rules)


def check_same_inputs(assessment, inputs: dict[str, Any]) -> None:
    """Refuse a run state made from other inputs than ``inputs`` (a notebook's parameters):
    a page must never show one forecast under another's name.

    Raises
    ------
    InputError
        Naming the first input that differs.
    """
    kept = getattr(assessment, "run_state_inputs", None)
    if kept is None:
        return
    wanted = {**inputs, "rules": _rules_arg(inputs.get("rules") or "national")}
    for key, value in wanted.items():
        if key not in kept:
            continue
        have = kept[key]
        if key in ("forecast", "observed", "mapping", "history") and value:
            value = [str(Path(v).resolve()) for v in ([value] if isinstance(value, str) else value)]
            have = [
                str(Path(v).resolve()) for v in ([have] if isinstance(have, str) else have or [])
            ]
        if key == "now" and value:
            from cityops.timeutil import parse_utc

            value, have = parse_utc(value), (parse_utc(have) if have else None)
        if (value or None) != (have or None):
            raise InputError(
                f"parameter run: the run was made with {key} {have!r}, not {value!r}; "
                "leave run empty to assess these inputs"
            )


_CACHE: dict[tuple[str, int], Any] = {}


def read_run_state(folder: str | Path):
    """The :class:`~cityops.pipeline.Assessment` kept in ``folder`` by
    :func:`write_run_state` (cached per folder and manifest time in this process).

    Raises
    ------
    InputError
        No state there, a state of another format, or rule tables or a jurisdiction that
        changed since the run (the message says to run the briefing again).
    """
    folder = Path(folder).resolve()
    path = folder / _MANIFEST
    try:
        key = (str(folder), path.stat().st_mtime_ns)
    except OSError:
        raise InputError(f"{path}: no run state there (expected a `cityops brief` run's "
                         f"{STATE_FOLDER}/ folder)") from None  # fmt: skip
    if key in _CACHE:
        return _CACHE[key]
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: run state unreadable ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
        raise InputError(
            f"{path}: run state of format {manifest.get('format') if isinstance(manifest, dict) else '?'}"
            f", expected {_FORMAT}; run the briefing again"
        )
    assessment = _assessment_from(manifest, folder)
    _CACHE.clear()  # one run at a time is what a kernel needs
    _CACHE[key] = assessment
    return assessment


def _assessment_from(manifest: dict, folder: Path):
    from cityops.geo.jurisdiction import load_jurisdiction
    from cityops.pipeline import Assessment
    from cityops.response.planning import Response
    from cityops.rules import load_rule_table
    from cityops.rules.seasons import bind_seasons

    juris = load_jurisdiction(Path(manifest["jurisdiction_path"]))
    if str(juris.code) != manifest["jurisdiction_code"]:
        raise InputError(
            f"run state: jurisdiction {juris.path} has code {juris.code} now, "
            f"{manifest['jurisdiction_code']} in the run; run the briefing again"
        )
    arrays = _read_arrays(folder, manifest["arrays"])
    inputs = _dec(manifest["inputs"])
    table = bind_seasons(load_rule_table(inputs["rules"]), juris.path)
    levels = _levels_from(manifest["levels"], table, arrays, "the")
    extreme = None
    if manifest["extreme"] is not None:
        if juris.extreme_criteria is None:
            raise InputError(f"run state: {juris.path} declares no extreme criteria now")
        ext_table = bind_seasons(load_rule_table(juris.extreme_criteria.rules), juris.path)
        extreme = _levels_from(manifest["extreme"], ext_table, arrays, "the extreme")
    frames = {name: frame_from_json(doc) for name, doc in manifest["frames"].items()}
    resp = manifest["response"]
    response = None
    if resp is not None:
        response = Response(
            postures=frame_from_json(resp["postures"]),
            tasks=frame_from_json(resp["tasks"]),
            dissemination=None
            if resp["dissemination"] is None
            else frame_from_json(resp["dissemination"]),
            hq_consultation=resp["hq_consultation"],
        )
    assessment = Assessment(
        forecast=_dataset_from(manifest["forecast"], "forecast", arrays),
        jurisdiction=juris,
        levels=levels,
        extreme=extreme,
        weights=arrays[manifest["weights"]],
        table=frames["table"],
        now=_dec(manifest["now"]),
        sources=list(manifest["sources"]),
        periods=frames["periods"],
        assets=frames["assets"],
        geohazards=frames["geohazards"],
        geohazard_points=frames["geohazard_points"],
        response=response,
        joined=_dataset_from(manifest["joined"], "joined", arrays),
    )
    assessment.run_state_inputs = inputs  # what check_same_inputs compares with
    return assessment
