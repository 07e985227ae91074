"""Command parameters, parsed and checked once at the boundary (the ``argparse`` ``type=``).

Each function turns the text of one option into its value or raises
:class:`argparse.ArgumentTypeError`, which the parser prints as one line naming the option and
the expected range (exit status 2). The commands then trust their values: no second check
beside each use. :func:`check_brief_combinations` refuses options that contradict each other.
"""

from __future__ import annotations

import argparse
import math

from cityops.errors import InputError

__all__ = [
    "byte_size",
    "check_brief_combinations",
    "hours",
    "positive_int",
    "probability",
    "seconds",
    "town_selection",
]


def _number(text: str, kind: type, expected: str, ok) -> float | int:
    """``text`` as ``kind`` if finite and ``ok(value)``; else one line with ``expected``."""
    try:
        value = kind(text)
    except (TypeError, ValueError):
        value = None
    if value is None or not math.isfinite(value) or not ok(value):
        raise argparse.ArgumentTypeError(f"{text!r}: expected {expected}")
    return value


def positive_int(text: str) -> int:
    """A whole number ≥ 1 (``--jobs``: notebooks run in parallel; ``--members``)."""
    return _number(text, int, "a whole number >= 1", lambda v: v >= 1)


def seconds(text: str) -> int:
    """A time limit in whole seconds ≥ 1 (``--timeout``)."""
    return _number(text, int, "a whole number of seconds >= 1", lambda v: v >= 1)


def hours(text: str) -> float:
    """A finite number of hours ≥ 0 (``--max-age``); ``nan`` would switch the guard off."""
    return _number(text, float, "a finite number of hours >= 0", lambda v: v >= 0)


def probability(text: str) -> float:
    """A share of ensemble members in (0, 1] (``--report-probability``).

    0 is refused: a level "reported by 0 % of the members" would be reported always.
    """
    return _number(text, float, "a share 0 < p <= 1 (e.g. 0.3)", lambda v: 0 < v <= 1)


def byte_size(text: str) -> int:
    """A size in bytes ≥ 0, plain or with a unit (``268435456``, ``256MiB``, ``1GB``):
    ``--in-memory-bytes``."""
    from cityops.cluster import parse_size

    try:
        return parse_size(text)
    except InputError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a size in bytes such as 268435456 or 256MiB"
        ) from None


def town_selection(text: str) -> str:
    """``all``, or unit codes/names/aliases separated by commas (empty items dropped).

    An empty selection (``''``, ``','``) is refused here: it must never publish an empty run
    over the previous one. Names are resolved (and duplicates merged) against the
    jurisdiction by ``cityops.brief._select_units``.
    """
    if text.strip().lower() == "all":
        return "all"
    keys = [key.strip() for key in text.split(",") if key.strip()]
    if not keys:
        raise argparse.ArgumentTypeError(
            f"{text!r}: no unit named; expected all, or unit codes or names separated by commas"
        )
    return ",".join(keys)


def check_brief_combinations(args: argparse.Namespace) -> None:
    """Refuse ``brief`` options that contradict each other (one line saying which to drop)."""
    if args.out is not None and args.archive is not None:
        raise InputError(
            "brief: --out and --archive both given; --archive ROOT names the run folder "
            "(ROOT/<issued>): drop --out, or drop --archive to write into --out"
        )
    if args.out is None and args.archive is None:
        raise InputError("brief: give --out DIR or --archive ROOT")
    if args.ledger is not None and args.no_ledger:
        raise InputError(
            "brief: --ledger and --no-ledger both given: drop --no-ledger to record the tasks "
            "in the ledger, or drop --ledger to record none"
        )
