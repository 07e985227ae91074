"""Moved to :mod:`cityops.i18n` (the wording is read by ``review/`` and ``response/`` too).
Kept importable for :mod:`cityops.report.briefing` until it imports :mod:`cityops.i18n`."""

from cityops.i18n import LANGS, _catalog, check_lang, level_label, t, tier_label

__all__ = ["LANGS", "_catalog", "check_lang", "level_label", "t", "tier_label"]
