"""Special periods: holidays, seasons, events and the attention rules (cityops.geo.calendar)."""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import chinese_calendar
import pandas as pd
import pytest

from cityops.errors import DataFileError
from cityops.geo import calendar
from cityops.geo.calendar import apply_attention, holidays, load_events, seasons, special_periods
from cityops.geo.jurisdiction import load_jurisdiction

D = dt.date


@pytest.fixture(scope="module")
def ejin():
    return load_jurisdiction("ejin-horo")


def _one(periods, name_zh):
    found = [p for p in periods if name_zh in p.name_zh.split("、")]
    assert len(found) == 1, [p.name_zh for p in periods]
    return found[0]


def test_national_day_2025_merges_mid_autumn():
    p = _one(holidays("2025-09-25", "2025-10-10"), "国庆节")
    assert (p.start, p.end) == (D(2025, 10, 1), D(2025, 10, 8))
    assert p.name_zh == "国庆节、中秋节"
    assert p.name_en == "National Day and Mid-Autumn Festival"
    assert p.source.startswith("chinese-calendar")


def test_spring_festival_2026_from_package():
    # chinese-calendar 1.11.0 knows 2026: Spring Festival 15-23 Feb 2026 (9 days off).
    on, name = chinese_calendar.get_holiday_detail(D(2026, 2, 15))
    assert on and name == chinese_calendar.Holiday.spring_festival.value
    p = _one(holidays("2026-02-01", "2026-02-28"), "春节")
    assert (p.start, p.end) == (D(2026, 2, 15), D(2026, 2, 23))
    assert p.name_en == "Spring Festival"


def test_fallback_table_when_package_lacks_year(monkeypatch):
    real = chinese_calendar.get_holiday_detail

    def lacking_2026(day):
        if day.year >= 2026:
            raise NotImplementedError("no available data for year 2026")
        return real(day)

    monkeypatch.setattr(chinese_calendar, "get_holiday_detail", lacking_2026)
    got = holidays("2026-01-01", "2026-12-31")
    assert [(p.name_zh, p.start, p.end) for p in got] == [
        ("元旦", D(2026, 1, 1), D(2026, 1, 3)),
        ("春节", D(2026, 2, 15), D(2026, 2, 23)),
        ("清明节", D(2026, 4, 4), D(2026, 4, 6)),
        ("劳动节", D(2026, 5, 1), D(2026, 5, 5)),
        ("端午节", D(2026, 6, 19), D(2026, 6, 21)),
        ("中秋节", D(2026, 9, 25), D(2026, 9, 27)),
        ("国庆节", D(2026, 10, 1), D(2026, 10, 7)),
    ]
    assert all("holidays.yaml" in p.source for p in got)
    # A year neither source knows warns instead of failing.
    with pytest.warns(UserWarning, match="2031"):
        assert holidays("2031-10-01", "2031-10-07") == []


def test_heating_season_crosses_the_year():
    def heating(day):
        return [p for p in seasons(day, day) if p.key == "heating_season"]

    assert heating(D(2026, 1, 10)) and heating(D(2025, 12, 1))
    assert heating(D(2026, 1, 10))[0].start == D(2025, 10, 15)
    assert not heating(D(2026, 5, 1))
    geo = [p for p in seasons("2026-05-01", "2026-05-01") if p.key == "geohazard_key_period"]
    assert (geo[0].start, geo[0].end) == (D(2026, 5, 1), D(2026, 9, 30))


def test_special_periods_frame(ejin):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame = special_periods(ejin, "2026-07-10", "2026-07-12")
    assert list(frame.columns) == calendar.COLUMNS
    naadam = frame[frame["name_zh"] == "那达慕大会"].iloc[0]
    assert naadam["kind"] == "event"
    assert naadam["unit_code"] == "150627100"
    assert naadam["expected_crowd"] == 30000
    assert naadam["owners"][:2] == ["文旅局", "公安局"]
    assert set(frame["kind"]) == {"event", "season"}
    season = frame[frame["kind"] == "season"]
    geo = season["key"] == "geohazard_key_period"
    assert (season.loc[~geo, "unit_code"] == "").all()
    # The geological-hazard key period concerns only the towns with registered points.
    assert sorted(season.loc[geo, "unit_code"]) == ["150627101", "150627102", "150627103"]


