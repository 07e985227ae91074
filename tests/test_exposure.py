"""Exposure registry: asset triggers, register validation, geological-hazard risk."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from cityops.errors import DataFileError
from cityops.geo import load_jurisdiction
from cityops.geo.exposure import (
    evaluate_assets,
    load_assets,
    load_geohazard_zones,
    load_lifelines,
)
from cityops.geo.geohazard import geohazard_risk, load_geohazard_points

JUR = load_jurisdiction("ejin-horo")
LAT = np.round(np.arange(38.90, 39.85, 0.05), 2)
LON = np.round(np.arange(109.0, 110.45, 0.05), 2)
HEADER = (
    "asset_id,name_zh,name_en,kind,unit,lon,lat,hazard,variable,reduce,window,op,threshold,"
    "owner,plan_zh,and_condition,illustrative\n"
)
UNDERPASS = (
    "T-UP,测试下穿通道,Test underpass,underpass,150627100,109.7500,39.5800,waterlogging,"
    "precip,sum,1 h,>=,{thr},住建局,一点一策：封闭下穿通道、启动排涝泵站,,true\n"
)


def grid(start: str, hours: int, **fields: np.ndarray | float) -> xr.Dataset:
    """A regular 0.05° grid over the banner; each field is (time, lat, lon) or a scalar."""
    times = pd.date_range(start, periods=hours, freq="h")
    shape = (hours, LAT.size, LON.size)
    units = {"precip": "mm", "t2m": "degC", "tsurf": "degC", "gust": "m s-1"}
    data = {
        name: (
            ("time", "lat", "lon"),
            np.broadcast_to(np.asarray(v, float), shape).copy(),
            {"units": units[name]},
        )
        for name, v in fields.items()
    }
    return xr.Dataset(
        data,
        coords={"time": times, "lat": LAT, "lon": LON},
        attrs={"issued": times[0].isoformat() + "Z"},
    )


def cell(lon: float, lat: float) -> tuple[int, int]:
    return int(np.argmin(np.abs(LAT - lat))), int(np.argmin(np.abs(LON - lon)))


def register(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "assets.csv"
    path.write_text(HEADER + "".join(rows), encoding="utf-8")
    return path


@pytest.mark.parametrize(("amount", "listed"), [(30.0, True), (29.9, False)])
def test_underpass_30mm_in_one_hour(tmp_path, amount, listed):
    assets = load_assets(JUR, register(tmp_path, UNDERPASS.format(thr="30 mm")))
    ds = grid("2026-07-10T01:00", 6, precip=0.0)
    i, j = cell(109.75, 39.58)
    ds["precip"][3, i, j] = amount
    ds["precip"][2, i, j] = 0.0
    out = evaluate_assets(ds, assets)
    assert (len(out) == 1) is listed
    if listed:
        row = out.iloc[0]
        assert row["asset_id"] == "T-UP" and row["hazard"] == "waterlogging"
        assert row["first_time_utc"] == "2026-07-10T04:00:00Z"
        assert row["peak_value"] == pytest.approx(30.0) and row["units"] == "mm"
        assert row["unit"] == "150627100" and "一点一策" in row["plan_zh"]


def test_rain_spread_over_two_hours_does_not_trigger_one_hour_rule(tmp_path):
    assets = load_assets(JUR, register(tmp_path, UNDERPASS.format(thr="30 mm")))
    ds = grid("2026-07-10T01:00", 6, precip=0.0)
    i, j = cell(109.75, 39.58)
    ds["precip"][2:4, i, j] = 20.0
    assert evaluate_assets(ds, assets).empty


def test_threshold_units_convert(tmp_path):
    assets = load_assets(JUR, register(tmp_path, UNDERPASS.format(thr="3 cm")))
    assert assets.loc[0, "threshold_value"] == pytest.approx(30.0)
    assert assets.loc[0, "threshold_units"] == "mm"
    ds = grid("2026-07-10T01:00", 4, precip=0.0)
    i, j = cell(109.75, 39.58)
    ds["precip"][1, i, j] = 31.0
    assert list(evaluate_assets(ds, assets)["asset_id"]) == ["T-UP"]


@pytest.mark.parametrize(
    ("row", "field"),
    [
        (UNDERPASS.format(thr="30 mm").replace("109.7500", ""), "lon"),
        (UNDERPASS.format(thr="30 mm").replace("waterlogging", "meteorite"), "hazard"),
        (UNDERPASS.format(thr="30 mm").replace("109.7500,39.5800", "111.5000,39.5800"), "lon"),
        (UNDERPASS.format(thr="30 kg"), "threshold"),
        (UNDERPASS.format(thr="30 mm").replace("precip", "rainfall"), "variable"),
        (UNDERPASS.format(thr="30 mm").replace("150627100", "150627103"), "unit"),
    ],
)
def test_bad_rows_rejected_with_row_number(tmp_path, row, field):
    good = UNDERPASS.format(thr="30 mm")
    path = register(tmp_path, good, good.replace("T-UP", "T-UP2"), row)
    with pytest.raises(DataFileError) as err:
        load_assets(JUR, path)
    msg = str(err.value)
    assert "\n" not in msg
    assert str(path) in msg and "row 3 (line 4)" in msg and f"field '{field}'" in msg


def test_shipped_register_loads_and_is_labelled_illustrative():
    assets = load_assets("ejin-horo")
    assert assets.attrs["illustrative"] is True
    assert assets["illustrative"].all()
    assert 20 <= assets["asset_id"].nunique() <= 30
    assert {
        "underpass",
        "low_lying_point",
        "bridge",
        "slope",
        "mine",
        "school",
        "elderly_home",
        "heat_exchange_station",
        "water_main",
        "scenic_spot",
    } <= set(assets["kind"])
    mine = assets[assets["kind"] == "mine"]
    assert "150627103" in set(mine["unit"])


def test_shipped_register_triggers_icing_heat_and_cold():
    assets = load_assets("ejin-horo")
    # Road icing needs both tsurf < 0 degC and precip >= 0.1 mm at the same time.
    ds = grid("2026-01-10T00:00", 4, tsurf=-2.0, precip=0.0, t2m=-10.0, gust=5.0)
    ds["precip"][2] = 0.2
    out = evaluate_assets(ds, assets)
    icing = out[out["hazard"] == "road_icing"]
    assert set(icing["asset_id"]) == {"EH-BR-01", "EH-BR-02", "EH-SL-01", "EH-SL-02"}
    assert set(icing["first_time_utc"]) == {"2026-01-10T02:00:00Z"}
    ds["t2m"][:] = -22.0
    cold = evaluate_assets(ds, assets)
    cold = set(cold.loc[cold["hazard"] == "low_temperature", "asset_id"])
    assert {"EH-HX-01", "EH-WM-01", "EH-WM-02"} == cold
    ds["t2m"][:] = 36.0
    hot = evaluate_assets(ds, assets)
    assert {"EH-SCH-01", "EH-HOS-01", "EH-EL-01", "EH-CC-01", "EH-HC-01"} == set(
        hot.loc[hot["hazard"] == "heat", "asset_id"]
    )


def test_missing_variable_is_listed_not_raised():
    assets = load_assets("ejin-horo")
    out = evaluate_assets(grid("2026-07-10T00:00", 3, gust=20.0), assets)
    assert set(out["hazard"]) == {"gale"}
    assert any("precip" in why for _, _, why in out.attrs["not_evaluated"])


def test_geohazard_zone_totals():
    zones = load_geohazard_zones("ejin-horo")
    assert zones["area_km2"].sum() == pytest.approx(5495.23)
    assert zones["points"].sum() == 68
    assert zones["collapse"].sum() == 7 and zones["subsidence"].sum() == 61
    by_town = {c: 0 for c in ("150627103", "150627102", "150627101")}
    for towns, n in zip(zones["towns"], zones["points"], strict=True):
        for t in towns:
            by_town[t] += n
    assert by_town == {"150627103": 46, "150627102": 18, "150627101": 4}
    assert set(zones["zone"]) == {f"B{i}" for i in range(1, 8)} | {"C1", "C2", "C3", "C4", "D"}


def test_geohazard_zone_totals_checked(tmp_path):
    folder = tmp_path / "ejin-horo"
    shutil.copytree(JUR.path, folder)
    path = folder / "geohazard_zones.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("area_km2: 4.48", "area_km2: 5.48"),
        encoding="utf-8",
    )
    with pytest.raises(DataFileError, match="total_km2"):
        load_geohazard_zones(folder)


def test_geohazard_zone_trigger_is_refused(tmp_path):
    # The rain trigger has one owner: the warning's rule table, not the zones file.
    folder = tmp_path / "ejin-horo"
    shutil.copytree(JUR.path, folder)
    path = folder / "geohazard_zones.yaml"
    path.write_text(
        path.read_text(encoding="utf-8") + "trigger: {variable: precip}\n", encoding="utf-8"
    )
    with pytest.raises(DataFileError, match="field 'trigger'"):
        load_geohazard_zones(folder)


def _rain_over_narin(start: str) -> xr.Dataset:
    """60 mm in 12 h on the cells of Narin Taohai's hazard points, nothing elsewhere."""
    ds = grid(start, 30, precip=0.0)
    points = load_geohazard_points("ejin-horo")
    for p in points[points["town_code"] == "150627103"].itertuples():
        i, j = cell(p.lon, p.lat)
        ds["precip"][2:14, i, j] = 5.0
    return ds


