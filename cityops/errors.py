"""Exceptions that carry the command line's exit status.

Every failure a user can cause (a bad file, a missing variable, a wrong parameter) is a
:class:`InputError`: the CLI prints its one-line message and exits with status 2. A batch
that finished only in part raises :class:`PartialFailure` (exit status 3).
"""

from __future__ import annotations


class CityopsError(Exception):
    """Base class of errors raised on purpose by cityops."""

    exit_code = 1


class InputError(CityopsError, ValueError):
    """Bad input: unreadable file, unusable variable, invalid parameter (exit status 2).

    The message is one line naming the file, the variable and what was expected.
    """

    exit_code = 2


class DataFileError(InputError):
    """A shipped or user-supplied data file (rule table, jurisdiction) failed validation."""


class PartialFailure(CityopsError):
    """A batch finished, but some units failed (exit status 3)."""

    exit_code = 3

    def __init__(self, message: str, failed: dict[str, str] | None = None):
        super().__init__(message)
        self.failed = dict(failed or {})
