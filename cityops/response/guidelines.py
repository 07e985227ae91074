"""National defence guidelines (防御指南) of the warning signals, as validated data.

The guidelines come from the annex of CMA Order No. 16 (2007), "气象灾害预警信号及防御指南"
(haze red from the CMA 2013 revised haze signal) and live in
``cityops/data/defence_guidelines.yaml``: one entry per hazard and level (1 blue .. 4 red) with
the numbered items in Chinese and English, a short key action for an SMS and a wording flag
(``annex`` or ``condensed``).

The file is validated on load; a problem raises :class:`~cityops.errors.DataFileError` (an
:class:`~cityops.errors.InputError`) with one line naming the file and the field path, e.g.
``.../defence_guidelines.yaml: hazards.rainstorm.levels.4.key_zh: 31 characters, expected at
most 24``.

``low_temperature`` has no national signal (its signal is local, Annex 3), so it has no entry
and :func:`guidance` returns ``None`` for it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from cityops.errors import DataFileError
from cityops.resources import load_yaml, package_data

__all__ = [
    "KEY_EN_MAX",
    "KEY_ZH_MAX",
    "WORDINGS",
    "Guidance",
    "guidance",
    "load_guidelines",
]

#: Wording flags: ``annex`` follows the annex text; ``condensed`` keeps its meaning and measures
#: where the exact annex wording could not be confirmed.
WORDINGS = ("annex", "condensed")
#: Longest key action in Chinese (characters), for an SMS.
KEY_ZH_MAX = 24
#: Longest key action in English (characters).
KEY_EN_MAX = 90
_LEVELS = range(1, 5)
_HAZARD_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_TOP_FIELDS = frozenset({"source", "note", "hazards"})
_HAZARD_FIELDS = frozenset({"name_zh", "levels"})
_LEVEL_FIELDS = frozenset({"wording", "guidance_zh", "guidance_en", "key_zh", "key_en", "source"})


@dataclass(frozen=True)
class Guidance:
    """The national defence guidelines of one warning signal (hazard and level).

    Attributes
    ----------
    hazard : str
        Hazard id, as in the national rule table (``rainstorm``, ``cold_wave``, ...).
    level : int
        Signal level, 1 blue, 2 yellow, 3 orange, 4 red.
    name_zh : str
        Chinese hazard name (暴雨).
    wording : str
        ``annex`` (the annex text) or ``condensed`` (meaning kept, exact wording unconfirmed).
    guidance_zh : tuple of str
        The numbered defence items in Chinese, without their numbers.
    guidance_en : tuple of str
        The same items in English, one for one.
    key_zh : str
        The most important action in Chinese, at most 24 characters.
    key_en : str
        The most important action in English, at most 90 characters.
    source : str
        Where the guidelines come from (the file's ``source`` unless the entry overrides it).
    """

    hazard: str
    level: int
    name_zh: str
    wording: str
    guidance_zh: tuple[str, ...]
    guidance_en: tuple[str, ...]
    key_zh: str
    key_en: str
    source: str


def _fail(path: Path, where: str, problem: str) -> DataFileError:
    return DataFileError(f"{path}: {where}: {problem}")


def _text(path: Path, raw: Mapping[str, Any], where: str, key: str) -> str:
    if key not in raw:
        raise _fail(path, f"{where}.{key}" if where else key, "missing")
    value = raw[key]
    if not isinstance(value, str) or not value.strip():
        raise _fail(path, f"{where}.{key}" if where else key, "expected a non-empty string")
    return value.strip()


def _key(path: Path, raw: Mapping[str, Any], where: str, key: str, limit: int) -> str:
    value = _text(path, raw, where, key)
    if len(value) > limit:
        raise _fail(path, f"{where}.{key}", f"{len(value)} characters, expected at most {limit}")
    return value


def _items(path: Path, raw: Mapping[str, Any], where: str, key: str) -> tuple[str, ...]:
    if key not in raw:
        raise _fail(path, f"{where}.{key}", "missing")
    value = raw[key]
    if not isinstance(value, list) or not value:
        raise _fail(path, f"{where}.{key}", "expected a non-empty list of strings")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise _fail(path, f"{where}.{key}.{i}", "expected a non-empty string")
    return tuple(item.strip() for item in value)


def _no_unknown(path: Path, raw: Mapping[Any, Any], where: str, known: frozenset[str]) -> None:
    unknown = sorted(str(k) for k in raw if k not in known)
    if unknown:
        field_ = f"{where}.{unknown[0]}" if where else unknown[0]
        raise _fail(path, field_, f"unknown field (known: {', '.join(sorted(known))})")


def _level_entry(
    path: Path, hazard: str, name_zh: str, level: Any, raw: Any, default_source: str
) -> Guidance:
    where = f"hazards.{hazard}.levels.{level}"
    if isinstance(level, bool) or not isinstance(level, int) or level not in _LEVELS:
        raise _fail(path, where, f"level {level!r}, expected an integer 1-4 (blue..red)")
    if not isinstance(raw, Mapping):
        raise _fail(path, where, "expected a mapping")
    _no_unknown(path, raw, where, _LEVEL_FIELDS)
    wording = _text(path, raw, where, "wording")
    if wording not in WORDINGS:
        raise _fail(path, f"{where}.wording", f"{wording!r}, expected one of {', '.join(WORDINGS)}")
    zh = _items(path, raw, where, "guidance_zh")
    en = _items(path, raw, where, "guidance_en")
    if len(zh) != len(en):
        raise _fail(
            path,
            f"{where}.guidance_en",
            f"{len(en)} items, expected {len(zh)} (one per guidance_zh item)",
        )
    source = _text(path, raw, where, "source") if "source" in raw else default_source
    return Guidance(
        hazard=hazard,
        level=level,
        name_zh=name_zh,
        wording=wording,
        guidance_zh=zh,
        guidance_en=en,
        key_zh=_key(path, raw, where, "key_zh", KEY_ZH_MAX),
        key_en=_key(path, raw, where, "key_en", KEY_EN_MAX),
        source=source,
    )


def _parse(path: Path) -> dict[tuple[str, int], Guidance]:
    data = load_yaml(path)
    _no_unknown(path, data, "", _TOP_FIELDS)
    source = _text(path, data, "", "source")
    if "note" in data:
        _text(path, data, "", "note")
    hazards = data.get("hazards")
    if not isinstance(hazards, Mapping) or not hazards:
        raise _fail(path, "hazards", "missing or empty; expected a mapping of hazard ids")
    out: dict[tuple[str, int], Guidance] = {}
    for hazard, entry in hazards.items():
        where = f"hazards.{hazard}"
        if not isinstance(hazard, str) or not _HAZARD_ID.match(hazard):
            raise _fail(path, where, f"hazard id {hazard!r}, expected a lower-case ascii id")
        if not isinstance(entry, Mapping):
            raise _fail(path, where, "expected a mapping with name_zh and levels")
        _no_unknown(path, entry, where, _HAZARD_FIELDS)
        name_zh = _text(path, entry, where, "name_zh")
        levels = entry.get("levels")
        if not isinstance(levels, Mapping) or not levels:
            raise _fail(path, f"{where}.levels", "missing or empty; expected a mapping 1-4")
        for level, raw in levels.items():
            out[(hazard, level)] = _level_entry(path, hazard, name_zh, level, raw, source)
    return out


@cache
def _shipped() -> dict[tuple[str, int], Guidance]:
    return _parse(package_data("data", "defence_guidelines.yaml"))


def load_guidelines(path: str | Path | None = None) -> dict[tuple[str, int], Guidance]:
    """Load and validate the defence guidelines.

    Parameters
    ----------
    path : str or Path, optional
        A guidelines YAML file; by default the shipped
        ``cityops/data/defence_guidelines.yaml`` (read once and cached).

    Returns
    -------
    dict of (str, int) to Guidance
        One entry per ``(hazard, level)`` that has national guidelines. A new dict on every
        call; the :class:`Guidance` values are frozen.

    Raises
    ------
    cityops.errors.DataFileError
        An :class:`~cityops.errors.InputError`: the file is unreadable or a field is missing
        or invalid. The one-line message names the file and the field path.
    """
    if path is None:
        return dict(_shipped())
    return _parse(Path(path))


def guidance(hazard: str, level: int) -> Guidance | None:
    """The national defence guidelines of one warning signal.

    Parameters
    ----------
    hazard : str
        Hazard id (``rainstorm``, ``blizzard``, ...).
    level : int
        Signal level, 1 blue .. 4 red.

    Returns
    -------
    Guidance or None
        ``None`` when the hazard or level has no national signal: ``low_temperature`` (a
        local signal only), level 0, or a level the hazard does not have (heat has no blue).
    """
    if isinstance(level, bool):
        return None
    return _shipped().get((hazard, level))
