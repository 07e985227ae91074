"""Issuing a warning signal as a recorded act (issue 18, item 1).

A run only *proposes* signals. The duty forecaster issues, updates or lifts (解除) a signal
for chosen units and a hazard from a run (``cityops issue``), with a name and a time; the
task ledger keeps every act (:func:`cityops.ledger.record_signal`: unit, hazard, level, valid
from-to, issuer, issue time, identifier, the signal it replaces). The review counts lead times
from these issue times (``cityops review --forecast LEDGER``), not from the model run.

Rules of the act (one owner here):

- the run must be a cityops ``brief`` or ``assess`` run (its marker) with ``levels.nc`` and
  ``town_hazards.csv``; the issue time may not be before the forecast was issued nor in the
  future (``--at``, default now);
- *issue*: a unit without a signal in force for the hazard gets one; the level is the run's
  proposed level, or ``--level`` (the forecaster's judgement), never 0; a row the run could
  not assess is refused;
- *update*: a unit whose signal is in force gets the new level; the new record replaces the
  old one (``supersedes``);
- *lift*: ``--lift`` ends the signal in force (level 0); lifting where none is in force is
  refused;
- the status is ``Exercise`` when the run came from drill inputs, ``Actual`` otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cityops import fsio, ledger
from cityops.errors import InputError
from cityops.geo.jurisdiction import load_jurisdiction
from cityops.rules.table import parse_level
from cityops.text import check_name
from cityops.timeutil import iso_utc, parse_utc

__all__ = ["FUTURE_SLACK", "PlannedAct", "commit_act", "issue_signals", "plan_act", "sign_run"]

#: How far ahead of the clock an issue time may be (clock skew between machines).
FUTURE_SLACK = pd.Timedelta("5min")


def _level(value) -> int:
    level = parse_level(value)
    if level not in (1, 2, 3, 4):
        raise InputError(f"--level {value!r}: expected 1-4 or blue/yellow/orange/red")
    return level


#: Columns a run's town table must have for issuing.
RUN_COLUMNS = ("town_code", "town_name", "hazard", "level", "evaluated", "onset_utc", "end_utc")


def _read_run(run: Path) -> tuple[pd.DataFrame, dict]:
    """The run's town table and the attributes (and last valid time) of its levels.nc."""
    import xarray as xr

    marker = fsio.read_marker(run) if run.is_dir() else None
    if marker is None or marker.get("kind") not in ("brief", "assess"):
        raise InputError(f"{run}: not a cityops brief or assess run; expected its output folder")
    table_path, levels_path = run / "town_hazards.csv", run / "levels.nc"
    for path in (table_path, levels_path):
        if not path.is_file():
            raise InputError(f"{path}: file not found; expected a complete cityops run")
    try:
        table = pd.read_csv(table_path, dtype=str, keep_default_na=False, encoding="utf-8")
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:
        raise InputError(f"{table_path}: cannot be read as the run's town table ({err})") from None
    missing = [c for c in RUN_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"{table_path}: no column {', '.join(missing)}; expected a cityops run")
    try:
        with xr.open_dataset(levels_path) as ds:
            attrs = dict(ds.attrs)
            if "time" in ds.coords and ds["time"].size:
                attrs["_last_valid"] = iso_utc(pd.Timestamp(ds["time"].values.max()))
    except (OSError, ValueError) as err:
        raise InputError(f"{levels_path}: cannot be read as NetCDF ({err})") from None
    if "issued" not in attrs:
        raise InputError(f"{levels_path}: no 'issued' attribute; expected a cityops levels.nc")
    return table, attrs


def _table_level(value, *, where: str) -> int:
    """A level cell of the run's table: empty is 0 (nothing proposed), else 0-4."""
    if str(value).strip() == "":
        return 0
    level = parse_level(value)
    if level is None or not 0 <= level <= 4:
        raise InputError(f"{where}: {value!r} is not a level (expected 0-4)")
    return level


