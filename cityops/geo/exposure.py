"""Exposure registry: assets with their own triggers and plans, geological-hazard zones, lifelines.

Files in ``data/jurisdictions/<name>/`` (``spec/interfaces.md`` §8)::

    assets.csv             one row per trigger of one asset (schema in assets.yaml)
    assets.yaml            label (source, illustrative flag) and schema of assets.csv, and
                           optional ``register_fields``: further columns a risk register keeps
                           per asset (e.g. Hanggin's "八清", seed 003:37), validated and kept
    geohazard_zones.yaml   geological-hazard susceptibility zones (areas, towns, point counts)
    lifelines.yaml         lifeline operators and the hazards that concern each

The Ejin Horo register shipped with cityops is ILLUSTRATIVE (invented points near the real town
seats): ``load_assets`` sets ``frame.attrs["illustrative"]`` and every row's ``illustrative``.

Semantics. Asset triggers are rule conditions (:func:`asset_rule_table`) evaluated by
:func:`cityops.rules.evaluate`, the one owner of windows, their alignment to the steps (the
first step included), partial windows, units and missing values: an asset and a warning
signal with the same criterion always agree. Nothing here sums or compares windows.

Sampling. :func:`evaluate_assets` reads the engine's result at the **nearest grid cell** (no
interpolation: a waterlogging point is judged on the rain of the cell it lies in). With 1-D
``lat``/``lon`` the nearest index is taken on each axis; with 2-D ``lat``/``lon`` the cell of
least distance (longitude scaled by cos(lat)). An asset farther than one grid spacing outside
the grid is not evaluated (listed in ``attrs["not_evaluated"]`` with the reason).

Geological hazards. The zones are read here (:func:`load_geohazard_zones`); the hazard points,
their rain trigger (the geological-hazard meteorological risk warning, a rule table) and the
per-town grade are :mod:`cityops.geo.geohazard`.
"""

from __future__ import annotations

import csv
import logging
import math
import operator
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely
import xarray as xr

from cityops.errors import DataFileError, InputError
from cityops.geo.jurisdiction import Jurisdiction, load_jurisdiction
from cityops.resources import canonical_variables, load_yaml
from cityops.rules import evaluate
from cityops.rules.table import RuleTable, display_units, parse_rule_table
from cityops.units import convert_quantity, parse_quantity, registry

__all__ = [
    "ASSET_COLUMNS",
    "ASSET_HAZARDS",
    "ASSET_KINDS",
    "REGISTER_FIELD_TYPES",
    "asset_rule_table",
    "evaluate_assets",
    "load_assets",
    "load_geohazard_zones",
    "load_lifelines",
]

logger = logging.getLogger(__name__)

#: Hazard ids of interfaces.md §2 plus local exposure ids.
ASSET_HAZARDS: tuple[str, ...] = (
    "typhoon",
    "rainstorm",
    "blizzard",
    "cold_wave",
    "gale",
    "sandstorm",
    "heat",
    "drought",
    "lightning",
    "hail",
    "frost",
    "fog",
    "haze",
    "road_icing",
    "low_temperature",
    "waterlogging",
    "geohazard",
    "freezing",
)

#: Kinds of asset (assets.yaml).
ASSET_KINDS: tuple[str, ...] = (
    "underpass",
    "low_lying_point",
    "underground_entrance",
    "bridge",
    "slope",
    "road",
    "construction_site",
    "scenic_spot",
    "school",
    "childcare",
    "hospital",
    "health_centre",
    "elderly_home",
    "heat_exchange_station",
    "water_main",
    "power_facility",
    "gas_facility",
    "telecom_facility",
    "mine",
    "crowded_place",
    "other",
)

#: Columns required in assets.csv (``and_condition`` is optional).
ASSET_COLUMNS: tuple[str, ...] = (
    "asset_id",
    "name_zh",
    "name_en",
    "kind",
    "unit",
    "lon",
    "lat",
    "hazard",
    "variable",
    "reduce",
    "window",
    "op",
    "threshold",
    "owner",
    "plan_zh",
    "illustrative",
)

#: Kinds of value a register field (assets.yaml ``register_fields``) may hold.
REGISTER_FIELD_TYPES: tuple[str, ...] = ("text", "integer")

#: Keys of one register field in assets.yaml.
_REGISTER_FIELD_KEYS = ("column", "label_zh", "label_en", "seed_text", "type", "min", "allowed",
                        "brief")  # fmt: skip

REDUCES = ("point", "sum", "max", "min")
OPS: dict[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}

#: Tolerance, km, for a point just outside an *approximate* unit polygon (Voronoi cells).
APPROXIMATE_TOLERANCE_KM = 2.0

