"""Observed levels per unit × hazard × review window (cityops.review.observations).

Expected values are worked out by hand from the national signal table (spec/warning-signals.md):
rainstorm blue ≥ 50 mm in 12 h, yellow ≥ 50 mm in 6 h, orange ≥ 50 mm in 3 h, red ≥ 100 mm in
3 h; gale blue: mean force 6 (≥ 10.8 m/s) or gust force 7 (≥ 13.9 m/s); heat orange
Tmax ≥ 37 °C; fog yellow visibility < 500 m. "以上" is inclusive: a bound reached exactly counts.
"""

from __future__ import annotations

import dataclasses
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cityops.errors import InputError
from cityops.geo.jurisdiction import load_jurisdiction
from cityops.geo.masks import overlap_weights
from cityops.geo.risk import town_hazards
from cityops.review.observations import (
    OBSERVED_COLUMNS,
    observation_kind,
    read_station_csv,
)
from cityops.review.observations import observed_levels as _observed_levels
from cityops.rules import evaluate, load_rule_table
from cityops.scenarios import Perturbation, make_scenario
from tests.conftest import make_forecast

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
real = pytest.mark.skipif(not REALDATA.exists(), reason="../shared/realdata absent")

# A 0.05° grid covering the banner (as tests/test_observed.py).
LAT = np.round(np.arange(38.85, 39.90, 0.05), 3)
LON = np.round(np.arange(108.95, 110.50, 0.05), 3)
ISSUED = pd.Timestamp("2026-07-10T00:00")
TIMES = pd.date_range(ISSUED + pd.Timedelta("1h"), periods=36, freq="h")  # 07-10 01 .. 07-11 12

ALTAN = "150627100"  # 阿勒腾席热镇, the banner seat
JASAG = "150627101"  # 札萨克镇
NARIN = "150627103"  # 纳林陶亥镇
SUBUR = "150627104"  # 苏布尔嘎镇
EJIN = "150627106"  # 伊金霍洛镇
NO_GEOMETRY = "150627L01"  # 水岸新城
# Grid cells lying wholly inside one unit and counting for no other unit.
CELL = {ALTAN: (39.55, 109.70), JASAG: (39.05, 109.60), SUBUR: (39.50, 109.45)}

DAY1, DAY2 = pd.Timestamp("2026-07-10"), pd.Timestamp("2026-07-11")


def _any_cell_jurisdiction() -> Path:
    """Ejin Horo with the level policy ``any_cell``: these tests put storms on single known
    cells, and reason by hand about the cell, not about a share of the unit's area (the
    default policy is tested below and in tests/test_unit_levels.py)."""
    src = load_jurisdiction("ejin-horo").path
    dst = Path(tempfile.mkdtemp(prefix="cityops-any-cell-")) / "ejin-horo"
    shutil.copytree(src, dst)
    (dst / "level_policy.yaml").write_text(
        "rule: any_cell\nsource: tests - storms on single known cells\n", encoding="utf-8"
    )
    return dst


ANY_CELL = _any_cell_jurisdiction()


def observed_levels(*args, **kwargs):
    kwargs.setdefault("jurisdiction", ANY_CELL)
    return _observed_levels(*args, **kwargs)


def rows(frame: pd.DataFrame, code: str, hazard: str) -> pd.DataFrame:
    return frame[(frame.town_code == code) & (frame.hazard == hazard)].reset_index(drop=True)


def one(frame: pd.DataFrame, code: str, hazard: str, start=DAY1) -> pd.Series:
    sel = rows(frame, code, hazard)
    sel = sel[sel.window_start_utc == pd.Timestamp(start)]
    assert len(sel) == 1
    return sel.iloc[0]


# --------------------------------------------------------------------------- gridded analyses


