"""The explorer's callbacks without a browser (issue #9)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from cityops.report.explore import BANNER, Explorer, find_forecasts, with_threshold
from cityops.rules.table import load_rule_table
from cityops.scenarios import write_scenario

TABLES = Path(__file__).resolve().parents[1] / "cityops" / "rules" / "tables"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("fc")
    write_scenario("quiet-day", d / "quiet.nc", observed_out=d / "quiet.observed.nc")
    write_scenario("july-rainstorm", d / "july.nc")  # written last: the newest
    return d


@pytest.fixture(scope="module")
def ex(folder):
    return Explorer(folder=folder)


def test_newest_forecast_is_the_default_and_companions_are_hidden(folder, ex):
    names = [p.name for p in find_forecasts(folder)]
    assert names == ["july.nc", "quiet.nc"]
    assert Path(ex.file.value).name == "july.nc"


def test_changing_the_town_updates_the_table_tasks_and_meteogram(ex):
    ex.town.value = ""
    assert (
        ex.code == BANNER and "阿勒腾席热镇" in ex.table.value and bytes(ex.meteogram.value) == b""
    )
    ex.town.value = "阿镇"  # an alias
    assert ex.code == "150627100"
    table = ex.table.value
    assert "暴雨" in table and "红色" in table
    assert bytes(ex.meteogram.value).startswith(b"\x89PNG")
    assert ex.tasks.value
    ex.town.value = "纳林陶亥镇"
    assert ex.code == "150627103" and ex.table.value != table


def test_unknown_town_says_so_and_keeps_the_view(ex):
    ex.town.value = "阿镇"
    ex.town.value = "不存在镇"
    assert ex.code == "150627100"
    assert "不存在镇" in ex.status.value


def test_time_step_changes_the_map(ex):
    ex.hazard.value = "rainstorm"
    ex.time.value = 0
    before = bytes(ex.map.value)
    ex.time.value = 14  # 15 UTC: the storm is over the banner
    assert bytes(ex.map.value) != bytes(before) and bytes(ex.map.value).startswith(b"\x89PNG")
    assert "07-10 23:00" in ex.time_label.value  # Beijing time of step 14 (15 UTC)


def test_whatif_lower_rainstorm_threshold_adds_a_town_and_writes_nothing(ex):
    digest = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in TABLES.glob("*.yaml")}
    ex.hazard.value = "rainstorm"
    ex.wi_level.value = 1
    assert ex.wi_threshold.value == 50.0  # blue: 50 mm in 12 h
    changed = ex.apply_whatif(threshold=10.0)
    assert "150627103" in set(changed["town_code"])  # 纳林陶亥镇: quiet now, blue at 10 mm
    row = changed.set_index("town_code").loc["150627103"]
    assert (row["level_now"], row["level_whatif"]) == (0, 1)
    assert "纳林陶亥镇" in ex.wi_result.value and "未修改规则表" in ex.wi_result.value
    # Raising it back to the table's value changes nothing.
    assert ex.apply_whatif(threshold=50.0).empty
    assert digest == {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in TABLES.glob("*.yaml")}
    ex.reset_whatif()
    assert ex.whatif is None


def test_with_threshold_leaves_the_loaded_table_alone():
    table = load_rule_table("national")
    changed = with_threshold(table, "rainstorm", 1, 0, 10.0)
    assert table.hazards["rainstorm"].level_rule(1).criteria.flat()[0].threshold == 50.0
    assert changed.hazards["rainstorm"].level_rule(1).criteria.flat()[0].threshold == 10.0
    assert changed.hazards["rainstorm"].level_rule(2) == table.hazards["rainstorm"].level_rule(2)


def test_value_view_and_ensemble_probability(tmp_path):
    fc = write_scenario("july-rainstorm", tmp_path / "ens.nc", members=5)
    ex = Explorer(fc, folder=tmp_path)
    assert not ex.member.disabled and ex.member.value == "prob"
    ex.hazard.value = "rainstorm"
    ex.time.value = 14
    prob = bytes(ex.map.value)
    ex.member.value = "max"
    assert bytes(ex.map.value) != prob  # any member reaches more than 30 % of them
    ex.view.value = "value"
    assert bytes(ex.map.value).startswith(b"\x89PNG")


@pytest.mark.slow
def test_open_the_briefing_for_the_selected_town(ex, tmp_path):
    ex.town.value = ""
    assert ex.open_briefing(tmp_path) is None and ex.brief_link.value  # asks for a unit
    ex.town.value = "阿镇"
    html = ex.open_briefing(tmp_path)
    assert html == tmp_path / "20260710T0000Z" / "150627100" / "briefing.html"
    text = html.read_text(encoding="utf-8")
    assert "阿勒腾席热镇" in text and "红色" in text
    assert "briefing.html" in ex.brief_link.value
