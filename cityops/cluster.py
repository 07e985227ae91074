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

Where the work runs depends on the size of the (cropped) grid: a grid up to the *in-memory
size* is loaded into this process and evaluated with numpy (faster than a dask graph of many
small tasks); a larger one stays lazy, and with a cluster its rule evaluation and its
aggregation to units run on the workers (:func:`keep_in_client`). The size is
:data:`IN_MEMORY_BYTES` without a cluster and dask's ``array.chunk-size`` with one
(:func:`in_memory_limit`); ``--in-memory-bytes``, the ``in_memory_bytes=`` keyword of
:func:`cityops.pipeline.assess` or the environment variable :data:`IN_MEMORY_ENV` set it
(``0``: every grid goes to the cluster).
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from cityops.errors import InputError

__all__ = [
    "IN_MEMORY_BYTES",
    "IN_MEMORY_ENV",
    "active_client",
    "check_dask_scheduler",
    "dask_scheduler",
    "in_memory_limit",
    "keep_in_client",
    "parse_size",
]

log = logging.getLogger("cityops")
CONNECT_TIMEOUT = "10s"
#: Seconds the probe waits for the TCP connection and the scheduler's first message (a dask
#: server sends its handshake, ~60 bytes, as soon as it accepts).
PROBE_TIMEOUT_S = 5.0
#: Largest plausible handshake message: anything larger is another protocol's bytes read as a
#: frame length (read as is, an SSH banner asks distributed to allocate exabytes).
MAX_HANDSHAKE_BYTES = 64 * 1024

#: Without a cluster, (cropped) grids up to this size are loaded into memory before the rules
#: run: numpy on a banner-sized grid is faster than a dask graph of many tiny tasks (the
#: in-memory path of the ``assess`` benchmark, benchmarks/RESULTS.md (a)); larger grids stay
#: lazy in dask chunks, bounding the peak memory (RESULTS.md: 72 × 2000 × 2000 in 1.5 GiB).
IN_MEMORY_BYTES = 256 * 2**20
#: Environment variable that sets the in-memory size (bytes, or a dask size such as ``64MiB``).
IN_MEMORY_ENV = "CITYOPS_IN_MEMORY_BYTES"
#: The size set for the block of :func:`dask_scheduler` (``--in-memory-bytes``); None: unset.
_IN_MEMORY_SETTING: ContextVar[int | None] = ContextVar("cityops_in_memory_bytes", default=None)


def parse_size(text: str | int, *, what: str = IN_MEMORY_ENV) -> int:
    """A size in bytes from ``text`` (``268435456``, ``256MiB``, ``0.5GB``); ``what`` names
    the option or variable in the one-line error."""
    from dask.utils import parse_bytes

    try:
        value = int(parse_bytes(text))
    except (ValueError, TypeError):
        value = -1
    if value < 0:
        raise InputError(f"{what} {text!r}: expected a size in bytes such as 268435456 or 256MiB")
    return value


def active_client():
    """The dask.distributed client dask computes on now, or None (threads in this process).

    ``distributed`` is not imported for the question: without it nobody can have started a
    client.
    """
    if "distributed" not in sys.modules:
        return None
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        return None


def cluster_in_memory_bytes() -> int:
    """The in-memory size while a cluster is in use: dask's ``array.chunk-size`` (default
    128 MiB). A grid no larger than one dask chunk is one task for one worker, which gains
    nothing over this process and costs the transfer; a larger grid is split among workers."""
    import dask

    return parse_size(dask.config.get("array.chunk-size"), what="dask array.chunk-size")


def in_memory_limit(value: int | None = None) -> int:
    """The in-memory size in force (see the module docstring).

    Parameters
    ----------
    value : int, optional
        A size given by the caller; it wins over the ``--in-memory-bytes`` of the command,
        then the environment variable :data:`IN_MEMORY_ENV`, then the default
        (:data:`IN_MEMORY_BYTES` without a cluster, :func:`cluster_in_memory_bytes` with one).

    Raises
    ------
    InputError
        ``value`` is negative or the environment variable is not a size.
    """
    if value is None:
        value = _IN_MEMORY_SETTING.get()
    if value is None and os.environ.get(IN_MEMORY_ENV, "").strip():
        value = parse_size(os.environ[IN_MEMORY_ENV].strip())
    if value is None:
        return cluster_in_memory_bytes() if active_client() is not None else IN_MEMORY_BYTES
    if value < 0:
        raise InputError(f"in_memory_bytes {value}: expected a size in bytes >= 0")
    return int(value)


