"""The review notebook: run ``post_event_review.ipynb`` for a review's inputs and render it.

Only the notebook part of ``cityops review``; the workflow (output folder, lock, the review
itself, its files and the case library) is :mod:`cityops.reviewing`.
"""

from __future__ import annotations

from pathlib import Path

from cityops.review.run import RECORD_INPUTS, ReviewInputs
from cityops.timeutil import iso_utc

__all__ = ["check_review_notebook", "render_review", "review_parameters", "review_template_path"]


def review_template_path() -> Path:
    """The review template ``post_event_review.ipynb``, found as the briefing's
    (:func:`cityops.report.runner.template_path`: ``$CITYOPS_TEMPLATES``, ``./templates``, then
    the templates shipped with cityops)."""
    from cityops.report.runner import template_path

    return template_path("post_event_review.ipynb")


def check_review_notebook(kernel: str) -> Path:
    """Fail before any work when the kernel or the template is missing; the template."""
    from cityops.report.runner import check_kernel

    check_kernel(kernel)
    return review_template_path()


def _absolute(paths) -> str:
    return ",".join(str(Path(p).resolve()) for p in paths)


def review_parameters(inputs: ReviewInputs, lang: str, library: Path) -> dict:
    """Template parameters: values only (papermill injects them as literals), absolute paths,
    times as ISO 8601 UTC; the jurisdiction as the folder it was loaded from."""
    params: dict = {
        "forecast": _absolute(inputs.forecast),
        "observed": _absolute(inputs.observed),
        "jurisdiction": str(inputs.jurisdiction.path),
        "rules": inputs.rules,
        "window": inputs.window,
        "start": iso_utc(inputs.start),
        "end": iso_utc(inputs.end),
        "exercise": inputs.exercise,
        "now": iso_utc(inputs.now),
    }
    for name in RECORD_INPUTS:
        value = getattr(inputs, name)
        params[name] = "" if value is None else _absolute([value])
    params["lang"] = lang
    params["case_library"] = str(Path(library).resolve())
    return params


def render_review(
    inputs: ReviewInputs,
    folder: Path,
    *,
    lang: str = "zh",
    kernel: str = "cityops",
    timeout: int = 900,
    library: Path,
) -> Path:
    """Execute the review template into ``folder/review.ipynb`` and render
    ``folder/review.html``; the HTML's path."""
    import papermill as pm

    from cityops.report.runner import strip_execution_metadata, to_html

    template = review_template_path()
    notebook = Path(folder) / "review.ipynb"
    pm.execute_notebook(
        str(template),
        str(notebook),
        parameters=review_parameters(inputs, lang, library),
        kernel_name=kernel,
        cwd=str(template.parent),
        progress_bar=False,
        execution_timeout=timeout,
        start_timeout=120,
    )
    strip_execution_metadata(notebook)
    html = Path(folder) / "review.html"
    to_html(notebook, html, lang=lang)
    return html
