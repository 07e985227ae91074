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
from cityops.geo import load_jurisdiction, overlap_weights, touching
from cityops.geo.masks import cell_edges

SHARED_GEO = Path(__file__).resolve().parents[2] / "shared" / "geo"
SEAT = (109.7496, 39.5812)  # 阿勒腾席热镇, banner seat

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
    np.testing.assert_allclose(w2.values, weights.values, atol=1e-9)


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
    np.testing.assert_allclose(cell_area_km2(lat2, lon2).values, a.values, rtol=1e-9)
    r_lat, r_lon = _rotated(step=0.03, degrees=20.0)
    ar = cell_area_km2(r_lat, r_lon)
    assert ar.dims == ("y", "x")
    expected = 111.195**2 * 0.03**2 * np.cos(np.deg2rad(r_lat))
    np.testing.assert_allclose(ar.values[1:-1, 1:-1], expected[1:-1, 1:-1], rtol=0.01)