def keep_in_client(nbytes: int, *, in_memory_bytes: int | None = None) -> bool:
    """Whether a grid of ``nbytes`` is loaded into this process (numpy) rather than kept lazy
    (dask: on the cluster's workers when one is in use). See :func:`in_memory_limit`."""
    return nbytes <= in_memory_limit(in_memory_bytes)


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _handshake(host: str, port: int) -> dict:
    """The first message of the server at ``host:port``, decoded as a dask handshake.

    Raises ``ValueError`` (with the reason) for anything that is not one; ``OSError`` when the
    connection cannot be made or nothing arrives within :data:`PROBE_TIMEOUT_S`.
    """
    import msgpack
    from distributed.protocol.utils import unpack_frames

    with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S) as sock:
        head = _recv_exactly(sock, 8)
        if len(head) < 8:
            raise ValueError("the server closed the connection without a handshake")
        (size,) = struct.unpack("<Q", head)
        if not 0 < size <= MAX_HANDSHAKE_BYTES:
            raise ValueError(f"its first bytes {head!r} are not a dask message")
        frames = unpack_frames(_recv_exactly(sock, size))
    try:
        message = msgpack.loads(frames[0], strict_map_key=False)
    except Exception:  # any decoding failure means: not a dask handshake
        message = None
    if not isinstance(message, dict) or "python" not in message:
        raise ValueError("its first message is not a dask handshake")
    return message


def check_dask_scheduler(address: str) -> None:
    """Refuse (one line, within seconds) an address that is not a reachable dask scheduler.

    Only plain ``tcp://`` addresses (and bare ``host:port``) are probed; other transports are
    left to ``distributed``.
    """
    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        scheme, location = parse_address(address)
    except ValueError:
        raise InputError(f"--scheduler {address}: expected tcp://HOST:PORT or local:N") from None
    if scheme != "tcp":
        return
    try:
        host, port = parse_host_port(location)
    except (ValueError, TypeError):
        raise InputError(f"--scheduler {address}: expected tcp://HOST:PORT or local:N") from None
    try:
        _handshake(host, int(port))
    except TimeoutError:
        raise InputError(
            f"--scheduler {address}: no dask handshake within {PROBE_TIMEOUT_S:g} s; expected "
            "the address of a dask scheduler"
        ) from None
    except OSError as err:
        raise InputError(
            f"--scheduler {address}: cannot connect ({err.strerror or err}); expected a "
            "running dask scheduler"
        ) from None
    except ValueError as err:
        raise InputError(
            f"--scheduler {address}: not a dask scheduler ({err}); expected the address of a "
            "dask scheduler (tcp://HOST:PORT)"
        ) from None


@contextmanager
def dask_scheduler(
    address: str | None, *, in_memory_bytes: int | None = None
) -> Iterator[object | None]:
    """Send dask computations inside the block to the cluster at ``address``.

    Parameters
    ----------
    address : str or None
        ``tcp://…`` (an existing scheduler), ``local`` / ``local:N`` (a local cluster of N
        worker processes), or ``None``/``""`` for dask's default threaded scheduler.
    in_memory_bytes : int, optional
        The in-memory size inside the block (``--in-memory-bytes``; see
        :func:`in_memory_limit`); None keeps the environment's or the default.

    Yields
    ------
    distributed.Client or None

    Raises
    ------
    InputError
        The scheduler cannot be reached or the address is not understood.
    """
    token = _IN_MEMORY_SETTING.set(in_memory_bytes)
    try:
        with _cluster(address) as client:
            yield client
    finally:
        _IN_MEMORY_SETTING.reset(token)


@contextmanager
def _cluster(address: str | None) -> Iterator[object | None]:
    """The client of :func:`dask_scheduler` (None: no cluster)."""
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
        check_dask_scheduler(address)
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