def storm_grid() -> tuple:
    """Hourly precipitation analysis with three storms at known cells.

    * 阿镇: 5.0 mm/h for the 10 h ending 04:00 … 13:00 on the 10th → the 12 h sum reaches
      exactly 50.0 mm at 13:00 (blue; the 6 h sum never exceeds 30 mm).
    * 札萨克镇: 4.99 mm/h over the same hours → 49.9 mm, just short of blue.
    * 苏布尔嘎镇: 30 mm at 22:00, 30 mm at 23:00, 40 mm at 00:00 on the 11th → 60 mm in 3 h at
      23:00 (orange, window of the 10th) and exactly 100.0 mm in 3 h at 00:00 (red, window
      of the 11th: its 3 h window began on the 10th).
    """
    precip = np.zeros((len(TIMES), LAT.size, LON.size))

    def put(code, hours, amounts):
        j = int(np.argmin(abs(LAT - CELL[code][0])))
        i = int(np.argmin(abs(LON - CELL[code][1])))
        for h, a in zip(hours, amounts, strict=True):
            precip[TIMES.get_loc(pd.Timestamp(h)), j, i] = a

    day = "2026-07-10T{:02d}:00"
    put(ALTAN, [day.format(h) for h in range(4, 14)], [5.0] * 10)
    put(JASAG, [day.format(h) for h in range(4, 14)], [4.99] * 10)
    put(SUBUR, [day.format(22), day.format(23), "2026-07-11T00:00"], [30.0, 30.0, 40.0])
    ds = make_forecast({"precip": np.zeros(len(TIMES))}, times=TIMES, lat=LAT, lon=LON)
    ds["precip"].values[:] = precip
    return ds


@pytest.fixture(scope="module")
def grid_levels(tmp_path_factory):
    path = tmp_path_factory.mktemp("grid") / "analysis.nc"
    storm_grid().to_netcdf(path)
    return observed_levels(path)


def test_columns_and_one_row_per_unit_hazard_window(grid_levels):
    obs = grid_levels
    assert list(obs.columns) == OBSERVED_COLUMNS
    juris, table = load_jurisdiction(ANY_CELL), load_rule_table("national")
    assert len(obs) == 2 * len(juris.units) * len(list(table))
    assert sorted(obs.window_start_utc.unique()) == [DAY1, DAY2]
    assert (obs.window_end_utc - obs.window_start_utc == pd.Timedelta("24h")).all()
    assert obs.observed_level.dtype.kind == "i" and obs.evaluated.dtype == bool
    assert str(obs.window_start_utc.dtype) == "datetime64[ns]"  # naive, meaning UTC
    assert obs.observed_onset_utc.dt.tz is None
    assert set(obs.source) == {"analysis.nc"}


def test_exact_threshold_counts_and_onset(grid_levels):
    altan = one(grid_levels, ALTAN, "rainstorm")
    assert altan.evaluated and altan.observed_level == 1  # exactly 50.0 mm in 12 h: blue
    assert altan.observed_onset_utc == pd.Timestamp("2026-07-10T13:00")
    assert altan.observed_peak_value == 50.0 and altan.units == "mm"
    # One cell of the unit reaches it: the share of the unit's area in that cell.
    weights = overlap_weights(load_jurisdiction(ANY_CELL), LAT, LON)
    w = float(weights.sel(unit=ALTAN, lat=CELL[ALTAN][0], lon=CELL[ALTAN][1]))
    assert altan.observed_area_fraction == pytest.approx(w, abs=1e-4)
    jasag = one(grid_levels, JASAG, "rainstorm")
    assert jasag.evaluated and jasag.observed_level == 0 and pd.isna(jasag.observed_onset_utc)
    assert jasag.observed_peak_value == pytest.approx(49.9)  # the 12 h sum that fell short
    assert jasag.observed_area_fraction == 0.0
    # The next day the 12 h window ending at 00:00 holds only 40 mm at 阿镇: nothing.
    assert one(grid_levels, ALTAN, "rainstorm", DAY2).observed_level == 0