RESULT_COLUMNS = [
    "asset_id",
    "name_zh",
    "kind",
    "unit",
    "hazard",
    "trigger",
    "trigger_zh",
    "first_time_utc",
    "peak_time_utc",
    "peak_value",
    "units",
    "probability",
    "owner",
    "plan_zh",
    "illustrative",
]


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
def _jurisdiction(jurisdiction: Jurisdiction | str | Path) -> Jurisdiction:
    if isinstance(jurisdiction, Jurisdiction):
        return jurisdiction
    return load_jurisdiction(jurisdiction)


def _iso(t: Any) -> str:
    return pd.Timestamp(t).strftime("%Y-%m-%dT%H:%M:%SZ")


def _bool(value: str, where: str) -> bool:
    v = str(value).strip().lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    raise DataFileError(f"{where}: expected true or false, got {value!r}")


def _threshold(text: str, variable: str, where: str) -> tuple[float, str]:
    """Threshold converted to the variable's canonical units: ``(value, units)``."""
    target = canonical_variables()[variable]["units"]
    if not str(text).strip():
        raise DataFileError(f"{where}: missing (expected a value with units, e.g. '30 mm')")
    try:
        q = parse_quantity(text, where=where)
    except InputError as err:
        raise DataFileError(str(err)) from None
    import pint

    if q.dimensionless and not registry().Unit(target).dimensionless:
        raise DataFileError(f"{where}: {text!r} has no units; expected units of {target}")
    try:
        value = convert_quantity(q, target)
    except (pint.errors.DimensionalityError, pint.errors.PintError):
        raise DataFileError(
            f"{where}: {text!r} cannot be converted to {target} (units of {variable})"
        ) from None
    return value, target


def _window(text: str, where: str) -> pd.Timedelta:
    import pint

    try:
        q = parse_quantity(text, where=where)
        hours = convert_quantity(q, "hour")
    except (InputError, pint.errors.PintError):
        raise DataFileError(f"{where}: {text!r} is not a duration such as '3 h'") from None
    if not hours > 0:
        raise DataFileError(f"{where}: {text!r} must be positive")
    return pd.Timedelta(hours=hours)


# --------------------------------------------------------------------------------------------
# Assets
# --------------------------------------------------------------------------------------------
def load_assets(
    jurisdiction: Jurisdiction | str | Path = "ejin-horo", path: str | Path | None = None
) -> pd.DataFrame:
    """Read and validate the asset register of a jurisdiction.

    Parameters
    ----------
    jurisdiction : Jurisdiction or str
        Jurisdiction (or its name/folder); the register is ``<folder>/assets.csv``.
    path : str or Path, optional
        Another register with the same columns (e.g. a department's real register); the
        register fields declared in ``assets.yaml`` apply to it too, its label does not.

    Returns
    -------
    pandas.DataFrame
        One row per trigger, columns of :data:`ASSET_COLUMNS` plus ``and_condition``, ``row``
        (data row number, 1 = first row after the header), ``window_td`` (Timedelta or NaT),
        ``threshold_value`` / ``threshold_units`` (canonical units of ``variable``) and
        ``and_variable``, ``and_op``, ``and_value``, then one column per register field that
        ``assets.yaml`` declares (``register_fields``). ``attrs`` hold ``source``,
        ``illustrative``, ``path``, ``register_fields`` (tuple of dicts: ``column, label_zh,
        label_en, seed_text, type, min, allowed, brief``) and ``register_source``.

    Raises
    ------
    DataFileError
        One line naming the file, the row number (and line) and the field: missing or
        non-numeric coordinates, unknown hazard, kind, variable, op or unit, bad threshold
        units, a point outside the outline or outside its stated unit; a declared register
        field missing from the header, empty, not a whole number, not an allowed value, or
        different between rows of one asset.
    """
    jur = _jurisdiction(jurisdiction)
    meta: dict[str, Any] = {}
    meta_path = jur.path / "assets.yaml"
    schema = load_yaml(meta_path) if meta_path.exists() else {}
    if path is None:
        meta = schema  # the shipped register's label (source, illustrative) and file
        path = jur.path / str(meta.get("file", "assets.csv"))
    path = Path(path)
    # The register fields are the schema of any register of this jurisdiction, given or not.
    register, register_source = _register_fields(schema, meta_path)
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            missing = [c for c in ASSET_COLUMNS if c not in header]
            missing += [f["column"] for f in register if f["column"] not in header]
            if missing:
                raise DataFileError(f"{path}: header lacks column(s) {', '.join(missing)}")
            records = []
            for n, raw in enumerate(reader, start=1):
                rec = _asset_row(raw, n, reader.line_num, path, jur)
                rec.update(
                    _register_values(raw, register, f"{path}: row {n} (line {reader.line_num})")
                )
                records.append(rec)
    except FileNotFoundError:
        raise DataFileError(f"{path}: file not found") from None
    except UnicodeDecodeError as err:
        raise DataFileError(f"{path}: not UTF-8 ({err.reason})") from None
    if not records:
        raise DataFileError(f"{path}: no rows")
    _check_consistent(records, path, tuple(f["column"] for f in register))
    frame = pd.DataFrame(records)
    frame.attrs.update(
        path=str(path),
        jurisdiction=jur.name,
        source=str(meta.get("source", path)),
        illustrative=bool(meta.get("illustrative", bool(frame["illustrative"].any()))),
        register_fields=register,
        register_source=register_source,
    )
    if frame.attrs["illustrative"]:
        logger.info("%s: asset register is ILLUSTRATIVE (invented points)", path)
    return frame


