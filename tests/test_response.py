"""Response planning from the town table, and the brief batch recording tasks in the ledger."""

from __future__ import annotations

import pandas as pd
import pytest

from cityops.brief import BriefOptions, run_briefings
from cityops.ledger import list_tasks
from cityops.pipeline import assess
from cityops.scenarios import write_scenario


@pytest.fixture(scope="module")
def storm(tmp_path_factory):
    path = write_scenario("july-rainstorm", tmp_path_factory.mktemp("r") / "rain.nc")
    return path, assess(path)


def test_red_rainstorm_town_gets_middle_loop_response_and_stop_classes(storm):
    _, a = storm
    post, tasks = a.response.for_unit("150627100")
    # red and Annex 3 extreme over the seat: II response (middle loop), and a proposal that
    # the HQ consult on the big loop, which only the HQ decides (000:133)
    assert post["posture"] == "ii_response" and "000:135" in post["posture_basis"]
    assert "150627100" in a.response.hq_consultation
    assert "Naadam" not in post["periods"] and "那达慕大会" in post["periods"]
    assert "stop_classes" in post["four_stops"]
    assert "强降雨城市内涝运维保障工作方案" in post["plans"]
    assert "城市生命线运行维护保障响应组" in post["groups"]
    assert "rain_road_closure" in set(tasks["measure"])
    # Tasks are due no earlier than the reference time, and each cites its source line.
    assert (pd.to_datetime(tasks["due_utc"]) >= pd.Timestamp("2026-07-10T00:00Z")).all()
    assert tasks["source"].str.len().gt(0).all()


def test_quiet_day_has_no_tasks_and_routine_posture(tmp_path):
    a = assess(write_scenario("quiet-day", tmp_path / "quiet.nc"))
    assert a.response.tasks.empty
    assert set(a.response.postures["level"]) == {0}
    assert a.response.postures["four_stops"].eq("").all()


@pytest.mark.slow
def test_brief_writes_tasks_and_ledger_without_duplicates(storm, tmp_path):
    path, _ = storm
    ledger = tmp_path / "ledger.sqlite"
    opts = BriefOptions(towns="150627100", jobs=1, ledger=str(ledger))
    run_briefings(path, tmp_path / "run", opts)
    tasks_csv = pd.read_csv(tmp_path / "run" / "150627100" / "tasks.csv")
    assert len(tasks_csv) > 10 and "measure" in tasks_csv
    first = list_tasks(ledger)
    run_briefings(path, tmp_path / "run", opts)  # the same forecast again
    again = list_tasks(ledger)
    assert len(first) == len(again) > 0


def test_dissemination_roles_and_channels_by_level(storm):
    _, a = storm
    dis = a.response.dissemination
    red = dis[(dis.town_code == "150627100") & (dis.hazard == "rainstorm")].iloc[0]
    assert "sirens" in red["channels"] and "受威胁群众" in red["roles_zh"]
    blue = dis[dis["level"] == 1]
    if len(blue):
        # Sirens only in an emergency: a blue row without the Annex 3 flag never gets them.
        plain = blue[
            ~blue.merge(a.table, on=["town_code", "hazard"])["extreme"].astype(bool).values
        ]
        assert not plain["channels"].str.contains("sirens").any()