def test_windows_on_valid_time_and_accumulations_across_midnight(grid_levels):
    day1 = one(grid_levels, SUBUR, "rainstorm", DAY1)
    assert day1.observed_level == 3 and day1.observed_peak_value == 60.0
    assert day1.observed_onset_utc == pd.Timestamp("2026-07-10T23:00")
    # 00:00 on the 11th is a valid time of the 11th's window; its 3 h window began on the 10th.
    day2 = one(grid_levels, SUBUR, "rainstorm", DAY2)
    assert day2.observed_level == 4 and day2.observed_peak_value == 100.0
    assert day2.observed_onset_utc == pd.Timestamp("2026-07-11T00:00")


def test_units_without_geometry_and_hazards_without_input(grid_levels):
    shore = rows(grid_levels, NO_GEOMETRY, "rainstorm")
    assert not shore.evaluated.any() and (shore.note == "unit has no geometry").all()
    fog = one(grid_levels, ALTAN, "fog")
    assert not fog.evaluated and "missing variable vis" in fog.note
    assert fog.observed_level == 0 and np.isnan(fog.observed_area_fraction)
    # The analysis starts at 01:00: the 10th's window is not quite full, and says so.
    assert "cover 23 of 24 h" in one(grid_levels, ALTAN, "rainstorm").note


def test_same_rule_as_the_town_risk_table(tmp_path):
    """Over one window holding every valid time, observed levels are the town risk table's."""
    ds = storm_grid().isel(time=slice(0, 23))  # 01:00 … 23:00 on the 10th
    ds.to_netcdf(tmp_path / "day.nc")
    obs = observed_levels(tmp_path / "day.nc")
    assert set(obs.window_start_utc) == {DAY1}
    juris = load_jurisdiction(ANY_CELL)
    table = town_hazards(evaluate(ds, load_rule_table("national")), juris)
    merged = obs.merge(table, on=["town_code", "hazard"])
    assert len(merged) == len(obs)
    assert (merged.evaluated_x == merged.evaluated_y).all()
    ev = merged[merged.evaluated_x]
    assert (ev.observed_level == ev.level).all()
    onset = pd.to_datetime(ev.onset_utc.replace("", None), utc=True).dt.tz_localize(None)
    pd.testing.assert_series_equal(
        ev.observed_onset_utc.reset_index(drop=True),
        onset.reset_index(drop=True).astype("datetime64[ns]"),
        check_names=False,
    )
    np.testing.assert_allclose(ev.observed_peak_value, ev.peak_value.astype(float))
    np.testing.assert_allclose(ev.observed_area_fraction, ev.area_fraction.astype(float))
    assert ev.observed_level.max() == 3


def test_same_rule_as_the_town_risk_table_under_the_default_policy(tmp_path):
    """The shipped policy (a tenth of the area at one time, or the seat or an exposure
    point): the observed levels over one window are still exactly the town table's, because
    both take the unit series from :func:`cityops.geo.risk.unit_level_series`."""
    ds = make_scenario("july-rainstorm", observed=True).isel(time=slice(0, 23))
    ds.to_netcdf(tmp_path / "obs.nc")
    juris = load_jurisdiction("ejin-horo")
    obs = _observed_levels(tmp_path / "obs.nc", jurisdiction=juris)
    obs = obs[obs.window_start_utc == DAY1]
    table = town_hazards(evaluate(ds, load_rule_table("national"), timezone=juris.timezone),
                         juris)  # fmt: skip
    merged = obs.merge(table, on=["town_code", "hazard"])
    ev = merged[merged.evaluated_x & merged.evaluated_y]
    assert len(ev) > 20
    assert (ev.observed_level == ev.level).all()
    assert ev.observed_level.max() >= 3


