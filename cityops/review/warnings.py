"""The warnings issued over an event, from whatever record of them there is (interfaces.md §6).

One row per issued warning per unit, with columns :data:`WARNING_COLUMNS`:

- ``town_code``: unit code; ``hazard``: hazard id (interfaces.md §2); ``level``: int 1–4;
- ``issued_utc``: when the warning was issued (naive UTC Timestamp, as everywhere in data);
- ``onset_utc``, ``expires_utc``: its valid period; ``expires_utc`` NaT when unknown (the
  period is then the onset alone);
- ``area_fraction``: share of the unit warned (NaN when the source does not say);
- ``source``: ``forecast`` | ``run`` | ``cap`` | ``log``; ``reference``: the file, folder or
  CAP identifier the row comes from.

Sources: forecast files (:func:`warnings_from_forecasts`, each assessed at its own issue time),
``cityops brief`` run folders or an archive of them (:func:`warnings_from_runs`), CAP 1.2 files
(:func:`warnings_from_cap`) and a CSV log of the signals actually issued
(:func:`warnings_from_log`); :func:`load_warnings` tells them apart.

Later messages end earlier ones. Within one source, a message that speaks again for a unit ×
hazard (the next run, a CAP ``Update`` referencing the earlier alert, a later log row for the
same unit and hazard) *continues* an earlier warning when it keeps the unit at the same or a
higher level — the earlier row keeps its own issue time and valid period, so the lead time
counts from the first warning — and *ends* it otherwise (lower level, or level 0): the earlier
row's ``expires_utc`` becomes the later message's issue time. A CAP ``Cancel`` ends every
warning of the alerts it references (and of the earlier ones they continued). A warning ended
before its onset keeps its row (it was issued) with ``expires_utc < onset_utc``: its valid
period is empty and it warns no case.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from cityops.errors import InputError
from cityops.resources import load_yaml, package_data
from cityops.rules.table import level_names
from cityops.rules.table import level_words as _level_words
from cityops.rules.table import parse_level as _parse_level
from cityops.timeutil import parse_utc

__all__ = [
    "SOURCE_KINDS",
    "WARNING_COLUMNS",
    "empty_warnings",
    "known_hazards",
    "load_warnings",
    "source_kind",
    "warnings_from_cap",
    "warnings_from_forecasts",
    "warnings_from_log",
    "warnings_from_runs",
]

log = logging.getLogger("cityops")

#: Columns of a warnings table, in order.
WARNING_COLUMNS = [
    "town_code",
    "hazard",
    "level",
    "issued_utc",
    "onset_utc",
    "expires_utc",
    "area_fraction",
    "source",
    "reference",
]
#: Kinds of source a warning row can come from.
SOURCE_KINDS = ("forecast", "run", "cap", "log", "ledger")

#: Columns a CSV log must have, and those it may have.
LOG_REQUIRED = ("town_code", "hazard", "level", "issued_utc")
LOG_OPTIONAL = ("onset_utc", "expires_utc", "area_fraction")

RUN_TABLE = "town_hazards.csv"
RUN_JSON = "run.json"
LATEST = "latest"
#: Archive subfolders are named after the forecast's issue time (cityops brief --archive).
RUN_FOLDER_FORMAT = "%Y%m%dT%H%MZ"
_RUN_FOLDER = re.compile(r"^\d{8}T\d{4}Z$")

#: Parts of a cityops CAP identifier: <code>-<issued YYYYMMDDTHHMMZ>-<hazard>[-cancel]
#: (cityops.cap.make_identifier, cancel_alert).
_CAP_IDENT = re.compile(
    r"^(?P<code>[^-]+)-(?P<issued>\d{8}T\d{4}Z)-(?P<hazard>[a-z][a-z0-9_]*?)(?P<cancel>-cancel)?$"
)
_CAP_FILE = re.compile(r"^cap_(?P<hazard>[a-z][a-z0-9_]*)$")
#: The per-unit level parameter cityops writes: valueName "level:<town_code>".
_LEVEL_PARAM = "level:"
#: Geocode labels of unit codes (GB/T 2260 county codes, GB/T 10114 township codes).
_GEOCODES = ("GB/T 2260", "GB/T 10114")
#: CAP statuses read by default: Test and System messages are not warnings to the public, and
#: a Draft was never sent (a run's proposal: ``cityops issue`` sends the message).
DEFAULT_CAP_STATUSES = ("Actual", "Exercise")


# --------------------------------------------------------------------------- helpers
def empty_warnings() -> pd.DataFrame:
    """A warnings table without rows, with the columns and dtypes of :data:`WARNING_COLUMNS`."""
    return _finish(pd.DataFrame(columns=WARNING_COLUMNS))


def _finish(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.reindex(columns=WARNING_COLUMNS).copy()
    out["town_code"] = out["town_code"].astype(str)
    out["hazard"] = out["hazard"].astype(str)
    out["level"] = pd.to_numeric(out["level"]).astype("int64")
    for col in ("issued_utc", "onset_utc", "expires_utc"):
        out[col] = pd.to_datetime(out[col]).astype("datetime64[ns]")
    out["area_fraction"] = pd.to_numeric(out["area_fraction"], errors="coerce").astype("float64")
    out["source"] = out["source"].astype(str)
    out["reference"] = out["reference"].astype(str)
    out = out.sort_values(
        ["issued_utc", "hazard", "town_code", "source", "reference"], kind="stable"
    )
    return out.reset_index(drop=True)


@cache
def known_hazards() -> frozenset[str]:
    """Hazard ids of the shipped rule tables (national and Ejin Horo Annex 3)."""
    out: set[str] = set()
    for name in ("national", "ejin-horo-annex3"):
        data = load_yaml(package_data("rules", "tables", f"{name}.yaml"))
        out.update(data.get("hazards", {}))
    return frozenset(out)


def _time_or_nat(value, *, what: str) -> pd.Timestamp:
    if value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() == "":
        return pd.NaT
    return parse_utc(str(value).strip() if isinstance(value, str) else value, what=what)


def _expand(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Paths and glob patterns → existing paths, in order (folders allowed: run and CAP folders)."""
    from cityops.ingest import expand_paths

    return expand_paths(paths if isinstance(paths, str | Path) else list(paths), allow_dirs=True)


