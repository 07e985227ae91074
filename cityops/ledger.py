"""The task ledger (interfaces.md §7): tasks, their history, episodes and CAP identifiers in SQLite.

A task is identified by (unit, hazard, measure, episode); its id is deterministic, e.g.
``150627100-rainstorm-rain_underpass_closure-E20260710T1200``. An *episode* is one continuous
period of exceedance for a (town, hazard): a run whose [onset, end] overlaps an existing
episode, or touches it within ``gap`` (default 6 h), extends that episode; otherwise it opens
a new one, labelled by its start time (UTC) ``E%Y%m%dT%H%M``.

States: ``issued → dispatched → on_site → resolved → closed`` (closed = 销号), plus
``stood_down`` (hazard gone before action); ``escalated`` is a counter/flag (0 = not escalated,
1 = escalated once, 2 = escalated again two weeks later, ...). Every change is recorded in
``task_history`` with time, actor and note.

Times are stored as ISO 8601 UTC strings (``2026-07-10T12:00:00Z``), which sort correctly.
Escalation (:func:`check_escalation`) applies the plan's follow-up rules (``plan/timing.yaml``)
with their own clocks and basis (calendar or working days): :mod:`cityops.deadlines`.

Concurrency: every write is one ``BEGIN IMMEDIATE`` transaction (WAL mode, ``busy_timeout``),
so concurrent writers queue rather than lose updates, and an exception inside a write rolls
the whole write back. A ledger still locked by another connection after the busy timeout
(``$CITYOPS_LEDGER_TIMEOUT`` seconds, default 30), or a file that is not an SQLite ledger
(random bytes, damaged pages), raises :class:`~cityops.errors.InputError` naming the file
(exit status 2), never a traceback.
"""

from __future__ import annotations

import contextlib
import csv
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd

from cityops.deadlines import PROGRESS, add_workdays, breaches, is_workday
from cityops.errors import InputError
from cityops.fsio import atomic_open
from cityops.text import check_name, neutralise_cell
from cityops.timeutil import REPORT_TZ, iso_utc, parse_utc

__all__ = [
    "ALLOWED",
    "CLOCK_COLUMNS",
    "EXPORT_COLUMNS",
    "LOOPS",
    "OPEN_STATES",
    "SCHEMA_VERSION",
    "STATES",
    "add_workdays",
    "check_escalation",
    "checked_state",
    "connect",
    "default_ledger_path",
    "episode_label",
    "escalations",
    "export_tasks",
    "get_task",
    "is_workday",
    "latest_cap",
    "ledger_error",
    "list_report_clocks",
    "list_tasks",
    "merge_run",
    "open_incident",
    "overdue",
    "record_cap",
    "report_clock",
    "task_history",
    "task_id_for",
    "update_state",
]

DEFAULT_PATH = Path("var") / "ledger.sqlite"
ENV_VAR = "CITYOPS_LEDGER"
#: Environment variable: seconds to wait for a ledger locked by another connection.
TIMEOUT_ENV_VAR = "CITYOPS_LEDGER_TIMEOUT"
BUSY_TIMEOUT_MS = 30_000
DEFAULT_GAP = pd.Timedelta(hours=6)

#: Task states (interfaces §7): ``proposed`` by an unattended run until a signal is issued
#: (000:131: tracking starts with the release), then issued → dispatched → acknowledged →
#: on site → resolved → approved (by the lead or competent department, 000:135-137) →
#: closed (销号); ``stood_down`` when the hazard goes or the signal is lifted before action.
STATES = (*PROGRESS, "stood_down")
LOOPS = ("big", "middle", "small")
#: States in which a task still needs action (may be stood down, may become overdue/escalated).
OPEN_STATES = ("issued", "dispatched", "acknowledged", "on_site")
#: States a run may stand down when the task is absent from it (no action taken yet).
STANDABLE_STATES = ("proposed", "issued", "dispatched", "acknowledged")
#: States that end the clock (not overdue, not escalated).
DONE_STATES = ("resolved", "approved", "closed", "stood_down")

ALLOWED: dict[str, tuple[str, ...]] = {
    "proposed": ("issued", "stood_down"),
    "issued": ("dispatched", "acknowledged", "on_site", "resolved", "stood_down"),
    "dispatched": ("acknowledged", "on_site", "resolved", "stood_down"),
    "acknowledged": ("on_site", "resolved", "stood_down"),
    "on_site": ("resolved",),
    "resolved": ("approved", "on_site"),  # on_site again = reopened, the fix did not hold
    "approved": ("closed", "on_site"),
    "stood_down": ("proposed", "issued", "closed"),
    "closed": (),
}

EXPORT_COLUMNS = (
    "task_id",
    "scope",
    "town_code",
    "hazard",
    "episode",
    "measure",
    "loop",
    "lead_unit",
    "supporting_units",
    "state",
    "due_utc",
    "created_utc",
    "updated_utc",
    "overdue",
    "escalated",
    "triggers",
    "source",
)

INPUT_COLUMNS = (
    "town_code",
    "hazard",
    "measure",
    "loop",
    "lead_unit",
    "supporting_units",
    "due_utc",
    "onset_utc",
    "end_utc",
    "level",
    "source",
    "text_zh",
)

# Follow-up and escalation rules are the plan's (plan/timing.yaml), read by cityops.deadlines.
ESCALATION_ACTOR = "cityops escalation"

SCHEMA_VERSION = 6

