"""The grid work on a dask.distributed LocalCluster gives the same results (issue #10)."""

from __future__ import annotations

import pandas as pd
import pytest
import xarray as xr

from cityops.cluster import dask_scheduler
from cityops.errors import InputError
from cityops.pipeline import assess
from cityops.scenarios import write_scenario

pytestmark = pytest.mark.slow


def test_local_cluster_with_two_workers_gives_identical_results(tmp_path):
    fc = write_scenario("july-rainstorm", tmp_path / "fc.nc")
    here = assess(fc)
    with dask_scheduler("local:2") as client:
        assert len(client.scheduler_info()["workers"]) == 2
        there = assess(fc)
    pd.testing.assert_frame_equal(here.table, there.table)
    xr.testing.assert_identical(here.levels.to_dataset(), there.levels.to_dataset())


def test_unreachable_scheduler_is_one_clear_error():
    with pytest.raises(InputError, match="cannot connect"), dask_scheduler("tcp://127.0.0.1:9"):
        pass


def test_bad_local_worker_count():
    with pytest.raises(InputError, match="local:N"), dask_scheduler("local:x"):
        pass


def test_cli_assess_on_a_local_cluster_writes_the_same_table(tmp_path):
    import subprocess
    import sys

    fc = write_scenario("quiet-day", tmp_path / "fc.nc")
    outs = {}
    for name, extra in (("threads", []), ("cluster", ["--scheduler", "local:2"])):
        done = subprocess.run(
            [sys.executable, "-m", "cityops.cli", "-q", "assess", str(fc),
             "--out", str(tmp_path / name), *extra],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        outs[name] = (tmp_path / name / "town_hazards.csv").read_bytes()
    assert outs["threads"] == outs["cluster"]
