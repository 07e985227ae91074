"""Review windows: each unit × hazard × window is one verification case (interfaces.md §6).

Windows are half-open ``[start, end)`` intervals of a fixed length aligned to 00 UTC, covering
the event period. Times are naive :class:`pandas.Timestamp` meaning UTC, as everywhere in data.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from cityops.errors import InputError
from cityops.timeutil import parse_utc

__all__ = ["DEFAULT_WINDOW", "ReviewWindow", "parse_window", "review_windows", "window_of"]

DEFAULT_WINDOW = pd.Timedelta(hours=24)


@dataclass(frozen=True)
class ReviewWindow:
    """One review window ``[start, end)`` in UTC."""

    start: pd.Timestamp
    end: pd.Timestamp

    def contains(self, time) -> bool:
        """Whether ``time`` (UTC) falls in ``[start, end)``."""
        ts = parse_utc(time)
        return self.start <= ts < self.end

    def overlaps(self, start, end=None) -> bool:
        """Whether the closed period ``[start, end]`` (a point when ``end`` is None) meets the window."""
        s = parse_utc(start)
        e = s if end is None or pd.isna(end) else parse_utc(end)
        return s < self.end and e >= self.start


def parse_window(value) -> pd.Timedelta:
    """A window length from ``"24h"``, ``"6h"``, ``"1d"`` or a :class:`~pandas.Timedelta`.

    The length must divide a day into whole windows (1, 2, 3, 4, 6, 8, 12, 24 h, or whole days)
    so that windows stay aligned to 00 UTC.
    """
    try:
        length = pd.Timedelta(value)
    except (ValueError, TypeError):
        raise InputError(
            f"--window: cannot read {value!r} as a duration (expected e.g. 24h)"
        ) from None
    day = pd.Timedelta(days=1)
    if (
        length <= pd.Timedelta(0)
        or (length < day and day % length != pd.Timedelta(0))
        or (length >= day and length % day != pd.Timedelta(0))
    ):
        raise InputError(
            f"--window: {value!r} does not divide the day into whole windows aligned to 00 UTC "
            "(expected 1, 2, 3, 4, 6, 8, 12 or 24 h, or whole days)"
        )
    return length


def window_of(time, length=DEFAULT_WINDOW) -> ReviewWindow:
    """The aligned window containing ``time``."""
    ts = parse_utc(time)
    length = parse_window(length)
    start = (
        ts.normalize() + ((ts - ts.normalize()) // length) * length
        if length < pd.Timedelta(days=1)
        else pd.Timestamp("1970-01-01") + ((ts - pd.Timestamp("1970-01-01")) // length) * length
    )
    return ReviewWindow(start, start + length)


def review_windows(start, end, length=DEFAULT_WINDOW) -> list[ReviewWindow]:
    """The aligned windows that cover ``[start, end]`` (UTC), in order.

    Examples
    --------
    >>> [w.start.isoformat() for w in review_windows("2026-07-10T06:00", "2026-07-11T03:00")]
    ['2026-07-10T00:00:00', '2026-07-11T00:00:00']
    """
    s, e = parse_utc(start, what="review start"), parse_utc(end, what="review end")
    if e < s:
        raise InputError(f"review period: end {e} is before start {s}")
    first = window_of(s, length)
    windows = [first]
    while windows[-1].end <= e:
        w = windows[-1]
        windows.append(ReviewWindow(w.end, w.end + (w.end - w.start)))
    return windows
