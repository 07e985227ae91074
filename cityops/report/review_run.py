"""``cityops review``: compute the review once, file it, render the notebook, keep the case.

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
from dataclasses import asdict
from pathlib import Path

from cityops.fsio import (
    check_out_dir,
    clean_stale,
    lock_timeout,
    make_stage,
    publish_folder,
    run_lock,
)
from cityops.geo.jurisdiction import load_jurisdiction
from cityops.review.run import ReviewInputs, run_review, write_review
from cityops.timeutil import iso_utc

__all__ = ["default_case_id", "review_template_path", "run_review_report"]

log = logging.getLogger("cityops")


def review_template_path() -> Path:
    """The review template ``post_event_review.ipynb``, found as the briefing's
    (:func:`cityops.report.batch.template_path`: ``$CITYOPS_TEMPLATES``, ``./templates``, then
    the templates shipped with cityops)."""
    from cityops.report.batch import template_path

    return template_path("post_event_review.ipynb")


def default_case_id(review) -> str:
    """``<jurisdiction code>-<first day YYYYMMDD>[-exercise]``: built from codes, never free text."""
    code = load_jurisdiction(review.inputs.jurisdiction).code
    suffix = "-exercise" if review.is_exercise else ""
    return f"{code}-{review.start:%Y%m%d}{suffix}"


def _absolute(value):
    if value is None or value == "":
        return ""
    items = value.split(",") if isinstance(value, str) else list(value)
    return ",".join(str(Path(p.strip()).resolve()) for p in map(str, items) if p.strip())


def _parameters(inputs: ReviewInputs, lang: str, library: Path) -> dict:
    """Template parameters: values only (papermill injects them as literals), absolute paths."""
    params = {k: ("" if v is None else v) for k, v in asdict(inputs).items()}
    for name in ("forecast", "observed", "ledger", "hotline", "alarms", "incidents", "heating",
                 "findings"):  # fmt: skip
        params[name] = _absolute(params[name])
    params["lang"] = lang
    params["case_library"] = str(library.resolve())
    return params


def _input_paths(inputs: ReviewInputs) -> list[str]:
    """Every file or folder the review reads (the output must hold none of them)."""
    paths = []
    for name in ("forecast", "observed", "ledger", "hotline", "alarms", "incidents", "heating",
                 "findings", "rules", "jurisdiction"):  # fmt: skip
        value = getattr(inputs, name)
        items = value.split(",") if isinstance(value, str) else list(value or [])
        paths += [str(p).strip() for p in items if str(p).strip()]
    return paths


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

    Raises
    ------
    InputError
        Bad inputs, or an output folder that is not an earlier review run, holds an input or
        cannot be written, or a run lock not had within ``lock_timeout_s`` (nothing is written).
    """
    from cityops.report.batch import check_kernel
    from cityops.review.cases import _check_case_id, case_library_dir, save_case

    if case_id is not None:
        _check_case_id(case_id)  # before any work: a bad id writes nothing (exit status 2)
    library = Path(case_library) if case_library else case_library_dir(inputs.jurisdiction)
    # The case library is kept across reviews (created when the first case is saved).
    out = check_out_dir(out, "review", _input_paths(inputs), keeps=[library] if save else [])
    lock_timeout(lock_timeout_s)  # a bad value is refused before any work
    check_kernel(kernel)
    review_template_path()  # fail before any work when the template is missing
    review = run_review(inputs)
    with run_lock(out, lock_timeout_s):
        clean_stale(out)
        _build(review, inputs, out, lang=lang, kernel=kernel, timeout=timeout, library=library)
    if save:
        cid = case_id or default_case_id(review)
        overall = review.kpis["overall"]
        save_case(
            library,
            cid,
            review.findings,
            meta={
                "title": f"{load_jurisdiction(inputs.jurisdiction).name_zh}复盘",
                "event": ",".join(review.observed_events()),
                "start_utc": iso_utc(review.start),
                "end_utc": iso_utc(review.end),
                "hazards": review.observed_events(),
                "exercise": review.is_exercise,
                "window": str(inputs.window),
                "output": str(out),
                "kpis": {
                    k: overall.get(k)
                    for k in ("hits", "misses", "false_alarms", "pod", "far", "csi", "ets")
                },
            },
        )
        log.info("case %s saved in %s", cid, library)
    return out / "review.html"


def _build(review, inputs: ReviewInputs, out: Path, *, lang, kernel, timeout, library) -> None:
    """File the review in a stage beside ``out``, run its notebook, move it into place."""
    import papermill as pm

    from cityops.report.batch import _strip_execution_metadata, _to_html

    template = review_template_path()
    stage = make_stage(out)
    try:
        write_review(review, stage)
        notebook = stage / "review.ipynb"
        pm.execute_notebook(
            str(template),
            str(notebook),
            parameters=_parameters(inputs, lang, library),
            kernel_name=kernel,
            cwd=str(template.parent),
            progress_bar=False,
            execution_timeout=timeout,
            start_timeout=120,
        )
        _strip_execution_metadata(notebook)
        _to_html(notebook, stage / "review.html", lang=lang)
        publish_folder(stage, out, "review")
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
