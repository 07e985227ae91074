"""How far a forecast's ``issued`` may lie from the reference time (``cityops/data/freshness.yaml``).

One owner for the time guards of ``assess`` and ``brief``: a forecast issued in the future (a
wrong clock or a wrong ``issued`` attribute) and a ``--now`` so far from ``issued`` that every
lead time is meaningless are refused with exit status 2, rather than briefed with lead times
of ±10⁶ h. An exit, not a note: nothing in such a briefing is right, and a note would sit in
an output that otherwise looks normal.
"""

from __future__ import annotations

from functools import cache

import pandas as pd

from cityops.errors import DataFileError, InputError
from cityops.resources import load_yaml, package_data

__all__ = ["check_not_future", "check_reference_time", "limits"]


@cache
def limits() -> dict[str, float]:
    """``future_tolerance_hours`` and ``max_reference_offset_hours``, validated."""
    path = package_data("data", "freshness.yaml")
    data = load_yaml(path)
    out = {}
    for key in ("future_tolerance_hours", "max_reference_offset_hours"):
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise DataFileError(f"{path}: {key}: expected a number of hours >= 0, got {value!r}")
        out[key] = float(value)
    return out


def _fmt(ts: pd.Timestamp) -> str:
    return f"{ts:%Y-%m-%dT%H:%MZ}"


def check_not_future(issued: pd.Timestamp, reference: pd.Timestamp, *, source: str) -> None:
    """Refuse a real forecast issued after ``reference`` (wall clock or ``--now``) + tolerance."""
    tolerance = limits()["future_tolerance_hours"]
    ahead = (issued - reference) / pd.Timedelta("1h")
    if not ahead <= tolerance:
        raise InputError(
            f"{source}: forecast issued {_fmt(issued)} lies {ahead:.0f} h after the reference "
            f"time {_fmt(reference)} (tolerance {tolerance:g} h); expected an issue time in the "
            "past: check the file's 'issued' and the clock (--allow-stale does not cover this)"
        )


def check_reference_time(issued: pd.Timestamp, now: pd.Timestamp, *, source: str) -> None:
    """Refuse a ``--now`` before ``issued`` or further after it than any forecast reaches."""
    lim = limits()
    offset = (now - issued) / pd.Timedelta("1h")
    if offset < -lim["future_tolerance_hours"] or offset > lim["max_reference_offset_hours"]:
        raise InputError(
            f"{source}: --now {_fmt(now)} is {offset:+.0f} h from the forecast's issue time "
            f"{_fmt(issued)}; expected between -{lim['future_tolerance_hours']:g} h and "
            f"+{lim['max_reference_offset_hours']:g} h (wrong file or wrong --now?)"
        )
