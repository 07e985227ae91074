"""Issuing a warning as a recorded act, and the review counting from the issue (issue 18,
items 1 and 6), through the CLI on the sample rainstorm."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cityops import ledger
from cityops.scenarios import write_scenario

ENV_KEYS = {"MPLBACKEND": "agg"}
ALTAN, EJIN, JASAG, LINGANG, HONGQ = "150627100", "150627106", "150627101", "150627407", "150627105"


def cityops(*args, env=None):
    import os

    return subprocess.run(
        [sys.executable, "-m", "cityops.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **ENV_KEYS, **(env or {})},
        timeout=600,
    )


def one_error(res, *words):
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cityops: error: "), res.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture(scope="module")
def drill(tmp_path_factory):
    """The sample rainstorm assessed; a forecaster issues two towns red and three orange,
    later updates one and lifts another."""
    d = tmp_path_factory.mktemp("issue")
    fc = write_scenario("july-rainstorm", d / "fc.nc", observed_out=d / "obs.nc")
    # Assessed at 10:30 UTC, when the rainstorm red of 阿镇 is due (onset 13 UTC, 3 h lead).
    res = cityops("-q", "assess", fc, "--out", d / "run", "--now", "2026-07-10T10:30Z")
    assert res.returncode == 0, res.stderr
    db = d / "ledger.sqlite"
    steps = [
        # the run proposes red for 阿镇; 伊金霍洛镇 red on the forecaster's judgement
        ("--towns", "阿镇", "--at", "2026-07-10T10:40Z"),
        ("--towns", "伊金霍洛镇", "--level", "red", "--at", "2026-07-10T10:40Z", "--lang", "both"),
        ("--towns", "临港经济区", "--at", "2026-07-10T10:45Z"),  # proposed orange
        ("--towns", "札萨克镇,红庆河镇", "--level", "橙色", "--at", "2026-07-10T10:50Z"),
        ("--towns", "伊金霍洛镇", "--level", "3", "--at", "2026-07-10T11:00Z"),  # update
        ("--towns", "红庆河镇", "--lift", "--at", "2026-07-10T11:30Z"),  # lift
    ]
    outs = []
    for extra in steps:
        res = cityops("issue", d / "run", "--hazard", "rainstorm", "--by", "值班预报员 王", *extra,
                      "--ledger", db)  # fmt: skip
        assert res.returncode == 0, res.stderr
        outs.append(res.stdout)
    return {"dir": d, "run": d / "run", "db": db, "obs": d / "obs.nc", "stdout": outs}


def test_every_act_is_in_the_ledger(drill):
    res = cityops("signals", "--ledger", drill["db"])
    assert res.returncode == 0, res.stderr
    from io import StringIO

    s = pd.read_csv(StringIO(res.stdout), dtype=str, keep_default_na=False)
    assert len(s) == 7
    assert (s.status == "Exercise").all()  # scenario inputs are a drill
    assert (s.issuer == "值班预报员 王").all()
    first = s[s.town_code == ALTAN].iloc[0]
    assert (first.level, first.action, first.issued_utc) == ("4", "issue", "2026-07-10T10:40:00Z")
    # valid from the run's onset (after the issue time), as the run proposed it
    assert first.valid_from_utc > first.issued_utc
    ejin = s[s.town_code == EJIN].reset_index(drop=True)
    assert list(ejin.action) == ["issue", "update"] and list(ejin.level) == ["4", "3"]
    assert ejin.supersedes[1] == ejin.identifier[0] and ejin.superseded_by[0] == ejin.identifier[1]
    hq = s[s.town_code == HONGQ].reset_index(drop=True)
    assert list(hq.action) == ["issue", "lift"] and hq.level[1] == "0"
    assert "update" in drill["stdout"][4] and "replaces" in drill["stdout"][4]


def test_review_counts_lead_time_from_the_issue(drill):
    out = drill["dir"] / "review"
    res = cityops("-q", "review", "--forecast", drill["db"], "--observed", drill["obs"],
                  "--out", out, "--no-case", "--ledger", drill["db"])  # fmt: skip
    assert res.returncode == 0, res.stderr
    warnings = pd.read_csv(out / "warnings.csv", dtype=str, keep_default_na=False)
    assert set(warnings.source) == {"ledger"}
    assert set(warnings.town_code) == {ALTAN, EJIN, LINGANG, JASAG, HONGQ}
    cases = pd.read_csv(out / "verification.csv", dtype=str, keep_default_na=False)
    day = cases[
        (cases.hazard == "rainstorm") & (cases.window_start_utc.str.startswith("2026-07-10"))
    ]
    # Lead times count from the issue times in the ledger, never from the model run (00 UTC).
    issued = ledger.list_signals(drill["db"])
    warned = day[(day.first_warning_utc != "") & (day.outcome == "hit")]
    assert len(warned) >= 1, day.to_dict("records")
    for case in warned.itertuples():
        times = set(issued[issued.town_code == case.town_code].issued_utc)
        assert case.first_warning_utc in times, (case.town_code, case.first_warning_utc, times)
        assert case.first_warning_utc != "2026-07-10T00:00:00Z"
        lead = pd.Timestamp(case.observed_onset_utc) - pd.Timestamp(case.first_warning_utc)
        assert float(case.lead_time_min) == lead / pd.Timedelta("1min")
    # A unit nobody issued a signal for is a miss, whatever the run proposed.
    assert (day[day.town_code == "150627104"].outcome == "miss").all()


T = "2026-07-10T11:45Z"


def test_refusals_write_nothing(drill, tmp_path):
    db = drill["db"]
    before = len(ledger.list_signals(db))
    run = drill["run"]
    cases = [
        (("--towns", "阿镇", "--at", "2099-01-01T00:00Z"), ("in the future",)),
        (("--towns", "阿镇", "--at", "2026-07-09T00:00Z"), ("before the forecast was issued",)),
        (("--towns", "纳林陶亥镇", "--lift"), ("150627103", "no rainstorm signal in force")),
        (
            ("--towns", "乌兰木伦镇", "--at", T),
            ("150627102", "proposes no rainstorm signal", "--level"),
        ),
        (("--towns", "水岸新城", "--level", "2", "--at", T), ("150627L01", "not assessed")),
        # a stale run: the issue time after its last valid time
        (("--towns", "阿镇", "--level", "2"), ("after the run's last valid time",)),
        # a level the hazard's table does not define (lightning has no blue)
        (
            ("--towns", "阿镇", "--hazard", "lightning", "--level", "1", "--at", T),
            ("no such signal",),
        ),
        # the same level again is not an update
        (("--towns", "阿镇", "--level", "red", "--at", T), ("in force already",)),
        (("--towns", "阿镇", "--lift", "--level", "2"), ("--lift and --level",)),
        (("--towns", "阿镇", "--level", "5"), ("--level '5'",)),
        # all or none: the second unit fails, the first is not recorded either
        (("--towns", "纳林陶亥镇,水岸新城", "--level", "2", "--at", T), ("150627L01",)),
        # the same act twice
        (("--towns", "阿镇", "--at", "2026-07-10T10:40Z"), ("in force already",)),
        # one act, one colour: the run proposes red and orange
        (("--towns", "阿镇,临港经济区", "--lift", "--at", T), ("one colour",)),
    ]
    packs = sorted((db.parent / "issued").iterdir())
    for extra, words in cases:
        hazard = () if "--hazard" in extra else ("--hazard", "rainstorm")
        res = cityops("issue", run, *hazard, "--by", "王", *extra, "--ledger", db)
        one_error(res, *words)
    assert sorted((db.parent / "issued").iterdir()) == packs  # no pack of a refused act
    res = cityops("issue", run, "--hazard", "rainstorm", "--by", "王\ncityops: forged",
                  "--towns", "阿镇", "--ledger", db)  # fmt: skip
    one_error(res, "--by")
    res = cityops("issue", tmp_path, "--hazard", "rainstorm", "--by", "王", "--towns", "阿镇",
                  "--ledger", db)  # fmt: skip
    one_error(res, "not a cityops brief or assess run")
    assert len(ledger.list_signals(db)) == before


def test_signals_never_creates_a_ledger(tmp_path):
    res = cityops("signals", "--ledger", tmp_path / "typo.sqlite")
    one_error(res, "typo.sqlite")
    assert list(tmp_path.iterdir()) == []


def test_a_version_1_ledger_gains_the_signals_table(tmp_path):
    """A ledger as cityops of schema 1 left it migrates to the current schema (signals, acks,
    task triggers, the rebuilt task table with proposed/approved states)."""
    db = tmp_path / "old.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_utc TEXT NOT NULL)"
        )
        for statement in ledger._MIGRATIONS[1]:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version VALUES (1, '2026-01-01T00:00:00Z')")
    conn = ledger.connect(db, create=False)
    try:
        assert ledger.list_signals(conn).empty
        version = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
        assert version == ledger.SCHEMA_VERSION == 6
        cols = {r[1] for r in conn.execute("PRAGMA table_info(tasks)")}
        assert {"scope", "loop_basis", "triggers"} <= cols
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()


# --------------------------------------------------------------------------- what is sent
CAP_XSD = Path(__file__).resolve().parents[2] / "shared" / "cap" / "CAP-v1.2.xsd"
NS = {"c": "urn:oasis:names:tc:emergency:cap:1.2"}


def _packs(drill) -> list[Path]:
    """The acts' packs in issue order (their GB/T identifiers sort by entry time, sequence)."""
    return sorted((drill["db"].parent / "issued").iterdir())


