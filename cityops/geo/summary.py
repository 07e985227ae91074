"""One ordered risk list per town: hazard, level, when, what it threatens, special conditions.

Brings together the town risk table (:mod:`cityops.geo.risk`), the triggered exposure points
(:mod:`cityops.geo.exposure`), the geological-hazard points at risk (:mod:`cityops.geo.geohazard`)
and the special periods
(:mod:`cityops.geo.calendar`).
"""

from __future__ import annotations

from functools import cache

import pandas as pd

from cityops.resources import load_yaml, package_data

__all__ = ["risk_summary", "threatened_assets"]


@cache
def _asset_hazards() -> dict[str, list[str]]:
    return load_yaml(package_data("data", "exposure_hazards.yaml"))["hazards"]


def threatened_assets(assets: pd.DataFrame, code: str, hazard: str) -> pd.DataFrame:
    """Triggered exposure points of a unit that belong to a signal hazard (first trigger of
    each asset)."""
    if assets is None or assets.empty:
        return pd.DataFrame(columns=["asset_id", "name_zh", "plan_zh", "owner", "first_time_utc"])
    mapping = _asset_hazards()
    belongs = assets["hazard"].map(lambda h: hazard == h or hazard in mapping.get(h, []))
    sub = assets[(assets["unit"].astype(str) == code) & belongs]
    return sub.sort_values("first_time_utc").drop_duplicates("asset_id")


def risk_summary(assessment, code: str) -> pd.DataFrame:
    """The unit's hazards at blue or above, most severe first, with what they threaten.

    Columns: ``hazard``, ``hazard_name_zh``, ``hazard_name_en``, ``level``, ``attention_level``,
    ``onset_utc``, ``end_utc``, ``extreme``, ``threatens`` (exposure points and, on the
    rainstorm row, the geological-hazard points at risk, "、"-joined), ``special_conditions``, ``extra_owners``.
    """
    table = assessment.table
    rows = table[(table["town_code"] == code) & (table["level"] > 0)].copy()
    rows = rows.sort_values(["level", "onset_utc"], ascending=[False, True])
    geo = assessment.geohazards
    out = []
    for _, r in rows.iterrows():
        threats = list(threatened_assets(assessment.assets, code, r["hazard"])["name_zh"])
        if r["hazard"] == "rainstorm" and geo is not None and not geo.empty:
            # Only towns with registered points have rows (cityops.geo.geohazard).
            hit = geo[(geo["town_code"] == code) & (geo["level"] >= 1)]
            for _, g in hit.iterrows():
                threats.append(
                    f"地质灾害隐患点{int(g['points_at_risk'])}处（地质灾害气象风险{g['grade_zh']}）"
                )
        out.append(
            {
                "hazard": r["hazard"],
                "hazard_name_zh": r["hazard_name_zh"],
                "hazard_name_en": r["hazard_name_en"],
                "level": int(r["level"]),
                "attention_level": int(r.get("attention_level", r["level"]) or r["level"]),
                "onset_utc": r["onset_utc"],
                "end_utc": r["end_utc"],
                "extreme": bool(r["extreme"]),
                "threatens": "、".join(threats),
                "special_conditions": r.get("special_conditions", "") or "",
                "extra_owners": r.get("extra_owners", "") or "",
            }
        )
    return pd.DataFrame(out)
