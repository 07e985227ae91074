"""The briefing batch (``cityops brief``): shared work once, one notebook per unit, an index.

Layout of the output folder (interfaces.md §5)::

    DIR/index.html  DIR/town_hazards.csv  DIR/town_hazards.json  DIR/levels.nc  DIR/run.json
    DIR/overview.png  DIR/<code>/briefing.ipynb  DIR/<code>/briefing.html  DIR/<code>/headline.png
    DIR/state/  the run's one assessment, which every unit's notebook reads (cityops.run_state)

The run is built in a hidden folder beside ``DIR`` and renamed into place, so a reader never
sees a half-written run (:mod:`cityops.fsio`: an existing ``DIR`` is replaced only when it is
an earlier ``brief`` run, and never when it holds an input); a failing unit (a cell raising, its kernel dying, its files not
written) is reported in the index and ``run.json`` while the others finish, and the batch then
exits with status 3.

Faults of the run as a whole leave the previous run in place: a write failing while the run is
built (disk full) removes the stage and raises :class:`~cityops.errors.CityopsError` (exit
status 1); an output folder that is not an earlier ``brief`` run, holds an input or cannot be
written, a run lock that cannot be had in time, and a real folder at ``ROOT/latest`` are
refused before any work (:class:`~cityops.errors.InputError`, exit status 2); SIGTERM (or SIGINT, SIGHUP) stops the batch cleanly (:class:`Terminated`). Leftovers
of a run killed outright (``.DIR.tmp-*`` stages, ``.DIR.old-*`` earlier runs) are cleaned up by
the next run, which first puts an earlier run back if ``DIR`` itself is missing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import shutil
import signal
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from cityops import __version__
from cityops.errors import CityopsError, InputError, PartialFailure
from cityops.freshness import check_not_future
from cityops.fsio import (
    check_out_dir,
    check_replaceable,
    check_writable_place,
    lock_timeout,
    make_stage,
    publish_folder,
    run_lock,
    write_text,
)
from cityops.fsio import clean_stale as _clean_stale
from cityops.ingest import expand_paths
from cityops.pipeline import Assessment, assess, write_assessment
from cityops.report.runner import Kernels, check_kernel, run_notebook, template_path
from cityops.run_state import STATE_FOLDER, write_run_state
from cityops.text import person_csv
from cityops.timeutil import parse_utc

__all__ = ["BriefOptions", "Terminated", "check_kernel", "run_briefings", "template_path"]

log = logging.getLogger("cityops")


@dataclass(frozen=True)
class BriefOptions:
    """Options of :func:`run_briefings` (see ``cityops brief --help``)."""

    jurisdiction: str = "ejin-horo"
    rules: str = "national"
    now: str | None = None
    lang: str = "zh"
    towns: str = "all"
    jobs: int = 2
    allow_stale: bool = False
    max_age_hours: float = 36.0
    timeout: int = 600
    kernel: str = "cityops"
    report_probability: float = 0.3
    mapping: str = ""
    ledger: str | None = None  # None: CITYOPS_LEDGER or var/ledger.sqlite; "" : no ledger
    archive: str | None = None  # ROOT: the run goes to ROOT/<issued>/ and ROOT/latest
    observed: str = ""
    history: str = ""
    template: str | None = None
    lock_timeout: float | None = None  # None: CITYOPS_LOCK_TIMEOUT or 600 s


def _check_fresh(assessment: Assessment, opts: BriefOptions) -> None:
    """A scheduled run must never publish yesterday's forecast as today's, nor tomorrow's.

    A real forecast issued after the wall clock (or ``--now``) is refused even with
    ``--allow-stale`` (:func:`cityops.freshness.check_not_future`); ``not age <= limit`` so
    that a NaN limit can never switch the guard off.
    """
    if assessment.is_exercise:
        return
    reference = parse_utc(opts.now) if opts.now else parse_utc("now")
    check_not_future(assessment.issued, reference, source=assessment.sources[0])
    if opts.allow_stale:
        return
    age = (reference - assessment.issued) / pd.Timedelta("1h")
    if not age <= opts.max_age_hours:
        raise InputError(
            f"{assessment.sources[0]}: forecast issued {assessment.issued:%Y-%m-%dT%H:%MZ} is "
            f"{age:.0f} h old (limit {opts.max_age_hours:g} h); use --allow-stale to brief it anyway"
        )


def _select_units(assessment: Assessment, towns: str) -> list[str]:
    """Unit codes of a ``--towns`` selection: each unit once, in the order first named.

    The same unit named by code, name and alias runs once (duplicates merged after
    resolution); every unknown name is reported in one line; an empty selection is refused
    (it would publish an empty run over the previous one).
    """
    juris = assessment.jurisdiction
    if towns in ("all", None):
        return [u.code for u in juris.units]
    keys = [key.strip() for key in str(towns).split(",") if key.strip()]
    if not keys:
        raise InputError(
            f"--towns {towns!r}: no unit named; expected all, or unit codes or names "
            "separated by commas"
        )
    codes: list[str] = []
    unknown: list[str] = []
    for key in keys:
        try:
            code = juris.unit(key).code
        except InputError as err:
            unknown.append(str(err))
            continue
        if code not in codes:
            codes.append(code)
    if unknown:
        raise InputError(f"--towns: {'; '.join(unknown)}")
    return codes


def _run_unit(
    code: str,
    forecast: list[str],
    stage: Path,
    opts: BriefOptions,
    final: Path | None = None,
    kernels: Kernels | None = None,
) -> str | None:
    """Execute and render one unit's briefing; return an error line or None."""
    folder = stage / code
    folder.mkdir(parents=True, exist_ok=True)
    params = {
        "forecast": ",".join(forecast),  # already absolute: see run_briefings
        "town": code,
        "jurisdiction": opts.jurisdiction,
        "rules": opts.rules,
        "now": opts.now or "",
        "lang": opts.lang,
        "output_dir": str(folder.resolve()),
        "report_probability": float(opts.report_probability),
        "mapping": str(Path(opts.mapping).resolve()) if opts.mapping else "",
        "observed": ",".join(str(Path(o).resolve()) for o in opts.observed.split(",") if o),
        "history": str(Path(opts.history).resolve()) if opts.history else "",
        # The run's one assessment (cityops.run_state): the notebook reads it, never assesses.
        "run": str((stage / STATE_FOLDER).resolve()),
    }
    return run_notebook(
        opts.template or template_path(), folder / "briefing.ipynb", params,
        html=folder / "briefing.html", kernel=opts.kernel, timeout=opts.timeout,
        lang=opts.lang, kernels=kernels, stage=stage, final=final,
    )  # fmt: skip