def test_shorter_windows(tmp_path):
    storm_grid().to_netcdf(tmp_path / "a.nc")
    obs = observed_levels(tmp_path / "a.nc", window="6h", start="2026-07-10T06:00",
                          end="2026-07-10T17:00")  # fmt: skip
    altan = rows(obs, ALTAN, "rainstorm").set_index("window_start_utc")
    assert list(altan.index) == [pd.Timestamp(f"2026-07-10T{h:02d}:00") for h in (6, 12)]
    assert altan.observed_level.tolist() == [0, 1]  # 40 mm by 11:00; 50 mm at 13:00
    # A window without observations is not evaluated, never an error.
    late = observed_levels(tmp_path / "a.nc", start="2026-07-12", end="2026-07-12T12:00")
    assert not late.evaluated.any()
    assert (rows(late, ALTAN, "rainstorm").note == "no valid observation in this window").all()


def test_analyses_one_file_per_hour(tmp_path):
    """Hourly analysis files, each its own 'run': joined along time."""
    ds = storm_grid().isel(time=slice(8, 13))  # 09:00 … 13:00
    paths = []
    for k in range(ds.sizes["time"]):
        one_hour = ds.isel(time=[k])
        one_hour.attrs["issued"] = (TIMES[8 + k] - pd.Timedelta("1h")).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        paths.append(tmp_path / f"hour{k}.nc")
        one_hour.to_netcdf(paths[-1])
    obs = observed_levels(paths)
    altan = one(obs, ALTAN, "rainstorm")
    # 25 mm in these five hours: no level, but the 3 h sum peaks at 15 mm.
    assert altan.evaluated and altan.observed_level == 0
    assert altan.source == ", ".join(p.name for p in paths)


# --------------------------------------------------------------------------- station CSV


def station_csv(path: Path) -> Path:
    """Hourly reports on the 10th (01:00 … 24:00) from three stations.

    * 53545 Ejin Horo (109.73 E, 39.57 N, in 阿镇): 20 mm in each hour ending 11:00, 12:00,
      13:00 → 60 mm in 3 h at 13:00 (orange); mean wind 10.7 m/s, just under force 6; 38 °C
      at 15:00 (given in kelvin).
    * N1 at the seat of 纳林陶亥镇: a gust of exactly 13.9 m/s at 06:00 (force 7: gale blue).
    * X9 outside the banner: ignored.
    """
    times = pd.date_range("2026-07-10T01:00", periods=24, freq="h")
    records = []
    for sid, lon, lat in [("53545", 109.73, 39.57), ("N1", 110.2645, 39.4682), ("X9", 111.5, 40.5)]:
        for t in times:
            h = t.hour if t.hour else 24
            records.append(
                {
                    "station_id": sid,
                    "lon": lon,
                    "lat": lat,
                    "time_utc": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "precip": 20.0 if sid == "53545" and h in (11, 12, 13) else 0.0,
                    "t2m[K]": 311.15 if sid == "53545" and h == 15 else 298.15,
                    "wind": 10.7 if sid == "53545" else 3.0,
                    "gust": 13.9 if sid == "N1" and h == 6 else 8.0,
                    "vis": 20000.0,
                }
            )
    pd.DataFrame(records).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def csv_levels(tmp_path_factory):
    return observed_levels(station_csv(tmp_path_factory.mktemp("st") / "stations.csv"))


def test_station_in_known_town(csv_levels):
    obs = csv_levels
    assert list(obs.columns) == OBSERVED_COLUMNS
    # The report at 24:00 is valid at 00:00 on the 11th: it opens the 11th's window.
    assert set(obs.window_start_utc) == {DAY1, DAY2}
    rain = one(obs, ALTAN, "rainstorm")
    assert rain.evaluated and rain.observed_level == 3
    assert rain.observed_onset_utc == pd.Timestamp("2026-07-10T13:00")
    assert rain.observed_peak_value == 60.0 and rain.units == "mm"
    assert np.isnan(rain.observed_area_fraction)  # stations: no area
    assert "stations: 53545" in rain.note and rain.source == "stations.csv"
    gale = one(obs, ALTAN, "gale")
    assert gale.evaluated and gale.observed_level == 0  # 10.7 m/s is force 5
    heat = one(obs, ALTAN, "heat")  # 311.15 K = 38 °C
    assert heat.observed_level == 3 and heat.observed_peak_value == pytest.approx(38.0)
    assert heat.observed_onset_utc == pd.Timestamp("2026-07-10T15:00")


