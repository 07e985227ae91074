"""Grid-cell overlap weights (cityops.geo.masks)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import shapely
import xarray as xr
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from cityops.errors import InputError
from cityops.geo import jurisdiction as jurisdiction_module
from cityops.geo import load_jurisdiction, overlap_weights, touching
from cityops.geo.jurisdiction import Jurisdiction, Unit, equal_area_km2
from cityops.geo.masks import (
    _WEIGHTS_CACHE,
    WEIGHTS_CACHE_SIZE,
    cell_area_km2,
    cell_edges,
    sparse_overlap_weights,
)

SHARED_GEO = Path(__file__).resolve().parents[2] / "shared" / "geo"
SEAT = (109.7496, 39.5812)  # 阿勒腾席热镇, banner seat

#: Agreement (absolute, per unit and cell) asked of the exactextract path: with the exact
#: weights always, with the shapely path for town-sized units. Both compute
#: area(cell ∩ unit) / area(unit); they differ by how they follow straight lon/lat edges
#: between added vertices, a few m² per edge, which the shapely path's 0.01° spacing makes
#: up to 2e-5 of a unit of a few km² (masks._FAST_DENSIFY_DEG).
FAST_ATOL = 1e-6
#: Vertex spacing (degrees) at which the shapely path's weights are exact for these tests:
#: 50 x finer than its own, so its edge error is 2,500 x smaller.
EXACT_DENSIFY_DEG = 0.0002

# A 60 x 45 grid over the banner (about 2.6 km x 2.5 km).
LON = np.linspace(108.95, 110.50, 60)
LAT = np.linspace(38.85, 39.85, 45)


@pytest.fixture(scope="module")
def ejh():
    return load_jurisdiction("ejin-horo")


@pytest.fixture(scope="module")
def weights(ejh):
    return overlap_weights(ejh, LAT, LON)


def write_jurisdiction(folder: Path, units: list[tuple[str, str, shapely.Geometry]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    meta = {
        "name": folder.name,
        "code": "999999",
        "name_zh": "测试旗",
        "timezone": "Asia/Shanghai",
        "files": {"units": "units.geojson"},
        "sources": ["synthetic test data"],
    }
    (folder / "jurisdiction.yaml").write_text(yaml.safe_dump(meta, allow_unicode=True))
    features = [
        {
            "type": "Feature",
            "properties": {"code": code, "name_zh": name, "kind": "town"},
            "geometry": None if geom is None else shapely.geometry.mapping(geom),
        }
        for code, name, geom in units
    ]
    collection = {"type": "FeatureCollection", "features": features}
    (folder / "units.geojson").write_text(json.dumps(collection, ensure_ascii=False))
    return folder


def test_shape_coords_and_metadata(ejh, weights):
    assert weights.dims == ("unit", "lat", "lon")
    assert weights.shape == (10, 45, 60)
    assert list(weights["unit"].values) == list(ejh.codes)
    np.testing.assert_array_equal(weights["lat"], LAT)
    assert weights.attrs["units"] == "1"
    assert weights.attrs["long_name"] and weights.attrs["description"]
    assert weights["lat"].attrs["units"] == "degrees_north"
    assert float(weights.min()) >= 0.0 and float(weights.max()) <= 1.0


def test_each_unit_sums_to_one_and_no_geometry_is_zero(ejh, weights):
    sums = weights.sum(("lat", "lon"))
    for unit in ejh.units:
        expected = 1.0 if unit.has_geometry else 0.0
        assert float(sums.sel(unit=unit.code)) == pytest.approx(expected, abs=1e-9), unit
    assert float(abs(weights.sel(unit="150627L01")).max()) == 0.0
    assert not bool(touching(weights).sel(unit="150627L01").any())


def test_weights_times_area_give_overlap_areas(ejh, weights):
    # The cells of the whole grid hold every unit's area once: sum over units of
    # weight * unit area = area of the banner in the cell, never more than the cell.
    areas = xr.DataArray(ejh.units_frame()["area_km2"].fillna(0).to_numpy(), dims="unit")
    in_cell = (weights * areas).sum("unit")
    assert float(in_cell.sum()) == pytest.approx(ejh.area_km2(), rel=1e-3)
    cell_km2 = 111.2 * (LON[1] - LON[0]) * np.cos(np.deg2rad(39.85)) * 111.2 * (LAT[1] - LAT[0])
    assert float(in_cell.max()) <= cell_km2 * 1.03


def test_cell_at_the_banner_seat_belongs_to_altan_xiret(ejh, weights):
    cell = weights.sel(lon=SEAT[0], lat=SEAT[1], method="nearest")
    assert str(cell.idxmax("unit").values) == "150627100"
    areas = xr.DataArray(ejh.units_frame()["area_km2"].fillna(0).to_numpy(), dims="unit")
    assert str((cell * areas).idxmax("unit").values) == "150627100"


def test_touching_cells(weights):
    mask = touching(weights)
    assert mask.dtype == bool and mask.dims == weights.dims
    assert bool(mask.sel(unit="150627100").sel(lon=SEAT[0], lat=SEAT[1], method="nearest"))
    # A far corner of the grid (north-east, in Dongsheng) touches no unit.
    assert not bool(mask.isel(lat=-1, lon=-1).any())


def test_latitude_order_does_not_matter(ejh, weights):
    flipped = overlap_weights(ejh, LAT[::-1], LON)
    xr.testing.assert_allclose(flipped.sortby("lat"), weights, atol=1e-12)


def test_fast_enough(ejh):
    overlap_weights(ejh, LAT, LON)  # warm caches (projection set-up)
    start = time.perf_counter()
    overlap_weights(ejh, LAT, LON)
    assert time.perf_counter() - start < 1.0


def test_tiny_unit_gets_weight_one_in_its_cell(tmp_path):
    big = shapely.box(110.0, 39.0, 110.5, 39.5)
    tiny = shapely.box(110.21, 39.31, 110.22, 39.32)  # ~1 km², inside the cell at 110.2, 39.3
    j = load_jurisdiction(
        write_jurisdiction(tmp_path / "tiny", [("1", "大", big), ("2", "小", tiny)])
    )
    lon = np.arange(109.9, 110.61, 0.1)
    lat = np.arange(38.9, 39.61, 0.1)
    w = overlap_weights(j, lat, lon)
    tiny_w = w.sel(unit="2")
    assert float(tiny_w.sel(lon=110.2, lat=39.3, method="nearest")) == pytest.approx(1.0, abs=1e-12)
    assert int(touching(w).sel(unit="2").sum()) == 1
    # The big box covers 5 x 5 whole cells plus half cells at its edges (cell edges at .05).
    assert float(w.sel(unit="1").sum()) == pytest.approx(1.0, abs=1e-9)
    assert int(touching(w).sel(unit="1").sum()) == 6 * 6


def test_unit_outside_the_grid_is_an_input_error(ejh):
    with pytest.raises(InputError, match=r"covers only .* of unit"):
        overlap_weights(ejh, np.linspace(39.3, 39.85, 12), LON)
    partial = overlap_weights(ejh, np.linspace(39.3, 39.85, 12), LON, allow_partial=True)
    share = float(partial.sel(unit="150627101").sum())
    assert 0.0 < share < 1.0


def test_2d_meshgrid_of_a_regular_grid_gives_the_regular_weights(ejh, weights):
    # Was "curvilinear grid not implemented yet": 2-D lat/lon are now supported.
    lon2d, lat2d = np.meshgrid(LON, LAT)
    w2 = overlap_weights(ejh, lat2d, lon2d)
    assert w2.dims == ("unit", "y", "x")
    # The same polygon path on the same cells: equal to rounding.
    np.testing.assert_allclose(
        w2.values, overlap_weights(ejh, LAT, LON, method="shapely").values, atol=1e-9
    )
    # The 1-D default (exactextract): the same areas within the fast path's tolerance.
    np.testing.assert_allclose(w2.values, weights.values, atol=FAST_ATOL)


@pytest.mark.parametrize("bad", [[39.5], [39.0, 39.0, 39.1], [39.0, np.nan, 39.2]])
def test_bad_coordinates_are_input_errors(ejh, bad):
    with pytest.raises(InputError, match="lat"):
        overlap_weights(ejh, bad, LON)


def test_cell_edges_either_order():
    np.testing.assert_allclose(cell_edges([1.0, 2.0, 4.0]), [0.5, 1.5, 3.0, 5.0])
    np.testing.assert_allclose(cell_edges([4.0, 2.0, 1.0]), [5.0, 3.0, 1.5, 0.5])


@settings(max_examples=15, deadline=None)
@given(
    step=st.floats(0.02, 0.4),
    lon_shift=st.floats(0.0, 1.0),
    lat_shift=st.floats(0.0, 1.0),
)
def test_weights_sum_to_one_on_any_covering_grid(ejh, step, lon_shift, lat_shift):
    lon_min, lat_min, lon_max, lat_max = ejh.bounds
    lon = np.arange(lon_min - step * (0.5 + lon_shift), lon_max + step, step)
    lat = np.arange(lat_min - step * (0.5 + lat_shift), lat_max + step, step)
    w = overlap_weights(ejh, lat, lon)
    sums = w.sum(("lat", "lon")).values
    np.testing.assert_allclose(sums, [1.0] * 9 + [0.0], atol=1e-9)


@pytest.mark.skipif(not SHARED_GEO.is_dir(), reason=f"{SHARED_GEO} (real outlines) is absent")
def test_real_multipolygon_weights_sum_to_one(tmp_path):
    real = shapely.from_geojson((SHARED_GEO / "150627_wgs84_derived.geojson").read_text())
    (geom,) = shapely.get_parts(real)  # the file's single MultiPolygon
    j = load_jurisdiction(write_jurisdiction(tmp_path / "real", [("150627", "伊金霍洛旗", geom)]))
    w = overlap_weights(j, LAT, LON)
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-9)
    assert int(touching(w).sum()) > 300


# ---- curvilinear grids ---------------------------------------------------------------------
def _rotated(step=0.03, degrees=7.0, nx=66, ny=46, lon0=109.7, lat0=39.35):
    th = np.deg2rad(degrees)
    i, j = np.meshgrid(np.arange(nx) - (nx - 1) / 2, np.arange(ny) - (ny - 1) / 2)
    lon = lon0 + step * (i * np.cos(th) - j * np.sin(th))
    lat = lat0 + step * (i * np.sin(th) + j * np.cos(th))
    return lat, lon


def test_curvilinear_weights_keep_the_grid_dims_and_sum_to_one(ejh):
    lat2, lon2 = _rotated()
    lat = xr.DataArray(lat2, dims=("row", "col"), coords={"row": np.arange(46)})
    lon = xr.DataArray(lon2, dims=("row", "col"))
    w = overlap_weights(ejh, lat, lon)
    assert w.dims == ("unit", "row", "col")
    assert w["lat"].dims == ("row", "col") and w["lon"].dims == ("row", "col")
    np.testing.assert_array_equal(w["lat"].values, lat2)
    np.testing.assert_array_equal(w["row"].values, np.arange(46))
    np.testing.assert_allclose(w.sum(("row", "col")).values, [1.0] * 9 + [0.0], atol=1e-9)
    # The cell holding the banner seat belongs mostly to 阿勒腾席热镇.
    d2 = (lon2 - SEAT[0]) ** 2 + (lat2 - SEAT[1]) ** 2
    r, c = np.unravel_index(np.argmin(d2), d2.shape)
    assert str(w.isel(row=r, col=c).idxmax("unit").values) == "150627100"


def test_curvilinear_weights_match_regular_ones_in_aggregate(ejh, weights):
    # Area-weighted mean of a smooth field: same on a rotated and on a regular grid.
    lat2, lon2 = _rotated(step=0.02, nx=100, ny=70)
    w2 = overlap_weights(ejh, lat2, lon2)

    def f(lon, lat):
        return np.sin(3 * lon) + np.cos(5 * lat)

    lon1, lat1 = np.meshgrid(LON, LAT)
    m1 = (weights * f(lon1, lat1)).sum(("lat", "lon"))
    m2 = (w2 * f(lon2, lat2)).sum(("y", "x"))
    np.testing.assert_allclose(m2.values, m1.values, atol=0.02)


def test_curvilinear_grid_not_covering_is_an_input_error(ejh):
    lat2, lon2 = _rotated(nx=20, ny=20)
    with pytest.raises(InputError, match="covers only"):
        overlap_weights(ejh, lat2, lon2)
    with pytest.raises(InputError, match="differ in shape"):
        overlap_weights(ejh, lat2, lon2[:, :-1])
    with pytest.raises(InputError, match="lat is 2-D but lon is 1-D"):
        overlap_weights(ejh, lat2, LON)


def test_cell_area_km2_regular_and_curvilinear():
    from cityops.geo.masks import cell_area_km2

    a = cell_area_km2(LAT, LON)
    assert a.dims == ("lat", "lon") and a.attrs["units"] == "km2"
    dlat, dlon = LAT[1] - LAT[0], LON[1] - LON[0]
    approx = 111.195**2 * dlat * dlon * np.cos(np.deg2rad(LAT))
    np.testing.assert_allclose(a.values[:, 5], approx, rtol=0.01)
    lon2, lat2 = np.meshgrid(LON, LAT)
    # Projected quadrilaterals (2-D) against the closed-form ellipsoidal box areas (1-D).
    np.testing.assert_allclose(cell_area_km2(lat2, lon2).values, a.values, rtol=1e-8)
    r_lat, r_lon = _rotated(step=0.03, degrees=20.0)
    ar = cell_area_km2(r_lat, r_lon)
    assert ar.dims == ("y", "x")
    expected = 111.195**2 * 0.03**2 * np.cos(np.deg2rad(r_lat))
    np.testing.assert_allclose(ar.values[1:-1, 1:-1], expected[1:-1, 1:-1], rtol=0.01)


# ---- the exactextract path against the polygon (shapely) path, and the cache -------------
def _jurisdiction(geoms: list, name: str = "synthetic") -> Jurisdiction:
    """A jurisdiction of the given polygons (None: a unit without geometry), built in memory."""
    parts = [g for g in geoms if g is not None]
    units = tuple(
        Unit(code=f"U{k:03d}", name_zh=f"单元{k}", name_en=f"unit {k}", kind="town", geometry=g)
        for k, g in enumerate(geoms)
    )
    return Jurisdiction(
        name=name,
        code="999999",
        name_zh="测试旗",
        name_en="test banner",
        timezone="Asia/Shanghai",
        outline=shapely.union_all(parts).envelope,
        units=units,
        path=Path("."),
    )


def _random_polygons(
    rng: np.random.Generator,
    n: int,
    lon0: float,
    lat0: float,
    span: float,
    *,
    smallest: float = -1.7,
):
    """Star-shaped polygons with radii from ``span * 10**smallest`` to ``span / 5``, one with
    a hole, one a two-part multipolygon."""
    out = []
    for k in range(n):
        cx, cy = lon0 + rng.uniform(0.1, 0.9) * span, lat0 + rng.uniform(0.1, 0.9) * span
        size = span * 10 ** rng.uniform(smallest, -0.7)
        m = int(rng.integers(3, 14))
        ang = np.sort(rng.uniform(0, 2 * np.pi, m))
        rad = size * rng.uniform(0.3, 1.0, m)
        poly = shapely.Polygon(np.column_stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)]))
        poly = shapely.make_valid(poly) if not poly.is_valid else poly
        if k == 0:
            poly = (
                shapely.Point(cx, cy)
                .buffer(size)
                .difference(shapely.Point(cx, cy).buffer(size / 3))
            )
        if k == 1:
            poly = shapely.MultiPolygon(
                [
                    shapely.box(cx, cy, cx + size, cy + size),
                    shapely.box(cx - 2 * size, cy, cx - size, cy + size / 2),
                ]
            )
        out.append(poly)
    return out


def _both(j, lat, lon, **kw):
    fast = sparse_overlap_weights(j, lat, lon, method="exactextract", cache=False, **kw)
    ref = sparse_overlap_weights(j, lat, lon, method="shapely", cache=False, **kw)
    return fast, ref


def _assert_same_weights(fast, ref):
    assert fast.shape == ref.shape and fast.units == ref.units
    assert abs(fast.matrix - ref.matrix).max() <= FAST_ATOL
    np.testing.assert_allclose(fast.matrix.sum(axis=1), ref.matrix.sum(axis=1), atol=1e-9)


def _exact(j, lat, lon, **kw):
    """The shapely path with vertices every EXACT_DENSIFY_DEG: the exact weights."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(jurisdiction_module, "_DENSIFY_DEG", EXACT_DENSIFY_DEG)
        return sparse_overlap_weights(j, lat, lon, method="shapely", cache=False, **kw)


