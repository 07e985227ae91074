"""Derived variables: what a rule compares when no forecast carries it directly.

A signal's wording sometimes names a quantity that is a combination of forecast variables:
暴雨 counts rain (``rain`` = precipitation less its snow water), 道路结冰 counts precipitation
falling on a road below 0 °C (``icing_precip``), haze is judged where no dust load is near
in time (``dust_nearby``). Each is defined once, as data, in
``cityops/data/derived_variables.yaml`` and built by :func:`add_derived` just before the rules
are evaluated, so every caller of :func:`cityops.rules.evaluate` (assess, brief, review,
explore) judges the same quantity.
"""

from __future__ import annotations

import operator
from functools import cache
from typing import Any

import xarray as xr

from cityops.errors import DataFileError
from cityops.ingest.canonical import MISSING_ATTR
from cityops.resources import canonical_variables, load_yaml, package_data
from cityops.units import convert_dataarray, convert_quantity, parse_quantity

__all__ = ["add_derived", "derived_inputs", "derived_variables", "rule_variables"]

KINDS = ("liquid", "masked", "neighbourhood_max")

#: The engine reports this attribute of every input of a hazard in the hazard's notes (and so
#: in every output row): a derived variable carries its own caveat there.
NOTE_ATTR = MISSING_ATTR

_COMPARE = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}

#: Decimals kept after a subtraction of amounts: removes float noise (50.3 - 0.3 giving
#: 49.999996) far below any data resolution (0.1 mm).
_ROUND_DECIMALS = 6


@cache
def derived_variables() -> dict[str, dict[str, Any]]:
    """The derived-variable registry (``cityops/data/derived_variables.yaml``), validated."""
    path = package_data("data", "derived_variables.yaml")
    data = load_yaml(path)
    registry = canonical_variables()
    variables = data.get("variables")
    if not isinstance(variables, dict):
        raise DataFileError(f"{path}: missing 'variables' mapping")
    for name, spec in variables.items():
        where = f"{path}: variable {name!r}"
        if name in registry:
            raise DataFileError(f"{where}: already a canonical variable (variables.yaml)")
        if not isinstance(spec, dict) or "units" not in spec or "source" not in spec:
            raise DataFileError(f"{where}: needs 'units' and 'source'")
        derive = spec.get("derive")
        if not isinstance(derive, dict) or derive.get("kind") not in KINDS:
            raise DataFileError(f"{where}: field 'derive.kind' must be one of {KINDS}")
        if derive["kind"] == "masked":
            cond = derive.get("where")
            if not isinstance(cond, dict) or cond.get("op") not in _COMPARE:
                raise DataFileError(f"{where}: field 'derive.where' needs variable, op, threshold")
        for var in _inputs(derive):
            if var not in registry:
                raise DataFileError(f"{where}: input {var!r} is not a canonical variable")
        if derive["kind"] == "masked":
            units = registry[cond["variable"]]["units"]
            q = parse_quantity(str(cond["threshold"]), where=f"{where}: derive.where.threshold")
            cond["value"] = float(f"{convert_quantity(q, units):.10g}")
        if derive["kind"] == "neighbourhood_max" and int(derive.get("steps", 0)) < 1:
            raise DataFileError(f"{where}: field 'derive.steps' must be an integer >= 1")
    return variables


def _inputs(derive: dict[str, Any]) -> list[str]:
    """Names of the canonical variables a ``derive`` block reads."""
    names = [derive.get("from")]
    if derive["kind"] == "liquid":
        names.append(derive.get("minus"))
    if derive["kind"] == "masked":
        names.append(derive["where"].get("variable"))
    return [str(n) for n in names]


def derived_inputs(name: str) -> tuple[str, ...]:
    """Canonical variables a derived variable is built from (empty for a canonical one)."""
    spec = derived_variables().get(name)
    return () if spec is None else tuple(_inputs(spec["derive"]))


def rule_variables() -> dict[str, dict[str, Any]]:
    """Every variable a rule may name: canonical and derived."""
    return {**canonical_variables(), **derived_variables()}


def _source(ds: xr.Dataset, name: str, spec: dict[str, Any]) -> xr.DataArray:
    """Input ``name`` in the derived variable's units (precipitation in m becomes mm)."""
    return convert_dataarray(ds[name], spec["units"], source=ds.encoding.get("source", ""))


def _liquid(ds: xr.Dataset, name: str, spec: dict[str, Any]) -> xr.DataArray | None:
    derive = spec["derive"]
    src = _source(ds, derive["from"], spec)
    attrs = {"units": spec["units"], "long_name": spec["long_name"]}
    minus = derive["minus"]
    if minus not in ds.data_vars:
        out = src.copy()
        attrs[NOTE_ATTR] = " ".join(str(derive["unknown_phase_note"]).split())
    else:
        total = src.astype("float64")
        snow = _source(ds, minus, spec).astype("float64")
        # Snow water can exceed the total in a model's rounding: never negative rain.
        out = (total - snow).clip(min=0.0).round(_ROUND_DECIMALS).astype(src.dtype)
    out = out.rename(name)
    out.attrs = attrs  # its own attributes only (not precip's standard_name or notes)
    return out


def _masked(ds: xr.Dataset, name: str, spec: dict[str, Any]) -> xr.DataArray:
    derive = spec["derive"]
    cond = derive["where"]
    registry = canonical_variables()
    src = _source(ds, derive["from"], spec)
    mask_var = convert_dataarray(ds[cond["variable"]], registry[cond["variable"]]["units"])
    holds = _COMPARE[cond["op"]](mask_var, cond["value"])
    out = xr.where(holds, src, xr.zeros_like(src))
    out = out.where(src.notnull() & mask_var.notnull()).astype(src.dtype)
    out.attrs = {"units": spec["units"], "long_name": spec["long_name"]}
    return out


def _neighbourhood_max(ds: xr.Dataset, name: str, spec: dict[str, Any]) -> xr.DataArray:
    derive = spec["derive"]
    src = _source(ds, derive["from"], spec)
    width = 2 * int(derive["steps"]) + 1
    out = src.rolling(time=width, center=True, min_periods=1).max().astype(src.dtype)
    out.attrs = {"units": spec["units"], "long_name": spec["long_name"]}
    return out


_BUILDERS = {"liquid": _liquid, "masked": _masked, "neighbourhood_max": _neighbourhood_max}


def add_derived(ds: xr.Dataset, names) -> xr.Dataset:
    """The dataset with the derived variables among ``names`` that it lacks and whose inputs
    it has (a shallow copy; the input is not modified).

    Parameters
    ----------
    ds : xarray.Dataset
        Canonical forecast (interfaces.md §1).
    names : iterable of str
        Variables the rules name; canonical ones are ignored.

    Returns
    -------
    xarray.Dataset
        Without any change (the same object) when nothing is to be derived.
    """
    registry = derived_variables()
    wanted = [n for n in dict.fromkeys(names) if n in registry and n not in ds.data_vars]
    todo = []
    for name in wanted:
        derive = registry[name]["derive"]
        # `liquid` works without its `minus` (phase unknown, said in the notes).
        needed = _inputs(derive)[:1] if derive["kind"] == "liquid" else _inputs(derive)
        if all(v in ds.data_vars for v in needed):
            todo.append(name)
    if not todo:
        return ds
    out = ds.copy(deep=False)
    for name in todo:
        spec = registry[name]
        out[name] = _BUILDERS[spec["derive"]["kind"]](ds, name, spec)
    return out
