"""Daily climate histories to go with the sample scenarios (for the drought index MCI)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cityops.scenarios.catalog import SCENARIOS
from cityops.scenarios.climate import write_synthetic_history
from cityops.scenarios.dataset import get_scenario

__all__ = ["HISTORY_SETTINGS", "write_scenario_history"]

#: Synthetic-history settings per scenario: a dry spring and summer under the heatwave (an
#: orange drought week, GB/T 20481-2017 severe), an ordinary year otherwise.
HISTORY_SETTINGS = {
    "summer-heatwave": {"seed": 2, "dry_from": "2026-05-01", "dry_factor": 0.4},
}
_ORDINARY = {"seed": 1}


def write_scenario_history(name: str, out: str | Path, *, issued=None) -> Path:
    """Write the daily precipitation/temperature history ending the day before the scenario's
    issue day (Beijing time), from 1991."""
    get_scenario(name)
    info = SCENARIOS[name]
    start = pd.Timestamp(issued) if issued is not None else info.default_issued
    if start.tzinfo is not None:
        start = start.tz_convert("UTC").tz_localize(None)
    local_day = (start + pd.Timedelta("8h")).normalize()
    end = (local_day - pd.Timedelta("1D")).strftime("%Y-%m-%d")
    settings = HISTORY_SETTINGS.get(name, _ORDINARY)
    return Path(write_synthetic_history(out, start="1991-01-01", end=end, **settings))
