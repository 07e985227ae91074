"""Build the approximate outline and unit polygons of Ejin Horo Banner (150627).

Real township boundaries are not public, so ``data/jurisdictions/ejin-horo/`` ships
approximate polygons built from public points (``spec/geography.md``):

* the outline is the simplified banner ring of geography.md (about 5,490 km²);
* each of the 7 towns is the Voronoi cell of its town point, clipped to the outline; a piece
  of a cell cut off from its town point (the outline is concave) joins the neighbouring town
  that shares most of its border, so every town is one polygon;
* each zone with a known point is a disc of documented size around it (蒙苏经济开发区: 5 km
  radius, the point is one project site inside the zone; 临港经济区 / 鄂尔多斯空港物流园区:
  121 km² planned, radius √(121/π) ≈ 6.21 km), clipped to the outline and subtracted from
  the towns it overlaps, so that towns and zones tile the outline;
* 水岸新城 has no known location: a feature with ``geometry: null`` (local code 150627L01).

Voronoi cells and discs are computed on a Lambert azimuthal equal-area projection centred on
the banner and projected back to WGS-84; coordinates are rounded to 5 decimals (≈1 m), rings
are closed with counter-clockwise exteriors (RFC 7946). The script is deterministic: running
it again rewrites identical files. Areas are printed in km².

``--jurisdiction kangbashi`` builds ``data/jurisdictions/kangbashi/`` the same way: the
district outline is a ring simplified once (0.01°) from the public DataV outline of 150603
(embedded below as ``KANGBASHI_RING``); the 3 located sub-districts are Voronoi cells of their
points clipped to it; 康新街道 (no location found) is a feature with ``geometry: null``.

``--jurisdiction hanggin`` builds ``data/jurisdictions/hanggin/`` the same way: the banner
outline is a ring simplified once (0.01°) from the public DataV outline of 150625 (embedded
below as ``HANGGIN_RING``, about 18,780 km²); the 4 towns and 1 sumu with a known point are
Voronoi cells of their points clipped to it; 独贵塔拉镇 (no location found) is a feature with
``geometry: null``, so its territory lies in its neighbours' approximate cells.

Usage::

    python tools/build_approximate_units.py [--jurisdiction ejin-horo|kangbashi|hanggin]
        [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pyproj
import shapely

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "data" / "jurisdictions" / "ejin-horo"

# spec/geography.md, "Approximate banner outline (simplified to 0.02°)".
OUTLINE_RING = """
109.671 39.745; 109.682 39.723; 109.603 39.668; 109.634 39.643; 109.708 39.638; 109.764 39.582;
109.909 39.589; 110.022 39.513; 109.977 39.684; 110.068 39.734; 110.176 39.702; 110.134 39.698;
110.117 39.593; 110.201 39.561; 110.217 39.609; 110.312 39.617; 110.370 39.563; 110.382 39.477;
110.423 39.462; 110.424 39.339; 110.379 39.309; 110.252 39.406; 110.270 39.424; 110.140 39.456;
110.120 39.416; 110.211 39.278; 110.005 39.208; 109.880 39.263; 109.870 39.238; 109.956 39.189;
109.888 39.146; 109.917 39.106; 109.846 39.122; 109.667 38.996; 109.677 38.940; 109.622 38.971;
109.536 38.918; 109.477 38.955; 109.481 38.998; 109.521 39.022; 109.505 39.056; 109.549 39.084;
109.507 39.131; 109.529 39.205; 109.439 39.273; 109.377 39.273; 109.387 39.230; 109.349 39.234;
109.300 39.274; 109.316 39.354; 109.246 39.383; 109.168 39.307; 109.133 39.384; 109.004 39.398;
109.063 39.431; 109.033 39.495; 109.083 39.574; 109.197 39.591; 109.192 39.670; 109.264 39.684;
109.231 39.764; 109.253 39.801; 109.322 39.786; 109.374 39.719; 109.671 39.745
"""

POINT_SOURCE = (
    "point: AMap centre point (GCJ-02) from Vonng/adcode data/adcode/150627.csv @294c4ef, "
    "converted to WGS-84 (spec/geography.md)"
)
TOWN_SOURCE = (
    "polygon: Voronoi cell of the 7 town points clipped to the approximate banner outline, "
    "detached pieces joined to their neighbour, minus the zones "
    "(tools/build_approximate_units.py); " + POINT_SOURCE
)

# code, name_zh, name_en, aliases, lon, lat, note (spec/geography.md)
TOWNS = [
    (
        "150627100",
        "阿勒腾席热镇",
        "Altan Xiret Town",
        ["阿镇", "阿勒腾希热镇", "Altan Xiret"],
        109.7496,
        39.5812,
        "banner seat; about 300 km², about 149,000 people",
    ),
    (
        "150627101",
        "札萨克镇",
        "Jasag Town",
        ["Jasag"],
        109.7782,
        39.2484,
        "seat at 新街 Xinjie; about 1,106 km², about 21,000 people",
    ),
    (
        "150627102",
        "乌兰木伦镇",
        "Ulan Mulun Town",
        ["Ulan Mulun"],
        110.2002,
        39.2893,
        "上湾 and 布连 area; coal mining; 18 geological-hazard points",
    ),
    (
        "150627103",
        "纳林陶亥镇",
        "Narin Taohai Town",
        ["Narin Taohai"],
        110.2645,
        39.4682,
        "main coal area; 46 geological-hazard points",
    ),
    (
        "150627104",
        "苏布尔嘎镇",
        "Subur'ga Town",
        ["Subur'ga", "Suburga"],
        109.4420,
        39.5768,
        "western farming and herding town",
    ),
    (
        "150627105",
        "红庆河镇",
        "Hongqinghe Town",
        ["Hongqinghe"],
        109.2945,
        39.4250,
        "seat 乌兰淖村; about 1,019 km², about 30,000 registered",
    ),
    (
        "150627106",
        "伊金霍洛镇",
        "Ejin Horo Town",
        [],
        109.7954,
        39.3418,
        "Genghis Khan Mausoleum area; about 717 km², about 16,000 registered",
    ),
]

# code, name_zh, name_en, aliases, lon, lat, radius_km, note
ZONES = [
    (
        "150627400",
        "蒙苏经济开发区",
        "Mengsu Economic Development Zone",
        ["蒙苏开发区"],
        109.524,
        39.577,
        5.0,
        "disc of 5 km radius (about 79 km²) around one project site inside the zone; "
        "the point is not the zone's centre",
    ),
    (
        "150627407",
        "临港经济区",
        "Airport / Lingang Economic Zone",
        ["鄂尔多斯空港物流园区", "空港物流园区", "Ordos Airport Logistics Park"],
        109.8699,
        39.5046,
        math.sqrt(121.0 / math.pi),
        "disc of the planned 121 km² (radius 6.21 km) around the 鄂尔多斯空港物流园区 point; the "
        "plan's 临港经济区 is most likely this airport economic zone",
    ),
]

NO_GEOMETRY = [
    (
        "150627L01",
        "水岸新城",
        "Shui'an New Town (waterfront new town)",
        [],
        "local code: no statistical code or location found (seed 002:990 names its 推进办 as a "
        "response unit); supply a real polygon to replace geometry null",
    ),
]

NOT_ALIASES = {
    "150627101": ["札萨克社区", "新街"],
    "150627102": ["上湾", "布连"],
    "150627105": ["乌兰淖村"],
}


def outline_lonlat() -> shapely.Polygon:
    pairs = [p.split() for p in OUTLINE_RING.replace("\n", " ").split(";") if p.strip()]
    return shapely.Polygon([(float(x), float(y)) for x, y in pairs])


def transformers(outline: shapely.Polygon) -> tuple[pyproj.Transformer, pyproj.Transformer]:
    lon_min, lat_min, lon_max, lat_max = outline.bounds
    lon0, lat0 = round((lon_min + lon_max) / 2, 3), round((lat_min + lat_max) / 2, 3)
    laea = pyproj.CRS.from_proj4(
        f"+proj=laea +lat_0={lat0} +lon_0={lon0} +ellps=WGS84 +units=m +no_defs"
    )
    forward = pyproj.Transformer.from_crs("EPSG:4326", laea, always_xy=True)
    inverse = pyproj.Transformer.from_crs(laea, "EPSG:4326", always_xy=True)
    return forward, inverse


def apply(transformer: pyproj.Transformer, geom):
    def _f(xy: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geom, _f)


def polygonal(geom) -> shapely.Polygon | shapely.MultiPolygon:
    """Keep only the polygon parts (overlay can leave slivers of lines or points)."""
    parts = [g for g in shapely.get_parts(geom) if isinstance(g, shapely.Polygon) and g.area > 0]
    if not parts:
        raise RuntimeError("empty polygon")
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


def merge_fragments(towns: list, seats: list) -> list:
    """Give each detached fragment of a town to the neighbour sharing most of its border.

    A Voronoi cell clipped to a concave outline (or cut by a zone) can fall into pieces; a town
    is kept as the piece holding its seat, and every other piece joins the town it borders
    most (pieces that border no other town stay where they are).
    """
    towns = list(towns)
    for _ in range(10):
        moved = False
        for i, town in enumerate(towns):
            parts = list(shapely.get_parts(town))
            if len(parts) == 1:
                continue
            for part in parts:
                if part.covers(seats[i]):
                    continue
                shared = [
                    0.0 if j == i else part.boundary.intersection(other.boundary).length
                    for j, other in enumerate(towns)
                ]
                j = int(np.argmax(shared))
                if shared[j] <= 0.0:
                    continue
                towns[i] = polygonal(towns[i].difference(part))
                towns[j] = polygonal(shapely.union(towns[j], part))
                moved = True
        if not moved:
            break
    return towns


def finish(geom_m, inverse: pyproj.Transformer):
    """Back to lon/lat, on a 1e-5° grid, valid, counter-clockwise exteriors."""
    geom = apply(inverse, geom_m)
    geom = shapely.set_precision(geom, 1e-5)
    geom = polygonal(geom)
    geom = shapely.orient_polygons(geom, exterior_cw=False)
    if not geom.is_valid:
        raise RuntimeError(f"invalid geometry after rounding: {shapely.is_valid_reason(geom)}")
    return geom


def rounded(coords):
    if isinstance(coords, (list, tuple)) and coords and isinstance(coords[0], (int, float)):
        return [round(float(c), 5) for c in coords]
    return [rounded(c) for c in coords]


def geojson_geometry(geom) -> dict | None:
    if geom is None:
        return None
    mapping = shapely.geometry.mapping(geom)
    return {"type": mapping["type"], "coordinates": rounded(mapping["coordinates"])}


def write_collection(path: Path, name: str, features: list[dict]) -> None:
    """One feature per line: deterministic, and diffs stay per unit."""
    lines = ["{", '"type": "FeatureCollection",', f'"name": {json.dumps(name)},', '"features": [']
    body = [json.dumps(f, ensure_ascii=False, separators=(",", ":")) for f in features]
    lines.append(",\n".join(body))
    lines += ["]", "}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def build(out: Path) -> None:
    outline_ll = outline_lonlat()
    outline_ll = shapely.orient_polygons(outline_ll, exterior_cw=False)
    assert outline_ll.is_valid, shapely.is_valid_reason(outline_ll)
    forward, inverse = transformers(outline_ll)

    def area_km2(geom_ll) -> float:
        return shapely.area(apply(forward, shapely.segmentize(geom_ll, 0.01))) / 1e6

    outline_m = apply(forward, outline_ll)

    seats_m = [shapely.Point(forward.transform(t[4], t[5])) for t in TOWNS]
    for t, p in zip(TOWNS, seats_m, strict=True):
        if not outline_m.contains(p):
            raise RuntimeError(f"town point of {t[1]} lies outside the outline")
    cells = shapely.get_parts(
        shapely.voronoi_polygons(
            shapely.MultiPoint(seats_m), extend_to=outline_m.envelope.buffer(1e4)
        )
    )
    town_m = []
    for p in seats_m:
        (cell,) = [c for c in cells if c.contains(p)]
        town_m.append(cell.intersection(outline_m))

    zone_m = []
    for z in ZONES:
        centre = shapely.Point(forward.transform(z[4], z[5]))
        disc = centre.buffer(z[6] * 1000.0, quad_segs=16)
        zone_m.append(polygonal(disc.intersection(outline_m)))
    zones_union = shapely.union_all(zone_m)
    town_m = [polygonal(t.difference(zones_union)) for t in town_m]
    town_m = merge_fragments(town_m, seats_m)

    # Rounding each polygon on its own keeps shared vertices shared (same input, same output).
    towns_ll = [finish(g, inverse) for g in town_m]
    zones_ll = [finish(g, inverse) for g in zone_m]

    features = []
    print(f"{'code':<10} {'name':<10} {'area_km2':>9}")
    for t, geom in zip(TOWNS, towns_ll, strict=True):
        code, name_zh, name_en, aliases, lon, lat, note = t
        if not geom.covers(shapely.Point(lon, lat)):
            raise RuntimeError(f"seat of {name_zh} is outside its polygon")
        props = {
            "code": code,
            "name_zh": name_zh,
            "name_en": name_en,
            "aliases": aliases,
            "kind": "town",
            "approximate": True,
            "seat_lon": lon,
            "seat_lat": lat,
            "area_km2_approx": round(area_km2(geom), 1),
            "note": note,
            "source": TOWN_SOURCE,
        }
        if code in NOT_ALIASES:
            props["not_aliases"] = NOT_ALIASES[code]
        features.append(
            {"type": "Feature", "properties": props, "geometry": geojson_geometry(geom)}
        )
        print(f"{code:<10} {name_zh:<10} {area_km2(geom):9.1f}")
    for z, geom in zip(ZONES, zones_ll, strict=True):
        code, name_zh, name_en, aliases, lon, lat, radius, note = z
        if not geom.covers(shapely.Point(lon, lat)):
            raise RuntimeError(f"point of {name_zh} is outside its polygon")
        props = {
            "code": code,
            "name_zh": name_zh,
            "name_en": name_en,
            "aliases": aliases,
            "kind": "zone",
            "approximate": True,
            "seat_lon": lon,
            "seat_lat": lat,
            "radius_km": round(radius, 2),
            "area_km2_approx": round(area_km2(geom), 1),
            "note": note,
            "source": "polygon: disc around the point clipped to the outline "
            "(tools/build_approximate_units.py); " + POINT_SOURCE,
        }
        features.append(
            {"type": "Feature", "properties": props, "geometry": geojson_geometry(geom)}
        )
        print(f"{code:<10} {name_zh:<10} {area_km2(geom):9.1f}")
    for code, name_zh, name_en, aliases, note in NO_GEOMETRY:
        props = {
            "code": code,
            "name_zh": name_zh,
            "name_en": name_en,
            "aliases": aliases,
            "kind": "zone",
            "approximate": True,
            "seat_lon": None,
            "seat_lat": None,
            "note": note,
            "source": "seed 002:990; spec/geography.md",
        }
        features.append({"type": "Feature", "properties": props, "geometry": None})
        print(f"{code:<10} {name_zh:<10} {'—':>9}")

    total = sum(area_km2(g) for g in towns_ll + zones_ll)
    print(f"{'':<10} {'sum':<10} {total:9.1f}")
    print(f"{'150627':<10} {'outline':<10} {area_km2(outline_ll):9.1f}")

    out.mkdir(parents=True, exist_ok=True)
    outline_feature = {
        "type": "Feature",
        "properties": {
            "code": "150627",
            "name_zh": "伊金霍洛旗",
            "name_en": "Ejin Horo Banner",
            "approximate": True,
            "area_km2_approx": round(area_km2(outline_ll), 1),
            "source": "spec/geography.md: banner outline simplified to 0.02° (within 0.3 % of "
            "the full outline's area), from public DataV map data converted GCJ-02 -> WGS-84",
        },
        "geometry": geojson_geometry(outline_ll),
    }
    write_collection(out / "outline.geojson", "150627 outline (approximate)", [outline_feature])
    write_collection(out / "units.geojson", "150627 units (approximate)", features)
    print(f"wrote {out / 'outline.geojson'} and {out / 'units.geojson'}")


# ---- Kangbashi District 康巴什区 (150603) ---------------------------------------------------
# Derived once from /work/shared/geo/150603_wgs84_derived.geojson (public DataV outline of
# 150603, converted GCJ-02 -> WGS-84; not part of the repository): the single polygon simplified
# with shapely.simplify(tolerance=0.01°, preserve_topology=True), counter-clockwise, rounded to
# 4 decimals. About 364 km² (the full outline: about 359 km²; spec/geography.md: 360-373 km²).
KANGBASHI_RING = """
109.9700 39.6533; 109.7546 39.7115; 109.6886 39.7594; 109.6714 39.7455; 109.6824 39.7233;
109.6573 39.7027; 109.6164 39.6979; 109.6031 39.6680; 109.6339 39.6426; 109.7084 39.6379;
109.7640 39.5823; 109.8391 39.5872; 109.8561 39.6050; 109.9087 39.5886; 110.0218 39.5133;
110.0157 39.5879; 109.9700 39.6533
"""
KANGBASHI_OUTLINE_SOURCE = (
    "public DataV outline of 150603 (tnnevol/gmap 150603.json, converted GCJ-02 -> WGS-84; "
    "shared/geo/150603_wgs84_derived.geojson) simplified to 0.01° (shapely.simplify, "
    "preserve_topology) and rounded to 4 decimals; about 1 % larger than the full outline "
    "(tools/build_approximate_units.py)"
)
KANGBASHI_POINT_SOURCE = (
    "point: map provider's centre point (GCJ-02) converted to WGS-84 (spec/geography.md)"
)
KANGBASHI_UNIT_SOURCE = (
    "polygon: Voronoi cell of the 3 located sub-district points clipped to the approximate "
    "district outline, detached pieces joined to their neighbour "
    "(tools/build_approximate_units.py --jurisdiction kangbashi); " + KANGBASHI_POINT_SOURCE
)

# code, name_zh, name_en, aliases, lon, lat, note (spec/geography.md)
KANGBASHI_SUBDISTRICTS = [
    (
        "150603001",
        "哈巴格希街道",
        "Habagexi Subdistrict",
        ["哈巴格希", "Habagexi"],
        109.7354,
        39.6519,
        "western sub-district",
    ),
    (
        "150603002",
        "青春山街道",
        "Qingchunshan Subdistrict",
        ["青春山", "Qingchunshan"],
        109.7913,
        39.6158,
        "point approximate (≈): a community inside the sub-district, not its centre",
    ),
    (
        "150603003",
        "滨河街道",
        "Binhe Subdistrict",
        ["Binhe"],
        109.7884,
        39.5965,
        "not 滨河路社区 (a community of 乌兰木伦镇, Ejin Horo Banner)",
    ),
]

KANGBASHI_NO_GEOMETRY = [
    (
        "150603008",
        "康新街道",
        "Kangxin Subdistrict",
        ["康新", "Kangxin"],
        "no location found (spec/geography.md); supply a real polygon to replace geometry null",
    ),
]


def kangbashi_outline() -> shapely.Polygon:
    pairs = [p.split() for p in KANGBASHI_RING.replace("\n", " ").split(";") if p.strip()]
    return shapely.Polygon([(float(x), float(y)) for x, y in pairs])


def build_kangbashi(out: Path) -> None:
    """Kangbashi District: 3 Voronoi sub-districts clipped to the outline, 康新街道 without one."""
    outline_ll = shapely.orient_polygons(kangbashi_outline(), exterior_cw=False)
    assert outline_ll.is_valid, shapely.is_valid_reason(outline_ll)
    forward, inverse = transformers(outline_ll)

    def area_km2(geom_ll) -> float:
        return shapely.area(apply(forward, shapely.segmentize(geom_ll, 0.01))) / 1e6

    outline_m = apply(forward, outline_ll)
    seats_m = [shapely.Point(forward.transform(t[4], t[5])) for t in KANGBASHI_SUBDISTRICTS]
    for t, p in zip(KANGBASHI_SUBDISTRICTS, seats_m, strict=True):
        if not outline_m.contains(p):
            raise RuntimeError(f"point of {t[1]} lies outside the outline")
    cells = shapely.get_parts(
        shapely.voronoi_polygons(
            shapely.MultiPoint(seats_m), extend_to=outline_m.envelope.buffer(1e4)
        )
    )
    unit_m = []
    for p in seats_m:
        (cell,) = [c for c in cells if c.contains(p)]
        unit_m.append(polygonal(cell.intersection(outline_m)))
    unit_m = merge_fragments(unit_m, seats_m)
    units_ll = [finish(g, inverse) for g in unit_m]

    features = []
    print(f"{'code':<10} {'name':<10} {'area_km2':>9}")
    for t, geom in zip(KANGBASHI_SUBDISTRICTS, units_ll, strict=True):
        code, name_zh, name_en, aliases, lon, lat, note = t
        if not geom.covers(shapely.Point(lon, lat)):
            raise RuntimeError(f"point of {name_zh} is outside its polygon")
        props = {
            "code": code,
            "name_zh": name_zh,
            "name_en": name_en,
            "aliases": aliases,
            "kind": "subdistrict",
            "approximate": True,
            "seat_lon": lon,
            "seat_lat": lat,
            "area_km2_approx": round(area_km2(geom), 1),
            "note": note,
            "source": KANGBASHI_UNIT_SOURCE,
        }
        features.append(
            {"type": "Feature", "properties": props, "geometry": geojson_geometry(geom)}
        )
        print(f"{code:<10} {name_zh:<10} {area_km2(geom):9.1f}")
    for code, name_zh, name_en, aliases, note in KANGBASHI_NO_GEOMETRY:
        props = {
            "code": code,
            "name_zh": name_zh,
            "name_en": name_en,
            "aliases": aliases,
            "kind": "subdistrict",
            "approximate": True,
            "seat_lon": None,
            "seat_lat": None,
            "note": note,
            "source": "spec/geography.md",
        }
        features.append({"type": "Feature", "properties": props, "geometry": None})
        print(f"{code:<10} {name_zh:<10} {'—':>9}")
    total = sum(area_km2(g) for g in units_ll)
    print(f"{'':<10} {'sum':<10} {total:9.1f}")
    print(f"{'150603':<10} {'outline':<10} {area_km2(outline_ll):9.1f}")

    out.mkdir(parents=True, exist_ok=True)
    outline_feature = {
        "type": "Feature",
        "properties": {
            "code": "150603",
            "name_zh": "康巴什区",
            "name_en": "Kangbashi District",
            "approximate": True,
            "area_km2_approx": round(area_km2(outline_ll), 1),
            "source": KANGBASHI_OUTLINE_SOURCE,
        },
        "geometry": geojson_geometry(outline_ll),
    }
    write_collection(out / "outline.geojson", "150603 outline (approximate)", [outline_feature])
    write_collection(out / "units.geojson", "150603 units (approximate)", features)
    print(f"wrote {out / 'outline.geojson'} and {out / 'units.geojson'}")


# ---- Hanggin Banner 杭锦旗 (150625) ----------------------------------------------------------
# Derived once from /work/shared/geo/150625_wgs84_derived.geojson (public DataV outline of
# 150625, converted GCJ-02 -> WGS-84; not part of the repository): its single polygon
# simplified with shapely.simplify(tolerance=0.01°, preserve_topology=True), counter-clockwise,
# rounded to 4 decimals (97 vertices). About 18,778 km² (the full outline: about 18,789 km²;
# spec/geography.md: about 18,900 km²).
HANGGIN_RING = """
107.8937 40.8482; 107.8512 40.8731; 107.8153 40.8352; 107.7430 40.8598; 107.7227 40.8400;
107.7309 40.8126; 107.6932 40.8117; 107.6954 40.7772; 107.6767 40.7573; 107.6040 40.7762;
107.5337 40.7061; 107.4818 40.7108; 107.3869 40.6436; 107.2877 40.6547; 107.2399 40.5575;
107.1853 40.5783; 107.1592 40.5723; 107.1556 40.5241; 107.1988 40.4997; 107.1497 40.4506;
107.1666 40.3891; 107.0391 40.3276; 107.0176 40.2572; 106.9160 40.1929; 107.1584 40.0464;
107.2986 39.9994; 107.4149 39.9150; 107.5120 39.9214; 107.7663 39.8115; 107.9652 39.8045;
108.3322 39.6929; 108.3622 39.6706; 108.6292 39.6270; 108.7207 39.5832; 108.7883 39.5053;
108.7928 39.4504; 108.9030 39.3812; 108.9420 39.3745; 109.0576 39.4236; 109.0624 39.4427;
109.0338 39.4973; 109.0614 39.5138; 109.0816 39.5724; 109.1166 39.5915; 109.1966 39.5908;
109.2074 39.6521; 109.1922 39.6705; 109.2645 39.6837; 109.2388 39.7624; 109.1815 39.8298;
109.1487 39.8451; 109.1603 39.8642; 109.1353 39.9197; 109.1429 39.9483; 109.1961 39.9527;
109.2699 40.0472; 109.2277 40.0652; 109.1156 40.0552; 109.0992 40.0686; 109.0941 40.1279;
109.0678 40.1598; 109.0917 40.2188; 109.1191 40.2366; 109.1129 40.2929; 109.0342 40.3109;
109.0157 40.3899; 108.9849 40.4077; 108.9894 40.4335; 109.0239 40.4410; 109.0562 40.4743;
109.0368 40.5152; 109.0492 40.5460; 108.9784 40.5263; 108.8180 40.5671; 108.7691 40.5489;
108.7544 40.5693; 108.7708 40.6114; 108.7312 40.6068; 108.6879 40.6392; 108.6420 40.6343;
108.6369 40.6522; 108.6051 40.6507; 108.6068 40.6725; 108.5842 40.6942; 108.5481 40.7023;
108.5709 40.7124; 108.5570 40.7269; 108.4758 40.7345; 108.4733 40.7618; 108.4091 40.8002;
108.2409 40.8144; 108.2195 40.8508
"""
HANGGIN_OUTLINE_SOURCE = (
    "public DataV outline of 150625 (tnnevol/gmap 150625.json, converted GCJ-02 -> WGS-84; "
    "shared/geo/150625_wgs84_derived.geojson) simplified to 0.01° (shapely.simplify, "
    "preserve_topology) and rounded to 4 decimals; within 0.1 % of the full outline's area "
    "(tools/build_approximate_units.py --jurisdiction hanggin)"
)
HANGGIN_POINT_SOURCE = (
    "point: AMap centre point (GCJ-02) from Vonng/adcode data/adcode/150625.csv @294c4ef, "
    "converted to WGS-84 (spec/geography.md)"
)
HANGGIN_UNIT_SOURCE = (
    "polygon: Voronoi cell of the 5 located town and sumu points clipped to the approximate "
    "banner outline, detached pieces joined to their neighbour "
    "(tools/build_approximate_units.py --jurisdiction hanggin); " + HANGGIN_POINT_SOURCE
)

# code, name_zh, name_en, aliases, kind, lon, lat, note (spec/geography.md)
HANGGIN_UNITS = [
    (
        "150625100",
        "锡尼镇",
        "Xini Town",
        ["锡尼", "Xini"],
        "town",
        108.7252,
        39.8234,
        "banner seat",
    ),
    (
        "150625101",
        "巴拉贡镇",
        "Balagong Town",
        ["巴拉贡", "Balagong"],
        "town",
        107.0432,
        40.2670,
        "western town",
    ),
    (
        "150625102",
        "吉日嘎朗图镇",
        "Jirgalangtu Town",
        ["吉日嘎朗图", "Jirgalangtu"],
        "town",
        107.9437,
        40.7925,
        "northern town",
    ),
    (
        "150625104",
        "呼和木独镇",
        "Huhmodo Town",
        ["呼和木独", "Huhmodo"],
        "town",
        107.2945,
        40.5884,
        "north-western town",
    ),
    (
        "150625200",
        "伊和乌素苏木",
        "Yihe Wusu Sumu",
        ["伊和乌素", "Yihe Wusu"],
        "sumu",
        107.8455,
        40.0457,
        "point approximate (≈): the village-level 摩林河社区 at the sumu seat, not its centre",
    ),
]

HANGGIN_NO_GEOMETRY = [
    (
        "150625103",
        "独贵塔拉镇",
        "Duguitala Town",
        ["独贵塔拉", "Duguitala"],
        "town",
        "no location found (spec/geography.md); its territory lies in its neighbours' "
        "approximate cells; supply a real polygon to replace geometry null",
    ),
]

HANGGIN_NOT_ALIASES = {"150625200": ["摩林河社区"]}


def hanggin_outline() -> shapely.Polygon:
    pairs = [p.split() for p in HANGGIN_RING.replace("\n", " ").split(";") if p.strip()]
    return shapely.Polygon([(float(x), float(y)) for x, y in pairs])


def build_hanggin(out: Path) -> None:
    """Hanggin Banner: 5 Voronoi towns and sumu clipped to the outline, 独贵塔拉镇 without one."""
    outline_ll = shapely.orient_polygons(hanggin_outline(), exterior_cw=False)
    assert outline_ll.is_valid, shapely.is_valid_reason(outline_ll)
    forward, inverse = transformers(outline_ll)

    def area_km2(geom_ll) -> float:
        return shapely.area(apply(forward, shapely.segmentize(geom_ll, 0.01))) / 1e6

    outline_m = apply(forward, outline_ll)
    seats_m = [shapely.Point(forward.transform(t[5], t[6])) for t in HANGGIN_UNITS]
    for t, p in zip(HANGGIN_UNITS, seats_m, strict=True):
        if not outline_m.contains(p):
            raise RuntimeError(f"point of {t[1]} lies outside the outline")
    cells = shapely.get_parts(
        shapely.voronoi_polygons(
            shapely.MultiPoint(seats_m), extend_to=outline_m.envelope.buffer(1e4)
        )
    )
    unit_m = []
    for p in seats_m:
        (cell,) = [c for c in cells if c.contains(p)]
        unit_m.append(polygonal(cell.intersection(outline_m)))
    unit_m = merge_fragments(unit_m, seats_m)
    units_ll = [finish(g, inverse) for g in unit_m]

    features = []
    print(f"{'code':<10} {'name':<10} {'area_km2':>9}")
    for t, geom in zip(HANGGIN_UNITS, units_ll, strict=True):
        code, name_zh, name_en, aliases, kind, lon, lat, note = t
        if not geom.covers(shapely.Point(lon, lat)):
            raise RuntimeError(f"point of {name_zh} is outside its polygon")
        props = {
            "code": code,
            "name_zh": name_zh,
            "name_en": name_en,
            "aliases": aliases,
            "kind": kind,
            "approximate": True,
            "seat_lon": lon,
            "seat_lat": lat,
            "area_km2_approx": round(area_km2(geom), 1),
            "note": note,
            "source": HANGGIN_UNIT_SOURCE,
        }
        if code in HANGGIN_NOT_ALIASES:
            props["not_aliases"] = HANGGIN_NOT_ALIASES[code]
        features.append(
            {"type": "Feature", "properties": props, "geometry": geojson_geometry(geom)}
        )
        print(f"{code:<10} {name_zh:<10} {area_km2(geom):9.1f}")
    for code, name_zh, name_en, aliases, kind, note in HANGGIN_NO_GEOMETRY:
        props = {
            "code": code,
            "name_zh": name_zh,
            "name_en": name_en,
            "aliases": aliases,
            "kind": kind,
            "approximate": True,
            "seat_lon": None,
            "seat_lat": None,
            "note": note,
            "source": "spec/geography.md",
        }
        features.append({"type": "Feature", "properties": props, "geometry": None})
        print(f"{code:<10} {name_zh:<10} {'—':>9}")
    total = sum(area_km2(g) for g in units_ll)
    print(f"{'':<10} {'sum':<10} {total:9.1f}")
    print(f"{'150625':<10} {'outline':<10} {area_km2(outline_ll):9.1f}")

    out.mkdir(parents=True, exist_ok=True)
    outline_feature = {
        "type": "Feature",
        "properties": {
            "code": "150625",
            "name_zh": "杭锦旗",
            "name_en": "Hanggin Banner",
            "approximate": True,
            "area_km2_approx": round(area_km2(outline_ll), 1),
            "source": HANGGIN_OUTLINE_SOURCE,
        },
        "geometry": geojson_geometry(outline_ll),
    }
    write_collection(out / "outline.geojson", "150625 outline (approximate)", [outline_feature])
    write_collection(out / "units.geojson", "150625 units (approximate)", features)
    print(f"wrote {out / 'outline.geojson'} and {out / 'units.geojson'}")


BUILDERS = {"ejin-horo": build, "kangbashi": build_kangbashi, "hanggin": build_hanggin}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--jurisdiction",
        choices=sorted(BUILDERS),
        default="ejin-horo",
        help="which jurisdiction to build (default ejin-horo)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default data/jurisdictions/<jurisdiction>)",
    )
    args = parser.parse_args(argv)
    out = args.out if args.out is not None else ROOT / "data" / "jurisdictions" / args.jurisdiction
    BUILDERS[args.jurisdiction](out)


if __name__ == "__main__":
    main()
