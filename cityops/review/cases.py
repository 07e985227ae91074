"""The case library 案例库: structured findings of each post-event review (plan item 10).

A *finding* is one lesson with an owner and a concrete place to act on:

=================  ===========================================================================
column             meaning
=================  ===========================================================================
``finding_id``     id unique within a case (``miss.rainstorm.level4``, ``M01``, ...)
``category``       ``hazard_factors`` 致灾因子, ``disaster_process`` 成灾过程, ``incident``
                   突发事件, ``measure`` 防御措施 (the review topics of 002:1020)
``finding``        what was found (free text)
``owner``          who acts on it (a unit of the plan)
``target``         which plan row or threshold to change, as ``file#fragment``:
                   ``plan/measures.yaml#<hazard>.<measure>`` (relative to the jurisdiction
                   folder), ``rules/tables/<ruleset>.yaml#<hazard>.level<N>`` (relative to the
                   package), ``plan/special_plans.yaml#<plan id>``
``proposed_change``  what to change
``status``         ``proposed`` → ``accepted`` → ``done``
``origin``         ``suggested`` (:func:`suggest_findings`) or ``meeting`` (:func:`read_findings`)
``hazard``         hazard id, when the finding concerns one
``towns``          unit codes concerned ("," separated)
``evidence``       the cases or tasks behind a suggested finding (";" separated keys)
=================  ===========================================================================

Cases are saved under ``data/jurisdictions/<name>/review/cases/`` (:func:`case_library_dir`)
as ``<case_id>.json`` with an index ``cases.csv`` rebuilt from the JSON files on every save;
both are written to a temporary file and renamed into place, and saving a case id again
replaces it. Category, status and origin labels (zh/en) and the suggested-finding wording are
in ``cityops/data/review_cases.yaml``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from functools import cache
from os import PathLike
from pathlib import Path
from typing import Any

import pandas as pd

from cityops.errors import InputError
from cityops.fsio import write_text
from cityops.resources import load_yaml, package_data
from cityops.response.plan import Plan, load_plan
from cityops.rules.table import level_names, load_rule_table
from cityops.text import person_csv
from cityops.timeutil import format_local, iso_utc

__all__ = [
    "CATEGORIES",
    "FINDING_COLUMNS",
    "INDEX_COLUMNS",
    "ORIGINS",
    "STATUSES",
    "case_library_dir",
    "category_label",
    "list_cases",
    "load_case",
    "read_findings",
    "save_case",
    "status_label",
    "suggest_findings",
]

CATEGORIES = ("hazard_factors", "disaster_process", "incident", "measure")
STATUSES = ("proposed", "accepted", "done")
ORIGINS = ("suggested", "meeting")
FINDING_COLUMNS = (
    "finding_id",
    "category",
    "finding",
    "owner",
    "target",
    "proposed_change",
    "status",
    "origin",
    "hazard",
    "towns",
    "evidence",
)
INDEX_COLUMNS = (
    "case_id",
    "title",
    "event",
    "start_utc",
    "end_utc",
    "hazards",
    "exercise",
    "findings",
    "open_findings",
    "categories",
    "file",
)
INDEX_FILE = "cases.csv"
#: The special plan whose owners answer for warning thresholds and leads (plan row 1, 002:1294).
WARNING_PLAN = "weather_monitoring"
#: The special plan whose owners answer for rescue and relief (plan row 12, 002:1305).
RESCUE_PLAN = "rescue_mobilisation"
#: At most this many cases are named in a suggested finding's text (all are in ``evidence``).
MAX_NAMED_CASES = 5
_CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,119}$")
_FINDING_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")
_TIME_FORMAT = "%m-%d %H:%M"


# --------------------------------------------------------------------------------------------
# Wording
# --------------------------------------------------------------------------------------------


def _hazard_name(table, key: str, lang: str) -> str:
    """A hazard id, or a task's hazard key (several ids, or "all"), in the report language."""
    from cityops.i18n import t
    from cityops.response.plan import hazards_of_key

    return "、".join(
        table[h].name(lang) if h in table else (t("all_hazards", lang) if h == "all" else h)
        for h in hazards_of_key(key)
    )


