"""The national defence guidelines (防御指南) of each warning signal, as validated data."""

from __future__ import annotations

import copy

import pytest
import yaml

from cityops.errors import InputError
from cityops.resources import package_data
from cityops.response.guidelines import Guidance, guidance, load_guidelines

SHIPPED = package_data("data", "defence_guidelines.yaml")

# The national signals and their levels (CMA Order No. 16 annex; haze red from the 2013 revision).
NATIONAL_LEVELS = {
    "rainstorm": {1, 2, 3, 4},
    "blizzard": {1, 2, 3, 4},
    "cold_wave": {1, 2, 3, 4},
    "gale": {1, 2, 3, 4},
    "typhoon": {1, 2, 3, 4},
    "sandstorm": {2, 3, 4},
    "heat": {2, 3, 4},
    "lightning": {2, 3, 4},
    "fog": {2, 3, 4},
    "road_icing": {2, 3, 4},
    "haze": {2, 3, 4},
    "drought": {3, 4},
    "hail": {3, 4},
    "frost": {1, 2, 3},
}
EXPECTED = {(h, lv) for h, levels in NATIONAL_LEVELS.items() for lv in levels}


@pytest.fixture(scope="module")
def shipped():
    return load_guidelines()


def test_shipped_file_has_exactly_the_national_signals(shipped):
    assert set(shipped) == EXPECTED
    assert all(isinstance(g, Guidance) for g in shipped.values())
    # No invented levels: heat has no blue, frost no red, drought and hail only orange and red.
    assert guidance("heat", 1) is None
    assert guidance("frost", 4) is None
    assert guidance("drought", 2) is None


def test_entries_are_complete_and_within_limits(shipped):
    for (hazard, level), g in shipped.items():
        assert (g.hazard, g.level) == (hazard, level)
        assert g.wording in {"annex", "condensed"}
        assert g.guidance_zh and len(g.guidance_zh) == len(g.guidance_en)
        assert len(g.key_zh) <= 24, (hazard, level, g.key_zh)
        assert len(g.key_en) <= 90, (hazard, level, g.key_en)
        assert g.source


def test_low_temperature_and_level_zero_have_no_national_guideline():
    assert guidance("low_temperature", 2) is None
    assert not any(h == "low_temperature" for h, _ in load_guidelines())
    assert guidance("rainstorm", 0) is None
    assert guidance("rainstorm", 5) is None
    assert guidance("no_such_hazard", 4) is None


def test_rainstorm_red_stops_classes_and_business():
    g = guidance("rainstorm", 4)
    assert g is not None and g.name_zh == "暴雨"
    text = "".join(g.guidance_zh)
    assert "停课" in text and "停业" in text
    assert "停止集会、停课、停业（除特殊行业外）；" in g.guidance_zh


def test_haze_red_names_the_2013_revision():
    assert guidance("haze", 4).source == "CMA 2013 revised haze signal"
    assert guidance("haze", 3).source.startswith("CMA Order No. 16 (2007)")


def test_default_load_is_cached_but_returns_a_fresh_dict():
    a, b = load_guidelines(), load_guidelines()
    assert a == b and a is not b
    assert a[("rainstorm", 4)] is b[("rainstorm", 4)]


# --- broken files -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw():
    return yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))


def _write(tmp_path, data):
    path = tmp_path / "defence_guidelines.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _broken(raw, edit):
    data = copy.deepcopy(raw)
    edit(data)
    return data


def _red_rain(data):
    return data["hazards"]["rainstorm"]["levels"][4]


@pytest.mark.parametrize(
    ("edit", "field", "problem"),
    [
        (lambda d: _red_rain(d).pop("key_zh"), "hazards.rainstorm.levels.4.key_zh", "missing"),
        (
            lambda d: _red_rain(d).update(key_zh="停" * 31),
            "hazards.rainstorm.levels.4.key_zh",
            "31 characters, expected at most 24",
        ),
        (
            lambda d: d["hazards"]["rainstorm"]["levels"].update({5: _red_rain(d)}),
            "hazards.rainstorm.levels.5",
            "expected an integer 1-4",
        ),
        (
            lambda d: _red_rain(d)["guidance_en"].pop(),
            "hazards.rainstorm.levels.4.guidance_en",
            "2 items, expected 3",
        ),
        (
            lambda d: _red_rain(d).update(wording="paraphrase"),
            "hazards.rainstorm.levels.4.wording",
            "expected one of annex, condensed",
        ),
        (
            lambda d: _red_rain(d).update(guidance_zh=[]),
            "hazards.rainstorm.levels.4.guidance_zh",
            "non-empty list",
        ),
        (
            lambda d: d["hazards"]["heat"].pop("name_zh"),
            "hazards.heat.name_zh",
            "missing",
        ),
    ],
    ids=["missing-key_zh", "long-key_zh", "level-5", "list-lengths", "wording", "empty", "name"],
)
def test_broken_file_names_file_and_field(tmp_path, raw, edit, field, problem):
    path = _write(tmp_path, _broken(raw, edit))
    with pytest.raises(InputError) as err:
        load_guidelines(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {field}: "), message
    assert "defence_guidelines.yaml" in message
    assert problem in message


def test_rewritten_shipped_file_loads_from_a_path(tmp_path, raw, shipped):
    assert load_guidelines(_write(tmp_path, raw)) == shipped
