"""Physical plausibility of input values: one owner for grids and stations.

Forecast grids (:func:`cityops.ingest.canonical.inspect_values`) and station observations
(:mod:`cityops.ingest.stations`) are judged by the same bounds, read from
``cityops/data/variables.yaml``:

* ``valid_min`` / ``valid_max`` (give or take ``valid_tolerance``): beyond them a value is
  physically impossible (negative rain, 500 m/s wind, Kelvin labelled degC);
* ``valid_max_by_period`` (amounts): the largest amount possible over the period a value
  covers, from the world records (an hourly amount of 10 m is impossible, 7500 mm in 3 h is
  millimetres labelled metres);
* ``implausible_max_below`` (visibility, humidity): a large field whose *largest* value is
  below it is in the wrong units (visibility in km labelled m gives red fog everywhere,
  humidity as a 0-1 fraction labelled percent);
* ``missing_codes`` (top level): values such as 9999 that a file meant as "missing" but did
  not declare (no ``_FillValue``/``missing_value``): named in the refusal.

Every problem is a refusal (:class:`~cityops.errors.InputError`, exit status 2) with one line
naming the file, the variable, the bad range and what was expected: no level computed from
such values can be trusted.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cache

import numpy as np
import xarray as xr

from cityops.errors import InputError
from cityops.resources import canonical_variables, load_yaml, package_data

__all__ = [
    "ValueSummary",
    "check_bounds",
    "check_missing_codes",
    "check_period_amounts",
    "max_for_period",
    "missing_codes",
    "summarize",
]


@cache
def _registry_file() -> dict:
    return load_yaml(package_data("data", "variables.yaml"))


def missing_codes() -> tuple[float, ...]:
    """Values files use for "missing" without declaring them (``variables.yaml``)."""
    return tuple(float(c) for c in _registry_file().get("missing_codes", ()))


def max_for_period(name: str, hours: float) -> float | None:
    """Largest plausible amount of ``name`` over ``hours`` (canonical units), or None.

    Log-log interpolation between the record amounts of ``valid_max_by_period`` (amounts
    grow more slowly than the period), the 1 h record for shorter periods, and linear growth
    beyond the longest record; times the stated ``margin``.
    """
    spec = canonical_variables()[name].get("valid_max_by_period")
    if not spec or not np.isfinite(hours) or hours <= 0:
        return None
    records = sorted((float(h), float(v)) for h, v in spec["records"].items())
    hs = np.array([r[0] for r in records])
    vs = np.array([r[1] for r in records])
    if hours <= hs[0]:
        value = vs[0]
    elif hours >= hs[-1]:
        value = vs[-1] * hours / hs[-1]
    else:
        value = float(np.exp(np.interp(np.log(hours), np.log(hs), np.log(vs))))
    return float(value) * float(spec.get("margin", 1.0))


@dataclass
class ValueSummary:
    """What the checks need from a variable's values, read in one pass."""

    size: int
    vmin: float
    vmax: float
    below: int  # values below valid_min - tolerance
    above: int  # values above valid_max + tolerance
    step_max: np.ndarray  # largest value at each time (NaN where a step has none)
    nan_per_step: np.ndarray  # missing values at each time
    per_step: int  # values at each time
    codes: dict[float, int]  # undeclared missing codes found (raw values) and their count

    @property
    def all_missing(self) -> bool:
        return bool(self.nan_per_step.sum() == self.size)


def summarize(da: xr.DataArray, name: str, *, raw: xr.DataArray | None = None) -> ValueSummary:
    """Read ``da`` (canonical units) once and summarise it; ``raw``: the same values in the
    file's units, where undeclared missing codes are looked for.

    Raises
    ------
    Exception
        Whatever reading the data raises (the caller names the file).
    """
    spec = canonical_variables()[name]
    tolerance = float(spec.get("valid_tolerance", 0.0))
    others = [d for d in da.dims if d != "time"]
    checks: dict[str, xr.DataArray] = {
        "min": da.min(),
        "max": da.max(),
        "nan": da.isnull().sum(others) if others else da.isnull(),
        "step_max": da.max(others) if others else da,
    }
    if "valid_min" in spec:
        checks["below"] = (da < float(spec["valid_min"]) - tolerance).sum()
    if "valid_max" in spec:
        checks["above"] = (da > float(spec["valid_max"]) + tolerance).sum()
    source = da if raw is None else raw
    codes = missing_codes()
    for i, code in enumerate(codes):
        checks[f"code{i}"] = (abs(source - code) <= 1e-6 * abs(code)).sum()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
        stats = xr.Dataset({k: v.drop_vars(list(v.coords)) for k, v in checks.items()}).compute()
    nan = np.atleast_1d(np.asarray(stats["nan"].values, dtype=float))
    return ValueSummary(
        size=int(da.size),
        vmin=float(stats["min"]),
        vmax=float(stats["max"]),
        below=int(stats["below"]) if "below" in stats else 0,
        above=int(stats["above"]) if "above" in stats else 0,
        step_max=np.atleast_1d(np.asarray(stats["step_max"].values, dtype=float)),
        nan_per_step=nan,
        per_step=int(da.size / max(nan.size, 1)),
        codes={c: int(stats[f"code{i}"]) for i, c in enumerate(codes) if int(stats[f"code{i}"])},
    )