@cache
def _wording() -> dict[str, Any]:
    path = package_data("data", "review_cases.yaml")
    data = load_yaml(path)
    for key, ids in (("categories", CATEGORIES), ("statuses", STATUSES), ("origins", ORIGINS)):
        if set(data.get(key) or {}) != set(ids):
            raise InputError(f"{path}: field {key!r}: expected entries {', '.join(ids)}")
    return data


def _lookup(kind: str, ids: tuple[str, ...]) -> dict[str, str]:
    table = {i: i for i in ids}
    for i, names in _wording()[kind].items():
        for name in names.values():
            table[str(name).strip().casefold()] = i
    return {k.casefold(): v for k, v in table.items()}


def category_label(category: str, lang: str = "zh") -> str:
    """The label of a finding category (``致灾因子`` / ``hazard factors``, ...)."""
    return _wording()["categories"][category][lang]


def status_label(status: str, lang: str = "zh") -> str:
    """The label of a finding status (``建议`` / ``proposed``, ...)."""
    return _wording()["statuses"][status][lang]


def _template(key: str, lang: str) -> str:
    templates = _wording()["templates"]
    if lang not in templates:
        raise InputError(f"lang: {lang!r} is not one of {', '.join(templates)}")
    return templates[lang][key]


# --------------------------------------------------------------------------------------------
# Suggested findings
# --------------------------------------------------------------------------------------------
def _rule_target(table, hazard: str, level: int) -> str:
    shipped = package_data("rules", "tables")
    path = Path(table.path)
    name = f"rules/tables/{path.name}" if path.parent == Path(shipped).resolve() else str(path)
    return f"{name}#{hazard}.level{int(level)}"


def _plan_owners(plan: Plan, plan_id: str) -> str:
    try:
        return "、".join(plan.special_plan(plan_id).owners)
    except StopIteration:
        return ""


def _bool_or_none(value) -> bool | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, str):
        word = value.strip().casefold()
        return (
            True
            if word in ("true", "1", "yes")
            else False
            if word in ("false", "0", "no")
            else None
        )
    return bool(value)


def _listing(labels: list[str], lang: str) -> str:
    if len(labels) <= MAX_NAMED_CASES:
        return "、".join(labels) if lang == "zh" else ", ".join(labels)
    head = labels[:MAX_NAMED_CASES]
    sep = "、" if lang == "zh" else ", "
    return sep.join(head) + " " + _template("more", lang).format(n=len(labels))


def _case_groups(cases: pd.DataFrame, lang: str, table, owner: str) -> list[dict[str, Any]]:
    needed = (
        "town_code",
        "hazard",
        "window_start_utc",
        "outcome",
        "warned_level",
        "observed_level",
    )
    missing = [c for c in needed if c not in cases.columns]
    if missing:
        raise InputError(f"verification cases: missing column(s) {', '.join(missing)}")
    frame = cases.copy()
    frame["window_start_utc"] = pd.to_datetime(frame["window_start_utc"])
    lead_met = (
        frame["lead_met"].map(_bool_or_none)
        if "lead_met" in frame.columns
        else pd.Series(None, index=frame.index, dtype=object)
    )
    kinds = {
        "miss": (frame["outcome"] == "miss", "observed_level", "hazard_factors"),
        "false_alarm": (frame["outcome"] == "false_alarm", "warned_level", "hazard_factors"),
        "late": (
            (frame["outcome"] == "hit") & lead_met.map(lambda v: v is False).astype(bool),
            "observed_level",
            "disaster_process",
        ),
    }
    levels = level_names()
    out = []
    for kind, (mask, level_column, category) in kinds.items():
        sub = frame[mask]
        if sub.empty:
            continue
        sub = sub.assign(_level=pd.to_numeric(sub[level_column]).astype(int))
        for (hazard, level), group in sub.groupby(["hazard", "_level"], sort=True):
            group = group.sort_values(["window_start_utc", "town_code"], kind="stable")
            labels = [
                f"{t} {format_local(w, _TIME_FORMAT)}"
                for t, w in zip(group["town_code"], group["window_start_utc"], strict=True)
            ]
            hz_name = _hazard_name(table, hazard, lang)
            fields = {
                "hazard": hz_name,
                "level": levels[int(level)][f"name_{lang}"],
                "n": len(group),
                "cases": _listing(labels, lang),
            }
            out.append(
                {
                    "finding_id": f"{kind}.{hazard}.level{int(level)}",
                    "category": category,
                    "finding": _template(kind, lang).format(**fields),
                    "owner": owner,
                    "target": _rule_target(table, hazard, level),
                    "proposed_change": _template(f"{kind}_change", lang).format(**fields),
                    "hazard": hazard,
                    "towns": ",".join(dict.fromkeys(group["town_code"].astype(str))),
                    "evidence": ";".join(
                        f"{t}/{hazard}/{iso_utc(w)}"
                        for t, w in zip(group["town_code"], group["window_start_utc"], strict=True)
                    ),
                }
            )
    return out


