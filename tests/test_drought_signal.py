"""The drought signal and the Annex 3 drought criterion from a daily history (MCI)."""

from __future__ import annotations

import pytest

from cityops.errors import InputError
from cityops.pipeline import assess
from cityops.scenarios import write_scenario
from cityops.scenarios.history import write_scenario_history


def drought_row(a, code="150627100"):
    t = a.table
    return t[(t.town_code == code) & (t.hazard == "drought")].iloc[0]


@pytest.fixture(scope="module")
def heatwave(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dry")
    fc = write_scenario("summer-heatwave", folder / "heat.nc")
    return fc, write_scenario_history("summer-heatwave", folder / "history.nc")


def test_dry_summer_reaches_severe_drought(heatwave):
    fc, history = heatwave
    a = assess(fc, history=history)
    row = drought_row(a)
    assert row.evaluated and row.level >= 3  # MCI <= -1.5: severe (orange) or worse
    assert row.peak_value <= -1.5 and row.units == "1"
    assert row.extreme  # Annex 3: severe drought in the coming week
    assert "mci from" in a.forecast.attrs["history"]


def test_without_history_drought_is_not_evaluated(heatwave):
    fc, _ = heatwave
    row = drought_row(assess(fc))
    assert not row.evaluated and "history" in row.note


def test_ordinary_year_has_no_drought(tmp_path):
    fc = write_scenario("july-rainstorm", tmp_path / "rain.nc")
    history = write_scenario_history("july-rainstorm", tmp_path / "history.nc")
    row = drought_row(assess(fc, history=history))
    assert row.evaluated and row.level == 0 and row.peak_value > -0.5


def test_bad_history_is_refused(tmp_path, heatwave):
    fc, _ = heatwave
    with pytest.raises(InputError, match="history file not found"):
        assess(fc, history=tmp_path / "none.nc")
