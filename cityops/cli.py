"""The ``cityops`` command line (interfaces.md §3): thin, it parses, calls and sets exit codes.

Exit status: 0 success, 1 internal error, 2 bad input, 3 a batch finished only partly,
4 ``duty check`` found a problem (``cityops.duty_cli``), 130 interrupted, 141 the reader of the output went away (``cityops tasks list | head``, as
SIGPIPE would). See ``docs/process_health.md``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from cityops import __version__, params
from cityops.errors import CityopsError, InputError, PartialFailure
from cityops.text import escape_control

log = logging.getLogger("cityops")


def _lock_timeout(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--lock-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="wait at most this long for another run into the same folder "
        "(default CITYOPS_LOCK_TIMEOUT or 600)",
    )


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--jurisdiction", default="ejin-horo", help="jurisdiction folder name or path")
    p.add_argument("--rules", default="national", help="rule set: national or a YAML file")
    p.add_argument("--now", default=None, help="reference time (ISO 8601; default: issued)")
    p.add_argument("--lang", choices=["zh", "en"], default="zh", help="report language")
    p.add_argument(
        "--report-probability",
        type=params.probability,
        default=0.3,
        help="ensemble share of members needed to report a level (default 0.3)",
    )
    p.add_argument(
        "--observed",
        nargs="+",
        default=None,
        help="recent observations: gridded analyses, station CSV or MICAPS diamond 1 files; "
        "observed steps before --now are joined to the forecast in one series (windows "
        "straddling --now count both)",
    )
    p.add_argument(
        "--history",
        type=Path,
        default=None,
        help="daily precipitation/temperature history (NetCDF) for the drought index MCI and "
        "the cold wave's day before the forecast (t2m_min)",
    )
    p.add_argument(
        "--mapping",
        type=Path,
        default=None,
        help="YAML mapping of source variable names to canonical ones",
    )
    _cluster_options(p)


def _cluster_options(p: argparse.ArgumentParser) -> None:
    """Where the grid work runs (:mod:`cityops.cluster`)."""
    p.add_argument(
        "--scheduler",
        default=None,
        help="run the grid work on a dask.distributed cluster: tcp://HOST:PORT or local:N",
    )
    p.add_argument(
        "--in-memory-bytes",
        type=params.byte_size,
        default=None,
        help="grids up to this size (e.g. 256MiB) are loaded into this process; larger ones "
        "stay lazy and, with --scheduler, are evaluated and aggregated on the workers "
        "(default CITYOPS_IN_MEMORY_BYTES, else 256MiB, or dask's array.chunk-size with "
        "--scheduler; 0: every grid)",
    )


def _line(text: object) -> str:
    """One safe terminal line: control characters (newline, ANSI codes) shown escaped.

    Every message of the command goes through here or :class:`_Formatter`, so a file name
    holding a newline can never forge a second ``cityops: error:`` line.
    """
    return escape_control(text)


class _Formatter(logging.Formatter):
    """The log line with its message escaped (see :func:`_line`)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return _line(super().formatMessage(record))


