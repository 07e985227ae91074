"""Running the grid work on a dask.distributed cluster (``--scheduler``).

The data path is lazy (ingest opens files with dask chunks; the rule engine builds one graph
and computes it with ``dask.compute``), so the same code runs on a laptop's threads or on a
cluster: inside :func:`dask_scheduler` the computations go to the cluster's workers.

- ``tcp://host:8786`` (or any address ``distributed.Client`` accepts): an existing cluster, e.g.
  started by dask-jobqueue on a provincial HPC system or by the dask Kubernetes operator. The
  workers must be able to read the forecast files at the same paths (shared file system or
  object store).
- ``local`` or ``local:N``: a :class:`distributed.LocalCluster` with N worker processes on this
  machine (default 2), for tests and for using every core of one big machine.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from cityops.errors import InputError

__all__ = ["dask_scheduler"]

log = logging.getLogger("cityops")
CONNECT_TIMEOUT = "10s"


@contextmanager
def dask_scheduler(address: str | None) -> Iterator[object | None]:
    """Send dask computations inside the block to the cluster at ``address``.

    Parameters
    ----------
    address : str or None
        ``tcp://…`` (an existing scheduler), ``local`` / ``local:N`` (a local cluster of N
        worker processes), or ``None``/``""`` for dask's default threaded scheduler.

    Yields
    ------
    distributed.Client or None

    Raises
    ------
    InputError
        The scheduler cannot be reached or the address is not understood.
    """
    if not address:
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - distributed is a dependency
        raise InputError("--scheduler: dask.distributed is not installed") from None
    cluster = None
    if address == "local" or address.startswith("local:"):
        _, _, count = address.partition(":")
        try:
            workers = int(count) if count else 2
        except ValueError:
            raise InputError(f"--scheduler {address}: expected local:N with N workers") from None
        if workers < 1:
            raise InputError(f"--scheduler {address}: expected at least one worker")
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
    else:
        try:
            client = Client(address, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as err:
            raise InputError(
                f"--scheduler {address}: cannot connect to a dask scheduler ({err})"
            ) from None
    log.info("dask scheduler %s: %d workers", address, len(client.scheduler_info()["workers"]))
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