def _rules(attrs: dict, hazard: str):
    from cityops.rules.table import load_rule_table

    try:
        return load_rule_table(attrs.get("ruleset") or "national").hazards.get(hazard)
    except (InputError, OSError, KeyError):
        return None


@dataclass
class PlannedAct:
    """One checked act, ready to be written (:func:`commit_act`)."""

    run: Path
    juris: object
    hazard: str
    table: pd.DataFrame
    attrs: dict
    issued_at: pd.Timestamp
    status: str
    by: str
    note: str
    db: Path
    create: bool
    plans: list[dict] = field(default_factory=list)


def plan_act(
    run: str | Path,
    *,
    towns: str,
    hazard: str,
    by: str,
    at=None,
    level=None,
    lift: bool = False,
    ledger_path: str | Path | None = None,
    note: str = "",
    now=None,
    _read=None,
) -> PlannedAct:
    """Check an act and work out its records (nothing is written): see :func:`issue_signals`."""
    run = Path(run)
    by = check_name(str(by).strip(), what="--by")
    if not by.strip("\u200b\u200c\u200d\u2060\ufeff"):
        raise InputError("--by: give the duty forecaster's name")
    note = check_name(str(note or "").strip(), what="--note")
    if lift and level is not None:
        raise InputError("--lift and --level: a lift ends the signal; give one of them")
    wanted = None if level is None else _level(level)
    table, attrs = _read if _read is not None else _read_run(run)
    juris = load_jurisdiction(attrs.get("jurisdiction_path") or attrs.get("jurisdiction")
                              or "ejin-horo")  # fmt: skip
    if hazard not in set(table["hazard"]):
        known = ", ".join(sorted(set(table["hazard"])))
        raise InputError(f"--hazard {hazard!r}: not in this run (expected one of {known})")
    rules = _rules(attrs, hazard)
    if wanted is not None and rules is not None and rules.level_rule(wanted) is None:
        defined = ", ".join(str(r.level) for r in rules.levels)
        raise InputError(
            f"--level {level!r}: {hazard} has no such signal in the run's rule table "
            f"(levels {defined})"
        )
    clock = parse_utc(now) if now is not None else parse_utc("now")
    try:
        issued_at = parse_utc(at) if at is not None else clock
    except InputError as err:
        raise InputError(f"--at: {err}") from None
    run_issued = parse_utc(attrs["issued"])
    if issued_at > clock + FUTURE_SLACK:
        raise InputError(f"--at {iso_utc(issued_at)}: in the future (now {iso_utc(clock)})")
    if issued_at < run_issued:
        raise InputError(
            f"--at {iso_utc(issued_at)}: before the forecast was issued ({iso_utc(run_issued)})"
        )
    last = attrs.get("_last_valid")
    if last and issued_at > parse_utc(last) and not lift:
        raise InputError(
            f"--at {iso_utc(issued_at)}: after the run's last valid time ({last}); issue from a "
            "newer run"
        )
    codes = []
    for name in [t.strip() for t in str(towns).split(",") if t.strip()]:
        try:
            code = juris.unit(name).code
        except InputError as err:
            raise InputError(f"--towns: {err}") from None
        if code not in codes:
            codes.append(code)
    if not codes:
        raise InputError(f"--towns {towns!r}: name at least one unit")
    status = "Exercise" if attrs.get("cityops_exercise") == "true" else "Actual"
    db = ledger.default_ledger_path(ledger_path)
    plans = []
    for code in codes:
        rows = table[(table["town_code"] == code) & (table["hazard"] == hazard)]
        if rows.empty:
            raise InputError(f"{run}: no {hazard} row for unit {code}")
        row = rows.iloc[0]
        where = f"{run / 'town_hazards.csv'}: unit {code} {hazard}"
        # Drills and real warnings never see each other's signals.
        live = ledger.live_signal(db, code, hazard, status=status) if db.exists() else None
        if lift:
            if live is None:
                raise InputError(f"unit {code}: no {hazard} signal in force to lift")
            lvl, action, start, end = 0, "lift", issued_at, issued_at
        else:
            if str(row["evaluated"]).lower() != "true":
                raise InputError(
                    f"unit {code}: {hazard} was not assessed in this run ({row.get('note', '')}); "
                    "no signal can be issued from it"
                )
            column = "proposed_level" if "proposed_level" in row else "level"
            proposed = _table_level(row[column], where=f"{where}: {column}")
            lvl = wanted if wanted is not None else proposed
            if lvl == 0:
                outlook = ""
                if _table_level(row["level"], where=f"{where}: level") and row.get("next_due_utc"):
                    outlook = (
                        f" yet (its outlook: level {row.get('next_level') or row['level']}, due "
                        f"at {row['next_due_utc']})"
                    )
                raise InputError(
                    f"unit {code}: the run proposes no {hazard} signal{outlook}; give --level "
                    "1-4 to issue one on your own judgement"
                )
            if live is not None and int(live["level"]) == lvl:
                raise InputError(
                    f"unit {code}: a {hazard} signal of level {lvl} is in force already "
                    f"({live['identifier']})"
                )
            action = "update" if live is not None else "issue"
            onset = (
                parse_utc(row["onset_utc"], what=f"{where}: onset_utc")
                if row["onset_utc"]
                else None
            )
            start = max(issued_at, onset) if onset is not None else issued_at
            end = parse_utc(row["end_utc"], what=f"{where}: end_utc") if row["end_utc"] else None
            if end is not None and end < start:
                raise InputError(
                    f"unit {code}: the run's {hazard} episode ended at {iso_utc(end)}, before "
                    f"the issue time {iso_utc(issued_at)}; issue from a newer run"
                )
        plans.append(
            {
                "town_name": row.get("town_name", code),
                "probability": row.get("probability", ""),
                "lifted_level": int(live["level"]) if (lift and live is not None) else None,
                "previous_level": int(live["level"]) if live is not None else None,
                "town_code": code,
                "hazard": hazard,
                "level": lvl,
                "action": action,
                "valid_from_utc": iso_utc(start),
                "valid_to_utc": iso_utc(end) if end is not None else None,
                "issuer": by,
                "issued_utc": iso_utc(issued_at),
                "run": str(run.resolve()),
                "run_issued_utc": iso_utc(run_issued),
                "status": status,
                "supersedes": live["identifier"] if live is not None else None,
                "note": note,
            }
        )
    one = {p["lifted_level"] if lift else p["level"] for p in plans}
    if len(one) > 1:
        named = ", ".join(
            f"{p['town_code']}: {p['lifted_level'] if lift else p['level']}" for p in plans
        )
        raise InputError(
            f"--towns {towns!r}: different levels ({named}); a signal has one colour: "
            f"{'lift' if lift else 'issue'} each level as its own act, or give --level"
        )
    return PlannedAct(run, juris, hazard, table, attrs, issued_at, status, by, note, db,
                      ledger_path is not None, plans)  # fmt: skip


