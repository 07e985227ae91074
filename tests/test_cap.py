"""CAP 1.2 output (cityops.cap)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from cityops import cap
from cityops.pipeline import assess
from cityops.scenarios import write_scenario

NS = {"c": cap.CAP_NS}
CAP_DIR = Path(__file__).resolve().parents[2] / "shared" / "cap"


@pytest.fixture(scope="module")
def scenario_file(tmp_path_factory):
    return write_scenario("july-rainstorm", tmp_path_factory.mktemp("fc") / "july.nc")


#: A reference time at which the sample's rainstorm red is due (onset 13Z, 3 h lead).
DUE = "2026-07-10T10:30Z"


@pytest.fixture(scope="module")
def A(scenario_file):
    return assess(scenario_file, now=DUE)


@pytest.fixture(scope="module")
def cap_files(A, tmp_path_factory):
    return cap.write_cap(A, tmp_path_factory.mktemp("cap"), lang="both")


def _root(path):
    return etree.parse(str(path)).getroot()


def _text(root, xpath):
    return root.xpath(xpath, namespaces=NS)[0].text


def test_files_validate_against_xsd(cap_files):
    xsd = CAP_DIR / "CAP-v1.2.xsd"
    if not xsd.exists():
        pytest.skip(f"CAP schema folder {CAP_DIR} is absent")
    schema = etree.XMLSchema(etree.parse(str(xsd)))
    assert cap_files
    for path in cap_files:
        doc = etree.parse(str(path))
        assert schema.validate(doc), (path.name, schema.error_log)


def test_example_validates_too():
    xsd = CAP_DIR / "CAP-v1.2.xsd"
    if not xsd.exists():
        pytest.skip(f"CAP schema folder {CAP_DIR} is absent")
    schema = etree.XMLSchema(etree.parse(str(xsd)))
    assert schema.validate(etree.parse(str(CAP_DIR / "example-amber-alert.xml")))


def test_round_trip(A, cap_files):
    names = {p.name for p in cap_files}
    assert "cap_rainstorm.xml" in names
    # Drafts are the run's proposals: levels whose issue-by time is reached.
    hazards = sorted(A.table.loc[A.table["proposed_level"].fillna(0) >= 1, "hazard"].unique())
    assert sorted(p.name for p in cap_files) == sorted(f"cap_{h}.xml" for h in hazards)
    for path in cap_files:
        raw = path.read_bytes()
        assert raw.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
        root = _root(path)
        ident = _text(root, "c:identifier")
        assert ident.startswith("150627-20260710T0000Z-")
        # A draft is never sent: Draft status, the drill said in the note.
        assert _text(root, "c:status") == "Draft"
        assert "演练" in _text(root, "c:note")
        assert _text(root, "c:msgType") == "Alert"
        assert _text(root, "c:sent") == "2026-07-10T08:00:00+08:00"
        for t in root.xpath("//c:onset|//c:expires", namespaces=NS):
            assert t.text.endswith("+08:00")
        langs = [e.text for e in root.xpath("c:info/c:language", namespaces=NS)]
        assert langs == ["zh-CN", "en-US"] * (len(langs) // 2)
        # One info per level: its severity matches every area it names.
        for info in root.xpath("c:info", namespaces=NS):
            levels = {
                p.findtext("c:value", namespaces=NS)
                for p in info.xpath("c:parameter", namespaces=NS)
                if p.findtext("c:valueName", namespaces=NS).startswith("level:")
            }
            assert len(levels) == 1
            sev = {"blue": "Minor", "yellow": "Moderate", "orange": "Severe", "red": "Extreme"}
            assert _text(info, "c:severity") == sev[levels.pop()]


def test_rainstorm_area_polygon_and_severity(cap_files):
    root = _root(next(p for p in cap_files if p.name == "cap_rainstorm.xml"))
    info = root.xpath("c:info[c:language='zh-CN']", namespaces=NS)[0]
    assert _text(info, "c:severity") == "Extreme"
    assert _text(info, "c:category") == "Met"
    assert _text(info, "c:certainty") == "Likely"
    assert "暴雨" in _text(info, "c:event")
    params = {
        p.findtext("c:valueName", namespaces=NS): p.findtext("c:value", namespaces=NS)
        for p in info.xpath("c:parameter", namespaces=NS)
    }
    assert params["level:150627100"] == "red"
    area = info.xpath(
        "c:area[c:geocode/c:valueName='GB/T 10114' and c:geocode/c:value='150627100']",
        namespaces=NS,
    )
    assert len(area) == 1
    poly = area[0].findtext("c:polygon", namespaces=NS)
    pairs = poly.split()
    assert 4 <= len(pairs) <= 100
    assert pairs[0] == pairs[-1]
    lat, lon = map(float, pairs[0].split(","))
    assert 38.5 < lat < 40.5
    assert 108.5 < lon < 110.5


def test_deterministic(A, cap_files, tmp_path):
    again = cap.write_cap(A, tmp_path, lang="both")
    assert [p.name for p in again] == [p.name for p in cap_files]
    for a, b in zip(again, cap_files, strict=True):
        assert a.read_bytes() == b.read_bytes()


def test_update_references(A):
    prev = {"rainstorm": ("150627-20260709T1200Z-rainstorm", "2026-07-09T20:00:00+08:00")}
    alerts = cap.build_alerts(A, previous=prev)
    rain = alerts["rainstorm"]
    assert rain.findtext("c:msgType", namespaces=NS) == "Update"
    assert rain.findtext("c:references", namespaces=NS) == (
        "15062741600000,150627-20260709T1200Z-rainstorm,2026-07-09T20:00:00+08:00"
    )
    other = next(h for h in alerts if h != "rainstorm")
    assert alerts[other].findtext("c:msgType", namespaces=NS) == "Alert"
    assert alerts[other].find("c:references", namespaces=NS) is None


def test_cancel_validates(A):
    el = cap.cancel_alert(
        "gale",
        "150627-20260709T1200Z-gale",
        "2026-07-09T20:00:00+08:00",
        code="150627",
        sent=A.issued,
        status="Exercise",
    )
    assert el.findtext("c:msgType", namespaces=NS) == "Cancel"
    assert el.findtext("c:identifier", namespaces=NS).startswith("150627-")
    assert el.findtext("c:references", namespaces=NS).endswith(",2026-07-09T20:00:00+08:00")
    xsd = CAP_DIR / "CAP-v1.2.xsd"
    if xsd.exists():
        schema = etree.XMLSchema(etree.parse(str(xsd)))
        assert schema.validate(etree.ElementTree(el)), schema.error_log


# --------------------------------------------------------------------------- urgency, certainty
@pytest.mark.parametrize(
    ("lead", "urgency"),
    [
        (48.0, "Future"),
        (24.0, "Future"),  # impact hint is "≥ 24 h"
        (23.99, "Future"),  # CAP Expected = act within the next hour
        (3.01, "Future"),
        (3.0, "Expected"),
        (1.01, "Expected"),
        (1.0, "Immediate"),  # nowcast tier is 0 ≤ lead ≤ 1 h
        (0.0, "Immediate"),
        (-2.0, "Immediate"),  # ongoing
        (None, "Unknown"),
    ],
)
def test_urgency_follows_plan_tiers(lead, urgency):
    assert cap.urgency_for_lead(lead) == urgency


@pytest.mark.parametrize(
    ("shares", "certainty"),
    [
        ([], "Likely"),  # deterministic: the forecast states its level
        ([0.3, 0.5], "Possible"),  # CAP: Likely is p > ~50 %
        ([0.2, 0.55], "Likely"),
        ([float("nan"), 0.9], "Likely"),
    ],
)
def test_certainty_from_ensemble_share(shares, certainty):
    import pandas as pd

    assert cap.certainty_for_probability(pd.Series(shares, dtype=float)) == certainty


def test_ensemble_alert_certainty_matches_member_share(tmp_path):
    fc = write_scenario("july-rainstorm", tmp_path / "ens.nc", members=10)
    B = assess(fc)
    alerts = cap.build_alerts(B)
    rain = alerts["rainstorm"].find("c:info", namespaces=NS)
    top = max(
        cap.LEVEL_NAMES[k]
        for k in B.table.loc[B.table["hazard"] == "rainstorm", "level"].astype(int)
        if k >= 1
    )
    rows = B.table[(B.table["hazard"] == "rainstorm") & (B.table["level"].astype(int) >= 1)]
    top_rows = rows[rows["level"].astype(int) == rows["level"].astype(int).max()]
    share = top_rows["probability"].astype(float).max()
    assert top in cap.LEVEL_NAMES.values()
    assert 0 < share <= 1
    expected = "Likely" if share > 0.5 else "Possible"
    assert rain.findtext("c:certainty", namespaces=NS) == expected


# --------------------------------------------------------------------------- Update / Cancel from the ledger
def test_run_cancels_a_hazard_that_stood_down_and_updates_the_rest(A, tmp_path):
    from cityops.brief import BriefOptions, _write_cap
    from cityops.ledger import record_cap

    db = str(tmp_path / "ledger.sqlite")
    earlier = A.issued - pd_hours(12)
    # An earlier run had a fog alert (fog is not reached in july-rainstorm) and a rainstorm one.
    for hazard in ("fog", "rainstorm"):
        record_cap(
            db,
            f"150627-{earlier:%Y%m%dT%H%MZ}-{hazard}",
            hazard,
            "Alert",
            "",
            earlier,
            earlier,
            "Exercise",
        )
    files = _write_cap(A, tmp_path / "run", BriefOptions(ledger=db))
    by_name = {p.stem.removeprefix("cap_"): _root(p) for p in files}
    fog = by_name["fog"]
    assert _text(fog, "c:msgType") == "Cancel"
    assert _text(fog, "c:status") == "Draft"  # a proposal to lift, not the lift
    assert f"150627-{earlier:%Y%m%dT%H%MZ}-fog" in _text(fog, "c:references")
    assert _text(by_name["rainstorm"], "c:msgType") == "Update"
    xsd = CAP_DIR / "CAP-v1.2.xsd"
    if xsd.exists():
        schema = etree.XMLSchema(etree.parse(str(xsd)))
        for root in by_name.values():
            assert schema.validate(etree.ElementTree(root)), schema.error_log


def test_after_a_cancel_the_next_alert_is_new(A, tmp_path):
    from cityops.brief import BriefOptions, _write_cap
    from cityops.ledger import record_cap

    db = str(tmp_path / "ledger.sqlite")
    earlier = A.issued - pd_hours(12)
    ident = f"150627-{earlier:%Y%m%dT%H%MZ}-rainstorm-cancel"
    record_cap(db, ident, "rainstorm", "Cancel", "x", earlier, earlier, "Exercise")
    files = _write_cap(A, tmp_path / "run", BriefOptions(ledger=db))
    rain = _root(next(p for p in files if p.name == "cap_rainstorm.xml"))
    assert _text(rain, "c:msgType") == "Alert"
    assert not any(p.name == "cap_fog.xml" for p in files)


def test_an_older_forecast_rerun_neither_updates_nor_cancels_a_newer_alert(A, tmp_path):
    from cityops.brief import BriefOptions, _write_cap
    from cityops.ledger import record_cap

    db = str(tmp_path / "ledger.sqlite")
    later = A.issued + pd_hours(12)
    record_cap(db, f"150627-{later:%Y%m%dT%H%MZ}-fog", "fog", "Alert", "", later, later, "Draft")
    files = _write_cap(A, tmp_path / "run", BriefOptions(ledger=db))
    assert not any(p.name == "cap_fog.xml" for p in files)


def pd_hours(n):
    import pandas as pd

    return pd.Timedelta(hours=n)