def _task_groups(
    timeline: pd.DataFrame, lang: str, table, measure_names: Mapping[str, str]
) -> list[dict[str, Any]]:
    needed = ("task_id", "town_code", "hazard", "measure", "lead_unit", "state", "overdue")
    missing = [c for c in needed if c not in timeline.columns]
    if missing:
        raise InputError(f"task timeline: missing column(s) {', '.join(missing)}")
    frame = timeline[timeline["state"] != "stood_down"]
    flags = frame["overdue"].map(_bool_or_none).eq(True)
    if "closure_late" in frame.columns:
        flags |= frame["closure_late"].map(_bool_or_none).eq(True)
    if "escalated" in frame.columns:
        flags |= pd.to_numeric(frame["escalated"], errors="coerce").fillna(0) > 0
    out = []
    for (hazard, measure), group in frame[flags].groupby(["hazard", "measure"], sort=True):
        group = group.sort_values(["town_code", "task_id"], kind="stable")
        towns = list(dict.fromkeys(group["town_code"].astype(str)))
        hz_name = _hazard_name(table, hazard, lang)
        fields = {
            "hazard": hz_name,
            "measure": measure_names.get(measure, measure),
            "n": len(group),
        }
        fields["cases"] = _listing(towns, lang)
        owners = [u for u in dict.fromkeys(group["lead_unit"].astype(str)) if u]
        out.append(
            {
                "finding_id": f"task.{hazard}.{measure}",
                "category": "measure",
                "finding": _template("task", lang).format(**fields),
                "owner": "、".join(owners),
                "target": f"plan/measures.yaml#{hazard}.{measure}",
                "proposed_change": _template("task_change", lang).format(**fields),
                "hazard": hazard,
                "towns": ",".join(towns),
                "evidence": ";".join(group["task_id"].astype(str)),
            }
        )
    return out


def _incident_groups(kpis: Mapping[str, Any], lang: str, owner: str) -> list[dict[str, Any]]:
    out = []
    for key, value in kpis.items():
        if not isinstance(value, Mapping) or value.get("met") is not False:
            continue
        fields = {
            "text": value.get(f"text_{lang}") or key,
            "share": f"{value['share']:.0%}",
            "within": value.get("within"),
            "count": value.get("incidents"),
            "op": value.get("target_op"),
            "target": f"{value['target']:.0%}",
        }
        out.append(
            {
                "finding_id": f"incident.{key}",
                "category": "incident",
                "finding": _template("incident", lang).format(**fields),
                "owner": owner,
                "target": f"plan/special_plans.yaml#{RESCUE_PLAN}",
                "proposed_change": _template("incident_change", lang).format(**fields),
                "hazard": "",
                "towns": "",
                "evidence": f"kpis.{key}; source {value.get('source', '')}",
            }
        )
    return out