def test_each_act_sends_one_schema_valid_message(drill):
    from lxml import etree

    packs = _packs(drill)
    assert len(packs) == 6
    if not CAP_XSD.exists():
        pytest.skip(f"CAP schema {CAP_XSD} is absent")
    schema = etree.XMLSchema(etree.parse(str(CAP_XSD)))
    for pack in packs:
        doc = etree.parse(str(pack / "cap.xml"))
        assert schema.validate(doc), (pack.name, schema.error_log)


def test_messages_follow_gbt_35965_and_reference_issued_messages_only(drill):
    from lxml import etree

    packs = _packs(drill)
    # ZZZZZZDDDUUUXX_YYYYMMDDhhmmss_N: sender code, Beijing entry time, sequence in the second
    assert [p.name for p in packs[:2]] == [
        "15062741600000_20260710184000_0",
        "15062741600000_20260710184000_1",
    ]
    roots = [etree.parse(str(p / "cap.xml")).getroot() for p in packs]
    kinds = [r.findtext("c:msgType", namespaces=NS) for r in roots]
    assert kinds == ["Alert", "Update", "Update", "Update", "Update", "Update"]
    sent = [r.findtext("c:sent", namespaces=NS) for r in roots]
    assert sent[0] == "2026-07-10T18:40:00+08:00"  # the issue time, not the model run's
    issued = {r.findtext("c:identifier", namespaces=NS) for r in roots}
    for root in roots[1:]:
        assert root.findtext("c:sender", namespaces=NS) == "15062741600000"
        assert root.findtext("c:status", namespaces=NS) == "Exercise"
        for ref in root.findtext("c:references", namespaces=NS).split():
            _sender, ident, when = ref.split(",")
            assert ident in issued and when.endswith("+08:00")
    # After the update and the lift, the last message states the hazard as it stands:
    # 阿镇 red; 伊金霍洛镇, 临港经济区, 札萨克镇 orange; 红庆河镇 lifted (absent).
    last = roots[-1]
    by_level = {}
    for info in last.findall("c:info", NS):
        codes = {
            p.findtext("c:valueName", namespaces=NS).removeprefix("level:")
            for p in info.findall("c:parameter", NS)
            if p.findtext("c:valueName", namespaces=NS).startswith("level:")
        }
        by_level[info.findtext("c:severity", namespaces=NS)] = codes
        assert info.findtext("c:eventCode/c:value", namespaces=NS) == "11B03"
        params = {
            p.findtext("c:valueName", namespaces=NS): p.findtext("c:value", namespaces=NS)
            for p in info.findall("c:parameter", NS)
        }
        assert params["awareness_type"] == "10; Rain"
        for area in info.findall("c:area", NS):
            assert area.findtext("c:geocode/c:valueName", namespaces=NS) == "GB/T 10114"
    assert by_level == {"Extreme": {ALTAN}, "Severe": {EJIN, LINGANG, JASAG}}