@settings(max_examples=8, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    step=st.floats(0.01, 0.2),
    lat_descending=st.booleans(),
    lon_descending=st.booleans(),
)
def test_exactextract_path_gives_the_exact_weights(seed, step, lat_descending, lon_descending):
    # Polygons from 100 m to 40 km across (holes, two parts), anywhere from 20° to 55° N.
    rng = np.random.default_rng(seed)
    lon0, lat0 = 109.0 + rng.uniform(-5, 5), 39.0 + rng.uniform(-20, 15)
    span = 1.0
    geoms = _random_polygons(rng, 12, lon0, lat0, span, smallest=-3.0)
    j = _jurisdiction([*geoms, None])
    margin = 0.5 * span  # the largest polygons reach 0.4 spans beyond their centres
    lon = np.arange(lon0 - margin, lon0 + span + margin, step)
    lat = np.arange(lat0 - margin, lat0 + span + margin, step)
    lat = lat[::-1] if lat_descending else lat
    lon = lon[::-1] if lon_descending else lon
    fast = sparse_overlap_weights(j, lat, lon, method="exactextract", cache=False)
    _assert_same_weights(fast, _exact(j, lat, lon))
    sums = np.asarray(fast.matrix.sum(axis=1)).ravel()
    np.testing.assert_allclose(sums, [1.0] * 12 + [0.0], atol=1e-9)  # each unit's whole area