# --------------------------------------------------------------------------- supersession
@dataclass
class _Message:
    """One issuing act: a run, a CAP alert, a log row."""

    ident: str
    sent: pd.Timestamp
    #: Hazards the message speaks for (None: any, for a Cancel restricted by ``supersedes``).
    hazards: frozenset[str] | None
    #: (hazard, town_code) → level stated (0: stood down for that unit).
    levels: dict[tuple[str, str], int] = field(default_factory=dict)
    #: Whether a unit of ``hazards`` not in ``levels`` is stood down (CAP) or unknown (runs).
    complete: bool = False
    #: Identifiers of the messages it replaces; None: every earlier one of its hazards.
    supersedes: frozenset[str] | None = None
    cancel: bool = False
    #: Warning rows it issues (level ≥ 1).
    rows: list[dict] = field(default_factory=list)


def _resolve(messages: list[_Message]) -> pd.DataFrame:
    """Apply continuation and ending (module docstring) and return the warning rows."""
    rows: list[dict] = []
    open_: list[list] = []  # [row index, chain identifier, hazard, town_code, level]
    # Stable: messages issued at the same time keep their order (a Cancel comes last).
    for msg in sorted(messages, key=lambda m: (m.sent, m.cancel)):
        still_open = []
        for entry in open_:
            idx, chain, hazard, unit, level = entry
            applies = (msg.hazards is None or hazard in msg.hazards) and (
                msg.supersedes is None or chain in msg.supersedes
            )
            if not applies:
                still_open.append(entry)
                continue
            new = None if msg.cancel else msg.levels.get((hazard, unit))
            if new is None and (msg.cancel or msg.complete):
                new = 0
            if new is None or new >= level:
                entry[1] = msg.ident  # continued (or not stated): the chain moves on
                still_open.append(entry)
            else:
                row = rows[idx]
                end = row["expires_utc"]
                row["expires_utc"] = msg.sent if pd.isna(end) else min(end, msg.sent)
        open_ = still_open
        for row in msg.rows:
            rows.append(dict(row))
            open_.append([len(rows) - 1, msg.ident, row["hazard"], row["town_code"], row["level"]])
    return _finish(pd.DataFrame(rows, columns=WARNING_COLUMNS)) if rows else empty_warnings()