def _asset_row(
    raw: dict[str, Any], n: int, line: int, path: Path, jur: Jurisdiction
) -> dict[str, Any]:
    def where(fld: str) -> str:
        return f"{path}: row {n} (line {line}), field {fld!r}"

    def text(fld: str, required: bool = True) -> str:
        value = (raw.get(fld) or "").strip()
        if required and not value:
            raise DataFileError(f"{where(fld)}: missing")
        return value

    rec: dict[str, Any] = {"row": n}
    for fld in ("asset_id", "name_zh", "owner", "plan_zh"):
        rec[fld] = text(fld)
    rec["name_en"] = text("name_en", required=False)
    kind = text("kind")
    if kind not in ASSET_KINDS:
        raise DataFileError(
            f"{where('kind')}: unknown kind {kind!r} (allowed: {', '.join(ASSET_KINDS)})"
        )
    rec["kind"] = kind
    for fld, lo, hi in (("lon", -180, 180), ("lat", -90, 90)):
        value = text(fld)
        try:
            num = float(value)
        except ValueError:
            raise DataFileError(f"{where(fld)}: expected a number, got {value!r}") from None
        if not (lo <= num <= hi) or math.isnan(num):
            raise DataFileError(f"{where(fld)}: {num} is outside {lo}..{hi}")
        rec[fld] = num
    point = shapely.Point(rec["lon"], rec["lat"])
    if not jur.outline.covers(point):
        raise DataFileError(
            f"{where('lon')}: point {rec['lon']}, {rec['lat']} lies outside the outline of "
            f"{jur.name_zh} ({jur.name})"
        )
    key = text("unit")
    if key not in jur:
        raise DataFileError(f"{where('unit')}: unknown unit {key!r} in jurisdiction {jur.name}")
    unit = jur.unit(key)
    if unit.has_geometry and not unit.geometry.covers(point):
        tol_deg = APPROXIMATE_TOLERANCE_KM / 111.0 if unit.approximate else 0.0
        if not (tol_deg and unit.geometry.distance(point) <= tol_deg):
            inside = [u for u in jur.units if u.has_geometry and u.geometry.covers(point)]
            hint = f"; it lies in {inside[0]}" if inside else ""
            raise DataFileError(
                f"{where('unit')}: point {rec['lon']}, {rec['lat']} lies outside unit {unit}{hint}"
            )
    rec["unit"] = unit.code
    rec["unit_name"] = unit.name_zh
    hazard = text("hazard")
    if hazard not in ASSET_HAZARDS:
        raise DataFileError(
            f"{where('hazard')}: unknown hazard {hazard!r} (allowed: {', '.join(ASSET_HAZARDS)})"
        )
    rec["hazard"] = hazard
    variables = canonical_variables()
    variable = text("variable")
    if variable not in variables:
        raise DataFileError(
            f"{where('variable')}: unknown variable {variable!r} (allowed: {', '.join(variables)})"
        )
    rec["variable"] = variable
    reduce = text("reduce")
    if reduce not in REDUCES:
        raise DataFileError(f"{where('reduce')}: {reduce!r} is not one of {', '.join(REDUCES)}")
    rec["reduce"] = reduce
    window = text("window", required=False)
    if reduce == "point":
        if window:
            raise DataFileError(
                f"{where('window')}: must be empty for reduce=point, got {window!r}"
            )
        rec["window"], rec["window_td"] = "", pd.NaT
    else:
        if not window:
            raise DataFileError(f"{where('window')}: missing (required for reduce={reduce})")
        if reduce == "sum" and "sum" not in str(variables[variable].get("cell_method", "")):
            raise DataFileError(
                f"{where('reduce')}: sum needs a per-step amount (precip, snowfall), not {variable}"
            )
        rec["window"], rec["window_td"] = window, _window(window, where("window"))
    op = text("op")
    if op not in OPS:
        raise DataFileError(f"{where('op')}: {op!r} is not one of {', '.join(OPS)}")
    rec["op"] = op
    rec["threshold"] = text("threshold")
    rec["threshold_value"], rec["threshold_units"] = _threshold(
        rec["threshold"], variable, where("threshold")
    )
    cond = (raw.get("and_condition") or "").strip()
    rec["and_condition"] = cond
    rec["and_variable"], rec["and_op"], rec["and_value"] = "", "", math.nan
    if cond:
        parts = cond.split(None, 2)
        if len(parts) != 3 or parts[0] not in variables or parts[1] not in OPS:
            raise DataFileError(
                f"{where('and_condition')}: {cond!r} is not 'variable op value units' "
                "(e.g. 'precip >= 0.1 mm')"
            )
        rec["and_variable"], rec["and_op"] = parts[0], parts[1]
        rec["and_value"], _ = _threshold(parts[2], parts[0], where("and_condition"))
    rec["illustrative"] = _bool(text("illustrative"), where("illustrative"))
    return rec


