"""``cityops review``, the workflow: compute the review once, file it, render it, keep the case.

Composes the rooms: the inputs parsed once (:class:`cityops.review.run.ReviewInputs`), the
review computed once (:func:`cityops.review.run.run_review`) and filed
(:func:`cityops.review.run.write_review`), its notebook rendered from the same inputs
(:mod:`cityops.report.review_run`), the findings saved to the case library
(:mod:`cityops.review.cases`).

Output (interfaces.md §6): ``DIR/review.ipynb``, ``DIR/review.html``, ``DIR/verification.csv``,
``DIR/kpis.json`` and the other tables of :func:`cityops.review.run.write_review`. The folder is
built beside ``DIR`` and renamed into place (:mod:`cityops.fsio`): an existing ``DIR`` is
replaced only when it is an earlier ``review`` run, never when it holds an input (an event
folder with the station files and the minutes is refused, exit status 2). The findings are
saved to the case library (one JSON per case, replaced on a rerun of the same case).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from cityops.fsio import (
    check_out_dir,
    clean_stale,
    lock_timeout,
    make_stage,
    publish_folder,
    run_lock,
)
from cityops.review.run import RECORD_INPUTS, Review, ReviewInputs, run_review, write_review
from cityops.timeutil import iso_utc

__all__ = ["default_case_id", "run_review_report"]

log = logging.getLogger("cityops")

#: The overall scores kept with a case in the library.
CASE_KPIS = ("hits", "misses", "false_alarms", "pod", "far", "csi", "ets")


def default_case_id(review: Review) -> str:
    """``<jurisdiction code>-<first day YYYYMMDD>[-exercise]``: built from codes, never free text."""
    suffix = "-exercise" if review.is_exercise else ""
    return f"{review.inputs.jurisdiction.code}-{review.start:%Y%m%d}{suffix}"


def _input_paths(inputs: ReviewInputs) -> list[str]:
    """Every file or folder the review reads (the output must hold none of them)."""
    paths = [str(p) for p in (*inputs.forecast, *inputs.observed)]
    paths += [str(v) for v in (getattr(inputs, name) for name in RECORD_INPUTS) if v is not None]
    return [*paths, inputs.rules, inputs.jurisdiction_ref]


def run_review_report(
    inputs: ReviewInputs,
    out: str | Path,
    *,
    lang: str = "zh",
    kernel: str = "cityops",
    timeout: int = 900,
    case_id: str | None = None,
    case_library: str | Path | None = None,
    save: bool = True,
    lock_timeout_s: float | None = None,
) -> Path:
    """Run the whole review into ``out``; the path of ``review.html``.

    Parameters
    ----------
    inputs : ReviewInputs
        What the review reads, already parsed and checked.
    out : path
        The output folder: new, empty or an earlier review run (replaced atomically).
    lang, kernel, timeout
        The notebook's language, Jupyter kernel and per-cell timeout (s).
    case_id : str, optional
        The case's id in the library (default :func:`default_case_id`).
    case_library : path, optional
        The case library (default the jurisdiction's ``review/cases``).
    save : bool
        Whether to save the findings to the case library.
    lock_timeout_s : float, optional
        How long to wait for the output folder's run lock.

    Raises
    ------
    InputError
        An output folder that is not an earlier review run, holds an input or cannot be
        written, a bad case id, or a run lock not had within ``lock_timeout_s`` (nothing is
        written); an input the review cannot read.
    """
    from cityops.report.review_run import check_review_notebook, render_review
    from cityops.review.cases import _check_case_id, case_library_dir, save_case

    if case_id is not None:
        _check_case_id(case_id)  # before any work: a bad id writes nothing (exit status 2)
    library = Path(case_library) if case_library else case_library_dir(inputs.jurisdiction_ref)
    # The case library is kept across reviews (created when the first case is saved).
    out = check_out_dir(out, "review", _input_paths(inputs), keeps=[library] if save else [])
    lock_timeout(lock_timeout_s)  # a bad value is refused before any work
    check_review_notebook(kernel)  # fail before any work: no kernel or no template
    review = run_review(inputs)
    with run_lock(out, lock_timeout_s):
        clean_stale(out)
        stage = make_stage(out)
        try:
            write_review(review, stage)
            render_review(inputs, stage, lang=lang, kernel=kernel, timeout=timeout,
                          library=library)  # fmt: skip
            publish_folder(stage, out, "review")
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
    if save:
        cid = case_id or default_case_id(review)
        overall = review.kpis["overall"]
        save_case(
            library,
            cid,
            review.findings,
            meta={
                "title": f"{inputs.jurisdiction.name_zh}复盘",
                "event": ",".join(review.observed_events()),
                "start_utc": iso_utc(review.start),
                "end_utc": iso_utc(review.end),
                "hazards": review.observed_events(),
                "exercise": review.is_exercise,
                "window": str(inputs.window),
                "output": str(out),
                "kpis": {k: overall.get(k) for k in CASE_KPIS},
            },
        )
        log.info("case %s saved in %s", cid, library)
    return out / "review.html"