def _degrade_terminal() -> None:
    """Never crash on a terminal that cannot show Chinese (``PYTHONIOENCODING=ascii``,
    ``LC_ALL=C`` without UTF-8): unencodable characters are written as backslash escapes."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # pragma: no cover - a closed or odd stream
                pass


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (exit status 2), like every other error of the command."""

    def error(self, message: str):
        self.exit(2, _line(f"{self.prog}: error: {message} (see {self.prog} --help)") + "\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cityops",
        description="Gridded forecasts to per-town risk briefings (伊金霍洛旗城市运行).",
    )
    parser.add_argument("--version", action="version", version=f"cityops {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("scenario", help="write a synthetic forecast (drills, demos, tests)")
    p.add_argument("name", nargs="?", help="scenario name (see --list)")
    p.add_argument("--list", action="store_true", help="list the scenarios")
    p.add_argument("--out", type=Path, help="output NetCDF file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--members", type=params.positive_int, default=None, help="ensemble members")
    p.add_argument("--issued", default=None, help="override the scenario's issue time")
    p.add_argument(
        "--observed",
        type=Path,
        default=None,
        help="also write the 'what really happened' analysis here",
    )
    p.add_argument(
        "--history",
        type=Path,
        default=None,
        help="also write a daily climate history to go with it (for the drought index)",
    )
    p.add_argument(
        "--ledger",
        type=Path,
        default=None,
        help="also write a drill task ledger: the run's tasks with a synthetic response",
    )

    p = sub.add_parser("assess", help="evaluate every rule; write levels.nc and town_hazards")
    p.add_argument("forecast", nargs="+", help="forecast file(s) or glob")
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output folder: new, empty or an earlier assess run (replaced atomically)",
    )
    _lock_timeout(p)
    _common(p)

    p = sub.add_parser("brief", help="the briefing batch: one briefing per unit and an index")
    p.add_argument("forecast", nargs="+", help="forecast file(s) or glob")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder: new, empty or an earlier brief run (replaced atomically)",
    )
    p.add_argument(
        "--archive",
        type=Path,
        default=None,
        help="archive root: the run goes to ROOT/<issued>/ and ROOT/latest points to it",
    )
    p.add_argument(
        "--towns",
        type=params.town_selection,
        default="all",
        help="all, or unit codes/names separated by commas",
    )
    p.add_argument(
        "--jobs", type=params.positive_int, default=2, help="notebooks executed in parallel"
    )
    p.add_argument("--allow-stale", action="store_true", help="brief an old forecast anyway")
    p.add_argument(
        "--max-age",
        type=params.hours,
        default=36.0,
        help="refuse real forecasts issued more than this many hours ago",
    )
    p.add_argument(
        "--timeout", type=params.seconds, default=600, help="per-notebook timeout in seconds"
    )
    p.add_argument("--kernel", default="cityops", help="Jupyter kernel name")
    p.add_argument(
        "--ledger",
        default=None,
        help="task ledger (SQLite; default CITYOPS_LEDGER or var/ledger.sqlite)",
    )
    p.add_argument("--no-ledger", action="store_true", help="do not record tasks")
    _lock_timeout(p)
    _common(p)

    p = sub.add_parser(
        "review", help="the post-event review (复盘): verification, response, lessons"
    )
    p.add_argument(
        "--forecast",
        nargs="+",
        required=True,
        help="forecast files, brief run folders or an archive root, CAP files, or a CSV signal log",
    )
    p.add_argument(
        "--observed",
        nargs="+",
        required=True,
        help="gridded analyses, station CSV or MICAPS diamond 1 files",
    )
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output folder: new, empty or an earlier review run (replaced atomically)",
    )
    p.add_argument("--ledger", default=None, help="task ledger (SQLite) for the response review")
    p.add_argument("--window", default="24h", help="review window aligned to 00 UTC (default 24h)")
    p.add_argument("--start", default=None, help="review period start (ISO 8601 UTC)")
    p.add_argument("--end", default=None, help="review period end (ISO 8601 UTC)")
    p.add_argument(
        "--exercise", action="store_true", help="drill: mark every output as an exercise"
    )
    p.add_argument("--hotline", default=None, help="12345 hotline tickets (CSV)")
    p.add_argument("--alarms", default=None, help="alarms (CSV)")
    p.add_argument("--incidents", default=None, help="incidents (CSV)")
    p.add_argument("--heating", default=None, help="heating complaints for the four ones (CSV)")
    p.add_argument("--findings", default=None, help="findings of the review meeting (YAML or CSV)")
    p.add_argument("--case-id", default=None, help="case id in the library (default: code-date)")
    p.add_argument(
        "--case-library", default=None, help="case library folder (default: jurisdiction's)"
    )
    p.add_argument("--no-case", action="store_true", help="do not save the case to the library")
    p.add_argument("--kernel", default="cityops", help="Jupyter kernel name")
    p.add_argument(
        "--timeout", type=params.seconds, default=900, help="notebook timeout in seconds"
    )
    p.add_argument("--jurisdiction", default="ejin-horo", help="jurisdiction folder name or path")
    p.add_argument("--rules", default="national", help="rule set: national or a YAML file")
    p.add_argument("--now", default=None, help="time the response figures are 'as of'")
    p.add_argument("--lang", choices=["zh", "en"], default="zh", help="report language")
    _lock_timeout(p)
    _cluster_options(p)

    p = sub.add_parser(
        "sign", help="the duty forecaster issues everything a run proposes now (cityops issue)"
    )
    p.add_argument("run", type=Path, help="the brief output folder")
    p.add_argument("--by", required=True, help="name of the duty forecaster")
    p.add_argument("--at", default=None, help="issue time (ISO 8601; default now)")
    p.add_argument("--ledger", default=None, help="task ledger (default CITYOPS_LEDGER or var/)")
    p.add_argument("--lang", default="zh", choices=["zh", "en", "both"], help="texts and card")

    p = sub.add_parser(
        "issue",
        help="the duty forecaster issues, updates or lifts a signal from a run (kept in the ledger)",
    )
    p.add_argument("run", type=Path, help="a brief or assess output folder")
    p.add_argument("--towns", required=True, help="units: codes, names or aliases, comma-separated")
    p.add_argument("--hazard", required=True, help="hazard id, e.g. rainstorm")
    p.add_argument("--by", required=True, help="name of the duty forecaster")
    p.add_argument(
        "--level", default=None, help="level to issue instead of the run's (1-4 or colour)"
    )
    p.add_argument("--lift", action="store_true", help="lift (解除) the signal in force")
    p.add_argument("--at", default=None, help="issue time (ISO 8601; default now)")
    p.add_argument("--note", default="", help="free text kept with the record")
    p.add_argument("--ledger", default=None, help="task ledger (default CITYOPS_LEDGER or var/)")
    p.add_argument(
        "--out", type=Path, default=None,
        help="folder of the act's pack (default <ledger folder>/issued/<message identifier>)",
    )  # fmt: skip
    p.add_argument("--lang", default="zh", choices=["zh", "en", "both"], help="texts and card")

    p = sub.add_parser(
        "signals",
        help="list the signals issued, updated and lifted (CSV); record acknowledgements",
    )
    p.add_argument("--ledger", default=None, help="task ledger (default CITYOPS_LEDGER or var/)")
    p.add_argument("--ack", default=None, metavar="MESSAGE",
                   help="record that a recipient acknowledged this message (identifier)")  # fmt: skip
    p.add_argument("--recipient", default=None, help="with --ack: the recipient (role or name)")
    p.add_argument("--by", default=None, help="with --ack: who reports the acknowledgement")
    p.add_argument("--at", default=None, help="with --ack: when (ISO 8601; default now)")
    p.add_argument("--acks", action="store_true", help="list the acknowledgements (CSV)")

    from cityops.tasks_cli import add_tasks_parser

    add_tasks_parser(sub)
    from cityops.duty_cli import add_duty_parser

    add_duty_parser(sub)
    from cityops.incident_cli import add_incident_parser

    add_incident_parser(sub)
    return parser