def _write_tasks(assessment: Assessment, stage: Path, codes: list[str]) -> None:
    """``<code>/tasks.csv``: the unit's task list from the plan (header only when none)."""
    from cityops.response import TASK_COLUMNS

    if assessment.response is None:
        none, by_unit = pd.DataFrame(columns=TASK_COLUMNS), {}
    else:
        # As Response.for_unit (earliest due first), split once: a filter per unit costs
        # seconds over a thousand units. A unit sees its own tasks and the banner-level
        # tasks it triggers; the multi-column sort is stable, so each unit's rows come in
        # the same order as from for_unit.
        ordered = assessment.response.tasks.sort_values(["due_utc", "measure"])
        none = ordered.iloc[0:0]
        rows: dict[str, list[int]] = {}
        for i, (owner, triggers) in enumerate(
            zip(ordered["town_code"], ordered["triggers"], strict=True)
        ):
            units = {owner} | {t.split(" ")[0] for t in str(triggers).split("; ") if t}
            for unit in units:
                rows.setdefault(unit, []).append(i)
        by_unit = {unit: ordered.iloc[idx] for unit, idx in rows.items()}
        # The whole list, once per owner and measure: what the HQ dispatches.
        (stage / "tasks.csv").write_text(person_csv(ordered), encoding="utf-8")
    for code in codes:
        folder = stage / code
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "tasks.csv").write_text(person_csv(by_unit.get(code, none)), encoding="utf-8")
    if assessment.response is not None and assessment.response.dissemination is not None:
        # For the release system: who receives each warning, through which channels.
        (stage / "dissemination.csv").write_text(
            person_csv(assessment.response.dissemination), encoding="utf-8"
        )