def test_geohazard_risk_fires_in_july():
    points = load_geohazard_points("ejin-horo")
    out = geohazard_risk(_rain_over_narin("2026-07-10T00:00"), points, JUR).set_index("town_code")
    narin = out.loc["150627103"]
    # 60 mm in 24 h: 三级 (>= 50 mm) for the mid-prone points, 四级 for the low-prone ones.
    assert narin["level"] == 2 and narin["rain_24h"] == pytest.approx(60.0)
    assert narin["points_at_risk"] == 46
    assert narin["first_time_utc"] == "2026-07-10T06:00:00Z"  # 5th hour of rain: 25 mm
    assert out.loc["150627102", "level"] == 0 and out.loc["150627101", "level"] == 0
    assert out.loc["150627102", "evaluated"]


def test_geohazard_risk_not_assessed_outside_key_period():
    points = load_geohazard_points("ejin-horo")
    out = geohazard_risk(_rain_over_narin("2026-01-10T00:00"), points, JUR)
    assert (out["level"] == 0).all() and not out["evaluated"].any()
    assert "key period" in out.set_index("town_code").loc["150627103", "note"]


def test_lifelines_load():
    lifelines = load_lifelines("ejin-horo").set_index("sector")
    assert "九泰热力公司" in lifelines.loc["heating", "operators"]
    assert "low_temperature" in lifelines.loc["heating", "hazards"]
    assert {"power", "heating", "residential_water", "industrial_water", "gas", "telecom"} <= set(
        lifelines.index
    )
