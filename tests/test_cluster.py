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