_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE episodes (
            town_code TEXT NOT NULL,
            hazard TEXT NOT NULL,
            episode TEXT NOT NULL,
            start_utc TEXT NOT NULL,
            end_utc TEXT NOT NULL,
            PRIMARY KEY (town_code, hazard, episode)
        )""",
        """CREATE TABLE tasks (
            task_id TEXT PRIMARY KEY,
            town_code TEXT NOT NULL,
            hazard TEXT NOT NULL,
            episode TEXT NOT NULL,
            measure TEXT NOT NULL,
            loop TEXT NOT NULL CHECK (loop IN ('big', 'middle', 'small')),
            lead_unit TEXT NOT NULL DEFAULT '',
            supporting_units TEXT NOT NULL DEFAULT '',
            state TEXT NOT NULL CHECK (state IN
                ('issued', 'dispatched', 'on_site', 'resolved', 'closed', 'stood_down')),
            due_utc TEXT,
            created_utc TEXT NOT NULL,
            updated_utc TEXT NOT NULL,
            escalated INTEGER NOT NULL DEFAULT 0,
            escalated_utc TEXT,
            source TEXT NOT NULL DEFAULT '',
            level INTEGER,
            onset_utc TEXT,
            end_utc TEXT,
            text_zh TEXT NOT NULL DEFAULT '',
            FOREIGN KEY (town_code, hazard, episode)
                REFERENCES episodes (town_code, hazard, episode)
        )""",
        "CREATE INDEX tasks_town_hazard ON tasks (town_code, hazard, episode)",
        "CREATE INDEX tasks_state ON tasks (state)",
        """CREATE TABLE task_history (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            task_id TEXT NOT NULL REFERENCES tasks (task_id),
            time_utc TEXT NOT NULL,
            actor TEXT NOT NULL,
            from_state TEXT,
            to_state TEXT NOT NULL,
            note TEXT NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX task_history_task ON task_history (task_id, id)",
        """CREATE TABLE cap_alerts (
            identifier TEXT PRIMARY KEY,
            run_issued_utc TEXT,
            hazard TEXT NOT NULL,
            msg_type TEXT NOT NULL CHECK (msg_type IN ('Alert', 'Update', 'Cancel')),
            references_ids TEXT NOT NULL DEFAULT '',
            sent_utc TEXT NOT NULL,
            status TEXT NOT NULL
        )""",
        "CREATE INDEX cap_alerts_hazard ON cap_alerts (hazard, sent_utc)",
    ),
    # Signals actually issued by a duty forecaster (cityops issue): what the review counts.
    2: (
        """CREATE TABLE signals (
            identifier TEXT PRIMARY KEY,
            town_code TEXT NOT NULL,
            hazard TEXT NOT NULL,
            level INTEGER NOT NULL CHECK (level BETWEEN 0 AND 4),
            action TEXT NOT NULL CHECK (action IN ('issue', 'update', 'lift')),
            valid_from_utc TEXT,
            valid_to_utc TEXT,
            issuer TEXT NOT NULL,
            issued_utc TEXT NOT NULL,
            recorded_utc TEXT NOT NULL,
            run TEXT NOT NULL DEFAULT '',
            run_issued_utc TEXT,
            status TEXT NOT NULL CHECK (status IN ('Actual', 'Exercise')),
            supersedes TEXT REFERENCES signals (identifier),
            note TEXT NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX signals_unit ON signals (town_code, hazard, issued_utc)",
    ),
    # The CAP message each issuing act sent, and acknowledgements of the people reached.
    3: (
        "ALTER TABLE signals ADD COLUMN cap_identifier TEXT NOT NULL DEFAULT ''",
        """CREATE TABLE signal_acks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            cap_identifier TEXT NOT NULL,
            recipient TEXT NOT NULL,
            acknowledged_by TEXT NOT NULL,
            acknowledged_utc TEXT NOT NULL,
            recorded_utc TEXT NOT NULL,
            note TEXT NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX signal_acks_message ON signal_acks (cap_identifier, recipient)",
    ),
    # One task per measure and owner: what triggers it (units, hazards, levels).
    4: ("ALTER TABLE tasks ADD COLUMN triggers TEXT NOT NULL DEFAULT ''",),
    # Proposed, acknowledged and approved states (issue 19 items 2-3): SQLite cannot change a
    # CHECK constraint, so the table is rebuilt (foreign keys off during the migration).
    5: (
        """CREATE TABLE tasks_v5 (
            task_id TEXT PRIMARY KEY,
            town_code TEXT NOT NULL,
            hazard TEXT NOT NULL,
            episode TEXT NOT NULL,
            measure TEXT NOT NULL,
            loop TEXT NOT NULL CHECK (loop IN ('big', 'middle', 'small')),
            lead_unit TEXT NOT NULL DEFAULT '',
            supporting_units TEXT NOT NULL DEFAULT '',
            state TEXT NOT NULL CHECK (state IN
                ('proposed', 'issued', 'dispatched', 'acknowledged', 'on_site', 'resolved',
                 'approved', 'closed', 'stood_down')),
            due_utc TEXT,
            created_utc TEXT NOT NULL,
            updated_utc TEXT NOT NULL,
            escalated INTEGER NOT NULL DEFAULT 0,
            escalated_utc TEXT,
            source TEXT NOT NULL DEFAULT '',
            level INTEGER,
            onset_utc TEXT,
            end_utc TEXT,
            text_zh TEXT NOT NULL DEFAULT '',
            triggers TEXT NOT NULL DEFAULT '',
            FOREIGN KEY (town_code, hazard, episode)
                REFERENCES episodes (town_code, hazard, episode)
        )""",
        "INSERT INTO tasks_v5 SELECT task_id, town_code, hazard, episode, measure, loop, "
        "lead_unit, supporting_units, state, due_utc, created_utc, updated_utc, escalated, "
        "escalated_utc, source, level, onset_utc, end_utc, text_zh, triggers FROM tasks",
        "DROP TABLE tasks",
        "ALTER TABLE tasks_v5 RENAME TO tasks",
        "CREATE INDEX tasks_town_hazard ON tasks (town_code, hazard, episode)",
        "CREATE INDEX tasks_state ON tasks (state)",
        "ALTER TABLE task_history ADD COLUMN role TEXT NOT NULL DEFAULT ''",
    ),
    # Scope and the loop's basis on the task (issue 19 items 1, 3); incidents and their report
    # clocks (item 5: 001:12, 002:1594).
    6: (
        "ALTER TABLE tasks ADD COLUMN scope TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE tasks ADD COLUMN loop_basis TEXT NOT NULL DEFAULT ''",
        """CREATE TABLE incidents (
            incident_id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            scale TEXT NOT NULL,
            town_code TEXT NOT NULL DEFAULT '',
            occurred_utc TEXT NOT NULL,
            recorded_utc TEXT NOT NULL,
            recorded_by TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'Actual',
            note TEXT NOT NULL DEFAULT ''
        )""",
        """CREATE TABLE report_clocks (
            incident_id TEXT NOT NULL REFERENCES incidents (incident_id),
            clock_id TEXT NOT NULL,
            channel TEXT NOT NULL DEFAULT '',
            report_to TEXT NOT NULL DEFAULT '',
            due_utc TEXT NOT NULL,
            reported_utc TEXT,
            reported_by TEXT NOT NULL DEFAULT '',
            source TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (incident_id, clock_id)
        )""",
    ),
}


# --------------------------------------------------------------------------- connection


def default_ledger_path(path: str | os.PathLike | None = None) -> Path:
    """The ledger path: ``path`` if given, else ``$CITYOPS_LEDGER``, else ``var/ledger.sqlite``."""
    if path:
        return Path(path)
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return Path.cwd() / DEFAULT_PATH


def _busy_timeout_s() -> float:
    """Seconds to wait for a lock held by another connection (``$CITYOPS_LEDGER_TIMEOUT``)."""
    text = os.environ.get(TIMEOUT_ENV_VAR, "").strip()
    if not text:
        return BUSY_TIMEOUT_MS / 1000
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise InputError(f"{TIMEOUT_ENV_VAR}={text!r}: expected a number of seconds >= 0")
    return value


