"""Writing files and publishing output folders safely: the one owner of both.

Every file cityops writes goes through :func:`atomic_path` (or :func:`atomic_open`,
:func:`write_text`, :func:`write_bytes`): a temporary name in the target's folder, fsync,
rename; removed again on any error. Every output folder (``brief``, ``review``, ``assess``)
goes through :func:`check_out_dir` before any work and :func:`publish_folder` at the end:
built in a stage beside it, then two renames, the earlier run put back when the second fails.

The rule that keeps a user's files safe: an existing output folder is replaced only when it
is an earlier cityops run of the same kind, known by the marker file :data:`MARKER` that
cityops writes into every run it publishes (runs of cityops versions before the marker are
known by their ``run.json``, see :func:`read_marker`). An empty folder may be used; anything
else is refused (exit status 2), and so is an output folder that is, or holds, an input.

Published folders and files follow the umask (``tempfile`` makes them 0700/0600, which a web
server account could not read): folders ``0o777 & ~umask``, files ``0o666 & ~umask``.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import glob
import json
import logging
import os
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cityops.errors import InputError

__all__ = [
    "KINDS",
    "MARKER",
    "apply_umask",
    "atomic_open",
    "atomic_path",
    "check_out_dir",
    "clean_stale",
    "dir_mode",
    "file_mode",
    "make_stage",
    "publish_folder",
    "read_marker",
    "run_lock",
    "write_bytes",
    "write_marker",
    "write_text",
]

log = logging.getLogger("cityops")

#: The marker cityops writes into every output folder it publishes.
MARKER = ".cityops-run.json"
#: The kinds of output folder (the command that wrote it).
KINDS = ("brief", "review", "assess", "signal")
#: Environment variable: seconds to wait for the run lock (default :data:`LOCK_TIMEOUT_S`).
LOCK_TIMEOUT_ENV = "CITYOPS_LOCK_TIMEOUT"
#: Default time limit for waiting on the run lock: longer than a normal batch, shorter than
#: the next scheduled run.
LOCK_TIMEOUT_S = 600.0

#: A held lock whose record names a process that is gone is taken over only when the record
#: stays so this long: a new holder writes its own record just after taking the lock.
_STALE_GRACE_S = 1.0

_umask_lock = threading.Lock()


# --------------------------------------------------------------------------- modes
@functools.cache
def umask() -> int:
    """The process umask, read once.

    Read from ``/proc/self/status`` where the kernel gives it (no change to the process
    state); elsewhere set and restored under a lock (``os.umask`` can only be read by setting).
    """
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    with _umask_lock:
        value = os.umask(0o077)
        os.umask(value)
    return value


def file_mode() -> int:
    """Mode of a new file: ``0o666`` less the umask."""
    return 0o666 & ~umask()


def dir_mode() -> int:
    """Mode of a new folder: ``0o777`` less the umask."""
    return 0o777 & ~umask()


def apply_umask(root: Path) -> None:
    """Give a folder built under ``tempfile`` (0700/0600) the modes the umask asks for.

    Symbolic links are left alone (their mode means nothing and ``chmod`` would follow them).
    """
    root = Path(root)
    if root.is_symlink():
        return
    if root.is_file():
        os.chmod(root, file_mode())
        return
    os.chmod(root, dir_mode())
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, dir_mode())
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, file_mode())


# --------------------------------------------------------------------------- files
def _temp_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (best effort: some file systems cannot open a folder)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextmanager
def atomic_path(target: str | os.PathLike, *, create: bool = False) -> Iterator[Path]:
    """A temporary path beside ``target``; moved onto ``target`` when the block succeeds.

    The block writes the file at the yielded path by any means (a NetCDF writer, SQLite, ...).
    On success it is flushed to disk, given the umask's mode (or the mode of the file it
    replaces) and renamed onto ``target``; on any error (or a stop signal) it is removed and
    ``target`` is untouched.

    Parameters
    ----------
    target : path
        The file to write; its folder is created when missing.
    create : bool, default False
        Create the temporary file (empty) before the block, for writers that append.
    """
    target = Path(target)
    if target.is_dir():
        raise InputError(f"{target}: is a folder; expected a file name")
    _make_parent(target)
    tmp = _temp_name(target)
    try:
        if create:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        try:
            mode = target.stat().st_mode & 0o7777  # an existing file keeps its mode
        except FileNotFoundError:
            mode = file_mode()
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


def _make_parent(target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(
            f"{target}: cannot create folder {target.parent} ({err.strerror or err})"
        ) from None


@contextmanager
def atomic_open(target: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator:
    """``open(target, mode, **kwargs)`` written atomically (see :func:`atomic_path`)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open: mode {mode!r}; expected 'w' or 'wb'")
    if mode == "w":
        kwargs.setdefault("encoding", "utf-8")
    with atomic_path(target, create=True) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def write_text(
    target: str | os.PathLike, text: str, *, encoding: str = "utf-8", newline: str | None = ""
) -> Path:
    """Write ``text`` to ``target`` atomically (no newline translation by default)."""
    with atomic_open(target, "w", encoding=encoding, newline=newline) as fh:
        fh.write(text)
    return Path(target)


