"""What a reader sees: index.html and a briefing rendered in headless Chromium (no network).

The screenshots are kept in ``tests/artifacts/`` for a person to look at.
"""

from __future__ import annotations

import numpy as np
import pytest
from browser import ARTIFACTS, chromium, dump_dom, screenshot
from PIL import Image

from cityops.brief import BriefOptions, run_briefings
from cityops.rules.table import level_names
from cityops.scenarios import write_scenario

pytestmark = pytest.mark.slow

TOWN = "150627100"  # 阿勒腾席热镇: red (rainstorm) in july-rainstorm


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    chromium()
    tmp = tmp_path_factory.mktemp("render")
    fc = write_scenario("july-rainstorm", tmp / "july.nc")
    index = run_briefings(fc, tmp / "run", BriefOptions(towns=TOWN, ledger=""))
    return index.parent


def _share_of_colour(png, hex_colour: str, tol: int = 12) -> float:
    rgb = np.asarray(Image.open(png).convert("RGB"), dtype=int)
    target = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    close = (np.abs(rgb - target) <= tol).all(axis=-1)
    return float(close.mean())


def test_index_shows_units_in_signal_colours(run):
    png = screenshot(run / "index.html", ARTIFACTS / "index_zh.png", width=1100, height=1500)
    assert Image.open(png).size == (1100, 1500)
    colours = {k: v["colour"] for k, v in level_names().items()}
    # Most units are red in this scenario and 乌兰木伦镇 is yellow (under the default level
    # policy: orange reaches only a sliver of it): both on the map and badges.
    assert _share_of_colour(png, colours[4]) > 0.01
    assert _share_of_colour(png, colours[2]) > 0.0005
    dom = dump_dom(run / "index.html")
    assert "阿勒腾席热镇" in dom and "红色" in dom
    assert f'href="{TOWN}/briefing.html"' in dom
    assert 'href="cap/cap_rainstorm.xml"' in dom


@pytest.mark.parametrize(("width", "name"), [(1000, "desktop"), (390, "phone")])
def test_briefing_renders_with_town_level_and_onset(run, width, name):
    page = run / TOWN / "briefing.html"
    png = screenshot(page, ARTIFACTS / f"briefing_{TOWN}_{name}.png", width=width, height=2400)
    assert Image.open(png).size == (width, 2400)
    assert _share_of_colour(png, level_names()[4]["colour"]) > 0.001  # the red headline box
    dom = dump_dom(page)
    assert "阿勒腾席热镇" in dom
    assert "红色" in dom
    assert "北京时间" in dom
    assert "<script" not in dom.split("</head>", 1)[-1]  # no code cells, no input scripts