# --------------------------------------------------------------------------- run tables
def _table_message(
    table: pd.DataFrame, *, sent: pd.Timestamp, reference: str, source: str, where: str
) -> _Message:
    """A town_hazards table (CSV strings or the assessment's frame) as one message."""
    missing = [c for c in ("town_code", "hazard", "level", "onset_utc") if c not in table.columns]
    if missing:
        raise InputError(
            f"{where}: column {missing[0]!r} is missing (expected a town_hazards table, "
            "interfaces.md §4)"
        )
    levels: dict[tuple[str, str], int] = {}
    rows: list[dict] = []
    evaluated = (
        table["evaluated"].map(_as_bool)
        if "evaluated" in table.columns
        else pd.Series(True, index=table.index)
    )
    for i, rec in enumerate(table.to_dict("records")):
        if not evaluated.iloc[i]:
            continue
        level = _parse_level(rec["level"]) if str(rec["level"]).strip() != "" else 0
        if level is None:
            raise InputError(
                f"{where}: column 'level', row {i + 2}: {rec['level']!r} is not a level "
                "(expected an integer 0-4)"
            )
        key = (str(rec["hazard"]), str(rec["town_code"]))
        levels[key] = level
        if level < 1:
            continue
        onset = _time_or_nat(rec.get("onset_utc"), what=f"{where}: onset_utc")
        rows.append(
            {
                "town_code": key[1],
                "hazard": key[0],
                "level": level,
                "issued_utc": sent,
                "onset_utc": sent if pd.isna(onset) else onset,
                "expires_utc": _time_or_nat(rec.get("end_utc"), what=f"{where}: end_utc"),
                "area_fraction": _float(rec.get("area_fraction")),
                "source": source,
                "reference": reference,
            }
        )
    hazards = frozenset(table["hazard"].astype(str))
    return _Message(reference, sent, hazards, levels, complete=False, rows=rows)


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


def _as_bool(value) -> bool:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return False
    return str(value).strip().lower() in ("true", "1", "yes", "t")


def _reference_from_rows(table: pd.DataFrame) -> pd.Timestamp | None:
    """The run's reference time as onset − lead_hours (rounded to the minute: the table keeps
    lead_hours to 0.01 h)."""
    if "lead_hours" not in table.columns:
        return None
    onset = pd.to_datetime(table["onset_utc"], utc=True, errors="coerce")
    lead = pd.to_numeric(table["lead_hours"], errors="coerce")
    ref = (onset - pd.to_timedelta(lead, unit="h")).dropna()
    if ref.empty:
        return None
    return ref.dt.tz_localize(None).dt.round("min").median().round("min")


def _run_folders(path: Path) -> list[Path]:
    """A run folder, or the run folders of an archive root (``latest`` and hidden skipped)."""
    if path.is_file():
        if path.name == RUN_TABLE:
            return [path.parent]
        raise InputError(f"{path}: expected a brief run folder (with {RUN_TABLE}) or an archive")
    if (path / RUN_TABLE).exists():
        return [path]
    runs = [
        sub
        for sub in sorted(path.iterdir())
        if sub.is_dir()
        and not sub.is_symlink()
        and sub.name != LATEST
        and not sub.name.startswith(".")
        and (sub / RUN_TABLE).exists()
    ]
    if not runs:
        raise InputError(
            f"{path}: neither a brief run folder ({RUN_TABLE}) nor an archive of run folders"
        )
    return runs