def write_bytes(target: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``target`` atomically."""
    with atomic_open(target, "wb") as fh:
        fh.write(data)
    return Path(target)


# --------------------------------------------------------------------------- the marker
def write_marker(folder: Path, kind: str, **extra) -> Path:
    """Write :data:`MARKER` into a run being built: what wrote it, which kind, when."""
    from cityops import __version__

    if kind not in KINDS:
        raise ValueError(f"kind {kind!r}; expected one of {KINDS}")
    record = {
        "kind": kind,
        "cityops_version": __version__,
        **extra,
    }
    return write_text(Path(folder) / MARKER, json.dumps(record, indent=1) + "\n")


#: Keys of the ``run.json`` of a ``brief`` run from cityops versions before the marker.
_LEGACY_RUN_KEYS = {"cityops_version", "inputs", "issued", "units", "failures"}


def read_marker(folder: Path) -> dict | None:
    """The marker of an earlier cityops run in ``folder``; ``None`` when it is not one.

    ``brief`` runs of cityops versions before the marker are recognised by their
    ``run.json`` (a JSON object with the keys cityops wrote: ``cityops_version``, ``inputs``,
    ``issued``, ``units``, ``failures``); nothing else counts as an earlier run.
    """
    folder = Path(folder)
    for name, legacy in ((MARKER, False), ("run.json", True)):
        path = folder / name
        if not path.is_file() or path.is_symlink():
            continue
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict):
            continue
        if not legacy and record.get("kind") in KINDS:
            return record
        if legacy and _LEGACY_RUN_KEYS <= set(record):
            return {"kind": "brief", "cityops_version": record["cityops_version"], "legacy": True}
    return None


def _tree(folder: Path) -> list[str]:
    """Every file and folder below ``folder``, as relative POSIX paths (links not followed)."""
    out = []
    for root, dirs, files in os.walk(folder):
        rel = Path(root).relative_to(folder)
        out += [(rel / name).as_posix() for name in dirs + files]
    return out


def _record_files(stage: Path) -> None:
    """List in the marker everything the run holds (what a later run may replace)."""
    path = stage / MARKER
    record = json.loads(path.read_text(encoding="utf-8"))
    record["files"] = sorted(p for p in _tree(stage) if p != MARKER)
    write_text(path, json.dumps(record, indent=1) + "\n")


# --------------------------------------------------------------------------- output folders
def _not_a_run(out: Path) -> InputError:
    return InputError(
        f"{out}: exists and is not a cityops run (no {MARKER}); "
        "expected a new folder or an earlier cityops run"
    )


def check_replaceable(out: Path, kind: str) -> None:
    """Refuse (exit status 2) an existing ``out`` that a new ``kind`` run may not replace."""
    if out.is_symlink() and not out.exists():
        raise InputError(f"{out}: is a broken symbolic link; expected a folder")
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError(
            f"{out}: exists and is a file; expected a folder (a new one or an earlier cityops run)"
        )
    try:
        empty = next(out.iterdir(), None) is None
    except OSError as err:
        raise InputError(f"{out}: cannot read the folder ({err.strerror or err})") from None
    if empty:
        return
    marker = read_marker(out)
    if marker is None:
        raise _not_a_run(out)
    if marker.get("kind") != kind:
        raise InputError(
            f"{out}: is a cityops {marker.get('kind')} run; expected a new folder or an "
            f"earlier cityops {kind} run"
        )
    written = marker.get("files")
    if isinstance(written, list):
        # Replace only what cityops wrote: a file someone added (minutes, notes), or a
        # marker copied into a user's folder, stops the run instead of being deleted.
        extra = sorted(set(_tree(out)) - set(written) - {MARKER})
        if extra:
            shown = ", ".join(extra[:3]) + (f" and {len(extra) - 3} more" if len(extra) > 3 else "")
            raise InputError(
                f"{out}: is a cityops {kind} run but also holds what cityops did not write "
                f"({shown}); expected an unchanged earlier run: move those out or choose "
                "another --out"
            )


def _inputs(paths: Iterable[str | os.PathLike | None], *, existing: bool = True) -> list[Path]:
    """The input paths named (glob patterns expanded), absolute; only existing ones unless
    ``existing`` is false."""
    found: list[Path] = []
    for item in paths:
        if item is None or str(item).strip() == "":
            continue
        text = os.path.expanduser(str(item))
        matches = glob.glob(text) if any(ch in text for ch in "*?[") else [text]
        # Only what exists can be lost (a rule set or jurisdiction may be given by name).
        found.extend(Path(m).resolve() for m in matches if not existing or Path(m).exists())
    return found


def check_not_over_inputs(
    out: Path,
    inputs: Iterable[str | os.PathLike | None],
    keeps: Iterable[str | os.PathLike | None] = (),
) -> None:
    """Refuse an output folder equal to, or holding, any input file or folder.

    ``keeps`` are files the run creates or updates and that must outlive it (the task
    ledger, the case library): they count even before they exist.
    """
    out = Path(out).resolve()
    for path in [*_inputs(inputs), *_inputs(keeps, existing=False)]:
        if path == out or out in path.parents:
            how = "is" if path == out else "holds"
            raise InputError(
                f"{out}: {how} the input {path}; the output would replace it "
                "(choose an output folder that holds no input)"
            )


def check_writable_place(path: Path, *, into: bool = False) -> None:
    """Refuse (exit status 2) a place where ``path`` cannot be created (or, with ``into``,
    where nothing can be created inside the folder ``path``).

    The nearest existing folder (``path``'s parent, or ``path`` itself with ``into``) must be
    a folder this process may write into.
    """
    path = Path(path)
    ancestor = path if into else path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InputError(f"{path}: cannot be created ({ancestor} is a file, not a folder)")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(f"{path}: cannot be written ({ancestor}: permission denied)")


def check_out_dir(
    out: str | os.PathLike,
    kind: str,
    inputs: Iterable[str | os.PathLike | None] = (),
    keeps: Iterable[str | os.PathLike | None] = (),
) -> Path:
    """Check an output folder before any work; its absolute path.

    Refused (:class:`InputError`, exit status 2): a file; an existing folder that is neither
    empty nor an earlier cityops run of ``kind`` (:func:`read_marker`); a folder that is, or
    holds, one of ``inputs`` or ``keeps`` (:func:`check_not_over_inputs`); a place this
    process cannot write.
    """
    out = Path(out).expanduser().resolve()
    check_not_over_inputs(out, inputs, keeps)
    check_replaceable(out, kind)
    check_writable_place(out)
    return out


def make_stage(out: Path) -> Path:
    """A new empty folder beside ``out`` to build the run in (``.NAME.tmp-*``)."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as err:
        raise InputError(f"{out}: cannot be written ({err.strerror or err})") from None


def publish_folder(
    stage: Path, out: Path, kind: str, *, checkpoint: Callable[[], None] = lambda: None
) -> None:
    """Move a finished run into place, replacing an earlier run of the same kind.

    The marker is written into the stage and the umask's modes given; ``out`` is checked
    again (it may have changed while the run was built; the caller holds the run lock).
    Two renames: the earlier run aside to ``.NAME.old-PID``, the new one in. ``checkpoint``
    is called before each rename (it raises to stop, e.g. on a held stop signal); a stop or a
    failing rename puts the earlier run back. A process killed outright between the renames
    leaves ``NAME`` missing and the earlier run aside: the next run puts it back
    (:func:`clean_stale`).
    """
    if not (stage / MARKER).exists():
        write_marker(stage, kind)
    _record_files(stage)
    apply_umask(stage)
    checkpoint()
    check_replaceable(out, kind)
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
    try:
        checkpoint()
        os.replace(stage, out)
    except BaseException:
        if old is not None:
            os.replace(old, out)
        raise
    _fsync_dir(out.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def clean_stale(out: Path) -> None:
    """Clear what a killed run left beside ``out`` (under the run lock: nothing uses them).

    Stages ``.NAME.tmp-*`` and earlier runs moved aside ``.NAME.old-*`` are removed; when
    ``out`` itself is missing (killed between the two renames of :func:`publish_folder`), the
    most recently moved earlier run is put back first.
    """
    prefix = glob.escape(f".{out.name}")
    olds = sorted(out.parent.glob(f"{prefix}.old-*"), key=lambda p: p.lstat().st_ctime)
    if olds and not out.exists() and not out.is_symlink():
        back = olds.pop()
        os.replace(back, out)
        log.warning("%s was missing after an interrupted run: put back %s", out, back.name)
    for path in [*olds, *out.parent.glob(f"{prefix}.tmp-*")]:
        log.warning("removing %s left by an interrupted run", path)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()


# --------------------------------------------------------------------------- the run lock
def lock_timeout(value: float | None = None) -> float:
    """Seconds to wait for the run lock: ``value``, else ``CITYOPS_LOCK_TIMEOUT``, else 600."""
    if value is None:
        text = os.environ.get(LOCK_TIMEOUT_ENV, "").strip()
        if not text:
            return LOCK_TIMEOUT_S
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        where = f"${LOCK_TIMEOUT_ENV}={text!r}"
    else:
        where = f"--lock-timeout {value!r}"
    if not value >= 0 or value == float("inf"):  # also NaN
        raise InputError(f"{where}: expected a number of seconds >= 0")
    return float(value)


def _holder(fd: int) -> dict:
    """The holder record in a lock file (``{}`` when none or unreadable)."""
    with contextlib.suppress(OSError, ValueError):
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 4096).decode("utf-8", "replace")
        record = json.loads(text) if text.strip() else {}
        return record if isinstance(record, dict) else {}
    return {}


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError, OverflowError):
        return True  # someone else's process, or a record that says nothing: assume alive
    return True


def _describe(holder: dict) -> str:
    pid = holder.get("pid", "?")
    host = holder.get("host", "?")
    since = holder.get("started_utc", "?")
    return f"pid {pid} on {host}, since {since}"


def _dead_here(holder: dict) -> bool:
    """The holder ran on this host and its process is gone."""
    return (
        bool(holder)
        and holder.get("host") == socket.gethostname()
        and not _alive(holder.get("pid"))
    )


def _open_lock(lock_path: Path) -> int:
    try:
        # --out a/b/run with a/b not there yet: made, as the run's stage would be.
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(lock_path, os.O_RDWR | os.O_CREAT, file_mode())
    except OSError as err:
        raise InputError(f"{lock_path}: cannot open the run lock ({err.strerror or err})") from None


@contextmanager
def run_lock(out: Path, timeout: float | None = None) -> Iterator[Path]:
    """One run at a time per output folder, waiting at most ``timeout`` seconds.

    The lock file ``.NAME.lock`` beside ``out`` holds the holder's pid, host and start time
    while it is held (cleared on release). A record left by a process that is gone (killed
    outright) is reported as a warning and the lock is taken over; a live holder is waited
    for up to the time limit, then refused (exit status 2) naming the lock and its holder.
    """
    limit = lock_timeout(timeout)
    lock_path = out.parent / f".{out.name}.lock"
    fd = _open_lock(lock_path)
    deadline = time.monotonic() + limit
    delay = 0.05
    dead_since = None  # when the record of a holder that is gone was first seen
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _holder(fd)
                if not _dead_here(holder):
                    dead_since = None
                elif dead_since is None:
                    dead_since = time.monotonic()
                if dead_since is not None and time.monotonic() - dead_since >= _STALE_GRACE_S:
                    # The lock is held by a process that is gone (a descendant that kept the
                    # file open): a new lock file under the same name is taken over.
                    log.warning(
                        "run lock %s is held for %s, which is no longer running: taking it over",
                        lock_path,
                        _describe(holder),
                    )
                    os.close(fd)
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(lock_path)
                    fd = _open_lock(lock_path)
                    dead_since = None
                    continue
                if time.monotonic() >= deadline:
                    raise InputError(
                        f"{lock_path}: run lock held by another cityops run ({_describe(holder)}) "
                        f"for more than {limit:g} s; wait for it to finish, or stop it, or set "
                        f"--lock-timeout / ${LOCK_TIMEOUT_ENV}"
                    ) from None
                time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 2, 1.0)
        holder = _holder(fd)
        if holder:
            state = "is no longer running" if _dead_here(holder) else "did not release it"
            log.warning(
                "run lock %s was left by %s, which %s: taking it over",
                lock_path,
                _describe(holder),
                state,
            )
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        os.fsync(fd)
        try:
            yield lock_path
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