def _previous_alerts(assessment: Assessment, ledger: str | None) -> dict:
    """The issued message in force per hazard: hazard → (identifier, sent).

    Only messages the duty forecaster issued (``cityops issue``, kept in the ledger) are
    referenced: a draft of an earlier run was never sent, so nothing can update it. A hazard
    whose latest issued message is a Cancel has none; messages issued after this forecast's
    issue time are left alone (a rerun of an old forecast must not update a newer warning).
    """
    from cityops.ledger import latest_cap

    previous = {}
    for res in assessment.levels:
        row = latest_cap(ledger or None, res.hazard)
        if row and row["msg_type"] != "Cancel" and parse_utc(row["sent_utc"]) <= assessment.now:
            previous[res.hazard] = (row["identifier"], row["sent_utc"])
    return previous


def _write_cap(
    assessment: Assessment, stage: Path, opts: BriefOptions, previous: dict | None = None
) -> list[Path]:
    """``cap/cap_<hazard>.xml``: the run's proposals as CAP drafts (status Draft).

    A hazard with an issued message in force that this run no longer reaches anywhere (and did
    evaluate) gets a draft ``Cancel`` referencing that message: a proposal to lift it.
    """
    from cityops.cap import cancel_alert, write_alert, write_cap

    if previous is None:
        previous = _previous_alerts(assessment, opts.ledger) if opts.ledger != "" else {}
    files = write_cap(assessment, stage / "cap", lang=opts.lang, previous=previous)
    table = assessment.table
    live = set(table.loc[pd.to_numeric(table["level"], errors="coerce").fillna(0) >= 1, "hazard"])
    evaluated = set(table.loc[table["evaluated"].astype(bool), "hazard"])
    names = dict(zip(table["hazard"], table.get("hazard_name_zh", table["hazard"]), strict=True))
    for hazard, (identifier, sent) in sorted(previous.items()):
        if hazard in live or hazard not in evaluated:
            continue
        alert = cancel_alert(
            hazard,
            identifier,
            sent,
            code=str(assessment.jurisdiction.code),
            sent=assessment.issued,
            status="Draft",
            hazard_name_zh=str(names.get(hazard) or hazard),
            note="演练（Exercise）：草稿，未发布" if assessment.is_exercise else "草稿，未发布",
        )
        files.append(write_alert(alert, stage / "cap" / f"cap_{hazard}.xml"))
    return files


def _merge_ledger(assessment: Assessment, ledger: str | None) -> None:
    """Record the run's tasks in the ledger: new ones issued, vanished ones stood down."""
    from cityops.ledger import merge_run

    table = assessment.table
    evaluated = table[table["evaluated"].astype(bool)]
    assessed = [(r.town_code, r.hazard) for r in evaluated.itertuples()]
    # Banner-level and town-level tasks are keyed by the measure's hazard key: a key is
    # assessed when every hazard it names was (so a task absent from the run stands down).
    from cityops.response.plan import load_plan

    plan = load_plan(assessment.jurisdiction.path)
    done = set(evaluated["hazard"])
    owners = {str(assessment.jurisdiction.code), *evaluated["town_code"]}
    assessed += [
        (owner, m.hazard_key)
        for m in plan.measures
        if set(m.hazards) <= done or m.hazard_key == "all"
        for owner in owners
    ]
    # Tasks a signal in force calls for start issued; the others wait for the signal.
    from cityops.ledger import live_signals
    from cityops.response.planning import period_pairs

    status = "Exercise" if assessment.is_exercise else "Actual"
    live = [
        (s["town_code"], s["hazard"])
        for hazard in assessment.levels.hazards
        for s in live_signals(ledger or None, hazard, status=status)
    ]
    # Holidays and events are in force by the calendar: their tasks need no signal.
    live += period_pairs(assessment.table)
    counts = merge_run(
        ledger or None, assessment.response.tasks, run_time=assessment.now, assessed=assessed,
        live=live,
    )  # fmt: skip
    log.info("ledger: %s", {k: v for k, v in counts.items() if k != "task_ids"})
    # Every brief also applies the plan's follow-up rules (idempotent: `cityops tasks escalate`).
    from cityops.ledger import check_escalation

    escalated = check_escalation(ledger or None, assessment.now, rules=plan.timing["followup"])
    log.info("ledger: %d task(s) escalated", len(escalated))