@pytest.mark.parametrize("seed", [0, 1])
def test_exactextract_path_equals_the_polygon_path_on_towns(seed):
    # 40 Voronoi "towns" (about 200 km² each) tiling 1° x 1° at 0.01°, as in the benchmark.
    rng = np.random.default_rng(seed)
    lon0, lat0 = 109.0, 39.0 + 10 * seed
    area = shapely.box(lon0, lat0, lon0 + 1, lat0 + 1)
    seats = shapely.multipoints(rng.uniform([lon0, lat0], [lon0 + 1, lat0 + 1], (40, 2)))
    towns = [g.intersection(area) for g in shapely.get_parts(shapely.voronoi_polygons(seats))]
    j = _jurisdiction(towns)
    lon = np.round(lon0 - 0.02 + 0.01 * np.arange(105), 6)
    lat = np.round(lat0 - 0.02 + 0.01 * np.arange(105), 6)
    _assert_same_weights(*_both(j, lat, lon))


def test_rectilinear_grid_and_the_banner(ejh):
    lon = np.cumsum(np.r_[108.9, np.random.default_rng(3).uniform(0.01, 0.06, 50)])
    lat = np.cumsum(np.r_[38.8, np.random.default_rng(4).uniform(0.01, 0.06, 30)])[::-1]
    _assert_same_weights(*_both(ejh, lat, lon))