def _register_fields(
    meta: dict[str, Any], meta_path: Path
) -> tuple[tuple[dict[str, Any], ...], str]:
    """The register fields ``assets.yaml`` declares (none when it declares none), checked.

    ``register_fields: {source: ..., fields: [{column, label_zh, label_en, seed_text?,
    type: text|integer, min?, allowed?, brief?}, ...]}``: columns a risk register keeps per
    asset beyond the trigger columns (e.g. the "八清" of a grid risk-point record).
    """
    spec = meta.get("register_fields")
    if spec is None:
        return (), ""
    where = f"{meta_path}: field 'register_fields'"
    if not isinstance(spec, dict) or not isinstance(spec.get("fields"), list) or not spec["fields"]:
        raise DataFileError(f"{where}: expected a mapping with a non-empty 'fields' list")
    source = spec.get("source")
    if not isinstance(source, str) or not source.strip():
        raise DataFileError(f"{where}.source: missing (where the fields come from)")
    taken = set(ASSET_COLUMNS) | {"and_condition"}
    fields: list[dict[str, Any]] = []
    for i, item in enumerate(spec["fields"], start=1):
        at = f"{where}.fields item {i}"
        if not isinstance(item, dict):
            raise DataFileError(f"{at}: expected a mapping (column, label_zh, label_en, ...)")
        unknown = sorted(set(item) - set(_REGISTER_FIELD_KEYS))
        if unknown:
            raise DataFileError(
                f"{at}: unknown key(s) {', '.join(map(str, unknown))} "
                f"(known: {', '.join(_REGISTER_FIELD_KEYS)})"
            )
        column = str(item.get("column") or "").strip()
        if not column.isidentifier() or not column.isascii():
            raise DataFileError(f"{at}: field 'column': {column!r} is not an ASCII identifier")
        if column in taken:
            raise DataFileError(f"{at}: field 'column': {column!r} is already a column")
        taken.add(column)
        for key in ("label_zh", "label_en"):
            if not isinstance(item.get(key), str) or not item[key].strip():
                raise DataFileError(f"{at} ({column}): field {key!r}: missing")
        kind = str(item.get("type", "text"))
        if kind not in REGISTER_FIELD_TYPES:
            raise DataFileError(
                f"{at} ({column}): field 'type': {kind!r} is not one of "
                f"{', '.join(REGISTER_FIELD_TYPES)}"
            )
        minimum = item.get("min")
        if minimum is not None and (kind != "integer" or not isinstance(minimum, int)):
            raise DataFileError(f"{at} ({column}): field 'min': only a whole number, for integer")
        allowed = item.get("allowed")
        if allowed is not None and (
            not isinstance(allowed, list)
            or not allowed
            or not all(isinstance(a, str) for a in allowed)
        ):
            raise DataFileError(f"{at} ({column}): field 'allowed': expected a list of strings")
        fields.append(
            {
                "column": column,
                "label_zh": item["label_zh"].strip(),
                "label_en": item["label_en"].strip(),
                "seed_text": str(item.get("seed_text") or ""),
                "type": kind,
                "min": minimum,
                "allowed": tuple(allowed) if allowed else (),
                "brief": bool(item.get("brief", False)),
            }
        )
    return tuple(fields), source.strip()


def _register_values(
    raw: dict[str, Any], fields: tuple[dict[str, Any], ...], row: str
) -> dict[str, Any]:
    """The register fields of one CSV row, checked against their declaration."""
    out: dict[str, Any] = {}
    for f in fields:
        where = f"{row}, field {f['column']!r} ({f['label_zh']})"
        value = (raw.get(f["column"]) or "").strip()
        if not value:
            raise DataFileError(f"{where}: missing")
        if f["type"] == "integer":
            try:
                number = int(value)
            except ValueError:
                raise DataFileError(f"{where}: expected a whole number, got {value!r}") from None
            if f["min"] is not None and number < f["min"]:
                raise DataFileError(f"{where}: {number} is below {f['min']}")
            out[f["column"]] = number
            continue
        if f["allowed"] and value not in f["allowed"]:
            raise DataFileError(f"{where}: {value!r} is not one of {', '.join(f['allowed'])}")
        out[f["column"]] = value
    return out