@contextmanager
def _progress(codes: list[str]):
    """Report each finished briefing: a progress bar on a terminal, plain log lines otherwise.

    Yields ``report(i, code, error)``. Failures are always logged as a line too, so a
    scheduled run's log names them.
    """
    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=len(codes), desc="briefings", unit="unit", file=sys.stderr)

    def report(i: int, code: str, error: str | None) -> None:
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(code)
        if error:
            message = f"[{i}/{len(codes)}] {code} failed: {error}"
            if bar is not None:
                bar.write(message, file=sys.stderr)
            else:
                log.warning(message)
        elif bar is None:
            log.info("[%d/%d] %s briefing done", i, len(codes), code)

    try:
        yield report
    finally:
        if bar is not None:
            bar.close()


class Terminated(SystemExit):
    """The batch was told to stop (SIGTERM, SIGHUP): exit status 128 + the signal number.

    Before the new run is in place, its stage is removed and the previous run stays; once it
    is in place, it is also recorded in the ledger before the batch stops. (SIGINT does the
    same and raises :class:`KeyboardInterrupt`.)
    """

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(128 + int(signum))
        self.signum = int(signum)


# Stop signals are acted on at once, except while they are held (:func:`_signals_held`): the
# swap of the run into place and its ledger record are never cut in two.
_held = {"depth": 0, "signum": None}


def _stop(signum: int) -> BaseException:
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


def _on_stop_signal(signum, _frame) -> None:
    if _held["depth"]:
        _held["signum"] = _held["signum"] or signum
        return
    raise _stop(signum)


def _raise_if_stopped() -> None:
    """Act on a stop signal held so far (called where stopping is still clean)."""
    signum, _held["signum"] = _held["signum"], None
    if signum:
        raise _stop(signum)


@contextmanager
def _signals_held():
    """Hold stop signals during a short step; a held one stops the batch right after it."""
    _held["depth"] += 1
    try:
        yield
    finally:
        _held["depth"] -= 1
    if not _held["depth"]:
        _raise_if_stopped()


@contextmanager
def _stop_signals():
    """SIGTERM, SIGHUP and SIGINT stop the batch cleanly while it runs.

    Only signals left at their default action are taken over (not one a caller ignores, as
    ``nohup`` does, or handles itself), and only in the main thread (where Python runs signal
    handlers); the previous handlers are restored afterwards.
    """
    taken = {}
    if threading.current_thread() is threading.main_thread():
        for sig, default in (
            (signal.SIGTERM, signal.SIG_DFL),
            (signal.SIGHUP, signal.SIG_DFL),
            (signal.SIGINT, signal.default_int_handler),
        ):
            if signal.getsignal(sig) is default:
                taken[sig] = signal.signal(sig, _on_stop_signal)
    try:
        yield
    finally:
        for sig, previous in taken.items():
            signal.signal(sig, previous)
        _held.update(depth=0, signum=None)


