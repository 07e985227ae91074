"""Tasks at the level the plan assigns them (issue 19 item 1).

A banner-level measure is one task per episode for the whole banner, listing what triggers
it; a town-level measure (lead 各镇人民政府) one task per town. An owner never sees the same
measure twice in one run, whatever the number of hazards and units.
"""

from __future__ import annotations

import pandas as pd
import pytest

from cityops import ledger
from cityops.pipeline import assess
from cityops.scenarios import write_scenario


@pytest.fixture(scope="module")
def blizzard(tmp_path_factory):
    return assess(write_scenario("january-blizzard", tmp_path_factory.mktemp("b") / "b.nc"))


def test_the_blizzard_gives_tens_of_tasks_not_hundreds(blizzard):
    tasks = blizzard.response.tasks
    assert 10 <= len(tasks) < 100  # was 547 with a task per unit × hazard × measure
    assert not tasks.duplicated(["town_code", "measure"]).any()
    banner = tasks[tasks.scope == "banner"]
    assert set(banner.town_code) == {"150627"}
    assert (tasks[tasks.scope == "town"].lead_unit == "各镇人民政府").all()
    # the weather bureau publishes the warning once, not once per unit and hazard
    relay = tasks[tasks.measure == "general_warning_relay"]
    assert len(relay) == 1
    triggers = relay.iloc[0].triggers.split("; ")
    active = blizzard.table[(blizzard.table.level > 0) & blizzard.table.evaluated.astype(bool)]
    assert len(triggers) == len(active)  # every unit × hazard that calls for it is listed
    assert relay.iloc[0].level == active.level.max()


def test_a_unit_sees_its_own_and_the_banner_tasks_it_triggers(blizzard):
    tasks = blizzard.response.tasks
    code = blizzard.table.loc[blizzard.table.level > 0, "town_code"].iloc[0]
    _, mine = blizzard.response.for_unit(code)
    assert len(mine) > 0
    for _, t in mine.iterrows():
        assert t.town_code == code or f"{code} " in t.triggers
    other = tasks[(tasks.scope == "town") & (tasks.town_code != code)]
    assert not set(other.index) & set(mine.index)


def test_the_earliest_deadline_and_the_widest_period_count(blizzard):
    tasks = blizzard.response.tasks
    table = blizzard.table.set_index(["town_code", "hazard"])
    for _, t in tasks.iterrows():
        onsets = [
            table.loc[(c, h), "onset_utc"]
            for c, h, _ in (x.split(" ") for x in t.triggers.split("; "))
        ]
        assert t.onset_utc == min(onsets, key=pd.Timestamp)


def test_the_ledger_keeps_one_task_per_owner_and_measure(blizzard, tmp_path):
    db = tmp_path / "l.sqlite"
    first = ledger.merge_run(db, blizzard.response.tasks, run_time=blizzard.now)
    assert first["inserted"] == len(blizzard.response.tasks)
    again = ledger.merge_run(db, blizzard.response.tasks, run_time=blizzard.now)
    assert again["inserted"] == 0 and again["unchanged"] == len(blizzard.response.tasks)
    stored = ledger.list_tasks(db)
    assert len(stored) == len(blizzard.response.tasks)
    assert all(row["triggers"] for row in stored)
