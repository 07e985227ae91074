"""The Ejin Horo jurisdiction folder and the loader (spec/geography.md, interfaces.md §8)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
from pathlib import Path

import pytest
import shapely
import yaml

from cityops.errors import DataFileError, InputError
from cityops.geo import Jurisdiction, Unit, load_jurisdiction
from cityops.geo.jurisdiction import jurisdiction_search_path

REPO = Path(__file__).resolve().parents[1]
SHARED_GEO = Path(__file__).resolve().parents[2] / "shared" / "geo"

# spec/geography.md: code -> (name, WGS-84 point)
TOWNS = {
    "150627100": ("阿勒腾席热镇", 109.7496, 39.5812),
    "150627101": ("札萨克镇", 109.7782, 39.2484),
    "150627102": ("乌兰木伦镇", 110.2002, 39.2893),
    "150627103": ("纳林陶亥镇", 110.2645, 39.4682),
    "150627104": ("苏布尔嘎镇", 109.4420, 39.5768),
    "150627105": ("红庆河镇", 109.2945, 39.4250),
    "150627106": ("伊金霍洛镇", 109.7954, 39.3418),
}
ZONES = {
    "150627400": ("蒙苏经济开发区", 109.524, 39.577),
    "150627407": ("临港经济区", 109.8699, 39.5046),
}


@pytest.fixture(scope="module")
def ejh() -> Jurisdiction:
    return load_jurisdiction("ejin-horo")


def write_jurisdiction(folder: Path, features: list[dict], outline=None, **meta) -> Path:
    """A minimal jurisdiction folder (units.geojson with ``features``)."""
    folder.mkdir(parents=True, exist_ok=True)
    doc = {
        "name": folder.name,
        "code": "999999",
        "name_zh": "测试旗",
        "name_en": "Test Banner",
        "timezone": "Asia/Shanghai",
        "files": {"units": "units.geojson"},
        "sources": ["synthetic test data"],
        **meta,
    }
    if outline is not None:
        (folder / "outline.geojson").write_text(json.dumps(shapely.geometry.mapping(outline)))
        doc["files"]["outline"] = "outline.geojson"
    (folder / "jurisdiction.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True))
    collection = {"type": "FeatureCollection", "features": features}
    (folder / "units.geojson").write_text(json.dumps(collection, ensure_ascii=False))
    return folder


def feature(code, name_zh, geom=None, kind="town", **props) -> dict:
    properties = {"code": code, "name_zh": name_zh, "kind": kind, **props}
    properties = {k: v for k, v in properties.items() if v is not None}
    geometry = None if geom is None else shapely.geometry.mapping(geom)
    return {"type": "Feature", "properties": properties, "geometry": geometry}


# ---- the shipped Ejin Horo folder ---------------------------------------------------------
def test_ten_units_with_the_codes_of_geography_md(ejh):
    assert ejh.code == "150627" and ejh.name_zh == "伊金霍洛旗" and ejh.timezone == "Asia/Shanghai"
    assert ejh.codes == (*TOWNS, *ZONES, "150627L01")
    for code, (name, _, _) in {**TOWNS, **ZONES}.items():
        assert ejh.unit(code).name_zh == name
    assert {u.kind for u in ejh.units if u.code in TOWNS} == {"town"}
    assert {u.kind for u in ejh.units if u.code not in TOWNS} == {"zone"}
    assert all(u.approximate for u in ejh.units)
    assert ejh.sources


def test_each_town_seat_lies_in_its_own_polygon(ejh):
    for code, (_, lon, lat) in TOWNS.items():
        unit = ejh.unit(code)
        assert (unit.seat_lon, unit.seat_lat) == (lon, lat)
        assert unit.geometry.covers(shapely.Point(lon, lat)), unit
        others = [u for u in ejh.units if u.code != code and u.has_geometry]
        assert not any(o.geometry.contains(shapely.Point(lon, lat)) for o in others)


def test_zone_points_lie_in_their_zones(ejh):
    for code, (_, lon, lat) in ZONES.items():
        assert ejh.unit(code).geometry.contains(shapely.Point(lon, lat))
    # 临港 / 空港: disc of the planned 121 km² (clipped to the outline)
    assert ejh.area_km2("150627407") == pytest.approx(121, rel=0.02)
    assert ejh.area_km2("150627400") == pytest.approx(78.5, rel=0.02)  # 5 km radius


def test_units_tile_the_outline(ejh):
    outline = ejh.area_km2()
    assert outline == pytest.approx(5490, rel=0.02)  # geography.md
    geoms = [u.geometry for u in ejh.units if u.has_geometry]
    assert sum(ejh.area_km2(g) for g in geoms) == pytest.approx(outline, rel=0.005)
    for a, b in itertools.combinations(geoms, 2):
        assert ejh.area_km2(a.intersection(b)) < 0.01
    assert ejh.area_km2(ejh.outline.difference(shapely.union_all(geoms))) < 0.01 * outline


def test_geometries_are_valid_ccw_and_rounded(ejh):
    for unit in ejh.units:
        if not unit.has_geometry:
            continue
        assert unit.geometry.is_valid
        for poly in shapely.get_parts(unit.geometry):
            assert poly.exterior.is_ccw
            coords = shapely.get_coordinates(poly)
            assert (abs(coords * 1e5 - (coords * 1e5).round()) < 1e-6).all()


def test_aliases_resolve(ejh):
    for key in (
        "阿镇",
        "阿勒腾希热镇",
        "阿勒腾席热镇",
        "150627100",
        150627100,
        " altan xiret town ",
    ):
        assert ejh.unit(key).code == "150627100"
    assert ejh.unit("鄂尔多斯空港物流园区").code == "150627407"
    assert ejh.unit("空港物流园区").code == "150627407"
    assert ejh.unit("临港经济区").name_en.startswith("Airport")
    assert "阿镇" in ejh and "上湾" not in ejh


def test_name_traps_do_not_resolve(ejh):
    with pytest.raises(InputError) as err:
        ejh.unit("札萨克社区")
    message = str(err.value)
    assert "\n" not in message
    assert "札萨克社区" in message and "阿勒腾席热镇" in message
    assert "札萨克镇 (150627101)" in message  # listed as a close match, not resolved
    for not_alias in ("上湾", "新街", "伊金霍洛旗"):
        with pytest.raises(InputError):
            ejh.unit(not_alias)


def test_unknown_unit_lists_close_matches(ejh):
    with pytest.raises(InputError, match=r"close matches: .*纳林陶亥镇"):
        ejh.unit("纳林陶海镇")


def test_shui_an_xincheng_has_no_geometry(ejh):
    unit = ejh.unit("水岸新城")
    assert unit.code == "150627L01" and unit.kind == "zone"
    assert unit.geometry is None and not unit.has_geometry
    assert unit.seat_lon is None and unit.seat_lat is None


def test_units_frame(ejh):
    frame = ejh.units_frame()
    assert list(frame.columns) == [
        "code",
        "name_zh",
        "name_en",
        "kind",
        "approximate",
        "seat_lon",
        "seat_lat",
        "area_km2",
        "has_geometry",
    ]
    assert len(frame) == 10 and frame["code"].is_unique
    row = frame.set_index("code").loc["150627L01"]
    assert not row["has_geometry"] and row["area_km2"] != row["area_km2"]  # NaN
    # 札萨克镇 about 1,106 km², 伊金霍洛镇 about 717 km² (geography.md): Voronoi is close.
    areas = frame.set_index("code")["area_km2"]
    assert areas["150627101"] == pytest.approx(1106, rel=0.15)
    assert areas["150627106"] == pytest.approx(717, rel=0.15)
    assert areas.sum() == pytest.approx(ejh.area_km2(), rel=0.005)


def test_bounds_and_immutability(ejh):
    lon_min, lat_min, lon_max, lat_max = ejh.bounds
    assert 108.9 < lon_min < 109.1 and 110.3 < lon_max < 110.5
    assert 38.8 < lat_min < 39.0 and 39.7 < lat_max < 39.9
    with pytest.raises(dataclasses.FrozenInstanceError):
        ejh.name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ejh.units[0].code = "x"  # type: ignore[misc]
    assert isinstance(ejh.units, tuple) and isinstance(ejh.units[0], Unit)


def test_cached_per_folder(ejh):
    assert load_jurisdiction("ejin-horo") is ejh
    assert load_jurisdiction(REPO / "data" / "jurisdictions" / "ejin-horo") is ejh


def test_build_script_is_reproducible(tmp_path):
    import subprocess
    import sys

    script = REPO / "tools" / "build_approximate_units.py"
    subprocess.run(
        [sys.executable, str(script), "--out", str(tmp_path)], check=True, capture_output=True
    )
    shipped = REPO / "data" / "jurisdictions" / "ejin-horo"
    for name in ("outline.geojson", "units.geojson"):
        assert (tmp_path / name).read_bytes() == (shipped / name).read_bytes(), name


# ---- lookup of folders ----------------------------------------------------------------------
def test_unknown_jurisdiction_lists_available():
    with pytest.raises(
        InputError, match=r"unknown jurisdiction 'atlantis'; available: .*ejin-horo"
    ):
        load_jurisdiction("atlantis")


def test_env_var_folders_come_first(tmp_path, monkeypatch):
    box = shapely.box(110.0, 39.0, 110.1, 39.1)
    write_jurisdiction(tmp_path / "ejin-horo", [feature("1", "一镇", box)], name_zh="替身")
    monkeypatch.setenv("CITYOPS_JURISDICTIONS", f"{tmp_path / 'nowhere'}{os.pathsep}{tmp_path}")
    assert jurisdiction_search_path()[1] == tmp_path
    assert load_jurisdiction("ejin-horo").name_zh == "替身"


def test_outline_defaults_to_union_of_units(tmp_path):
    a, b = shapely.box(110.0, 39.0, 110.1, 39.1), shapely.box(110.1, 39.0, 110.2, 39.1)
    j = load_jurisdiction(
        write_jurisdiction(tmp_path / "x", [feature("1", "甲", a), feature("2", "乙", b)])
    )
    assert j.outline.equals(shapely.box(110.0, 39.0, 110.2, 39.1))


# ---- a user's real boundary file, dropped in unchanged --------------------------------------
@pytest.mark.skipif(not SHARED_GEO.is_dir(), reason=f"{SHARED_GEO} (real outlines) is absent")
def test_real_multipolygon_file_loads_through_property_mapping(tmp_path, ejh):
    real_file = SHARED_GEO / "150627_wgs84_derived.geojson"
    folder = write_jurisdiction(
        tmp_path / "real",
        [],
        properties={"code": "adcode", "name_zh": "name"},
        defaults={"kind": "town", "approximate": False},
    )
    meta = yaml.safe_load((folder / "jurisdiction.yaml").read_text())
    meta["files"] = {"outline": str(real_file), "units": str(real_file)}
    (folder / "jurisdiction.yaml").write_text(yaml.safe_dump(meta, allow_unicode=True))
    j = load_jurisdiction(folder)
    (unit,) = j.units
    assert unit.code == "150627" and unit.name_zh == "伊金霍洛旗" and not unit.approximate
    assert isinstance(unit.geometry, shapely.MultiPolygon)
    assert len(shapely.get_coordinates(unit.geometry)) > 500
    assert j.area_km2(unit) == pytest.approx(5490, rel=0.02)
    # The approximate polygons (built from town points) cover the real outline.
    approx = shapely.union_all([u.geometry for u in ejh.units if u.has_geometry])
    covered = j.area_km2(unit.geometry.intersection(approx)) / j.area_km2(unit)
    assert covered >= 0.97


# ---- validation -----------------------------------------------------------------------------
def _two_boxes():
    return shapely.box(110.0, 39.0, 110.1, 39.1), shapely.box(110.1, 39.0, 110.2, 39.1)


def _assert_names(err: pytest.ExceptionInfo, *parts: str) -> None:
    message = str(err.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, (part, message)


def test_duplicate_code_is_rejected(tmp_path):
    a, b = _two_boxes()
    folder = write_jurisdiction(tmp_path / "dup", [feature("7", "甲", a), feature("7", "乙", b)])
    with pytest.raises(DataFileError) as err:
        load_jurisdiction(folder)
    _assert_names(err, "units.geojson", "feature 1", "'code'", "duplicate", "feature 0")


def test_missing_code_is_rejected(tmp_path):
    a, b = _two_boxes()
    folder = write_jurisdiction(
        tmp_path / "nocode", [feature("1", "甲", a), feature(None, "乙", b)]
    )
    with pytest.raises(DataFileError) as err:
        load_jurisdiction(folder)
    _assert_names(err, "units.geojson", "feature 1", "'code'", "missing")


def test_unknown_kind_is_rejected(tmp_path):
    a, b = _two_boxes()
    folder = write_jurisdiction(
        tmp_path / "kind", [feature("1", "甲", a), feature("2", "乙", b, kind="village")]
    )
    with pytest.raises(DataFileError) as err:
        load_jurisdiction(folder)
    _assert_names(err, "units.geojson", "feature 1", "'kind'", "village", "town, subdistrict")


def test_invalid_geometry_is_rejected_not_repaired(tmp_path):
    bowtie = shapely.Polygon([(110.0, 39.0), (110.1, 39.1), (110.1, 39.0), (110.0, 39.1)])
    folder = write_jurisdiction(tmp_path / "bowtie", [feature("1", "甲", bowtie)])
    with pytest.raises(DataFileError) as err:
        load_jurisdiction(folder)
    _assert_names(err, "units.geojson", "feature 0", "'geometry'", "invalid")


def test_projected_coordinates_are_rejected(tmp_path):
    metres = shapely.box(500000, 4300000, 510000, 4310000)
    folder = write_jurisdiction(tmp_path / "utm", [feature("1", "甲", metres)])
    with pytest.raises(DataFileError, match=r"feature 0: field 'geometry'.*WGS-84"):
        load_jurisdiction(folder)


def test_clashing_alias_is_rejected(tmp_path):
    a, b = _two_boxes()
    folder = write_jurisdiction(
        tmp_path / "alias", [feature("1", "甲镇", a), feature("2", "乙镇", b, aliases=["甲镇"])]
    )
    with pytest.raises(DataFileError, match="feature 1: name or alias '甲镇'"):
        load_jurisdiction(folder)


def test_seat_outside_its_polygon_is_a_warning(tmp_path, caplog):
    a, _ = _two_boxes()
    folder = write_jurisdiction(
        tmp_path / "seat", [feature("1", "甲", a, seat_lon=111.0, seat_lat=39.05)]
    )
    with caplog.at_level(logging.WARNING, logger="cityops"):
        j = load_jurisdiction(folder)
    assert j.unit("甲").seat_lon == 111.0
    assert any("seat" in r.getMessage() and "feature 0" in r.getMessage() for r in caplog.records)


def test_aliases_as_text_and_not_aliases(tmp_path):
    a, _ = _two_boxes()
    folder = write_jurisdiction(
        tmp_path / "text",
        [feature("1", "甲镇", a, aliases="甲, 甲乡、Jia", not_aliases=["甲村"])],
    )
    j = load_jurisdiction(folder)
    assert j.unit("甲乡").code == j.unit("jia").code == "1"
    with pytest.raises(InputError, match="甲村 is not a name of 甲镇"):
        j.unit("甲村")
