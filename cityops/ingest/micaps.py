"""MICAPS text files: the documented subset of "diamond 4" grids and "diamond 1" stations.

MICAPS (the CMA forecasters' workstation) exchanges plain-text files whose first line starts
with ``diamond N`` followed by a free-text description (GBK Chinese). cityops reads two types:

**diamond 4** (gridded field) — :func:`read_micaps4`

* line 1: ``diamond 4 <description>``; the description is read as UTF-8 when it is strictly
  valid UTF-8, else as GBK (its superset GB 18030); neither is refused (GBK alone would turn
  a UTF-8 header into mojibake without an error).
* then whitespace-separated numbers, read as one token stream whatever the line breaks:

  ====  ==================  =====================================================
  #     field               notes
  ====  ==================  =====================================================
  1     year                2 digits (``19`` → 2019; 50–99 → 19xx) or 4 digits
  2–4   month, day, hour    run (initial) time, Beijing time (UTC+8)
  5     lead hour           forecast hour; valid time = run + lead
  6     level               0 (or 9999) at the surface, else hPa
  7–8   dlon, dlat          grid steps in degrees (the sign of the step is taken
                            from the bounds when they disagree)
  9–10  lon_start, lon_end
  11–12 lat_start, lat_end  ``lat_start > lat_end`` is common (rows run north→south)
  13–14 nlon, nlat          checked against bounds/steps (tolerance half a step)
  15–17 contour interval, start, end   display only, ignored
  18–19 smoothing, bold value          display only, ignored
  ====  ==================  =====================================================

  then ``nlon × nlat`` values, ``nlon`` per row, rows from ``lat_start`` to ``lat_end``.
  ``9999`` is missing. Extra trailing values are ignored with a warning.

* The file name ``YYMMDDHH.TTT`` (run time in Beijing time, lead hours; ``YYYYMMDDHH.TTT``
  also accepted) is authoritative: MICAPS archives are organised by it, while headers are
  sometimes wrong (the NMC's ``19051708.024`` says hour 0). A disagreement is logged as a
  warning naming both and kept in ``history``; an unparseable name leaves the header in charge.
* The variable is recognised from the description with the keyword table
  ``cityops/data/micaps_elements.yaml`` (``variable=``/``units=`` override it). Descriptions
  that went through a lossy UTF-8 round trip ("锟斤拷": GBK bytes replaced by U+FFFD) are
  matched byte-wise, letting each U+FFFD stand for the 1–3 bytes it replaced; the match is
  accepted only when it points to a single variable, and the guess is logged.

**diamond 1** (surface synoptic observations) — :func:`read_micaps1`

* line 1: ``diamond 1 <description>``; line 2: year month day hour (Beijing time) and the
  station count; then one line per station with 24 whitespace-separated fields (26 when flag1
  is 1 and flag2 is 2: the 24-h temperature and pressure changes follow, and are ignored):

  ==  ======================  ===============================================
  #   field                   used as
  ==  ======================  ===============================================
  1   station id              ``station_id`` (string, leading zeros kept)
  2   longitude               ``lon``
  3   latitude                ``lat``
  4   elevation (m)
  5   station level (plot zoom level)
  6   total cloud amount
  7   wind direction (degree)
  8   wind speed (m s-1)      ``wind``
  9   sea-level pressure      ``pressure_msl`` (hPa): the 3-digit plotting code in
                              0.1 hPa is decoded (< 600 → 1000 + v/10, else 900 +
                              v/10, as the NMC's readers do); values with decimals
                              between 850 and 1100 are taken as hPa already
  10  3-h pressure change
  11  past weather 1
  12  past weather 2
  13  6-h precipitation (mm)  ``precip`` (negative codes, used for "none"/"trace",
                              read as 0; ``df.attrs["precip_hours"] = 6``)
  14  low cloud type
  15  low cloud amount
  16  low cloud height
  17  dew point (degC)        ``dew_point``
  18  visibility (km)         ``vis`` (converted to m)
  19  present weather
  20  temperature (degC)      ``t2m``
  21  mid cloud type
  22  high cloud type
  23  flag 1
  24  flag 2
  ==  ======================  ===============================================

  ``9999`` is missing. Records must be one per line: a short line is a truncated record.
  The time comes from the file name ``YYMMDDHH.000`` (Beijing time) as for diamond 4.

Both readers return UTC times (naive ``datetime64``) and record every inference in a
``history`` (dataset attribute / ``DataFrame.attrs``), logged on the ``cityops`` logger.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from cityops.errors import DataFileError, InputError
from cityops.resources import canonical_variables, load_yaml, package_data
from cityops.timeutil import iso_utc
from cityops.units import convert_dataarray

__all__ = ["micaps_elements", "read_micaps1", "read_micaps4", "sniff_micaps"]

log = logging.getLogger("cityops")

MISSING = 9999.0
BEIJING_UTC_OFFSET = pd.Timedelta(hours=8)

_BOM = b"\xef\xbb\xbf"
_REPLACEMENT = b"\xef\xbf\xbd"  # U+FFFD in UTF-8: a byte lost in an earlier decoding
_MAGIC = re.compile(rb"\A\s*(?:\xef\xbb\xbf)?\s*diamond\s+(\d+)", re.IGNORECASE)
_NAME = re.compile(r"\A(\d{2}|\d{4})(\d{2})(\d{2})(\d{2})\.(\d{3})\Z")

MICAPS4_HEADER = (
    "year",
    "month",
    "day",
    "hour",
    "lead hour",
    "level",
    "dlon",
    "dlat",
    "lon_start",
    "lon_end",
    "lat_start",
    "lat_end",
    "nlon",
    "nlat",
    "contour interval",
    "contour start",
    "contour end",
    "smoothing",
    "bold value",
)

MICAPS1_FIELDS = (
    "station id",
    "lon",
    "lat",
    "elevation",
    "station level",
    "total cloud",
    "wind direction",
    "wind speed",
    "sea-level pressure",
    "3-h pressure change",
    "past weather 1",
    "past weather 2",
    "6-h precipitation",
    "low cloud type",
    "low cloud amount",
    "low cloud height",
    "dew point",
    "visibility",
    "present weather",
    "temperature",
    "mid cloud type",
    "high cloud type",
    "flag 1",
    "flag 2",
)

MICAPS1_UNITS = {
    "t2m": "degC",
    "wind": "m s-1",
    "vis": "m",
    "precip": "mm",
    "dew_point": "degC",
    "pressure_msl": "hPa",
}


# --------------------------------------------------------------------------- sniffing / header


def sniff_micaps(path: str | Path) -> int | None:
    """MICAPS type of a file from its first bytes: 4, 1, or None (also for unreadable files).

    A file is recognised when it starts, after optional whitespace or a UTF-8 BOM, with
    ``diamond 4`` or ``diamond 1`` (any spacing, any case).
    """
    try:
        with Path(path).open("rb") as fh:
            head = fh.read(64)
    except OSError:
        return None
    m = _MAGIC.match(head)
    if m is None:
        return None
    kind = int(m.group(1))
    return kind if kind in (1, 4) else None


def _read_file(path: Path, kind: int) -> tuple[bytes, bytes, int]:
    """(description bytes, body bytes, line number of the body's first line)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder; expected a MICAPS diamond {kind} file") from None
    except OSError as err:
        raise InputError(f"{path}: cannot be read ({err.strerror or err})") from None
    m = _MAGIC.match(raw)
    if m is None or int(m.group(1)) != kind:
        found = f"'diamond {int(m.group(1))}'" if m else repr(raw[:12])
        raise InputError(
            f"{path}: not a MICAPS diamond {kind} file (starts with {found}; "
            f"expected 'diamond {kind}')"
        )
    eol = raw.find(b"\n", m.end())
    if eol < 0:
        eol = len(raw)
    header = raw[m.end() : eol].strip()
    body = raw[eol + 1 :].rstrip(b"\x1a\x00 \t\r\n")  # DOS end-of-file marks, padding
    first_body_line = raw.count(b"\n", 0, eol) + 2
    return header, body, first_body_line


def _decode_description(raw: bytes, path: Path) -> str:
    """The description: UTF-8 when it decodes strictly as UTF-8, else GBK (GB 18030), else
    :class:`InputError` (never mojibake without a word).

    UTF-8 is tried first because GBK decodes almost any byte string without error: a UTF-8
    header read as GBK gives mojibake ("2绫虫俯搴?") silently, and the element is not found or
    is the wrong one. A description holding U+FFFD sequences went through a lossy UTF-8 round
    trip (GBK bytes read as UTF-8 and written back): it is valid UTF-8, but its surviving bytes
    are GBK, so it is read as GBK (the lost bytes show as the familiar "锟斤拷").
    """
    if raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
    elif _REPLACEMENT in raw:
        return raw.decode("gb18030", errors="replace")
    for encoding in ("utf-8", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            pass
    raise InputError(
        f"{path}: the description on line 1 is neither UTF-8 nor GBK text "
        f"(bytes {raw[:16]!r}...); expected the MICAPS header in GBK (or UTF-8)"
    )


def _line_of_token(body: bytes, index: int, first_line: int) -> int:
    """Line number (1-based, in the file) of the ``index``-th whitespace token of ``body``."""
    seen = 0
    for offset, line in enumerate(body.split(b"\n")):
        seen += len(line.split())
        if seen > index:
            return first_line + offset
    return first_line + body.count(b"\n")


def _as_float(token: bytes) -> float | None:
    try:
        return float(token)
    except ValueError:
        return None


# --------------------------------------------------------------------------------------- time


def _year(value: float) -> int:
    year = int(value)
    if year < 100:
        year += 1900 if year >= 50 else 2000
    return year


def _timestamp(year: float, month: float, day: float, hour: float) -> pd.Timestamp | None:
    try:
        if any(v != int(v) for v in (year, month, day, hour)):
            return None
        return pd.Timestamp(_year(year), int(month), int(day), int(hour))
    except (ValueError, OverflowError):
        return None


def _parse_name(name: str) -> tuple[pd.Timestamp, int] | None:
    """Run time (Beijing) and lead hours from ``YYMMDDHH.TTT`` / ``YYYYMMDDHH.TTT``."""
    m = _NAME.match(name)
    if m is None:
        return None
    y, mo, d, h, lead = (int(g) for g in m.groups())
    run = _timestamp(y, mo, d, h)
    return None if run is None else (run, lead)


def _resolve_run_time(
    path: Path,
    header: tuple[float, float, float, float],
    header_lead: float | None,
    history: _History,
) -> tuple[pd.Timestamp, float]:
    """Run time in Beijing time and lead hours: the file name wins over the header."""
    hdr = _timestamp(*header)
    hdr_text = (
        f"{hdr:%Y-%m-%d %H:%M}"
        if hdr is not None
        else "{}-{}-{} {}".format(*(f"{v:g}" for v in header))
    )
    named = _parse_name(path.name)
    if named is None:
        if hdr is None:
            raise InputError(
                f"{path}: no valid run time: the header's date/hour {hdr_text} is not a date "
                f"and the file name is not YYMMDDHH.TTT"
            )
        if header_lead is None:
            lead = 0.0
        elif header_lead < 0:
            raise InputError(f"{path}: lead hour {header_lead:g} in the header is negative")
        else:
            lead = float(header_lead)
        history.add(
            f"time: run {hdr:%Y-%m-%d %H:%M} Beijing time from the header "
            f"(file name {path.name!r} is not YYMMDDHH.TTT)"
        )
        return hdr, lead
    run, name_lead = named
    what = f"the file name {path.name}"
    if hdr is None:
        history.warn(
            f"{path}: header date/hour {hdr_text} is not a valid date; using {what} "
            f"({run:%Y-%m-%d %H:%M} Beijing time)",
        )
    elif hdr != run:
        hint = (
            " (the header time is the same instant in UTC)"
            if hdr == run - BEIJING_UTC_OFFSET
            else ""
        )
        history.warn(
            f"{path}: header run time {hdr_text} disagrees with {what} "
            f"({run:%Y-%m-%d %H:%M} Beijing time); using the file name{hint}",
        )
    if header_lead is not None and header_lead != name_lead:
        history.warn(
            f"{path}: header lead {header_lead:g} h disagrees with {what} "
            f"({name_lead} h); using the file name",
        )
    history.add(f"time: run {run:%Y-%m-%d %H:%M} Beijing time from {what}")
    return run, float(name_lead)


class _History(list):
    """Lines for the ``history`` attribute, logged as they are added (warnings as warnings)."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path

    def add(self, line: str, *, first: bool = False) -> None:
        log.info("%s: %s", self.path.name, line)
        if first:
            self.insert(0, line)
        else:
            self.append(line)

    def warn(self, message: str) -> None:
        log.warning("%s", message)
        self.append(message)


# ---------------------------------------------------------------------------- element table


@dataclass(frozen=True)
class MicapsElement:
    """One row of ``micaps_elements.yaml``."""

    variable: str
    keywords: tuple[str, ...]
    units: str
    note: str = ""
    plausible: tuple[float, float] | None = None


@dataclass(frozen=True)
class MicapsElementTable:
    source: str
    elements: tuple[MicapsElement, ...]
    exclude: tuple[str, ...]
    upper_levels: frozenset[float]
    surface_markers: tuple[str, ...]

    def for_variable(self, name: str) -> MicapsElement | None:
        return next((e for e in self.elements if e.variable == name), None)


@cache
def micaps_elements() -> MicapsElementTable:
    """The keyword table ``cityops/data/micaps_elements.yaml``, validated."""
    path = package_data("data", "micaps_elements.yaml")
    data = load_yaml(path)
    registry = canonical_variables()
    if not data.get("source"):
        raise DataFileError(f"{path}: field 'source' is missing")
    rows = data.get("elements")
    if not isinstance(rows, list) or not rows:
        raise DataFileError(f"{path}: 'elements' must be a non-empty list")
    elements = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or row.get("variable") not in registry:
            raise DataFileError(f"{path}: elements[{i}] needs a canonical 'variable'")
        keywords = row.get("keywords")
        if not isinstance(keywords, list) or not keywords or not row.get("units"):
            raise DataFileError(f"{path}: elements[{i}] needs 'keywords' (a list) and 'units'")
        plausible = row.get("plausible")
        elements.append(
            MicapsElement(
                variable=row["variable"],
                keywords=tuple(str(k) for k in keywords),
                units=str(row["units"]),
                note=str(row.get("note", "")),
                plausible=tuple(float(v) for v in plausible) if plausible else None,
            )
        )
    return MicapsElementTable(
        source=str(data["source"]),
        elements=tuple(elements),
        exclude=tuple(str(w) for w in data.get("exclude", ())),
        upper_levels=frozenset(float(v) for v in data.get("upper_levels", ())),
        surface_markers=tuple(str(w) for w in data.get("surface_markers", ())),
    )


def _damaged_score(raw: bytes, keyword: bytes) -> int:
    """Most bytes of ``keyword`` found literally in ``raw`` when each U+FFFD in ``raw`` may stand
    for 1–3 lost keyword bytes (how a UTF-8 decoder replaces invalid sequences); -1: no match."""
    n, size = len(keyword), len(raw)

    @cache
    def walk(i: int, j: int) -> int:
        if i == n:
            return 0
        best = -1
        if j < size and raw[j] == keyword[i]:
            rest = walk(i + 1, j + 1)
            if rest >= 0:
                best = rest + 1
        if raw.startswith(_REPLACEMENT, j):
            for k in range(1, min(3, n - i) + 1):
                best = max(best, walk(i + k, j + len(_REPLACEMENT)))
        return best

    return max((walk(0, j) for j in range(size)), default=-1)


def _damaged_match(raw: bytes, words: tuple[str, ...]) -> tuple[str, int] | None:
    """Best keyword (and its literal byte count) matching a damaged description byte-wise."""
    best: tuple[str, int] | None = None
    for word in words:
        if word.isascii():
            continue
        encoded = word.encode("gb18030")
        score = _damaged_score(raw, encoded)
        if score >= max(2, math.ceil(len(encoded) / 3)) and (best is None or score > best[1]):
            best = (word, score)
    return best


def _recognise(text: str, raw: bytes, level: float) -> tuple[MicapsElement | None, str, bool]:
    """The element named by a description: (element, how it was recognised, guessed from a
    damaged description) or (None, why not, False)."""
    table = micaps_elements()
    low = text.lower()
    for word in table.exclude:
        if word.lower() in low:
            return (
                None,
                f"{word!r} marks an element that is not a canonical surface variable",
                False,
            )
    if level in table.upper_levels and not any(m.lower() in low for m in table.surface_markers):
        return None, f"level {level:g} is a pressure level, not the surface", False
    for element in table.elements:
        for word in element.keywords:
            if word.lower() in low:
                return element, f"keyword {word!r}", False
    if _REPLACEMENT not in raw:
        return None, "no known element word in it", False
    # The description lost bytes in an earlier UTF-8 round trip: match byte-wise, and accept
    # only a variable whose keyword keeps strictly more bytes than any rival (other variables,
    # exclusion words): "c2 b6" may be the middle of 温度 or the whole of 露.
    hits: dict[str, tuple[MicapsElement, str, int]] = {}
    for element in table.elements:
        found = _damaged_match(raw, element.keywords)
        if found is not None and found[1] > hits.get(element.variable, (None, "", -1))[2]:
            hits[element.variable] = (element, *found)
    excluded = _damaged_match(raw, table.exclude)
    ranked = sorted(hits.values(), key=lambda h: -h[2])
    rivals = [h[2] for h in ranked[1:]] + ([excluded[1]] if excluded else [])
    if not ranked or (rivals and max(rivals) >= ranked[0][2]):
        names = [f"{h[0].variable} ({h[1]!r})" for h in ranked]
        names += [f"excluded {excluded[0]!r}"] if excluded else []
        found = f"match {', '.join(names)} equally well" if names else "match no element word"
        return None, f"it is damaged (bytes lost as U+FFFD) and its remains {found}", False
    element, word, score = ranked[0]
    how = (
        f"keyword {word!r} matched byte-wise in a damaged description "
        f"({score} of {len(word.encode('gb18030'))} GBK bytes intact, the rest lost as U+FFFD "
        f"in an earlier UTF-8 round trip)"
    )
    return element, how, True


_PERIOD_BEFORE = re.compile(
    r"(\d{1,3})\s*(?:小时|个小时|h|H)\s*(?:累计|累积|总)?\s*(?:降水|雨量|降雨|降雪)"
)
_PERIOD_AFTER = re.compile(r"(?:降水|雨量|降雨|降雪)量?\s*[（(]?\s*(\d{1,3})\s*(?:小时|h|H)")


def _accumulation_hours(text: str) -> int | None:
    for pattern in (_PERIOD_BEFORE, _PERIOD_AFTER):
        m = pattern.search(text)
        if m and int(m.group(1)) > 0:
            return int(m.group(1))
    if re.search(r"日(?:降水|雨量|降雨|降雪)", text):
        return 24
    return None


# ------------------------------------------------------------------------------- diamond 4


def _axis(
    path: Path, name: str, start: float, end: float, step: float, n: int, history: _History
) -> np.ndarray:
    """Coordinate values start, start+step, ...; n checked against the bounds."""
    if n == 1:
        return np.array([start], dtype=np.float64)
    if step == 0:
        raise InputError(f"{path}: d{name} is 0 with n{name}={n}; expected a grid step")
    span = end - start
    if span != 0 and math.copysign(1.0, step) != math.copysign(1.0, span):
        history.add(
            f"grid: d{name} {step:g} points away from {name} {start:g}..{end:g}; used {-step:g}"
        )
        step = -step
    if abs(start + (n - 1) * step - end) > abs(step) / 2:
        expected = round(span / step) + 1 if span else 1
        raise InputError(
            f"{path}: n{name}={n} does not fit {name} {start:g}..{end:g} in steps of "
            f"{abs(step):g} (expected {expected})"
        )
    return np.round(start + np.arange(n) * step, 8)


def read_micaps4(
    path: str | Path, *, variable: str | None = None, units: str | None = None
) -> xr.Dataset:
    """Read a MICAPS "diamond 4" grid as a canonical one-time dataset.

    Parameters
    ----------
    path : path
        The file, normally named ``YYMMDDHH.TTT`` (run time in Beijing time, lead hours).
    variable : str, optional
        Canonical variable name (``t2m``, ``precip``, ...). Default: recognised from the
        header's description with ``cityops/data/micaps_elements.yaml``.
    units : str, optional
        Units of the values in the file. Default: the element table's units for the variable
        (e.g. ``km`` for visibility), else the canonical units.

    Returns
    -------
    xarray.Dataset
        One float32 variable on (``time`` length 1 = valid time UTC, ascending ``lat``,
        ``lon`` in −180..180) in canonical units, 9999 as NaN; attributes ``issued`` (ISO
        8601 UTC), ``lead_hours``, ``source``, ``history``, ``cityops_reader="micaps4"``,
        ``micaps_description``, ``micaps_level``; precipitation with a stated period also has
        ``accumulation_hours`` on the variable.

    Raises
    ------
    InputError
        Not a diamond 4 file, non-numeric or missing header fields, grid size inconsistent with
        bounds and steps, too few values (truncated), non-numeric values, no valid time,
        element not recognised (and no ``variable=``), unconvertible ``units``.
    """
    path = Path(path)
    desc_raw, body, first_line = _read_file(path, 4)
    description = _decode_description(desc_raw, path)
    history = _History(path)
    tokens = body.split()
    if len(tokens) < len(MICAPS4_HEADER):
        raise InputError(
            f"{path}: truncated header: {len(tokens)} of the {len(MICAPS4_HEADER)} numbers "
            f"after the description ({MICAPS4_HEADER[0]} … {MICAPS4_HEADER[-1]})"
        )
    head: dict[str, float] = {}
    for k, (field, token) in enumerate(zip(MICAPS4_HEADER, tokens, strict=False)):
        value = _as_float(token)
        if value is None or not math.isfinite(value):
            line = _line_of_token(body, k, first_line)
            raise InputError(
                f"{path}: line {line}: header field {field} is "
                f"{token.decode('latin-1')!r}, not a number"
            )
        head[field] = value
    for field in ("nlon", "nlat"):
        if head[field] != int(head[field]) or head[field] < 1:
            raise InputError(
                f"{path}: {field} is {head[field]:g}; expected a positive whole number"
            )
    nlon, nlat = int(head["nlon"]), int(head["nlat"])
    lon = _axis(path, "lon", head["lon_start"], head["lon_end"], head["dlon"], nlon, history)
    lat = _axis(path, "lat", head["lat_start"], head["lat_end"], head["dlat"], nlat, history)
    if np.abs(lat).max() > 90 + 1e-6:
        raise InputError(f"{path}: latitudes {lat.min():g}..{lat.max():g} outside −90..90")

    n = nlon * nlat
    start = len(MICAPS4_HEADER)
    found = len(tokens) - start
    if found < n:
        raise InputError(
            f"{path}: truncated: the {nlon} × {nlat} grid needs {n} values, the file holds {found}"
        )
    if found > n:
        history.warn(f"{path}: {found - n} values after the {nlon} × {nlat} grid ignored")
    try:
        values = np.array(tokens[start : start + n]).astype(np.float64)
    except ValueError:
        k = next(i for i, t in enumerate(tokens[start : start + n]) if _as_float(t) is None)
        line = _line_of_token(body, start + k, first_line)
        raise InputError(
            f"{path}: line {line}: grid value {k + 1} is "
            f"{tokens[start + k].decode('latin-1')!r}, not a number"
        ) from None
    missing = values == MISSING
    values[missing] = np.nan
    grid = values.reshape(nlat, nlon)
    history.add(
        f"read by cityops.ingest.micaps.read_micaps4: MICAPS diamond 4 grid {nlon} × {nlat}, "
        f"lon {lon[0]:g}..{lon[-1]:g}, lat {lat[0]:g}..{lat[-1]:g}",
        first=True,
    )
    if missing.any():
        history.add(f"missing: {int(missing.sum())} values of 9999 read as NaN")

    # Coordinates: ascending latitude, longitudes in −180..180.
    if nlat > 1 and lat[0] > lat[-1]:
        history.add("grid: rows run north to south in the file; latitudes made ascending")
    lat_order = np.argsort(lat, kind="stable")
    lat, grid = lat[lat_order], grid[lat_order]
    if lon.min() < -180 or lon.max() > 180:
        history.add("grid: longitudes converted to −180..180")
        lon = np.round((lon + 180.0) % 360.0 - 180.0, 8)
    lon, lon_index = np.unique(lon, return_index=True)  # sorted; drops a repeated 0/360 column
    if len(lon_index) < nlon:
        history.add(f"grid: {nlon - len(lon_index)} repeated longitude column(s) dropped")
    grid = grid[:, lon_index]

    # Time.
    run, lead = _resolve_run_time(
        path,
        (head["year"], head["month"], head["day"], head["hour"]),
        head["lead hour"],
        history,
    )
    issued = run - BEIJING_UTC_OFFSET
    valid = issued + pd.Timedelta(hours=lead)
    lead_attr: int | float = int(lead) if lead == int(lead) else lead
    history.add(
        f"time: Beijing time (UTC+8, the MICAPS convention): issued {iso_utc(issued)}, "
        f"lead {lead_attr} h, valid {iso_utc(valid)}"
    )

    # Variable and units.
    registry = canonical_variables()
    level = head["level"]
    table = micaps_elements()
    element, how, guessed = _recognise(description, desc_raw, level)
    if variable is not None:
        if variable not in registry:
            raise InputError(
                f"{path}: variable {variable!r} is not a canonical variable; expected one of "
                f"{', '.join(registry)}"
            )
        note = f" (the description suggests {element.variable})" if element else ""
        history.add(f"element: {variable} as given by the caller{note}")
        name = variable
        element = table.for_variable(variable)
    else:
        if element is None:
            raise InputError(
                f"{path}: cannot tell the element from the description {description!r} "
                f"({how}); pass a variable mapping, e.g. variable='t2m', units='degC'"
            )
        name = element.variable
        history.add(f"element: {name} recognised from the description ({how})")
        if guessed:
            log.warning(
                "%s: description %r is damaged; took it for %s (%s); pass variable= if wrong",
                path,
                description,
                name,
                how.split(" (")[0],
            )
    canonical_units = registry[name]["units"]
    if units is not None:
        src_units = units
        history.add(f"units: {units} as given by the caller")
    elif element is not None:
        src_units = element.units
        why = f": {element.note}" if element.note else ""
        history.add(
            f"units: {src_units} assumed from the MICAPS element table{why} "
            f"(pass units= if the product differs)"
        )
    else:
        src_units = canonical_units
        history.add(f"units: {src_units} assumed (canonical units of {name})")
    if units is None and element is not None and element.plausible and np.isfinite(grid).any():
        median = float(np.nanmedian(grid))
        low, high = element.plausible
        if not low <= median <= high:
            history.warn(
                f"{path}: median {median:g} is outside {low:g}..{high:g} {src_units} expected "
                f"for {name}; wrong units? pass units=",
            )

    attrs: dict[str, Any] = {"units": src_units, "long_name": description or name}
    spec = registry[name]
    if "standard_name" in spec:
        attrs["standard_name"] = spec["standard_name"]
    if name in ("precip", "snowfall"):
        hours = _accumulation_hours(description)
        if hours is not None:
            attrs["accumulation_hours"] = hours
            attrs["cell_methods"] = f"time: sum (interval: {hours} hours)"
            history.add(f"{name}: amount over the {hours} h ending at the valid time")
        else:
            history.warn(
                f"{path}: the description {description!r} does not state the accumulation "
                f"period of {name}",
            )
    da = xr.DataArray(grid[np.newaxis], dims=("time", "lat", "lon"), name=name, attrs=attrs)
    da = convert_dataarray(da, canonical_units, source=str(path))
    if src_units != canonical_units:
        history.add(f"{name}: converted from {src_units} to {canonical_units}")
    ds = xr.Dataset(
        {name: da.astype(np.float32)},
        coords={
            "time": ("time", pd.DatetimeIndex([valid]).as_unit("ns"), {"standard_name": "time"}),
            "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"}),
        },
    )
    ds[name].attrs.update(da.attrs)
    ds.attrs = {
        "issued": iso_utc(issued),
        "lead_hours": lead_attr,
        "source": str(path),
        "history": "\n".join(history),
        "cityops_reader": "micaps4",
        "micaps_description": description,
        "micaps_level": level,
    }
    ds.encoding["source"] = str(path)
    return ds


# ------------------------------------------------------------------------------- diamond 1


def _decode_pressure(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Sea-level pressure in hPa from MICAPS 1 codes; also the count of unreadable values."""
    out = np.full(values.shape, np.nan)
    code = np.isfinite(values) & (values >= 0) & (values < 1000) & (values == np.round(values))
    out[code] = np.where(values[code] < 600, 1000.0, 900.0) + values[code] / 10.0
    full = np.isfinite(values) & ~code & (values >= 850) & (values <= 1100)
    out[full] = values[full]
    bad = int((np.isfinite(values) & ~code & ~full).sum())
    return out, bad


def read_micaps1(path: str | Path) -> pd.DataFrame:
    """Read MICAPS "diamond 1" surface observations as a station table (interfaces.md §6).

    Parameters
    ----------
    path : path
        The file, normally named ``YYMMDDHH.000`` (observation time, Beijing time).

    Returns
    -------
    pandas.DataFrame
        One row per station record: ``station_id`` (str), ``lon``, ``lat``, ``time_utc``
        (naive UTC ``datetime64``), ``t2m`` (degC), ``wind`` (m s-1), ``vis`` (m), ``precip``
        (mm over the 6 h ending at ``time_utc``), ``dew_point`` (degC), ``pressure_msl`` (hPa);
        NaN where the file has 9999. ``df.attrs``: ``source``, ``time_utc``, ``precip_hours``
        (6), ``units``, ``cityops_reader="micaps1"``, ``micaps_description``, ``history``.

    Raises
    ------
    InputError
        Not a diamond 1 file, bad time line, truncated or malformed record (with its line
        number), non-numeric field, no station records, no valid time.
    """
    path = Path(path)
    desc_raw, body, first_line = _read_file(path, 1)
    description = _decode_description(desc_raw, path)
    history = _History(path)
    lines = body.split(b"\n")

    # year month day hour station-count
    stamp: list[bytes] = []
    i = 0
    while len(stamp) < 5 and i < len(lines):
        stamp += lines[i].split()
        i += 1
    if len(stamp) != 5:
        raise InputError(
            f"{path}: line {first_line + max(i - 1, 0)}: expected 'year month day hour "
            f"station-count' after the description, found {len(stamp)} values"
        )
    numbers = [_as_float(t) for t in stamp]
    if any(v is None or not math.isfinite(v) for v in numbers):
        raise InputError(
            f"{path}: line {first_line + i - 1}: 'year month day hour station-count' are not "
            f"all numbers ({b' '.join(stamp).decode('latin-1')!r})"
        )
    year, month, day, hour, count = numbers  # type: ignore[misc]

    ids: list[bytes] = []
    fields: list[list[bytes]] = []
    line_numbers: list[int] = []
    for k in range(i, len(lines)):
        toks = lines[k].split()
        if not toks:
            continue
        if len(toks) not in (24, 26):
            what = "truncated station record" if len(toks) < 24 else "malformed station record"
            raise InputError(
                f"{path}: line {first_line + k}: {what} with {len(toks)} fields; expected 24 "
                f"(station id, lon, lat, … flag 1, flag 2; 26 with the 24-h changes)"
            )
        ids.append(toks[0])
        fields.append(toks[1:24])
        line_numbers.append(first_line + k)
    if not fields:
        raise InputError(f"{path}: no station records (the header announces {count:g})")
    if count != len(fields):
        history.warn(
            f"{path}: the header announces {count:g} stations, the file holds {len(fields)}",
        )
    try:
        table = np.array(fields).astype(np.float64)
    except ValueError:
        for row, toks in enumerate(fields):
            for col, tok in enumerate(toks):
                if _as_float(tok) is None:
                    raise InputError(
                        f"{path}: line {line_numbers[row]}: {MICAPS1_FIELDS[col + 1]} is "
                        f"{tok.decode('latin-1')!r}, not a number"
                    ) from None
        raise
    table[table == MISSING] = np.nan

    def column(field: str) -> np.ndarray:
        return table[:, MICAPS1_FIELDS.index(field) - 1].copy()

    run, _ = _resolve_run_time(path, (year, month, day, hour), None, history)
    time_utc = run - BEIJING_UTC_OFFSET
    history.add(f"time: Beijing time (UTC+8, the MICAPS convention): {iso_utc(time_utc)}")

    lon = column("lon")
    if np.nanmax(np.abs(lon), initial=0.0) > 180:
        lon = (lon + 180.0) % 360.0 - 180.0
        history.add("lon: converted to −180..180")
    precip = column("6-h precipitation")
    negative = int((precip < 0).sum())
    if negative:
        precip[precip < 0] = 0.0
        history.add(f"precip: {negative} negative 6-h amounts (codes for none/trace) read as 0 mm")
    pressure, bad_pressure = _decode_pressure(column("sea-level pressure"))
    history.add("pressure_msl: 3-digit codes in 0.1 hPa decoded (< 600 → 10xx.x, else 9xx.x hPa)")
    if bad_pressure:
        history.add(f"pressure_msl: {bad_pressure} unreadable values set to NaN")
    history.add("vis: converted from km (MICAPS 1) to m")
    history.add(
        "wind: mean wind speed of the synoptic report in m s-1 (averaging period not stated "
        "in the file)"
    )
    df = pd.DataFrame(
        {
            "station_id": [t.decode("latin-1") for t in ids],
            "lon": lon,
            "lat": column("lat"),
            "time_utc": pd.DatetimeIndex([time_utc] * len(ids)).as_unit("ns"),
            "t2m": column("temperature"),
            "wind": column("wind speed"),
            "vis": column("visibility") * 1000.0,
            "precip": precip,
            "dew_point": column("dew point"),
            "pressure_msl": pressure,
        }
    )
    history.add(
        f"read by cityops.ingest.micaps.read_micaps1: MICAPS diamond 1, {len(df)} station records",
        first=True,
    )
    df.attrs = {
        "source": str(path),
        "time_utc": iso_utc(time_utc),
        "precip_hours": 6,
        "units": dict(MICAPS1_UNITS),
        "cityops_reader": "micaps1",
        "micaps_description": description,
        "history": "\n".join(history),
    }
    return df