def test_gust_exactly_at_the_beaufort_bound(csv_levels):
    gale = one(csv_levels, NARIN, "gale")
    assert gale.evaluated and gale.observed_level == 1
    assert gale.observed_onset_utc == pd.Timestamp("2026-07-10T06:00")
    assert one(csv_levels, NARIN, "rainstorm").observed_level == 0


def test_units_without_station(csv_levels):
    jasag = rows(csv_levels, JASAG, "rainstorm")
    assert not jasag.evaluated.any() and (jasag.note == "no station in unit").all()
    assert (rows(csv_levels, NO_GEOMETRY, "gale").note == "unit has no geometry").all()
    # X9 lies outside the banner: it is nowhere in the notes.
    assert not csv_levels.note.str.contains("X9").any()


def test_amounts_over_longer_periods(tmp_path):
    """Hourly temperature and gusts with 6-hourly rain (precip_period_h = 6), at 伊金霍洛镇."""
    times = pd.date_range("2026-07-10T01:00", periods=18, freq="h")
    records = [
        {
            "station_id": "E1",
            "lon": 109.7954,
            "lat": 39.3418,
            "time_utc": t.isoformat(),
            "precip": {6: 5.0, 12: 55.0, 18: 0.0}.get(t.hour, np.nan),
            "precip_period_h": 6 if t.hour in (6, 12, 18) else np.nan,
            "gust": 14.0 if t.hour == 9 else 5.0,
        }
        for t in times
    ]
    path = tmp_path / "six.csv"
    pd.DataFrame(records).to_csv(path, index=False)
    obs = observed_levels(path)
    rain = one(obs, EJIN, "rainstorm")
    # 55 mm over the 6 h ending 12:00: yellow; 3 h windows cannot be filled by 6 h amounts.
    assert rain.evaluated and rain.observed_level == 2
    assert rain.observed_onset_utc == pd.Timestamp("2026-07-10T12:00")
    assert "too coarse" in rain.note
    gale = one(obs, EJIN, "gale")  # the gusts keep their hourly steps
    assert gale.observed_level == 1 and gale.observed_onset_utc == pd.Timestamp("2026-07-10T09:00")


def test_overlapping_amounts_are_not_used(tmp_path):
    times = pd.date_range("2026-07-10T01:00", periods=6, freq="h")
    frame = pd.DataFrame(
        {
            "station_id": "E1",
            "lon": 109.7954,
            "lat": 39.3418,
            "time_utc": [t.isoformat() for t in times],
            "precip": 30.0,
            "precip_period_h": 6,  # a 6 h amount every hour cannot be summed
        }
    )
    frame.to_csv(tmp_path / "overlap.csv", index=False)
    rain = one(observed_levels(tmp_path / "overlap.csv"), EJIN, "rainstorm")
    assert rain.observed_level == 0  # never 30 + 30 mm
    assert "5 amounts overlap the previous one" in rain.note


def test_missing_report_is_a_gap_not_a_longer_step(tmp_path):
    """Hourly amounts with 06:00 missing: 25 mm in the hour to 05:00 and 25 mm in the hour to
    07:00 are 50 mm within (04:00, 07:00] (orange at 07:00); the missing hour counts as no
    rain and the 3 h windows after it can still be filled."""
    hours = [1, 2, 3, 4, 5, 7, 8, 9, 10]
    frame = pd.DataFrame(
        {
            "station_id": "E1",
            "lon": 109.7954,
            "lat": 39.3418,
            "time_utc": [f"2026-07-10T{h:02d}:00Z" for h in hours],
            "precip": [25.0 if h in (5, 7) else 0.0 for h in hours],
        }
    )
    frame.to_csv(tmp_path / "gap.csv", index=False)
    rain = one(observed_levels(tmp_path / "gap.csv"), EJIN, "rainstorm")
    assert rain.observed_level == 3 and rain.observed_peak_value == 50.0
    assert rain.observed_onset_utc == pd.Timestamp("2026-07-10T07:00")
    assert "1 unobserved gap between amounts" in rain.note and "too coarse" not in rain.note