def commit_act(act: PlannedAct, *, out=None, lang: str = "zh") -> list[dict]:
    """Write a planned act: its message pack and its ledger records (:mod:`cityops.signal_pack`)."""
    from cityops.signal_pack import write_pack

    conn = ledger.connect(act.db, create=act.create)
    try:
        return write_pack(
            conn, act.plans, juris=act.juris, hazard=act.hazard, table=act.table,
            issued_at=act.issued_at, status=act.status, by=act.by, note=act.note, out=out,
            lang=lang, db_path=act.db, ruleset=act.attrs.get("ruleset"),
        )  # fmt: skip
    finally:
        conn.close()


def issue_signals(
    run: str | Path,
    *,
    towns: str,
    hazard: str,
    by: str,
    at=None,
    level=None,
    lift: bool = False,
    ledger_path: str | Path | None = None,
    note: str = "",
    now=None,
    out: str | Path | None = None,
    lang: str = "zh",
) -> list[dict]:
    """Issue, update or lift ``hazard``'s signal for ``towns`` from a run (module docstring).

    Parameters
    ----------
    run : path
        A cityops brief or assess output folder.
    towns : str
        Comma-separated unit codes, names or aliases.
    hazard : str
        Hazard id of the run's rule set (``rainstorm`` …).
    by : str
        The duty forecaster (one line of plain text).
    at : time, optional
        Issue time (default: now).
    level : int or str, optional
        Level to issue instead of the run's proposal (1-4 or a colour); only levels the
        hazard's rule table defines.
    lift : bool, optional
        Lift (解除) the signal in force.
    ledger_path : path, optional
        The task ledger (default: ``CITYOPS_LEDGER`` or ``var/ledger.sqlite``).
    note : str, optional
        Free text kept with the record (one line).
    now : time, optional
        The clock (tests); default the system clock.
    out : path, optional
        Folder of the act's pack (CAP message, texts, card, dissemination list); default
        ``<ledger folder>/issued/<message identifier>``.
    lang : {"zh", "en", "both"}
        Languages of the texts and the card (Chinese always; English with en/both).

    Returns
    -------
    list of dict
        The records written, one per unit.
    """
    if lang not in ("zh", "en", "both"):
        raise InputError(f"--lang {lang!r}: expected zh, en or both")
    act = plan_act(run, towns=towns, hazard=hazard, by=by, at=at, level=level, lift=lift,
                   ledger_path=ledger_path, note=note, now=now)  # fmt: skip
    return commit_act(act, out=out, lang=lang)


