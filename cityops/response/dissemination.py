"""Who must receive a warning, and through which channels (roles, not people).

From the jurisdiction's roles-and-channels table (``plan/roles_channels.yaml``): per unit and
hazard at blue or above, the recipient roles and channels of its level, as a table for the
release system (``dissemination.csv``) and the briefing.
"""

from __future__ import annotations

import pandas as pd

from cityops.response.plan import Plan

__all__ = ["DISSEMINATION_COLUMNS", "dissemination"]

DISSEMINATION_COLUMNS = [
    "town_code", "town_name", "hazard", "level", "onset_utc", "roles", "roles_zh", "channels",
    "channels_zh",
]  # fmt: skip


def dissemination(table: pd.DataFrame, plan: Plan) -> pd.DataFrame:
    """One row per unit × hazard at blue or above with the roles and channels of its level.

    An Annex 3 extreme row gets the red level's channels (sirens only in an emergency).
    """
    rc = plan.roles_channels
    roles = {r["id"]: r["name_zh"] for r in rc["roles"]}
    channels = {c["id"]: c["name_zh"] for c in rc["channels"]}
    by_level = {int(k): v for k, v in rc["levels"].items()}
    rows = []
    active = table[(table["level"] > 0) & table["evaluated"].astype(bool)]
    for _, r in active.iterrows():
        level = 4 if bool(r["extreme"]) else int(r["level"])
        spec = by_level.get(level) or by_level[max(k for k in by_level if k <= level)]
        rows.append(
            {
                "town_code": r["town_code"],
                "town_name": r["town_name"],
                "hazard": r["hazard"],
                "level": int(r["level"]),
                "onset_utc": r["onset_utc"],
                "roles": " ".join(spec["roles"]),
                "roles_zh": "、".join(roles[x] for x in spec["roles"]),
                "channels": " ".join(spec["channels"]),
                "channels_zh": "、".join(channels[x] for x in spec["channels"]),
            }
        )
    return pd.DataFrame(rows, columns=DISSEMINATION_COLUMNS)


#: Columns of an issued signal's dissemination list (``dissemination.csv`` of its pack).
SIGNAL_DISSEMINATION_COLUMNS = [
    "message", "status", "town_code", "town_name", "hazard", "level", "action", "issued_bjt",
    "recipient", "recipient_zh", "detail_zh", "channels_zh", "acknowledged_bjt",
    "acknowledged_by",
]  # fmt: skip


def signal_dissemination(
    records: list[dict],
    *,
    message: str,
    status: str,
    issued_bjt: str,
    plan: Plan | None,
    assets: pd.DataFrame | None,
    hazards_of_asset: dict[str, list[str]] | None = None,
) -> pd.DataFrame:
    """Who receives one issued message and by which channels (issue 18 item 4).

    One row per unit of the act and recipient role of its level (roles-and-channels table),
    plus one row per exposure point of the unit whose hazard the signal concerns (its
    operator, from the asset register). Nothing is sent by cityops: this is the dispatcher's
    list; ``acknowledged_*`` are left empty for the dispatcher (``cityops signals --ack``).
    A jurisdiction without a roles-and-channels table gets one row per unit saying so.
    """
    rows = []
    rc = plan.roles_channels if plan is not None else None
    hazards_of_asset = hazards_of_asset or {}
    for rec in records:
        level = int(rec["level"])
        base = {
            "message": message,
            # A drill says so on every row the dispatcher calls down.
            "status": "演练 Exercise" if status == "Exercise" else "实发 Actual",
            "town_code": rec["town_code"],
            "town_name": rec.get("town_name", ""),
            "hazard": rec["hazard"],
            "level": level,
            "action": rec["action"],
            "issued_bjt": issued_bjt,
            "acknowledged_bjt": "",
            "acknowledged_by": "",
        }
        if rc is None:
            rows.append({**base, "recipient": "unknown", "recipient_zh": "未配置发布对象表",
                         "detail_zh": "本辖区没有 roles_channels.yaml：由值班员确定发布对象",
                         "channels_zh": ""})  # fmt: skip
            continue
        by_level = {int(k): v for k, v in rc["levels"].items()}
        # A lift reaches everyone the signal reached: the level it ends.
        key = level or int(rec.get("lifted_level") or max(by_level))
        spec = by_level.get(key) or by_level[max(k for k in by_level if k <= key)]
        names = {r["id"]: r["name_zh"] for r in rc["roles"]}
        channels = {c["id"]: c["name_zh"] for c in rc["channels"]}
        chan = "、".join(channels[x] for x in spec["channels"])
        for role in spec["roles"]:
            rows.append({**base, "recipient": role, "recipient_zh": names[role],
                         "detail_zh": "", "channels_zh": chan})  # fmt: skip
        if assets is not None and len(assets):
            mine = assets[assets["unit"].astype(str) == str(rec["town_code"])]
            mine = mine.drop_duplicates("asset_id")
            for _, a in mine.iterrows():
                if rec["hazard"] not in hazards_of_asset.get(str(a["hazard"]), [a["hazard"]]):
                    continue
                rows.append({**base, "recipient": f"operator:{a['asset_id']}",
                             "recipient_zh": f"{a['name_zh']}运营/责任单位",
                             "detail_zh": str(a.get("owner", "")),
                             "channels_zh": chan})  # fmt: skip
    return pd.DataFrame(rows, columns=SIGNAL_DISSEMINATION_COLUMNS)
