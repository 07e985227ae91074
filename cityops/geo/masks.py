"""Overlap weights between grid cells and jurisdiction units.

A grid cell counts towards a unit in proportion to its overlap: the weight of cell ``(i, j)``
for unit ``u`` is ``area(cell ∩ u) / area(u)``, computed on a Lambert azimuthal equal-area
projection centred on the jurisdiction. A unit's weights therefore sum to 1, area-weighted
means are ``(field * w).sum(("lat", "lon"))`` and the share of a unit's area where a
condition holds is ``(w * condition).sum(("lat", "lon"))`` (``area_fraction`` of
``spec/interfaces.md`` §4).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
import xarray as xr

from cityops.errors import InputError
from cityops.geo.jurisdiction import Jurisdiction, equal_area_km2

__all__ = ["cell_edges", "overlap_weights", "touching"]

_LAT_ATTRS = {"standard_name": "latitude", "long_name": "latitude", "units": "degrees_north"}
_LON_ATTRS = {"standard_name": "longitude", "long_name": "longitude", "units": "degrees_east"}

#: Relative share of a unit's area that may lie outside the grid before it counts as uncovered.
_COVER_TOLERANCE = 1e-9


def _coordinate(values: Any, name: str) -> tuple[np.ndarray, dict[str, Any]]:
    attrs = dict(getattr(values, "attrs", {}) or {})
    arr = np.asarray(getattr(values, "values", values), dtype=float)
    if arr.ndim == 2:
        raise NotImplementedError(
            f"overlap_weights: 2-D {name} (curvilinear grid) is not supported yet; "
            "pass the 1-D lat and lon of a regular or rectilinear grid"
        )
    if arr.ndim != 1:
        raise InputError(f"overlap_weights: {name} must be 1-D, got {arr.ndim} dimensions")
    return arr, attrs


def cell_edges(values: Any, name: str = "coordinate") -> np.ndarray:
    """Edges of the cells around 1-D cell centres: midpoints, edge cells extended by half a step.

    Parameters
    ----------
    values : array-like
        Strictly increasing or strictly decreasing 1-D centres, at least 2 of them.
    name : str
        Name used in error messages.

    Returns
    -------
    numpy.ndarray
        ``len(values) + 1`` edges in the same order as ``values``.

    Examples
    --------
    >>> cell_edges([39.0, 39.5, 40.5]).tolist()
    [38.75, 39.25, 40.0, 41.0]
    """
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or x.size < 2:
        raise InputError(f"{name}: need a 1-D coordinate with at least 2 values to bound cells")
    if not np.all(np.isfinite(x)):
        raise InputError(f"{name}: coordinate has NaN or infinite values")
    step = np.diff(x)
    if not (np.all(step > 0) or np.all(step < 0)):
        raise InputError(f"{name}: coordinate must be strictly increasing or decreasing")
    mid = (x[:-1] + x[1:]) / 2
    return np.concatenate([[x[0] - step[0] / 2], mid, [x[-1] + step[-1] / 2]])


def overlap_weights(
    jurisdiction: Jurisdiction,
    lat: Any,
    lon: Any,
    *,
    allow_partial: bool = False,
) -> xr.DataArray:
    """Share of each unit's area that falls in each grid cell.

    Parameters
    ----------
    jurisdiction : Jurisdiction
        Units and their polygons (WGS-84 lon/lat).
    lat, lon : array-like or xarray.DataArray
        1-D cell-centre coordinates in degrees (either order; longitudes in the same
        −180…180 convention as the jurisdiction). Cells are bounded by the midpoints between
        neighbouring values; edge cells extend by half a spacing.
    allow_partial : bool, default False
        When False, a unit reaching outside the grid raises :class:`~cityops.errors.InputError`
        (the grid must cover the jurisdiction). When True its weights are still fractions of
        the whole unit's area, so they sum to the covered share (< 1).

    Returns
    -------
    xarray.DataArray
        ``overlap_weight`` with dims ``("unit", "lat", "lon")`` and coordinate ``unit`` = unit
        codes (all units, in file order; also ``name_zh`` and ``has_geometry`` along
        ``unit``). Values are ``area(cell ∩ unit) / area(unit)`` on an equal-area projection:
        each unit with geometry sums to 1 (within 1e-9); units without geometry are all 0. A
        unit smaller than a cell gets weight 1 in the cell holding it.

    Raises
    ------
    NotImplementedError
        2-D (curvilinear) ``lat``/``lon``.
    InputError
        Coordinates not strictly monotonic, fewer than 2 values, or a unit outside the grid
        (unless ``allow_partial``).

    Examples
    --------
    >>> import numpy as np
    >>> from cityops.geo import load_jurisdiction
    >>> j = load_jurisdiction("ejin-horo")
    >>> w = overlap_weights(j, np.arange(38.9, 39.85, 0.05), np.arange(109.0, 110.45, 0.05))
    >>> float(w.sel(unit="150627100").sum().round(9))
    1.0
    """
    lat_arr, lat_attrs = _coordinate(lat, "lat")
    lon_arr, lon_attrs = _coordinate(lon, "lon")
    lat_edges = np.clip(cell_edges(lat_arr, "lat"), -90.0, 90.0)
    lon_edges = cell_edges(lon_arr, "lon")
    lat_lo = np.minimum(lat_edges[:-1], lat_edges[1:])
    lat_hi = np.maximum(lat_edges[:-1], lat_edges[1:])
    lon_lo = np.minimum(lon_edges[:-1], lon_edges[1:])
    lon_hi = np.maximum(lon_edges[:-1], lon_edges[1:])
    nlat, nlon = lat_arr.size, lon_arr.size

    # Cells in (lat, lon) order, flattened: cell k is (k // nlon, k % nlon).
    boxes = shapely.box(
        lon_lo[np.newaxis, :], lat_lo[:, np.newaxis], lon_hi[np.newaxis, :], lat_hi[:, np.newaxis]
    ).ravel()
    tree = shapely.STRtree(boxes)
    extent = shapely.box(lon_lo.min(), lat_lo.min(), lon_hi.max(), lat_hi.max())
    centre = jurisdiction.centre

    weights = np.zeros((len(jurisdiction.units), nlat * nlon))
    for k, unit in enumerate(jurisdiction.units):
        if not unit.has_geometry:
            continue
        geom = unit.geometry
        shapely.prepare(geom)
        cand = tree.query(geom, predicate="intersects")
        pieces = shapely.intersection(boxes[cand], geom)
        areas = np.atleast_1d(equal_area_km2(pieces, centre))
        outside = geom.difference(extent)
        area_out = 0.0 if outside.is_empty else float(equal_area_km2(outside, centre))
        total = float(areas.sum()) + area_out
        if total <= 0.0:
            raise InputError(f"overlap_weights: unit {unit} has zero area")
        if area_out > _COVER_TOLERANCE * total and not allow_partial:
            raise InputError(
                f"overlap_weights: the grid (lat {lat_lo.min():.4f}..{lat_hi.max():.4f}, "
                f"lon {lon_lo.min():.4f}..{lon_hi.max():.4f}) covers only "
                f"{100 * (1 - area_out / total):.1f} % of unit {unit}; "
                f"the grid must cover the jurisdiction's bounds {jurisdiction.bounds}"
            )
        weights[k, cand] = areas / total

    units = jurisdiction.units
    result = xr.DataArray(
        weights.reshape(len(units), nlat, nlon),
        dims=("unit", "lat", "lon"),
        coords={
            "unit": ("unit", [u.code for u in units], {"long_name": "unit code"}),
            "name_zh": ("unit", [u.name_zh for u in units], {"long_name": "unit name"}),
            "has_geometry": ("unit", [u.has_geometry for u in units]),
            "lat": ("lat", lat_arr, lat_attrs or dict(_LAT_ATTRS)),
            "lon": ("lon", lon_arr, lon_attrs or dict(_LON_ATTRS)),
        },
        name="overlap_weight",
        attrs={
            "long_name": "fraction of the unit's area in the grid cell",
            "units": "1",
            "description": (
                "area(cell ∩ unit) / area(unit) on a Lambert azimuthal equal-area projection "
                f"centred at lon {centre[0]}, lat {centre[1]}; cells are bounded by the "
                "midpoints between grid coordinates (edge cells extend half a spacing); the "
                "weights of a unit with geometry sum to 1, a unit without geometry is all 0"
            ),
            "jurisdiction": jurisdiction.name,
        },
    )
    return result


def touching(weights: xr.DataArray) -> xr.DataArray:
    """Grid cells that overlap each unit (weight > 0).

    Parameters
    ----------
    weights : xarray.DataArray
        Result of :func:`overlap_weights`.

    Returns
    -------
    xarray.DataArray
        Boolean ``touching`` with the same dims and coordinates.
    """
    result = (weights > 0).rename("touching")
    result.attrs = {
        "long_name": "grid cell overlaps the unit",
        "description": "overlap weight > 0 (cells sharing only a boundary do not count)",
    }
    return result