def suggest_findings(
    cases_df: pd.DataFrame | None,
    timeline_df: pd.DataFrame | None,
    *,
    kpis: Mapping[str, Any] | None = None,
    plan: Plan | str | PathLike = "ejin-horo",
    rules: str | PathLike = "national",
    lang: str = "zh",
    warning_owner: str | None = None,
    rescue_owner: str | None = None,
) -> pd.DataFrame:
    """Findings suggested by the data, for the review meeting to accept, edit or drop.

    Parameters
    ----------
    cases_df : pandas.DataFrame or None
        Verification cases (``town_code, hazard, window_start_utc, outcome, warned_level,
        observed_level, lead_met, ...``).
    timeline_df : pandas.DataFrame or None
        :func:`cityops.review.response.task_timeline` output.
    kpis : mapping, optional
        :func:`cityops.review.response.response_kpis` output: each incident target not met
        becomes an ``incident`` finding.
    plan : Plan, str or os.PathLike, default "ejin-horo"
        The response plan (owners of the warning and rescue special plans).
    rules : str or os.PathLike, default "national"
        The rule table whose rows hazard-factor findings target.
    lang : {"zh", "en"}, default "zh"
        Language of the finding texts.
    warning_owner, rescue_owner : str, optional
        Override the owners taken from the plan's special plans :data:`WARNING_PLAN` and
        :data:`RESCUE_PLAN`.

    Returns
    -------
    pandas.DataFrame
        :data:`FINDING_COLUMNS`, ``status`` proposed and ``origin`` suggested. One finding per
        group: misses per (hazard, observed level) and false alarms per (hazard, warned level)
        → ``hazard_factors`` on that level's rule; hits whose first warning missed the lead
        target per (hazard, observed level) → ``disaster_process`` on that level's rule; tasks
        overdue, closed late or escalated per (hazard, measure) → ``measure`` on the plan row,
        owned by the tasks' lead units; incident targets not met → ``incident``.
    """
    plan_obj = plan if isinstance(plan, Plan) else load_plan(plan)
    table = load_rule_table(rules)
    if warning_owner is None:
        warning_owner = _plan_owners(plan_obj, WARNING_PLAN)
    if rescue_owner is None:
        rescue_owner = _plan_owners(plan_obj, RESCUE_PLAN)
    _template("miss", lang)  # validates lang
    rows: list[dict[str, Any]] = []
    if cases_df is not None and len(cases_df):
        rows += _case_groups(cases_df, lang, table, warning_owner)
    if timeline_df is not None and len(timeline_df):
        names = {m.id: getattr(m, f"text_{lang}") or m.id for m in plan_obj.measures}
        rows += _task_groups(timeline_df, lang, table, names)
    if kpis:
        rows += _incident_groups(kpis, lang, rescue_owner)
    frame = pd.DataFrame(rows, columns=list(FINDING_COLUMNS))
    frame["status"] = "proposed"
    frame["origin"] = "suggested"
    order = {c: i for i, c in enumerate(CATEGORIES)}
    frame = frame.assign(_o=frame["category"].map(order)).sort_values(
        ["_o", "finding_id"], kind="stable"
    )
    return frame.drop(columns="_o").reset_index(drop=True)[list(FINDING_COLUMNS)]


# --------------------------------------------------------------------------------------------
# Meeting findings and validation
# --------------------------------------------------------------------------------------------
def _text(value) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return str(value).strip()


def _validate(records: Iterable[Mapping[str, Any]], where: str, origin: str) -> pd.DataFrame:
    categories = _lookup("categories", CATEGORIES)
    statuses = _lookup("statuses", STATUSES)
    origins = _lookup("origins", ORIGINS)
    rows, seen = [], set()
    for i, raw in enumerate(records):
        if not isinstance(raw, Mapping):
            raise InputError(f"{where}: finding {i + 1}: expected a mapping of fields")
        row = {c: _text(raw.get(c)) for c in FINDING_COLUMNS}
        category = categories.get(row["category"].casefold())
        if category is None:
            raise InputError(
                f"{where}: finding {i + 1}, field 'category': {row['category']!r} is not one of "
                f"{', '.join(CATEGORIES)} (or 致灾因子/成灾过程/突发事件/防御措施)"
            )
        row["category"] = category
        if not row["finding"]:
            raise InputError(f"{where}: finding {i + 1}, field 'finding': empty")
        status = statuses.get((row["status"] or "proposed").casefold())
        if status is None:
            raise InputError(
                f"{where}: finding {i + 1}, field 'status': {row['status']!r} is not one of "
                f"{', '.join(STATUSES)}"
            )
        row["status"] = status
        row_origin = origins.get((row["origin"] or origin).casefold())
        if row_origin is None:
            raise InputError(
                f"{where}: finding {i + 1}, field 'origin': {row['origin']!r} is not one of "
                f"{', '.join(ORIGINS)}"
            )
        row["origin"] = row_origin
        if not row["finding_id"]:
            row["finding_id"] = f"M{i + 1:02d}"
        if not _FINDING_ID.match(row["finding_id"]):
            raise InputError(
                f"{where}: finding {i + 1}, field 'finding_id': {row['finding_id']!r} is not a "
                "simple id (letters, digits, . _ : -)"
            )
        if row["finding_id"] in seen:
            raise InputError(
                f"{where}: finding {i + 1}, field 'finding_id': duplicate {row['finding_id']!r}"
            )
        seen.add(row["finding_id"])
        rows.append(row)
    return pd.DataFrame(rows, columns=list(FINDING_COLUMNS))