def run_briefings(
    forecast: str | Path | Sequence[str | Path],
    out: str | Path,
    options: BriefOptions | None = None,
) -> Path:
    """Run the briefing batch and return the path of ``index.html``.

    Raises
    ------
    InputError
        Bad forecast or options (nothing is written).
    PartialFailure
        Some units failed; the run is in place with the failures listed.
    """

    opts = options or BriefOptions()
    forecast = [str(forecast)] if isinstance(forecast, str | Path) else [str(f) for f in forecast]
    # Absolute paths before any thread starts: notebooks run elsewhere.
    forecast = [str(p.resolve()) for p in expand_paths(forecast)]
    inputs, keeps = _input_paths(forecast, opts)
    lock_timeout(opts.lock_timeout)  # a bad value is refused before any work
    if opts.archive:
        _check_archive_root(Path(opts.archive))
    else:
        out = check_out_dir(out, "brief", inputs, keeps)  # before any work: nothing written
    started = time.monotonic()
    timings: dict[str, float] = {}
    check_kernel(opts.kernel)
    if opts.template is None:
        template_path()  # fail before any work when the template is missing
    # Kernels start (and import) in the background while this process assesses.
    hint = len(opts.towns.split(",")) if opts.towns not in ("", "all") else opts.jobs
    kernels = Kernels(opts.kernel, warm=min(max(1, opts.jobs), max(1, hint)))
    try:
        args = _assess_inputs(forecast, opts)
        assessment = assess(args.pop("forecast"), jurisdiction=opts.jurisdiction, **args)
        _check_fresh(assessment, opts)
        codes = _select_units(assessment, opts.towns)
        timings["assess_s"] = round(time.monotonic() - started, 2)
        if opts.archive:
            root = Path(opts.archive).expanduser().resolve()
            out = root / assessment.issued.strftime("%Y%m%dT%H%MZ")
            out = check_out_dir(out, "brief", inputs, keeps)
        with _stop_signals():
            with run_lock(_make_parent(out), opts.lock_timeout):
                if opts.archive:
                    _check_latest(out.parent)  # again under the lock, before publishing
                index = _build_run(
                    assessment, forecast, out, codes, opts, started, timings, kernels
                )
            if opts.archive:
                _point_latest(out)
    finally:
        kernels.close()
    return index


def _assess_inputs(forecast: list[str], opts: BriefOptions) -> dict:
    """The arguments of ``assess`` besides the jurisdiction, as the run makes them (kept in
    the run's state, so a notebook can check that its parameters name the same)."""
    return {
        "forecast": forecast,
        "rules": opts.rules,
        "now": opts.now,
        "report_probability": opts.report_probability,
        "mapping": str(Path(opts.mapping).resolve()) if opts.mapping else None,
        "observed": [str(Path(o).resolve()) for o in opts.observed.split(",") if o] or None,
        "history": str(Path(opts.history).resolve()) if opts.history else None,
    }


def _input_paths(forecast: list[str], opts: BriefOptions) -> tuple[list[str], list[str]]:
    """The files and folders the run reads, and those it keeps (the task ledger): the output
    must hold none of them."""
    from cityops.ledger import default_ledger_path

    inputs = [*forecast, opts.mapping, opts.history, *opts.observed.split(",")]
    inputs += [opts.template or "", opts.rules, opts.jurisdiction]
    keeps = [str(default_ledger_path(opts.ledger or None))] if opts.ledger != "" else []
    return inputs, keeps


def _make_parent(out: Path) -> Path:
    """Create the folder ``out`` goes in (exit status 2 when it cannot be); ``out``."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"{out}: cannot be written ({err.strerror or err})") from None
    return out


def _check_archive_root(root: Path) -> None:
    """``--archive ROOT``: a folder (or a new one) cityops may write, with no real ``latest``."""
    root = root.expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise InputError(f"{root}: --archive: exists and is a file; expected an archive folder")
    check_writable_place(root, into=True)
    if root.is_dir():
        _check_latest(root)


def _check_latest(root: Path) -> None:
    """``ROOT/latest`` must be absent or the symbolic link cityops keeps there."""
    latest = root / "latest"
    if latest.exists() and not latest.is_symlink():
        what = "folder" if latest.is_dir() else "file"
        raise InputError(
            f"{latest}: is a real {what}, not the symbolic link cityops keeps to the newest "
            "run; move it away (cityops never replaces it)"
        )


def _point_latest(out: Path) -> None:
    """``ROOT/latest`` -> the newest complete run, replaced atomically (a link only)."""
    root = out.parent
    tmp = root / f".latest.{os.getpid()}"
    try:
        _check_latest(root)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(out.name)
        os.replace(tmp, root / "latest")
    except (OSError, InputError) as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        reason = err if isinstance(err, InputError) else f"{root / 'latest'}: {err.strerror or err}"
        raise InputError(f"{reason} (the run {out} is in place; latest not updated)") from None


def _write_run_files(
    assessment, stage: Path, codes, opts: BriefOptions, previous: dict
) -> tuple[bytes, bytes]:
    """``levels.nc`` and the town tables, the tasks, the CAP drafts (``previous``: the issued
    messages in force, read from the ledger) and the overview maps; the maps' PNG bytes."""
    from cityops.report.index import overview_figures

    write_assessment(assessment, stage)
    _write_tasks(assessment, stage, codes)
    _write_cap(assessment, stage, opts, previous)
    return overview_figures(assessment, stage, lang=opts.lang)


