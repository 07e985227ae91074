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
