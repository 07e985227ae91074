"""``cityops review``: compute the review once, file it, render the notebook, keep the case.

Output (interfaces.md §6): ``DIR/review.ipynb``, ``DIR/review.html``, ``DIR/verification.csv``,
``DIR/kpis.json`` and the other tables of :func:`cityops.review.run.write_review`. The folder is
built beside ``DIR`` and renamed into place. The findings are saved to the case library (one
JSON per case, replaced on a rerun of the same case).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

from cityops.errors import InputError
from cityops.geo.jurisdiction import load_jurisdiction
from cityops.review.run import ReviewInputs, run_review, write_review
from cityops.timeutil import iso_utc

__all__ = ["default_case_id", "review_template_path", "run_review_report"]

log = logging.getLogger("cityops")


def review_template_path() -> Path:
    """The review template (``templates/post_event_review.ipynb`` beside the package)."""
    path = Path(__file__).resolve().parents[2] / "templates" / "post_event_review.ipynb"
    if not path.exists():
        raise InputError(f"{path}: review template not found")
    return path


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
) -> Path:
    """Run the whole review into ``out``; the path of ``review.html``.

    Raises
    ------
    InputError
        Bad inputs (nothing is written).
    """
    import papermill as pm

    from cityops.report.batch import _strip_execution_metadata, _to_html, check_kernel
    from cityops.review.cases import _check_case_id, case_library_dir, save_case

    if case_id is not None:
        _check_case_id(case_id)  # before any work: a bad id writes nothing (exit status 2)
    check_kernel(kernel)
    template = review_template_path()
    review = run_review(inputs)
    library = Path(case_library) if case_library else case_library_dir(inputs.jurisdiction)
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
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
        if out.exists():
            old = out.parent / f".{out.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            stage.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            stage.rename(out)
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
