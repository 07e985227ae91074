"""Anchor points the drill scenarios are built around (WGS-84 longitude, latitude).

A scenario is a drill script: "the storm core crosses the banner seat at 20:00 Beijing time"
needs the seat's position inside the script itself, the way a drill scenario names its
places. These points only steer where the synthetic weather goes; the jurisdiction's units,
polygons and codes used for assessment live in ``data/jurisdictions/`` and are not read here.

Source: ``spec/geography.md`` (map providers' town centre points converted to WGS-84,
approximate) and ``spec/events.md`` (2022-08-17/18 stations).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PLACES", "Place"]


@dataclass(frozen=True)
class Place:
    """A named anchor point."""

    code: str
    name_zh: str
    name_en: str
    lon: float
    lat: float


PLACES: dict[str, Place] = {
    p.code: p
    for p in (
        Place("150627100", "阿勒腾席热镇", "Altan Xiret (banner seat)", 109.7496, 39.5812),
        Place("150627101", "札萨克镇", "Jasag", 109.7782, 39.2484),
        Place("150627102", "乌兰木伦镇", "Ulan Mulun", 110.2002, 39.2893),
        Place("150627103", "纳林陶亥镇", "Narin Taohai", 110.2645, 39.4682),
        Place("150627104", "苏布尔嘎镇", "Subur'ga", 109.4420, 39.5768),
        Place("150627105", "红庆河镇", "Hongqinghe", 109.2945, 39.4250),
        Place("150627106", "伊金霍洛镇", "Ejin Horo town", 109.7954, 39.3418),
        Place("150627400", "蒙苏经济开发区", "Mengsu zone", 109.524, 39.577),
        Place("150627407", "鄂尔多斯空港物流园区", "Airport zone", 109.8699, 39.5046),
        # Outside the banner: Kangbashi (Qingchunshan) and Dongsheng national station 53543.
        Place("150603002", "青春山街道", "Qingchunshan (Kangbashi)", 109.7913, 39.6158),
        Place("53543", "东胜", "Dongsheng station", 109.983, 39.833),
    )
}