def _read_run(folder: Path) -> _Message:
    table_path = folder / RUN_TABLE
    try:
        table = pd.read_csv(table_path, dtype=str, keep_default_na=False, encoding="utf-8")
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as err:
        raise InputError(f"{table_path}: cannot read the table ({err})") from None
    sent = None
    run_json = folder / RUN_JSON
    if run_json.exists():
        try:
            meta = json.loads(run_json.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise InputError(f"{run_json}: not valid JSON ({err})") from None
        value = meta.get("reference_time") or meta.get("issued")
        if value:
            sent = parse_utc(value, what=f"{run_json}: reference_time")
    from_rows = _reference_from_rows(table)
    if sent is None:
        sent = from_rows
    elif from_rows is not None and abs(from_rows - sent) > pd.Timedelta(minutes=1):
        log.warning(
            "%s: reference_time %s differs from onset - lead_hours (%s); using run.json",
            folder,
            sent,
            from_rows,
        )
    if sent is None and _RUN_FOLDER.match(folder.name):
        sent = pd.Timestamp(pd.to_datetime(folder.name, format=RUN_FOLDER_FORMAT))
    if sent is None:
        raise InputError(
            f"{folder}: cannot tell when the run was issued (expected {RUN_JSON} with "
            "reference_time, lead_hours in the table, or a folder named YYYYMMDDTHHMMZ)"
        )
    return _table_message(table, sent=sent, reference=str(folder), source="run", where=table_path)


def warnings_from_runs(paths: str | Path | Sequence[str | Path]) -> pd.DataFrame:
    """Warnings of ``cityops brief`` (or ``cityops assess``) output folders.

    Parameters
    ----------
    paths : path, glob or list of paths
        Run folders (with ``town_hazards.csv``, and ``run.json`` for a brief), archive roots
        (``ROOT/<YYYYMMDDTHHMMZ>/`` run folders; ``ROOT/latest`` is skipped, as is any folder
        already read through another path), or ``town_hazards.csv`` files.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`WARNING_COLUMNS`, ``source="run"``, ``reference`` the run folder. Each
        row with level ≥ 1 is a warning issued at the run's reference time (``run.json``
        ``reference_time``; without it onset − ``lead_hours``, else the folder's name), valid
        from ``onset_utc`` to ``end_utc`` (the last time the level holds). Later runs continue
        or end earlier runs' warnings (module docstring).
    """
    seen: set[Path] = set()
    messages = []
    for path in _expand(paths):
        for folder in _run_folders(path):
            real = folder.resolve()
            if real in seen:
                continue
            seen.add(real)
            messages.append(_read_run(folder))
    return _resolve(messages)


def warnings_from_forecasts(
    paths: str | Path | Sequence[str | Path],
    *,
    jurisdiction="ejin-horo",
    rules: str | Path = "national",
    report_probability: float = 0.3,
    mapping: str | Path | None = None,
    window=None,
    start=None,
    end=None,
) -> pd.DataFrame:
    """Warnings a forecast would have given: each file assessed at its own issue time.

    With ``window`` (the review's), a deterministic forecast warns per review window: the
    level it forecasts in that window, from its onset there, valid to the window's end, so a
    second episode on a later day is a warning of its own (computed with the same per-window
    aggregation as the observations, :func:`cityops.review.observations.observed_levels`).
    Without it, or for an ensemble, each unit × hazard gets the one warning of
    ``town_hazards`` (its highest level).

    Parameters
    ----------
    paths : path, glob or list of paths
        Forecast files; each file is one forecast (:func:`cityops.pipeline.assess` with
        ``now`` = its ``issued``).
    jurisdiction : str, path or Jurisdiction, optional
    rules : str or path, optional
        Rule set (``national``, ``ejin-horo`` or a YAML table).
    report_probability : float, optional
        Ensemble share needed to report a level.
    mapping : path, optional
        User variable mapping for ingest.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`WARNING_COLUMNS`, ``source="forecast"``, ``reference`` the file; issued
        at the forecast's ``issued``. Later forecasts continue or end earlier ones.
    """
    from cityops.geo.jurisdiction import Jurisdiction, load_jurisdiction
    from cityops.pipeline import assess

    juris = (
        jurisdiction if isinstance(jurisdiction, Jurisdiction) else load_jurisdiction(jurisdiction)
    )
    messages = []
    per_window = []
    for path in _expand(paths):
        if path.is_dir():
            raise InputError(f"{path}: is a folder; expected a forecast file")
        if window is not None:
            frame = _forecast_per_window(path, juris, rules, window, start, end, mapping)
            if frame is not None:
                per_window.append(frame)
                continue
        assessment = assess(
            path,
            jurisdiction=juris,
            rules=rules,
            report_probability=report_probability,
            mapping=mapping,
        )
        messages.append(
            _table_message(
                assessment.table,
                sent=assessment.now,
                reference=str(path),
                source="forecast",
                where=str(path),
            )
        )
    resolved = _resolve(messages) if messages else empty_warnings()
    frames = [f for f in [resolved, *per_window] if len(f)]
    return _finish(pd.concat(frames, ignore_index=True)) if frames else empty_warnings()


def _forecast_per_window(path, juris, rules, window, start, end, mapping) -> pd.DataFrame | None:
    """Per-window warnings of one deterministic forecast file (None for an ensemble)."""
    import xarray as xr

    from cityops.review.observations import observed_levels
    from cityops.timeutil import parse_utc

    try:
        with xr.open_dataset(path) as ds:
            if "member" in ds.dims or "number" in ds.dims:
                return None
            issued = ds.attrs.get("issued")
    except (OSError, ValueError):
        issued = None  # GRIB or MICAPS: ingest knows the issue time
    if issued is None:
        from cityops.ingest import open_forecast

        issued = open_forecast([path]).attrs["issued"]
    levels = observed_levels(
        [path], jurisdiction=juris, rules=rules, window=window, start=start, end=end,
        mapping=mapping,
    )  # fmt: skip
    hit = levels[levels["evaluated"].astype(bool) & (levels["observed_level"] >= 1)]
    # Valid to the end of its window (a second before, so it does not reach into the next).
    return pd.DataFrame(
        {
            "town_code": hit["town_code"].astype(str),
            "hazard": hit["hazard"].astype(str),
            "level": hit["observed_level"].astype(int),
            "issued_utc": parse_utc(issued),
            "onset_utc": hit["observed_onset_utc"],
            "expires_utc": hit["window_end_utc"] - pd.Timedelta(seconds=1),
            "area_fraction": hit["observed_area_fraction"],
            "source": "forecast",
            "reference": str(path),
        }
    )


# --------------------------------------------------------------------------- CSV log
def warnings_from_log(path: str | Path) -> pd.DataFrame:
    """Warnings from a CSV log of the signals actually issued.

    Parameters
    ----------
    path : path
        CSV (UTF-8, header row) with columns ``town_code, hazard, level, issued_utc`` and
        optionally ``onset_utc, expires_utc, area_fraction``. ``level`` is 0–4 or a level name
        (``blue`` … ``red``, ``蓝色`` … ``红色``); a row with level 0 lifts 解除 the unit's
        signal for that hazard. Times are ISO 8601: with ``Z`` or an offset, or naive = UTC.
        ``onset_utc`` defaults to ``issued_utc``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`WARNING_COLUMNS`, ``source="log"``, ``reference`` ``<file>:<line>``.
        A later row for the same unit and hazard continues (same or higher level) or ends
        (lower level, lift) the earlier signal.

    Raises
    ------
    InputError
        One line naming the file, the column (and line) and what was expected.
    """
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise InputError(
            f"{path}: cannot read as a CSV log of issued signals ({str(err).strip()})"
        ) from None
    table.columns = [str(c).strip() for c in table.columns]
    for col in LOG_REQUIRED:
        if col not in table.columns:
            raise InputError(
                f"{path}: column {col!r} is missing (expected columns "
                f"{', '.join(LOG_REQUIRED)}[, {', '.join(LOG_OPTIONAL)}])"
            )
    hazards = known_hazards()
    messages = []
    for i, rec in enumerate(table.to_dict("records")):
        line = i + 2  # header is line 1

        def bad(col: str, expected: str, rec=rec, line=line) -> InputError:
            return InputError(
                f"{path}: column {col!r}, line {line}: {rec[col]!r} is not {expected}"
            )

        code = str(rec["town_code"]).strip()
        if not code:
            raise bad("town_code", "a unit code (expected e.g. 150627100)")
        hazard = str(rec["hazard"]).strip()
        if hazard not in hazards:
            raise bad("hazard", f"a hazard id (expected one of {', '.join(sorted(hazards))})")
        level = _parse_level(rec["level"])
        if level is None:
            raise bad(
                "level", "a warning level (expected an integer 0-4 or blue/yellow/orange/red)"
            )
        times = {}
        for col in ("issued_utc", "onset_utc", "expires_utc"):
            try:
                times[col] = _time_or_nat(rec.get(col, ""), what=col)
            except InputError:
                raise bad(col, "a time (expected ISO 8601, e.g. 2026-07-10T13:00:00Z)") from None
        if pd.isna(times["issued_utc"]):
            raise bad("issued_utc", "a time (expected ISO 8601, e.g. 2026-07-10T13:00:00Z)")
        onset = times["onset_utc"] if pd.notna(times["onset_utc"]) else times["issued_utc"]
        if pd.notna(times["expires_utc"]) and times["expires_utc"] < onset:
            raise bad("expires_utc", f"at or after the onset {onset:%Y-%m-%dT%H:%MZ}")
        area = np.nan
        if str(rec.get("area_fraction", "")).strip():
            area = _float(rec["area_fraction"])
            if not 0 <= area <= 1:
                raise bad("area_fraction", "a share (expected a number from 0 to 1)")
        ident = f"{path}:{line}"
        rows = []
        if level >= 1:
            rows.append(
                {
                    "town_code": code,
                    "hazard": hazard,
                    "level": level,
                    "issued_utc": times["issued_utc"],
                    "onset_utc": onset,
                    "expires_utc": times["expires_utc"],
                    "area_fraction": area,
                    "source": "log",
                    "reference": ident,
                }
            )
        messages.append(
            _Message(
                ident,
                times["issued_utc"],
                frozenset([hazard]),
                {(hazard, code): level},
                complete=False,
                rows=rows,
            )
        )
    return _resolve(messages)


# --------------------------------------------------------------------------- the ledger
def _is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def _given(value) -> bool:
    """A stored time that is there (SQL NULL arrives as None or NaN)."""
    return isinstance(value, str) and bool(value.strip())


def warnings_from_ledger(path: str | Path) -> pd.DataFrame:
    """Warnings from the signals a duty forecaster issued (``cityops issue``), kept in the task
    ledger: lead times then count from the issue time, not from the model run.

    Each issue or update is a message at its issue time with its level for the unit and
    hazard, valid from ``valid_from_utc`` (the onset) to ``valid_to_utc``; an update to a lower
    level ends the earlier signal, a lift (level 0) ends it. ``source="ledger"``,
    ``reference`` the signal's identifier.
    """
    from cityops import ledger

    path = Path(path)
    conn = ledger.connect(path, create=False)
    try:
        signals = ledger.list_signals(conn)
    finally:
        conn.close()
    messages = []
    for rec in signals.to_dict("records"):
        sent = parse_utc(rec["issued_utc"])
        key = (str(rec["hazard"]), str(rec["town_code"]))
        level = int(rec["level"])
        rows = []
        if level >= 1:
            start = parse_utc(rec["valid_from_utc"]) if _given(rec["valid_from_utc"]) else sent
            rows.append(
                {
                    "town_code": key[1],
                    "hazard": key[0],
                    "level": level,
                    "issued_utc": sent,
                    "onset_utc": start,
                    "expires_utc": (
                        parse_utc(rec["valid_to_utc"]) if _given(rec["valid_to_utc"]) else pd.NaT
                    ),
                    "area_fraction": np.nan,
                    "source": "ledger",
                    "reference": str(rec["identifier"]),
                }
            )
        messages.append(
            _Message(
                str(rec["identifier"]),
                sent,
                frozenset([key[0]]),
                {key: level},
                complete=False,
                rows=rows,
            )
        )
    return _resolve(messages) if messages else empty_warnings()


# --------------------------------------------------------------------------- CAP
def _cap_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(path.glob("cap_*.xml")) or sorted(path.glob("*.xml"))
        if not files:
            raise InputError(f"{path}: no CAP file (cap_*.xml) in this folder")
        return files
    return [path]


@cache
def _hazard_names() -> tuple[tuple[str, str], ...]:
    """(name, hazard id) pairs of the national table, longest name first."""
    data = load_yaml(package_data("rules", "tables", "national.yaml"))
    names = {}
    for hid, spec in data.get("hazards", {}).items():
        for key in ("name_zh", "name_en"):
            if spec.get(key):
                names[str(spec[key]).lower()] = hid
        names[hid] = hid
    return tuple(sorted(names.items(), key=lambda kv: -len(kv[0])))


def _hazard_from_event(text: str) -> str | None:
    """A hazard id from a CAP event such as 暴雨红色预警 or "rainstorm red warning"."""
    text = text.lower()
    return next((hid for name, hid in _hazard_names() if name in text), None)


def _parse_cap(path: Path, statuses: Sequence[str]) -> _Message | None:
    from xml.etree.ElementTree import ParseError

    import defusedxml.ElementTree as DET
    from defusedxml import DefusedXmlException

    from cityops.cap import CAP_NS

    q = f"{{{CAP_NS}}}"
    try:
        # Hardened parser: no DTD, no entities, no external references.
        root = DET.parse(str(path), forbid_dtd=True).getroot()
    except (DefusedXmlException, ParseError) as err:
        raise InputError(f"{path}: not a safe, well-formed CAP XML file ({err})") from None
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err})") from None
    if root.tag != q + "alert":
        raise InputError(f"{path}: root element {root.tag!r} is not a CAP 1.2 <alert> ({CAP_NS})")

    def text(el, tag: str) -> str:
        return (el.findtext(q + tag) or "").strip()

    ident = text(root, "identifier")
    status = text(root, "status")
    msg_type = text(root, "msgType")
    if not ident or not msg_type:
        raise InputError(f"{path}: <identifier> and <msgType> are required in a CAP alert")
    if status not in statuses:
        # A skipped draft is said aloud: a review that counts no warning must say why.
        (log.warning if status == "Draft" else log.info)(
            "%s: status %s skipped (a draft was never issued; reading %s)"
            if status == "Draft" else "%s: status %s skipped (reading %s)",
            path, status, ", ".join(statuses),
        )  # fmt: skip
        return None
    try:
        sent = parse_utc(text(root, "sent"), what=f"{path}: <sent>")
    except InputError:
        raise InputError(
            f"{path}: <sent> {text(root, 'sent')!r} is not a CAP time (expected e.g. "
            "2026-07-10T08:00:00+08:00)"
        ) from None
    refs = frozenset(
        part.split(",")[1] for part in text(root, "references").split() if part.count(",") >= 2
    )
    if msg_type == "Cancel":
        return _Message(f"{ident}", sent, None, supersedes=refs, cancel=True)
    if msg_type not in ("Alert", "Update"):
        return None  # Ack, Error: no warning
    match = _CAP_IDENT.match(ident)
    hazard = match["hazard"] if match else None
    if hazard is None and (m := _CAP_FILE.match(path.stem)):
        hazard = m["hazard"]
    levels: dict[str, int] = {}
    onsets, expires = [], []
    for info in root.findall(q + "info"):
        if hazard is None:
            from cityops.cap import hazard_of_event_code

            for code in info.findall(q + "eventCode"):
                hazard = hazard or hazard_of_event_code(text(code, "value"))
        hazard = hazard or _hazard_from_event(text(info, "event"))
        for tag, values in (("onset", onsets), ("expires", expires)):
            if text(info, tag):
                try:
                    values.append(parse_utc(text(info, tag), what=f"{path}: <{tag}>"))
                except InputError:
                    raise InputError(
                        f"{path}: <{tag}> {text(info, tag)!r} is not a CAP time"
                    ) from None
        for param in info.findall(q + "parameter"):
            name = text(param, "valueName")
            if name.startswith(_LEVEL_PARAM):
                level = _parse_level(text(param, "value"))
                if level is None:
                    raise InputError(
                        f"{path}: parameter {name!r}: {text(param, 'value')!r} is not a level "
                        "(expected blue/yellow/orange/red)"
                    )
                code = name.removeprefix(_LEVEL_PARAM)
                levels[code] = max(level, levels.get(code, 0))
        if not levels:
            # Not written by cityops: one level for the alert, from its event or severity.
            level = _alert_level(text(info, "event"), text(info, "severity"))
            for area in info.findall(q + "area"):
                for geo in area.findall(q + "geocode"):
                    if level and text(geo, "valueName") in _GEOCODES:
                        levels.setdefault(text(geo, "value"), level)
    if hazard is None or hazard not in known_hazards():
        raise InputError(
            f"{path}: cannot tell the hazard of alert {ident!r} (expected a cityops identifier "
            "<code>-<YYYYMMDDTHHMMZ>-<hazard>, a file cap_<hazard>.xml or a known event name)"
        )
    onset = min(onsets) if onsets else sent
    end = max(expires) if expires else pd.NaT
    rows = [
        {
            "town_code": code,
            "hazard": hazard,
            "level": level,
            "issued_utc": sent,
            "onset_utc": onset,
            "expires_utc": end,
            "area_fraction": np.nan,
            "source": "cap",
            "reference": f"{path}#{ident}",
        }
        for code, level in sorted(levels.items())
        if level >= 1
    ]
    return _Message(
        ident,
        sent,
        frozenset([hazard]),
        {(hazard, code): level for code, level in levels.items()},
        complete=True,
        supersedes=refs if msg_type == "Update" else frozenset(),
        rows=rows,
    )


