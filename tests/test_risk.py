"""Town aggregation: the right town gets the level, with onset, area and tier."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cityops.geo import load_jurisdiction, overlap_weights
from cityops.geo.risk import COLUMNS, tier_for_lead, town_hazards
from cityops.rules import evaluate, load_rule_table
from tests.conftest import make_forecast

JURIS = load_jurisdiction("ejin-horo")
LAT = np.round(np.arange(38.85, 39.90, 0.03), 3)
LON = np.round(np.arange(108.95, 110.50, 0.03), 3)
SEAT = JURIS.unit("150627100")  # 阿勒腾席热镇, the banner seat
FAR = JURIS.unit("150627103")  # 纳林陶亥镇, about 45 km east


def storm_at(lon0: float, lat0: float, hourly=(40.0, 45.0, 30.0), sigma_deg=0.06, n=24):
    """A Gaussian rain core over (lon0, lat0), peaking in hours 10-12."""
    lon2, lat2 = np.meshgrid(LON, LAT)
    core = np.exp(
        -(((lon2 - lon0) * np.cos(np.deg2rad(lat0))) ** 2 + (lat2 - lat0) ** 2) / (2 * sigma_deg**2)
    )
    rain = np.zeros((n, *core.shape))
    for i, amount in enumerate(hourly):
        rain[9 + i] = amount * core
    ds = make_forecast({"precip": np.zeros(n)}, lat=LAT, lon=LON)
    ds["precip"].values[:] = rain
    return ds


@pytest.fixture(scope="module")
def storm_table():
    ds = storm_at(SEAT.seat_lon, SEAT.seat_lat)
    national = evaluate(ds, load_rule_table("national"))
    extreme = evaluate(ds, load_rule_table("ejin-horo-annex3"))
    weights = overlap_weights(JURIS, LAT, LON)
    return town_hazards(national, JURIS, extreme=extreme, weights=weights)


def row(table, code, hazard="rainstorm"):
    sub = table[(table.town_code == code) & (table.hazard == hazard)]
    assert len(sub) == 1
    return sub.iloc[0]


def test_columns_in_contract_order(storm_table):
    assert list(storm_table.columns[: len(COLUMNS)]) == COLUMNS
    # One row per unit x hazard of the rule set, also when nothing is reached.
    assert len(storm_table) == len(JURIS.units) * len(load_rule_table("national").hazards)


def test_storm_core_town_gets_red_far_town_nothing(storm_table):
    seat = row(storm_table, SEAT.code)
    assert seat.level == 4 and seat.level_name == "red"
    assert seat.peak_value >= 100.0 and seat.units == "mm"
    assert seat.extreme  # Annex 3: >= 50 mm in 3 h
    # Hours 10-12 after issue hold the core: the 3 h window ending 12:00 UTC reaches 100 mm.
    assert seat.onset_utc == "2026-07-10T12:00:00Z"
    assert seat.issue_by_utc == "2026-07-10T09:00:00Z"  # red rainstorm lead: 3 h
    assert seat.lead_hours == 12.0 and seat.tier == "alert_due_later"
    assert 0 < seat.area_fraction < 1
    far = row(storm_table, FAR.code)
    assert far.level == 0 and not far.extreme and far.onset_utc == ""


def test_unit_without_geometry_is_not_evaluated(storm_table):
    r = row(storm_table, "150627L01")
    assert not r.evaluated and "no location" in r.note


def test_missing_variables_give_not_evaluated_rows(storm_table):
    r = row(storm_table, SEAT.code, "gale")
    assert not r.evaluated and "wind" in r.note


def test_now_sets_lead_tier_and_overdue():
    ds = storm_at(SEAT.seat_lon, SEAT.seat_lat)
    national = evaluate(ds, load_rule_table("national"), hazards=["rainstorm"])
    table = town_hazards(national, JURIS, now="2026-07-10T10:30:00Z")
    r = row(table, SEAT.code)
    assert r.lead_hours == 1.5 and r.tier == "alert"
    assert bool(r.overdue)  # issue-by 09:00 is before the reference time


@pytest.mark.parametrize(
    ("lead", "tier"),
    [
        (24.0, "impact_hint"),
        (23.9, "alert_due_later"),
        (3.0, "alert"),
        (3.01, "alert_due_later"),
        (1.0, "nowcast"),
        (1.01, "alert"),
        (0.0, "nowcast"),
        (-0.5, "ongoing"),
    ],
)
def test_tiers_of_the_plan(lead, tier):
    assert tier_for_lead(lead) == tier


def test_ensemble_probability_is_share_of_members():
    # 3 of 10 members put the red core over the seat; the others are dry.
    base = storm_at(SEAT.seat_lon, SEAT.seat_lat)
    members = [base["precip"] * (1.0 if m < 3 else 0.0) for m in range(10)]
    import xarray as xr

    ens = base.copy()
    ens["precip"] = xr.concat(members, dim=pd.Index(range(10), name="member"))
    ens["precip"].attrs["units"] = "mm"
    national = evaluate(ens, load_rule_table("national"), hazards=["rainstorm"])
    table = town_hazards(national, JURIS, report_probability=0.3)
    r = row(table, SEAT.code)
    assert r.probability == pytest.approx(0.3)
    assert r.level == 4 and r.max_member_level == 4
    stricter = town_hazards(national, JURIS, report_probability=0.5)
    assert row(stricter, SEAT.code).level == 0


def test_risk_summary_lists_threatened_points_and_events(tmp_path):
    from cityops.geo.summary import risk_summary
    from cityops.pipeline import assess
    from cityops.report.briefing import assets_html, periods_html
    from cityops.scenarios import write_scenario

    a = assess(write_scenario("july-rainstorm", tmp_path / "rain.nc"))
    summary = risk_summary(a, "150627100")
    assert list(summary["level"]) == sorted(summary["level"], reverse=True)
    rain = summary[summary["hazard"] == "rainstorm"].iloc[0]
    assert "下穿通道" in rain["threatens"]  # the underpasses' own 30 mm/1 h triggers fire
    assert "那达慕大会" in rain["special_conditions"]  # the illustrative July event
    assert "文旅局" in rain["extra_owners"]
    assert "一点一策" in assets_html(a, "150627100")
    assert "那达慕大会" in periods_html(a, "150627100")
    assert "那达慕大会" not in periods_html(a, "150627103")  # the event is in 阿镇 only