def sign_run(
    run: str | Path,
    *,
    by: str,
    at=None,
    ledger_path: str | Path | None = None,
    lang: str = "zh",
    now=None,
) -> list[dict]:
    """Issue everything a run proposes now (``cityops sign``), one act per hazard and level.

    Units whose signal in force already has the proposed level are left alone (signing twice
    changes nothing). Every act is checked before the first is written. The run's ``cap/``
    drafts stay drafts: what is sent is each act's pack.
    """
    run = Path(run)
    by = check_name(str(by).strip(), what="--by")
    if not by:
        raise InputError("--by: give the duty forecaster's name")
    if lang not in ("zh", "en", "both"):
        raise InputError(f"--lang {lang!r}: expected zh, en or both")
    table, attrs = _read_run(run)
    status = "Exercise" if attrs.get("cityops_exercise") == "true" else "Actual"
    db = ledger.default_ledger_path(ledger_path)
    clock = now if now is not None else "now"
    try:
        at = parse_utc(at if at is not None else clock)  # one issue time for the whole signing
    except InputError as err:
        raise InputError(f"--at: {err}") from None
    column = "proposed_level" if "proposed_level" in table else "level"
    acts: dict[tuple[str, int], list[str]] = {}
    for i in table.index:
        if str(table.at[i, "evaluated"]).lower() != "true":
            continue
        code, hazard = table.at[i, "town_code"], table.at[i, "hazard"]
        lvl = _table_level(table.at[i, column], where=f"{run / 'town_hazards.csv'}: {column}")
        if lvl < 1:
            continue
        live = ledger.live_signal(db, code, hazard, status=status) if db.exists() else None
        if live is not None and int(live["level"]) == lvl:
            continue
        acts.setdefault((hazard, lvl), []).append(code)
    planned = [
        plan_act(
            run,
            towns=",".join(codes),
            hazard=hazard,
            by=by,
            at=at,
            level=lvl,
            ledger_path=ledger_path,
            now=now,
            _read=(table, attrs),
        )
        for (hazard, lvl), codes in sorted(acts.items(), key=lambda kv: (kv[0][0], -kv[0][1]))
    ]
    records: list[dict] = []
    for act in planned:
        records += commit_act(act, lang=lang)
    return records