def ledger_error(target: Path, err: sqlite3.Error) -> InputError:
    """One line for an SQLite failure on the ledger file: locked, or not a ledger at all."""
    text = str(err)
    if isinstance(err, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return InputError(
            f"ledger {target}: locked by another connection ({text}, waited "
            f"{_busy_timeout_s():g} s); expected it to be free: retry when the other cityops "
            f"run has finished, or set {TIMEOUT_ENV_VAR} to wait longer"
        )
    return InputError(
        f"ledger {target}: not a usable cityops ledger ({text}); expected an SQLite database "
        "written by cityops (restore it from a backup or start a new one)"
    )


#: The first 16 bytes of every SQLite 3 database file.
SQLITE_HEADER = b"SQLite format 3\x00"
#: The message of a read-only command given a ledger that does not exist.
NO_LEDGER = "no task ledger here; expected an existing ledger (brief creates one)"


def _check_existing_file(target: Path, *, create: bool) -> bool:
    """Whether ``target`` exists as a plausible ledger file; refuse anything else by name.

    A missing file is fine only when ``create``; a folder, a zero-byte file or a file that is
    not SQLite is never turned into a new ledger (it may be someone's data).
    """
    if not target.exists():
        if not create:
            raise InputError(f"ledger {target}: {NO_LEDGER}")
        return False
    if target.is_dir():
        raise InputError(f"ledger {target}: is a folder; expected a cityops task ledger (SQLite)")
    try:
        with target.open("rb") as fh:
            head = fh.read(len(SQLITE_HEADER))
    except OSError as err:
        raise InputError(f"ledger {target}: cannot read ({err.strerror})") from None
    if not head:
        raise InputError(
            f"ledger {target}: empty file (0 bytes); expected a cityops task ledger (SQLite), "
            "not turned into a new one: remove it to start a new ledger"
        )
    if head != SQLITE_HEADER:
        raise InputError(
            f"ledger {target}: not an SQLite database (first bytes {head[:8]!r}); expected a "
            "cityops task ledger"
        )
    return True


def _check_schema(conn: sqlite3.Connection, target: Path) -> None:
    """An existing file must be a cityops ledger of a schema this cityops knows."""
    has_table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if not has_table:
        raise InputError(
            f"ledger {target}: an SQLite database but not a cityops ledger (no schema_version "
            "table); expected a ledger written by cityops"
        )
    current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
    if current > SCHEMA_VERSION:
        raise InputError(
            f"ledger {target}: schema version {current} is newer than this cityops knows "
            f"({SCHEMA_VERSION}); expected version <= {SCHEMA_VERSION}: upgrade cityops"
        )


def connect(path: str | os.PathLike | None = None, *, create: bool = True) -> sqlite3.Connection:
    """Open (creating and migrating if needed) the ledger; autocommit, rows as ``sqlite3.Row``.

    Parameters
    ----------
    path : path, optional
        The ledger (default :func:`default_ledger_path`).
    create : bool, optional
        Create a missing ledger (and its folder). Read-only commands pass ``False``: a
        missing ledger is then refused and nothing is created.

    Raises :class:`InputError` when the file is missing (``create=False``), cannot be opened,
    is a folder, empty, not SQLite, not a cityops ledger, of a newer schema, or locked by
    another connection beyond the busy timeout.
    """
    target = default_ledger_path(path)
    timeout = _busy_timeout_s()
    existed = _check_existing_file(target, create=create)
    try:
        if not existed:
            target.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(target), timeout=timeout, isolation_level=None)
    except (OSError, sqlite3.Error) as err:
        raise InputError(
            f"ledger {target}: cannot open ({err}); expected a writable SQLite file path"
        ) from None
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        if existed:
            _check_schema(conn, target)  # before any PRAGMA that writes to the file
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")
        _migrate(conn)
    except sqlite3.DatabaseError as err:
        conn.close()
        raise ledger_error(target, err) from None
    except BaseException:
        conn.close()
        raise
    return conn


def ledger_path_of(conn: sqlite3.Connection) -> str:
    """The file behind a connection (for messages)."""
    row = conn.execute("PRAGMA database_list").fetchone()
    return str(row[2]) if row is not None and row[2] else "(in memory)"


def checked_state(conn: sqlite3.Connection, task: dict) -> dict:
    """``task`` (a row as a dict) if its state is known; else one line naming all three.

    The ``CHECK`` constraint keeps unknown states out, but a ledger edited by hand (or by
    another tool) may hold one: refuse it by name instead of a ``KeyError``.
    """
    if task.get("state") not in STATES:
        raise InputError(
            f"ledger {ledger_path_of(conn)}: task {task.get('task_id')} has unknown state "
            f"{task.get('state')!r}; expected one of {', '.join(STATES)}"
        )
    return task


def _migrate(conn: sqlite3.Connection) -> None:
    has_table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if has_table:
        current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
        if current == SCHEMA_VERSION:
            return  # up to date: no write lock needed
    # A table rebuild (version 5) drops a table others refer to: foreign keys off meanwhile
    # (a no-op inside a transaction, so set here), checked before the commit.
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        _apply_migrations(conn)
    finally:
        conn.execute("PRAGMA foreign_keys = ON")


def _apply_migrations(conn: sqlite3.Connection) -> None:
    with _transaction(conn):
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version "
            "(version INTEGER PRIMARY KEY, applied_utc TEXT NOT NULL)"
        )
        current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
        if current > SCHEMA_VERSION:
            raise InputError(
                f"ledger schema version {current} is newer than this cityops ({SCHEMA_VERSION})"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, applied_utc) VALUES (?, ?)",
                (version, iso_utc(parse_utc("now"))),
            )
        bad = conn.execute("PRAGMA foreign_key_check").fetchall()
        if bad:
            raise InputError(f"ledger migration left {len(bad)} dangling reference(s)")


@contextlib.contextmanager
def _open(db) -> Iterator[sqlite3.Connection]:
    """Use a connection as is, or open (and close afterwards) a ledger path."""
    if isinstance(db, sqlite3.Connection):
        yield db
        return
    conn = connect(db)
    try:
        yield conn
    except sqlite3.DatabaseError as err:  # locked past the timeout, damaged pages
        raise ledger_error(default_ledger_path(db), err) from None
    finally:
        conn.close()


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction (``BEGIN IMMEDIATE``); a savepoint when already inside one."""
    if conn.in_transaction:
        conn.execute("SAVEPOINT cityops_sp")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK TO cityops_sp")
            conn.execute("RELEASE cityops_sp")
            raise
        conn.execute("RELEASE cityops_sp")
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# --------------------------------------------------------------------------- identity


def episode_label(start) -> str:
    """``E20260710T1200`` from an episode's start time (UTC)."""
    return "E" + parse_utc(start, what="episode start").strftime("%Y%m%dT%H%M")


def task_id_for(town_code: str, hazard: str, measure: str, episode: str) -> str:
    """The deterministic task id of an identity (unit, hazard, measure, episode)."""
    return f"{town_code}-{hazard}-{measure}-{episode}"


def _find_or_open_episode(
    conn: sqlite3.Connection, town: str, hazard: str, onset, end, gap: pd.Timedelta, stats: dict
) -> str:
    rows = conn.execute(
        "SELECT episode, start_utc, end_utc FROM episodes WHERE town_code = ? AND hazard = ? "
        "ORDER BY start_utc",
        (town, hazard),
    ).fetchall()
    for row in rows:
        start, stop = parse_utc(row["start_utc"]), parse_utc(row["end_utc"])
        if onset <= stop + gap and end >= start - gap:
            new_start, new_stop = min(start, onset), max(stop, end)
            if (new_start, new_stop) != (start, stop):
                conn.execute(
                    "UPDATE episodes SET start_utc = ?, end_utc = ? "
                    "WHERE town_code = ? AND hazard = ? AND episode = ?",
                    (iso_utc(new_start), iso_utc(new_stop), town, hazard, row["episode"]),
                )
                stats["episodes_extended"] += 1
            return row["episode"]
    label = episode_label(onset)
    conn.execute(
        "INSERT INTO episodes (town_code, hazard, episode, start_utc, end_utc) VALUES (?,?,?,?,?)",
        (town, hazard, label, iso_utc(onset), iso_utc(end)),
    )
    stats["episodes_opened"] += 1
    return label


# --------------------------------------------------------------------------- values


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple, set)):
        return "、".join(str(v) for v in value if str(v).strip())
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    return str(value).strip()


