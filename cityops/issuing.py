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

from pathlib import Path

import pandas as pd

from cityops import fsio, ledger
from cityops.errors import InputError
from cityops.geo.jurisdiction import load_jurisdiction
from cityops.rules.table import parse_level
from cityops.text import check_name
from cityops.timeutil import iso_utc, parse_utc

__all__ = ["FUTURE_SLACK", "issue_signals", "sign_run"]

#: How far ahead of the clock an issue time may be (clock skew between machines).
FUTURE_SLACK = pd.Timedelta("5min")


def _level(value) -> int:
    level = parse_level(value)
    if level not in (1, 2, 3, 4):
        raise InputError(f"--level {value!r}: expected 1-4 or blue/yellow/orange/red")
    return level


def _read_run(run: Path) -> tuple[pd.DataFrame, dict]:
    """The run's town table and the attributes of its levels.nc."""
    import xarray as xr

    marker = fsio.read_marker(run) if run.is_dir() else None
    if marker is None or marker.get("kind") not in ("brief", "assess"):
        raise InputError(f"{run}: not a cityops brief or assess run; expected its output folder")
    table_path, levels_path = run / "town_hazards.csv", run / "levels.nc"
    for path in (table_path, levels_path):
        if not path.is_file():
            raise InputError(f"{path}: file not found; expected a complete cityops run")
    table = pd.read_csv(table_path, dtype=str, keep_default_na=False)
    try:
        with xr.open_dataset(levels_path) as ds:
            attrs = dict(ds.attrs)
    except (OSError, ValueError) as err:
        raise InputError(f"{levels_path}: cannot be read as NetCDF ({err})") from None
    if "issued" not in attrs:
        raise InputError(f"{levels_path}: no 'issued' attribute; expected a cityops levels.nc")
    return table, attrs


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
        Level to issue instead of the run's proposal (1-4 or a colour).
    lift : bool, optional
        Lift (解除) the signal in force.
    ledger_path : path, optional
        The task ledger (default: ``CITYOPS_LEDGER`` or ``var/ledger.sqlite``).
    note : str, optional
        Free text kept with the record.
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
    run = Path(run)
    by = check_name(str(by).strip(), what="--by")
    if not by:
        raise InputError("--by: give the duty forecaster's name")
    if lift and level is not None:
        raise InputError("--lift and --level: a lift ends the signal; give one of them")
    wanted = None if level is None else _level(level)
    table, attrs = _read_run(run)
    juris = load_jurisdiction(attrs.get("jurisdiction_path") or attrs.get("jurisdiction")
                              or "ejin-horo")  # fmt: skip
    if hazard not in set(table["hazard"]):
        known = ", ".join(sorted(set(table["hazard"])))
        raise InputError(f"--hazard {hazard!r}: not in this run (expected one of {known})")
    clock = parse_utc(now) if now is not None else parse_utc("now")
    issued_at = parse_utc(at) if at is not None else clock
    run_issued = parse_utc(attrs["issued"])
    if issued_at > clock + FUTURE_SLACK:
        raise InputError(f"--at {iso_utc(issued_at)}: in the future (now {iso_utc(clock)})")
    if issued_at < run_issued:
        raise InputError(
            f"--at {iso_utc(issued_at)}: before the forecast was issued ({iso_utc(run_issued)})"
        )
    codes = []
    for name in [t.strip() for t in str(towns).split(",") if t.strip()]:
        code = juris.unit(name).code
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
        live = ledger.live_signal(db, code, hazard) if db.exists() else None
        if lift:
            if live is None:
                raise InputError(f"unit {code}: no {hazard} signal in force to lift")
            lvl, action, start, end = 0, "lift", issued_at, issued_at
        else:
            if str(row.get("evaluated", "true")).lower() != "true":
                raise InputError(
                    f"unit {code}: {hazard} was not assessed in this run ({row.get('note', '')}); "
                    "no signal can be issued from it"
                )
            proposed = row.get("proposed_level", row["level"])
            lvl = wanted if wanted is not None else int(proposed or 0)
            if lvl == 0:
                outlook = ""
                if int(row["level"] or 0) and row.get("next_due_utc"):
                    outlook = (
                        f" yet (its outlook: level {row.get('next_level') or row['level']}, due at "
                        f"{row['next_due_utc']})"
                    )
                raise InputError(
                    f"unit {code}: the run proposes no {hazard} signal{outlook}; give --level "
                    "1-4 to issue one on your own judgement"
                )
            action = "update" if live is not None else "issue"
            onset = parse_utc(row["onset_utc"]) if row.get("onset_utc") else None
            start = max(issued_at, onset) if onset is not None else issued_at
            end = parse_utc(row["end_utc"]) if row.get("end_utc") else None
            if end is not None and end < start:
                end = None  # the run's episode is over by the issue time: open-ended
        plans.append(
            {
                "town_name": row.get("town_name", code),
                "probability": row.get("probability", ""),
                "lifted_level": int(live["level"]) if (lift and live is not None) else None,
                "identifier": f"{juris.code}-{code}-{hazard}-{issued_at:%Y%m%dT%H%M%SZ}",
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
    levels = sorted({p["level"] for p in plans})
    if len(levels) > 1:
        named = ", ".join(f"{p['town_code']}: {p['level']}" for p in plans)
        raise InputError(
            f"--towns {towns!r}: the run proposes different levels ({named}); a signal has one "
            "colour: issue each level as its own act, or give --level"
        )
    # Every unit checked before the first record: all of them or none.
    from cityops.signal_pack import write_pack

    conn = ledger.connect(db, create=ledger_path is not None)
    try:
        return write_pack(
            conn, plans, juris=juris, hazard=hazard, table=table, issued_at=issued_at,
            status=status, by=by, note=note, out=out, lang=lang, db_path=db,
            ruleset=attrs.get("ruleset"),
        )  # fmt: skip
    finally:
        conn.close()


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
    changes nothing). The run's ``cap/`` drafts stay drafts: what is sent is each act's pack.
    """
    run = Path(run)
    by = check_name(str(by).strip(), what="--by")
    if not by:
        raise InputError("--by: give the duty forecaster's name")
    table, _ = _read_run(run)
    db = ledger.default_ledger_path(ledger_path)
    at = at if at is not None else (now if now is not None else "now")
    at = parse_utc(at)  # one issue time for every act of the signing
    column = "proposed_level" if "proposed_level" in table else "level"
    proposed = pd.to_numeric(table[column], errors="coerce").fillna(0).astype(int)
    evaluated = table["evaluated"].astype(str).str.lower() == "true"
    acts: dict[tuple[str, int], list[str]] = {}
    for i in table.index[(proposed >= 1) & evaluated]:
        code, hazard, lvl = table.at[i, "town_code"], table.at[i, "hazard"], int(proposed[i])
        live = ledger.live_signal(db, code, hazard) if db.exists() else None
        if live is not None and int(live["level"]) == lvl:
            continue
        acts.setdefault((hazard, lvl), []).append(code)
    records: list[dict] = []
    for (hazard, lvl), codes in sorted(acts.items(), key=lambda kv: (kv[0][0], -kv[0][1])):
        records += issue_signals(
            run, towns=",".join(codes), hazard=hazard, by=by, at=at, level=lvl,
            ledger_path=ledger_path, lang=lang, now=now,
        )  # fmt: skip
    return records
