"""Kangbashi District 康巴什区 (150603): sub-districts, weights, curvilinear grids, pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
import xarray as xr

from cityops.geo import load_jurisdiction, overlap_weights
from cityops.geo.risk import town_hazards
from cityops.rules import evaluate, load_rule_table
from tests.conftest import ISSUED, make_forecast

SHARED_GEO = Path(__file__).resolve().parents[2] / "shared" / "geo"
KBS = load_jurisdiction("kangbashi")
EJH = load_jurisdiction("ejin-horo")
CODES = ["150603001", "150603002", "150603003", "150603008"]
HABAGEXI = KBS.unit("150603001")
BINHE = KBS.unit("150603003")
N_HOURS = 24


def rain(lon, lat, lon0, lat0, sigma_km, hourly=(40.0, 45.0, 30.0)):
    """Hourly rain (time, *lon.shape) of a Gaussian core at (lon0, lat0), hours 10-12."""
    dx = (np.asarray(lon) - lon0) * 111.32 * np.cos(np.deg2rad(lat0))
    dy = (np.asarray(lat) - lat0) * 110.57
    core = np.exp(-(dx**2 + dy**2) / (2 * sigma_km**2))
    out = np.zeros((N_HOURS, *core.shape))
    for i, amount in enumerate(hourly):
        out[9 + i] = amount * core
    return out


def regular_forecast(lat, lon, **storm):
    lon2, lat2 = np.meshgrid(lon, lat)
    ds = make_forecast({"precip": np.zeros(N_HOURS)}, lat=lat, lon=lon)
    ds["precip"].values[:] = rain(lon2, lat2, **storm)
    return ds


def curvilinear_forecast(lat2d, lon2d, **storm):
    times = pd.date_range(ISSUED + pd.Timedelta("1h"), periods=N_HOURS, freq="h")
    return xr.Dataset(
        {"precip": (("time", "y", "x"), rain(lon2d, lat2d, **storm), {"units": "mm"})},
        coords={"time": times, "lat": (("y", "x"), lat2d), "lon": (("y", "x"), lon2d)},
        attrs={"issued": ISSUED.strftime("%Y-%m-%dT%H:%M:%SZ")},
    )


def rotated_grid(lon0, lat0, step, nx, ny, degrees):
    """2-D lat/lon of a grid of ``step``° rotated by ``degrees`` about (lon0, lat0)."""
    th = np.deg2rad(degrees)
    i, j = np.meshgrid(np.arange(nx) - (nx - 1) / 2, np.arange(ny) - (ny - 1) / 2)
    lon = lon0 + step * (i * np.cos(th) - j * np.sin(th))
    lat = lat0 + step * (i * np.sin(th) + j * np.cos(th))
    return lat, lon


def levels(table, hazard="rainstorm"):
    sub = table[table.hazard == hazard]
    return dict(zip(sub.town_code, sub.level, strict=True))


# ---- the jurisdiction -----------------------------------------------------------------------
def test_kangbashi_loads_with_its_four_subdistricts():
    assert KBS.code == "150603" and KBS.name_zh == "康巴什区"
    assert list(KBS.codes) == CODES
    assert {u.kind for u in KBS.units} == {"subdistrict"}
    assert all(u.approximate for u in KBS.units)
    kangxin = KBS.unit("康新街道")
    assert kangxin.code == "150603008" and not kangxin.has_geometry
    assert [u.has_geometry for u in KBS.units] == [True, True, True, False]
    assert KBS.unit("哈巴格希").code == "150603001"
    assert KBS.unit("青春山").code == "150603002"
    assert KBS.unit("滨河街道").code == "150603003"


def test_binhe_road_community_is_a_name_trap():
    from cityops.errors import InputError

    with pytest.raises(InputError, match="乌兰木伦镇"):
        KBS.unit("滨河路社区")


def test_outline_area_and_tiling():
    area = KBS.area_km2()
    assert 340.0 <= area <= 400.0
    geoms = [u.geometry for u in KBS.units if u.has_geometry]
    parts = sum(KBS.area_km2(g) for g in geoms)
    assert parts == pytest.approx(area, rel=0.01)
    union = shapely.union_all(geoms)
    assert KBS.area_km2(union) == pytest.approx(area, rel=0.01)
    assert KBS.area_km2(shapely.symmetric_difference(union, KBS.outline)) < 0.01 * area
    for a, b in [(0, 1), (0, 2), (1, 2)]:  # no overlaps
        assert KBS.area_km2(shapely.intersection(geoms[a], geoms[b])) < 0.01
    for u in KBS.units[:3]:  # each point lies in its own cell
        assert u.geometry.covers(shapely.Point(u.seat_lon, u.seat_lat))


@pytest.mark.skipif(not SHARED_GEO.is_dir(), reason=f"{SHARED_GEO} (real outlines) is absent")
def test_approximate_outline_matches_the_real_one():
    real = shapely.get_parts(
        shapely.from_geojson((SHARED_GEO / "150603_wgs84_derived.geojson").read_text())
    )[0]
    assert KBS.area_km2(real) == pytest.approx(KBS.area_km2(), rel=0.03)
    assert (
        KBS.area_km2(shapely.symmetric_difference(real, KBS.outline)) < 0.10 * KBS.area_km2()
    )  # 0.01° simplification: about 7 %


def test_weights_of_every_unit_with_geometry_sum_to_one():
    lat = np.arange(39.49, 39.79, 0.01)
    lon = np.arange(109.58, 110.05, 0.01)
    w = overlap_weights(KBS, lat, lon)
    np.testing.assert_allclose(w.sum(("lat", "lon")).values, [1, 1, 1, 0], atol=1e-9)
    lat2, lon2 = rotated_grid(109.815, 39.636, 0.01, 60, 40, 10.0)
    w2 = overlap_weights(KBS, lat2, lon2)
    assert w2.dims == ("unit", "y", "x")
    np.testing.assert_allclose(w2.sum(("y", "x")).values, [1, 1, 1, 0], atol=1e-9)


# ---- curvilinear grids in the town aggregation ---------------------------------------------
def test_rotated_grid_gives_the_regular_grids_town_levels():
    storm = {"lon0": 109.7496, "lat0": 39.5812, "sigma_km": 6.5}  # over 阿勒腾席热镇
    lat = np.round(np.arange(38.85, 39.90, 0.03), 3)
    lon = np.round(np.arange(108.95, 110.50, 0.03), 3)
    regular = regular_forecast(lat, lon, **storm)
    lat2, lon2 = rotated_grid(109.7, 39.35, 0.03, 66, 46, 7.0)
    curvi = curvilinear_forecast(lat2, lon2, **storm)
    rules = load_rule_table("national")
    t_reg = town_hazards(evaluate(regular, rules), EJH)
    t_cur = town_hazards(evaluate(curvi, rules), EJH)
    assert levels(t_cur) == levels(t_reg)
    assert levels(t_reg)["150627100"] == 4 and levels(t_reg)["150627103"] == 0
    assert list(t_cur.town_code.unique()) == list(EJH.codes)
    assert not t_cur.set_index("town_code").loc["150627L01", "evaluated"].any()


def test_small_storm_at_habagexi_reaches_it_and_not_binhe():
    # 1 km grid over the district, a core of sigma 3 km on the 哈巴格希街道 point.
    lat = np.arange(39.50, 39.775, 0.009)
    lon = np.arange(109.59, 110.04, 0.0117)
    ds = regular_forecast(lat, lon, lon0=HABAGEXI.seat_lon, lat0=HABAGEXI.seat_lat, sigma_km=3.0)
    table = town_hazards(evaluate(ds, load_rule_table("national")), KBS)
    lv = levels(table)
    assert lv[HABAGEXI.code] >= 3
    assert lv[BINHE.code] == 0
    sub = table[table.hazard == "rainstorm"].set_index("town_code")
    assert not bool(sub.loc["150603008", "evaluated"])


# ---- end to end ------------------------------------------------------------------------------
def test_pipeline_assess_on_kangbashi(tmp_path):
    from cityops.pipeline import assess
    from cityops.scenarios import write_scenario

    path = write_scenario("july-rainstorm", tmp_path / "fc.nc")
    result = assess(path, jurisdiction="kangbashi")
    table = result.table
    hazards = list(result.levels.hazards)
    assert set(table.town_code) == set(CODES)
    assert len(table) == len(CODES) * len(hazards)
    for code in CODES:
        assert sorted(table[table.town_code == code].hazard) == sorted(hazards)
    kangxin = table[table.town_code == "150603008"]
    assert not kangxin.evaluated.astype(bool).any()
    assert table[table.town_code != "150603008"].evaluated.astype(bool).any()
