"""Hanggin Banner 杭锦旗 (150625): the third jurisdiction, its 八清 risk register, and each
jurisdiction naming its own extreme-weather criteria and response plan (issue 19 item 10)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
import yaml

from cityops.errors import DataFileError, InputError
from cityops.geo import load_jurisdiction
from cityops.geo.exposure import evaluate_assets, load_assets
from tests.conftest import make_forecast

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
HGQ = load_jurisdiction("hanggin")

# spec/geography.md, "Hanggin Banner": code -> (name, lon, lat); 独贵塔拉镇 has no known point.
GEOGRAPHY = {
    "150625100": ("锡尼镇", 108.7252, 39.8234),
    "150625101": ("巴拉贡镇", 107.0432, 40.2670),
    "150625102": ("吉日嘎朗图镇", 107.9437, 40.7925),
    "150625103": ("独贵塔拉镇", None, None),
    "150625104": ("呼和木独镇", 107.2945, 40.5884),
    "150625200": ("伊和乌素苏木", 107.8455, 40.0457),
}
XINI = "150625100"
DUGUITALA = "150625103"

# Seed 003:37: 做到网格安全生产“八清”，即……
BAQING = (
    "风险点（危险源）底数清",
    "风险等级清",
    "隐患类别清",
    "所属网格（空间位置）清",
    "监管责任层级清",
    "行业主管部门清",
    "监管责任部门清",
    "信息共享路径清",
)

#: The subprocesses import this checkout's cityops (also in the notebook kernels they start).
ENV = {
    **os.environ,
    "MPLBACKEND": "agg",
    "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
}


def cityops(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "cityops.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=cwd or ROOT,
        timeout=900,
    )


def storm_over_xini(path: Path) -> Path:
    """A small exercise forecast (0.1°, 24 h) over the banner: a rain core on 锡尼镇 (hours
    10-12: 40, 45, 30 mm at the core) and gusts of 8 m/s."""
    lat = np.round(np.arange(39.30, 40.96, 0.1), 2)
    lon = np.round(np.arange(106.85, 109.36, 0.1), 2)
    n = 24
    _, lon0, lat0 = GEOGRAPHY[XINI]
    lon2, lat2 = np.meshgrid(lon, lat)
    dx = (lon2 - lon0) * 111.32 * np.cos(np.deg2rad(lat0))
    dy = (lat2 - lat0) * 110.57
    core = np.exp(-(dx**2 + dy**2) / (2 * 20.0**2))
    ds = make_forecast(
        {"precip": np.zeros(n), "gust": np.full(n, 8.0), "t2m": np.full(n, 22.0)},
        lat=lat,
        lon=lon,
    )
    for i, amount in enumerate((40.0, 45.0, 30.0)):
        ds["precip"].values[9 + i] = amount * core
    ds.attrs.update(cityops_scenario="hanggin-test-storm", status="Exercise")
    ds.to_netcdf(path)
    return path


@pytest.fixture(scope="module")
def storm(tmp_path_factory) -> Path:
    return storm_over_xini(tmp_path_factory.mktemp("hanggin") / "storm.nc")


# ---- the jurisdiction -----------------------------------------------------------------------
def test_hanggin_loads_with_the_units_and_codes_of_the_geography():
    assert (HGQ.code, HGQ.name_zh, HGQ.name_en) == ("150625", "杭锦旗", "Hanggin Banner")
    assert HGQ.timezone == "Asia/Shanghai" and HGQ.sources
    assert set(HGQ.codes) == set(GEOGRAPHY)
    for code, (name, lon, lat) in GEOGRAPHY.items():
        unit = HGQ.unit(code)
        assert unit.name_zh == name and unit.approximate
        assert (unit.seat_lon, unit.seat_lat) == (lon, lat)
        assert unit.has_geometry == (lon is not None)
    assert HGQ.unit("伊和乌素苏木").kind == "sumu"
    assert {u.kind for u in HGQ.units} == {"town", "sumu"}
    assert HGQ.unit("锡尼").code == XINI


def test_duguitala_without_a_point_is_listed_without_geometry():
    unit = HGQ.unit("独贵塔拉镇")
    assert unit.code == DUGUITALA and unit.geometry is None and unit.geometry_source == "none"


def test_name_traps_of_the_banner():
    with pytest.raises(InputError, match="development zone"):
        HGQ.unit("杭锦经济开发区")
    with pytest.raises(InputError, match="whole banner"):
        HGQ.unit("杭锦旗")


def test_outline_is_small_approximate_and_tiled_by_the_units():
    feature = json.loads((HGQ.path / "outline.geojson").read_text(encoding="utf-8"))["features"][0]
    assert feature["properties"]["approximate"] is True and feature["properties"]["source"]
    assert (HGQ.path / "outline.geojson").stat().st_size < 10_000  # simplified, not copied
    area = HGQ.area_km2()
    assert 18_000 <= area <= 19_500  # geography.md: about 18,900 km²
    geoms = [u.geometry for u in HGQ.units if u.has_geometry]
    assert sum(HGQ.area_km2(g) for g in geoms) == pytest.approx(area, rel=0.01)
    union = shapely.union_all(geoms)
    assert HGQ.area_km2(shapely.symmetric_difference(union, HGQ.outline)) < 0.01 * area
    for unit in HGQ.units:
        if unit.has_geometry:
            assert unit.geometry.covers(shapely.Point(unit.seat_lon, unit.seat_lat))


@pytest.mark.skipif(not (SHARED / "geo").is_dir(), reason=f"{SHARED / 'geo'} is absent")
def test_approximate_outline_matches_the_real_one():
    real = shapely.from_geojson((SHARED / "geo" / "150625_wgs84_derived.geojson").read_text())
    real = shapely.union_all(shapely.get_parts(real))
    assert HGQ.area_km2(real) == pytest.approx(HGQ.area_km2(), rel=0.01)
    assert HGQ.area_km2(shapely.symmetric_difference(real, HGQ.outline)) < 0.02 * HGQ.area_km2()


def test_hanggin_declares_no_criteria_and_names_its_plan_without_tables():
    assert HGQ.extreme_criteria is None
    plan = HGQ.response_plan
    assert plan is not None and not plan.loaded
    assert "杭锦旗推进城市安全发展三年行动方案" in plan.name_zh and "003" in plan.source


# ---- the 八清 risk register ------------------------------------------------------------------
def test_register_has_the_eight_fields_of_the_seed_on_every_entry():
    assets = load_assets("hanggin")
    fields = assets.attrs["register_fields"]
    assert tuple(f["seed_text"] for f in fields) == BAQING
    assert "003:37" in assets.attrs["register_source"]
    assert "003" in assets.attrs["source"] and assets.attrs["illustrative"]
    for f in fields:
        values = assets[f["column"]]
        assert values.notna().all() and (values.astype(str).str.strip() != "").all(), f
    assert (assets["risk_points"] >= 1).all()
    assert set(assets["unit"]) <= set(HGQ.codes)
    assert assets["illustrative"].all() and assets["name_zh"].str.contains("示例").all()


@pytest.mark.skipif(not (SHARED / "seeds").is_dir(), reason=f"{SHARED / 'seeds'} is absent")
def test_the_eight_fields_are_the_words_of_seed_003_line_37():
    (seed,) = (SHARED / "seeds").glob("003_*.txt")
    line = seed.read_text(encoding="utf-8").splitlines()[36]
    assert "八清" in line
    for text in BAQING:
        assert text in line


def _copy_hanggin(tmp_path: Path) -> Path:
    folder = tmp_path / "hanggin-copy"
    shutil.copytree(HGQ.path, folder)
    return folder


def _edit_csv(folder: Path, column: str, value: str, row: int = 0) -> None:
    path = folder / "assets.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[row, column] = value
    frame.to_csv(path, index=False)


@pytest.mark.parametrize(
    "column, value, words",
    [
        ("risk_level", "", ["row 1", "'risk_level'", "风险等级", "missing"]),
        ("risk_level", "很高", ["row 1", "'risk_level'", "'很高' is not one of"]),
        ("risk_points", "two", ["row 1", "'risk_points'", "expected a whole number"]),
        ("risk_points", "0", ["row 1", "'risk_points'", "below 1"]),
        ("supervision_level", "市级", ["row 1", "'supervision_level'", "not one of"]),
        # rows 1 and 2 are two triggers of one asset: their register fields must agree
        ("grid", "另一网格", ["row 2", "'grid'", "'另一网格' here but '锡尼镇城区第1网格"]),
    ],
)
def test_a_bad_register_field_is_one_line_naming_file_row_and_field(tmp_path, column, value, words):
    folder = _copy_hanggin(tmp_path)
    _edit_csv(folder, column, value, row=1 if column == "grid" else 0)
    with pytest.raises(DataFileError) as err:
        load_assets(load_jurisdiction(folder))
    message = str(err.value)
    assert "\n" not in message and "assets.csv" in message
    for word in words:
        assert word in message


def test_a_declared_register_column_missing_from_the_header_is_refused(tmp_path):
    folder = _copy_hanggin(tmp_path)
    frame = pd.read_csv(folder / "assets.csv", dtype=str, keep_default_na=False)
    frame.drop(columns="info_sharing_path").to_csv(folder / "assets.csv", index=False)
    with pytest.raises(DataFileError, match=r"header lacks column.*info_sharing_path"):
        load_assets(load_jurisdiction(folder))


def test_a_bad_register_declaration_names_the_yaml_field(tmp_path):
    folder = _copy_hanggin(tmp_path)
    meta = yaml.safe_load((folder / "assets.yaml").read_text(encoding="utf-8"))
    meta["register_fields"]["fields"][0]["type"] = "date"
    (folder / "assets.yaml").write_text(yaml.safe_dump(meta, allow_unicode=True), "utf-8")
    with pytest.raises(DataFileError, match=r"register_fields.*item 1.*'type'.*'date'"):
        load_assets(load_jurisdiction(folder))


def test_registers_without_fields_are_unchanged():
    assets = load_assets("ejin-horo")
    assert assets.attrs["register_fields"] == ()
    assert "risk_level" not in assets.columns


def test_triggered_points_carry_their_register_fields(storm):
    from cityops.ingest import open_forecast

    hits = evaluate_assets(open_forecast(storm), load_assets("hanggin"))
    assert len(hits) and set(hits["unit"]) == {XINI}
    for f in hits.attrs["register_fields"]:
        assert hits[f["column"]].notna().all()
    assert "HG-UG-01" in set(hits["asset_id"])  # the underground entrance floods


# ---- each jurisdiction names its own criteria and plan --------------------------------------
def test_only_ejin_horo_declares_the_annex3_criteria():
    ejh = load_jurisdiction("ejin-horo")
    assert ejh.extreme_criteria.rules == "ejin-horo-annex3"
    assert ejh.extreme_criteria.name_zh == "伊金霍洛旗极端天气判定标准（附件3）"
    assert ejh.response_plan.loaded and ejh.response_plan.folder.name == "plan"
    kbs = load_jurisdiction("kangbashi")
    assert kbs.extreme_criteria is None and kbs.response_plan is None


def test_a_bad_criteria_declaration_is_one_line_naming_the_field(tmp_path, caplog):
    folder = _copy_hanggin(tmp_path)
    path = folder / "jurisdiction.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace("extreme_criteria: null", "extreme_criteria: {rules: no-such-table}"),
        encoding="utf-8",
    )
    with pytest.raises(DataFileError, match=r"field 'extreme_criteria.rules'.*no-such-table"):
        load_jurisdiction(folder)
    # A declared plan folder that is absent (a copy without its plan) is not loaded, and
    # the log names the field; the briefing then says the plan's tables are not loaded.
    path.write_text(text.replace("  folder: null", "  folder: nowhere"), encoding="utf-8")
    with caplog.at_level("WARNING", logger="cityops"):
        copy = load_jurisdiction(folder)
    assert not copy.response_plan.loaded and copy.response_plan.name_zh
    assert "field 'response_plan.folder'" in caplog.text and "not a folder" in caplog.text


def test_declared_criteria_drive_the_extreme_flag(tmp_path):
    """The same Annex 3 rain (>= 50 mm in 3 h) is extreme where the jurisdiction declares the
    criteria, and not where it does not: the flag is data, not code."""
    from cityops.pipeline import assess

    path = tmp_path / "storm.nc"
    storm_over_xini(path)
    plain = assess(path, jurisdiction="hanggin")
    assert plain.extreme is None and not plain.table["extreme"].astype(bool).any()
    folder = _copy_hanggin(tmp_path)
    meta = folder / "jurisdiction.yaml"
    meta.write_text(
        meta.read_text(encoding="utf-8").replace(
            "extreme_criteria: null",
            "extreme_criteria: {rules: ejin-horo-annex3, name_zh: 测试标准, name_en: test "
            "criteria, source: test}",
        ),
        encoding="utf-8",
    )
    declared = assess(path, jurisdiction=folder)
    rows = declared.table.set_index(["town_code", "hazard"])
    assert bool(rows.loc[(XINI, "rainstorm"), "extreme"])
    assert not bool(rows.loc[("150625101", "rainstorm"), "extreme"])


def test_kangbashi_briefing_names_no_ejin_horo_criteria_and_says_it_has_no_plan(tmp_path):
    from cityops.pipeline import assess
    from cityops.report import briefing as br
    from cityops.scenarios import write_scenario

    path = write_scenario("july-rainstorm", tmp_path / "fc.nc")
    a = assess(path, jurisdiction="kangbashi")
    assert a.extreme is None and a.response is None
    code = "150603001"
    for lang, none, no_plan in (
        ("zh", "未设自有极端天气判定标准", "未载入应急响应预案"),
        ("en", "no extreme-weather criteria of its own", "No response plan is loaded"),
    ):
        html = "".join(
            f(a, code, lang=lang)
            for f in (br.headline_html, br.hazard_table_html, br.response_html)
        ) + br.data_section_html(a, lang=lang)
        assert "伊金霍洛" not in html and "Ejin Horo" not in html and "附件3" not in html
        assert none in html and no_plan in html
    assert "（附件3）" not in br.hazard_table_html(a, code)


def test_ejin_horo_briefing_keeps_its_annex3_flag_and_names_its_plan(tmp_path):
    from cityops.pipeline import assess
    from cityops.report import briefing as br
    from cityops.scenarios import SCENARIOS, write_scenario

    path = write_scenario("july-rainstorm", tmp_path / "fc.nc")
    a = assess(path)
    code = next(e for e in SCENARIOS["july-rainstorm"].expected if e["level"] == 4)["town_code"]
    assert "⚠ 达到伊金霍洛旗极端天气判定标准（附件3）" in br.headline_html(a, code)
    assert "Meets the Ejin Horo extreme-weather criterion (Annex 3)" in br.headline_html(
        a, code, lang="en"
    )
    response = br.response_html(a, code)
    assert "依据：极端气候天气重大节假日重要活动前后等特殊条件下城市运维保障工作方案" in response


# ---- end to end through the command line ---------------------------------------------------
def test_assess_on_hanggin_gives_the_town_table_with_its_codes(storm, tmp_path):
    res = cityops("assess", storm, "--jurisdiction", "hanggin", "--out", tmp_path / "run")
    assert res.returncode == 0, res.stderr
    table = pd.read_csv(tmp_path / "run" / "town_hazards.csv", dtype={"town_code": str})
    assert set(table.town_code) == set(GEOGRAPHY)
    rows = table.set_index(["town_code", "hazard"])
    assert rows.loc[(XINI, "rainstorm"), "level"] >= 3
    assert rows.loc[("150625101", "rainstorm"), "level"] == 0
    assert not table[table.town_code == DUGUITALA].evaluated.astype(bool).any()
    assert table[table.town_code != DUGUITALA].evaluated.astype(bool).any()
    assert (table["extreme"].astype(str).str.lower() == "false").all()


@pytest.mark.slow
def test_brief_on_hanggin_runs_end_to_end(storm, tmp_path):
    out = tmp_path / "brief"
    res = cityops(
        "brief", storm, "--jurisdiction", "hanggin", "--out", out,
        "--towns", f"{XINI},{DUGUITALA}", "--no-ledger",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    table = pd.read_csv(out / "town_hazards.csv", dtype={"town_code": str})
    assert set(table.town_code) == set(GEOGRAPHY)
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "杭锦旗" in index and "伊金霍洛旗" not in index and "锡尼镇" in index
    assert "未设自有极端天气判定标准" in index and "杭锦旗推进城市安全发展三年行动方案" in index
    html = (out / XINI / "briefing.html").read_text(encoding="utf-8")
    assert "锡尼镇气象风险简报" in html and "暴雨" in html
    assert "伊金霍洛" not in html
    assert "未载入其响应表" in html and "风险等级" in html and "示例地下空间出入口" in html
    far = (out / DUGUITALA / "briefing.html").read_text(encoding="utf-8")
    assert "无法评估" in far
    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert run["jurisdiction"] == "hanggin" and run["extreme_ruleset"] is None
    assert run["failures"] == {}
