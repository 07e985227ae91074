"""Text that reaches a person: terminal lines, names in the ledger, CSV cells (issue 16).

One owner for each defence against hostile text:

- :func:`escape_control` makes control characters visible (``\\n``, ``\\x1b``) so a file name
  holding a newline or ANSI codes can neither forge a second ``cityops: error:`` line nor
  drive the terminal. The CLI's error printer and logging formatter apply it to every message.
- :func:`check_name` refuses control characters in names and actors (``tasks update --by``):
  a name is one line of plain text.
- :func:`neutralise_cell` / :func:`person_csv` keep spreadsheet formulas inert in every CSV a
  person opens (OWASP "CSV injection"): a text cell starting with ``= + - @``, a tab or a
  carriage return gets a leading apostrophe; numbers (and numeric text such as ``-3.5``) are
  left as they are.
"""

from __future__ import annotations

import re

import pandas as pd

from cityops.errors import InputError

__all__ = ["check_name", "escape_control", "neutralise_cell", "person_csv"]

#: Characters that start a formula in Excel, LibreOffice or Google Sheets (OWASP).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# C0/C1 controls, and line/paragraph separators and bidi overrides that break or reorder a line.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match) -> str:
    ch = match.group(0)
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


_SURROGATE_ESCAPED = re.compile("[\udc80-\udcff]")


def _undo_surrogate_escape(text: str) -> str:
    """A file name decoded under an ASCII (C) locale holds its UTF-8 bytes as surrogate escapes
    (``雨`` arrives as ``\\udce9\\udc9b\\udca8``): give back the name the user typed where the
    bytes are UTF-8; otherwise leave the text as it is."""
    if _SURROGATE_ESCAPED.search(text) is None:
        return text
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8")
    except UnicodeError:
        return text


def escape_control(text: object) -> str:
    """``text`` with every control character shown as a backslash escape (one safe line)."""
    return _CONTROL.sub(_escape, _undo_surrogate_escape(str(text)))


def has_control(text: object) -> bool:
    """Whether ``text`` holds a control character (newline, escape, bidi override…)."""
    return _CONTROL.search(str(text)) is not None


def check_name(text: str, *, what: str) -> str:
    """``text`` if it is one line of plain text; :class:`InputError` naming ``what`` otherwise."""
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        # Bytes that were not UTF-8 on the command line (decoded with surrogate escapes).
        raise InputError(
            f"{what} '{escape_control(text)}': not valid UTF-8; expected one line of plain text"
        )
    if has_control(text):
        raise InputError(
            f"{what} '{escape_control(text)}': control characters (newline, tab, escape codes) "
            "are not allowed in a name; expected one line of plain text"
        )
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def neutralise_cell(value):
    """A CSV cell a spreadsheet will not run: formula-like text gets a leading apostrophe.

    Non-text values (numbers, booleans, missing) and numeric text (``-3.5``) are unchanged.

    Examples
    --------
    >>> neutralise_cell("=HYPERLINK(\\"http://x\\")")
    '\\'=HYPERLINK("http://x")'
    >>> neutralise_cell("-3.5"), neutralise_cell(-3.5), neutralise_cell("札萨克镇")
    ('-3.5', -3.5, '札萨克镇')
    """
    if not isinstance(value, str) or not value.startswith(FORMULA_PREFIXES):
        return value
    if _is_number(value.strip()):
        return value
    return "'" + value


def person_csv(frame: pd.DataFrame, **kwargs) -> str:
    """``frame`` as CSV text (``DataFrame.to_csv`` options) with every text cell neutralised.

    The one writer of the CSV files a person opens: review tables, per-unit ``tasks.csv``,
    ``dissemination.csv``, the case-library index (the ledger export uses
    :func:`neutralise_cell` row by row).
    """
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(neutralise_cell)
    kwargs.setdefault("index", False)
    return out.to_csv(**kwargs)
