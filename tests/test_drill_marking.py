"""A drill shows as a drill on every page and image people forward (issue 18, item 7)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from cityops.pipeline import assess
from cityops.report.briefing import headline_text
from cityops.report.plots import headline_card
from cityops.scenarios import write_scenario

TAG = "【演练】"


@pytest.fixture(scope="module")
def drill_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("drill")
    fc = write_scenario("july-rainstorm", d / "fc.nc")
    out = d / "brief"
    res = subprocess.run(
        [sys.executable, "-m", "cityops.cli", "-q", "brief", str(fc), "--out", str(out),
         "--towns", "阿镇", "--no-ledger"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    return fc, out


def test_briefing_and_index_say_exercise_at_the_top(drill_run):
    _, out = drill_run
    page = (out / "150627100" / "briefing.html").read_text(encoding="utf-8")
    assert re.search(r"<title>【演练】阿勒腾席热镇气象风险简报</title>", page)
    body = page[page.index("<body") :]
    text = re.sub(r"<[^>]+>", " ", body)
    # the banner comes before the headline a reader sees first
    assert text.index("本页内容基于演练数据") < text.index("约占全镇面积")
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "<title>【演练】" in index and "不是真实预警" in index


def test_headline_card_is_tagged(drill_run):
    fc, _ = drill_run
    a = assess(fc)
    fig = headline_card(a, "150627100", headline_text(a, "150627100"))
    assert fig._suptitle.get_text().startswith(TAG)
    en = headline_card(a, "150627100", headline_text(a, "150627100", lang="en"), lang="en")
    assert en._suptitle.get_text().startswith("[EXERCISE]")


def test_a_real_forecast_has_no_drill_marks(tmp_path):
    import numpy as np

    from cityops.report.briefing import title_html
    from tests.conftest import make_forecast

    lat = np.round(np.arange(38.85, 39.90, 0.05), 3)
    lon = np.round(np.arange(108.95, 110.50, 0.05), 3)
    make_forecast({"precip": np.zeros(6)}, lat=lat, lon=lon).to_netcdf(tmp_path / "fc.nc")
    a = assess(tmp_path / "fc.nc")
    assert not a.is_exercise
    assert TAG not in title_html(a, "150627100")
    fig = headline_card(a, "150627100", headline_text(a, "150627100"))
    assert not fig._suptitle.get_text().startswith(TAG)