def _check_consistent(
    records: list[dict[str, Any]], path: Path, register: tuple[str, ...] = ()
) -> None:
    """Rows sharing an asset_id describe the same asset (name, kind, unit, location and the
    register fields)."""
    first: dict[str, dict[str, Any]] = {}
    for rec in records:
        ref = first.setdefault(rec["asset_id"], rec)
        for fld in ("name_zh", "kind", "unit", "lon", "lat", *register):
            if rec[fld] != ref[fld]:
                raise DataFileError(
                    f"{path}: row {rec['row']}, field {fld!r}: asset {rec['asset_id']} has "
                    f"{rec[fld]!r} here but {ref[fld]!r} in row {ref['row']}"
                )


def _cell_index(ds: xr.Dataset, lon: float, lat: float) -> tuple[dict[str, int] | None, str]:
    """Index of the grid cell nearest (lon, lat), or None with the reason."""
    if "lat" not in ds.coords or "lon" not in ds.coords:
        raise InputError("forecast has no lat/lon coordinates")
    la, lo = ds["lat"], ds["lon"]
    if la.ndim == 1 and lo.ndim == 1:
        idx = {}
        for name, coord, value in (("lat", la, lat), ("lon", lo, lon)):
            vals = np.asarray(coord.values, dtype=float)
            step = float(np.max(np.abs(np.diff(vals)))) if vals.size > 1 else 0.5
            if not (vals.min() - step <= value <= vals.max() + step):
                return None, f"{name} {value} outside the grid ({vals.min()}..{vals.max()})"
            idx[coord.dims[0]] = int(np.argmin(np.abs(vals - value)))
        return idx, ""
    lat2, lon2 = np.broadcast_arrays(np.asarray(la.values, float), np.asarray(lo.values, float))
    d2 = (lat2 - lat) ** 2 + ((lon2 - lon) * math.cos(math.radians(lat))) ** 2
    flat = int(np.nanargmin(d2))
    pos = np.unravel_index(flat, d2.shape)
    dims = la.dims if la.ndim == 2 else lo.dims
    spacing = float(np.nanmedian(np.abs(np.diff(lat2, axis=0)))) if lat2.shape[0] > 1 else 0.5
    if math.sqrt(d2[pos]) > 1.5 * max(spacing, 1e-6):
        return None, f"point {lon}, {lat} outside the grid"
    return {d: int(p) for d, p in zip(dims, pos, strict=True)}, ""


def _minutes(window: pd.Timedelta) -> str:
    """A window as the rule tables write it (``180min``), exact for any length."""
    return f"{window / pd.Timedelta('1min'):g}min"