def _time_or_none(value, what: str) -> pd.Timestamp | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)) or value == "":
        return None
    return parse_utc(value, what=what)


def _level(value, where: str) -> int | None:
    if value is None or pd.isna(value):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: level {value!r} is not an integer") from None


def _history(conn, task_id: str, time_utc: str, actor: str, from_state, to_state, note: str,
             *, role: str = ""):  # fmt: skip
    conn.execute(
        "INSERT INTO task_history (task_id, time_utc, actor, from_state, to_state, note, role) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (task_id, time_utc, actor, from_state, to_state, note or "", role or ""),
    )


def _tasks_triggered_by(conn, unit: str, hazard: str, states: tuple[str, ...]) -> list:
    """Tasks in ``states`` that the unit's hazard triggers (one of their ``triggers``)."""
    marks = ",".join("?" * len(states))
    return conn.execute(
        f"SELECT task_id, state, triggers FROM tasks WHERE state IN ({marks}) "
        "AND instr('; ' || triggers, ?) > 0",
        (*states, f"; {unit} {hazard} "),
    ).fetchall()


def _tasks_follow_signal(conn, row: dict) -> None:
    """Issuing activates the proposed tasks a signal's unit and hazard trigger (the clock starts
    at the issue time); a lift stands down the tasks nothing in force calls for any more."""
    unit, hazard, when = row["town_code"], row["hazard"], row["issued_utc"]
    actor = f"{row['issuer']} (signal {row['identifier']})"
    if row["action"] != "lift":
        for task in _tasks_triggered_by(conn, unit, hazard, ("proposed",)):
            conn.execute("UPDATE tasks SET state = 'issued', updated_utc = ? WHERE task_id = ?",
                         (when, task["task_id"]))  # fmt: skip
            _history(conn, task["task_id"], when, actor, "proposed", "issued",
                     f"signal issued: {unit} {hazard} level {row['level']}")  # fmt: skip
        return
    for task in _tasks_triggered_by(conn, unit, hazard, STANDABLE_STATES):
        pairs = {tuple(t.split(" ")[:2]) for t in task["triggers"].split("; ") if t}
        if any(live_signal(conn, u, h, status=row["status"]) for u, h in pairs):
            continue  # another unit or hazard of the task still has a signal in force
        conn.execute("UPDATE tasks SET state = 'stood_down', updated_utc = ? WHERE task_id = ?",
                     (when, task["task_id"]))  # fmt: skip
        _history(conn, task["task_id"], when, actor, task["state"], "stood_down",
                 f"signal lifted: {unit} {hazard}")  # fmt: skip


# --------------------------------------------------------------------------- merge