def _alert_level(event: str, severity: str) -> int | None:
    """The level of a foreign alert: a colour in its event, else its CAP severity."""
    for word, level in sorted(_level_words().items(), key=lambda kv: -len(kv[0])):
        if not word.isdigit() and level >= 1 and word in event.lower():
            return level
    by_severity = {
        str(row.get("cap_severity")): int(lv) for lv, row in level_names().items() if int(lv) >= 1
    }
    return by_severity.get(severity)


def warnings_from_cap(
    paths: str | Path | Sequence[str | Path],
    *,
    statuses: Sequence[str] = DEFAULT_CAP_STATUSES,
) -> pd.DataFrame:
    """Warnings of CAP 1.2 alerts (as ``cityops brief`` writes them, or foreign ones).

    Parameters
    ----------
    paths : path, glob or list of paths
        CAP files, or folders of ``cap_*.xml``. Parsed with :mod:`defusedxml` (no DTD, no
        entities, no external references).
    statuses : sequence of str, optional
        CAP ``status`` values read (default Actual, Exercise, Draft; Test and System are
        skipped). A Draft alert was not signed off (``cityops sign``): pass ``("Actual",)`` to
        review only what was published.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`WARNING_COLUMNS`, ``source="cap"``, ``reference`` ``<file>#<identifier>``.
        One row per unit: the unit and its level from the ``level:<code>`` parameters
        (a foreign alert without them: every ``GB/T 2260`` geocode at the level named in its
        event, else its severity); the hazard from the identifier, else the file name
        ``cap_<hazard>.xml``, else the event name. ``issued_utc`` = ``<sent>``, onset and
        expires from ``<info>`` (alert-wide). An ``Update`` continues or ends the alerts it
        references; a ``Cancel`` ends them.
    """
    messages = []
    for path in _expand(paths):
        for file in _cap_files(path):
            msg = _parse_cap(file, tuple(statuses))
            if msg is not None:
                messages.append(msg)
    return _resolve(messages)


