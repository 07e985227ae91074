"""Report wording: Chinese by default, English on request (``cityops/data/i18n.yaml``)."""

from __future__ import annotations

from functools import cache

from cityops.errors import InputError
from cityops.resources import load_yaml, package_data

__all__ = ["LANGS", "check_lang", "level_label", "t", "tier_label"]

LANGS = ("zh", "en")


@cache
def _catalog() -> dict:
    return load_yaml(package_data("data", "i18n.yaml"))


def check_lang(lang: str) -> str:
    if lang not in LANGS:
        raise InputError(f"lang: {lang!r} is not one of {', '.join(LANGS)}")
    return lang


def t(key: str, lang: str = "zh", **fields) -> str:
    """The wording of ``key`` in ``lang``, formatted with ``fields``."""
    text = _catalog()[check_lang(lang)][key]
    return text.format(**fields) if fields else text


def level_label(level: int, lang: str = "zh") -> str:
    return _catalog()[check_lang(lang)]["levels"][int(level)]


def tier_label(tier: str, lang: str = "zh") -> str:
    return _catalog()[check_lang(lang)]["tiers"].get(tier, tier) if tier else ""
