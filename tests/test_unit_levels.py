"""How a unit gets its level, and a unit that cannot be assessed never reads as safe
(issue 15 items 1, 10 and 11).

CLI-level: synthetic CF forecasts over Ejin Horo on a 0.05° grid through ``cityops assess``
(and one ``cityops brief``), read back from ``town_hazards.csv`` and the pages.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import shapely
import yaml

from cityops.geo.jurisdiction import load_jurisdiction
from tests.conftest import make_forecast
from tests.test_level_semantics import ISSUED, LAT, LON, cityops

NALIN = "150627103"  # 纳林陶亥镇, 894 km², seat 110.2645 E 39.4682 N
JUR = load_jurisdiction("ejin-horo")


def _centres():
    lon2, lat2 = np.meshgrid(LON, LAT)
    return lon2, lat2


def _cells_in(code: str) -> np.ndarray:
    """Cells whose centre lies in the unit (lat x lon bool)."""
    lon2, lat2 = _centres()
    return shapely.contains_xy(JUR.unit(code).geometry, lon2, lat2)


def _anchor_cells(code: str) -> np.ndarray:
    """Cells within 0.06° of the unit's seat or of an asset point in it (kept dry where a
    test needs the area share alone to decide)."""
    assets = pd.read_csv(JUR.path / "assets.csv", dtype={"unit": str})
    pts = [(JUR.unit(code).seat_lon, JUR.unit(code).seat_lat)]
    pts += [(r.lon, r.lat) for r in assets[assets.unit == code].itertuples()]
    lon2, lat2 = _centres()
    near = np.zeros(lon2.shape, bool)
    for x, y in pts:
        near |= (np.abs(lon2 - x) < 0.06) & (np.abs(lat2 - y) < 0.06)
    return near


def _rain(mask: np.ndarray, mm_per_h: float = 20.0, n: int = 12) -> np.ndarray:
    """60 mm in the first 3 h where ``mask`` (orange: "3小时内降雨量将达50毫米以上"), dry
    elsewhere."""
    arr = np.zeros((n, len(LAT), len(LON)))
    arr[:3][:, mask] = mm_per_h
    return arr


def _forecast(precip):
    precip = np.asarray(precip, float)
    times = pd.date_range(ISSUED + pd.Timedelta("1h"), periods=precip.shape[0], freq="h")
    return make_forecast({"precip": precip}, times=times, lat=LAT, lon=LON, issued=ISSUED)


def _assess(tmp_path, precip, *, jurisdiction=None, name="out"):
    fc = tmp_path / f"{name}.nc"
    _forecast(precip).to_netcdf(fc)
    args = ["assess", fc, "--out", tmp_path / name]
    if jurisdiction is not None:
        args += ["--jurisdiction", jurisdiction]
    res = cityops(*args)
    assert res.returncode == 0, res.stderr
    table = pd.read_csv(tmp_path / name / "town_hazards.csv", dtype=str, keep_default_na=False)
    return table


def _row(table, code, hazard="rainstorm"):
    return table[(table.town_code == code) & (table.hazard == hazard)].iloc[0]


def _copy_jurisdiction(tmp_path, policy=None, units=None):
    dst = tmp_path / "ejin-horo-copy"
    shutil.copytree(JUR.path, dst)
    if policy is not None:
        (dst / "level_policy.yaml").write_text(yaml.safe_dump(policy, allow_unicode=True))
    if units is not None:
        data = json.loads((dst / "units.geojson").read_text(encoding="utf-8"))
        for f in data["features"]:
            f.update(units.get(f["properties"]["code"], {}))
        (dst / "units.geojson").write_text(json.dumps(data, ensure_ascii=False))
    return dst


# --------------------------------------------------------------------------------------------
# Item 11: how a town gets a level (jurisdiction policy as data)
# --------------------------------------------------------------------------------------------


def _edge_cell() -> np.ndarray:
    """One cell of 纳林陶亥镇 far from its seat and exposure points (about 3 % of its area)."""
    inside = _cells_in(NALIN) & ~_anchor_cells(NALIN)
    lon2, lat2 = _centres()
    seat = JUR.unit(NALIN)
    d = np.hypot(lon2 - seat.seat_lon, lat2 - seat.seat_lat)
    d[~inside] = -1
    mask = np.zeros_like(inside)
    mask[np.unravel_index(np.argmax(d), d.shape)] = True
    return mask


def test_a_storm_on_a_sliver_of_a_town_does_not_warn_the_town(tmp_path):
    """Orange rain ("3小时内降雨量将达50毫米以上") on one 0.05° cell at the far edge of
    纳林陶亥镇 (about 24 km² of its 894 km², away from its seat and listed exposure points):
    under the default policy (a tenth of the area at one time, or the seat or an exposure
    point) the town is not orange; the share is still reported."""
    table = _assess(tmp_path, _rain(_edge_cell()))
    row = _row(table, NALIN)
    assert row.level == "0", row
    # The Annex 3 flag (50 mm in 3 h on that cell) follows the same policy: no extreme
    # weather for a town that is not warned.
    assert row.extreme == "false"
    # any_cell, the cautious reading, stays available as jurisdiction data.
    juris = _copy_jurisdiction(
        tmp_path, {"rule": "any_cell", "source": "test: the cautious reading"}
    )
    row = _row(_assess(tmp_path, _rain(_edge_cell()), jurisdiction=juris, name="any"), NALIN)
    assert row.level == "3" and row.extreme == "true"
    assert 0 < float(row.area_fraction) < 0.1


def test_a_storm_over_the_seat_warns_the_town_whatever_the_share(tmp_path):
    """The same storm on the seat's own cell: the seat is an anchor, so the town is orange
    although the cell is about 3 % of its area."""
    lon2, lat2 = _centres()
    seat = JUR.unit(NALIN)
    d = np.hypot(lon2 - seat.seat_lon, lat2 - seat.seat_lat)
    mask = d == d.min()
    row = _row(_assess(tmp_path, _rain(mask)), NALIN)
    assert row.level == "3"
    assert float(row.area_fraction) < 0.1


def test_a_storm_over_a_third_of_a_town_warns_it_and_says_the_share(tmp_path):
    """Orange rain over the western third of 纳林陶亥镇, away from its seat and exposure
    points: more than a tenth of the area, so the town is orange; area_fraction is the share
    of the town's area (by hand from the overlap of the wet cells, within a cell's share)."""
    inside = _cells_in(NALIN)
    lon2, _ = _centres()
    west = inside & (lon2 < 110.12) & ~_anchor_cells(NALIN)
    row = _row(_assess(tmp_path, _rain(west)), NALIN)
    assert row.level == "3"
    cell_share = west.sum() / inside.sum()
    assert abs(float(row.area_fraction) - cell_share) < 0.08, (row.area_fraction, cell_share)


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        ({"rule": "most_cells", "source": "x"}, "'rule'"),
        ({"min_area_share": 0, "source": "x"}, "'min_area_share'"),
        ({"min_area_share": True, "source": "x"}, "'min_area_share'"),
        ({"anchors": ["school"], "source": "x"}, "'anchors'"),
        ({"rule": "any_cell"}, "'source'"),
    ],
)
def test_policy_file_is_validated_by_name(tmp_path, policy, field):
    juris = _copy_jurisdiction(tmp_path, policy)
    fc = tmp_path / "fc.nc"
    make_forecast({"precip": np.zeros(6)}, lat=LAT, lon=LON, issued=ISSUED).to_netcdf(fc)
    res = cityops("assess", fc, "--out", tmp_path / "o", "--jurisdiction", juris)
    assert res.returncode == 2
    line = res.stderr.strip().splitlines()
    assert len(line) == 1 and "level_policy.yaml" in line[0] and field in line[0], line
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------------------------
# Item 1: no false all-clear
# --------------------------------------------------------------------------------------------


def test_unit_with_a_seat_but_no_polygon_is_assessed_on_a_disc_marked_approximate(tmp_path):
    """水岸新城 given a seat (inside 阿镇) but no polygon: assessed on the policy's 5 km disc
    around it, and every row says so."""
    juris = _copy_jurisdiction(
        tmp_path,
        units={
            "150627L01": {
                "properties": {
                    **next(u for u in json.loads((JUR.path / "units.geojson").read_text())[
                        "features"] if u["properties"]["code"] == "150627L01")["properties"],
                    "seat_lon": 109.80,
                    "seat_lat": 39.62,
                }
            }
        },
    )  # fmt: skip
    lon2, lat2 = _centres()
    near = np.hypot((lon2 - 109.80) * 0.77, lat2 - 39.62) < 0.04
    table = _assess(tmp_path, _rain(near), jurisdiction=juris)
    row = _row(table, "150627L01")
    assert row.evaluated == "true" and row.level == "3"
    assert "5 km disc around the unit's seat" in row.note
    assert all("disc" in n for n in table[table.town_code == "150627L01"].note)


def test_unit_without_any_location_never_reads_as_safe(tmp_path):
    """水岸新城 has no polygon and no seat: every row is not evaluated with the reason and
    ``overdue`` empty (not true); neighbours are red. The briefing, its headline card and the
    index say it cannot be assessed (never "无达到预警信号标准"), its posture is not 常态, it
    gets no tasks and no CAP."""
    rain = np.zeros((12, len(LAT), len(LON)))
    rain[:3] = 40.0  # 120 mm in 3 h everywhere: red ("3小时内降雨量将达100毫米以上")
    fc = tmp_path / "fc.nc"
    _forecast(rain).to_netcdf(fc)
    out = tmp_path / "brief"
    res = cityops("-q", "brief", fc, "--out", out, "--towns", "水岸新城,阿镇", "--no-ledger",
                  "--now", "2026-07-10T12:30Z")  # fmt: skip
    assert res.returncode == 0, res.stderr
    table = pd.read_csv(out / "town_hazards.csv", dtype=str, keep_default_na=False)
    rows = table[table.town_code == "150627L01"]
    assert (rows.evaluated == "false").all()
    assert (rows.overdue == "").all(), rows.overdue.unique()
    assert rows.note.str.contains("no location").all()
    assert _row(table, "150627100").level == "4"
    page = (out / "150627L01" / "briefing.html").read_text(encoding="utf-8")
    assert "无法评估" in page and "无达到预警信号标准" not in page
    assert "常态" not in page
    assert (out / "150627L01" / "headline.png").exists()
    index = (out / "index.html").read_text(encoding="utf-8")
    block = index[index.index("水岸新城") : index.index("水岸新城") + 600]
    assert "未评估" in block
    tasks = pd.read_csv(out / "150627L01" / "tasks.csv", dtype=str)
    assert tasks.empty
    assert not list(out.glob("**/*150627L01*.xml"))


# --------------------------------------------------------------------------------------------
# Item 10: peak within the episode that set the level
# --------------------------------------------------------------------------------------------


def test_peak_belongs_to_the_episode_that_set_the_level(tmp_path):
    """Two orange bursts ("3小时内降雨量将达50毫米以上"): 60 mm in hours 1-3, then, after
    15 dry hours, 90 mm in hours 20-22 (still below red's 100 mm). The first sets the onset
    and the level; its peak (60.0 mm, within hours 1-5) is reported, not the later burst's."""
    rain = np.zeros(30)
    rain[0:3] = 20.0
    rain[19:22] = 30.0
    row = _row(_assess(tmp_path, rain), "150627100")
    assert row.level == "3"
    onset = pd.Timestamp(row.onset_utc).tz_localize(None)
    assert onset <= ISSUED + pd.Timedelta("3h")
    assert float(row.peak_value) == pytest.approx(60.0)
    peak = pd.Timestamp(row.peak_time_utc).tz_localize(None)
    assert onset <= peak <= ISSUED + pd.Timedelta("5h")