def _table(*rows):
    return pd.DataFrame(rows, columns=["town_code", "hazard", "level", "onset_utc", "end_utc"])


def test_event_raises_attention_only_in_its_town(ejin):
    periods = special_periods(ejin, "2026-07-01", "2026-07-31")
    # Gale at blue on 10 Jul 2026 14:00-20:00 Beijing, in the Naadam town and in another one.
    table = _table(
        ("150627100", "gale", 1, "2026-07-10T06:00:00Z", "2026-07-10T12:00:00Z"),
        ("150627102", "gale", 1, "2026-07-10T06:00:00Z", "2026-07-10T12:00:00Z"),
        ("150627100", "gale", 0, "", ""),
        # Before the event in Beijing time (9 Jul 23:00 Beijing = 9 Jul 15:00Z).
        ("150627100", "gale", 1, "2026-07-09T10:00:00Z", "2026-07-09T15:00:00Z"),
    )
    out = apply_attention(table, periods)
    assert list(out["attention_level"]) == [2, 1, 0, 1]
    assert "那达慕大会（预计30000人）" in out.loc[0, "special_conditions"]
    assert out.loc[0, "extra_owners"].split("、")[:2] == ["文旅局", "公安局"]
    assert "那达慕" not in out.loc[1, "special_conditions"]
    assert out.loc[1, "extra_owners"] == ""
    assert "主汛期" in out.loc[1, "special_conditions"]  # whole-jurisdiction season
    assert "那达慕" not in out.loc[3, "special_conditions"]
    assert "attention_level" not in table  # a copy
    # Red stays red.
    red = apply_attention(_table(("150627100", "gale", 4, "2026-07-10T06:00:00Z", "")), periods)
    assert red.loc[0, "attention_level"] == 4


def test_holiday_and_geohazard_rules(ejin):
    periods = special_periods(ejin, "2026-06-19", "2026-06-21")
    table = _table(
        ("150627106", "rainstorm", 2, "2026-06-20T02:00:00Z", "2026-06-20T10:00:00Z"),
        ("150627104", "rainstorm", 2, "2026-06-20T02:00:00Z", "2026-06-20T10:00:00Z"),
    )
    out = apply_attention(table, periods, rules=ejin.path / "attention.yaml")
    assert list(out["attention_level"]) == [3, 2]  # 伊金霍洛镇 is a scenic unit
    assert "端午节" in out.loc[1, "special_conditions"]
    assert "文旅局" in out.loc[0, "extra_owners"] and "文旅局" not in out.loc[1, "extra_owners"]
    # 苏布尔嘎镇 has no geological-hazard points (002:1426): no geohazard concern, and the
    # key period is not among its special conditions.
    assert "地质灾害" not in out.loc[1, "extra_concerns"]
    assert "地质灾害" not in out.loc[1, "special_conditions"]
    assert "地质灾害" not in out.loc[0, "special_conditions"]  # 伊金霍洛镇: none either


EVENT = """\
  - name_zh: 测试活动
    name_en: Test event
    unit: {unit}
    start: 2026-07-10
{end}    expected_crowd: 100
    owners: [文旅局]
    source: test
"""


def _events_file(tmp_path: Path, **bad) -> Path:
    good = EVENT.format(unit="阿镇", end="    end: 2026-07-11\n")
    wrong = EVENT.format(unit=bad.get("unit", "阿镇"), end=bad.get("end", "    end: 2026-07-11\n"))
    path = tmp_path / "events.yaml"
    path.write_text("source: test\nevents:\n" + good + wrong, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("bad", "field", "why"),
    [
        ({"end": ""}, "end", "missing"),
        ({"end": "    end: 2026-07-01\n"}, "end", "before start"),
        ({"unit": "札萨克社区"}, "unit", "unknown unit"),
    ],
)
def test_bad_event_rows(ejin, tmp_path, bad, field, why):
    path = _events_file(tmp_path, **bad)
    with pytest.raises(DataFileError) as info:
        load_events(ejin, path)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(path) in msg and "row 2 (line 11)" in msg
    assert f"field '{field}'" in msg and why in msg


def test_shipped_events_resolve(ejin):
    events = load_events(ejin)
    assert {e.unit_code for e in events} <= set(ejin.codes)
    assert any(e.name_zh == "那达慕大会" and e.expected_crowd == 30000 for e in events)