def test_read_station_csv_units_and_periods(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text(
        "station_id,lon,lat,time_utc,t2m (K),vis[km],precip,precip_period_h,remark\n"
        "007,109.73,39.57,2026-07-10T08:00+08:00,300.15,0.4,1.5,,ok\n"
        "007,109.73,39.57,2026-07-10T03:00,,10,0,3,\n",
        encoding="utf-8",
    )
    df = read_station_csv(path)
    assert df.station_id.tolist() == ["007", "007"]  # leading zeros kept
    assert df.time_utc.tolist() == [
        pd.Timestamp("2026-07-10T00:00"),
        pd.Timestamp("2026-07-10T03:00"),
    ]
    assert df.t2m.iloc[0] == pytest.approx(27.0) and np.isnan(df.t2m.iloc[1])
    assert df.vis.tolist() == pytest.approx([400.0, 10000.0])
    assert df.period_h.tolist() == [1.0, 3.0]
    assert "remark" not in df


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("station_id,lon,lat,precip\nA,109.7,39.5,1\n", "missing column"),
        ("station_id,lon,lat,time_utc,precip\nA,109.7,39.5,2026-07-10T01:00,abc\n",
         r"line 2: column 'precip' is 'abc', not a number"),
        ("station_id,lon,lat,time_utc,precip\nA,109.7,39.5,yesterday,1\n",
         r"line 2: column 'time_utc' is 'yesterday'"),
        ("station_id,lon,lat,time_utc,precip\nA,109.7,95,2026-07-10T01:00,1\n", "out of range"),
        ("station_id,lon,lat,time_utc,precip\nA,109.7,39.5,2026-07-10T01:00,-1\n",
         "expected an amount >= 0 mm"),
        ("station_id,lon,lat,time_utc,name\nA,109.7,39.5,2026-07-10T01:00,x\n",
         "no observed variable"),
        ("station_id,lon,lat,time_utc,t2m[frobs]\nA,109.7,39.5,2026-07-10T01:00,1\n",
         "cannot be read"),
        ("station_id,lon,lat,time_utc,t2m[furlong]\nA,109.7,39.5,2026-07-10T01:00,1\n",
         "not convertible to degC"),
    ],
)  # fmt: skip
def test_bad_station_csv(tmp_path, text, match):
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=match) as err:
        observed_levels(path)
    assert "bad.csv" in str(err.value) and "\n" not in str(err.value)


def test_kinds_recognised_by_content_and_not_mixed(tmp_path):
    csv = station_csv(tmp_path / "stations.txt")  # not named .csv: the header decides
    grid = tmp_path / "grid.bin"
    storm_grid().isel(time=slice(0, 2)).to_netcdf(grid)
    assert observation_kind(csv) == "station_csv" and observation_kind(grid) == "grid"
    with pytest.raises(InputError, match="mixed with gridded analyses"):
        observed_levels([grid, csv])
    other = tmp_path / "notes.txt"
    other.write_text("hello\n", encoding="utf-8")
    with pytest.raises(InputError, match="unknown observation format"):
        observed_levels(other)


def test_ensemble_is_not_an_observation(tmp_path):
    ds = storm_grid().isel(time=slice(0, 3)).expand_dims(member=[0, 1])
    ds.to_netcdf(tmp_path / "ens.nc")
    with pytest.raises(InputError, match="member"):
        observed_levels(tmp_path / "ens.nc")


# --------------------------------------------------------------------------- MICAPS diamond 1


