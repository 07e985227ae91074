"""Overlap weights between grid cells and jurisdiction units.

A grid cell counts towards a unit in proportion to its overlap: the weight of cell ``(i, j)``
for unit ``u`` is ``area(cell ∩ u) / area(u)``, computed on a Lambert azimuthal equal-area
projection centred on the jurisdiction. A unit's weights therefore sum to 1, area-weighted
means are ``(field * w).sum(("lat", "lon"))`` and the share of a unit's area where a
condition holds is ``(w * condition).sum(("lat", "lon"))`` (``area_fraction`` of
``spec/interfaces.md`` §4).

Curvilinear grids (2-D ``lat``/``lon`` with any two dimension names, e.g. ``("y", "x")``) are
supported: each cell is the quadrilateral whose corners are the means of the four
neighbouring centres (extrapolated linearly at the edges); the weights then have dims
``("unit", <ydim>, <xdim>)`` and sums run over those two dims.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
import xarray as xr

from cityops.errors import InputError
from cityops.geo.jurisdiction import Jurisdiction, equal_area_km2

__all__ = [
    "SparseWeights",
    "cell_area_km2",
    "cell_edges",
    "overlap_weights",
    "sparse_overlap_weights",
    "touching",
]

_LAT_ATTRS = {"standard_name": "latitude", "long_name": "latitude", "units": "degrees_north"}
_LON_ATTRS = {"standard_name": "longitude", "long_name": "longitude", "units": "degrees_east"}

#: Relative share of a unit's area that may lie outside the grid before it counts as uncovered.
_COVER_TOLERANCE = 1e-9


def _coordinate(values: Any, name: str) -> tuple[np.ndarray, dict[str, Any]]:
    attrs = dict(getattr(values, "attrs", {}) or {})
    arr = np.asarray(getattr(values, "values", values), dtype=float)
    if arr.ndim not in (1, 2):
        raise InputError(f"overlap_weights: {name} must be 1-D or 2-D, got {arr.ndim} dimensions")
    return arr, attrs


def _corners(values: np.ndarray, name: str) -> np.ndarray:
    """Corners ``(ny + 1, nx + 1)`` of the cells around 2-D centres ``(ny, nx)``.

    The centres are padded by one row/column on each side by linear extrapolation; each
    corner is the mean of the four (padded) centres around it, so interior corners are the
    midpoints of neighbouring centres and a regular grid gives the same edges as
    :func:`cell_edges`.
    """
    a = np.asarray(values, dtype=float)
    if a.shape[0] < 2 or a.shape[1] < 2:
        raise InputError(f"{name}: need at least 2 x 2 cell centres to bound cells")
    if not np.all(np.isfinite(a)):
        raise InputError(f"{name}: coordinate has NaN or infinite values")
    ny, nx = a.shape
    p = np.empty((ny + 2, nx + 2))
    p[1:-1, 1:-1] = a
    p[0, 1:-1] = 2 * a[0] - a[1]
    p[-1, 1:-1] = 2 * a[-1] - a[-2]
    p[:, 0] = 2 * p[:, 1] - p[:, 2]
    p[:, -1] = 2 * p[:, -2] - p[:, -3]
    return (p[:-1, :-1] + p[1:, :-1] + p[:-1, 1:] + p[1:, 1:]) / 4


class _Grid:
    """Cell polygons of a regular/rectilinear (1-D lat, lon) or curvilinear (2-D) grid."""

    def __init__(self, lat: Any, lon: Any) -> None:
        lat_arr, lat_attrs = _coordinate(lat, "lat")
        lon_arr, lon_attrs = _coordinate(lon, "lon")
        if lat_arr.ndim != lon_arr.ndim:
            raise InputError(
                f"overlap_weights: lat is {lat_arr.ndim}-D but lon is {lon_arr.ndim}-D; pass "
                "1-D lat and lon (regular grid) or 2-D lat and lon of the same shape"
            )
        self.curvilinear = lat_arr.ndim == 2
        lat_attrs = lat_attrs or dict(_LAT_ATTRS)
        lon_attrs = lon_attrs or dict(_LON_ATTRS)
        if not self.curvilinear:
            lat_edges = np.clip(cell_edges(lat_arr, "lat"), -90.0, 90.0)
            lon_edges = cell_edges(lon_arr, "lon")
            lat_lo = np.minimum(lat_edges[:-1], lat_edges[1:])
            lat_hi = np.maximum(lat_edges[:-1], lat_edges[1:])
            lon_lo = np.minimum(lon_edges[:-1], lon_edges[1:])
            lon_hi = np.maximum(lon_edges[:-1], lon_edges[1:])
            self.shape: tuple[int, int] = (lat_arr.size, lon_arr.size)
            self.dims: tuple[str, str] = ("lat", "lon")
            # Cells in (lat, lon) order, flattened: cell k is (k // nlon, k % nlon).
            self.cells = shapely.box(
                lon_lo[np.newaxis, :],
                lat_lo[:, np.newaxis],
                lon_hi[np.newaxis, :],
                lat_hi[:, np.newaxis],
            ).ravel()
            self.extent = shapely.box(lon_lo.min(), lat_lo.min(), lon_hi.max(), lat_hi.max())
            self.coords: dict[str, Any] = {
                "lat": ("lat", lat_arr, lat_attrs),
                "lon": ("lon", lon_arr, lon_attrs),
            }
            return
        if lat_arr.shape != lon_arr.shape:
            raise InputError(
                f"overlap_weights: 2-D lat {lat_arr.shape} and lon {lon_arr.shape} differ in shape"
            )
        dims = tuple(getattr(lat, "dims", ()) or getattr(lon, "dims", ()) or ("y", "x"))
        if len(dims) != 2 or "unit" in dims:
            raise InputError(f"overlap_weights: bad dimensions {dims} of the 2-D lat/lon")
        self.shape = lat_arr.shape
        self.dims = dims  # type: ignore[assignment]
        lat_c = np.clip(_corners(lat_arr, "lat"), -90.0, 90.0)
        lon_c = _corners(lon_arr, "lon")

        def _xy(rows: Any, cols: Any) -> np.ndarray:
            return np.stack([lon_c[rows, cols], lat_c[rows, cols]], axis=-1)

        lo, hi = slice(None, -1), slice(1, None)
        quads = np.stack([_xy(lo, lo), _xy(lo, hi), _xy(hi, hi), _xy(hi, lo)], axis=-2)
        cells = shapely.polygons(quads.reshape(-1, 4, 2))
        bad = ~shapely.is_valid(cells)
        if bad.any():  # a strongly distorted cell: keep its area-carrying part
            cells[bad] = shapely.make_valid(cells[bad])
        self.cells = cells
        outer = np.concatenate(
            [
                _xy(0, slice(None)),
                _xy(slice(1, None), -1),
                _xy(-1, slice(-2, None, -1)),
                _xy(slice(-2, 0, -1), 0),
            ]
        )
        extent = shapely.Polygon(outer)
        self.extent = extent if extent.is_valid else shapely.union_all(cells)
        self.coords = {
            "lat": (dims, lat_arr, lat_attrs),
            "lon": (dims, lon_arr, lon_attrs),
        }
        # Keep 1-D index coordinates of the grid's dims (e.g. projected x, y), if given.
        for src in (lat, lon):
            coords = getattr(src, "coords", None)
            if coords is None:
                continue
            for d in dims:
                if d in coords and d not in self.coords and coords[d].ndim == 1:
                    self.coords[d] = (d, np.asarray(coords[d].values), dict(coords[d].attrs))

    def describe(self) -> str:
        lon_min, lat_min, lon_max, lat_max = self.extent.bounds
        return f"lat {lat_min:.4f}..{lat_max:.4f}, lon {lon_min:.4f}..{lon_max:.4f}"


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


def cell_area_km2(lat: Any, lon: Any) -> xr.DataArray:
    """Area in km² of each grid cell, on an equal-area projection.

    Parameters
    ----------
    lat, lon : array-like or xarray.DataArray
        1-D cell centres of a regular/rectilinear grid, or 2-D centres of a curvilinear grid
        (cells bounded as in :func:`overlap_weights`).

    Returns
    -------
    xarray.DataArray
        ``cell_area`` with dims ``("lat", "lon")`` (1-D input) or the 2-D coordinates' dims
        (``("y", "x")`` for plain arrays), with ``lat``/``lon`` as coordinates.

    Examples
    --------
    >>> a = cell_area_km2([39.0, 39.1], [110.0, 110.1])
    >>> round(float(a[0, 0]), 1)
    96.2
    """
    grid = _Grid(lat, lon)
    lon_min, lat_min, lon_max, lat_max = grid.extent.bounds
    centre = ((lon_min + lon_max) / 2, (lat_min + lat_max) / 2)
    areas = np.atleast_1d(equal_area_km2(grid.cells, centre)).reshape(grid.shape)
    return xr.DataArray(
        areas,
        dims=grid.dims,
        coords=grid.coords,
        name="cell_area",
        attrs={"long_name": "grid cell area (equal-area projection)", "units": "km2"},
    )


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
        Cell-centre coordinates in degrees (longitudes in the same −180…180 convention as the
        jurisdiction). Either 1-D (regular or rectilinear grid, either order): cells are
        bounded by the midpoints between neighbouring values, edge cells extend by half a
        spacing. Or 2-D of the same shape (curvilinear grid; dims taken from a DataArray,
        ``("y", "x")`` for plain arrays): each cell is the quadrilateral whose corners are the
        means of the four neighbouring centres, extrapolated linearly at the grid's edges.
    allow_partial : bool, default False
        When False, a unit reaching outside the grid raises :class:`~cityops.errors.InputError`
        (the grid must cover the jurisdiction). When True its weights are still fractions of
        the whole unit's area, so they sum to the covered share (< 1).

    Returns
    -------
    xarray.DataArray
        ``overlap_weight`` with dims ``("unit", "lat", "lon")`` (1-D input) or
        ``("unit", <ydim>, <xdim>)`` with the 2-D ``lat``/``lon`` as coordinates (curvilinear
        input), and coordinate ``unit`` = unit codes (all units, in file order; also
        ``name_zh`` and ``has_geometry`` along ``unit``). Values are
        ``area(cell ∩ unit) / area(unit)`` on an equal-area projection: each unit with
        geometry sums to 1 (within 1e-9); units without geometry are all 0. A unit smaller
        than a cell gets weight 1 in the cell holding it.

    Raises
    ------
    InputError
        Coordinates not strictly monotonic (1-D), fewer than 2 values (2 x 2 for 2-D),
        non-finite values, lat and lon of different shapes, or a unit outside the grid
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
    return sparse_overlap_weights(
        jurisdiction, lat, lon, allow_partial=allow_partial
    ).to_dataarray()


class SparseWeights:
    """Overlap weights as a sparse ``(unit, cell)`` matrix: what :func:`overlap_weights`
    returns densely, without storing the zeros (a county's towns or a province's 1,000
    units on a large grid). Built by :func:`sparse_overlap_weights` or
    :meth:`from_dataarray`; :func:`cityops.geo.risk.town_hazards` aggregates with it in a
    few sparse passes whatever the number of units.

    Attributes
    ----------
    matrix : scipy.sparse.csr_matrix
        ``(n_units, n_cells)`` weights, cells flattened in C order over ``dims``.
    units, names_zh : tuple of str
        Unit codes and names, in jurisdiction order.
    has_geometry : numpy.ndarray of bool
    dims : (str, str)
        Grid dimensions (``("lat", "lon")`` or a curvilinear grid's own).
    shape : (int, int)
    coords : dict
        Grid coordinates, as ``overlap_weights`` attaches them.
    """

    def __init__(self, matrix, units, names_zh, has_geometry, dims, shape, coords, attrs, grid):
        self.matrix = matrix.tocsr()
        self.units = tuple(units)
        self.names_zh = tuple(names_zh)
        self.has_geometry = np.asarray(has_geometry, dtype=bool)
        self.dims = tuple(dims)
        self.shape = tuple(shape)
        self.coords = coords
        self.attrs = attrs
        self._grid = grid
        self._cell_km2: np.ndarray | None = None

    @classmethod
    def from_dataarray(cls, weights: xr.DataArray) -> SparseWeights:
        """From the dense result of :func:`overlap_weights` (or a selection of its units)."""
        from scipy import sparse

        spatial = tuple(d for d in weights.dims if d != "unit")
        w = weights.transpose("unit", *spatial)
        shape = tuple(w.sizes[d] for d in spatial)
        matrix = sparse.csr_matrix(np.asarray(w.values, dtype=float).reshape(w.sizes["unit"], -1))
        coords = {}
        for name in ("lat", "lon", *spatial):
            if name in w.coords and name not in coords:
                c = w.coords[name]
                coords[name] = (c.dims, np.asarray(c.values), dict(c.attrs))
        codes = [str(c) for c in w["unit"].values]
        names = list(w["name_zh"].values) if "name_zh" in w.coords else codes
        geom = (
            np.asarray(w["has_geometry"].values, dtype=bool)
            if "has_geometry" in w.coords
            else np.ones(len(codes), bool)
        )
        return cls(matrix, codes, names, geom, spatial, shape, coords, dict(w.attrs), None)

    @property
    def n_cells(self) -> int:
        return int(np.prod(self.shape))

    def cell_km2(self) -> np.ndarray:
        """Equal-area km² of each cell (flattened; computed for cells with a weight only,
        0 elsewhere), as :func:`cell_area_km2` gives them."""
        if self._cell_km2 is None:
            grid = self._grid_cells()
            used = np.unique(self.matrix.indices)
            lon_min, lat_min, lon_max, lat_max = grid.extent.bounds
            centre = ((lon_min + lon_max) / 2, (lat_min + lat_max) / 2)
            areas = np.zeros(self.n_cells)
            if used.size:
                areas[used] = np.atleast_1d(equal_area_km2(grid.cells[used], centre))
            self._cell_km2 = areas
        return self._cell_km2

    def _grid_cells(self) -> _Grid:
        if self._grid is None:
            lat = xr.DataArray(self.coords["lat"][1], dims=self.coords["lat"][0])
            lon = xr.DataArray(self.coords["lon"][1], dims=self.coords["lon"][0])
            self._grid = _Grid(
                lat.values if lat.ndim == 1 else lat, lon.values if lon.ndim == 1 else lon
            )
        return self._grid

    def cells_at(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Flat index of the cell holding each point (``-1`` outside the grid): the cell
        whose bounds contain it, as the weights bound cells (first one on a shared edge)."""
        boxes = self._grid_cells().cells
        tree = shapely.STRtree(boxes)
        points = shapely.points(np.asarray(lon, float), np.asarray(lat, float))
        out = np.full(len(points), -1, dtype=np.int64)
        pairs = tree.query(points, predicate="intersects")
        if pairs.size:
            pairs = pairs[:, np.lexsort((pairs[1], pairs[0]))]  # lowest cell index first
            first = np.unique(pairs[0], return_index=True)[1]
            out[pairs[0][first]] = pairs[1][first]
        return out

    def select(self, keep: np.ndarray) -> SparseWeights:
        """The units where ``keep`` (bool per unit) is True."""
        keep = np.asarray(keep, dtype=bool)
        out = SparseWeights(
            self.matrix[np.flatnonzero(keep)],
            [u for u, k in zip(self.units, keep, strict=True) if k],
            [n for n, k in zip(self.names_zh, keep, strict=True) if k],
            self.has_geometry[keep],
            self.dims, self.shape, self.coords, self.attrs, self._grid,
        )  # fmt: skip
        out._cell_km2 = self._cell_km2
        return out

    def to_dataarray(self) -> xr.DataArray:
        """The dense ``overlap_weight`` DataArray of :func:`overlap_weights`."""
        return xr.DataArray(
            self.matrix.toarray().reshape(len(self.units), *self.shape),
            dims=("unit", *self.dims),
            coords={
                "unit": ("unit", list(self.units), {"long_name": "unit code"}),
                "name_zh": ("unit", list(self.names_zh), {"long_name": "unit name"}),
                "has_geometry": ("unit", list(self.has_geometry)),
                **self.coords,
            },
            name="overlap_weight",
            attrs=dict(self.attrs),
        )


def sparse_overlap_weights(
    jurisdiction: Jurisdiction,
    lat: Any,
    lon: Any,
    *,
    allow_partial: bool = False,
) -> SparseWeights:
    """:func:`overlap_weights` as a :class:`SparseWeights` matrix (same values, same
    checks), for many units or large grids: memory and time grow with the cells the units
    cover, not with units x grid cells."""
    from scipy import sparse

    grid = _Grid(lat, lon)
    boxes = grid.cells
    tree = shapely.STRtree(boxes)
    extent = grid.extent
    centre = jurisdiction.centre

    rows, cols, vals = [], [], []
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
                f"overlap_weights: the grid ({grid.describe()}) covers only "
                f"{100 * (1 - area_out / total):.1f} % of unit {unit}; "
                f"the grid must cover the jurisdiction's bounds {jurisdiction.bounds}"
            )
        rows.append(np.full(cand.size, k))
        cols.append(cand)
        vals.append(areas / total)

    units = jurisdiction.units
    n = len(units)
    if rows:
        r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    else:
        r = c = np.zeros(0, dtype=np.int64)
        v = np.zeros(0)
    matrix = sparse.csr_matrix((v, (r, c)), shape=(n, boxes.size))
    matrix.eliminate_zeros()  # cells touching a unit only along an edge: weight 0
    curvilinear = (
        "; curvilinear grid: cell corners are the means of the 4 neighbouring centres"
        if grid.curvilinear
        else ""
    )
    attrs = {
        "long_name": "fraction of the unit's area in the grid cell",
        "units": "1",
        "description": (
            "area(cell ∩ unit) / area(unit) on a Lambert azimuthal equal-area projection "
            f"centred at lon {centre[0]}, lat {centre[1]}; cells are bounded by the "
            "midpoints between grid coordinates (edge cells extend half a spacing"
            f"{curvilinear}); the weights of a unit with geometry sum to 1, a unit without "
            "geometry is all 0"
        ),
        "jurisdiction": jurisdiction.name,
    }
    return SparseWeights(
        matrix,
        [u.code for u in units],
        [u.name_zh for u in units],
        [u.has_geometry for u in units],
        grid.dims,
        grid.shape,
        grid.coords,
        attrs,
        grid,
    )


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