def test_an_independent_reader_parses_every_message(drill):
    capparser = pytest.importorskip("capparser")
    for pack in _packs(drill):
        alert = capparser.parse(stringXML=(pack / "cap.xml").read_text(encoding="utf-8"))
        assert alert.getIdentifier() == pack.name
        assert str(alert.getStatus()).endswith("Exercise")


def test_public_texts_sms_and_card(drill):
    first, second = _packs(drill)[:2]
    text = (first / "message_zh.txt").read_text(encoding="utf-8")
    assert text.startswith("【演练】")
    assert "伊金霍洛旗气象台2026年07月10日18时40分发布暴雨红色预警信号：预计" in text
    assert "阿勒腾席热镇3小时内降雨量将达100毫米以上，请注意防范。" in text
    assert "停课" in text and "防御指南" in text  # the national guidelines of red
    for pack in _packs(drill):
        sms = (pack / "sms_zh.txt").read_text(encoding="utf-8").strip()
        assert sms.startswith("【演练】") and len(sms) <= 70, sms
    # the second act (伊金霍洛镇 red, --lang both) has English too
    en = (second / "sms_en.txt").read_text(encoding="utf-8").strip()
    assert en.startswith("[EXERCISE]") and len(en) <= 160 and "red" in en
    lift = (_packs(drill)[-1] / "message_zh.txt").read_text(encoding="utf-8")
    assert "解除红庆河镇暴雨橙色预警信号" in lift and "继续生效" in lift
    png = (first / "card_zh.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_dissemination_list_per_message(drill):
    first = _packs(drill)[0]
    raw = (first / "dissemination.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # Excel reads UTF-8 only with the BOM
    dis = pd.read_csv(first / "dissemination.csv", dtype=str, encoding="utf-8-sig")
    assert set(dis.message) == {first.name}
    assert set(dis.town_code) == {ALTAN}
    assert "town_commanders" in set(dis.recipient)
    assert (dis.issued_bjt == "2026-07-10 18:40").all()  # Beijing time
    # red reaches everyone, sirens included (the plan: only in an emergency)
    assert dis.channels_zh.str.contains("人民防空警报系统").all()
    # acknowledgements are recorded against the message
    res = cityops("signals", "--ack", first.name, "--recipient", "town_commanders",
                  "--by", "阿镇值班 李", "--at", "2026-07-10T10:50Z", "--ledger", drill["db"])  # fmt: skip
    assert res.returncode == 0, res.stderr
    res = cityops("signals", "--acks", "--ledger", drill["db"])
    assert first.name in res.stdout and "阿镇值班 李" in res.stdout
    one_error(
        cityops("signals", "--ack", "nope", "--recipient", "x", "--by", "y",
                "--ledger", drill["db"]),
        "nope",
    )  # fmt: skip


def test_sign_issues_what_the_run_proposes_once(tmp_path):
    fc = write_scenario("july-rainstorm", tmp_path / "fc.nc")
    run = tmp_path / "run"
    res = cityops("-q", "assess", fc, "--out", run, "--now", "2026-07-10T10:30Z")
    assert res.returncode == 0, res.stderr
    db = tmp_path / "ledger.sqlite"
    res = cityops("sign", run, "--by", "王值班", "--at", "2026-07-10T10:35Z", "--ledger", db)
    assert res.returncode == 0, res.stderr
    s = ledger.list_signals(db)
    table = pd.read_csv(run / "town_hazards.csv", dtype=str, keep_default_na=False)
    proposed = table[pd.to_numeric(table.proposed_level, errors="coerce").fillna(0) >= 1]
    assert len(s) == len(proposed) > 0
    assert set(zip(s.town_code, s.hazard, s.level.astype(str), strict=True)) == set(
        zip(proposed.town_code, proposed.hazard, proposed.proposed_level, strict=True)
    )
    # one message per hazard and level; signing again changes nothing
    res = cityops("sign", run, "--by", "王值班", "--at", "2026-07-10T10:36Z", "--ledger", db)
    assert res.returncode == 0 and "nothing to issue" in res.stdout
    assert len(ledger.list_signals(db)) == len(s)


def test_the_review_reads_the_sent_messages_too(drill):
    """The CAP files of the packs are warnings (issued), read back by event code and levels."""
    from cityops.review.warnings import warnings_from_cap

    w = warnings_from_cap([p / "cap.xml" for p in _packs(drill)])
    assert set(w.hazard) == {"rainstorm"}
    first = w[w.issued_utc == pd.Timestamp("2026-07-10T10:40")]
    assert set(first.town_code) == {ALTAN, EJIN}  # both red acts of 18:40 Beijing time


def test_drills_and_real_warnings_never_see_each_other(drill, tmp_path):
    """A real act beside a drill in one ledger: the real red is a new Alert (not an Update of
    the drill), and a drill lift cannot end it."""
    import xarray as xr
    from lxml import etree

    ds = xr.load_dataset(drill["dir"] / "fc.nc")
    for key in ("cityops_scenario", "status"):
        ds.attrs.pop(key, None)
    ds.to_netcdf(tmp_path / "real.nc")
    res = cityops("-q", "assess", tmp_path / "real.nc", "--out", tmp_path / "real",
                  "--now", "2026-07-10T10:30Z")  # fmt: skip
    assert res.returncode == 0, res.stderr
    db = tmp_path / "l.sqlite"
    for run in (drill["run"], tmp_path / "real"):
        res = cityops("issue", run, "--hazard", "rainstorm", "--towns", "阿镇", "--by", "王",
                      "--at", "2026-07-10T10:40Z", "--ledger", db)  # fmt: skip
        assert res.returncode == 0, res.stderr
    s = ledger.list_signals(db)
    assert sorted(s.status) == ["Actual", "Exercise"] and set(s.action) == {"issue"}
    real = next(p for p in (db.parent / "issued").iterdir() if p.name.endswith("_1"))
    root = etree.parse(str(real / "cap.xml")).getroot()
    assert root.findtext("c:status", namespaces=NS) == "Actual"
    assert root.findtext("c:msgType", namespaces=NS) == "Alert"
    assert "演练" not in (real / "message_zh.txt").read_text(encoding="utf-8")
    res = cityops("issue", drill["run"], "--hazard", "rainstorm", "--towns", "阿镇", "--lift",
                  "--by", "王", "--at", "2026-07-10T11:00Z", "--ledger", db)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert ledger.live_signal(db, ALTAN, "rainstorm", status="Actual") is not None


def test_tasks_wait_for_the_signal_and_follow_it(drill, tmp_path):
    """A run proposes tasks; issuing a signal activates those it triggers (clock from the issue
    time); lifting it stands down what no signal in force calls for any more (issue 19 item 2)."""
    from cityops.pipeline import assess

    A = assess(drill["dir"] / "fc.nc", now="2026-07-10T10:30Z")
    db = tmp_path / "l.sqlite"
    ledger.merge_run(db, A.response.tasks, run_time=A.now)
    tasks = ledger.list_tasks(db)
    assert tasks and {t["state"] for t in tasks} == {"proposed"}
    res = cityops("issue", drill["run"], "--hazard", "rainstorm", "--towns", "阿镇", "--by", "王",
                  "--at", "2026-07-10T10:40Z", "--ledger", db)  # fmt: skip
    assert res.returncode == 0, res.stderr
    by_state = {}
    for t in ledger.list_tasks(db):
        by_state.setdefault(t["state"], []).append(t)
    assert by_state["issued"], "the signal activates the tasks it triggers"
    for t in by_state["issued"]:
        assert f"{ALTAN} rainstorm " in f"{t['triggers']} "
        hist = ledger.task_history(db, t["task_id"])
        assert hist[-1]["time_utc"] == "2026-07-10T10:40:00Z"  # the clock starts at the issue
    assert all(f"{ALTAN} rainstorm " not in f"{t['triggers']} " for t in by_state["proposed"])
    res = cityops("issue", drill["run"], "--hazard", "rainstorm", "--towns", "阿镇", "--lift",
                  "--by", "王", "--at", "2026-07-10T11:40Z", "--ledger", db)  # fmt: skip
    assert res.returncode == 0, res.stderr
    after = {t["task_id"]: t["state"] for t in ledger.list_tasks(db)}
    assert {after[t["task_id"]] for t in by_state["issued"]} == {"stood_down"}
