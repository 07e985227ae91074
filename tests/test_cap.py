"""CAP 1.2 output (cityops.report.cap)."""

from __future__ import annotations

from pathlib import Path

import pytest
import xarray as xr
from lxml import etree

from cityops.pipeline import assess
from cityops.report import cap
from cityops.scenarios import write_scenario

NS = {"c": cap.CAP_NS}
CAP_DIR = Path(__file__).resolve().parents[2] / "shared" / "cap"


@pytest.fixture(scope="module")
def scenario_file(tmp_path_factory):
    return write_scenario("july-rainstorm", tmp_path_factory.mktemp("fc") / "july.nc")


@pytest.fixture(scope="module")
def A(scenario_file):
    return assess(scenario_file)


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
    hazards = sorted(A.table.loc[A.table["level"] >= 1, "hazard"].unique())
    assert sorted(p.name for p in cap_files) == sorted(f"cap_{h}.xml" for h in hazards)
    for path in cap_files:
        raw = path.read_bytes()
        assert raw.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
        root = _root(path)
        ident = _text(root, "c:identifier")
        assert ident.startswith("150627-20260710T0000Z-")
        assert _text(root, "c:status") == "Exercise"
        assert _text(root, "c:msgType") == "Alert"
        assert _text(root, "c:sent") == "2026-07-10T08:00:00+08:00"
        for t in root.xpath("//c:onset|//c:expires", namespaces=NS):
            assert t.text.endswith("+08:00")
        langs = [e.text for e in root.xpath("c:info/c:language", namespaces=NS)]
        assert langs == ["zh-CN", "en-US"]


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
        "c:area[c:geocode/c:valueName='GB/T 2260' and c:geocode/c:value='150627100']",
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
        "cityops@150627,150627-20260709T1200Z-rainstorm,2026-07-09T20:00:00+08:00"
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


def test_sign_turns_draft_into_actual(scenario_file, tmp_path):
    ds = xr.load_dataset(scenario_file)
    for key in ("cityops_scenario", "status"):
        ds.attrs.pop(key, None)
    real = tmp_path / "real.nc"
    ds.to_netcdf(real)
    B = assess(real)
    assert not B.is_exercise
    files = cap.write_cap(B, tmp_path / "cap")
    assert files
    assert all(_text(_root(p), "c:status") == "Draft" for p in files)
    changed = cap.sign_cap_folder(tmp_path / "cap", by="王值班")
    assert sorted(changed) == sorted(files)
    for path in files:
        root = _root(path)
        assert _text(root, "c:status") == "Actual"
        assert _text(root, "c:note") == "signed by 王值班"
    xsd = CAP_DIR / "CAP-v1.2.xsd"
    if xsd.exists():
        schema = etree.XMLSchema(etree.parse(str(xsd)))
        for path in files:
            assert schema.validate(etree.parse(str(path))), schema.error_log
    # signing again by the same person changes nothing
    assert cap.sign_cap_folder(tmp_path / "cap", by="王值班") == []
