"""Time conventions: UTC in data (naive ``datetime64`` meaning UTC), Beijing time in reports."""

from __future__ import annotations

import pandas as pd

from cityops.errors import InputError

__all__ = ["REPORT_TZ", "format_local", "iso_utc", "parse_utc"]

REPORT_TZ = "Asia/Shanghai"


def parse_utc(value, *, what: str = "time") -> pd.Timestamp:
    """Parse a time to a naive UTC :class:`pandas.Timestamp`.

    Naive inputs are taken as UTC; aware inputs are converted. ``"now"`` is the wall clock.
    """
    try:
        ts = pd.Timestamp.now(tz="UTC") if value == "now" else pd.Timestamp(value)
    except (ValueError, TypeError):
        raise InputError(f"{what}: cannot read {value!r} as a time (expected ISO 8601)") from None
    if ts is pd.NaT:
        raise InputError(f"{what}: cannot read {value!r} as a time (expected ISO 8601)")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


def iso_utc(ts) -> str:
    """``2026-07-10T13:00:00Z`` (empty string for missing)."""
    if ts is None or pd.isna(ts):
        return ""
    return parse_utc(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_local(ts, fmt: str = "%m月%d日%H:%M", tz: str = REPORT_TZ) -> str:
    """A UTC time shown in local (Beijing) time."""
    if ts is None or pd.isna(ts):
        return ""
    return parse_utc(ts).tz_localize("UTC").tz_convert(tz).strftime(fmt)
