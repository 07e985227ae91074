"""One rule semantics: asset and geohazard-point triggers, and the meteogram, are the engine's.

Issue 15 ("One rule semantics"): the window-and-threshold logic existed again in
``geo/exposure.py`` and ``report/plots.py``, and the copies disagreed with the engine: asset
``EH-UP-01`` (">= 50 mm in 3 h") fired by counting 48 mm from a 6-hour first step that the
engine calls unaligned. Now the triggers are rule conditions evaluated by
:func:`cityops.rules.evaluate` and the figures draw the engine's ``ConditionResult.value``.

Window semantics (``cityops/rules/tables/national.yaml``): "the amount is accumulated over
(t - window, t] at each valid time t"; a window beginning inside a step cannot be evaluated;
a window reaching before the first step is partial and counts when it already meets the
threshold.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from cityops.geo import load_jurisdiction
from cityops.geo.exposure import evaluate_assets, load_assets
from cityops.geo.geohazard import evaluate_geohazard_points, load_geohazard_points
from cityops.ingest import open_forecast
from cityops.rules import evaluate, load_rule_table
from cityops.rules.table import parse_rule_table
from cityops.scenarios import SCENARIOS, write_scenario

JUR = load_jurisdiction("ejin-horo")
LAT = np.round(np.arange(38.90, 39.85, 0.05), 2)
LON = np.round(np.arange(109.0, 110.45, 0.05), 2)
T0 = pd.Timestamp("2026-07-10T06:00")
UNITS = {"precip": "mm", "t2m": "degC", "tsurf": "degC", "gust": "m s-1", "wind": "m s-1"}


def grid(
    precip_at: dict[tuple[float, float], list[float]],
    *,
    first_step: str = "1h",
    hours: int = 12,
    dtype: str = "float64",
    step_start: bool = False,
) -> xr.Dataset:
    """A 0.05° grid over the banner: hourly valid times from T0, the first step
    ``first_step`` long (told by ``issued`` or by a ``step_start`` coordinate, as ingest
    records it); ``precip_at`` puts a series at the cell of each (lon, lat)."""
    times = pd.date_range(T0, periods=hours, freq="h")
    issued = T0 - pd.Timedelta(first_step)
    precip = np.zeros((hours, LAT.size, LON.size), dtype=dtype)
    for (lon, lat), series in precip_at.items():
        i, j = cell(lon, lat)
        precip[: len(series), i, j] = np.asarray(series, dtype=dtype)
    ds = xr.Dataset(
        {"precip": (("time", "lat", "lon"), precip, {"units": "mm"})},
        coords={"time": times, "lat": LAT, "lon": LON},
        attrs={"issued": (T0 if step_start else issued).strftime("%Y-%m-%dT%H:%M:%SZ")},
    )
    if step_start:
        starts = times[:-1].insert(0, issued)
        ds = ds.assign_coords(step_start=("time", starts))
    return ds


def cell(lon: float, lat: float) -> tuple[int, int]:
    return int(np.argmin(np.abs(LAT - lat))), int(np.argmin(np.abs(LON - lon)))


def iso(t) -> str:
    return pd.Timestamp(t).strftime("%Y-%m-%dT%H:%M:%SZ")


def register(*asset_ids: str) -> pd.DataFrame:
    assets = load_assets(JUR)
    return assets[assets["asset_id"].isin(asset_ids)].reset_index(drop=True)


EH_UP_01 = register("EH-UP-01")
UP = (float(EH_UP_01.loc[0, "lon"]), float(EH_UP_01.loc[0, "lat"]))


def national_rainstorm_3h(ds: xr.Dataset, lon: float, lat: float):
    """The national rainstorm orange condition ("3小时内降雨量将达50毫米以上") at a cell:
    ``(holds, value)`` series from the engine."""
    res = evaluate(ds, load_rule_table("national"), hazards=["rainstorm"])["rainstorm"]
    crs = next(
        c
        for c in res.conditions[3]
        if c.condition.window == pd.Timedelta("3h") and c.condition.threshold == 50.0
    )
    i, j = cell(lon, lat)
    return (
        np.asarray(crs.holds.isel(lat=i, lon=j).values, bool),
        np.asarray(crs.value.isel(lat=i, lon=j).values, float),
    )


# --------------------------------------------------------------------------------------------
# EH-UP-01: a 6 h first step is not a 3 h (or 1 h) window
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("step_start", [False, True], ids=["issued", "step_start"])
def test_eh_up_01_does_not_count_a_six_hour_first_step(step_start):
    # 48 mm over the 6 h before T0, then 2 mm in the next hour. The old copy read the 48 mm
    # as one hour's rain: the 1 h trigger (30 mm) fired at T0 and the 3 h trigger (50 mm)
    # at T0 + 1 h with 50 mm. No 3 h window here holds 50 mm: (T0-3h, T0] begins inside the
    # 6 h step (unaligned), and the full windows from T0 + 3 h hold 2 mm.
    ds = grid({UP: [48.0, 2.0]}, first_step="6h", step_start=step_start)
    holds, value = national_rainstorm_3h(ds, *UP)
    assert not holds.any()
    assert np.isnan(value[:3]).all()  # T0, +1 h, +2 h: windows beginning inside the 6 h step
    assert value[3] == pytest.approx(2.0)
    out = evaluate_assets(ds, EH_UP_01)
    assert out.empty, out.to_string()


def test_eh_up_01_fires_on_the_first_full_3h_window_as_the_engine_does():
    ds = grid({UP: [48.0, 20.0, 20.0, 10.0]}, first_step="6h")
    holds, value = national_rainstorm_3h(ds, *UP)
    onset = int(np.argmax(holds))
    assert holds.any() and onset == 3 and value[onset] == pytest.approx(50.0)
    out = evaluate_assets(ds, EH_UP_01)
    # Only the 3 h trigger: 20 mm hours never reach the 1 h trigger's 30 mm, and the 48 mm
    # of the first 6 h are not a 1 h amount.
    assert list(out["trigger"]) == ["precip 3 h sum >= 50 mm"]
    row = out.iloc[0]
    assert row["first_time_utc"] == iso(T0 + pd.Timedelta("3h"))
    assert row["peak_value"] == pytest.approx(50.0) and row["units"] == "mm"


def test_partial_first_window_counts_when_it_already_meets_the_threshold():
    # Hourly from the issue time: the 3 h window ending at T0 + 1 h reaches before the first
    # step and holds 2 h of data, 25 + 25 = 50 mm: "达50毫米以上" is already reached.
    ds = grid({UP: [25.0, 25.0]}, first_step="1h")
    holds, value = national_rainstorm_3h(ds, *UP)
    out = evaluate_assets(ds, EH_UP_01)
    assert list(out["trigger"]) == ["precip 3 h sum >= 50 mm"]
    assert (
        out.iloc[0]["first_time_utc"]
        == iso(T0 + pd.Timedelta("1h"))
        == iso(ds["time"].values[int(np.argmax(holds))])
    )
    assert out.iloc[0]["peak_value"] == pytest.approx(value[1]) == pytest.approx(50.0)


#: float32 window sums round 15.3 + 15.4 + 19.3 below 50 in some orders; the engine judges
#: them as recorded, to 0.1 mm (issue 15 item 2), so both dtypes reach the bound.
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    "amounts", [[15.3, 15.4, 19.3], [19.3, 15.4, 15.3]], ids=["ascending", "descending"]
)
def test_exact_threshold_from_tenth_mm_amounts_fires(amounts, dtype):
    # 15.3 + 15.4 + 19.3 mm = 50.0 mm in 3 h: "50毫米以上" includes 50.0 (>=), whatever the
    # binary rounding of the decimal amounts or the order of summation. The asset and the
    # national orange criterion must agree.
    ds = grid({UP: amounts}, dtype=dtype)
    holds, _ = national_rainstorm_3h(ds, *UP)
    out = evaluate_assets(ds, EH_UP_01)
    assert holds[2] and int(np.argmax(holds)) == 2
    assert list(out["trigger"]) == ["precip 3 h sum >= 50 mm"]
    assert out.iloc[0]["first_time_utc"] == iso(T0 + pd.Timedelta("2h"))
    assert out.iloc[0]["peak_value"] == pytest.approx(50.0, abs=1e-3)


# --------------------------------------------------------------------------------------------
# Geological-hazard points: the warning's 24 h / 72 h windows are the engine's too
# --------------------------------------------------------------------------------------------
GH_POINTS = load_geohazard_points(JUR)
#: A mid-prone point (zone B2 of 纳林陶亥镇).
GH = GH_POINTS[GH_POINTS["point_id"] == "GH-B2-01"].reset_index(drop=True)
GH.attrs.update(GH_POINTS.attrs)


def test_geohazard_24h_window_counts_the_six_hour_first_step():
    # A 24 h window at T0 + 1 h reaches before the 6 h first step: partial, it holds the
    # whole first step, 48 + 2 = 50 mm: grade 三级 (>= 50 mm in 24 h) at the mid-prone point.
    at = (float(GH.loc[0, "lon"]), float(GH.loc[0, "lat"]))
    ds = grid({at: [48.0, 2.0]}, first_step="6h", hours=30)
    row = evaluate_geohazard_points(ds, GH, JUR).iloc[0]
    assert row["evaluated"] and row["level"] == 2 and row["rain_24h"] == pytest.approx(50.0)
    assert row["peak_time_utc"] == iso(T0 + pd.Timedelta("1h"))
    assert row["trigger_en"] == "24 h total precipitation amount ≥ 50 mm"


def test_geohazard_exactly_at_threshold_and_just_below():
    at = (float(GH.loc[0, "lon"]), float(GH.loc[0, "lat"]))
    exact = evaluate_geohazard_points(grid({at: [10.0] * 5}, hours=30), GH, JUR).iloc[0]
    below = evaluate_geohazard_points(grid({at: [10.0] * 4 + [9.9]}, hours=30), GH, JUR).iloc[0]
    assert exact["level"] == 2 and exact["rain_24h"] == 50.0
    assert below["level"] == 1 and below["rain_24h"] == pytest.approx(49.9)


# --------------------------------------------------------------------------------------------
# Every shipped scenario: the asset and the engine give the same onset and value
# --------------------------------------------------------------------------------------------
#: One asset per hazard of the shipped register, and its trigger as a rule-table condition
#: written by hand from assets.csv (not built by cityops.geo.exposure).
REFERENCE = {
    "waterlogging": ("EH-UP-01", "precip 1 h sum >= 30 mm",
                     {"all": [{"variable": "precip", "reduce": "sum", "window": "1 h",
                               "op": ">=", "threshold": "30 mm"}]}),
    "rainstorm": ("EH-MN-01", "precip 3 h sum >= 50 mm",
                  {"all": [{"variable": "precip", "reduce": "sum", "window": "3 h",
                            "op": ">=", "threshold": "50 mm"}]}),
    "road_icing": ("EH-BR-01", "tsurf < 0 degC and precip >= 0.1 mm",
                   {"all": [{"variable": "tsurf", "op": "<", "threshold": "0 degC"},
                            {"variable": "precip", "op": ">=", "threshold": "0.1 mm"}]}),
    "gale": ("EH-CS-01", "gust >= 17.2 m/s",
             {"all": [{"variable": "gust", "op": ">=", "threshold": "17.2 m/s"}]}),
    "heat": ("EH-SCH-01", "t2m >= 35 degC",
             {"all": [{"variable": "t2m", "op": ">=", "threshold": "35 degC"}]}),
    "low_temperature": ("EH-SCH-01", "t2m <= -25 degC",
                        {"all": [{"variable": "t2m", "op": "<=", "threshold": "-25 degC"}]}),
}  # fmt: skip


def reference_table():
    hazards = {
        h: {"levels": [{"level": 1, **crit, "source": "tests: assets.csv by hand"}]}
        for h, (_, _, crit) in REFERENCE.items()
    }
    return parse_rule_table({"ruleset": "ref", "source": "tests", "hazards": hazards}, JUR.path)


def test_register_has_one_reference_asset_per_hazard():
    assets = load_assets(JUR)
    assert set(assets["hazard"]) == set(REFERENCE)
    for _, (asset_id, trigger, _) in REFERENCE.items():
        rows = assets[assets["asset_id"] == asset_id]
        assert len(rows) >= 1
        described = [f"{t}" for t in rows.apply(_describe_row, axis=1)]
        assert trigger in described


def _describe_row(rec) -> str:
    from cityops.geo.exposure import _describe

    return _describe(rec.to_dict())


@pytest.fixture(scope="module")
def scenario_forecasts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scen")
    out = {}
    for name in SCENARIOS:
        path = write_scenario(name, folder / f"{name}.nc")
        out[name] = open_forecast(path, bounds=JUR.bounds).load()
    return out


def test_every_scenario_asset_agrees_with_the_engine(scenario_forecasts):
    assets = load_assets(JUR)
    table = reference_table()
    fired = 0
    for name, ds in scenario_forecasts.items():
        got = evaluate_assets(ds, assets)
        ref = evaluate(ds, table, timezone=JUR.timezone)
        for hazard, (asset_id, trigger, crit) in REFERENCE.items():
            rec = assets[assets["asset_id"] == asset_id].iloc[0]
            row = got[(got["asset_id"] == asset_id) & (got["trigger"] == trigger)]
            res = ref[hazard]
            where = f"{name}: {asset_id} {trigger}"
            if not res.evaluated:
                assert row.empty, where
                continue
            point = {"lat": rec["lat"], "lon": rec["lon"]}
            holds = np.asarray((res.level >= 1).sel(point, method="nearest").values, bool)
            value = np.asarray(res.conditions[1][0].value.sel(point, method="nearest"), float)
            if not holds.any():
                assert row.empty, where
                continue
            fired += 1
            assert len(row) == 1, where
            times = pd.DatetimeIndex(ds["time"].values)
            assert row.iloc[0]["first_time_utc"] == iso(times[int(np.argmax(holds))]), where
            masked = np.where(holds, value, np.nan)
            up = crit["all"][0]["op"].startswith(">")
            k = int(np.nanargmax(masked) if up else np.nanargmin(masked))
            assert row.iloc[0]["peak_time_utc"] == iso(times[k]), where
            assert row.iloc[0]["peak_value"] == pytest.approx(float(value[k]), abs=1e-3), where
    assert fired >= 4  # the scenarios reach rain, icing, gale and heat at these assets


def test_every_scenario_rainstorm_asset_agrees_with_the_national_signal(scenario_forecasts):
    # EH-MN-01's trigger is the national orange criterion: its onset is the orange onset.
    assets = register("EH-MN-01")
    for name, ds in scenario_forecasts.items():
        # The scenario grids are not this module's LAT/LON: select on the dataset's own grid.
        res = evaluate(ds, load_rule_table("national"), hazards=["rainstorm"])["rainstorm"]
        crs = next(c for c in res.conditions[3] if c.condition.window == pd.Timedelta("3h"))
        point = {"lat": assets.loc[0, "lat"], "lon": assets.loc[0, "lon"]}
        holds = np.asarray(crs.holds.sel(point, method="nearest").values, bool)
        value = np.asarray(crs.value.sel(point, method="nearest").values, float)
        out = evaluate_assets(ds, assets)
        assert (not out.empty) is bool(holds.any()), name
        if holds.any():
            times = pd.DatetimeIndex(ds["time"].values)
            assert out.iloc[0]["first_time_utc"] == iso(times[int(np.argmax(holds))]), name
            assert out.iloc[0]["peak_value"] == pytest.approx(
                float(np.nanmax(np.where(holds, value, np.nan))), abs=1e-3
            )


def test_every_scenario_geohazard_value_is_the_engine_24h_sum(scenario_forecasts):
    table = parse_rule_table(
        {"ruleset": "ref", "source": "tests", "hazards": {"g": {"levels": [
            {"level": 1, "source": "geohazard-meteo-risk.yaml by hand",
             "any": [{"variable": "precip", "reduce": "sum", "window": "24 h", "op": ">=",
                      "threshold": "50 mm"}]}]}}},
        JUR.path,
    )  # fmt: skip
    from cityops.rules.seasons import load_hazard_seasons

    season = load_hazard_seasons(JUR.path)["geohazard_key_period"]
    checked = 0
    for name, ds in scenario_forecasts.items():
        got = evaluate_geohazard_points(ds, GH_POINTS, JUR)
        times = pd.DatetimeIndex(ds["time"].values)
        in_season = season.mask(times, JUR.timezone)
        if not in_season.any():
            assert not got["evaluated"].any(), name
            assert got["note"].str.contains("key period").all(), name
            continue
        value = evaluate(ds, table)["g"].conditions[1][0].value
        for p in got.itertuples():
            at = value.sel(lat=p.lat, lon=p.lon, method="nearest")
            if "member" in at.dims:
                at = at.max("member")
            top = np.nanmax(np.where(in_season, np.asarray(at.values, float), np.nan))
            assert p.rain_24h == pytest.approx(round(float(top), 1), abs=0.06), (name, p.point_id)
            checked += 1
    assert checked


# --------------------------------------------------------------------------------------------
# The meteogram draws the engine's values
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def storm(tmp_path_factory):
    from cityops.pipeline import assess

    path = write_scenario("july-rainstorm", tmp_path_factory.mktemp("m") / "storm.nc")
    return assess(path)


def _unit_max(assessment, code: str, value: xr.DataArray) -> np.ndarray:
    touch = assessment.counting_cells.sel(unit=code)
    top = value.where(touch).max(["lat", "lon"])
    if "member" in top.dims:
        top = top.median("member")
    return np.asarray(top.values, float)


def _line(fig, label: str) -> np.ndarray:
    for ax in fig.axes:
        for line in ax.get_lines():
            if line.get_label() == label:
                return np.asarray(line.get_ydata(), float)
    raise AssertionError(f"no line {label!r}")


def test_meteogram_draws_the_engine_window_sums(storm):
    from cityops.i18n import t
    from cityops.report.plots import meteogram, meteogram_data

    code = JUR.unit("阿镇").code
    data = meteogram_data(storm, code)
    rain = storm.levels["rainstorm"]
    for hours in (3, 6):
        crs = next(
            c
            for cl in rain.conditions.values()
            for c in cl
            if c.condition.window == pd.Timedelta(hours=hours)
        )
        want = _unit_max(storm, code, crs.value)
        np.testing.assert_array_equal(np.asarray(data[f"precip_{hours}h"].values), want)
        fig = meteogram(storm, code)
        np.testing.assert_array_equal(_line(fig, t(f"precip_{hours}h", "zh")), want)
    # The plotted 3 h curve reaches the orange threshold exactly when the unit turns orange.
    row = storm.table.set_index(["town_code", "hazard"]).loc[(code, "rainstorm")]
    if int(row["level"]) >= 3:
        times = pd.DatetimeIndex(data["precip_3h"]["time"].values)
        first = times[int(np.argmax(np.asarray(data["precip_3h"].values) >= 50.0))]
        level = rain.level.where(storm.counting_cells.sel(unit=code)).max(["lat", "lon"])
        onset = times[int(np.argmax(np.asarray(level.values) >= 3))]
        assert first == onset


def test_meteogram_leaves_unaligned_windows_out(tmp_path):
    # A 6 h first step of 48 mm at the seat of 阿镇: the plotted 3 h and 6 h totals have no
    # value where the window begins inside that step (the old curve showed 48 mm as a 3 h
    # total at the first valid time).
    from cityops.pipeline import assess
    from cityops.report.plots import meteogram_data
    from tests.conftest import make_forecast

    seat = JUR.unit("阿镇")
    lat = np.round(np.arange(38.85, 39.90, 0.1), 2)
    lon = np.round(np.arange(108.95, 110.50, 0.1), 2)
    times = pd.date_range(T0, periods=12, freq="h")
    rain = np.zeros((12, lat.size, lon.size))
    rain[
        0, int(np.argmin(np.abs(lat - seat.seat_lat))), int(np.argmin(np.abs(lon - seat.seat_lon)))
    ] = 48.0
    ds = make_forecast({"precip": 0.0}, times=times, lat=lat, lon=lon,
                       issued=T0 - pd.Timedelta("6h"))  # fmt: skip
    ds["precip"][:] = rain
    path = tmp_path / "six.nc"
    ds.to_netcdf(path)
    a = assess(path, now=iso(T0))
    data = meteogram_data(a, seat.code)
    three = np.asarray(data["precip_3h"].values, float)
    assert np.isnan(three[:3]).all() and (three[3:] == 0).all()
    six = np.asarray(data["precip_6h"].values, float)
    assert six[0] == pytest.approx(48.0)  # (T0-6h, T0] is exactly the first step
    assert np.isnan(six[1:6]).all() and (six[6:] == 0).all()


def test_lazy_forecast_gives_the_same_assets(scenario_forecasts):
    # A forecast too large for memory stays a dask graph: the triggers are read from it in one
    # pass and agree with the in-memory result.
    ds = scenario_forecasts["july-rainstorm"]
    assets = load_assets(JUR)
    eager = evaluate_assets(ds, assets)
    lazy = evaluate_assets(ds.chunk({"lat": 5, "lon": 5}), assets)
    assert not eager.empty
    pd.testing.assert_frame_equal(eager, lazy)


def test_ensemble_asset_probability_is_the_engine_member_share():
    # Two of four members bring 30 mm in one hour (the 1 h trigger's threshold, inclusive):
    # the asset triggers with probability 0.5; the 3 h trigger (50 mm) holds in none.
    members = [grid({UP: [0.0, 30.0 if m < 2 else 29.9]}) for m in range(4)]
    ds = xr.concat(members, dim="member").assign_coords(member=range(4))
    out = evaluate_assets(ds, EH_UP_01)
    assert list(out["trigger"]) == ["precip 1 h sum >= 30 mm"]
    row = out.iloc[0]
    assert row["probability"] == pytest.approx(0.5)
    assert row["first_time_utc"] == iso(T0 + pd.Timedelta("1h"))
    assert row["peak_value"] == pytest.approx(30.0)


def test_meteogram_bar_spans_its_step(tmp_path):
    # The precipitation bar of a 6 h first step covers those 6 h, not one hour.
    from cityops.pipeline import assess
    from cityops.report.plots import meteogram
    from tests.conftest import make_forecast

    lat = np.round(np.arange(38.85, 39.90, 0.1), 2)
    lon = np.round(np.arange(108.95, 110.50, 0.1), 2)
    times = pd.date_range(T0, periods=6, freq="h")
    ds = make_forecast({"precip": [12.0, 1.0, 0, 0, 0, 0]}, times=times, lat=lat, lon=lon,
                       issued=T0 - pd.Timedelta("6h"))  # fmt: skip
    path = tmp_path / "six.nc"
    ds.to_netcdf(path)
    fig = meteogram(assess(path, now=iso(T0)), JUR.unit("阿镇").code)
    bars = [p for p in fig.axes[0].patches if p.get_height() > 0]
    widths = sorted(round(abs(b.get_width()) * 24, 6) for b in bars)
    assert widths == [1.0, 6.0]