def merge_run(
    db,
    tasks: pd.DataFrame,
    *,
    run_time,
    actor: str = "cityops brief",
    gap: pd.Timedelta | str = DEFAULT_GAP,
    assessed: Iterable[tuple[str, str]] | None = None,
    live: Iterable[tuple[str, str]] | None = None,
) -> dict:
    """Merge one run's task table into the ledger, in one transaction.

    New identities are inserted ``proposed`` (an unattended run proposes; issuing a signal
    activates them, :func:`record_signals`), or ``issued`` when one of their triggers
    (unit, hazard) has a signal in force (``live``); existing ones get the new due time, level,
    text, units and period unless closed (a stood-down task that comes back is re-issued).
    Open tasks (``issued``/``dispatched``) of an episode this run covers but absent from it are
    ``stood_down`` (never deleted); tasks already on site, resolved or closed are untouched.
    ``assessed`` optionally lists (town_code, hazard) pairs the run evaluated: for a pair with
    no row at all (hazard gone), open tasks of episodes not yet ended at ``run_time`` are stood
    down too. Times of record (created/updated/history) are ``run_time``.

    Returns counts: inserted, updated, unchanged, reissued, stood_down, skipped_closed,
    episodes_opened, episodes_extended, and the run's ``task_ids``.
    """
    missing = [c for c in INPUT_COLUMNS if c not in tasks.columns]
    if missing:
        raise InputError(f"task table: missing column(s) {', '.join(missing)}")
    run_ts = parse_utc(run_time, what="run_time")
    now = iso_utc(run_ts)
    gap = pd.Timedelta(gap)
    stats = dict.fromkeys(
        (
            "inserted",
            "updated",
            "unchanged",
            "reissued",
            "stood_down",
            "skipped_closed",
            "episodes_opened",
            "episodes_extended",
        ),
        0,
    )
    seen: set[str] = set()
    covered: set[tuple[str, str, str]] = set()
    live = {(str(u), str(h)) for u, h in (live or ())}

    def start_state(town: str, hazard: str, triggers: str) -> str:
        pairs = {tuple(t.split(" ")[:2]) for t in triggers.split("; ") if t} | {(town, hazard)}
        return "issued" if pairs & live else "proposed"

    with _open(db) as conn, _transaction(conn):
        for i, row in enumerate(tasks.to_dict("records")):
            where = f"task table row {i + 1}"
            town, hazard, measure = (_text(row[c]) for c in ("town_code", "hazard", "measure"))
            if not (town and hazard and measure):
                raise InputError(f"{where}: town_code, hazard and measure must not be empty")
            loop = _text(row["loop"])
            if loop not in LOOPS:
                raise InputError(f"{where}: loop {loop!r} is not one of big, middle, small")
            onset = _time_or_none(row["onset_utc"], f"{where} onset_utc") or run_ts
            end = _time_or_none(row["end_utc"], f"{where} end_utc") or onset
            if end < onset:
                raise InputError(
                    f"{where}: end_utc {iso_utc(end)} is before onset {iso_utc(onset)}"
                )
            due = _time_or_none(row["due_utc"], f"{where} due_utc")
            episode = _find_or_open_episode(conn, town, hazard, onset, end, gap, stats)
            covered.add((town, hazard, episode))
            task_id = task_id_for(town, hazard, measure, episode)
            if task_id in seen:
                raise InputError(f"{where}: task {task_id} appears twice in one run")
            seen.add(task_id)
            values = {
                "loop": loop,
                "lead_unit": _text(row["lead_unit"]),
                "supporting_units": _text(row["supporting_units"]),
                "due_utc": iso_utc(due) if due is not None else None,
                "source": _text(row["source"]),
                "level": _level(row["level"], where),
                "onset_utc": iso_utc(onset),
                "end_utc": iso_utc(end),
                "text_zh": _text(row["text_zh"]),
                "triggers": _text(row.get("triggers", "")),
                "scope": _text(row.get("scope", "")),
                "loop_basis": _text(row.get("loop_basis", "")),
            }
            old = conn.execute("SELECT * FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
            if old is None:
                first = start_state(town, hazard, values["triggers"])
                conn.execute(
                    "INSERT INTO tasks (task_id, town_code, hazard, episode, measure, state, "
                    "created_utc, updated_utc, escalated, "
                    + ", ".join(values)
                    + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, "
                    + ", ".join("?" * len(values))
                    + ")",
                    (task_id, town, hazard, episode, measure, first, now, now, *values.values()),
                )
                why = "a signal is in force" if first == "issued" else "until a signal is issued"
                _history(conn, task_id, now, actor, None, first, f"{first} by run {now} ({why})")
                stats["inserted"] += 1
                continue
            if old["state"] == "closed":
                stats["skipped_closed"] += 1
                continue
            changed = [k for k, v in values.items() if old[k] != v]
            state = old["state"]
            if state == "stood_down":
                state = start_state(town, hazard, values["triggers"])
            if not changed and state == old["state"]:
                stats["unchanged"] += 1
                continue
            sets = ", ".join(f"{k} = ?" for k in values)
            conn.execute(
                f"UPDATE tasks SET {sets}, state = ?, updated_utc = ? WHERE task_id = ?",
                (*values.values(), state, now, task_id),
            )
            if state != old["state"]:
                note = f"hazard back in run {now}; {state} again"
                stats["reissued"] += 1
            else:
                note = f"updated by run {now}: " + ", ".join(changed)
                stats["updated"] += 1
            _history(conn, task_id, now, actor, old["state"], state, note)

        # Stand down what this run no longer asks for.
        marks = ",".join("?" * len(STANDABLE_STATES))
        candidates = []
        for town, hazard, episode in sorted(covered):
            candidates += conn.execute(
                f"SELECT task_id, state FROM tasks WHERE town_code = ? AND hazard = ? "
                f"AND episode = ? AND state IN ({marks})",
                (town, hazard, episode, *STANDABLE_STATES),
            ).fetchall()
        present = {(t, h) for t, h, _ in covered}
        for town, hazard in sorted(set(assessed or ()) - present):
            candidates += conn.execute(
                f"SELECT t.task_id, t.state FROM tasks t JOIN episodes e USING "
                f"(town_code, hazard, episode) WHERE t.town_code = ? AND t.hazard = ? "
                f"AND e.end_utc >= ? AND t.state IN ({marks})",
                (str(town), str(hazard), now, *STANDABLE_STATES),
            ).fetchall()
        for cand in candidates:
            if cand["task_id"] in seen:
                continue
            conn.execute(
                "UPDATE tasks SET state = 'stood_down', updated_utc = ? WHERE task_id = ?",
                (now, cand["task_id"]),
            )
            _history(
                conn,
                cand["task_id"],
                now,
                actor,
                cand["state"],
                "stood_down",
                f"absent from run {now}: hazard gone before action",
            )
            stats["stood_down"] += 1
    stats["task_ids"] = sorted(seen)
    return stats


# --------------------------------------------------------------------------- states


def get_task(db, task_id: str) -> dict:
    """One task as a dict; :class:`InputError` if there is none."""
    with _open(db) as conn:
        row = conn.execute("SELECT * FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
        if row is None:
            raise InputError(f"task {task_id}: no such task in the ledger")
        return checked_state(conn, dict(row))


def task_history(db, task_id: str) -> list[dict]:
    """The history of a task, oldest first."""
    with _open(db) as conn:
        rows = conn.execute(
            "SELECT * FROM task_history WHERE task_id = ? ORDER BY id", (task_id,)
        ).fetchall()
    return [dict(r) for r in rows]


def update_state(
    db, task_id: str, to_state: str, *, actor: str, note: str = "", at=None, role: str = ""
) -> dict:
    """Move a task to ``to_state`` (validated), recording time, actor, role and note; the new
    row. Approval (``approved``, before 销号) needs the approving department as ``role`` and
    another actor than the one who resolved the task (000:135-137)."""
    if to_state not in STATES:
        raise InputError(f"task {task_id}: unknown state {to_state!r} (one of {', '.join(STATES)})")
    if not actor or not str(actor).strip():
        raise InputError(f"task {task_id}: a change needs an actor (--by NAME)")
    check_name(str(actor), what=f"task {task_id}: actor")
    when = iso_utc(parse_utc(at if at is not None else "now", what="time"))
    with _open(db) as conn, _transaction(conn):
        row = conn.execute("SELECT state FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
        if row is None:
            raise InputError(f"task {task_id}: no such task in the ledger")
        current = checked_state(conn, {"task_id": task_id, "state": row["state"]})["state"]
        if to_state == current:
            raise InputError(f"task {task_id}: already {current}")
        if to_state == "approved":
            if not str(role).strip():
                raise InputError(
                    f"task {task_id}: approval needs the approving department (--role), the "
                    "lead department (中闭环) or the competent department (小闭环)"
                )
            resolver = conn.execute(
                "SELECT actor FROM task_history WHERE task_id = ? AND to_state = 'resolved' "
                "ORDER BY id DESC LIMIT 1",
                (task_id,),
            ).fetchone()
            if resolver is not None and resolver["actor"] == str(actor).strip():
                raise InputError(
                    f"task {task_id}: {actor} resolved it and cannot approve it too; the lead or "
                    "competent department approves"
                )
        if to_state not in ALLOWED[current]:
            if to_state == "closed":
                raise InputError(
                    f"task {task_id}: cannot go from {current} to closed; it must be resolved "
                    "and approved first"
                )
            allowed = ", ".join(ALLOWED[current]) or "nothing (it is closed)"
            raise InputError(
                f"task {task_id}: cannot go from {current} to {to_state} (allowed: {allowed})"
            )
        conn.execute(
            "UPDATE tasks SET state = ?, updated_utc = ? WHERE task_id = ?",
            (to_state, when, task_id),
        )
        _history(conn, task_id, when, str(actor).strip(), current, to_state, note,
                 role=str(role).strip())  # fmt: skip
        return dict(conn.execute("SELECT * FROM tasks WHERE task_id = ?", (task_id,)).fetchone())


def list_tasks(
    db,
    *,
    town: str | None = None,
    state: str | None = None,
    hazard: str | None = None,
    only_overdue: bool = False,
    now=None,
) -> list[dict]:
    """Tasks (dicts with an ``overdue`` key), filtered, ordered by due time then id."""
    if state is not None and state not in STATES:
        raise InputError(f"--state {state!r}: expected one of {', '.join(STATES)}")
    now_ts = parse_utc(now if now is not None else "now", what="now")
    clauses, params = [], []
    # A unit's list holds its own tasks and the banner-level tasks it triggers; a hazard's,
    # the tasks it triggers anywhere.
    if town:
        clauses.append("(town_code = ? OR instr('; ' || triggers, ?) > 0)")
        params += [town, f"; {town} "]
    if state:
        clauses.append("state = ?")
        params.append(state)
    if hazard:
        clauses.append("(hazard = ? OR instr(triggers, ?) > 0)")
        params += [hazard, f" {hazard} "]
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    with _open(db) as conn:
        rows = conn.execute(
            f"SELECT * FROM tasks{where} ORDER BY due_utc IS NULL, due_utc, task_id", params
        ).fetchall()
        tasks = [checked_state(conn, dict(row)) for row in rows]
    out = []
    for task in tasks:
        task["overdue"] = overdue(task, now_ts)
        if only_overdue and not task["overdue"]:
            continue
        out.append(task)
    return out


def overdue(task, now) -> bool:
    """Due time passed and the task not resolved, closed or stood down."""
    if task["state"] in DONE_STATES or not task["due_utc"]:
        return False
    return parse_utc(task["due_utc"]) < parse_utc(now, what="now")


# --------------------------------------------------------------------------- escalation


_ESCALATION_NOTE = "escalated (x{level}): {rules}"


def escalations(history: Iterable[dict]) -> list[dict]:
    """The escalations recorded in a task's history (:func:`task_history`), oldest first:
    ``{"time_utc", "escalated", "rules"}`` (the rule ids of ``plan/timing.yaml``)."""
    out = []
    for h in history:
        note = h.get("note") or ""
        if h["to_state"] != h["from_state"] or not note.startswith("escalated (x"):
            continue
        head, _, rules = note.partition("): ")
        out.append({"time_utc": h["time_utc"], "escalated": int(head.removeprefix("escalated (x")),
                    "rules": [r for r in rules.split(", ") if r]})  # fmt: skip
    return out


def _clocks(conn, task: dict) -> dict:
    """Start times of the follow-up clocks of a task (:mod:`cityops.deadlines`)."""
    issued = conn.execute(
        "SELECT MIN(time_utc) FROM task_history WHERE task_id = ? AND to_state = 'issued'",
        (task["task_id"],),
    ).fetchone()[0]
    if issued is None and task["state"] != "proposed":
        issued = task["created_utc"]  # a ledger from before the history kept the issue
    return {
        "issued": issued,
        "due": task["due_utc"] or None,
        "last_change": task["updated_utc"],
        "last_escalation": task["escalated_utc"] if task["escalated"] else None,
    }


def escalation_reasons(db, task: dict, now, *, rules) -> list[dict]:
    """The follow-up rules (``plan/timing.yaml``) a task breaks at ``now``, empty when none.

    A task not yet escalated answers to every rule but ``last_escalation`` ones; an escalated
    one only to those (escalating again after the period). Tasks not open break nothing.
    """
    if task["state"] not in OPEN_STATES:
        return []
    with _open(db) as conn:
        clocks = _clocks(conn, task)
    wanted = [r for r in rules if (r["clock"] == "last_escalation") == bool(task["escalated"])]
    return breaches(task, clocks, now, rules=wanted)


def check_escalation(
    db,
    now,
    *,
    rules,
    actor: str = ESCALATION_ACTOR,
    four_ones: tuple | None = None,
    dry_run: bool = False,
) -> list[dict]:
    """Escalate the open tasks that break a follow-up rule at ``now``; one transaction.

    Idempotent: a task escalates once per broken clock; an escalated task escalates again
    only by the rules on its last escalation (two weeks later). Escalating does not change
    the state nor ``updated_utc`` (so it does not hide a stall); it is recorded in the history
    with the rules broken.

    Parameters
    ----------
    db : path or connection
    now : time-like
    rules : sequence of mappings
        The plan's ``followup`` rules (:func:`cityops.response.load_plan` ``timing``).
    actor : str, optional
    four_ones : (measures, rules), optional
        Also escalate heating tasks breaking the "four ones" clocks (:func:`four_ones_breaches`).
    dry_run : bool, optional
        Say what would escalate, write nothing.

    Returns
    -------
    list of dict
        ``{"task_id", "escalated", "rules", "reasons"}`` for the tasks escalated now.
    """
    now_ts = parse_utc(now, what="now")
    heating = {}
    if four_ones is not None:
        measures, limits = four_ones
        heating = {b["task_id"]: b["reasons"] for b in four_ones_breaches(db, now_ts,
                   measures=measures, rules=limits)}  # fmt: skip
    when = iso_utc(now_ts)
    marks = ",".join("?" * len(OPEN_STATES))
    done = []
    with _open(db) as conn, _transaction(conn):
        rows = conn.execute(
            f"SELECT * FROM tasks WHERE state IN ({marks}) ORDER BY task_id", OPEN_STATES
        ).fetchall()
        for row in rows:
            task = dict(row)
            broken = escalation_reasons(conn, task, now_ts, rules=rules)
            reasons = [f"{b['rule']}: {b['text_en']}" for b in broken]
            if not task["escalated"]:
                reasons += heating.get(task["task_id"], [])
            if not reasons:
                continue
            level = int(task["escalated"]) + 1
            if not dry_run:
                conn.execute(
                    "UPDATE tasks SET escalated = ?, escalated_utc = ? WHERE task_id = ?",
                    (level, when, task["task_id"]),
                )
                # the note names the rules (their texts are in plan/timing.yaml)
                named = [b["rule"] for b in broken] + (
                    heating.get(task["task_id"], []) if not task["escalated"] else []
                )
                _history(conn, task["task_id"], when, actor, task["state"], task["state"],
                         _ESCALATION_NOTE.format(level=level, rules=", ".join(named)))  # fmt: skip
            done.append(
                {
                    "task_id": task["task_id"],
                    "escalated": level,
                    "rules": [b["rule"] for b in broken],
                    "reasons": reasons,
                }
            )
    return done


def four_ones_breaches(db, now, *, measures, rules: dict) -> list[dict]:
    """Heating "four ones" (四个一, 002:1030) on the tasks of the given measures.

    Answer and dispatch within ``answer_minutes + dispatch_minutes`` of the task's creation,
    on site within ``on_site_hours`` of dispatch, solved in ``solved_in_visits`` visit(s) (a
    resolved task sent back on site is a second visit). Returns ``[{"task_id", "reasons"}]``
    for the tasks that broke a clock by ``now``; :func:`escalate_four_ones` flags them.
    """
    now_ts = parse_utc(now, what="now")
    dispatch_limit = pd.Timedelta(minutes=rules["answer_minutes"] + rules["dispatch_minutes"])
    on_site_limit = pd.Timedelta(hours=rules["on_site_hours"])
    out = []
    measures = set(measures)
    with _open(db) as conn:
        tasks = [dict(r) for r in conn.execute("SELECT * FROM tasks ORDER BY task_id")]
        for task in tasks:
            if task["measure"] not in measures or task["state"] == "stood_down":
                continue
            hist = [dict(r) for r in conn.execute(
                "SELECT * FROM task_history WHERE task_id = ? ORDER BY id", (task["task_id"],))]  # fmt: skip
            created = parse_utc(task["created_utc"])
            first = {}
            visits = 0
            for h in hist:
                first.setdefault(h["to_state"], parse_utc(h["time_utc"]))
                if h["to_state"] == "on_site":
                    visits += 1
            reasons = []
            dispatched = first.get("dispatched", first.get("on_site"))
            if (dispatched or now_ts) - created > dispatch_limit:
                reasons.append(f"not dispatched within {dispatch_limit.seconds // 60} min")
            if (
                dispatched is not None
                and (first.get("on_site") or now_ts) - dispatched > on_site_limit
            ):
                reasons.append(f"not on site within {rules['on_site_hours']} h of dispatch")
            if visits > int(rules["solved_in_visits"]):
                reasons.append(f"{visits} visits (solve in {rules['solved_in_visits']})")
            if reasons:
                out.append({"task_id": task["task_id"], "reasons": reasons})
    return out


# --------------------------------------------------------------------------- CAP


def record_cap(
    db,
    identifier: str,
    hazard: str,
    msg_type: str,
    references,
    run_issued_utc,
    sent_utc,
    status: str,
) -> None:
    """Record (or update, e.g. its status after signing) one CAP message sent for a hazard.

    ``references`` is a CAP references string or a list of them (stored space-separated).
    """
    with _open(db) as conn, _transaction(conn):
        _insert_cap(conn, identifier, hazard, msg_type, references, run_issued_utc, sent_utc,
                    status)  # fmt: skip


def _insert_cap(conn, identifier, hazard, msg_type, references, run_issued_utc, sent_utc,
                status) -> None:  # fmt: skip
    if msg_type not in ("Alert", "Update", "Cancel"):
        raise InputError(f"CAP {identifier}: msgType {msg_type!r} is not Alert, Update or Cancel")
    if isinstance(references, (list, tuple)):
        references = " ".join(str(r) for r in references if r)
    run_iso = iso_utc(run_issued_utc) if run_issued_utc is not None else None
    conn.execute(
        "INSERT INTO cap_alerts (identifier, run_issued_utc, hazard, msg_type, "
        "references_ids, sent_utc, status) VALUES (?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (identifier) DO UPDATE SET run_issued_utc = excluded.run_issued_utc, "
        "hazard = excluded.hazard, msg_type = excluded.msg_type, "
        "references_ids = excluded.references_ids, sent_utc = excluded.sent_utc, "
        "status = excluded.status",
        (identifier, run_iso, hazard, msg_type, references or "", iso_utc(sent_utc), status),
    )


def latest_cap(db, hazard: str) -> dict | None:
    """The most recently sent CAP message for a hazard (any msgType), or ``None``."""
    with _open(db) as conn:
        row = conn.execute(
            "SELECT * FROM cap_alerts WHERE hazard = ? "
            "ORDER BY sent_utc DESC, run_issued_utc DESC, rowid DESC LIMIT 1",
            (hazard,),
        ).fetchone()
    return dict(row) if row is not None else None


# --------------------------------------------------------------------------- export


def export_tasks(db, path, *, now=None) -> Path:
    """Write the tasks as CSV with exactly :data:`EXPORT_COLUMNS` (atomically); the path."""
    rows = list_tasks(db, now=now)
    target = Path(path)
    with atomic_open(target, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(EXPORT_COLUMNS)
        for task in rows:
            record = dict(task, overdue="true" if task["overdue"] else "false")
            cells = ["" if record[c] is None else record[c] for c in EXPORT_COLUMNS]
            writer.writerow([neutralise_cell(c) for c in cells])
    return target


# --------------------------------------------------------------------------- incidents
#: Columns of :func:`list_report_clocks`.
CLOCK_COLUMNS = (
    "incident_id", "kind", "scale", "town_code", "occurred_utc", "status", "clock_id",
    "channel", "report_to", "due_utc", "reported_utc", "reported_by", "overdue", "late",
    "source",
)  # fmt: skip


def open_incident(
    db,
    *,
    kind: str,
    scale: str,
    occurred,
    by: str,
    clocks: list[dict],
    town_code: str = "",
    status: str = "Actual",
    note: str = "",
    incident_id: str | None = None,
) -> str:
    """Record an incident and the report clocks it starts (:func:`cityops.deadlines.report_clocks`)
    in one transaction; its id (``INC-YYYYMMDDhhmm-N`` from the Beijing time it happened)."""
    check_name(str(by), what="--by")
    occurred_ts = parse_utc(occurred, what="occurred")
    if occurred_ts > parse_utc("now"):
        raise InputError(f"incident: it happened at {iso_utc(occurred_ts)}, in the future")
    if status not in ("Actual", "Exercise"):
        raise InputError(f"incident: status {status!r} (Actual or Exercise)")
    stamp = occurred_ts.tz_localize("UTC").tz_convert(REPORT_TZ).strftime("%Y%m%d%H%M")
    with _open(db) as conn, _transaction(conn):
        if incident_id is None:
            n = conn.execute(
                "SELECT COUNT(*) FROM incidents WHERE incident_id LIKE ?", (f"INC-{stamp}-%",)
            ).fetchone()[0]
            incident_id = f"INC-{stamp}-{n + 1}"
        elif conn.execute("SELECT 1 FROM incidents WHERE incident_id = ?",
                          (incident_id,)).fetchone():  # fmt: skip
            raise InputError(f"incident {incident_id}: already recorded")
        conn.execute(
            "INSERT INTO incidents (incident_id, kind, scale, town_code, occurred_utc, "
            "recorded_utc, recorded_by, status, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (incident_id, kind, scale, town_code, iso_utc(occurred_ts),
             iso_utc(parse_utc("now")), str(by).strip(), status, note),
        )  # fmt: skip
        for c in clocks:
            conn.execute(
                "INSERT INTO report_clocks (incident_id, clock_id, channel, report_to, due_utc, "
                "source) VALUES (?, ?, ?, ?, ?, ?)",
                (incident_id, c["clock_id"], c.get("channel", ""), c.get("report_to", ""),
                 iso_utc(c["due_utc"]), c.get("source", "")),
            )  # fmt: skip
    return incident_id


def report_clock(db, incident_id: str, clock_id: str, *, by: str, at=None) -> dict:
    """Record that a report clock was met (the report made at ``at``); the clock row."""
    check_name(str(by), what="--by")
    when = parse_utc(at if at is not None else "now", what="--at")
    with _open(db) as conn, _transaction(conn):
        row = conn.execute(
            "SELECT c.*, i.occurred_utc FROM report_clocks c JOIN incidents i USING "
            "(incident_id) WHERE incident_id = ? AND clock_id = ?",
            (incident_id, clock_id),
        ).fetchone()
        if row is None:
            known = [r[0] for r in conn.execute(
                "SELECT clock_id FROM report_clocks WHERE incident_id = ?", (incident_id,))]  # fmt: skip
            raise InputError(
                f"incident {incident_id}: no report clock {clock_id!r}"
                + (f" (its clocks: {', '.join(known)})" if known else " (no such incident)")
            )
        if row["reported_utc"]:
            raise InputError(f"incident {incident_id}: {clock_id} already reported at "
                             f"{row['reported_utc']}")  # fmt: skip
        if when < parse_utc(row["occurred_utc"]) or when > parse_utc("now"):
            raise InputError(f"incident {incident_id}: report time {iso_utc(when)} must fall "
                             f"between the incident ({row['occurred_utc']}) and now")  # fmt: skip
        conn.execute(
            "UPDATE report_clocks SET reported_utc = ?, reported_by = ? "
            "WHERE incident_id = ? AND clock_id = ?",
            (iso_utc(when), str(by).strip(), incident_id, clock_id),
        )
        return dict(conn.execute(
            "SELECT * FROM report_clocks WHERE incident_id = ? AND clock_id = ?",
            (incident_id, clock_id)).fetchone())  # fmt: skip


def list_report_clocks(db, *, now=None) -> pd.DataFrame:
    """Every incident's report clocks (:data:`CLOCK_COLUMNS`): ``overdue`` = not reported and
    past due at ``now``; ``late`` = reported after the due time."""
    now_ts = parse_utc(now if now is not None else "now", what="now")
    with _open(db) as conn:
        rows = [dict(r) for r in conn.execute(
            "SELECT i.incident_id, i.kind, i.scale, i.town_code, i.occurred_utc, i.status, "
            "c.clock_id, c.channel, c.report_to, c.due_utc, c.reported_utc, c.reported_by, "
            "c.source FROM incidents i JOIN report_clocks c USING (incident_id) "
            "ORDER BY i.occurred_utc, i.incident_id, c.due_utc")]  # fmt: skip
    for r in rows:
        due = parse_utc(r["due_utc"])
        done = parse_utc(r["reported_utc"]) if r["reported_utc"] else None
        r["overdue"] = done is None and now_ts > due
        r["late"] = done is not None and done > due
    return pd.DataFrame(rows, columns=list(CLOCK_COLUMNS))


# --------------------------------------------------------------------------- issued signals
#: Columns of :func:`list_signals`.
SIGNAL_COLUMNS = (
    "identifier", "town_code", "hazard", "level", "action", "valid_from_utc", "valid_to_utc",
    "issuer", "issued_utc", "recorded_utc", "run", "run_issued_utc", "status", "supersedes",
    "superseded_by", "note", "cap_identifier",
)  # fmt: skip


_SIGNAL_INSERT = (
    "identifier", "town_code", "hazard", "level", "action", "valid_from_utc", "valid_to_utc",
    "issuer", "issued_utc", "run", "run_issued_utc", "status", "supersedes", "note",
    "recorded_utc", "cap_identifier",
)  # fmt: skip


def live_signal(db, town_code: str, hazard: str, *, status: str | None = None) -> dict | None:
    """The signal in force for a unit and hazard (the latest issue or update not lifted or
    superseded), or ``None``. ``status`` ("Actual" or "Exercise") keeps drills and real
    warnings apart: a drill never updates, lifts or hides a real signal, nor the reverse."""
    with _open(db) as conn:
        row = conn.execute(
            "SELECT * FROM signals WHERE town_code = ? AND hazard = ? "
            "AND (? IS NULL OR status = ?) "
            "ORDER BY issued_utc DESC, recorded_utc DESC LIMIT 1",
            (town_code, hazard, status, status),
        ).fetchone()
    if row is None or row["action"] == "lift":
        return None
    return dict(row)


def live_signals(db, hazard: str, *, status: str | None = None) -> list[dict]:
    """Every signal in force for a hazard (one per unit), by unit code (see
    :func:`live_signal` for ``status``)."""
    with _open(db) as conn:
        codes = [r[0] for r in conn.execute(
            "SELECT DISTINCT town_code FROM signals WHERE hazard = ? ORDER BY town_code",
            (hazard,))]  # fmt: skip
        return [s for s in (live_signal(conn, c, hazard, status=status) for c in codes) if s]


def message_sequence(db, sender_prefix: str) -> int:
    """The next GB/T 35965.1 sequence number for identifiers starting with ``sender_prefix``
    (sender code and entry second): 0 for the first message of that second."""
    with _open(db) as conn:
        n = conn.execute(
            "SELECT COUNT(*) FROM cap_alerts WHERE identifier LIKE ? ESCAPE '\\'",
            (sender_prefix.replace("_", "\\_") + "\\_%",),
        ).fetchone()[0]
    return int(n)


def record_signals(db, signals: list[dict], message: dict | None = None) -> list[dict]:
    """Record issued, updated or lifted signals in one transaction: all of them or none.

    Each of ``signals`` holds the table's columns but ``recorded_utc``. ``message`` (the
    arguments of :func:`record_cap` as a dict) is the CAP message the act sent, recorded in
    the same transaction. Refused (nothing written): an identifier already recorded, an issue
    time before the signal it replaces.
    """
    now = iso_utc(parse_utc("now"))
    rows = [
        {**{k: s.get(k) for k in _SIGNAL_INSERT}, "recorded_utc": now,
         "cap_identifier": s.get("cap_identifier") or ""}
        for s in signals
    ]  # fmt: skip
    with _open(db) as conn, _transaction(conn):
        if message is not None:
            taken = conn.execute(
                "SELECT 1 FROM cap_alerts WHERE identifier = ?", (message["identifier"],)
            ).fetchone()
            if taken:
                raise InputError(
                    f"message {message['identifier']}: already recorded (another act in the "
                    "same second?); issue again"
                )
            _insert_cap(conn, **message)
        for row in rows:
            ident = row["identifier"]
            if conn.execute("SELECT 1 FROM signals WHERE identifier = ?", (ident,)).fetchone():
                raise InputError(f"signal {ident}: already recorded in the ledger")
            if row.get("supersedes"):
                prev = conn.execute(
                    "SELECT issued_utc FROM signals WHERE identifier = ?", (row["supersedes"],)
                ).fetchone()
                if prev is not None and parse_utc(prev["issued_utc"]) > parse_utc(
                    row["issued_utc"]
                ):
                    raise InputError(
                        f"signal {ident}: issued {row['issued_utc']}, before the signal it "
                        f"replaces ({row['supersedes']}, issued {prev['issued_utc']})"
                    )
            conn.execute(
                "INSERT INTO signals (identifier, town_code, hazard, level, action, "
                "valid_from_utc, valid_to_utc, issuer, issued_utc, run, run_issued_utc, status, "
                "supersedes, note, recorded_utc, cap_identifier) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                tuple(row[k] for k in _SIGNAL_INSERT),
            )
        for row in rows:
            _tasks_follow_signal(conn, row)
    return rows


def record_ack(db, cap_identifier: str, recipient: str, *, by: str, at, note: str = "") -> dict:
    """Record that ``recipient`` (a role or named recipient of the dissemination list)
    acknowledged the message ``cap_identifier``; refused when no issued message has it."""
    now = parse_utc("now")
    when = parse_utc(at, what="--at")
    if when > now + pd.Timedelta("5min"):
        raise InputError(f"--at {iso_utc(when)}: in the future (now {iso_utc(now)})")
    row = {
        "cap_identifier": cap_identifier,
        "recipient": recipient,
        "acknowledged_by": by,
        "acknowledged_utc": iso_utc(when),
        "recorded_utc": iso_utc(now),
        "note": note,
    }
    with _open(db) as conn, _transaction(conn):
        known = conn.execute(
            "SELECT MIN(issued_utc) FROM signals WHERE cap_identifier = ?", (cap_identifier,)
        ).fetchone()[0]
        if known is None:
            raise InputError(f"message {cap_identifier}: no issued signal has this identifier")
        if when < parse_utc(known):
            raise InputError(f"--at {iso_utc(when)}: before the message was issued ({known})")
        conn.execute(
            "INSERT INTO signal_acks (cap_identifier, recipient, acknowledged_by, "
            "acknowledged_utc, recorded_utc, note) VALUES (?, ?, ?, ?, ?, ?)",
            tuple(row.values()),
        )
    return row


def list_acks(db, cap_identifier: str | None = None) -> pd.DataFrame:
    """Acknowledgements recorded (of one message, or all), in time order."""
    cols = ["cap_identifier", "recipient", "acknowledged_by", "acknowledged_utc", "recorded_utc",
            "note"]  # fmt: skip
    with _open(db) as conn:
        rows = [dict(r) for r in conn.execute(
            "SELECT cap_identifier, recipient, acknowledged_by, acknowledged_utc, recorded_utc, "
            "note FROM signal_acks WHERE (? IS NULL OR cap_identifier = ?) "
            "ORDER BY acknowledged_utc, id", (cap_identifier or None, cap_identifier or None))]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def list_signals(db) -> pd.DataFrame:
    """Every recorded signal, in issue order, with ``superseded_by`` filled in."""
    with _open(db) as conn:
        rows = [dict(r) for r in conn.execute(
            "SELECT * FROM signals ORDER BY issued_utc, recorded_utc")]  # fmt: skip
    frame = pd.DataFrame(rows, columns=[c for c in SIGNAL_COLUMNS if c != "superseded_by"])
    later = {r["supersedes"]: r["identifier"] for r in rows if r.get("supersedes")}
    frame["superseded_by"] = [later.get(i, "") for i in frame["identifier"]]
    return frame[list(SIGNAL_COLUMNS)]