def test_descending_latitude_gives_the_same_weights_flipped(ejh, weights):
    down = sparse_overlap_weights(ejh, LAT[::-1], LON[::-1], cache=False).to_dataarray()
    # The same cells, so bit-for-bit the same weights once sorted back.
    xr.testing.assert_equal(down.sortby("lat").sortby("lon"), weights)


def test_tiny_unit_across_a_cell_corner():
    # A ~100 m square centred on the corner of four 0.1° cells: a quarter in each.
    c = (110.25, 39.35)
    tiny = shapely.box(c[0] - 0.0005, c[1] - 0.0005, c[0] + 0.0005, c[1] + 0.0005)
    big = shapely.box(110.0, 39.0, 110.5, 39.5)
    j = _jurisdiction([big, tiny])
    lon, lat = np.arange(109.9, 110.61, 0.1), np.arange(38.9, 39.61, 0.1)
    fast, ref = _both(j, lat, lon)
    _assert_same_weights(fast, ref)
    w = fast.matrix[1].toarray().reshape(fast.shape)
    assert np.count_nonzero(w) == 4
    south, north = w[np.abs(lat - 39.3) < 0.01][0], w[np.abs(lat - 39.4) < 0.01][0]
    # A quarter in each cell; the southern quarters are a little larger (longer parallels).
    np.testing.assert_allclose(w[w > 0], 0.25, rtol=1e-5)
    assert np.all(south[south > 0] > north[north > 0])
    assert w.sum() == pytest.approx(1.0, abs=1e-12)


