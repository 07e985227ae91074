"""The nbval fixtures stay the template with another forecast (tools/make_notebooks.py)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "templates" / "town_briefing.ipynb"
FIXTURES = sorted((ROOT / "tests" / "notebooks").glob("briefing_*.ipynb"))
CHECK = "# NBVAL_CHECK_OUTPUT"


def test_three_fixtures_quiet_rainstorm_blizzard():
    names = {p.stem.removeprefix("briefing_") for p in FIXTURES}
    assert names == {"quiet-day", "july-rainstorm", "january-blizzard"}


@pytest.mark.parametrize("path", [TEMPLATE, *FIXTURES], ids=lambda p: p.stem)
def test_headline_and_hazard_table_are_checked_with_stored_output(path):
    nb = nbformat.read(path, as_version=4)
    checked = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith(CHECK)]
    assert len(checked) == 2
    assert "headline_html" in checked[0].source and "hazard_table_html" in checked[1].source
    for cell in checked:
        html = [o["data"]["text/html"] for o in cell.outputs if "text/html" in o.get("data", {})]
        assert html and cell.execution_count is not None
    # Other cells carry no output: nothing stale to confuse a reader or a diff.
    others = [c for c in nb.cells if c.cell_type == "code" and not c.source.startswith(CHECK)]
    assert all(not c.outputs for c in others)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_fixture_is_the_template_apart_from_its_parameters(path):
    template = nbformat.read(TEMPLATE, as_version=4)
    fixture = nbformat.read(path, as_version=4)
    assert len(template.cells) == len(fixture.cells)
    for a, b in zip(template.cells, fixture.cells, strict=True):
        if "parameters" in a.metadata.get("tags", []):
            assert "parameters" in b.metadata.get("tags", [])
            continue
        assert a.source == b.source, "run tools/make_notebooks.py after editing the template"


def test_fixture_outputs_name_the_expected_level():
    def shown(name):
        nb = nbformat.read(ROOT / "tests" / "notebooks" / f"briefing_{name}.ipynb", as_version=4)
        return "".join(
            o["data"].get("text/html", "")
            for c in nb.cells
            if c.cell_type == "code"
            for o in c.outputs
        )

    assert "阿勒腾席热镇：未来72小时无达到预警信号标准的天气" in shown("quiet-day")
    assert "阿勒腾席热镇：07月10日19时起可能出现雷电、冰雹、暴雨红色预警信号标准天气" in shown(
        "july-rainstorm"
    )
    # Blizzard is orange at 苏布尔嘎镇, as the scenario describes it ("苏布尔嘎镇等地10毫米以上
    # （橙色）"); red snow touched only the edge of the town, which the default level policy
    # (a tenth of the area at one time) no longer counts.
    assert "苏布尔嘎镇：01月21日12时起可能出现道路结冰红色预警信号标准天气" in shown(
        "january-blizzard"
    )