def write_micaps1(path: Path, *, precip: float, vis_km: float) -> Path:
    """One station, 53545 Ejin Horo (in 阿镇), saturated (dew point = temperature)."""
    record = (
        f"53545 109.73 39.57 1331 1 10 90 3 143 0 0 0 {precip} 9999 9999 9999 "
        f"17.0 {vis_km} 45 17.0 9999 9999 9999 9999"
    )
    other = (
        "53543 110.01 39.82 1462 1 10 76 2 143 0 0 0 9999 9999 9999 9999 "
        "7 30 0 17.4 9999 9999 9999 9999"
    )
    yy, mm, dd, hh = path.name[:2], path.name[2:4], path.name[4:6], path.name[6:8]
    text = f"diamond 1 地面观测\n  {yy} {mm} {dd} {hh} 2\n{record}\n{other}\n"
    path.write_bytes(text.encode("gbk"))
    return path


def test_micaps1_files_are_times(tmp_path):
    """08 and 14 BJT (00 and 06 UTC) with 6 h rain: 30 mm then 25 mm → 55 mm in 12 h at
    06 UTC (blue); the 6 h amounts never reach 50 mm (no yellow) and cannot fill 3 h windows;
    visibility 300 m in saturated air at 00 UTC is fog yellow."""
    first = write_micaps1(tmp_path / "26071008.000", precip=30.0, vis_km=0.3)
    second = write_micaps1(tmp_path / "26071014.000", precip=25.0, vis_km=10)
    assert observation_kind(first) == "micaps1"
    obs = observed_levels([first, second])
    rain = one(obs, ALTAN, "rainstorm")
    assert rain.evaluated and rain.observed_level == 1
    assert rain.observed_onset_utc == pd.Timestamp("2026-07-10T06:00")
    assert rain.observed_peak_value == 55.0
    assert "too coarse" in rain.note
    assert rain.source == "26071008.000, 26071014.000"
    fog = one(obs, ALTAN, "fog")
    assert fog.evaluated and fog.observed_level == 2
    assert fog.observed_onset_utc == pd.Timestamp("2026-07-10T00:00")
    assert "rh derived from temperature and dew point" in fog.note
    blizzard = one(obs, ALTAN, "blizzard")
    assert not blizzard.evaluated and "MICAPS diamond 1 lacks snowfall" in blizzard.note
    gale = one(obs, ALTAN, "gale")
    assert gale.evaluated and "lacks gust" in gale.note
    # 53543 Dongsheng lies north of the banner: no unit has it.
    assert "no station in unit" in one(obs, JASAG, "rainstorm").note


@real
def test_micaps1_real_file():
    """The national 08 BJT surface file: no station inside the banner (Dongsheng 53543 is
    just north of it), so every unit is "no station in unit" — a clear outcome, not an error."""
    obs = observed_levels(REALDATA / "19082208.000")
    assert set(obs.window_start_utc) == {pd.Timestamp("2019-08-22")}
    assert not obs.evaluated.any()
    with_geometry = obs[obs.town_code != NO_GEOMETRY]
    assert with_geometry.note.str.startswith("no station in unit").all()
    assert (obs.source == "19082208.000").all()
    assert "lacks gust" in one(obs, ALTAN, "gale", "2019-08-22").note


@real
def test_cmpa_hourly_precipitation_real_file():
    """CMA's hourly merged precipitation covers the banner; 10 June 2017 was dry there."""
    obs = observed_levels(REALDATA / "cmpa_china_hourly_precip_20170610.nc")
    assert set(obs.window_start_utc) == {pd.Timestamp("2017-06-10")}
    rain = obs[(obs.hazard == "rainstorm") & (obs.town_code != NO_GEOMETRY)]
    assert rain.evaluated.all() and (rain.observed_level == 0).all()
    assert (rain.units == "mm").all() and (rain.observed_peak_value < 5).all()
    assert (rain.observed_area_fraction == 0).all()
    gale = one(obs, ALTAN, "gale", "2017-06-10")
    assert not gale.evaluated and "missing variable wind" in gale.note


