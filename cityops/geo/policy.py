"""How a unit gets its level from the gridded level fields: a jurisdiction policy as data.

``cityops/data/level_policy.yaml`` holds the documented default; a jurisdiction folder may
carry its own ``level_policy.yaml`` whose fields replace the default's. The policy is read
and validated once per jurisdiction folder (:func:`level_policy`) and applied by
:func:`cityops.geo.risk.town_hazards` (rules ``area_share`` and ``any_cell``, anchors) and by
the jurisdiction loader (the seat disc of a unit without a polygon).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

from cityops.errors import DataFileError
from cityops.resources import load_yaml, package_data

__all__ = ["ANCHORS", "FILE_NAME", "RULES", "LevelPolicy", "level_policy"]

#: Name of the policy file, in cityops/data and in a jurisdiction folder.
FILE_NAME = "level_policy.yaml"
#: How a level holds for a unit.
RULES = ("area_share", "any_cell")
#: Places whose own cell sets a unit's level whatever the area share.
ANCHORS = ("seat", "exposure_points")


@dataclass(frozen=True)
class LevelPolicy:
    """How a unit gets its level (see ``cityops/data/level_policy.yaml``).

    Attributes
    ----------
    rule : {"area_share", "any_cell"}
    min_area_share : float
        Share of the unit's area (0-1] that must reach a level at one time (``area_share``).
    min_cell_overlap : float
        Share of a cell that must lie in the unit for the cell to count for it.
    anchors : tuple of str
        Subset of :data:`ANCHORS`.
    seat_disc_km : float
        Radius of the disc assessed for a unit with a seat but no polygon.
    source : str
        Why these values.
    origin : str
        The file(s) the policy was read from.
    """

    rule: str = "area_share"
    min_area_share: float = 0.10
    min_cell_overlap: float = 0.25
    anchors: tuple[str, ...] = ANCHORS
    seat_disc_km: float = 5.0
    source: str = ""
    origin: str = ""

    def describe(self, lang: str = "en") -> str:
        """One sentence for reports: how a unit gets its level."""
        share = f"{self.min_area_share * 100:.0f}"
        if lang == "zh":
            if self.rule == "any_cell":
                text = "任一网格达到即计入全镇"
            else:
                text = f"达到某级的网格在同一时刻覆盖全镇面积≥{share}%时计入该级"
            names = {"seat": "镇政府驻地", "exposure_points": "风险点"}
            if self.anchors:
                text += "，或" + "、".join(names[a] for a in self.anchors) + "所在网格达到该级"
            return text
        if self.rule == "any_cell":
            text = "a unit takes the level of any cell that counts for it"
        else:
            text = (
                f"a unit takes a level when cells reaching it cover at least {share} % of its "
                "area at one time"
            )
        if self.anchors:
            names = {"seat": "its seat", "exposure_points": "an exposure point"}
            text += ", or when the cell of " + " or ".join(names[a] for a in self.anchors)
            text += " reaches it"
        return text


def _number(value, where: str, lo: float, hi: float, *, lo_open: bool = False) -> float:
    try:
        x = math.nan if isinstance(value, bool) else float(value)  # true is not 1.0
    except (TypeError, ValueError):
        x = math.nan
    ok = math.isfinite(x) and (x > lo if lo_open else x >= lo) and x <= hi
    if not ok:
        bound = f"{'(' if lo_open else '['}{lo:g}, {hi:g}]"
        raise DataFileError(f"{where}: expected a number in {bound}, got {value!r}")
    return x


def _parse(raw: dict, origin: str) -> LevelPolicy:
    known = {
        "rule",
        "min_area_share",
        "min_cell_overlap",
        "anchors",
        "seat_disc_km",
        "source",
    }
    unknown = sorted(set(raw) - known)
    if unknown:
        raise DataFileError(
            f"{origin}: unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    rule = str(raw.get("rule", ""))
    if rule not in RULES:
        raise DataFileError(
            f"{origin}: field 'rule': expected one of {', '.join(RULES)}, got {rule!r}"
        )
    anchors = raw.get("anchors", [])
    if not isinstance(anchors, list) or any(a not in ANCHORS for a in anchors):
        raise DataFileError(
            f"{origin}: field 'anchors': expected a list of {', '.join(ANCHORS)}, got {anchors!r}"
        )
    source = raw.get("source")
    if not isinstance(source, str) or not source.strip():
        raise DataFileError(f"{origin}: field 'source': say where the values come from")
    return LevelPolicy(
        rule=rule,
        min_area_share=_number(
            raw.get("min_area_share"), f"{origin}: field 'min_area_share'", 0, 1, lo_open=True
        ),
        min_cell_overlap=_number(
            raw.get("min_cell_overlap"), f"{origin}: field 'min_cell_overlap'", 0, 1
        ),
        anchors=tuple(dict.fromkeys(anchors)),
        seat_disc_km=_number(
            raw.get("seat_disc_km"), f"{origin}: field 'seat_disc_km'", 0, 100, lo_open=True
        ),
        source=" ".join(source.split()),
        origin=origin,
    )


@functools.cache
def _cached(folder: str | None) -> LevelPolicy:
    default_path = package_data("data", FILE_NAME)
    raw = dict(load_yaml(default_path))
    origin = str(default_path)
    if folder is not None:
        path = Path(folder) / FILE_NAME
        if path.exists():
            own = load_yaml(path)
            if not isinstance(own, dict):
                raise DataFileError(f"{path}: expected a mapping of policy fields")
            if "source" not in own:
                raise DataFileError(f"{path}: field 'source': say where the values come from")
            raw.update(own)
            origin = f"{path} (over {default_path.name})"
    return _parse(raw, origin)


def level_policy(folder: str | Path | None = None) -> LevelPolicy:
    """The level policy of a jurisdiction folder (its ``level_policy.yaml`` over the default),
    or the default when ``folder`` is None.

    Raises
    ------
    DataFileError
        One line naming the file and the field.
    """
    return _cached(None if folder is None else str(Path(folder).resolve()))