def _build_run(
    assessment, forecast, out: Path, codes, opts: BriefOptions, started, timings, kernels
):
    """Build the run beside ``out`` and move it into place (see :func:`run_briefings`)."""
    from cityops.report.index import write_index

    _clean_stale(out)
    check_replaceable(out, "brief")  # again, under the run lock
    stage = make_stage(out)
    published = False
    try:
        # What the notebooks read first; the rest of the run's files (levels, tasks, CAP,
        # the overview maps) are written beside them while they run (the kernels are other
        # processes: this one mostly waits). A failure there fails the run as before.
        # The ledger is read here, before any notebook runs: an unusable one stops the run
        # before any work shows.
        previous = _previous_alerts(assessment, opts.ledger) if opts.ledger != "" else {}
        write_run_state(assessment, stage / STATE_FOLDER, inputs=_assess_inputs(forecast, opts))
        side = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cityops-run-files")
        run_files = side.submit(_write_run_files, assessment, stage, codes, opts, previous)
        failures: dict[str, str] = {}
        t0 = time.monotonic()
        pool = ThreadPoolExecutor(max_workers=max(1, opts.jobs))
        try:
            with _progress(codes) as bar:
                futures = {
                    pool.submit(_run_unit, code, forecast, stage, opts, out, kernels): code
                    for code in codes
                }
                for i, fut in enumerate(as_completed(futures), 1):
                    code, error = futures[fut], fut.result()
                    if error:
                        failures[code] = error
                    bar(i, code, error)
        finally:
            # Stopped or failed: no further notebook starts; the running ones (at most --jobs)
            # end before the stage is removed.
            pool.shutdown(wait=True, cancel_futures=True)
            side.shutdown(wait=True)
        figures = run_files.result()  # raises what writing them raised
        timings["briefings_s"] = round(time.monotonic() - t0, 2)
        write_index(
            assessment, stage, codes=codes, failures=failures, lang=opts.lang, figures=figures
        )
        run = {
            "cityops_version": __version__,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "inputs": forecast,
            "issued": assessment.forecast.attrs["issued"],
            "reference_time": assessment.now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "jurisdiction": assessment.jurisdiction.name,
            "ruleset": assessment.levels.table.ruleset,
            "ruleset_version": assessment.levels.table.version,
            "extreme_ruleset": (
                assessment.extreme.table.ruleset if assessment.extreme is not None else None
            ),
            "options": asdict(opts),
            "units": codes,
            "failures": failures,
            "timings": {**timings, "total_s": round(time.monotonic() - started, 2)},
            "finished_utc": pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        write_text(stage / "run.json", json.dumps(run, ensure_ascii=False, indent=1))
        # The swap and the ledger record are one step for stop signals: a signal before the
        # new run is in place keeps the earlier run; after it, the run is recorded first.
        with _signals_held():
            publish_folder(stage, out, "brief", checkpoint=_raise_if_stopped)
            published = True
            try:
                if opts.ledger != "" and assessment.response is not None:
                    _merge_ledger(assessment, opts.ledger)
            except InputError as err:
                raise InputError(
                    f"{err} (the run {out} is in place; its tasks and CAP identifiers are not "
                    "recorded: run the same brief again once the ledger is usable)"
                ) from None
    except OSError as err:
        shutil.rmtree(stage, ignore_errors=True)
        kept = "the run is in place" if published else f"{out} is unchanged"
        raise CityopsError(f"brief: cannot write the run ({err}); {kept}") from err
    except BaseException as err:
        shutil.rmtree(stage, ignore_errors=True)
        if isinstance(err, Terminated | KeyboardInterrupt):
            kept = "the new run is in place" if published else "the previous run stays in place"
            log.error("brief stopped by a signal: %s (%s)", kept, out)
        raise
    index = out / "index.html"
    if failures:
        raise PartialFailure(
            f"{len(failures)} of {len(codes)} briefings failed ({', '.join(failures)}); see {index}",
            failures,
        )
    return index
