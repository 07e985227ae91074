"""From the town risk table to who does what, by when (the HQ's question after "how bad").

:func:`plan_response` gives each unit a response posture, the HQ groups and special plans to
open, the recommended measures (four-stop recommendations among them) and a task list whose
identity (unit, hazard, measure, episode) the ledger keeps across runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pandas as pd

from cityops.response.dissemination import dissemination
from cityops.response.plan import (
    PERIOD_KINDS,
    Plan,
    assign_loop,
    cites,
    measures_for,
    posture_for,
)
from cityops.timeutil import REPORT_TZ, iso_utc, parse_utc

__all__ = ["TASK_COLUMNS", "Response", "period_pairs", "period_rules", "plan_response"]

#: Columns of the task list (the input of :func:`cityops.ledger.merge_run`).
TASK_COLUMNS = [
    "town_code", "hazard", "measure", "loop", "lead_unit", "supporting_units", "due_utc",
    "onset_utc", "end_utc", "level", "source", "text_zh", "text_en", "plan", "group",
    "four_stop", "scope", "triggers", "loop_basis",
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
    #: Why cityops proposes that the HQ consult on the big loop, or "" (it never decides the
    #: big loop itself): ``seat=150627100@000:133`` or ``units=5/9@000:133``.
    hq_consultation: str = ""

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
            "loop": "",
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
            "loop_basis": "",
            "_measure": m,
            "_extreme": bool(row["extreme"]),
        }
        return
    task["triggers"] += f"; {trigger}"
    task["_extreme"] = task["_extreme"] or bool(row["extreme"])
    task["level"] = max(task["level"], int(row["level"]))
    for key, pick in (("due_utc", min), ("onset_utc", min), ("end_utc", max)):
        values = [v for v in (task[key], row[key] if key != "due_utc" else due) if v]
        task[key] = pick(values, key=parse_utc) if values else ""


def period_rules(
    plan: Plan,
    code: str,
    periods: pd.DataFrame | None,
    asset_kinds: Mapping[str, Iterable[str]] | None = None,
) -> list[tuple[dict, pd.Series]]:
    """The posture period rules (``timing.yaml`` ``posture.rules.periods``) that apply to a
    unit, each with the holiday or event that triggers it, most demanding first.

    An event applies to its unit (or to every unit when it names none) when its expected crowd
    reaches the rule's ``min_crowd``; a holiday applies to the units holding exposure points of
    the rule's ``asset_kinds`` (the assets register), or to every unit when the rule names none.
    """
    if periods is None or periods.empty:
        return []
    kinds = set(asset_kinds.get(code, ())) if asset_kinds else set()
    out = []
    for period in periods.itertuples(index=False):
        if period.kind not in PERIOD_KINDS:
            continue
        for rule in plan.posture["rules"].get("periods") or ():
            if period.kind not in rule["kinds"]:
                continue
            if period.kind == "event":
                crowd = 0 if pd.isna(period.expected_crowd) else int(period.expected_crowd)
                if period.unit_code not in ("", code) or crowd < rule.get("min_crowd", 0):
                    continue
            elif rule.get("asset_kinds") and not kinds & set(rule["asset_kinds"]):
                continue
            out.append((rule, pd.Series(period._asdict())))
            break  # rules are listed most demanding first: the first match counts
    return sorted(out, key=lambda rp: -rp[0]["rank"])


def period_pairs(table: pd.DataFrame) -> list[tuple[str, str]]:
    """(unit, period kind) pairs in force by the calendar: a holiday's or an event's tasks
    start issued without a warning signal (:func:`cityops.ledger.merge_run` ``live``)."""
    return [(str(code), kind) for code in table["town_code"].unique() for kind in PERIOD_KINDS]


def _period_row(code: str, period: pd.Series, timezone: str) -> dict:
    """A period as a row of the town table: its kind is the hazard, its days the episode."""
    start = pd.Timestamp(period["start"]).tz_localize(timezone).tz_convert("UTC")
    end = (pd.Timestamp(period["end"]) + pd.Timedelta(days=1)).tz_localize(timezone)
    onset = iso_utc(start)
    return {"town_code": code, "hazard": period["kind"], "level": 1, "extreme": False,
            "onset_utc": onset, "end_utc": iso_utc(end.tz_convert("UTC")),
            "issue_by_utc": onset}  # fmt: skip


def plan_response(
    table: pd.DataFrame,
    plan: Plan,
    *,
    now=None,
    banner_code: str = "banner",
    periods: pd.DataFrame | None = None,
    asset_kinds: Mapping[str, Iterable[str]] | None = None,
    timezone: str = REPORT_TZ,
    big_loop: bool = False,
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
    periods : pandas.DataFrame, optional
        Special periods over the forecast (:func:`cityops.geo.calendar.special_periods`):
        holidays and events give postures and tasks of their own (:func:`period_rules`);
        seasons only add owners and concerns (through the town table), never a posture.
    asset_kinds : mapping, optional
        Unit code to the kinds of exposure points it holds (which units a holiday crowds).
    timezone : str, optional
        The jurisdiction's time zone (period days are local dates).
    big_loop : bool, optional
        The HQ has decided the big loop (000:133): big-loop measures become big-loop tasks and
        every posture Ⅰ级. cityops never decides it; it proposes (``hq_consultation``).

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
                             "special_period": False, "periods": "", "periods_en": "",
                             **UNASSESSED,
                             "posture_basis": "", "groups": "", "plans": "",
                             "four_stops": ""})  # fmt: skip
            continue
        level = int(rows["level"].max())
        extreme = bool(rows["extreme"].astype(bool).any()) if len(rows) else False
        applying = period_rules(plan, code, periods, asset_kinds)
        kinds_here = set((asset_kinds or {}).get(code, ()))
        posture = posture_for(plan, level, extreme=extreme, periods=[r for r, _ in applying],
                              big_loop=big_loop)  # fmt: skip
        unit_measures = []
        # Most severe hazard first: it sets a shared task's first trigger; then the holidays
        # and events the unit takes part in, as rows of their own.
        active = rows[rows["level"] > 0].sort_values(
            ["level", "onset_utc"], ascending=[False, True]
        )
        seen_periods = set()
        extra = []
        for _, period in applying:
            key = (period["kind"], period["name_zh"])
            if key not in seen_periods:
                seen_periods.add(key)
                extra.append(pd.Series(_period_row(code, period, timezone)))
        for row in [r for _, r in active.iterrows()] + extra:
            for m in measures_for(plan, row["hazard"], int(row["level"]),
                                  extreme=bool(row["extreme"])):  # fmt: skip
                if m.unit_has and m.unit_has not in kinds_here:
                    continue  # e.g. geohazard patrols only where points are registered
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
                "special_period": bool(applying),
                "periods": "、".join(dict.fromkeys(p["name_zh"] for _, p in applying)),
                "periods_en": ", ".join(
                    dict.fromkeys(str(p["name_en"] or p["name_zh"]) for _, p in applying)
                ),
                "posture": posture.get("id", ""),
                "posture_basis": posture.get("basis", ""),
                "posture_zh": posture.get("name_zh", ""),
                "posture_en": posture.get("name_en", ""),
                "groups": "、".join(groups),
                "plans": "、".join(opened),
                "four_stops": "、".join(stops),
            }
        )
    for task in tasks.values():
        # the loop from the plan's loop text, for the task's highest level (000:133-137)
        task["loop"], task["loop_basis"] = assign_loop(
            plan, task.pop("_measure"), task["level"], extreme=task.pop("_extreme"),
            big_loop=big_loop,
        )  # fmt: skip
    task_frame = pd.DataFrame(list(tasks.values()), columns=TASK_COLUMNS)
    frame = pd.DataFrame(postures)
    return Response(
        postures=frame,
        tasks=task_frame,
        dissemination=dissemination(table, plan),
        hq_consultation=_hq_consultation(plan, frame),
    )


def _hq_consultation(plan: Plan, postures: pd.DataFrame) -> str:
    """The proposal of an HQ consultation on the big loop (``big_loop_proposal``), or ""."""
    rule = plan.posture["rules"]["big_loop_proposal"]
    assessed = postures[postures["posture"] != UNASSESSED["posture"]]
    if assessed.empty:
        return ""
    hit = assessed["level"] >= rule["min_level"]
    if rule.get("extreme"):
        hit &= assessed["extreme"].astype(bool)
    units = set(assessed.loc[hit, "town_code"])
    share = len(units) / len(assessed)
    seat = units & set(rule.get("seat_units") or ())
    if not units or not (seat or share >= rule.get("min_unit_share", 1.0)):
        return ""
    where = f"seat={','.join(sorted(seat))}" if seat else f"units={len(units)}/{len(assessed)}"
    return f"{where}@{cites(rule['source'])}"
