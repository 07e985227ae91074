"""``cityops duty check|now`` (issue 19 item 8): the duty roster of a jurisdiction.

Register in ``cityops/cli.py`` with ``add_duty_parser(sub)`` and ``"duty": run_duty``.

Exit status: ``0`` nothing wrong (notes such as the zero-report rule may be printed), ``2``
bad input (an unreadable or invalid roster, a bad date: one line on stderr naming the file
and field), ``4`` the check found problems (``check``) or nobody is on duty (``now``): a cron
job mails its output.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from cityops.errors import InputError
from cityops.text import escape_control

__all__ = ["EXIT_PROBLEMS", "add_duty_parser", "run_duty"]

#: Exit status when ``duty check`` finds a problem or ``duty now`` finds nobody on duty.
EXIT_PROBLEMS = 4

_EPILOG = (
    "exit status: 0 nothing wrong (notes may be printed), 2 bad input (roster file, option), "
    f"{EXIT_PROBLEMS} problems found (check: days without a duty officer or leader, holiday "
    "days without a holiday table row, informal staff, stale contact directory; now: nobody "
    "on duty), 1 internal error"
)


def _source_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--jurisdiction",
        default="ejin-horo",
        help="jurisdiction folder name or path (its duty.yaml)",
    )
    p.add_argument(
        "--roster", type=Path, default=None, help="a duty.yaml file instead of the jurisdiction's"
    )


def add_duty_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``duty`` command (``check``, ``now``) to the main parser's subparsers."""
    p = subparsers.add_parser(
        "duty",
        help="the duty roster (值班表): who is on duty now; check it for gaps",
        epilog=_EPILOG,
    )
    sub = p.add_subparsers(dest="duty_command", required=True)
    q = sub.add_parser(
        "check",
        help="check the roster: missing days, leaders, holiday tables, stale directory",
        description="Check duty days FROM..TO (Beijing dates) and the contact directory at NOW. "
        "Without --from/--to: from today's duty day to the end of the month, or of next month "
        "once its table is due (after the 25th), or of a holiday whose table is due (001:10).",
        epilog=_EPILOG,
    )
    _source_opts(q)
    q.add_argument(
        "--from",
        dest="start",
        default=None,
        help="first duty day (YYYY-MM-DD; default: the duty day at --now)",
    )
    q.add_argument(
        "--to",
        dest="end",
        default=None,
        help="last duty day (YYYY-MM-DD; default: the end of --from's month)",
    )
    q.add_argument("--now", default=None, help="reference time (ISO 8601; default: now)")
    q = sub.add_parser(
        "now", help="who is on duty and the leader on duty at a time", epilog=_EPILOG
    )
    _source_opts(q)
    q.add_argument(
        "--at", default=None, help="time (ISO 8601, UTC unless an offset is given; default: now)"
    )
    return p


def _roster(args):
    from cityops.response import duty

    if args.roster is not None:
        return duty.load_roster(args.roster)
    from cityops.geo.jurisdiction import load_jurisdiction

    juris = load_jurisdiction(args.jurisdiction)
    roster = duty.jurisdiction_roster(juris)
    if roster is None:
        raise InputError(f"{juris.path / duty.ROSTER_FILE}: no duty roster for {juris.name}")
    return roster


def _date(value: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise InputError(f"{what}: cannot read {value!r} as a date (expected YYYY-MM-DD)") from None


def _person(person, role: str) -> str:
    if person is None:
        return f"{role}: NOT ASSIGNED"
    mark = "  [illustrative]" if person.illustrative else ""
    detail = ", ".join(x for x in (person.unit, person.phone) if x)
    return f"{role}: {person.name}" + (f" ({detail})" if detail else "") + mark


def run_duty(args) -> int:
    """Run one ``duty`` sub-command; exit status (errors raise :class:`InputError`)."""
    from cityops.response import duty
    from cityops.timeutil import iso_utc, parse_utc

    roster = _roster(args)
    if args.duty_command == "now":
        when = parse_utc(args.at or "now", what="--at")
        d = duty.on_duty(roster, when)
        fmt = "%Y-%m-%d %H:%M"
        start = d.start_utc.tz_localize("UTC").tz_convert(roster.timezone).strftime(fmt)
        end = d.end_utc.tz_localize("UTC").tz_convert(roster.timezone).strftime(fmt)
        print(
            escape_control(
                f"{roster.path}: at {iso_utc(when)}, duty day {d.day} "
                f"({start} to {end} {roster.timezone})"
            )
        )
        print(escape_control(_person(d.officer, "duty officer")))
        print(escape_control(_person(d.leader, "leader on duty")))
        if roster.duty_phone:
            mark = "  [illustrative]" if roster.duty_phone_illustrative else ""
            print(escape_control(f"duty phone: {roster.duty_phone}{mark}"))
        missing = d.officer is None or (d.leader is None and roster.rules.leader_on_duty)
        return EXIT_PROBLEMS if missing else 0
    now = parse_utc(args.now or "now", what="--now")
    if args.start is None and args.end is None:
        first, last, why = duty.default_check_range(roster, now)
    else:
        today = duty.duty_day(roster, now)
        first = _date(args.start, "--from") if args.start else today
        last = _date(args.end, "--to") if args.end else duty.month_end(first)
        why = "as asked"
        if last < first:
            raise InputError(f"--to {last} is before --from {first}")
    findings = duty.check_roster(roster, first, last, now=now)
    print(escape_control(f"{roster.path}: duty days {first}..{last} ({why}); now {iso_utc(now)}"))
    for f in findings:
        print(escape_control(f.line()))
    problems = sum(f.severity == duty.PROBLEM for f in findings)
    notes = len(findings) - problems
    print(f"{problems} problem(s), {notes} note(s)")
    return EXIT_PROBLEMS if problems else 0
