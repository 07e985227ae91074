"""Hazard seasons: the dates in which a signal applies (frost affecting crops).

A rule table's hazard names its season by key (``season: crop_frost``); the dates are place
data. ``cityops/data/hazard_seasons.yaml`` holds a documented default climatology; a
jurisdiction folder may carry its own ``hazard_seasons.yaml`` (same layout), which replaces
the default season of the same key. :func:`bind_seasons` gives a rule table the seasons of a
jurisdiction before it is evaluated.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cityops.errors import DataFileError
from cityops.resources import load_yaml, package_data

__all__ = ["FILE_NAME", "HazardSeason", "bind_seasons", "load_hazard_seasons"]

#: Name of the seasons file, in cityops/data and in a jurisdiction folder.
FILE_NAME = "hazard_seasons.yaml"


@dataclass(frozen=True)
class HazardSeason:
    """Inclusive local-date windows ``(start, end)`` as ``"MM-DD"``; a window whose end is
    before its start crosses the new year."""

    key: str
    windows: tuple[tuple[str, str], ...]
    source: str
    origin: str = ""

    def mask(self, times: pd.DatetimeIndex, timezone: str) -> np.ndarray:
        """Whether each valid time (UTC, naive) falls in the season, by its local date (a step
        ending at 24:00 belongs to the day it closes)."""
        local = times.tz_localize("UTC").tz_convert(timezone).tz_localize(None)
        local = local - pd.Timedelta("1ns")
        md = np.asarray(local.month * 100 + local.day)
        out = np.zeros(len(md), dtype=bool)
        for start, end in self.windows:
            lo, hi = _mmdd(start), _mmdd(end)
            out |= ((md >= lo) & (md <= hi)) if lo <= hi else ((md >= lo) | (md <= hi))
        return out

    def describe(self) -> str:
        """``"15 Apr-20 Jun, 1 Sep-15 Oct"`` style text (English month names)."""
        parts = []
        for start, end in self.windows:
            a = pd.Timestamp(f"2001-{start}").strftime("%-d %b")
            b = pd.Timestamp(f"2001-{end}").strftime("%-d %b")
            parts.append(f"{a}-{b}")
        return ", ".join(parts)


def _mmdd(text: str) -> int:
    month, day = (int(x) for x in text.split("-"))
    return month * 100 + day


def _parse_windows(raw: Any, where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, list) or not raw:
        raise DataFileError(f"{where}: field 'windows' must be a non-empty list")
    out = []
    for i, w in enumerate(raw):
        if not isinstance(w, dict) or "start" not in w or "end" not in w:
            raise DataFileError(f"{where}: window {i + 1} needs start and end ('MM-DD')")
        pair = []
        for name in ("start", "end"):
            text = str(w[name])
            try:
                pd.Timestamp(f"2000-{text}")  # a leap year, so 02-29 is a date
                if len(text) != 5:
                    raise ValueError
            except ValueError:
                raise DataFileError(
                    f"{where}: window {i + 1} field {name!r}: {text!r} is not 'MM-DD'"
                ) from None
            pair.append(text)
        out.append((pair[0], pair[1]))
    return tuple(out)


def _read(path: Path) -> dict[str, HazardSeason]:
    data = load_yaml(path)
    seasons = data.get("seasons")
    if not isinstance(seasons, dict) or not seasons:
        raise DataFileError(f"{path}: field 'seasons' must map season keys to their windows")
    out = {}
    for key, spec in seasons.items():
        where = f"{path}: season {key!r}"
        if not isinstance(spec, dict) or not spec.get("source"):
            raise DataFileError(
                f"{where}: field 'source' is missing (say where the dates come from)"
            )
        windows = _parse_windows(spec.get("windows"), where)
        out[str(key)] = HazardSeason(str(key), windows, str(spec["source"]).strip(), str(path))
    return out


def load_hazard_seasons(jurisdiction_path: str | Path | None = None) -> dict[str, HazardSeason]:
    """The default seasons, with those of a jurisdiction folder's ``hazard_seasons.yaml``
    (when it has one) in place of the default of the same key."""
    seasons = _read(package_data("data", FILE_NAME))
    if jurisdiction_path is not None:
        local = Path(jurisdiction_path) / FILE_NAME
        if local.is_file():
            seasons.update(_read(local))
    return seasons


def bind_seasons(table, jurisdiction_path: str | Path | None):
    """The rule table with each seasonal hazard's dates taken from the jurisdiction (or the
    default climatology). Returns the table itself when nothing changes."""
    seasons = load_hazard_seasons(jurisdiction_path)
    hazards = dict(table.hazards)
    changed = False
    for name, rules in hazards.items():
        key = rules.season.key if rules.season is not None else None
        if key is None or key not in seasons or seasons[key] == rules.season:
            continue
        hazards[name] = dataclasses.replace(rules, season=seasons[key])
        changed = True
    return dataclasses.replace(table, hazards=hazards) if changed else table
