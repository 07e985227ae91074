"""The duty roster (issue 19 item 8; seeds 001:10-11): loading, who is on duty at a UTC time
(handover in Beijing time), the check, the command and the briefing's on-duty line."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from cityops.cli import main
from cityops.errors import DataFileError
from cityops.geo.jurisdiction import load_jurisdiction
from cityops.response import duty
from cityops.scenarios import list_scenarios

D = dt.date

# A hand-made roster: two officers in turn, one leader, handover 08:30 Beijing time
# (00:30 UTC), 1-10 March 2026, a directory issued on 1 January 2026.
BASE = {
    "source": ["001:10", "001:11"],
    "illustrative": True,
    "timezone": "Asia/Shanghai",
    "rules": {
        "shift_hours": 24,
        "handover": "08:30",
        "leader_on_duty": True,
        "holiday_tables": True,
        "formal_staff_only": True,
        "zero_report": {"required": True, "time": None},
        "roster_due_day": 25,
        "holiday_table_due_days": 3,
        "directory_refresh_months": 6,
    },
    "duty_phone": {"number": "0477-XXXX-0000", "illustrative": True},
    "directory": {
        "updated": "2026-01-01",
        "people": [
            {"id": "a", "name": "值班员甲", "phone": "0477-XXXX-0001", "illustrative": True},
            {"id": "b", "name": "值班员乙", "phone": "0477-XXXX-0002", "illustrative": True},
            {"id": "g", "name": "保安甲", "formal_staff": False, "illustrative": True},
            {"id": "L", "name": "带班领导甲", "phone": "0477-XXXX-0101", "illustrative": True},
        ],
    },
    "roster": [
        {"from": "2026-03-01", "to": "2026-03-10", "officers": ["a", "b"], "leaders": ["L"]}
    ],
}


def write(tmp_path: Path, **changes) -> Path:
    """The base roster with top-level fields replaced, as a YAML (JSON is YAML) file."""
    data = {**BASE, **changes}
    path = tmp_path / "duty.yaml"
    path.write_text(json.dumps(data, ensure_ascii=False, default=str), encoding="utf-8")
    return path


def roster(tmp_path: Path, **changes) -> duty.Roster:
    return duty.load_roster(write(tmp_path, **changes))


def problems(findings, kind=None):
    return [f for f in findings if f.severity == "problem" and (kind is None or f.kind == kind)]


NOW = "2026-03-01T12:00Z"


# --- who is on duty ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("when", "day", "officer"),
    [
        ("2026-03-05T00:29Z", D(2026, 3, 4), "值班员乙"),  # 08:29 Beijing: yesterday's duty
        ("2026-03-05T00:29:59Z", D(2026, 3, 4), "值班员乙"),
        ("2026-03-05T00:30Z", D(2026, 3, 5), "值班员甲"),  # 08:30 Beijing: handover
        ("2026-03-05T08:29:59+08:00", D(2026, 3, 4), "值班员乙"),  # aware input converted
        ("2026-03-05T08:30+08:00", D(2026, 3, 5), "值班员甲"),
        ("2026-03-04T16:00Z", D(2026, 3, 4), "值班员乙"),  # 00:00 Beijing on the 5th
    ],
)
def test_handover_at_beijing_time_from_utc_input(tmp_path, when, day, officer):
    on = duty.on_duty(roster(tmp_path), when)
    assert on.day == day and on.officer.name == officer and on.leader.name == "带班领导甲"
    assert on.start_utc.isoformat() == f"{day}T00:30:00"  # 08:30 Beijing in UTC
    assert on.end_utc - on.start_utc == dt.timedelta(hours=24)


def test_override_and_outside_the_roster(tmp_path):
    r = roster(tmp_path, overrides=[{"date": "2026-03-05", "officer": "b", "note": "调班"}])
    assert duty.on_duty(r, "2026-03-05T01:00Z").officer.name == "值班员乙"
    assert duty.on_duty(r, "2026-03-05T01:00Z").leader.name == "带班领导甲"  # kept
    nobody = duty.on_duty(r, "2026-03-11T01:00Z")
    assert nobody.officer is None and nobody.leader is None


# --- the check --------------------------------------------------------------------------------
def test_missing_days_are_found_as_one_range(tmp_path):
    findings = duty.check_roster(roster(tmp_path), "2026-03-08", "2026-03-12", now=NOW)
    (officer,) = problems(findings, "missing_officer")
    assert (officer.first, officer.last) == (D(2026, 3, 11), D(2026, 3, 12))
    assert problems(findings, "missing_leader")[0].first == D(2026, 3, 11)
    assert not problems(duty.check_roster(roster(tmp_path), "2026-03-01", "2026-03-10", now=NOW))


def test_missing_leader_is_found_unless_the_rules_waive_it(tmp_path):
    rot = [{"from": "2026-03-01", "to": "2026-03-10", "officers": ["a", "b"]}]
    findings = duty.check_roster(roster(tmp_path, roster=rot), "2026-03-01", "2026-03-10", now=NOW)
    assert [(f.kind, f.first, f.last) for f in problems(findings)] == [
        ("missing_leader", D(2026, 3, 1), D(2026, 3, 10))
    ]
    rules = {**BASE["rules"], "leader_on_duty": False}
    waived = roster(tmp_path, roster=rot, rules=rules)
    assert not problems(duty.check_roster(waived, "2026-03-01", "2026-03-10", now=NOW))


def test_holiday_without_holiday_table_is_found(tmp_path):
    # Qingming 2026: 4-6 April off. A table covers only the 4th.
    rot = [{"from": "2026-04-01", "to": "2026-04-10", "officers": ["a", "b"], "leaders": ["L"]}]
    table = [{"holiday": "清明节", "days": [{"date": "2026-04-04", "officer": "a", "leader": "L"}]}]
    r = roster(tmp_path, roster=rot, holiday_tables=table)
    findings = duty.check_roster(r, "2026-04-01", "2026-04-10", now="2026-04-01")
    (missing,) = problems(findings)
    assert missing.kind == "holiday_table_missing" and "清明节" in missing.message
    assert (missing.first, missing.last) == (D(2026, 4, 5), D(2026, 4, 6))
    # The holiday table decides who is on duty that day (not the rotation).
    assert duty.on_duty(r, "2026-04-04T02:00Z").source == "holiday table 清明节"


def test_informal_staff_on_duty_is_a_problem(tmp_path):
    r = roster(tmp_path, overrides=[{"date": "2026-03-03", "officer": "g"}])
    (f,) = problems(duty.check_roster(r, "2026-03-01", "2026-03-10", now=NOW))
    assert f.kind == "informal_staff" and f.first == f.last == D(2026, 3, 3)


@pytest.mark.parametrize(
    ("now", "kind"),
    [
        ("2026-06-30T15:59Z", None),  # 23:59 on 30 June, Beijing time
        ("2026-06-30T16:00Z", "directory_due"),  # 1 July 00:00 Beijing: exactly 6 months
        ("2026-07-01T15:59Z", "directory_due"),  # still 1 July in Beijing
        ("2026-07-01T16:00Z", "directory_stale"),  # 2 July in Beijing: older than 6 months
    ],
)
def test_directory_is_stale_only_when_older_than_six_months(tmp_path, now, kind):
    """每半年更新一次 (001:11): a directory re-issued every half year (1 January, 1 July)
    keeps the rule, so on the day it turns exactly six months old it is due, not late (a
    note); from the next day its age exceeds the period (a problem). Ages are counted on
    Beijing dates."""
    findings = duty.check_roster(roster(tmp_path), "2026-03-01", "2026-03-01", now=now)
    kinds = {f.kind: f.severity for f in findings if f.kind.startswith("directory")}
    assert kinds == (
        {} if kind is None else {kind: "problem" if kind.endswith("stale") else "note"}
    )


def test_directory_months_are_calendar_months(tmp_path):
    r = roster(tmp_path, directory={**BASE["directory"], "updated": "2025-08-31"})
    assert not problems(duty.check_roster(r, "2026-03-01", "2026-03-01", now="2026-02-28T01:00Z"))
    late = duty.check_roster(r, "2026-03-01", "2026-03-01", now="2026-03-01T01:00Z")
    assert problems(late, "directory_stale")


def test_zero_report_expectation_is_a_note_with_its_time(tmp_path):
    (f,) = [
        f
        for f in duty.check_roster(roster(tmp_path), "2026-03-01", "2026-03-01", now=NOW)
        if f.kind == "zero_report"
    ]
    assert f.severity == "note" and "no time" in f.message and f.source == "001:10"
    rules = {**BASE["rules"], "zero_report": {"required": True, "time": "16:00"}}
    r = roster(tmp_path, rules=rules)
    (f,) = [
        f
        for f in duty.check_roster(r, "2026-03-01", "2026-03-01", now=NOW)
        if f.kind == "zero_report"
    ]
    assert "by 16:00" in f.message


def test_default_range_follows_the_due_dates(tmp_path):
    r = roster(tmp_path)
    assert duty.default_check_range(r, "2026-03-25T12:00Z")[:2] == (D(2026, 3, 25), D(2026, 3, 31))
    # After the 25th next month's table is due (每月25日前, 001:10).
    assert duty.default_check_range(r, "2026-03-26T12:00Z")[:2] == (D(2026, 3, 26), D(2026, 4, 30))
    assert duty.default_check_range(r, "2026-09-28T12:00Z")[1] == D(2026, 10, 31)
    # A holiday table is due N days before the holiday (法定节假日放假3天前); with N = 10 the
    # table of National Day (1-7 October 2026) is due by 21 September, before next month's.
    early = roster(tmp_path, rules={**BASE["rules"], "holiday_table_due_days": 10})
    assert duty.default_check_range(early, "2026-09-21T12:00Z")[1] == D(2026, 9, 30)
    first, last, why = duty.default_check_range(early, "2026-09-22T12:00Z")
    assert (first, last) == (D(2026, 9, 22), D(2026, 10, 7)) and "国庆节" in why


# --- loading ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"rules": {**BASE["rules"], "handover": 510}}, "rules.handover"),  # YAML's 8:30
        ({"rules": {**BASE["rules"], "handover": "8.30"}}, "rules.handover"),
        ({"rules": {**BASE["rules"], "shift_hours": 12}}, "rules.shift_hours"),
        (
            {"rules": {k: v for k, v in BASE["rules"].items() if k != "leader_on_duty"}},
            "rules.leader_on_duty",
        ),
        (
            {"roster": [{"from": "2026-03-01", "to": "2026-03-10", "officers": ["a", "x"]}]},
            "roster[1].officers[2]",
        ),
        (
            {"roster": [{"from": "2026-03-10", "to": "2026-03-01", "officers": ["a"]}]},
            "roster[1].to",
        ),
        ({"timezone": "Beijing"}, "timezone"),
        ({"directory": {**BASE["directory"], "updated": "2026-02-30"}}, "directory.updated[1]"),
        (
            {"directory": {**BASE["directory"], "people": [{"id": "a", "name": "值班员甲"}]}},
            "directory.people[1].illustrative",
        ),
    ],
)
def test_bad_roster_is_one_line_naming_file_and_field(tmp_path, changes, field):
    with pytest.raises(DataFileError) as err:
        roster(tmp_path, **changes)
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / "duty.yaml") in message
    assert f"field '{field}'" in message


def test_shipped_roster_covers_the_demo_dates_with_illustrative_people():
    r = duty.jurisdiction_roster(load_jurisdiction("ejin-horo"))
    assert r.illustrative and r.rules.directory_refresh_months == 6
    assert r.rules.roster_due_day == 25 and r.rules.holiday_table_due_days == 3
    for person in r.people.values():
        assert person.illustrative and "XXXX" in person.phone
    for info in list_scenarios():
        on = duty.on_duty(r, info.default_issued)
        assert on.officer is not None and on.leader is not None, info.name
        findings = duty.check_roster(r, on.day, on.day, now=info.default_issued)
        assert not problems(findings), (info.name, [f.line() for f in findings])
    # The whole of 2026, statutory holidays included (National Day from its holiday table).
    assert not problems(duty.check_roster(r, "2026-01-01", "2026-12-31", now="2026-07-10"))
    assert duty.on_duty(r, "2026-10-01T02:00Z").source == "holiday table 国庆节"


def test_kangbashi_roster_lacks_holiday_tables_and_the_check_says_so():
    r = duty.jurisdiction_roster("kangbashi")
    findings = duty.check_roster(r, "2026-10-01", "2026-10-31", now="2026-09-20")
    assert [(f.kind, f.first, f.last) for f in problems(findings)] == [
        ("holiday_table_missing", D(2026, 10, 1), D(2026, 10, 7))
    ]


# --- the command ------------------------------------------------------------------------------
def test_cli_check_exit_status(tmp_path, capsys):
    path = write(tmp_path)
    ok = ["duty", "check", "--roster", str(path), "--now", NOW]
    assert main([*ok, "--from", "2026-03-01", "--to", "2026-03-10"]) == 0
    assert "0 problem(s)" in capsys.readouterr().out
    assert main([*ok, "--from", "2026-03-01", "--to", "2026-03-12"]) == 4
    out = capsys.readouterr().out
    assert "2026-03-11..2026-03-12  missing_officer" in out
    # Without --from/--to: the rest of the month (1-31 March) is due: 11-31 March missing.
    assert main(ok) == 4
    assert "2026-03-11..2026-03-31  missing_officer" in capsys.readouterr().out
    assert main(["duty", "check", "--now", "2026-07-10T00:00Z"]) == 0  # the shipped roster


def test_cli_now(tmp_path, capsys):
    path = write(tmp_path)
    assert main(["duty", "now", "--roster", str(path), "--at", "2026-03-05T00:30Z"]) == 0
    out = capsys.readouterr().out
    assert "duty day 2026-03-05" in out and "值班员甲" in out and "[illustrative]" in out
    assert main(["duty", "now", "--roster", str(path), "--at", "2026-03-20T00:30Z"]) == 4
    assert "duty officer: NOT ASSIGNED" in capsys.readouterr().out


def test_cli_bad_file_is_one_line_exit_2(tmp_path, capsys):
    # The base roster in block YAML with the handover unquoted: YAML 1.1 reads 8:30 as 510.
    path = tmp_path / "duty.yaml"
    text = yaml.safe_dump({**BASE, "rules": {**BASE["rules"], "handover": "HANDOVER"}})
    path.write_text(text.replace("HANDOVER", "8:30"), encoding="utf-8")
    assert main(["duty", "check", "--roster", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cityops: error: ")
    assert str(path) in err and "rules.handover" in err and "quoted" in err
    assert main(["duty", "check", "--roster", str(tmp_path / "none.yaml")]) == 2
    assert "file not found" in capsys.readouterr().err
    assert main(["duty", "check", "--roster", str(write(tmp_path)), "--from", "2026-3-1"]) == 2
    assert "--from" in capsys.readouterr().err


def test_installed_command_in_a_subprocess(tmp_path):
    """Through ``python -m cityops`` as cron runs it: the status and one stderr line."""
    import subprocess
    import sys

    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "cityops", "duty", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )

    res = run("check", "--roster", str(write(tmp_path)), "--now", NOW)
    assert res.returncode == 4 and "missing_officer" in res.stdout and not res.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("source: [x]\ntimezone: Asia/Shanghai\nrules: 3\n", encoding="utf-8")
    res = run("check", "--roster", str(bad))
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "field 'rules'" in res.stderr
    res = run()
    assert res.returncode == 2 and res.stderr.count("\n") == 1


# --- the briefing -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def A(tmp_path_factory):
    from cityops.pipeline import assess
    from cityops.scenarios import write_scenario

    return assess(write_scenario("quiet-day", tmp_path_factory.mktemp("s") / "fc.nc"))


def test_briefing_shows_who_is_on_duty(A):
    from cityops.report import briefing

    zh = briefing.duty_html(A, lang="zh")
    on = duty.on_duty(duty.jurisdiction_roster(A.jurisdiction), A.now)
    assert f"值班员 {on.officer.name}（{on.officer.phone}）" in zh
    assert f"带班领导 {on.leader.name}" in zh and "示例值班表" in zh and "北京时间" in zh
    en = briefing.duty_html(A, lang="en")
    assert f"duty officer {on.officer.name}" in en and "Illustrative roster" in en
    # The template calls it right after the headline.
    nb = (Path(__file__).parents[1] / "templates" / "town_briefing.ipynb").read_text("utf-8")
    assert nb.index("headline_html") < nb.index("br.duty_html(A") < nb.index("hazard_table_html")


def test_briefing_says_when_there_is_no_roster_or_a_broken_one(tmp_path):
    folder = SimpleNamespace(path=tmp_path)
    assert duty.jurisdiction_duty_lines(folder, NOW, lang="zh") == ["值班：未提供值班表"]
    assert duty.jurisdiction_duty_lines(folder, NOW, lang="en") == [
        "On duty: no duty roster provided"
    ]
    (tmp_path / "duty.yaml").write_text("rules: [", encoding="utf-8")
    (line,) = duty.jurisdiction_duty_lines(folder, NOW, lang="zh")
    assert line.startswith("值班：值班表有误") and "duty.yaml" in line


def test_index_shows_who_is_on_duty(A, tmp_path):
    from cityops.report.index import write_index

    page = write_index(A, tmp_path, codes=A.jurisdiction.codes[:1], failures={}).read_text("utf-8")
    assert 'class="duty"' in page and "值班员" in page and "示例值班表" in page
