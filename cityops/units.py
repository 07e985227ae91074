"""One unit registry for the whole package (MetPy's pint registry) and DataArray helpers.

Units are converted once at the boundary: ingest converts every canonical variable to the
units of ``cityops/data/variables.yaml`` and rule thresholds (quantity strings such as
``"50 mm"``) are converted to the data's units, never the reverse.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from cityops.errors import InputError

if TYPE_CHECKING:
    import pint

__all__ = ["convert_dataarray", "linear_conversion", "parse_quantity", "registry"]


@functools.cache
def registry():
    """MetPy's pint registry, the package's one unit registry. Imported on first use: MetPy
    and pint take longer to import than the rest of ``cityops.pipeline``."""
    from metpy.units import units

    return units


def __getattr__(name: str):
    if name == "ureg":  # ``from cityops.units import ureg`` inside a function: the registry
        return registry()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _water_density():
    # Water amounts: 1 kg m-2 of liquid water is 1 mm deep (density 1000 kg m-3). Declared
    # explicitly rather than hidden in a context, so a "kg m-2" precipitation converts to mm.
    return registry().Quantity(1000.0, "kg m**-3")


def _to_units(quantity: pint.Quantity, target: str) -> pint.Quantity:
    ureg = registry()
    target_u = ureg.Unit(target)
    if quantity.dimensionality == ureg.Unit("kg m**-2").dimensionality and (
        target_u.dimensionality == ureg.Unit("mm").dimensionality
    ):
        return (quantity / _water_density()).to(target_u)
    if quantity.dimensionality == ureg.Unit("mm").dimensionality and (
        target_u.dimensionality == ureg.Unit("kg m**-2").dimensionality
    ):
        return (quantity * _water_density()).to(target_u)
    return quantity.to(target_u)


def parse_quantity(text: str | float | int, *, where: str = "") -> pint.Quantity:
    """Parse a quantity string such as ``"50 mm"`` or ``"35 degC"``.

    Parameters
    ----------
    text : str
        Magnitude and units. A bare number is dimensionless.
    where : str, optional
        Context for the error message (e.g. the rule row).

    Returns
    -------
    pint.Quantity
    """
    import pint

    ureg = registry()
    try:
        if isinstance(text, int | float):
            return ureg.Quantity(float(text), "dimensionless")
        magnitude, _, unit = str(text).strip().partition(" ")
        return ureg.Quantity(float(magnitude), unit.strip() or "dimensionless")
    except (ValueError, pint.errors.PintError) as err:
        raise InputError(f"{where}: cannot read quantity {text!r} ({err})") from None


def convert_quantity(quantity: pint.Quantity, target: str) -> float:
    """Magnitude of ``quantity`` in ``target`` units (water amounts via density of water)."""
    return float(_to_units(quantity, target).magnitude)


def linear_conversion(da: xr.DataArray, target: str, *, source: str = "") -> tuple[float, float]:
    """``(scale, offset)`` taking ``da``'s units to ``target``: ``value * scale + offset``;
    ``(1.0, 0.0)`` when the units already agree. Raises :class:`InputError` as
    :func:`convert_dataarray` does."""
    import pint

    name = da.name or "variable"
    units = da.attrs.get("units")
    if units is None:
        raise InputError(f"{source}: variable {name!r} has no 'units' attribute; expected {target}")
    try:
        return _linear(str(units), target)
    except (pint.errors.PintError, ValueError, TypeError, AssertionError) as err:
        if isinstance(err, pint.errors.DimensionalityError):
            raise InputError(
                f"{source}: variable {name!r} has units {units!r}, not convertible to {target}"
            ) from None
        raise InputError(
            f"{source}: variable {name!r} has units {units!r} that cannot be read; "
            f"expected {target}"
        ) from None


@functools.lru_cache(maxsize=256)
def _linear(units: str, target: str) -> tuple[float, float]:
    """Scale and offset from ``units`` to ``target`` (cached: pint parsing is slow)."""
    ureg = registry()
    src = ureg.Unit(_cf_units(units))
    one = _to_units(ureg.Quantity(1.0, src), target)
    zero = _to_units(ureg.Quantity(0.0, src), target)
    scale = float(one.magnitude - zero.magnitude)
    offset = float(zero.magnitude)
    if np.isclose(scale, 1.0) and np.isclose(offset, 0.0):
        return 1.0, 0.0
    return scale, offset


def convert_dataarray(
    da: xr.DataArray, target: str, *, source: str = "", copy: bool = True
) -> xr.DataArray:
    """Convert a DataArray to ``target`` units, lazily (dask stays dask).

    Parameters
    ----------
    da : xarray.DataArray
        Must carry a ``units`` attribute understood by pint (CF spellings such as
        ``"K"``, ``"degC"``, ``"kg m-2"``, ``"m s-1"``).
    target : str
        Units wanted.
    source : str, optional
        File name for error messages.
    copy : bool, default True
        When the units already agree: a deep copy (True) or a new DataArray sharing the
        data (False, for read-only use such as the rule engine).

    Returns
    -------
    xarray.DataArray
        Same data in ``target`` units; ``units`` attribute updated.
    """
    scale, offset = linear_conversion(da, target, source=source)
    attrs = dict(da.attrs)
    if scale == 1.0 and offset == 0.0:
        out = da.copy(deep=copy)
    else:
        out = da * scale + offset
    attrs["units"] = target
    out.attrs = attrs
    return out


def _cf_units(units: str) -> str:
    """Translate CF/UDUNITS spellings that pint reads differently."""
    u = str(units).strip()
    aliases = {
        "1": "dimensionless",
        "": "dimensionless",
        "%": "percent",
        "fraction": "dimensionless",
    }
    return aliases.get(u, u)
