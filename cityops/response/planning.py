"""From the town risk table to who does what, by when (the HQ's question after "how bad").

:func:`plan_response` gives each unit a response posture, the HQ groups and special plans to
open, the recommended measures (four-stop recommendations among them) and a task list whose
identity (unit, hazard, measure, episode) the ledger keeps across runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from cityops.response.dissemination import dissemination
from cityops.response.plan import Plan, measures_for, posture_for
from cityops.timeutil import iso_utc, parse_utc

__all__ = ["TASK_COLUMNS", "Response", "plan_response"]

#: Columns of the task list (the input of :func:`cityops.ledger.merge_run`).
TASK_COLUMNS = [
    "town_code", "hazard", "measure", "loop", "lead_unit", "supporting_units", "due_utc",
    "onset_utc", "end_utc", "level", "source", "text_zh", "text_en", "plan", "group",
    "four_stop", "scope", "triggers",
]  # fmt: skip


@dataclass
class Response:
    """The response to one assessment.

    Attributes
    ----------
    postures : pandas.DataFrame
        One row per unit: ``town_code``, ``level``, ``extreme``, ``special_period``,
        ``posture`` (id), ``posture_zh``, ``posture_en``, ``groups``, ``plans``,
        ``four_stops`` ("、"-joined).
    tasks : pandas.DataFrame
        One row per measure and owner (:data:`TASK_COLUMNS`): a banner-level measure once for
        the jurisdiction (``town_code`` the jurisdiction's code), a town-level one once per
        town; ``hazard`` is the measure's hazard key and ``triggers`` lists the units,
        hazards and levels that call for it ("150627100 rainstorm 4; …").
    """

    postures: pd.DataFrame
    tasks: pd.DataFrame
    dissemination: pd.DataFrame | None = None

    def for_unit(self, code: str) -> tuple[pd.Series | None, pd.DataFrame]:
        """The unit's posture row and its tasks (earliest due first): its own town-level
        tasks and the banner-level tasks it triggers."""
        post = self.postures[self.postures["town_code"] == code]
        return (post.iloc[0] if len(post) else None), unit_tasks(self.tasks, code)


def unit_tasks(tasks: pd.DataFrame, code: str) -> pd.DataFrame:
    """The tasks a unit sees: its own, and the banner-level ones it triggers."""
    mine = (tasks["town_code"] == code) | tasks["triggers"].str.contains(
        f"(?:^|; ){code} ", regex=True
    )
    return tasks[mine].sort_values(["due_utc", "measure"])


#: Posture of a unit none of whose hazards could be assessed.
UNASSESSED = {
    "posture": "unassessed",
    "posture_zh": "未评估（无法判断响应级别）",
    "posture_en": "not assessed (response level cannot be judged)",
}


def _due(measure, row, now: pd.Timestamp | None) -> str:
    """Deadline of a measure: hours relative to the onset, or to the warning's issue-by time;
    a deadline already past at the reference time becomes the reference time (act now)."""
    base = row["onset_utc"] if measure.deadline_relative_to == "onset" else row["issue_by_utc"]
    if not base:
        return ""
    due = parse_utc(base) + pd.Timedelta(hours=measure.deadline_hours)
    if now is not None and due < now:
        due = now
    return iso_utc(due)


def _add_trigger(tasks: dict, m, owner: str, row, due: str) -> None:
    """One task per measure and owner: a new trigger widens its period and level, and the
    earliest deadline counts."""
    trigger = f"{row['town_code']} {row['hazard']} {int(row['level'])}"
    task = tasks.get((m.id, owner))
    if task is None:
        tasks[(m.id, owner)] = {
            "town_code": owner,
            "hazard": m.hazard_key,
            "measure": m.id,
            "loop": m.loop,
            "lead_unit": m.lead_unit,
            "supporting_units": "、".join(m.supporting_units),
            "due_utc": due,
            "onset_utc": row["onset_utc"],
            "end_utc": row["end_utc"],
            "level": int(row["level"]),
            "source": m.source,
            "text_zh": m.text_zh,
            "text_en": m.text_en,
            "plan": m.plan,
            "group": m.group,
            "four_stop": m.four_stop or "",
            "scope": m.scope,
            "triggers": trigger,
        }
        return
    task["triggers"] += f"; {trigger}"
    task["level"] = max(task["level"], int(row["level"]))
    for key, pick in (("due_utc", min), ("onset_utc", min), ("end_utc", max)):
        values = [v for v in (task[key], row[key] if key != "due_utc" else due) if v]
        task[key] = pick(values, key=parse_utc) if values else ""


def plan_response(
    table: pd.DataFrame, plan: Plan, *, now=None, banner_code: str = "banner"
) -> Response:
    """Postures and tasks for every unit of a town risk table.

    Parameters
    ----------
    table : pandas.DataFrame
        The town risk table (:func:`cityops.geo.risk.town_hazards`), with ``attention_level``
        when special periods were applied.
    plan : Plan
        The jurisdiction's plan content (:func:`cityops.response.load_plan`).
    now : time, optional
        Reference time: no deadline is set before it.
    banner_code : str, optional
        ``town_code`` of banner-level tasks (the jurisdiction's code).

    Returns
    -------
    Response
    """
    now_ts = parse_utc(now) if now is not None else None
    names = {g.id: g for g in plan.groups}
    plans = {p.id: p for p in plan.special_plans}
    tasks: dict[tuple[str, str], dict] = {}
    postures = []
    for code, rows in table.groupby("town_code", sort=False):
        rows = rows[rows["evaluated"].astype(bool)]
        if not len(rows):
            # Nothing could be assessed: no posture can be judged (never 常态 by default).
            postures.append({"town_code": code, "level": 0, "extreme": False,
                             "special_period": False, **UNASSESSED, "groups": "",
                             "plans": "", "four_stops": ""})  # fmt: skip
            continue
        level = int(rows["level"].max())
        extreme = bool(rows["extreme"].astype(bool).any()) if len(rows) else False
        special = bool(
            len(rows) and "special_conditions" in rows
            and rows.loc[rows["level"] > 0, "special_conditions"].fillna("").str.len().gt(0).any()
        )  # fmt: skip
        posture = posture_for(plan, level, extreme=extreme, special_period=special)
        unit_measures = []
        # Most severe hazard first: it sets a shared task's first trigger.
        active = rows[rows["level"] > 0].sort_values(
            ["level", "onset_utc"], ascending=[False, True]
        )
        for _, row in active.iterrows():
            for m in measures_for(plan, row["hazard"], int(row["level"]),
                                  extreme=bool(row["extreme"])):  # fmt: skip
                unit_measures.append(m)
                owner = code if m.scope == "town" else banner_code
                _add_trigger(tasks, m, owner, row, _due(m, row, now_ts))
        groups = list(dict.fromkeys(names[m.group].name_zh for m in unit_measures))
        opened = list(dict.fromkeys(plans[m.plan].name_zh for m in unit_measures if m.plan))
        stops = list(dict.fromkeys(m.four_stop for m in unit_measures if m.four_stop))
        postures.append(
            {
                "town_code": code,
                "level": level,
                "extreme": extreme,
                "special_period": special,
                "posture": posture.get("id", ""),
                "posture_zh": posture.get("name_zh", ""),
                "posture_en": posture.get("name_en", ""),
                "groups": "、".join(groups),
                "plans": "、".join(opened),
                "four_stops": "、".join(stops),
            }
        )
    task_frame = pd.DataFrame(list(tasks.values()), columns=TASK_COLUMNS)
    return Response(
        postures=pd.DataFrame(postures),
        tasks=task_frame,
        dissemination=dissemination(table, plan),
    )
