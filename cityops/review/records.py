"""Event records for the review: 12345 hotline tickets, alarms, incidents, heating complaints.

Each record kind is a CSV (UTF-8, header row; leading lines starting with ``#`` are skipped, so
a file may say what it is) with the columns below. Times are ISO 8601; a time without an
offset is UTC (the column names say so), one with an offset is converted. Readers return a
:class:`pandas.DataFrame` with naive UTC ``datetime64`` times (``NaT`` where a time is empty)
and raise a one-line :class:`~cityops.errors.InputError` naming the file, the column and the
row for any problem: a missing column, an empty id or town, a duplicate id, an unreadable
time, or times out of order (e.g. on scene before dispatch).

========================  ====================================================================
kind                      columns (``*`` = may be empty)
========================  ====================================================================
hotline (12345 接诉即办)   ``ticket_id, received_utc, town_code, category, closed_utc*``
alarms (报警)              ``alarm_id, time_utc, town_code, type``
incidents (突发事件)       ``incident_id, town_code, type, scale, reported_utc, dispatched_utc*,
                          on_scene_utc*, relief_utc*, handled`` (+ optional ``relief_needed``)
heating (供热诉求)         ``complaint_id, town_code, received_utc, answered_utc*,
                          dispatched_utc*, on_site_utc*, resolved_utc*, visits*``
========================  ====================================================================

``scale`` is one of the incident scales of ``cityops/data/response_targets.yaml`` (an id such
as ``large`` or a Chinese name such as ``较大``); it is returned as the id. ``handled`` and
``relief_needed`` are booleans (``true/false``, ``1/0``, ``yes/no``, ``是/否``).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import pandas as pd

from cityops.errors import InputError

__all__ = [
    "ALARMS",
    "HEATING",
    "HOTLINE",
    "INCIDENTS",
    "RecordSpec",
    "as_records",
    "read_alarms",
    "read_heating",
    "read_hotline",
    "read_incidents",
]

_TRUE = frozenset({"true", "1", "yes", "y", "t", "是"})
_FALSE = frozenset({"false", "0", "no", "n", "f", "否"})


@dataclass(frozen=True)
class RecordSpec:
    """The columns of one kind of record and how they are checked.

    Attributes
    ----------
    kind : str
        Name used in messages (``hotline``, ``alarms``, ...).
    id_column : str
        Unique, non-empty record id.
    columns : tuple of str
        Required columns, in their documented order.
    times : tuple of str
        Time columns that must be filled.
    optional_times : tuple of str
        Time columns that may be empty.
    order : tuple of (str, str)
        Pairs ``(earlier, later)`` that must not be reversed when both are filled.
    bools : tuple of str
        Boolean columns that must be filled.
    optional_bools : tuple of str
        Optional boolean columns (the column itself may be absent).
    counts : tuple of str
        Non-negative integer columns that may be empty.
    """

    kind: str
    id_column: str
    columns: tuple[str, ...]
    times: tuple[str, ...]
    optional_times: tuple[str, ...] = ()
    order: tuple[tuple[str, str], ...] = ()
    bools: tuple[str, ...] = ()
    optional_bools: tuple[str, ...] = ()
    counts: tuple[str, ...] = ()

    @property
    def time_column(self) -> str:
        """The time that places a record in the review period (the first required time)."""
        return self.times[0]


HOTLINE = RecordSpec(
    kind="hotline",
    id_column="ticket_id",
    columns=("ticket_id", "received_utc", "town_code", "category", "closed_utc"),
    times=("received_utc",),
    optional_times=("closed_utc",),
    order=(("received_utc", "closed_utc"),),
)
ALARMS = RecordSpec(
    kind="alarms",
    id_column="alarm_id",
    columns=("alarm_id", "time_utc", "town_code", "type"),
    times=("time_utc",),
)
INCIDENTS = RecordSpec(
    kind="incidents",
    id_column="incident_id",
    columns=(
        "incident_id",
        "town_code",
        "type",
        "scale",
        "reported_utc",
        "dispatched_utc",
        "on_scene_utc",
        "relief_utc",
        "handled",
    ),
    times=("reported_utc",),
    optional_times=("dispatched_utc", "on_scene_utc", "relief_utc"),
    order=(
        ("reported_utc", "dispatched_utc"),
        ("dispatched_utc", "on_scene_utc"),
        ("reported_utc", "on_scene_utc"),
        ("reported_utc", "relief_utc"),
    ),
    bools=("handled",),
    optional_bools=("relief_needed",),
)
HEATING = RecordSpec(
    kind="heating",
    id_column="complaint_id",
    columns=(
        "complaint_id",
        "town_code",
        "received_utc",
        "answered_utc",
        "dispatched_utc",
        "on_site_utc",
        "resolved_utc",
        "visits",
    ),
    times=("received_utc",),
    optional_times=("answered_utc", "dispatched_utc", "on_site_utc", "resolved_utc"),
    order=(
        ("received_utc", "answered_utc"),
        ("answered_utc", "dispatched_utc"),
        ("dispatched_utc", "on_site_utc"),
        ("received_utc", "resolved_utc"),
    ),
    counts=("visits",),
)


# --------------------------------------------------------------------------------------------
# Reading and checking
# --------------------------------------------------------------------------------------------
def _read_csv(path: Path) -> pd.DataFrame:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read as UTF-8 text ({err})") from None
    lines = text.splitlines(keepends=True)
    skip = 0
    while skip < len(lines) and lines[skip].lstrip().startswith("#"):
        skip += 1
    body = "".join(lines[skip:])
    if not body.strip():
        raise InputError(f"{path}: no header row (empty file)")
    try:
        return pd.read_csv(io.StringIO(body), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, ValueError) as err:
        message = " ".join(str(err).split())
        raise InputError(f"{path}: not a readable CSV ({message})") from None


def _times(values: pd.Series, where: str, column: str, *, required: bool) -> pd.Series:
    text = values.astype("string").str.strip().fillna("")
    parsed = pd.to_datetime(text.where(text != ""), utc=True, format="ISO8601", errors="coerce")
    bad = (text != "") & parsed.isna()
    if bad.any():
        i = int(bad.to_numpy().nonzero()[0][0])
        raise InputError(
            f"{where}: column {column!r}, row {i + 1}: cannot read {text.iloc[i]!r} as a time "
            "(expected ISO 8601; no offset = UTC)"
        )
    if required and (text == "").any():
        i = int((text == "").to_numpy().nonzero()[0][0])
        raise InputError(f"{where}: column {column!r}, row {i + 1}: time is empty")
    return parsed.dt.tz_convert("UTC").dt.tz_localize(None)


def _bools(values: pd.Series, where: str, column: str) -> pd.Series:
    out = []
    for i, raw in enumerate(values.astype("string").fillna("")):
        word = str(raw).strip().casefold()
        if word in _TRUE:
            out.append(True)
        elif word in _FALSE:
            out.append(False)
        else:
            raise InputError(
                f"{where}: column {column!r}, row {i + 1}: {raw!r} is not a boolean "
                "(expected true/false, 1/0, yes/no, 是/否)"
            )
    return pd.Series(out, index=values.index, dtype=bool)


def _counts(values: pd.Series, where: str, column: str) -> pd.Series:
    text = values.astype("string").str.strip().fillna("")
    numbers = pd.to_numeric(text.where(text != ""), errors="coerce")
    bad = ((text != "") & numbers.isna()) | (numbers < 0) | (numbers % 1 != 0)
    if bad.any():
        i = int(bad.to_numpy().nonzero()[0][0])
        raise InputError(
            f"{where}: column {column!r}, row {i + 1}: {text.iloc[i]!r} is not a count "
            "(expected a whole number >= 0, or empty)"
        )
    return numbers.astype("Int64")


def _scales(values: pd.Series, where: str, scales: Mapping[str, str]) -> pd.Series:
    out = []
    for i, raw in enumerate(values.astype("string").fillna("")):
        key = str(raw).strip().casefold()
        if key not in scales:
            known = ", ".join(sorted(set(scales.values())))
            raise InputError(
                f"{where}: column 'scale', row {i + 1}: unknown incident scale {raw!r} "
                f"(expected one of {known} or their Chinese names)"
            )
        out.append(scales[key])
    return pd.Series(out, index=values.index, dtype=object)


def _check(
    frame: pd.DataFrame, spec: RecordSpec, where: str, scales: Mapping[str, str] | None
) -> pd.DataFrame:
    missing = [c for c in spec.columns if c not in frame.columns]
    if missing:
        raise InputError(
            f"{where}: missing column(s) {', '.join(missing)} "
            f"(a {spec.kind} table needs {', '.join(spec.columns)})"
        )
    out = frame.copy()
    for column in (spec.id_column, "town_code"):
        text = out[column].astype("string").str.strip().fillna("")
        if (text == "").any():
            i = int((text == "").to_numpy().nonzero()[0][0])
            raise InputError(f"{where}: column {column!r}, row {i + 1}: empty value")
        out[column] = text.astype(object)
    dup = out[spec.id_column].duplicated()
    if dup.any():
        i = int(dup.to_numpy().nonzero()[0][0])
        raise InputError(
            f"{where}: column {spec.id_column!r}, row {i + 1}: duplicate id "
            f"{out[spec.id_column].iloc[i]!r}"
        )
    for column in spec.times:
        out[column] = _times(out[column], where, column, required=True)
    for column in spec.optional_times:
        out[column] = _times(out[column], where, column, required=False)
    for earlier, later in spec.order:
        wrong = out[earlier].notna() & out[later].notna() & (out[later] < out[earlier])
        if wrong.any():
            i = int(wrong.to_numpy().nonzero()[0][0])
            raise InputError(
                f"{where}: column {later!r}, row {i + 1}: {out[later].iloc[i]} is before "
                f"{earlier} {out[earlier].iloc[i]}"
            )
    for column in spec.bools:
        out[column] = _bools(out[column], where, column)
    for column in spec.optional_bools:
        if column in out.columns:
            out[column] = _bools(out[column], where, column)
    for column in spec.counts:
        out[column] = _counts(out[column], where, column)
    if "scale" in spec.columns and scales is not None:
        out["scale"] = _scales(out["scale"], where, scales)
    for column in out.columns:
        if out[column].dtype == "string":
            out[column] = out[column].astype(object)
    return out.reset_index(drop=True)


def _incident_scales() -> dict[str, str]:
    from cityops.review.response import load_response_targets

    return load_response_targets()["scale_lookup"]


def as_records(source, spec: RecordSpec, *, name: str | None = None) -> pd.DataFrame:
    """A checked record table from a CSV path or an already loaded :class:`~pandas.DataFrame`.

    Parameters
    ----------
    source : str, os.PathLike or pandas.DataFrame
        The CSV file, or a table with the same columns (strings or already parsed values).
    spec : RecordSpec
        Which kind of record (:data:`HOTLINE`, :data:`ALARMS`, :data:`INCIDENTS`,
        :data:`HEATING`).
    name : str, optional
        Name used in error messages for a DataFrame (default ``"<kind> table"``).

    Returns
    -------
    pandas.DataFrame
        The records with parsed times (naive UTC), booleans and counts.

    Raises
    ------
    InputError
        One line naming the file (or table), the column and the row.
    """
    scales = _incident_scales() if "scale" in spec.columns else None
    if isinstance(source, pd.DataFrame):
        frame = source.copy()
        for column in (*spec.times, *spec.optional_times):
            if column in frame.columns and pd.api.types.is_datetime64_any_dtype(frame[column]):
                values = frame[column]
                if getattr(values.dt, "tz", None) is not None:
                    values = values.dt.tz_convert("UTC").dt.tz_localize(None)
                frame[column] = values.dt.strftime("%Y-%m-%dT%H:%M:%S").fillna("")
        for column in (*spec.bools, *spec.optional_bools):
            if column in frame.columns and frame[column].dtype == bool:
                frame[column] = frame[column].map({True: "true", False: "false"})
        for column in spec.counts:
            if column in frame.columns:
                frame[column] = frame[column].map(lambda v: "" if pd.isna(v) else str(v))
        return _check(frame, spec, name or f"{spec.kind} table", scales)
    if not isinstance(source, (str, PathLike)):
        raise InputError(f"{spec.kind}: expected a CSV path or a DataFrame, got {type(source)}")
    path = Path(source)
    return _check(_read_csv(path), spec, str(path), scales)


def read_hotline(path: str | PathLike) -> pd.DataFrame:
    """12345 hotline tickets (``ticket_id, received_utc, town_code, category, closed_utc``).

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file.

    Returns
    -------
    pandas.DataFrame
        One row per ticket, times naive UTC (``closed_utc`` NaT while open).
    """
    return as_records(path, HOTLINE)


def read_alarms(path: str | PathLike) -> pd.DataFrame:
    """Alarm records (``alarm_id, time_utc, town_code, type``).

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file.

    Returns
    -------
    pandas.DataFrame
        One row per alarm, ``time_utc`` naive UTC.
    """
    return as_records(path, ALARMS)


def read_incidents(path: str | PathLike) -> pd.DataFrame:
    """Incident records (see the module docstring for the columns).

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file.

    Returns
    -------
    pandas.DataFrame
        One row per incident; ``scale`` as an id of ``response_targets.yaml``; ``handled`` (and
        ``relief_needed`` when present) boolean; times naive UTC.
    """
    return as_records(path, INCIDENTS)


def read_heating(path: str | PathLike) -> pd.DataFrame:
    """Heating complaints for the "four ones" (see the module docstring for the columns).

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file.

    Returns
    -------
    pandas.DataFrame
        One row per complaint; times naive UTC; ``visits`` a nullable integer.
    """
    return as_records(path, HEATING)
