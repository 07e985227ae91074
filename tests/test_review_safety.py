"""The urban safe-operation index (cityops.review.safety); expected values by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from cityops.errors import InputError
from cityops.review import safety
from cityops.review.records import read_alarms, read_hotline, read_incidents

A, B = "150627100", "150627106"

CONFIG = """\
source: "test"
components:
  - id: alarms
    name_zh: 报警次数
    name_en: Alarms
    input: alarms
    measure: count
    direction: lower_better
    normalise: {{method: bounds, best: 0, worst: 10}}
    weight: {w_alarms}
    source: "002:1076"
  - id: handled
    name_zh: 事件处置率
    name_en: Incidents handled
    input: incidents
    measure: share
    flag: handled
    direction: higher_better
    normalise: {{method: bounds, best: 1, worst: 0}}
    weight: 0.3
    source: "002:1076"
  - id: tickets
    name_zh: 每万人工单
    name_en: Tickets per 10,000 residents
    input: hotline
    measure: count
    direction: lower_better
    normalise: {{method: per_population, per: 10000, best: 0, worst: 5}}
    weight: 0.2
    source: "002:1078"
population:
  source: "test figures"
  towns: {{"{a}": 20000, "{b}": 5000}}
"""


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "safety_index.yaml"
    path.write_text(CONFIG.format(w_alarms=0.5, a=A, b=B), encoding="utf-8")
    return path


def _alarms():
    rows = [(f"A{i}", "2026-07-10T12:00Z", A, "积水") for i in range(4)]
    rows += [(f"B{i}", "2026-07-10T12:00Z", B, "积水" if i % 2 else "停电") for i in range(12)]
    rows.append(("A-late", "2026-07-13T12:00Z", A, "积水"))  # outside the window
    return pd.DataFrame(rows, columns=["alarm_id", "time_utc", "town_code", "type"])


def _incidents():
    cols = ["incident_id", "town_code", "type", "scale", "reported_utc", "dispatched_utc",
            "on_scene_utc", "relief_utc", "handled"]  # fmt: skip
    handled = [(A, "true"), (A, "true"), (A, "true"), (A, "false"), (B, "true")]
    return pd.DataFrame(
        [
            (f"I{i}", town, "x", "一般", "2026-07-10T12:00Z", "", "", "", flag)
            for i, (town, flag) in enumerate(handled)
        ],
        columns=cols,
    )


def _hotline():
    rows = [(f"HA{i}", "2026-07-10T13:00Z", A, "积水内涝", "") for i in range(6)]
    rows.append(("HB0", "2026-07-10T13:00Z", B, "停电", "2026-07-10T15:00Z"))
    return pd.DataFrame(
        rows, columns=["ticket_id", "received_utc", "town_code", "category", "closed_utc"]
    )


WINDOW = {"start": "2026-07-10T00:00Z", "end": "2026-07-12T00:00Z"}


def test_components_and_total_hand_computed(config):
    idx = safety.safety_index(
        alarms=_alarms(),
        incidents=_incidents(),
        hotline=_hotline(),
        config=config,
        towns=[A, B],
        **WINDOW,
    ).set_index("town_code")
    # alarms (best 0, worst 10): A 4 -> 60; B 12 -> -20 clipped to 0
    assert idx.loc[A, "alarms_raw"] == 4 and idx.loc[A, "alarms_score"] == pytest.approx(60)
    assert idx.loc[B, "alarms_raw"] == 12 and idx.loc[B, "alarms_score"] == 0
    # handled: A 3 of 4 -> 75; B 1 of 1 -> 100
    assert idx.loc[A, "handled_raw"] == 0.75 and idx.loc[A, "handled_n"] == 4
    assert idx.loc[B, "handled_score"] == 100
    # tickets per 10,000: A 6 / 20,000 -> 3 -> 40; B 1 / 5,000 -> 2 -> 60
    assert idx.loc[A, "tickets_raw"] == pytest.approx(3) and idx.loc[A, "tickets_n"] == 6
    assert idx.loc[A, "tickets_score"] == pytest.approx(40)
    assert idx.loc[B, "tickets_score"] == pytest.approx(60)
    # totals: A 0.5*60 + 0.3*75 + 0.2*40 = 60.5; B 0.5*0 + 0.3*100 + 0.2*60 = 42
    assert idx.loc[A, "total"] == pytest.approx(60.5)
    assert idx.loc[B, "total"] == pytest.approx(42)
    assert (idx["weight_evaluated"] == 1).all() and (idx["not_evaluated"] == "").all()
    assert idx.loc[A, "alarms_weight"] == 0.5 and idx.loc[B, "tickets_weight"] == 0.2
    assert [c["id"] for c in idx.attrs["components"]] == ["alarms", "handled", "tickets"]
    expected = ["town_code"] + [
        f"{c}_{k}"
        for c in ("alarms", "handled", "tickets")
        for k in ("raw", "n", "score", "weight")
    ]
    assert list(idx.reset_index().columns[: len(expected)]) == expected


def test_missing_input_is_not_evaluated_and_weights_renormalised(config):
    idx = safety.safety_index(
        alarms=_alarms(), hotline=_hotline(), config=config, towns=[A, B], **WINDOW
    ).set_index("town_code")
    assert math.isnan(idx.loc[A, "handled_score"])
    assert "handled (no incidents data)" in idx.loc[A, "not_evaluated"]
    assert idx.loc[A, "weight_evaluated"] == pytest.approx(0.7)
    # (0.5*60 + 0.2*40) / 0.7
    assert idx.loc[A, "total"] == pytest.approx(38 / 0.7)
    # a population argument replaces the file's; a town without one is not evaluated
    other = safety.safety_index(
        hotline=_hotline(), config=config, towns=[A, B], population={A: 60000}, **WINDOW
    ).set_index("town_code")
    assert other.loc[A, "tickets_raw"] == pytest.approx(1)
    assert math.isnan(other.loc[B, "tickets_raw"])
    assert "tickets (no population)" in other.loc[B, "not_evaluated"]


def test_window_excludes_records_outside(config):
    wide = safety.safety_index(alarms=_alarms(), config=config, towns=[A])
    assert wide.loc[0, "alarms_raw"] == 5  # no window: the late alarm counts
    narrow = safety.safety_index(alarms=_alarms(), config=config, towns=[A], **WINDOW)
    assert narrow.loc[0, "alarms_raw"] == 4


def test_weights_must_sum_to_one(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(CONFIG.format(w_alarms=0.4, a=A, b=B), encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.yaml: .*weights sum to 0\.9, expected 1"):
        safety.load_safety_config(path)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("direction: lower_better\n    normalise: {method: bounds, best: 0, worst: 10}",
         "direction: higher_better\n    normalise: {method: bounds, best: 0, worst: 10}",
         r"component 'alarms', field 'normalise': higher_better needs best > worst"),
        ("input: alarms", "input: weather", r"component 'alarms', field 'input'"),
        ("    flag: handled\n", "", r"component 'handled', field 'flag'"),
    ],
)  # fmt: skip
def test_config_errors_are_one_line(tmp_path, old, new, message):
    text = CONFIG.format(w_alarms=0.5, a=A, b=B)
    assert old in text
    path = tmp_path / "c.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(InputError, match=message) as err:
        safety.load_safety_config(path)
    assert "\n" not in str(err.value)


def test_warning_timeliness_and_task_closure_from_review_tables():
    cases = pd.DataFrame(
        {
            "town_code": [A, A, A, B, B],
            "hazard": ["rainstorm"] * 5,
            "window_start_utc": pd.to_datetime(["2026-07-10"] * 5),
            "window_end_utc": pd.to_datetime(["2026-07-11"] * 5),
            "outcome": ["hit", "hit", "miss", "hit", "false_alarm"],
            "lead_met": [True, False, None, True, None],
        }
    )
    tasks = pd.DataFrame(
        {
            "town_code": [A, A, A, B],
            "issued_utc": pd.to_datetime(["2026-07-10T01:00"] * 4),
            "state": ["closed", "resolved", "stood_down", "issued"],
            "overdue": [False, True, False, True],
        }
    )
    idx = safety.safety_index(
        cases=cases, tasks=tasks, towns=[A, B], config="ejin-horo", **WINDOW
    ).set_index("town_code")
    # hits with lead met: A 1 of 2, B 1 of 1
    assert idx.loc[A, "warning_timeliness_raw"] == 0.5
    assert idx.loc[A, "warning_timeliness_n"] == 2
    assert idx.loc[B, "warning_timeliness_score"] == 100
    # closed (销号) among tasks not stood down: A 1 of 2, B 0 of 1
    assert idx.loc[A, "task_closure_raw"] == 0.5 and idx.loc[A, "task_closure_n"] == 2
    assert idx.loc[B, "task_closure_score"] == 0
    # the two evaluated components weigh 0.2 each: A (0.2*50 + 0.2*50) / 0.4 = 50
    assert idx.loc[A, "total"] == pytest.approx(50)
    assert idx.loc[A, "weight_evaluated"] == pytest.approx(0.4)


def test_shipped_config_and_samples():
    cfg = safety.load_safety_config("ejin-horo")
    assert sum(c.weight for c in cfg.components) == pytest.approx(1)
    assert all(c.source for c in cfg.components)
    samples = cfg.path.parent / "samples"
    hotline = read_hotline(samples / "hotline_12345.csv")
    alarms = read_alarms(samples / "alarms.csv")
    incidents = read_incidents(samples / "incidents.csv")
    idx = safety.safety_index(
        hotline=hotline,
        alarms=alarms,
        incidents=incidents,
        start="2026-07-10T00:00Z",
        end="2026-07-13T00:00Z",
    )
    assert A in set(idx["town_code"])
    assert idx["total"].between(0, 100).all()
    # the banner seat took the storm: the lowest score
    assert idx.set_index("town_code")["total"].idxmin() == A
    by_type = safety.tally(alarms, by=["town_code", "type"])
    assert list(by_type.columns) == ["town_code", "type", "count"]
    assert by_type["count"].sum() == len(alarms)
    by_cat = safety.tally(hotline, by="category", time_column="received_utc",
                          start="2026-07-10T00:00Z", end="2026-07-11T00:00Z")  # fmt: skip
    assert by_cat.iloc[0]["category"] == "积水内涝"
    assert by_cat["count"].sum() == 18  # two tickets on the 11th are outside


def test_hotline_reader_errors(tmp_path):
    path = tmp_path / "hotline.csv"
    path.write_text("ticket_id,received_utc,town_code,closed_utc\nH1,2026-07-10,x,\n", "utf-8")
    with pytest.raises(InputError, match=r"hotline\.csv: missing column\(s\) category"):
        read_hotline(path)
    path.write_text(
        "ticket_id,received_utc,town_code,category,closed_utc\n"
        "H1,2026-07-10T10:00Z,150627100,积水,2026-07-10T09:00Z\n",
        "utf-8",
    )
    with pytest.raises(InputError, match=r"column 'closed_utc', row 1: .* before received_utc"):
        read_hotline(path)
    path.write_text(
        "ticket_id,received_utc,town_code,category,closed_utc\n"
        "H1,2026-07-10T10:00Z,150627100,积水,\nH1,2026-07-10T11:00Z,150627100,积水,\n",
        "utf-8",
    )
    with pytest.raises(InputError, match=r"column 'ticket_id', row 2: duplicate id 'H1'"):
        read_hotline(path)
