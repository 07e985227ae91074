"""A Chinese briefing speaks Chinese: no English prose left in any section (issue #7)."""

from __future__ import annotations

import html
import re

import pytest

from cityops.pipeline import assess
from cityops.report import briefing
from cityops.scenarios import write_scenario

SECTIONS = (
    briefing.headline_html,
    briefing.hazard_table_html,
    briefing.risk_summary_html,
    briefing.assets_html,
    briefing.geohazard_html,
    briefing.periods_html,
    briefing.response_html,
)
# Technical tokens a Chinese report legitimately shows: units, identifiers, file names.
ALLOWED = {"cityops", "MCI", "CAP", "UTC", "history", "tropical_cyclone", "Exercise"}


def _words(fragment: str) -> set[str]:
    text = re.sub(r"<pre.*?</pre>", "", fragment, flags=re.S)  # ingest log: technical record
    text = html.unescape(re.sub(r"<[^>]+>", " ", text))
    text = re.sub(r"\S+\.(nc|grib2?|csv|json|xml|yaml)\b", " ", text)
    text = re.sub(r"\b[a-z0-9]+(?:-[a-z0-9]+)+\b", " ", text)  # identifiers: july-rainstorm
    return {w for w in re.findall(r"[A-Za-z_]{4,}", text) if w not in ALLOWED}


@pytest.fixture(scope="module", params=["july-rainstorm", "january-blizzard", "quiet-day"])
def A(request, tmp_path_factory):
    return assess(write_scenario(request.param, tmp_path_factory.mktemp("s") / "fc.nc"))


def test_chinese_sections_have_no_english_prose(A):
    for code in [u.code for u in A.jurisdiction.units]:
        for section in SECTIONS:
            words = _words(section(A, code, lang="zh"))
            assert not words, (section.__name__, code, sorted(words))
    assert not _words(briefing.data_section_html(A, lang="zh"))


def test_english_sections_have_no_chinese_prose_but_names(A):
    code = A.jurisdiction.units[0].code
    for section in (briefing.headline_html, briefing.hazard_table_html):
        text = html.unescape(re.sub(r"<[^>]+>", " ", section(A, code, lang="en")))
        # Unit and place names stay Chinese (they are names); nothing else does.
        for name in [u.name_zh for u in A.jurisdiction.units] + [A.jurisdiction.name_zh]:
            text = text.replace(name, "")
        assert not re.findall(r"[\u4e00-\u9fff]+", text), section.__name__