def test_unit_partly_outside_the_grid_same_share_and_same_error():
    inside = shapely.box(110.0, 39.0, 110.3, 39.3)
    across = shapely.box(110.2, 39.2, 110.9, 39.4)  # reaches east of the grid
    j = _jurisdiction([inside, across])
    lon, lat = np.arange(109.95, 110.51, 0.05), np.arange(38.95, 39.51, 0.05)
    for method in ("exactextract", "shapely"):
        with pytest.raises(InputError, match=r"covers only 4[0-9]\.[0-9] % of unit"):
            sparse_overlap_weights(j, lat, lon, method=method, cache=False)
    fast, ref = _both(j, lat, lon, allow_partial=True)
    _assert_same_weights(fast, ref)
    share = float(fast.matrix[1].sum())
    # Covered longitudes 110.2..110.525 of 110.2..110.9, at the same latitudes.
    assert share == pytest.approx(0.325 / 0.7, rel=1e-6)


def test_unit_wholly_outside_the_grid_gets_no_weight():
    j = _jurisdiction(
        [shapely.box(110.0, 39.0, 110.3, 39.3), shapely.box(120.0, 30.0, 120.1, 30.1)]
    )
    lon, lat = np.arange(109.95, 110.51, 0.05), np.arange(38.95, 39.51, 0.05)
    fast, ref = _both(j, lat, lon, allow_partial=True)
    _assert_same_weights(fast, ref)
    assert fast.matrix[1].nnz == 0


