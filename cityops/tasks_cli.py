"""``cityops tasks list|show|update|close|escalate|export [--ledger DB]`` (interfaces.md §3, §7).

Register in ``cityops/cli.py`` with ``add_tasks_parser(sub)`` and ``"tasks": run_tasks``.
"""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path

from cityops.errors import InputError
from cityops.text import check_name, escape_control

__all__ = ["add_tasks_parser", "run_tasks"]


def _states() -> tuple[str, ...]:
    from cityops.ledger import STATES

    return STATES


def _ledger_opt(p: argparse.ArgumentParser, default) -> None:
    p.add_argument(
        "--ledger",
        type=Path,
        default=default,
        help="ledger database (default: $CITYOPS_LEDGER or var/ledger.sqlite)",
    )


def add_tasks_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``tasks`` command (and its sub-commands) to the main parser's subparsers."""
    p = subparsers.add_parser(
        "tasks", help="the task ledger: list, show, update, close, escalate, export"
    )
    _ledger_opt(p, None)
    sub = p.add_subparsers(dest="tasks_command", required=True)

    q = sub.add_parser("list", help="list tasks")
    q.add_argument("--town", default=None, help="town code")
    q.add_argument("--state", choices=_states(), default=None)
    q.add_argument("--hazard", default=None)
    q.add_argument("--overdue", action="store_true", help="only overdue tasks")
    q.add_argument("--now", default=None, help="reference time for 'overdue' (default: now)")
    _ledger_opt(q, argparse.SUPPRESS)

    q = sub.add_parser("show", help="one task and its history")
    q.add_argument("task_id")
    q.add_argument("--now", default=None, help="reference time for 'overdue' (default: now)")
    _ledger_opt(q, argparse.SUPPRESS)

    q = sub.add_parser("update", help="move a task to another state")
    q.add_argument("task_id")
    q.add_argument("--state", required=True, choices=_states())
    q.add_argument("--by", required=True, help="who makes the change")
    q.add_argument(
        "--role", default="",
        help="the actor's department or role (required to approve: the lead or competent one)",
    )  # fmt: skip
    q.add_argument("--note", default="")
    _ledger_opt(q, argparse.SUPPRESS)

    q = sub.add_parser("close", help="close (销号) an approved task")
    q.add_argument("task_id")
    q.add_argument("--by", required=True, help="who closes it")
    q.add_argument("--role", default="", help="the actor's department or role")
    q.add_argument("--note", default="")
    _ledger_opt(q, argparse.SUPPRESS)

    q = sub.add_parser(
        "escalate",
        help="escalate open tasks that break the plan's follow-up rules (idempotent; cron it)",
        description=(
            "Apply the follow-up rules of the jurisdiction's plan (plan/timing.yaml: clock, "
            "period, calendar or working days) to every open task; escalate each task once per "
            "broken rule set and again two weeks later. Prints one line per task escalated. "
            "Exit 0 (also when nothing escalates); 2 on a bad ledger or plan."
        ),
    )
    q.add_argument("--now", default=None, help="reference time (default: now)")
    q.add_argument("--jurisdiction", default="ejin-horo", help="whose plan's rules apply")
    q.add_argument("--dry-run", action="store_true", help="say what would escalate; write nothing")
    _ledger_opt(q, argparse.SUPPRESS)

    q = sub.add_parser("export", help="write the tasks as CSV (interfaces §7 columns)")
    q.add_argument("--out", type=Path, required=True, help="output CSV file")
    q.add_argument("--now", default=None, help="reference time for 'overdue' (default: now)")
    _ledger_opt(q, argparse.SUPPRESS)
    return p


def _line(task: dict) -> str:
    flags = []
    if task.get("overdue"):
        flags.append("OVERDUE")
    if task.get("escalated"):
        flags.append(f"ESCALATED x{task['escalated']}")
    due = task.get("due_utc") or "-"
    extra = f"  [{' '.join(flags)}]" if flags else ""
    line = f"{task['task_id']}  {task['state']:<10s} due {due}  {task['lead_unit']}{extra}"
    return escape_control(line)


def run_tasks(args) -> int:
    """Run one ``tasks`` sub-command; exit status (errors raise :class:`InputError`)."""
    import contextlib

    from cityops import ledger

    cmd = args.tasks_command
    if cmd in ("update", "close"):
        # A name is one plain line (refused otherwise); a note may be several lines and is
        # kept as written, shown escaped (below) so it can never forge a history line.
        check_name(args.by, what="--by")
        check_name(args.role, what="--role")
    # Every tasks sub-command works on an existing ledger: none creates one (a typo in
    # --ledger must not leave folders and an empty ledger behind).
    path = ledger.default_ledger_path(getattr(args, "ledger", None))
    with contextlib.closing(ledger.connect(path, create=False)) as db:
        try:
            return _run(args, cmd, db)
        except sqlite3.DatabaseError as err:  # locked past the timeout, damaged pages
            raise ledger.ledger_error(path, err) from None


def _run(args, cmd: str, db) -> int:
    from cityops import ledger

    if cmd == "list":
        tasks = ledger.list_tasks(
            db,
            town=args.town,
            state=args.state,
            hazard=args.hazard,
            only_overdue=args.overdue,
            now=args.now,
        )
        for task in tasks:
            print(_line(task))
        return 0
    if cmd == "show":
        task = ledger.get_task(db, args.task_id)
        task["overdue"] = ledger.overdue(task, args.now or "now")
        for key, value in task.items():
            print(escape_control(f"{key}: {'' if value is None else value}"))
        print("history:")
        for h in ledger.task_history(db, args.task_id):
            note = f"  {h['note']}" if h["note"] else ""
            role = f" ({h['role']})" if h.get("role") else ""
            line = (
                f"{h['time_utc']}  {h['actor']}{role}  {h['from_state'] or '-'} -> "
                f"{h['to_state']}{note}"
            )
            print("  " + escape_control(line))
        return 0
    if cmd in ("update", "close"):
        to_state = args.state if cmd == "update" else "closed"
        task = ledger.update_state(
            db, args.task_id, to_state, actor=args.by, note=args.note, role=args.role
        )
        print(f"{task['task_id']}: {task['state']}")
        return 0
    if cmd == "escalate":
        from cityops.response.plan import load_plan

        rules = load_plan(args.jurisdiction).timing["followup"]
        done = ledger.check_escalation(db, args.now or "now", rules=rules, dry_run=args.dry_run)
        verb = "would escalate" if args.dry_run else "escalated"
        for d in done:
            print(
                escape_control(
                    f"{d['task_id']}  {verb} x{d['escalated']}  "
                    + "; ".join(d["rules"] or d["reasons"])
                )
            )
        print(f"{len(done)} task(s) {verb}")
        return 0
    if cmd == "export":
        if args.out.is_dir():
            raise InputError(f"{args.out}: is a folder; expected a CSV file name")
        try:
            print(ledger.export_tasks(db, args.out, now=args.now))
        except (FileExistsError, FileNotFoundError, NotADirectoryError, PermissionError) as err:
            raise InputError(f"{args.out}: cannot write ({err.strerror})") from None
        return 0
    raise InputError(f"tasks: unknown sub-command {cmd!r}")
