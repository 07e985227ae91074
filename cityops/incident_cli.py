"""``cityops incident open|report|list`` — incident report clocks (issue #19 item 5).

An incident starts the report clocks of the plan (``plan/timing.yaml`` ``report_clocks``:
major and especially major incidents by phone within 30 min and in writing within 1 h, larger
and general ones within 2 h, 001:12; geological disasters to the government within 4 h, major
dangers within 2 h, 002:1594). ``report`` records that a report was made; ``list`` shows every
clock with its overdue flag. The review reads the same clocks.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from cityops.errors import InputError
from cityops.text import check_name

__all__ = ["add_incident_parser", "run_incident"]


def add_incident_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``incident`` (and its sub-commands) to the main parser's subparsers."""
    p = subparsers.add_parser(
        "incident", help="incidents and their report clocks (001:12, 002:1594)"
    )
    sub = p.add_subparsers(dest="incident_command", required=True)

    def ledger_opt(q):
        q.add_argument("--ledger", type=Path, default=None,
                       help="ledger database (default: $CITYOPS_LEDGER or var/ledger.sqlite)")  # fmt: skip

    q = sub.add_parser("open", help="record an incident; starts its report clocks")
    q.add_argument("--kind", required=True, choices=("incident", "geohazard", "geohazard_danger"),
                   help="incident (any emergency), geohazard (a geological disaster happened), "
                        "geohazard_danger (a major geological-hazard danger found)")  # fmt: skip
    q.add_argument("--scale", required=True,
                   help="一般|较大|重大|特别重大 (or general, large, major, especially_major)")  # fmt: skip
    q.add_argument("--at", required=True, help="when it happened (事发; ISO 8601, naive = UTC)")
    q.add_argument("--by", required=True, help="who records it")
    q.add_argument("--town", default="", help="unit code or name")
    q.add_argument("--note", default="")
    q.add_argument("--exercise", action="store_true", help="a drill: status Exercise")
    q.add_argument("--jurisdiction", default="ejin-horo", help="whose plan's clocks apply")
    ledger_opt(q)

    q = sub.add_parser("report", help="record that a report clock was met")
    q.add_argument("incident_id")
    q.add_argument("--clock", required=True, help="clock id (see `incident list`)")
    q.add_argument("--by", required=True, help="who reported")
    q.add_argument("--at", default=None, help="when the report was made (default: now)")
    ledger_opt(q)

    q = sub.add_parser("list", help="every report clock, overdue ones flagged (CSV)")
    q.add_argument("--now", default=None, help="reference time for 'overdue' (default: now)")
    q.add_argument("--overdue", action="store_true", help="only clocks overdue now")
    ledger_opt(q)
    return p


def run_incident(args) -> int:
    """Run one ``incident`` sub-command; exit status (errors raise :class:`InputError`)."""
    import sqlite3

    from cityops import ledger

    cmd = args.incident_command
    if cmd in ("open", "report"):
        check_name(args.by, what="--by")
    # open creates a ledger when there is none (an incident can come first); the others
    # read an existing one
    path = ledger.default_ledger_path(args.ledger)
    with contextlib.closing(ledger.connect(path, create=cmd == "open")) as db:
        try:
            return _run(args, cmd, db)
        except sqlite3.DatabaseError as err:
            raise ledger.ledger_error(path, err) from None


def _scale_id(text: str) -> str:
    from cityops.review.response import load_response_targets

    lookup = load_response_targets()["scale_lookup"]
    sid = lookup.get(str(text).strip().casefold())
    if sid is None:
        raise InputError(f"--scale {text!r}: expected 一般, 较大, 重大 or 特别重大")
    return sid


def _run(args, cmd: str, db) -> int:
    from cityops import ledger
    from cityops.deadlines import report_clocks
    from cityops.response.plan import load_plan
    from cityops.text import person_csv

    if cmd == "open":
        scale = _scale_id(args.scale)
        town = ""
        if args.town:
            from cityops.geo import load_jurisdiction

            town = load_jurisdiction(args.jurisdiction).unit(args.town).code
        rules = load_plan(args.jurisdiction).timing["report_clocks"]["rules"]
        clocks = report_clocks(args.kind, scale, args.at, rules=rules)
        iid = ledger.open_incident(
            db, kind=args.kind, scale=scale, occurred=args.at, by=args.by, clocks=clocks,
            town_code=town, status="Exercise" if args.exercise else "Actual", note=args.note,
        )  # fmt: skip
        print(iid)
        for c in clocks:
            print(f"  {c['clock_id']}: {c['channel']} → {c['report_to']} by "
                  f"{c['due_utc']:%Y-%m-%dT%H:%MZ} ({c['source']})")  # fmt: skip
        return 0
    if cmd == "report":
        row = ledger.report_clock(db, args.incident_id, args.clock, by=args.by, at=args.at)
        late = " (late)" if row["reported_utc"] > row["due_utc"] else ""
        print(f"{args.incident_id} {args.clock}: reported {row['reported_utc']}{late}")
        return 0
    frame = ledger.list_report_clocks(db, now=args.now)
    if args.overdue:
        frame = frame[frame["overdue"]]
    sys.stdout.write(person_csv(frame))
    return 0