def _units_hint(raw_units: str | None, canonical: str) -> str:
    if raw_units and str(raw_units) != canonical:
        return f" (are the values in {canonical} labelled {raw_units!r}?)"
    return ""


def _codes_hint(summary: ValueSummary) -> str:
    if not summary.codes:
        return ""
    found = ", ".join(f"{n} × {c:g}" for c, n in summary.codes.items())
    return (
        f"; {found}: a missing-value code the file does not declare (declare it as "
        "_FillValue or missing_value, or leave the value empty)"
    )


def check_bounds(
    summary: ValueSummary,
    name: str,
    *,
    source: str,
    label: str,
    raw_units: str | None = None,
) -> None:
    """Refuse values outside ``valid_min``/``valid_max`` and wrong-unit fields
    (``implausible_max_below``); :class:`InputError` naming the file, variable and range."""
    spec = canonical_variables()[name]
    units = "" if spec["units"] == "1" else f" {spec['units']}"
    what = f"{label!r}" if label == name else f"{label!r} ({name})"
    rng = f"(range {summary.vmin:g} to {summary.vmax:g}{units})"
    for bound, count, word, op in (
        ("valid_min", summary.below, "below", ">="),
        ("valid_max", summary.above, "above", "<="),
    ):
        if count:
            limit = float(spec[bound])
            raise InputError(
                f"{source}: variable {what} has {count} value{'s' * (count != 1)} {word} "
                f"{limit:g}{units} {rng}; expected {name} {op} {limit:g}{units}: physically "
                f"impossible, the file or its units are wrong ({bound} in "
                f"cityops/data/variables.yaml){_codes_hint(summary)}"
            )
    low = spec.get("implausible_max_below")
    finite = summary.size - int(summary.nan_per_step.sum())
    if low and finite >= int(low.get("min_values", 1)) and summary.vmax < float(low["value"]):
        raise InputError(
            f"{source}: variable {what}: all {finite} values are below {float(low['value']):g}"
            f"{units} {rng}; expected {name} in {spec['units']}: {low['hint']} "
            "(implausible_max_below in cityops/data/variables.yaml)"
        )


def check_period_amounts(
    step_max: np.ndarray,
    hours: np.ndarray,
    name: str,
    *,
    source: str,
    label: str,
    times: np.ndarray | None = None,
    raw_units: str | None = None,
    summary: ValueSummary | None = None,
) -> None:
    """Refuse amounts larger than possible over the period each covers
    (``valid_max_by_period``); ``step_max``: the largest amount at each time; ``summary``
    names undeclared missing codes in the message."""
    spec = canonical_variables()[name]
    hours = np.broadcast_to(np.asarray(hours, dtype=float), step_max.shape)
    for i, (value, h) in enumerate(zip(step_max, hours, strict=True)):
        limit = max_for_period(name, float(h))
        if limit is None or not np.isfinite(value) or value <= limit:
            continue
        at = f" at {np.datetime_as_string(times[i], unit='m')}Z" if times is not None else ""
        raise InputError(
            f"{source}: variable {label!r} ({name}) reaches {value:g} {spec['units']} over "
            f"{h:g} h{at}; expected at most {limit:.0f} {spec['units']} in {h:g} h (world "
            "records, valid_max_by_period in cityops/data/variables.yaml): physically "
            f"impossible, the file or its units are wrong{_units_hint(raw_units, spec['units'])}"
            + (_codes_hint(summary) if summary is not None else "")
        )


def check_missing_codes(summary: ValueSummary, name: str, *, source: str, label: str) -> None:
    """Refuse an undeclared missing code that no bound caught (run after the bounds and the
    per-period amounts, which name such codes with their own reason)."""
    spec = canonical_variables()[name]
    what = f"{label!r}" if label == name else f"{label!r} ({name})"
    # An undeclared missing code inside the bounds (999.9 mm in a 6 h step is possible by
    # the world records, but it is the MICAPS code) is refused too, never read as a value;
    # a variable may list codes that are real readings for it (METAR visibility 9999 m).
    legit = {float(c) for c in spec.get("missing_code_is_value", ())}
    codes = {c: n for c, n in summary.codes.items() if c not in legit}
    if codes:
        found = ", ".join(f"{n} × {c:g}" for c, n in codes.items())
        raise InputError(
            f"{source}: variable {what} holds {found}: a missing-value code the file does not "
            "declare; expected real values, with missing ones declared as _FillValue or "
            "missing_value or left empty (missing_codes in cityops/data/variables.yaml)"
        )