def _configure_logging(debug: bool, quiet: bool) -> None:
    level = logging.DEBUG if debug else (logging.WARNING if quiet else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter("cityops: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def _cmd_scenario(args) -> int:
    from cityops.scenarios import list_scenarios, write_scenario

    if args.list or not args.name:
        for info in list_scenarios():
            print(
                f"{info.name:34s} {info.default_issued:%Y-%m-%dT%H:%MZ}  {info.title_zh} / {info.title_en}"
            )
        return 0
    if args.out is None:
        raise InputError("scenario: --out FILE is required")
    path = write_scenario(
        args.name,
        args.out,
        seed=args.seed,
        members=args.members,
        issued=args.issued,
        observed_out=args.observed,
    )
    print(path)
    if args.observed:
        print(args.observed)
    if args.history:
        from cityops.scenarios.history import write_scenario_history

        print(write_scenario_history(args.name, args.history, issued=args.issued))
    if args.ledger:
        from cityops.review.drill import write_drill_ledger

        write_drill_ledger(path, args.ledger, seed=args.seed)
        print(args.ledger)
    return 0


def _common_options(args) -> dict:
    """The options every pipeline command shares (see ``_common``)."""
    return {
        "jurisdiction": args.jurisdiction,
        "rules": args.rules,
        "now": args.now,
        "report_probability": args.report_probability,
    }


def _cmd_assess(args) -> int:
    from cityops.fsio import check_out_dir, lock_timeout
    from cityops.pipeline import assess, publish_assessment

    inputs = [*args.forecast, *(args.observed or []), args.history, args.mapping, args.rules]
    limit = lock_timeout(args.lock_timeout)
    out = check_out_dir(args.out, "assess", [*inputs, args.jurisdiction])  # before any work
    result = assess(
        args.forecast,
        **_common_options(args),
        mapping=args.mapping,
        observed=args.observed,
        history=args.history,
    )
    out = publish_assessment(result, out, lock_timeout=limit)
    reached = result.table[result.table["level"] > 0]
    print(f"{out}/town_hazards.csv: {len(result.table)} rows, {len(reached)} with a level")
    return 0


def _cmd_brief(args) -> int:
    from cityops.brief import BriefOptions, run_briefings

    params.check_brief_combinations(args)
    # BriefOptions holds paths as strings: they become notebook parameters.
    opts = BriefOptions(
        **_common_options(args),
        lang=args.lang,
        towns=args.towns,
        jobs=args.jobs,
        allow_stale=args.allow_stale,
        max_age_hours=args.max_age,
        timeout=args.timeout,
        kernel=args.kernel,
        mapping=str(args.mapping) if args.mapping else "",
        observed=",".join(args.observed or []),
        history=str(args.history) if args.history else "",
        ledger="" if args.no_ledger else args.ledger,
        archive=str(args.archive) if args.archive else None,
        lock_timeout=args.lock_timeout,
    )
    index = run_briefings(args.forecast, args.out, opts)
    print(index)
    return 0


def _cmd_review(args) -> int:
    from cityops.review.run import ReviewInputs
    from cityops.reviewing import run_review_report

    inputs = ReviewInputs(
        forecast=args.forecast,
        observed=args.observed,
        jurisdiction=args.jurisdiction,
        rules=args.rules,
        window=args.window,
        start=args.start,
        end=args.end,
        ledger=args.ledger,
        hotline=args.hotline,
        alarms=args.alarms,
        incidents=args.incidents,
        heating=args.heating,
        findings=args.findings,
        exercise=args.exercise,
        now=args.now,
    )
    html = run_review_report(
        inputs,
        args.out,
        lang=args.lang,
        kernel=args.kernel,
        timeout=args.timeout,
        case_id=args.case_id,
        case_library=args.case_library,
        save=not args.no_case,
        lock_timeout_s=args.lock_timeout,
    )
    print(html)
    return 0


def _print_acts(records: list[dict]) -> None:
    from cityops.text import escape_control

    for r in records:
        print(escape_control(
            f"{r['action']} {r['identifier']}: {r['town_code']} {r['hazard']} level {r['level']} "
            f"({r['status']}) issued {r['issued_utc']} by {r['issuer']}"
            + (f", replaces {r['supersedes']}" if r["supersedes"] else "")
            + f"; message {r['cap_identifier']} in {r['pack']}"
        ))  # fmt: skip


def _cmd_sign(args) -> int:
    from cityops.issuing import sign_run

    records = sign_run(args.run, by=args.by, at=args.at, ledger_path=args.ledger, lang=args.lang)
    if not records:
        print(f"{args.run}: nothing to issue (no proposal, or every signal in force already)")
    _print_acts(records)
    return 0


def _cmd_issue(args) -> int:
    from cityops.issuing import issue_signals

    records = issue_signals(
        args.run, towns=args.towns, hazard=args.hazard, by=args.by, at=args.at,
        level=args.level, lift=args.lift, ledger_path=args.ledger, note=args.note,
        out=args.out, lang=args.lang,
    )  # fmt: skip
    _print_acts(records)
    return 0


def _cmd_signals(args) -> int:
    from cityops import ledger
    from cityops.text import person_csv

    if args.ack is None and (args.recipient or args.by or args.at):
        raise InputError("--recipient, --by and --at go with --ack MESSAGE")
    conn = ledger.connect(ledger.default_ledger_path(args.ledger), create=False)
    try:
        if args.ack is not None:
            from cityops.text import check_name

            recipient = check_name(str(args.recipient or "").strip(), what="--recipient")
            by = check_name(str(args.by or "").strip(), what="--by")
            if not recipient or not by:
                raise InputError("--ack: give --recipient and --by")
            row = ledger.record_ack(conn, args.ack, recipient, by=by, at=args.at or "now")
            print(escape_control(
                f"acknowledged {row['cap_identifier']}: {row['recipient']} "
                f"({row['acknowledged_by']}, {row['acknowledged_utc']})"
            ))  # fmt: skip
            return 0
        frame = ledger.list_acks(conn) if args.acks else ledger.list_signals(conn)
    finally:
        conn.close()
    sys.stdout.write(person_csv(frame))
    return 0


def _cmd_tasks(args) -> int:
    from cityops.tasks_cli import run_tasks

    return run_tasks(args)


def _cmd_incident(args) -> int:
    from cityops.incident_cli import run_incident

    return run_incident(args)


def _cmd_duty(args) -> int:
    from cityops.duty_cli import run_duty

    return run_duty(args)


COMMANDS = {
    "scenario": _cmd_scenario,
    "assess": _cmd_assess,
    "brief": _cmd_brief,
    "tasks": _cmd_tasks,
    "sign": _cmd_sign,
    "issue": _cmd_issue,
    "signals": _cmd_signals,
    "review": _cmd_review,
    "duty": _cmd_duty,
    "incident": _cmd_incident,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cityops`` command."""
    import warnings

    # papermill imports requests, whose optional SOCKS support warns at import when PySocks
    # is absent (some urllib3 releases); cityops opens no proxies, and a user's stderr keeps
    # one line per failure (seen in CI from the notebook threads' first import).
    warnings.filterwarnings("ignore", message="SOCKS support in urllib3 requires")
    _degrade_terminal()
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.debug, args.quiet)
    try:
        from cityops.cluster import dask_scheduler

        with dask_scheduler(
            getattr(args, "scheduler", None),
            in_memory_bytes=getattr(args, "in_memory_bytes", None),
        ):
            status = COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, not as a message at interpreter exit
        return status
    except BrokenPipeError:
        # The reader closed the pipe: stop quietly; nothing more can be written to stdout.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except PartialFailure as err:
        print(_line(f"cityops: {err}"), file=sys.stderr)
        for unit, reason in err.failed.items():
            print(_line(f"cityops: failed {unit}: {reason}"), file=sys.stderr)
        return err.exit_code
    except CityopsError as err:
        if args.debug:
            raise
        print(_line(f"cityops: error: {err}"), file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("cityops: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # no traceback reaches a user unless --debug
        if args.debug:
            raise
        print(
            _line(f"cityops: internal error: {type(err).__name__}: {err} (rerun with --debug)"),
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
