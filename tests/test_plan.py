"""The Ejin Horo response plan data (data/jurisdictions/ejin-horo/plan) and its loader."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from cityops.errors import DataFileError
from cityops.response import load_plan, measures_for, posture_for

ROOT = Path(__file__).resolve().parents[1]
PLAN_DIR = ROOT / "data" / "jurisdictions" / "ejin-horo" / "plan"


@pytest.fixture(scope="module")
def plan():
    return load_plan("ejin-horo")


def test_plan_loads_with_8_groups_and_22_plans(plan):
    assert len(plan.groups) == 8
    assert [g.number for g in plan.groups] == list(range(1, 9))
    assert len(plan.special_plans) == 22
    assert [p.number for p in plan.special_plans] == list(range(1, 23))
    assert plan.special_plan("rain_waterlogging").number == 2
    assert load_plan(PLAN_DIR).measures == plan.measures


def test_red_rainstorm(plan):
    measures = measures_for(plan, "rainstorm", 4)
    ids = {m.id for m in measures}
    waterlogging = {m.id for m in plan.measures if m.plan == "rain_waterlogging"}
    assert waterlogging and waterlogging <= ids
    assert any(m.group == "lifelines" for m in measures)
    assert any(
        m.group == "public_security" and m.lead_unit == "旗公安局" and "封闭" in m.text_zh
        for m in measures
    )
    assert any(m.four_stop == "stop_classes" for m in measures)
    assert any(m.loop == "big" for m in measures)
    # red is the middle loop: the big loop is the HQ's decision (000:133)
    assert posture_for(plan, 4)["id"] == "ii_response"
    assert posture_for(plan, 4, big_loop=True)["id"] == "i_full_response"


def test_orange_rainstorm_stop_classes_only_when_extreme(plan):
    assert not any(m.four_stop == "stop_classes" for m in measures_for(plan, "rainstorm", 3))
    assert any(
        m.four_stop == "stop_classes" for m in measures_for(plan, "rainstorm", 3, extreme=True)
    )


def test_blue_gale_has_no_big_loop(plan):
    measures = measures_for(plan, "gale", 1)
    assert measures
    assert not any(m.loop == "big" for m in measures)
    for m in plan.measures:
        if m.loop == "big":
            assert m.min_level == 4 or (m.extreme_only and m.min_level >= 3)


def test_every_measure_cites_a_source_line(plan):
    for m in plan.measures:
        assert re.search(r"\d+:\d+", m.source), m.id
    for item in (*plan.groups, *plan.special_plans):
        assert re.search(r"\d+:\d+", item.source), item.id


def test_timing_and_posture(plan):
    rules = {r["id"]: r for r in plan.timing["followup"]}
    assert rules["act_within_1_day"]["period"] == {"value": 1, "unit": "day"}
    assert all(r["basis"] == "calendar" for r in rules.values())
    assert plan.timing["heating_four_ones"]["on_site_hours"] == 1
    assert posture_for(plan, 0)["id"] == "routine"
    assert posture_for(plan, 1)["id"] == "iv_attention"
    event = next(r for r in plan.posture["rules"]["periods"] if r["id"] == "event")
    assert posture_for(plan, 0, periods=[event])["id"] == "iii_alert"
    assert posture_for(plan, 1, periods=[event])["id"] == "ii_response"  # weather on top
    assert posture_for(plan, 3, periods=[event])["id"] == "ii_response"  # never the big loop
    assert posture_for(plan, 2, extreme=True)["id"] == "ii_response"
    assert "000:135" in posture_for(plan, 2, extreme=True)["basis"]
    levels = plan.roles_channels["levels"]
    assert "sirens" in levels[4]["channels"] and "sirens" not in levels[1]["channels"]


def _broken_copy(tmp_path: Path, edit) -> Path:
    folder = tmp_path / "plan"
    shutil.copytree(PLAN_DIR, folder)
    path = folder / "measures.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    edit(data["measures"])
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return folder


def _set(measure_id: str, key: str, value):
    def edit(measures):
        next(m for m in measures if m["id"] == measure_id)[key] = value

    return edit


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("hazard", "tornado", "hazard"),
        ("group", "no_such_group", "group"),
        ("plan", "no_such_plan", "plan"),
        ("min_level", 5, "min_level"),
        ("loop", "huge", "loop"),
        ("deadline", {"relative_to": "issue", "hours": -2}, "deadline"),
        ("deadline", {"relative_to": "landfall", "hours": 1}, "deadline"),
    ],
)
def test_malformed_measure_names_file_entry_and_field(tmp_path, key, value, field):
    folder = _broken_copy(tmp_path, _set("rain_road_closure", key, value))
    with pytest.raises(DataFileError) as err:
        load_plan(folder)
    message = str(err.value)
    assert "measures.yaml" in message and "rain_road_closure" in message
    assert repr(field) in message
    assert "\n" not in message


def test_missing_group_reference(tmp_path):
    def drop_group(measures):
        del next(m for m in measures if m["id"] == "rain_stop_classes")["group"]

    with pytest.raises(DataFileError, match=r"rain_stop_classes.*'group'"):
        load_plan(_broken_copy(tmp_path, drop_group))


def test_big_loop_at_blue_is_rejected(tmp_path):
    folder = _broken_copy(tmp_path, _set("gale_all_media_warning", "loop", "big"))
    with pytest.raises(DataFileError, match=r"gale_all_media_warning.*'loop'"):
        load_plan(folder)
