"""The case library (cityops.review.cases)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from cityops.errors import InputError
from cityops.review import cases

A, B, C = "150627100", "150627106", "150627103"


def _cases():
    day = pd.Timestamp("2026-07-10")
    rows = [
        # town, warned, observed, outcome, lead_met
        (A, 2, 4, "hit", False),
        (B, 0, 3, "miss", None),
        (C, 0, 3, "miss", None),
        (C, 2, 0, "false_alarm", None),
        ("150627105", 0, 0, "correct_negative", None),
    ]
    return pd.DataFrame(
        [
            {
                "town_code": t,
                "hazard": "rainstorm",
                "window_start_utc": day,
                "window_end_utc": day + pd.Timedelta("24h"),
                "warned_level": w,
                "observed_level": o,
                "outcome": out,
                "lead_met": met,
            }
            for t, w, o, out, met in rows
        ]
    )


def _timeline():
    return pd.DataFrame(
        {
            "task_id": ["t1", "t2", "t3", "t4"],
            "town_code": [A, B, A, A],
            "hazard": ["rainstorm"] * 4,
            "measure": ["rain_road_closure", "rain_road_closure", "general_warning_relay",
                        "rain_evacuation"],
            "lead_unit": ["旗公安局", "旗公安局", "旗气象局", "旗应急管理局"],
            "state": ["resolved", "on_site", "closed", "stood_down"],
            "overdue": [True, False, False, True],
            "closure_late": [False, False, False, False],
            "escalated": [0, 1, 0, 0],
        }
    )  # fmt: skip


def test_suggested_findings():
    kpis = {
        "rescue_on_scene_2h": {"met": False, "share": 0.5, "within": 1, "incidents": 2,
                               "target": 0.9, "target_op": ">=", "text_zh": "到场率",
                               "source": "004:269-271"},
        "initial_relief_10h": {"met": True, "share": 0.8},
    }  # fmt: skip
    found = cases.suggest_findings(_cases(), _timeline(), kpis=kpis).set_index("finding_id")
    assert list(found.columns) == [c for c in cases.FINDING_COLUMNS if c != "finding_id"]
    assert set(found["status"]) == {"proposed"} and set(found["origin"]) == {"suggested"}

    miss = found.loc["miss.rainstorm.level3"]
    assert miss["category"] == "hazard_factors"
    assert miss["target"] == "rules/tables/national.yaml#rainstorm.level3"
    assert miss["owner"] == "旗气象局"  # special plan 1 weather_monitoring (002:1294)
    assert miss["towns"] == f"{C},{B}" and "2个案例" in miss["finding"]
    assert "暴雨橙色" in miss["finding"]

    false_alarm = found.loc["false_alarm.rainstorm.level2"]
    assert false_alarm["category"] == "hazard_factors"
    assert false_alarm["target"].endswith("#rainstorm.level2")

    late = found.loc["late.rainstorm.level4"]
    assert late["category"] == "disaster_process" and late["towns"] == A

    # overdue or escalated tasks, grouped per measure; stood-down tasks ignored
    task = found.loc["task.rainstorm.rain_road_closure"]
    assert task["category"] == "measure"
    assert task["target"] == "plan/measures.yaml#rainstorm.rain_road_closure"
    assert task["owner"] == "旗公安局" and task["evidence"] == "t1;t2"
    assert "task.rainstorm.rain_evacuation" not in found.index
    assert "task.rainstorm.general_warning_relay" not in found.index

    incident = found.loc["incident.rescue_on_scene_2h"]
    assert incident["category"] == "incident" and incident["owner"] == "旗应急管理局"
    assert "50%" in incident["finding"] and "90%" in incident["finding"]
    assert "incident.initial_relief_10h" not in found.index

    # categories in the plan's order: hazard factors, process, incidents, measures
    order = list(found["category"])
    assert order == sorted(order, key=cases.CATEGORIES.index)

    english = cases.suggest_findings(_cases(), None, lang="en").set_index("finding_id")
    assert english.loc["miss.rainstorm.level3", "finding"].startswith("rainstorm orange: missed")
    assert cases.suggest_findings(None, None).empty


def test_read_findings_yaml_and_csv(tmp_path):
    yaml_file = tmp_path / "meeting.yaml"
    yaml_file.write_text(
        "findings:\n"
        "  - category: 防御措施\n"
        "    finding: 下穿通道封闭晚于积水\n"
        "    owner: 旗公安局\n"
        "    target: plan/measures.yaml#rainstorm.rain_road_closure\n"
        "    proposed_change: 改为橙色预警即预封闭\n"
        "    status: 已采纳\n"
        "  - {category: hazard_factors, finding: 短时强降水阈值偏高}\n",
        encoding="utf-8",
    )
    found = cases.read_findings(yaml_file)
    assert list(found["category"]) == ["measure", "hazard_factors"]
    assert list(found["status"]) == ["accepted", "proposed"]
    assert list(found["origin"]) == ["meeting", "meeting"]
    assert list(found["finding_id"]) == ["M01", "M02"]

    csv_file = tmp_path / "meeting.csv"
    found.to_csv(csv_file, index=False)
    assert cases.read_findings(csv_file).equals(found)

    bad = tmp_path / "bad.yaml"
    bad.write_text("findings:\n  - {category: weather, finding: x}\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.yaml: finding 1, field 'category'"):
        cases.read_findings(bad)
    with pytest.raises(InputError, match=r"expected a \.yaml"):
        cases.read_findings(tmp_path / "notes.txt")


def test_case_library_round_trip_and_replace(tmp_path):
    library = tmp_path / "review" / "cases"
    assert cases.list_cases(library).empty
    suggested = cases.suggest_findings(_cases(), _timeline())
    meta = {
        "title": "7·10 强对流暴雨复盘",
        "event": "july-rainstorm",
        "start_utc": pd.Timestamp("2026-07-10T00:00"),
        "end_utc": pd.Timestamp("2026-07-13T00:00"),
        "hazards": ["rainstorm"],
        "exercise": True,
    }
    path = cases.save_case(library, "2026-07-10-july-rainstorm", suggested, meta=meta)
    assert path == library / "2026-07-10-july-rainstorm.json"
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["meta"]["start_utc"] == "2026-07-10T00:00:00Z"
    loaded = cases.load_case(library, "2026-07-10-july-rainstorm")
    pd.testing.assert_frame_equal(loaded["findings"], suggested.astype(object), check_dtype=False)

    index = cases.list_cases(library)
    assert list(index.columns) == list(cases.INDEX_COLUMNS)
    row = index.iloc[0]
    assert row["case_id"] == "2026-07-10-july-rainstorm" and row["exercise"] == "true"
    assert row["findings"] == len(suggested) and row["open_findings"] == len(suggested)
    assert row["hazards"] == "rainstorm"

    # the meeting accepts one finding and marks it done: saving again replaces the case
    edited = suggested.copy()
    edited.loc[0, "status"] = "done"
    cases.save_case(library, "2026-07-10-july-rainstorm", edited, meta=meta)
    cases.save_case(library, "2026-01-21-blizzard", [{"category": "incident", "finding": "x"}])
    index = cases.list_cases(library)
    assert list(index["case_id"]) == ["2026-01-21-blizzard", "2026-07-10-july-rainstorm"]
    assert index.set_index("case_id").loc["2026-07-10-july-rainstorm", "open_findings"] == (
        len(suggested) - 1
    )
    assert sorted(p.name for p in library.iterdir()) == [
        "2026-01-21-blizzard.json",
        "2026-07-10-july-rainstorm.json",
        "cases.csv",
    ]  # no temporary files left behind


@pytest.mark.parametrize(
    "case_id", ["../escape", "a/b", "..", "a..b", "", ".hidden", "a\\b", "x" * 121, "/abs"]
)
def test_unsafe_case_id_is_refused(tmp_path, case_id):
    library = tmp_path / "lib"
    with pytest.raises(InputError, match="case id"):
        cases.save_case(library, case_id, [{"category": "incident", "finding": "x"}])
    assert not library.exists()
    assert list(tmp_path.iterdir()) == []


def test_invalid_findings_refused(tmp_path):
    with pytest.raises(InputError, match=r"finding 1, field 'status'"):
        cases.save_case(tmp_path, "c1", [{"category": "measure", "finding": "x", "status": "?"}])
    with pytest.raises(InputError, match=r"finding 2, field 'finding_id': duplicate"):
        cases.save_case(
            tmp_path,
            "c1",
            [
                {"finding_id": "F1", "category": "measure", "finding": "x"},
                {"finding_id": "F1", "category": "measure", "finding": "y"},
            ],
        )


def test_labels_and_library_dir():
    assert cases.category_label("hazard_factors") == "致灾因子"
    assert cases.category_label("disaster_process", "en") == "disaster process"
    assert cases.status_label("done") == "已落实"
    folder = cases.case_library_dir("ejin-horo")
    assert folder.parts[-3:] == ("ejin-horo", "review", "cases")