# --------------------------------------------------------------------------- dispatch
def source_kind(path: str | Path) -> str:
    """What a path holds: ``run``, ``cap``, ``log`` or ``forecast`` (see :func:`load_warnings`)."""
    path = Path(path)
    if path.is_dir():
        if (path / RUN_TABLE).exists():
            return "run"
        if any(path.glob("cap_*.xml")) or any(path.glob("*.xml")):
            return "cap"
        if any((sub / RUN_TABLE).exists() for sub in path.iterdir() if sub.is_dir()):
            return "run"
        raise InputError(
            f"{path}: is a folder but neither a brief run, an archive of runs nor a CAP folder"
        )
    suffix = path.suffix.lower()
    if suffix in (".sqlite", ".sqlite3", ".db") or _is_sqlite(path):
        return "ledger"
    if suffix == ".xml":
        return "cap"
    if suffix == ".csv":
        return "run" if path.name == RUN_TABLE else "log"
    return "forecast"


def load_warnings(
    paths: str | Path | Sequence[str | Path],
    *,
    jurisdiction="ejin-horo",
    rules: str | Path = "national",
    **forecast_options,
) -> pd.DataFrame:
    """All warnings named by ``paths``, whatever records them (``cityops review --forecast``).

    Parameters
    ----------
    paths : path, glob or list of paths
        Each is read by what it is: a run folder, an archive root or a ``town_hazards.csv``
        (:func:`warnings_from_runs`); a CAP file (``.xml``) or a folder of ``cap_*.xml``
        (:func:`warnings_from_cap`); another ``.csv`` (a log of issued signals,
        :func:`warnings_from_log`); anything else a forecast file
        (:func:`warnings_from_forecasts`).
    jurisdiction : str, path or Jurisdiction, optional
        For forecast files.
    rules : str or path, optional
        For forecast files.
    **forecast_options
        ``report_probability``, ``mapping`` for forecast files.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`WARNING_COLUMNS`, every source together (continuation and ending act
        within each kind of source, not across).
    """
    kinds: dict[str, list[Path]] = {k: [] for k in SOURCE_KINDS}
    for path in _expand(paths):
        kinds[source_kind(path)].append(path)
    frames = []
    if kinds["run"]:
        frames.append(warnings_from_runs(kinds["run"]))
    if kinds["cap"]:
        frames.append(warnings_from_cap(kinds["cap"]))
    for path in kinds["log"]:
        frames.append(warnings_from_log(path))
    for path in kinds["ledger"]:
        frames.append(warnings_from_ledger(path))
    if kinds["forecast"]:
        frames.append(
            warnings_from_forecasts(
                kinds["forecast"], jurisdiction=jurisdiction, rules=rules, **forecast_options
            )
        )
    frames = [f for f in frames if len(f)]
    return _finish(pd.concat(frames, ignore_index=True)) if frames else empty_warnings()