def _trigger_conditions(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """A register trigger as rule-table conditions (the same fields as ``rules/tables``)."""
    cond: dict[str, Any] = {
        "variable": rec["variable"],
        "reduce": rec["reduce"],
        "op": rec["op"],
        "threshold": rec["threshold"],
    }
    if rec["reduce"] != "point":
        cond["window"] = _minutes(rec["window_td"])
    conds = [cond]
    if rec.get("and_variable"):
        text = str(rec["and_condition"]).split(None, 2)[2]
        conds.append(
            {"variable": rec["and_variable"], "reduce": "point", "op": rec["and_op"],
             "threshold": text}
        )  # fmt: skip
    return conds


def _trigger_table(
    ruleset: str, source: str, path: Path, triggers: dict[str, dict[str, Any]]
) -> RuleTable:
    """A rule table of one-level hazards, validated by the rule-table parser itself."""
    data = {"ruleset": ruleset, "source": source, "hazards": triggers}
    return parse_rule_table(data, path)


def asset_rule_table(assets: pd.DataFrame) -> tuple[RuleTable, list[str]]:
    """The register's triggers as a rule table for :func:`cityops.rules.evaluate`.

    Each distinct trigger (variable, reduction, window, comparison, threshold and
    ``and_condition``) becomes one hazard ``trigger_<n>`` with a single level 1 whose criterion
    is the trigger (``all`` of the trigger and its ``and_condition``). Windows, their alignment
    to the steps (the first step included), partial windows, units and missing values are then
    the engine's, exactly as for the warning signals.

    Parameters
    ----------
    assets : pandas.DataFrame
        From :func:`load_assets`.

    Returns
    -------
    (RuleTable, list of str)
        The table and, per register row (in order), the hazard id of its trigger.
    """
    hazards: dict[str, dict[str, Any]] = {}
    by_key: dict[str, str] = {}
    ids: list[str] = []
    source = str(assets.attrs.get("source", assets.attrs.get("path", "asset register")))
    for rec in assets.to_dict("records"):
        conds = _trigger_conditions(rec)
        key = repr(conds)
        if key not in by_key:
            by_key[key] = f"trigger_{len(by_key) + 1}"
            hazards[by_key[key]] = {
                "name_zh": describe_trigger_zh(rec),
                "name_en": _describe(rec),
                "levels": [
                    {"level": 1, "all": conds, "text_zh": describe_trigger_zh(rec),
                     "source": source}
                ],
            }  # fmt: skip
        ids.append(by_key[key])
    path = Path(str(assets.attrs.get("path", "assets.csv")))
    return _trigger_table("asset-triggers", source, path, hazards), ids


def _reason(notes: list[str]) -> str:
    """The engine's reason a trigger was not evaluated, without its prefix."""
    text = "; ".join(notes) or "no input"
    return text.removeprefix("not evaluated: ")


def evaluate_assets(
    forecast: xr.Dataset,
    assets: pd.DataFrame,
    *,
    method: str = "nearest",
    timezone: str = "Asia/Shanghai",
) -> pd.DataFrame:
    """Triggers of the assets reached by a canonical forecast.

    The triggers are rule conditions (:func:`asset_rule_table`) evaluated by
    :func:`cityops.rules.evaluate` on the whole forecast, so an asset and a warning signal
    with the same criterion agree: windows (t - window, t] aligned to the steps (a window
    beginning inside a step, e.g. inside a 6 h first step, is not evaluated), partial windows
    at the start counting when they already meet the threshold, units converted with pint,
    NaN never meeting a threshold. An ``and_condition`` must hold at the same valid time.
    Each asset then reads the engine's result at the **nearest grid cell** (the cell it lies
    in; no interpolation). With a ``member`` dimension an asset triggers when any member
    does; ``probability`` is the largest share of members meeting the trigger at one valid
    time (NaN for deterministic input).

    Parameters
    ----------
    forecast : xarray.Dataset
        Canonical forecast (interfaces.md §1) with ``time`` and ``lat``/``lon``.
    assets : pandas.DataFrame
        From :func:`load_assets`.
    method : {"nearest"}
    timezone : str, optional
        Time zone of the engine's local days (daily reductions; unused by the shipped
        register).

    Returns
    -------
    pandas.DataFrame
        One row per triggered asset trigger (an asset with two triggers that both hold gives
        two rows), sorted by ``first_time_utc``: ``asset_id, name_zh, kind, unit, hazard,
        trigger, first_time_utc`` (first valid time the trigger holds, ISO UTC ``Z``),
        ``peak_time_utc, peak_value`` (most extreme engine value among the times it holds),
        ``units, probability, owner, plan_zh, illustrative``, then the register's own columns
        (``attrs["register_fields"]``, as :func:`load_assets`). ``attrs["not_evaluated"]``
        lists ``(asset_id, trigger, reason)`` for triggers that could not be evaluated.
    """
    if method != "nearest":
        raise InputError(f"method must be 'nearest', not {method!r}")
    if "time" not in forecast.dims:
        raise InputError("forecast has no 'time' dimension")
    table, ids = asset_rule_table(assets)
    result = evaluate(forecast, table, timezone=timezone)
    skipped: list[tuple[str, str, str]] = []
    wanted: list[tuple[dict[str, Any], str, tuple]] = []
    for rec, hazard in zip(assets.to_dict("records"), ids, strict=True):
        res = result[hazard]
        if not res.evaluated:
            skipped.append((rec["asset_id"], _describe(rec), _reason(res.notes)))
            continue
        idx, reason = _cell_index(forecast, rec["lon"], rec["lat"])
        if idx is None:
            skipped.append((rec["asset_id"], _describe(rec), reason))
            continue
        wanted.append((rec, hazard, tuple(sorted(idx.items()))))
    samples = _sample(result, wanted)
    times = pd.DatetimeIndex(forecast["time"].values)
    register = tuple(assets.attrs.get("register_fields") or ())
    own = [f["column"] for f in register]
    rows: list[dict[str, Any]] = []
    for rec, hazard, key in wanted:
        row = _asset_hit(*samples[hazard, key], rec, times)
        if row is not None:
            rows.append({**row, "trigger": _describe(rec), **{c: rec[c] for c in own}})
    for asset_id, trig, why in skipped:
        logger.info("asset %s (%s) not evaluated: %s", asset_id, trig, why)
    out = pd.DataFrame(rows, columns=RESULT_COLUMNS + own)
    out = out.sort_values(["first_time_utc", "asset_id"], kind="stable").reset_index(drop=True)
    out.attrs["not_evaluated"] = skipped
    out.attrs["method"] = "nearest grid cell"
    out.attrs["illustrative"] = bool(assets.attrs.get("illustrative", False))
    out.attrs["register_fields"] = register
    return out


def _sample(result: Any, wanted: list[tuple[dict[str, Any], str, tuple]]) -> dict[tuple, tuple]:
    """Per (trigger, cell): where the engine's trigger holds (its level 1) and the value of
    the trigger's own condition (the first of the level, e.g. the 3 h sum) at the cell. All
    cells of a trigger are read at once, and a lazy (dask) result is computed in one pass."""
    import dask

    cells: dict[str, list[tuple]] = {}
    for _, hazard, key in wanted:
        if key not in cells.setdefault(hazard, []):
            cells[hazard].append(key)
    picked = {}
    for hazard, keys in cells.items():
        res = result[hazard]
        dims = [d for d, _ in keys[0]]
        at = {d: xr.DataArray([dict(k)[d] for k in keys], dims="asset_cell") for d in dims}
        picked[hazard] = (res.level.isel(at) >= 1, res.conditions[1][0].value.isel(at))
    (picked,) = dask.compute(picked)
    out = {}
    for hazard, keys in cells.items():
        hit, value = picked[hazard]
        for n, key in enumerate(keys):
            out[hazard, key] = (hit.isel(asset_cell=n), value.isel(asset_cell=n))
    return out


def _asset_hit(
    hit: xr.DataArray, value: xr.DataArray, rec: dict[str, Any], times: pd.DatetimeIndex
) -> dict[str, Any] | None:
    """The row of a trigger at the asset's cell, or None when it never holds there."""
    ensemble = "member" in hit.dims
    any_hit = hit.any("member") if ensemble else hit
    hit_v = np.asarray(any_hit.transpose("time").values, dtype=bool)
    if not hit_v.any():
        return None
    first = int(np.argmax(hit_v))
    upward = rec["op"].startswith(">")
    masked = value.where(hit)
    if ensemble:
        masked = masked.max("member") if upward else masked.min("member")
    vals = np.asarray(masked.transpose("time").values, dtype=float)
    k = int(np.nanargmax(vals) if upward else np.nanargmin(vals))
    return {
        "asset_id": rec["asset_id"],
        "name_zh": rec["name_zh"],
        "kind": rec["kind"],
        "unit": rec["unit"],
        "hazard": rec["hazard"],
        "trigger_zh": describe_trigger_zh(rec),
        "first_time_utc": _iso(times[first]),
        "peak_time_utc": _iso(times[k]),
        "peak_value": round(float(vals[k]), 3),
        "units": rec["threshold_units"],
        "probability": float(hit.mean("member").max()) if ensemble else math.nan,
        "owner": rec["owner"],
        "plan_zh": rec["plan_zh"],
        "illustrative": bool(rec["illustrative"]),
    }


_OPS_ZH = {">=": "≥", ">": ">", "<=": "≤", "<": "<", "==": "="}
_REDUCE_ZH = {"sum": "累计{name}", "max": "最大{name}", "min": "最小{name}", "mean": "平均{name}"}


def _window_zh(window: str) -> str:
    td = pd.Timedelta(str(window).replace(" ", ""))
    hours = td / pd.Timedelta(hours=1)
    return f"{hours:g}小时" if hours >= 1 else f"{td / pd.Timedelta(minutes=1):g}分钟"


def describe_trigger_zh(rec: dict[str, Any]) -> str:
    """A register trigger in Chinese, e.g. ``1小时累计降水量≥30 mm`` or ``阵风≥17.2 m/s``."""
    names = canonical_variables()

    def name(var: str) -> str:
        return str(names.get(var, {}).get("long_name_zh") or var)

    if rec["reduce"] == "point":
        what = name(rec["variable"])
    else:
        what = _window_zh(rec["window"]) + _REDUCE_ZH[rec["reduce"]].format(
            name=name(rec["variable"])
        )

    def quantity(text: str) -> str:
        value, _, unit = str(text).strip().partition(" ")
        return f"{value} {display_units(unit)}".strip()

    text = f"{what}{_OPS_ZH.get(rec['op'], rec['op'])}{quantity(rec['threshold'])}"
    if rec.get("and_condition"):
        var, op, value = str(rec["and_condition"]).split(maxsplit=2)
        text += f"且{name(var)}{_OPS_ZH.get(op, op)}{quantity(value)}"
    return text


def _describe(rec: dict[str, Any]) -> str:
    what = (
        rec["variable"]
        if rec["reduce"] == "point"
        else (f"{rec['variable']} {rec['window']} {rec['reduce']}")
    )
    text = f"{what} {rec['op']} {rec['threshold']}"
    if rec.get("and_condition"):
        text += f" and {rec['and_condition']}"
    return text


# --------------------------------------------------------------------------------------------
# Geological-hazard zones
# --------------------------------------------------------------------------------------------
PRONE = ("mid", "low", "not")


def load_geohazard_zones(jurisdiction: Jurisdiction | str | Path = "ejin-horo") -> pd.DataFrame:
    """Geological-hazard susceptibility zones: area, towns and point counts.

    The zones own the count of points per zone and type; the point register
    (:func:`cityops.geo.geohazard.load_geohazard_points`) must match it. The rain trigger is
    not here: it is the geological-hazard meteorological risk warning (a rule table), whose
    grade a zone's susceptibility class (``prone``) adjusts.

    Returns
    -------
    pandas.DataFrame
        One row per zone: ``zone, where_zh, where_en, towns`` (tuple of unit codes),
        ``prone`` (mid|low|not), ``area_km2, collapse, subsidence, points, cause, source``.

    Raises
    ------
    DataFileError
        Bad fields, unknown town codes, areas/points not summing to the stated totals, or a
        ``trigger`` left in the file (the trigger has one owner, the warning's rule table).
    """
    jur = _jurisdiction(jurisdiction)
    path = jur.path / "geohazard_zones.yaml"
    data = load_yaml(path)
    if "trigger" in data:
        raise DataFileError(
            f"{path}: field 'trigger': the rain trigger is the geological-hazard warning's rule "
            "table (geohazard_points.yaml 'warning_rules'); remove it here"
        )
    zones = data.get("zones")
    if not isinstance(zones, list) or not zones:
        raise DataFileError(f"{path}: field 'zones': expected a list")
    rows = []
    for i, z in enumerate(zones):
        where = f"{path}: zone {i + 1}"
        if not isinstance(z, dict) or not z.get("zone"):
            raise DataFileError(f"{where}: field 'zone': missing")
        where = f"{path}: zone {i + 1} ({z['zone']})"
        prone = str(z.get("prone"))
        if prone not in PRONE:
            raise DataFileError(f"{where}: field 'prone': {prone!r} is not one of mid, low, not")
        towns = tuple(str(t) for t in z.get("towns") or ())
        for t in towns:
            if t not in jur:
                raise DataFileError(f"{where}: field 'towns': unknown unit {t!r}")
        try:
            area = float(z["area_km2"])
            pts = z.get("points") or {}
            collapse, subsidence = int(pts.get("collapse", 0)), int(pts.get("subsidence", 0))
        except (KeyError, TypeError, ValueError):
            raise DataFileError(f"{where}: field 'area_km2'/'points': expected numbers") from None
        rows.append(
            {
                "zone": str(z["zone"]),
                "where_zh": str(z.get("where_zh", "")),
                "where_en": str(z.get("where_en", "")),
                "towns": tuple(jur.unit(t).code for t in towns),
                "prone": prone,
                "area_km2": area,
                "collapse": collapse,
                "subsidence": subsidence,
                "points": collapse + subsidence,
                "cause": str(z.get("cause", "")),
                "source": str(z.get("source", data.get("source", ""))),
            }
        )
    frame = pd.DataFrame(rows)
    for key, col, ndigits in (("total_km2", "area_km2", 2), ("total_points", "points", 0)):
        if key in data and round(frame[col].sum(), ndigits) != round(float(data[key]), ndigits):
            raise DataFileError(
                f"{path}: field {key!r}: zones sum to {frame[col].sum():.2f}, not {data[key]}"
            )
    frame.attrs.update(path=str(path), source=str(data.get("source", "")))
    return frame


# --------------------------------------------------------------------------------------------
# Lifelines
# --------------------------------------------------------------------------------------------
def load_lifelines(jurisdiction: Jurisdiction | str | Path = "ejin-horo") -> pd.DataFrame:
    """Lifeline operators and the hazards that concern each (``lifelines.yaml``).

    Returns
    -------
    pandas.DataFrame
        One row per sector: ``sector, sector_zh, operators`` (tuple), ``plan, hazards``
        (tuple of hazard ids), ``note``.
    """
    jur = _jurisdiction(jurisdiction)
    path = jur.path / "lifelines.yaml"
    data = load_yaml(path)
    items = data.get("lifelines")
    if not isinstance(items, list):
        raise DataFileError(f"{path}: field 'lifelines': expected a list")
    rows = []
    for i, item in enumerate(items):
        where = f"{path}: lifeline {i + 1}"
        if not isinstance(item, dict) or not item.get("sector"):
            raise DataFileError(f"{where}: field 'sector': missing")
        hazards = tuple(str(h) for h in item.get("hazards") or ())
        bad = [h for h in hazards if h not in ASSET_HAZARDS]
        if bad:
            raise DataFileError(f"{where}: field 'hazards': unknown hazard(s) {', '.join(bad)}")
        rows.append(
            {
                "sector": str(item["sector"]),
                "sector_zh": str(item.get("sector_zh", "")),
                "operators": tuple(str(o) for o in item.get("operators") or ()),
                "plan": str(item.get("plan", "")),
                "hazards": hazards,
                "note": str(item.get("note", "")),
            }
        )
    frame = pd.DataFrame(rows)
    frame.attrs.update(path=str(path), source=str(data.get("source", "")))
    return frame
