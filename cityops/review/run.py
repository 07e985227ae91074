"""One post-event review: warnings against observations, the response, the safe-operation index.

:func:`run_review` gathers every part of the review (interfaces.md §6) into a :class:`Review`;
:func:`write_review` writes its files (``verification.csv``, ``kpis.json`` and the tables the
meeting reads). The review notebook and ``cityops review`` both call these, so the numbers in
the rendered notebook and in the files are the same computation.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cityops.errors import InputError
from cityops.fsio import write_text
from cityops.geo.jurisdiction import Jurisdiction, load_jurisdiction
from cityops.ingest import expand_paths
from cityops.review.observations import observed_levels
from cityops.review.verification import CASE_COLUMNS, kpis, scores_table, verify
from cityops.review.warnings import load_warnings
from cityops.review.windows import parse_window
from cityops.text import person_csv
from cityops.timeutil import iso_utc, parse_utc

__all__ = [
    "REVIEW_PARAMETERS",
    "Review",
    "ReviewInputs",
    "parameters_to_inputs",
    "run_review",
    "write_review",
]

STATUS_EXERCISE = "Exercise"
STATUS_ACTUAL = "Actual"


#: The record tables and files a review may read besides the forecast and observations.
RECORD_INPUTS = ("ledger", "hotline", "alarms", "incidents", "heating", "findings")


@dataclass(frozen=True)
class ReviewInputs:
    """What a review reads, parsed and checked once when it is made (the command boundary).

    Give the values as a command line or a notebook has them (strings, comma-separated path
    lists); they are held typed, so the review never reads them again: ``forecast`` and
    ``observed`` as tuples of :class:`~pathlib.Path` (a folder or a glob pattern stays one
    entry, expanded by the reader), ``jurisdiction`` as the loaded
    :class:`~cityops.geo.jurisdiction.Jurisdiction`, ``start``, ``end`` and ``now`` as naive
    UTC :class:`pandas.Timestamp` (:func:`cityops.timeutil.parse_utc`), the record tables as
    :class:`~pathlib.Path` or None, and ``window`` checked (its length in ``window_length``).
    Values already of those types are taken as they are.

    ``forecast``: forecast files, ``brief`` run folders or an archive root, CAP files or
    folders, or a CSV log of signals issued. ``observed``: gridded analyses or station
    observations. The record tables and ``ledger`` are optional; a part without its data is
    left out of the review and says so.

    Raises
    ------
    InputError
        No forecast or observed input, an unknown jurisdiction, a bad window or time; one line
        naming the input and what was expected.
    """

    forecast: tuple[Path, ...]
    observed: tuple[Path, ...]
    jurisdiction: Jurisdiction = "ejin-horo"  # type: ignore[assignment]  # loaded on creation
    rules: str = "national"
    window: str = "24h"
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    ledger: Path | None = None
    hotline: Path | None = None
    alarms: Path | None = None
    incidents: Path | None = None
    heating: Path | None = None
    findings: Path | None = None
    exercise: bool = False
    now: pd.Timestamp | None = None  # "as of" time of the response figures (default: review end)
    #: The jurisdiction as given (name or folder): where its plan and index configuration are
    #: looked up, and what the review notebook is given.
    jurisdiction_ref: str = field(init=False)
    #: ``window`` as a duration (:func:`cityops.review.windows.parse_window`).
    window_length: pd.Timedelta = field(init=False)

    def __post_init__(self) -> None:
        def put(name: str, value) -> None:
            object.__setattr__(self, name, value)

        forecast, observed = _paths(self.forecast), _paths(self.observed)
        if not forecast:
            raise InputError(
                "--forecast: give forecast files, brief runs, CAP files or a signal log"
            )
        if not observed:
            raise InputError("--observed: give gridded analyses or station observations")
        put("forecast", tuple(Path(p) for p in forecast))
        put("observed", tuple(Path(p) for p in observed))
        juris = self.jurisdiction
        if isinstance(juris, Jurisdiction):
            put("jurisdiction_ref", str(juris.path))
        else:
            ref = os.fspath(juris) if isinstance(juris, os.PathLike) else str(juris or "ejin-horo")
            put("jurisdiction_ref", ref)
            put("jurisdiction", load_jurisdiction(juris or "ejin-horo"))
        put("rules", str(self.rules or "national"))
        put("window", str(self.window or "24h"))
        put("window_length", parse_window(self.window))
        for name, what in (("start", "review start"), ("end", "review end"), ("now", "now")):
            value = getattr(self, name)
            if value is None or (isinstance(value, str) and not value.strip()):
                put(name, None)
            elif not isinstance(value, pd.Timestamp) or value.tzinfo is not None:
                put(name, parse_utc(value, what=what))
        for name in RECORD_INPUTS:
            value = getattr(self, name)
            put(name, Path(value) if value not in (None, "") else None)
        put("exercise", bool(self.exercise))


@dataclass
class Review:
    """Everything one review found; the notebook shows it, :func:`write_review` files it."""

    inputs: ReviewInputs
    status: str
    start: pd.Timestamp
    end: pd.Timestamp
    warnings: pd.DataFrame
    observed: pd.DataFrame
    cases: pd.DataFrame
    scores: pd.DataFrame
    kpis: dict
    timeline: pd.DataFrame | None = None
    response: dict | None = None
    safety: pd.DataFrame | None = None
    findings: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)
    #: Incident report clocks of incidents in the review period (ledger), with overdue flags.
    report_clocks: pd.DataFrame | None = None

    @property
    def is_exercise(self) -> bool:
        return self.status == STATUS_EXERCISE

    def observed_events(self) -> list[str]:
        """Hazards observed at level ≥ 1 somewhere in the review, sorted."""
        obs = self.observed[self.observed["evaluated"].astype(bool)]
        return sorted(set(obs.loc[obs["observed_level"].astype(int) >= 1, "hazard"]))


def _paths(value) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(p).strip() for p in items if str(p).strip()]


def _is_scenario(paths: list[str]) -> bool:
    """Whether any input is a cityops scenario file (then the review is an exercise).

    Folders (brief run folders, archive roots, CAP folders) are valid review inputs: they are
    read by :func:`cityops.review.warnings.load_warnings`; only forecast files are looked at
    here.
    """
    import xarray as xr

    for path in expand_paths(paths, allow_dirs=True):
        if Path(path).suffix.lower() not in (".nc", ".nc4", ".netcdf"):
            continue
        with contextlib.suppress(Exception), xr.open_dataset(path) as ds:
            if ds.attrs.get("cityops_scenario") or ds.attrs.get("status") == STATUS_EXERCISE:
                return True
    return False


def _period(observed: pd.DataFrame) -> tuple[pd.Timestamp, pd.Timestamp]:
    if observed.empty:
        raise InputError("observed: no review window could be formed from the observations")
    start = observed["window_start_utc"].min()
    end = observed["window_end_utc"].max()
    return pd.Timestamp(start), pd.Timestamp(end)


def run_review(inputs: ReviewInputs) -> Review:
    """Compute the whole review for ``inputs`` (see :class:`ReviewInputs`).

    Raises
    ------
    InputError
        A missing or unreadable input, with one line naming it.
    """
    from cityops.review import cases as case_lib
    from cityops.review import response, safety

    forecast = [str(p) for p in inputs.forecast]
    observed_paths = [str(p) for p in inputs.observed]
    exercise = inputs.exercise or _is_scenario(forecast + observed_paths)
    observed = observed_levels(
        observed_paths,
        jurisdiction=inputs.jurisdiction,
        rules=inputs.rules,
        window=inputs.window_length,
        start=inputs.start,
        end=inputs.end,
    )
    start, end = _period(observed)
    warnings = load_warnings(
        forecast,
        jurisdiction=inputs.jurisdiction,
        rules=inputs.rules,
        window=inputs.window_length,
        start=start,
        end=end,
    )
    cases = verify(warnings, observed, jurisdiction=inputs.jurisdiction)
    figures = kpis(cases)
    notes: list[str] = []
    timeline = response_figures = clocks = None
    now = inputs.now if inputs.now is not None else end
    if inputs.ledger:
        from cityops.ledger import connect

        connect(inputs.ledger, create=False).close()  # refused by name; nothing is created
        timeline = response.task_timeline(inputs.ledger, start=start, end=end, now=now)
        response_figures = response.response_kpis(
            timeline, incidents=inputs.incidents or None, heating=inputs.heating or None
        )
        clocks = response.report_clock_table(inputs.ledger, start=start, end=end, now=now)
        response_figures["report_clocks"] = response.report_clock_figures(clocks)
        figures["response"] = response_figures
    else:
        notes.append("no_ledger")
    index = None
    if any((inputs.hotline, inputs.alarms, inputs.incidents, timeline is not None)):
        index = safety.safety_index(
            hotline=inputs.hotline or None,
            alarms=inputs.alarms or None,
            incidents=inputs.incidents or None,
            tasks=timeline,
            cases=cases,
            config=inputs.jurisdiction_ref,
            start=start,
            end=end,
        )
    suggested = case_lib.suggest_findings(
        cases, timeline, kpis=response_figures, rules=inputs.rules
    )
    findings = suggested
    if inputs.findings:
        meeting = case_lib.read_findings(inputs.findings)
        findings = pd.concat([meeting, suggested], ignore_index=True)
    status = STATUS_EXERCISE if exercise else STATUS_ACTUAL
    figures["status"] = status
    figures["period"] = {"start_utc": iso_utc(start), "end_utc": iso_utc(end)}
    figures["window"] = str(inputs.window)
    return Review(
        inputs=inputs,
        status=status,
        start=start,
        end=end,
        warnings=warnings,
        observed=observed,
        cases=cases,
        scores=scores_table(cases, by="hazard"),
        kpis=figures,
        timeline=timeline,
        response=response_figures,
        safety=index,
        findings=findings,
        notes=notes,
        report_clocks=clocks,
    )


# --------------------------------------------------------------------------- files
def _csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Times as ISO 8601 UTC with ``Z``; booleans as true/false (as town_hazards.csv)."""
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = [iso_utc(v) for v in out[col]]
        elif out[col].dtype == bool:
            out[col] = out[col].map({True: "true", False: "false"})
    return out


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, pd.Timestamp):
        return iso_utc(value)
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_review(review: Review, out_dir: str | os.PathLike) -> list[Path]:
    """Write the review's files into ``out_dir`` (each atomically); their paths.

    ``verification.csv`` (interfaces §6 columns first, then ``status`` and the extras),
    ``kpis.json``, ``scores.csv``, ``warnings.csv``, ``observed.csv``, ``findings.csv`` and,
    when there is data for them, ``tasks_review.csv`` and ``safety_index.csv``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cases = review.cases.copy()
    cases.insert(len(CASE_COLUMNS), "status", review.status)
    tables = {
        "verification.csv": cases,
        "scores.csv": review.scores,
        "warnings.csv": review.warnings,
        "observed.csv": review.observed,
        "findings.csv": review.findings,
    }
    if review.timeline is not None:
        tables["tasks_review.csv"] = review.timeline
    if review.safety is not None:
        tables["safety_index.csv"] = review.safety
    written = []
    for name, frame in tables.items():
        path = out / name
        write_text(path, person_csv(_csv_frame(frame)))
        written.append(path)
    path = out / "kpis.json"
    write_text(
        path, json.dumps(_json_safe(review.kpis), ensure_ascii=False, indent=1, sort_keys=True)
    )
    written.append(path)
    return written


# --------------------------------------------------------------------------- notebook parameters
#: The review template's parameters and their types (the template's parameters cell).
REVIEW_PARAMETERS: dict[str, type] = {
    "forecast": str,
    "observed": str,
    "jurisdiction": str,
    "rules": str,
    "window": str,
    "start": str,
    "end": str,
    "ledger": str,
    "hotline": str,
    "alarms": str,
    "incidents": str,
    "heating": str,
    "findings": str,
    "exercise": bool,
    "now": str,
    "lang": str,
    "case_library": str,
}
_PATH_PARAMETERS = ("ledger", "hotline", "alarms", "incidents", "heating", "findings")


def parameters_to_inputs(**params) -> tuple[ReviewInputs, str, Path]:
    """Check the review template's parameters; the inputs, language and case-library folder.

    Unknown names, wrong types, missing files, bad times, windows and languages give one
    readable :class:`~cityops.errors.InputError` in the template's second cell. Each value is
    parsed once, here (the times with the parameter's name in the message).
    """
    from cityops.i18n import check_lang
    from cityops.review.cases import case_library_dir

    unknown = sorted(set(params) - set(REVIEW_PARAMETERS))
    if unknown:
        raise InputError(
            f"unknown parameter(s) {', '.join(unknown)}; expected {', '.join(REVIEW_PARAMETERS)}"
        )
    values: dict[str, Any] = {}
    for name, kind in REVIEW_PARAMETERS.items():
        value = params.get(name, "" if kind is str else False)
        if value is None:
            value = "" if kind is str else False
        if not isinstance(value, kind):
            raise InputError(f"parameter {name}: expected {kind.__name__}, got {value!r}")
        values[name] = value
    for name in ("forecast", "observed"):
        if not values[name]:
            raise InputError(f"parameter {name}: at least one file or folder is required")
        for path in _paths(values[name]):
            if not any(ch in path for ch in "*?[") and not Path(path).exists():
                raise InputError(f"parameter {name}: {path} not found")
    for name in _PATH_PARAMETERS:
        if values[name] and not Path(values[name]).exists():
            raise InputError(f"parameter {name}: {values[name]} not found")
    times = {
        name: parse_utc(values[name], what=f"parameter {name}") if values[name] else None
        for name in ("start", "end", "now")
    }
    inputs = ReviewInputs(
        forecast=values["forecast"],
        observed=values["observed"],
        jurisdiction=values["jurisdiction"] or "ejin-horo",
        rules=values["rules"] or "national",
        window=values["window"] or "24h",
        exercise=values["exercise"],
        **times,
        **{name: values[name] or None for name in _PATH_PARAMETERS},
    )
    lang = check_lang(values["lang"] or "zh")
    library = (
        Path(values["case_library"])
        if values["case_library"]
        else case_library_dir(inputs.jurisdiction.path)
    )
    return inputs, lang, library
