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
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager

from cityops.errors import InputError

__all__ = ["check_dask_scheduler", "dask_scheduler"]

log = logging.getLogger("cityops")
CONNECT_TIMEOUT = "10s"
#: Seconds the probe waits for the TCP connection and the scheduler's first message (a dask
#: server sends its handshake, ~60 bytes, as soon as it accepts).
PROBE_TIMEOUT_S = 5.0
#: Largest plausible handshake message: anything larger is another protocol's bytes read as a
#: frame length (read as is, an SSH banner asks distributed to allocate exabytes).
MAX_HANDSHAKE_BYTES = 64 * 1024


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
