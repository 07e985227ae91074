"""When a run proposes a signal (issue 18 item 2): once the level's issue-by time is reached.

The national signals are issued "N 小时内…将达": rainstorm blue 12 h ahead, yellow 6 h, orange
and red 3 h. A run proposes the highest level whose issue-by time (onset of that level − its
lead) is reached; higher levels are an outlook with the time they fall due.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cityops.pipeline import assess
from tests.conftest import make_forecast

LAT = np.round(np.arange(38.85, 39.90, 0.05), 3)
LON = np.round(np.arange(108.95, 110.50, 0.05), 3)
ISSUED = pd.Timestamp("2026-07-10T00:00")
SEAT = "150627100"
H = pd.Timedelta("1h")


@pytest.fixture(scope="module")
def forecast(tmp_path_factory):
    # 35 mm in each of the hours ending +7, +8, +9 h: blue, yellow and orange are reached at
    # +8 h (70 mm in 2 h), red at +9 h (105 mm in 3 h).
    rain = np.zeros(24)
    rain[6:9] = 35.0
    path = tmp_path_factory.mktemp("fc") / "fc.nc"
    make_forecast({"precip": rain, "snowfall": np.zeros(24)}, lat=LAT, lon=LON,
                  issued=ISSUED).to_netcdf(path)  # fmt: skip
    return path


def _row(forecast, now):
    t = assess(forecast, now=now).table
    return t[(t.town_code == SEAT) & (t.hazard == "rainstorm")].iloc[0]


@pytest.mark.parametrize(
    ("now", "proposed", "next_level", "next_due"),
    [
        # blue due at +8 h - 12 h (already), yellow at +2 h
        (ISSUED, 1, 2, ISSUED + 2 * H),
        (ISSUED + 2 * H, 2, 3, ISSUED + 5 * H),  # exactly at yellow's issue-by: due
        (ISSUED + 5 * H - pd.Timedelta("1min"), 2, 3, ISSUED + 5 * H),
        (ISSUED + 5 * H, 3, 4, ISSUED + 6 * H),
        (ISSUED + 6 * H, 4, None, None),  # red 3 h before its onset at +9 h
    ],
)
def test_proposal_follows_each_levels_lead(forecast, now, proposed, next_level, next_due):
    row = _row(forecast, now)
    assert row.level == 4  # the forecast level does not depend on the reference time
    assert row.proposed_level == proposed
    if next_level is None:
        assert pd.isna(row.next_level) and row.next_due_utc == ""
    else:
        assert row.next_level == next_level
        assert pd.Timestamp(row.next_due_utc).tz_localize(None) == next_due


def test_proposal_never_decreases_as_the_clock_runs(forecast):
    levels = [int(_row(forecast, ISSUED + k * H).proposed_level) for k in range(0, 9)]
    assert levels == sorted(levels)
    assert all(0 <= p <= 4 for p in levels)


def test_drafts_are_the_proposals(forecast):
    from cityops.cap import CAP_NS, build_alerts

    early = build_alerts(assess(forecast, now=ISSUED))["rainstorm"]
    sev = [e.text for e in early.iter(f"{{{CAP_NS}}}severity")]
    assert sev == ["Minor"]  # blue now; red is an outlook, not a draft 9 h early
    late = build_alerts(assess(forecast, now=ISSUED + 6 * H))["rainstorm"]
    assert [e.text for e in late.iter(f"{{{CAP_NS}}}severity")] == ["Extreme"]
