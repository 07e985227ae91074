"""Figures: Chinese labels render with a CJK font (no missing glyphs), maps and meteograms."""

from __future__ import annotations

import warnings

import pytest

from cityops.pipeline import assess
from cityops.report.briefing import figure_png
from cityops.report.fonts import configure_cjk_font
from cityops.report.plots import headline_card, level_map, meteogram
from tests.conftest import ROOT

ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture(scope="module")
def storm(tmp_path_factory):
    from cityops.scenarios import write_scenario

    path = write_scenario("july-rainstorm", tmp_path_factory.mktemp("p") / "storm.nc")
    return assess(path)


def test_cjk_font_is_configured():
    family = configure_cjk_font()
    assert family is not None and "CJK" in family


def test_chinese_figures_have_no_missing_glyphs(storm):
    ARTIFACTS.mkdir(exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Glyph ... missing from font" is a UserWarning
        png_map = figure_png(level_map(storm, highlight="150627100"), ARTIFACTS / "map_zh.png")
        png_met = figure_png(meteogram(storm, "阿镇"), ARTIFACTS / "meteogram_zh.png")
        png_card = figure_png(headline_card(storm, "150627100", "阿勒腾席热镇：暴雨红色"))
    for png in (png_map, png_met, png_card):
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_english_meteogram_and_unit_without_geometry(storm):
    assert meteogram(storm, "150627100", lang="en") is not None
    assert meteogram(storm, "水岸新城") is None  # no geometry: no meteogram