def test_exactextract_needs_a_1d_grid(ejh):
    lat2, lon2 = _rotated()
    with pytest.raises(InputError, match="needs 1-D lat and lon"):
        sparse_overlap_weights(ejh, lat2, lon2, method="exactextract")
    with pytest.raises(InputError, match="method must be one of"):
        sparse_overlap_weights(ejh, LAT, LON, method="fastest")


def test_cells_at_same_on_edges_as_the_cell_polygons(ejh):
    # Points on every cell edge, at centres and outside: the edge search of a 1-D grid picks
    # the same cell as the polygons (the lowest flat index on a shared edge).
    for lat, lon in ((LAT, LON), (LAT[::-1], LON[::-1])):
        w = sparse_overlap_weights(ejh, lat, lon, cache=False)
        px, py = np.meshgrid(
            np.r_[cell_edges(lon), lon[:5], lon.min() - 0.5],
            np.r_[cell_edges(lat), lat[:5], lat.max() + 0.5, np.nan],
        )
        px, py = px.ravel(), py.ravel()
        tree = shapely.STRtree(w._grid_cells().cells)
        expected = np.full(px.size, -1)
        for p, c in zip(*tree.query(shapely.points(px, py), predicate="intersects"), strict=True):
            expected[p] = c if expected[p] < 0 else min(expected[p], c)
        np.testing.assert_array_equal(w.cells_at(px, py), expected)


def test_closed_form_cell_areas_match_the_projected_boxes():
    # A province-sized 0.25° grid: the ellipsoid's exact box areas against the projection.
    lat, lon = np.arange(30.0, 45.0, 0.25), np.arange(100.0, 120.0, 0.25)
    exact = cell_area_km2(lat, lon).values
    ye, xe = cell_edges(lat), cell_edges(lon)
    boxes = shapely.box(xe[:-1][None, :], ye[:-1][:, None], xe[1:][None, :], ye[1:][:, None])
    projected = equal_area_km2(boxes, (110.0, 37.5))
    np.testing.assert_allclose(exact, projected, rtol=1e-8)


def test_cache_returns_the_same_weights_for_the_same_grid(ejh):
    sparse_overlap_weights.cache_clear()
    first = sparse_overlap_weights(ejh, LAT, LON)
    # Same values in a new array (and as DataArrays): the same object, no recomputation.
    assert sparse_overlap_weights(ejh, LAT.copy(), LON.copy()) is first
    # Another grid, another method, partial allowed: computed anew.
    other = sparse_overlap_weights(ejh, LAT + 0.001, LON)
    assert other is not first and other.matrix.nnz
    assert sparse_overlap_weights(ejh, LAT, LON, method="shapely") is not first
    assert sparse_overlap_weights(ejh, LAT, LON, cache=False) is not first
    # Another jurisdiction object with the same content shares the entry; other content does not.
    same = _jurisdiction([u.geometry if u.has_geometry else None for u in ejh.units])
    changed = _jurisdiction([shapely.box(109.5, 39.2, 109.6, 39.3)])
    assert sparse_overlap_weights(same, LAT, LON) is not first  # other codes and names
    assert sparse_overlap_weights(same, LAT, LON) is sparse_overlap_weights(same, LAT, LON)
    assert sparse_overlap_weights(changed, LAT, LON).matrix.shape[0] == 1


def test_cache_is_bounded(ejh):
    sparse_overlap_weights.cache_clear()
    first = sparse_overlap_weights(ejh, LAT, LON)
    for k in range(WEIGHTS_CACHE_SIZE):
        sparse_overlap_weights(ejh, LAT + 0.001 * (k + 1), LON)
    assert len(_WEIGHTS_CACHE) == WEIGHTS_CACHE_SIZE
    again = sparse_overlap_weights(ejh, LAT, LON)  # dropped: recomputed, equal
    assert again is not first
    assert abs(again.matrix - first.matrix).max() == 0.0