def read_findings(path: str | PathLike) -> pd.DataFrame:
    """Findings written by the review meeting, from YAML or CSV.

    Parameters
    ----------
    path : str or os.PathLike
        ``.yaml``/``.yml`` with a top-level ``findings:`` list of mappings, or ``.csv`` with a
        header row; fields are :data:`FINDING_COLUMNS` (``category`` and ``finding``
        required; ``status`` defaults to proposed, ``origin`` to meeting, ``finding_id`` to
        ``M01``, ``M02``, ...). Categories and statuses may be given by their Chinese or
        English labels.

    Returns
    -------
    pandas.DataFrame
        :data:`FINDING_COLUMNS`.

    Raises
    ------
    InputError
        One line naming the file, the finding and the field.
    """
    source = Path(path)
    suffix = source.suffix.casefold()
    if suffix in (".yaml", ".yml"):
        data = load_yaml(source)
        records = data.get("findings")
        if not isinstance(records, list):
            raise InputError(f"{source}: expected a top-level 'findings:' list")
    elif suffix == ".csv":
        try:
            frame = pd.read_csv(source, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        except FileNotFoundError:
            raise InputError(f"{source}: file not found") from None
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
            message = " ".join(str(err).split())
            raise InputError(f"{source}: not a readable CSV ({message})") from None
        missing = [c for c in ("category", "finding") if c not in frame.columns]
        if missing:
            raise InputError(f"{source}: missing column(s) {', '.join(missing)}")
        records = frame.to_dict("records")
    else:
        raise InputError(f"{source}: expected a .yaml, .yml or .csv file of findings")
    return _validate(records, str(source), "meeting")


# --------------------------------------------------------------------------------------------
# Library
# --------------------------------------------------------------------------------------------
def case_library_dir(jurisdiction: str | PathLike = "ejin-horo") -> Path:
    """``data/jurisdictions/<name>/review/cases`` of a jurisdiction (name or folder).

    The folder is not created here; :func:`save_case` creates it.
    """
    path = Path(jurisdiction).expanduser()
    if path.is_dir() or any(s in str(jurisdiction) for s in ("/", "\\")):
        return path / "review" / "cases"
    from cityops.geo.jurisdiction import jurisdiction_search_path

    for folder in jurisdiction_search_path():
        if (folder / str(jurisdiction) / "jurisdiction.yaml").is_file():
            return folder / str(jurisdiction) / "review" / "cases"
    raise InputError(f"no jurisdiction {str(jurisdiction)!r} (no jurisdiction.yaml found)")


def _check_case_id(case_id: str) -> str:
    if not isinstance(case_id, str) or not _CASE_ID.match(case_id) or ".." in case_id:
        raise InputError(
            f"case id {case_id!r}: use letters, digits, '.', '_' and '-' only (no path "
            "separators, no '..', at most 120 characters), e.g. 2026-07-10-july-rainstorm"
        )
    return case_id


def _json_default(value):
    if isinstance(value, pd.Timestamp):
        return iso_utc(value)
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


def _index_row(data: Mapping[str, Any], file: str) -> dict[str, Any]:
    meta = data.get("meta") or {}
    findings = data.get("findings") or []
    hazards = meta.get("hazards", "")
    if isinstance(hazards, (list, tuple)):
        hazards = ",".join(str(h) for h in hazards)
    exercise = meta.get("exercise", "")
    return {
        "case_id": data["case_id"],
        "title": _text(meta.get("title")),
        "event": _text(meta.get("event")),
        "start_utc": _text(meta.get("start_utc")),
        "end_utc": _text(meta.get("end_utc")),
        "hazards": _text(hazards),
        "exercise": "" if exercise == "" else "true" if exercise else "false",
        "findings": len(findings),
        "open_findings": sum(1 for f in findings if f.get("status") != "done"),
        "categories": ",".join(
            c for c in CATEGORIES if any(f.get("category") == c for f in findings)
        ),
        "file": file,
    }


def _rebuild_index(library: Path) -> Path:
    rows = []
    for path in sorted(library.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            rows.append(_index_row(data, path.name))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise InputError(f"{path}: not a readable case file ({err})") from None
    frame = pd.DataFrame(rows, columns=list(INDEX_COLUMNS)).sort_values("case_id", kind="stable")
    target = library / INDEX_FILE
    write_text(target, person_csv(frame, lineterminator="\n"))
    return target


def save_case(
    library_dir: str | PathLike,
    case_id: str,
    findings: pd.DataFrame | Iterable[Mapping[str, Any]],
    *,
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Save (or replace) one case in the library and refresh the index.

    Parameters
    ----------
    library_dir : str or os.PathLike
        The library folder (:func:`case_library_dir`); created if missing.
    case_id : str
        Letters, digits, ``.``, ``_``, ``-`` (no path separators, no ``..``), e.g.
        ``2026-07-10-july-rainstorm``. Saving the same id again replaces the case.
    findings : pandas.DataFrame or iterable of mappings
        :data:`FINDING_COLUMNS` (validated as :func:`read_findings` does; ``origin`` defaults
        to meeting).
    meta : mapping, optional
        About the case: ``title``, ``event`` (e.g. the scenario), ``start_utc``, ``end_utc``,
        ``hazards``, ``exercise`` and anything else JSON can hold (times are written as ISO
        8601 UTC).

    Returns
    -------
    pathlib.Path
        The case file ``<library_dir>/<case_id>.json``.

    Raises
    ------
    InputError
        Unsafe case id or an invalid finding.
    """
    _check_case_id(case_id)
    records = findings.to_dict("records") if isinstance(findings, pd.DataFrame) else findings
    frame = _validate(records, f"case {case_id}", "meeting")
    library = Path(library_dir)
    try:
        library.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"case library {library}: cannot create ({err})") from None
    payload = {
        "case_id": case_id,
        "meta": dict(meta or {}),
        "findings": frame.to_dict("records"),
    }
    target = library / f"{case_id}.json"
    text = json.dumps(payload, ensure_ascii=False, indent=2, default=_json_default) + "\n"
    write_text(target, text)
    _rebuild_index(library)
    return target


def list_cases(library_dir: str | PathLike) -> pd.DataFrame:
    """The library's index (``cases.csv``), one row per case; empty if there is none yet.

    Returns
    -------
    pandas.DataFrame
        :data:`INDEX_COLUMNS`; ``findings`` and ``open_findings`` (status not done) integers.
    """
    path = Path(library_dir) / INDEX_FILE
    if not path.is_file():
        return pd.DataFrame(columns=list(INDEX_COLUMNS))
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    for column in ("findings", "open_findings"):
        frame[column] = frame[column].astype(int)
    return frame[list(INDEX_COLUMNS)]


def load_case(library_dir: str | PathLike, case_id: str) -> dict[str, Any]:
    """One saved case: ``{"case_id", "meta", "findings"}`` with findings as a DataFrame."""
    path = Path(library_dir) / f"{_check_case_id(case_id)}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"case {case_id}: not in the library {library_dir}") from None
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: not a readable case file ({err})") from None
    data["findings"] = pd.DataFrame(data.get("findings") or [], columns=list(FINDING_COLUMNS))
    return data