# --------------------------------------------------------------------------- scenarios


def rainstorm_only():
    table = load_rule_table("national")
    return dataclasses.replace(table, hazards={"rainstorm": table["rainstorm"]})


@functools.cache
def scenario_levels(tmp: Path, kind: str) -> pd.DataFrame:
    if kind == "forecast":
        ds = make_scenario("july-rainstorm")
    elif kind == "observed":
        ds = make_scenario("july-rainstorm", observed=True)
    else:
        dt = 2.0 if kind == "late-east" else 0.0
        shift = Perturbation(dt=dt, dx=20.0, dy=0.0, amp=1.0)
        ds = make_scenario("july-rainstorm", observed=True, observed_shift=shift)
    path = tmp / f"{kind}.nc"
    ds[["precip"]].to_netcdf(path)
    return observed_levels(path, rules=rainstorm_only())


@pytest.fixture(scope="module")
def scenario_tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("scen")


def test_july_rainstorm_observed_file(tmp_path):
    path = tmp_path / "obs.nc"
    make_scenario("july-rainstorm", observed=True).to_netcdf(path)
    obs = observed_levels(path)
    rain = obs[(obs.hazard == "rainstorm") & (obs.window_start_utc == DAY1)]
    assert rain.observed_level.max() >= 1
    assert rain.set_index("town_code").observed_level[ALTAN] >= 1  # the storm crosses the seat


def test_storm_two_hours_late_and_twenty_km_east(scenario_tmp):
    """Hand reasoning at the banner seat. In the forecast the storm core, moving NNE at
    22 km/h, crosses the seat at its peak intensity (lead 12 h, 12 UTC); under the core the
    3 h sum passes 100 mm one step later, 13 UTC: red from 13 UTC. The observed storm is the
    same storm 2 h later and 20 km east: its track lies 20 km × cos 30° ≈ 17 km east of the
    seat, still inside 阿镇 (which reaches 110.0 E, 22 km east of the seat), and its intensity
    peaks at lead 14 h. The cells under the core are the town's, so the town is still red,
    and the onset is set by the storm's life cycle: 2 h later, 15 UTC."""
    fc = one(scenario_levels(scenario_tmp, "forecast"), ALTAN, "rainstorm")
    ob = one(scenario_levels(scenario_tmp, "late-east"), ALTAN, "rainstorm")
    assert fc.observed_level == ob.observed_level == 4
    assert fc.observed_onset_utc == pd.Timestamp("2026-07-10T13:00")
    assert ob.observed_onset_utc - fc.observed_onset_utc == pd.Timedelta("2h")


def test_timing_shift_only_delays(scenario_tmp):
    """The same 20 km displacement with and without the 2 h delay: every unit reaches the same
    level, exactly 2 h later (the storm is a function of time minus dt)."""
    east = scenario_levels(scenario_tmp, "east")
    late = scenario_levels(scenario_tmp, "late-east")
    east = east[east.window_start_utc == DAY1].set_index("town_code")
    late = late[late.window_start_utc == DAY1].set_index("town_code")
    assert (east.observed_level == late.observed_level).all()
    hit = east.observed_level > 0
    assert hit.sum() >= 3
    delay = late.observed_onset_utc[hit] - east.observed_onset_utc[hit]
    assert (delay == pd.Timedelta("2h")).all()


def test_observed_shift_validation():
    with pytest.raises(InputError, match="observed=True"):
        make_scenario("july-rainstorm", observed_shift=Perturbation(dt=1.0))
    with pytest.raises(InputError, match="finite"):
        make_scenario("july-rainstorm", observed=True, observed_shift=Perturbation(dx=np.nan))
    with pytest.raises(InputError, match="Perturbation"):
        make_scenario("july-rainstorm", observed=True, observed_shift=(2.0, 20.0))
