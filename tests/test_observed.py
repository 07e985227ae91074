"""Observations that persist: "or already reached and likely to continue" (interfaces §2)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cityops.pipeline import assess
from tests.conftest import make_forecast

LAT = np.round(np.arange(38.85, 39.90, 0.05), 3)
LON = np.round(np.arange(108.95, 110.50, 0.05), 3)
ISSUED = pd.Timestamp("2026-07-10T12:00")


def files(tmp_path, *, obs_rain_last_hours, forecast_first_hour=0.0):
    """A forecast from 12 UTC, dry but for ``forecast_first_hour`` mm in its first hour, and
    an hourly analysis of the 18 h before (to 12 UTC)."""
    rain_fc = np.zeros(12)
    rain_fc[0] = forecast_first_hour
    fc = make_forecast({"precip": rain_fc}, lat=LAT, lon=LON, issued=ISSUED)
    obs_times = pd.date_range(ISSUED - pd.Timedelta("17h"), periods=18, freq="h")
    rain = np.zeros(18)
    rain[-len(obs_rain_last_hours) :] = obs_rain_last_hours
    obs = make_forecast({"precip": rain}, lat=LAT, lon=LON, times=obs_times,
                        issued=ISSUED - pd.Timedelta("18h"))  # fmt: skip
    fc.to_netcdf(tmp_path / "fc.nc")
    obs.to_netcdf(tmp_path / "obs.nc")
    return tmp_path / "fc.nc", tmp_path / "obs.nc"


def seat_row(a, hazard="rainstorm"):
    t = a.table
    return t[(t.town_code == "150627100") & (t.hazard == hazard)].iloc[0]


def test_observed_exceedance_persists_as_ongoing(tmp_path):
    # 60 mm in 3 h, to now, and 0.5 mm forecast in the next hour: "且降雨可能持续".
    fc, obs = files(tmp_path, obs_rain_last_hours=[20.0, 20.0, 20.0], forecast_first_hour=0.5)
    dry = assess(fc)
    assert seat_row(dry).level == 0
    wet = assess(fc, observed=obs)
    row = seat_row(wet)
    assert row.level == 3 and row.tier == "ongoing" and row.lead_hours <= 0
    assert row.onset_utc == "2026-07-10T12:00:00Z"  # the observed 3 h window ending now
    assert row.extreme  # Annex 3 also counts "already >= 50 mm and likely to continue"
    assert "already reached" in row.note


def test_observed_exceedance_that_has_ended_does_not_count(tmp_path):
    # 60 mm fell 13-15 h before the reference time: no window ending now holds 50 mm.
    fc, obs = files(tmp_path, obs_rain_last_hours=[30.0, 30.0] + [0.0] * 13)
    assert seat_row(assess(fc, observed=obs)).level == 0
    # The same rain 7-9 h ago still gives 60 mm in the 12 h window ending now: blue persists
    # while rain goes on (0.5 mm forecast in the next hour), and is past when it does not.
    fc, obs = files(tmp_path, obs_rain_last_hours=[30.0, 30.0] + [0.0] * 7,
                    forecast_first_hour=0.5)  # fmt: skip
    assert seat_row(assess(fc, observed=obs)).level == 1
    fc, obs = files(tmp_path, obs_rain_last_hours=[30.0, 30.0] + [0.0] * 7)
    row = seat_row(assess(fc, observed=obs))
    assert row.level == 0 and "not forecast to continue" in row.note
