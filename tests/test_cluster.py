"""The grid work on a dask.distributed LocalCluster: it runs on the workers for grids above
the in-memory size, and gives the same results (issues #10, #17)."""

from __future__ import annotations

import logging

import pandas as pd
import pytest
import xarray as xr
from dask.utils import key_split

from cityops.cluster import dask_scheduler, in_memory_limit, keep_in_client
from cityops.errors import InputError
from cityops.geo.risk import AGGREGATE_TASK
from cityops.pipeline import assess
from cityops.review.run import ReviewInputs, run_review
from cityops.scenarios import Perturbation, make_scenario, write_scenario

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cluster")
    fc = write_scenario("july-rainstorm", d / "fc.nc")
    late = make_scenario("july-rainstorm", observed=True,
                         observed_shift=Perturbation(dt=2.0, dx=20.0, dy=0.0, amp=1.0))  # fmt: skip
    late.to_netcdf(d / "obs.nc")
    return {"forecast": fc, "observed": d / "obs.nc"}


@pytest.fixture(scope="module")
def client():
    """Two single-threaded workers in this process (threads, not processes: quick to start;
    the CLI test below runs worker processes)."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


def _records(client, run):
    """``run()`` under the scheduler's task stream: its result, and per task prefix the
    workers that ran it; every key name (the array of a task) with its worker."""
    from distributed import get_task_stream

    with get_task_stream(client) as stream:
        out = run()
    prefixes: dict[str, set[str]] = {}
    names: dict[str, set[str]] = {}
    for rec in stream.data:
        key = rec["key"]
        prefixes.setdefault(key_split(key), set()).add(rec["worker"])
        names.setdefault(key[0] if isinstance(key, tuple) else key, set()).add(rec["worker"])
    return out, prefixes, names


def _rule_names(caplog) -> set[str]:
    """The dask names of the rule fields computed on the cluster (logged by assess)."""
    found = set()
    for rec in caplog.records:
        if rec.getMessage().startswith(("rules on the cluster:", "rule fields computed by dask:")):
            found |= set(rec.getMessage().split(":", 1)[1].split())
    return found


def _assert_ran_on_workers(client, prefixes, names, rule_names, *, aggregation=True):
    workers = set(client.scheduler_info()["workers"])
    assert len(workers) == 2
    # The rule fields (logged as dask computed them) came from tasks the workers ran: their
    # own keys, or -- where dask fused the last step into the fused kernel's task, renaming
    # the output ("kernel_N-transpose") -- the fused kernel's tasks.
    assert rule_names
    kernel = {p: w for p, w in prefixes.items() if p.split("_")[0].startswith("kernel")}
    missing = rule_names - set(names)
    assert not missing or kernel, f"rule fields not computed by the workers: {sorted(missing)[:3]}"
    assert all(names[n] <= workers for n in rule_names - missing)
    assert all(w <= workers for w in kernel.values())
    if aggregation:  # the aggregation to units (one task per field reduction) too
        assert prefixes.get(AGGREGATE_TASK), "no aggregation task ran on the workers"
        assert prefixes[AGGREGATE_TASK] <= workers


def test_default_size_keeps_a_small_grid_in_the_client(files, client):
    """With a cluster the default size is dask's chunk size: the 13 MiB sample stays here."""
    assert in_memory_limit() >= 64 * 2**20
    assert keep_in_client(xr.open_dataset(files["forecast"]).nbytes)
    _, prefixes, _ = _records(client, lambda: assess(files["forecast"]))
    assert AGGREGATE_TASK not in prefixes


def test_assess_rules_and_aggregation_run_on_the_workers(files, client, caplog):
    here = assess(files["forecast"])  # before the cluster's records: loaded, numpy
    caplog.set_level(logging.DEBUG, logger="cityops")
    there, prefixes, names = _records(client, lambda: assess(files["forecast"], in_memory_bytes=0))
    _assert_ran_on_workers(client, prefixes, names, _rule_names(caplog))
    pd.testing.assert_frame_equal(here.table, there.table)
    xr.testing.assert_identical(here.levels.to_dataset(), there.levels.to_dataset())


def test_review_runs_on_the_workers_with_identical_results(files, client, caplog):
    inputs = ReviewInputs(forecast=str(files["forecast"]), observed=str(files["observed"]))
    here = run_review(inputs)
    caplog.set_level(logging.DEBUG, logger="cityops")

    def on_cluster():
        with dask_scheduler(None, in_memory_bytes=0):  # as --in-memory-bytes 0
            return run_review(inputs)

    there, prefixes, names = _records(client, on_cluster)
    # The review evaluates the forecast and the observed grids per window (observed_levels):
    # their rules run on the workers; the per-unit reduction of the observed grids does not
    # yet (it is not the town table's aggregation; issue 17 notes it as left to do).
    _assert_ran_on_workers(client, prefixes, names, _rule_names(caplog), aggregation=False)
    for part in ("warnings", "observed", "cases", "scores"):
        pd.testing.assert_frame_equal(getattr(here, part), getattr(there, part))
    assert here.kpis == there.kpis


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
    cluster = ["--scheduler", "local:2", "--in-memory-bytes", "0"]  # worker processes
    for name, extra in (("threads", []), ("cluster", cluster)):
        done = subprocess.run(
            [sys.executable, "-m", "cityops.cli", "-q", "assess", str(fc),
             "--out", str(tmp_path / name), *extra],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        outs[name] = (tmp_path / name / "town_hazards.csv").read_bytes()
    assert outs["threads"] == outs["cluster"]
