"""GRIB1/GRIB2 files as one *raw* xarray Dataset of their surface fields (via cfgrib/ecCodes).

What :func:`open_grib` returns is what cfgrib gives, put together: names, units, times and grids
are *not* canonicalised here (``cityops.ingest.canonical`` does that).

* **Which fields.** The hypercubes a surface forecast needs: ``typeOfLevel`` ``surface``,
  ``heightAboveGround`` at 2 m and 10 m, and ``meanSea`` (:data:`SURFACE_LEVELS`), every
  ``stepType`` (``instant``, ``accum``, ``max``, ``min``, ``avg``…). Upper-air and other level
  types are left out.
* **How they are read.** The headers once (:func:`scan_grib`: ecCodes' concept keys such as
  ``paramId`` or ``shortName``, about 1 ms each, once per parameter definition); then each
  variable is built as cfgrib builds it (cfgrib's own functions give its attributes and grid
  from the variable's first message), its values decoded only when read: just the messages
  the read needs, each once, cut to the crop window (``window``, see
  :func:`cityops.ingest.canonical.crop_window`) right after decoding. Layouts this reader
  leaves to cfgrib (two messages for one field, several levels of one parameter where cfgrib
  makes a level dimension, keys varying within a variable, grids other than regular lat/lon
  or Gaussian) are opened through cfgrib as before: each (typeOfLevel, level, stepType) group
  with ``filter_by_keys``, a variable cfgrib leaves out of its group opened alone. Both give
  the same dataset (tests/test_ingest_reads.py).
* **Names and coordinates** are cfgrib's: ``t2m``, ``u10``, ``v10``, ``tp``, ``gust``, ``tmax``,
  ``mx2t``, ``sdwe``, ``cape``, ``prmsl``…; ``time`` (reference time), ``step``, ``valid_time``
  (= time + step), ``latitude``, ``longitude`` as stored (GFS: latitudes descending, longitudes
  0–360), ``number`` for ensembles. The vertical scalar coordinates (``surface``,
  ``heightAboveGround``, ``meanSea``) are dropped; the level is kept in the variable attribute
  ``GRIB_level``. A single-step file keeps scalar ``step``/``valid_time``. Variables known at
  different steps share the union of the steps (NaN where a variable has no message, e.g. GFS
  ``tp`` at step 0).
* **Collisions**: two variables with the same name (``unknown``; ``gust`` at two levels…): the
  first in file order is kept and the dropped one is logged and named in ``history``. A variable
  on another grid than the first one is dropped the same way.
* **Attributes**: cfgrib's ``GRIB_*`` attributes (``GRIB_stepType``, ``GRIB_shortName``,
  ``GRIB_cfVarName``, ``GRIB_name``, ``GRIB_typeOfLevel``, ``GRIB_paramId``…) and ``units``.
  For a variable whose messages cover a time range (accumulations, max/min, averages, and GFS
  TMAX/TMIN even where old files mark them ``instant``), the ecCodes ``startStep`` and
  ``endStep`` of each step are kept as ``GRIB_startStep`` and ``GRIB_endStep``: **hours since
  the reference time**, floats, aligned with the ``step`` coordinate (one value when ``step`` is
  scalar), NaN where the variable has no message. Accumulations (``stepType`` ``accum``) also
  get ``accumulation_start`` (same values): a GFS 6-h bucket reads 0, 0, 6, 6, … at steps
  3, 6, 9, 12, …; an IFS running total reads 0 everywhere.
* **Global attributes**: cfgrib's (``GRIB_centre``, ``GRIB_edition``…, ``institution``) plus
  ``cityops_reader="grib"``, ``source`` (the path) and a deterministic ``history`` line (no
  wall-clock time).

Several files (one file per lead time, as NCEP distributes GFS) are combined by the caller;
:func:`combine_steps` does it for files of one run and keeps the per-step attributes aligned.

Errors a user can cause (not GRIB, truncated or corrupt, no surface field) raise
:class:`~cityops.errors.InputError` with one line naming the file. Nothing is written beside
the file: cfgrib's ``.idx`` index files are disabled (``indexpath=""``).

**Import order (process crash).** The ``eccodes`` wheels (ecCodes 2.50 via ``eccodeslib`` and
``eckitlib``) load a bundled PROJ and SQLite with ``RTLD_GLOBAL``. If that happens before
``pyproj`` is imported, pyproj binds to those copies: "no database context" errors and a double
free / segmentation fault at interpreter exit (status 134/139) after all work succeeded. Loaded
the other way round, each library keeps its own copy. This module therefore imports ``pyproj``
before it ever imports ``eccodes``/``cfgrib`` (those are imported lazily), and always passes
``engine="cfgrib"`` (``xr.open_dataset`` without an engine imports every backend, cfgrib among
them, possibly before pyproj).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyproj  # noqa: F401  (before eccodes/cfgrib: see "Import order" above)
import xarray as xr
from xarray.backends import BackendArray
from xarray.core import indexing

from cityops.errors import InputError

__all__ = [
    "SURFACE_LEVELS",
    "GribMessage",
    "check_structure",
    "combine_steps",
    "is_grib",
    "open_grib",
    "scan_grib",
]

log = logging.getLogger("cityops")

#: typeOfLevel → levels kept (``None``: every level of that type).
SURFACE_LEVELS: dict[str, tuple[float, ...] | None] = {
    "surface": None,
    "heightAboveGround": (2.0, 10.0),
    "meanSea": None,
}

# ecCodes code table 4.4 (stepUnits) in seconds, as cfgrib uses it.
_STEP_UNIT_SECONDS = {
    0: 60,
    1: 3600,
    2: 86400,
    10: 10800,
    11: 21600,
    12: 43200,
    13: 1,
    14: 900,
    15: 1800,
}

# Per-step variable attributes (hours since the reference time, aligned with ``step``).
_STEP_ATTRS = ("GRIB_startStep", "GRIB_endStep", "accumulation_start")


def _cfgrib():
    import cfgrib  # lazy: pyproj is imported first (module docstring)

    return cfgrib


_ECCODES_LOG: list = []


def _eccodes():
    import eccodes

    if not _ECCODES_LOG and not log.isEnabledFor(logging.DEBUG):
        # ecCodes prints its own "ECCODES ERROR : ..." lines on stderr for a damaged message;
        # the user gets one line from cityops instead (InputError), the details with --debug.
        fh = open(os.devnull, "w")  # kept open for the life of ecCodes
        eccodes.codes_context_set_logging(fh)
        _ECCODES_LOG.append(fh)
    return eccodes


def check_structure(path: str | Path) -> int:
    """Walk the messages of a GRIB file by their lengths, without ecCodes; the count.

    ecCodes trusts a message's section lengths: a corrupt one makes it read past the message
    (and, seen with ecCodes 2.50, corrupt the heap and abort the process at exit). So every
    GRIB2 message is checked first: its declared length fits in the file, its sections chain
    exactly to the closing ``7777``, and a simple-packed data section (template 5.0) holds
    exactly the bytes its section 5 declares (fewer, and ecCodes decodes whatever follows the
    message: garbage values or a crash; more or fewer, and a damaged bits per value decodes
    to garbage). GRIB1 messages: sections 1-4 add up to the message length, the bits per value
    are in 0..32 and a simple-packed grid-point data section holds the bits its points need
    (large GRIB1 messages with a coded length are left to ecCodes). Bytes between messages are
    skipped as ecCodes does.

    Raises
    ------
    InputError
        Naming the file, the message number and what is wrong.
    """
    path = Path(path)
    size = path.stat().st_size
    count = 0
    with path.open("rb") as fh:
        start = 0
        while start < size:
            fh.seek(start)
            head = fh.read(16)
            if head[:4] != b"GRIB":
                nxt = _find_grib(fh, start + 1)
                if nxt is None:
                    break  # trailing padding
                start = nxt
                continue
            count += 1
            where = f"{path}: GRIB message {count} (byte {start})"
            edition = head[7] if len(head) >= 8 else 0
            if edition == 2 and len(head) == 16:
                total = int.from_bytes(head[8:16], "big")
            elif edition == 1 and len(head) >= 8:
                total = int.from_bytes(head[4:7], "big")
                if total & 0x800000:
                    return count  # large GRIB1 message: coded length, left to ecCodes
            else:
                raise InputError(f"{where}: unknown GRIB edition {edition}; expected 1 or 2")
            if start + total > size:
                raise InputError(
                    f"{where}: declares {total} bytes but only {size - start} remain; "
                    "expected a complete message: the file is truncated"
                )
            if edition == 2:
                _check_sections(fh, start, total, where)
            else:
                _check_grib1_sections(fh, start, total, where)
            fh.seek(start + total - 4)
            if fh.read(4) != b"7777":
                raise InputError(
                    f"{where}: no '7777' at its end (byte {start + total}); expected a "
                    "complete message: the file is truncated or corrupt"
                )
            start += total
    return count


def _find_grib(fh, offset: int) -> int | None:
    """Offset of the next ``GRIB`` at or after ``offset`` (None at the end of the file)."""
    fh.seek(offset)
    carry = b""
    pos = offset
    while True:
        block = fh.read(1 << 20)
        if not block:
            return None
        data = carry + block
        i = data.find(b"GRIB")
        if i >= 0:
            return pos - len(carry) + i
        carry = data[-3:]
        pos += len(block)


def _check_sections(fh, start: int, total: int, where: str) -> None:
    """GRIB2 sections 1-7 (repeatable 2-7) must chain to ``7777`` at the message's end."""
    pos = start + 16
    end = start + total - 4
    previous = 0
    packed_bytes = None  # bytes the data section needs (simple packing, section 5)
    while pos < end:
        fh.seek(pos)
        head = fh.read(21)
        if head[:4] == b"7777":
            break
        length, number = int.from_bytes(head[:4], "big"), head[4]
        if not 1 <= number <= 7 or length < 5 or pos + length > end:
            raise InputError(
                f"{where}: section {number} at byte {pos} has length {length}, running past "
                f"the message's end (byte {end + 4}); expected sections 1-7 ending at '7777': "
                "the message is corrupt"
            )
        if number < previous and number != 2 and number != 3 and number != 4:
            raise InputError(
                f"{where}: section {number} follows section {previous}; expected sections "
                "1-7 in order: the message is corrupt"
            )
        if number == 5 and length >= 21 and int.from_bytes(head[9:11], "big") == 0:
            # Template 5.0, simple packing: N values of bitsPerValue bits each.
            values, bits = int.from_bytes(head[5:9], "big"), head[19]
            packed_bytes = (values * bits + 7) // 8
        elif number == 7 and packed_bytes is not None:
            if length - 5 != packed_bytes:
                # Fewer: ecCodes would decode bytes beyond the message (garbage, or a crash);
                # more: the bits per value were damaged (values decode to garbage).
                raise InputError(
                    f"{where}: data section holds {length - 5} bytes; expected {packed_bytes} "
                    "for the values its section 5 declares: the message is corrupt"
                )
            packed_bytes = None
        previous = number
        pos += length
    if pos != end:
        raise InputError(
            f"{where}: its sections end at byte {pos}, not at '7777' (byte {end}); expected "
            "sections 1-7 filling the message: the message is corrupt"
        )


#: Bits per packed value a GRIB1 field can have (0: a constant field). Octet 11 of section 4
#: is one byte, but GRIB1 packs at most 32 bits per value (the reference value and scale are
#: 32-bit; ecCodes refuses to encode more): a larger value means a damaged byte.
MAX_BITS_PER_VALUE = 32


def _uint(data: bytes) -> int:
    return int.from_bytes(data, "big")


def _check_grib1_sections(fh, start: int, total: int, where: str) -> None:
    """GRIB1 sections 1-4 (PDS, optional GDS and BMS, BDS) must fill the message exactly, and
    a simple-packed grid-point BDS must hold exactly the bits its points need.

    ecCodes checks only the closing ``7777``: one damaged byte in the bits per value decodes
    to plausible-looking garbage (158 mm in 3 h where the intact file has none).
    """
    fh.seek(start + 8)
    pds = fh.read(28)
    if len(pds) < 8:
        raise InputError(f"{where}: section 1 is cut short; expected a complete GRIB1 message")
    pos = start + 8
    end = start + total - 4
    lengths: list[str] = []
    len1 = _uint(pds[:3])
    flags = pds[7]
    has_gds, has_bms = bool(flags & 0x80), bool(flags & 0x40)
    lengths.append(f"section 1 {len1}")
    pos += len1
    points = None
    if has_gds:
        fh.seek(pos)
        gds = fh.read(10)
        len2 = _uint(gds[:3])
        lengths.append(f"section 2 {len2}")
        if len(gds) == 10 and gds[5] in (0, 4, 10, 14, 20, 24, 30, 34):
            ni, nj = _uint(gds[6:8]), _uint(gds[8:10])
            if ni != 0xFFFF and nj != 0xFFFF:  # quasi-regular (thinned) grids: no count here
                points = ni * nj
        pos += len2
    if has_bms:
        fh.seek(pos)
        bms_head = fh.read(6)
        len3 = _uint(bms_head[:3])
        lengths.append(f"section 3 {len3}")
        if len(bms_head) == 6 and _uint(bms_head[4:6]) == 0 and len3 > 6 and pos + len3 <= end:
            fh.seek(pos + 6)
            bitmap = np.frombuffer(fh.read(len3 - 6), dtype=np.uint8)
            bits = np.unpackbits(bitmap)[: len(bitmap) * 8 - bms_head[3]]
            points = int(bits.sum())
        else:
            points = None
        pos += len3
    fh.seek(pos)
    bds = fh.read(11)
    if len(bds) < 11 or pos + 11 > end:
        raise InputError(
            f"{where}: section lengths ({', '.join(lengths)}) run past the message's end "
            f"(byte {end + 4}); expected sections 1-4 ending at '7777': the message is corrupt"
        )
    len4 = _uint(bds[:3])
    lengths.append(f"section 4 {len4}")
    if pos + len4 != end:
        raise InputError(
            f"{where}: sections 0-5 add up to {pos + len4 + 4 - start} bytes ({', '.join(lengths)}"
            f"), the message declares {total}; expected them to add up to the message length: "
            "the message is corrupt"
        )
    bds_flags, unused, bits_per_value = bds[3] >> 4, bds[3] & 0x0F, bds[10]
    simple_grid = bds_flags & 0b1100 == 0  # grid-point data, simple packing
    if simple_grid and points is not None and bits_per_value:
        available = (len4 - 11) * 8 - unused
        needed = points * bits_per_value
        # Encoders pad the section to an even length: at most one byte beyond the unused bits.
        if not 0 <= available - needed < 16:
            raise InputError(
                f"{where}: data section holds {available} bits; expected {needed} for "
                f"{points} values of {bits_per_value} bits: the message is corrupt (damaged "
                "bits per value or section length)"
            )
    if bits_per_value > MAX_BITS_PER_VALUE:
        raise InputError(
            f"{where}: bits per value {bits_per_value}; expected 0..{MAX_BITS_PER_VALUE}: "
            "the message is corrupt"
        )


def is_grib(path: str | Path) -> bool:
    """True when the file starts with ``GRIB`` (edition 1 or 2)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"GRIB"
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# Header scan with ecCodes


@dataclass
class GribMessage:
    """Header of one GRIB message, as :func:`scan_grib` reads it."""

    param_id: int
    name: str  # the name cfgrib gives the variable
    type_of_level: str
    level: float
    step_type: str
    time: np.datetime64
    start: float  # hours since the reference time
    end: float
    number: int | None
    offset: int = -1  # byte offset of the message in the file
    points: int = 0  # values in the message (numberOfPoints)
    index: dict = field(default_factory=dict)  # cfgrib's index keys (the one-pass reader)


@dataclass
class _Group:
    """One (typeOfLevel, level, stepType) hypercube family: what cfgrib is asked to open."""

    type_of_level: str
    level: float
    step_type: str
    names: dict[int, str] = field(default_factory=dict)  # paramId → cfgrib name, file order

    @property
    def label(self) -> str:
        lev = "" if self.type_of_level != "heightAboveGround" else f" {self.level:g} m"
        return f"{self.type_of_level}{lev}/{self.step_type}"

    def filter_by_keys(self) -> dict:
        fbk: dict = {"typeOfLevel": self.type_of_level, "stepType": self.step_type}
        if SURFACE_LEVELS.get(self.type_of_level) is not None:
            fbk["level"] = int(self.level) if float(self.level).is_integer() else self.level
        return fbk


def _get(codes, h, key, ktype=None, default=None):
    try:
        if codes.codes_is_missing(h, key):
            return default
        return codes.codes_get(h, key, ktype) if ktype else codes.codes_get(h, key)
    except Exception:  # key absent from this template
        return default


def _hours(codes, h, key: str) -> float:
    unit = _get(codes, h, "stepUnits", int, 1)
    seconds = _STEP_UNIT_SECONDS.get(unit)
    if seconds is None:
        raise ValueError(f"unsupported stepUnits {unit}")
    return int(codes.codes_get(h, key, int)) * seconds / 3600.0


#: Keys of cfgrib's index that the one-pass reader needs from every message (cfgrib's
#: ``DATA_ATTRIBUTES_KEYS`` and ``GLOBAL_ATTRIBUTES_KEYS``; ``stepUnits`` is computed by cfgrib,
#: always 1).
_INDEX_KEYS = (
    "paramId", "dataType", "numberOfPoints", "typeOfLevel", "stepType", "gridType",
    "uvRelativeToGrid", "edition", "centre", "centreDescription", "subCentre", "number",
)  # fmt: skip
#: Of those and the header keys, the ones that follow from the parameter's definition and
#: grid (sections 0-3, and 4 but for its times): concept look-ups take about 1 ms each
#: and are the same for every message of one parameter, so looked up once per definition
#: (:func:`_definition`).
_DEFINITION_KEYS = frozenset(
    ("paramId", "shortName", "cfVarName", "typeOfLevel", "stepType", "dataType", "edition",
     "centre", "centreDescription", "subCentre", "level", "number", "gridType",
     "numberOfPoints", "uvRelativeToGrid")
)  # fmt: skip
#: GRIB2 product definition templates whose time fields are known (octets of section 4,
#: 0-based): 4.0/4.1 the forecast time; 4.8/4.11 also the end of the statistical period.
_TIME_OCTETS = {
    0: ((18, 22),),
    1: ((18, 22),),
    8: ((18, 22), (34, 41)),
    11: ((18, 22), (37, 44)),
}


def _definition(fh, offset: int) -> bytes | None:
    """The bytes that define a GRIB2 message's parameter, level, statistics and grid:
    discipline, sections 1, 2 (local use) and 3, and section 4 with its time fields blanked;
    None for GRIB1 and other templates (every key then read from the message itself)."""
    fh.seek(offset)
    head = fh.read(16)
    if len(head) < 16 or head[7] != 2:
        return None
    total = int.from_bytes(head[8:16], "big")
    pos, end = offset + 16, offset + total - 4
    parts = [head[6:7]]
    while pos < end:
        fh.seek(pos)
        top = fh.read(5)
        if len(top) < 5:
            return None
        length, number = int.from_bytes(top[:4], "big"), top[4]
        if length < 5:
            return None
        if number in (1, 2, 3):
            parts.append(top + fh.read(length - 5))
        elif number == 4:
            section = bytearray(top + fh.read(length - 5))
            template = int.from_bytes(section[7:9], "big")
            if template not in _TIME_OCTETS:
                return None
            for a, b in _TIME_OCTETS[template]:
                section[a:b] = bytes(b - a)
            parts.append(bytes(section))
            return b"".join(parts)
        pos += length
    return None


def _native(codes, h, key: str):
    """A key as cfgrib's index reads it: native type, ``"undef"`` when absent."""
    try:
        if codes.codes_get_size(h, key) > 1:
            return tuple(codes.codes_get_array(h, key))
        value = codes.codes_get(h, key)
    except Exception:
        return "undef"
    return "undef" if value is None else value


class _Keys:
    """Keys of one message; those of :data:`_DEFINITION_KEYS` shared through ``known`` by the
    messages with the same definition (:func:`_definition`)."""

    def __init__(self, codes, h, definition: bytes | None, known: dict):
        self.codes, self.h, self.definition, self.known = codes, h, definition, known

    def _read(self, name: str, ktype, default, index: bool):
        if index:
            return _native(self.codes, self.h, name)
        return _get(self.codes, self.h, name, ktype, default)

    def __call__(self, name: str, ktype=None, default=None, *, index: bool = False):
        if self.definition is None or name not in _DEFINITION_KEYS:
            return self._read(name, ktype, default, index)
        slot = (self.definition, name, index, ktype, default)
        if slot not in self.known:
            self.known[slot] = self._read(name, ktype, default, index)
        return self.known[slot]


def scan_grib(path: str | Path) -> list[GribMessage]:
    """Headers of every message (ecCodes, headers only); :class:`InputError` when the file is
    not GRIB, is truncated or cannot be decoded.

    Keys that ecCodes computes from the parameter's definition (``paramId``, ``shortName``,
    ``typeOfLevel``, ``stepType``…: concept look-ups, about 1 ms each) are looked up once per
    definition (GRIB2 templates 4.0, 4.1, 4.8, 4.11: the same bytes but for the times give
    the same keys), the others from each message.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        raise InputError(f"{path}: is a folder; expected a GRIB file")
    if not is_grib(path):
        with path.open("rb") as fh:
            magic = fh.read(4)
        raise InputError(f"{path}: not a GRIB file (starts with {magic!r}, expected b'GRIB')")
    check_structure(path)
    codes = _eccodes()
    out: list[GribMessage] = []
    known: dict[tuple[bytes, str], object] = {}
    with path.open("rb") as fh, path.open("rb") as raw:
        while True:
            try:
                h = codes.codes_new_from_file(fh, codes.CODES_PRODUCT_GRIB, headers_only=True)
            except Exception as err:
                raise InputError(
                    f"{path}: GRIB message {len(out) + 1} cannot be read ({err}); "
                    "truncated or corrupt file"
                ) from None
            if h is None:
                break
            try:
                offset = int(codes.codes_get(h, "offset", int))
                key = _Keys(codes, h, _definition(raw, offset), known)
                cf_name = key("cfVarName", str, "unknown")
                short = key("shortName", str, "unknown")
                date = int(codes.codes_get(h, "dataDate", int))
                hhmm = int(codes.codes_get(h, "dataTime", int))
                time = np.datetime64(
                    pd.Timestamp(f"{date:08d}")
                    + pd.Timedelta(hours=hhmm // 100, minutes=hhmm % 100),
                    "ns",
                )
                out.append(
                    GribMessage(
                        param_id=int(key("paramId", int, 0)),
                        name=short if cf_name in ("undef", "unknown") else cf_name,
                        type_of_level=key("typeOfLevel", str, "undef"),
                        level=float(key("level", float, 0.0)),
                        step_type=key("stepType", str, "instant"),
                        time=time,
                        start=_hours(codes, h, "startStep"),
                        end=_hours(codes, h, "endStep"),
                        number=key("number", int, None),
                        offset=offset,
                        points=int(key("numberOfPoints", int, 0)),
                        index={k: key(k, index=True) for k in _INDEX_KEYS},
                    )
                )
            except Exception as err:
                raise InputError(
                    f"{path}: GRIB message {len(out) + 1} cannot be decoded ({err})"
                ) from None
            finally:
                codes.codes_release(h)
    if not out:
        raise InputError(f"{path}: no GRIB message could be read")
    return out


def _is_surface(msg: GribMessage) -> bool:
    if msg.type_of_level not in SURFACE_LEVELS:
        return False
    levels = SURFACE_LEVELS[msg.type_of_level]
    return levels is None or msg.level in levels


def _groups(messages: Sequence[GribMessage]) -> list[_Group]:
    groups: dict[tuple, _Group] = {}
    for msg in messages:
        if not _is_surface(msg):
            continue
        key = (msg.type_of_level, msg.level, msg.step_type)
        group = groups.setdefault(key, _Group(*key))
        group.names.setdefault(msg.param_id, msg.name)
    return list(groups.values())


def _step_table(messages: Sequence[GribMessage], path: Path) -> dict[tuple, dict[int, float]]:
    """(paramId, typeOfLevel, level, stepType) → {end second: start hour}, first message wins
    (as in cfgrib, which reads the first message of duplicates)."""
    table: dict[tuple, dict[int, float]] = {}
    seen: dict[tuple, float] = {}
    for m in messages:
        if not _is_surface(m):
            continue
        var = (m.param_id, m.type_of_level, m.level, m.step_type)
        key = (*var, m.time, m.end, m.number)
        if key in seen:
            if seen[key] != m.start:
                log.warning(
                    "%s: %s has periods %g-%g h and %g-%g h ending at the same step; "
                    "the first in the file is used",
                    path,
                    m.name,
                    seen[key],
                    m.end,
                    m.start,
                    m.end,
                )
            continue
        seen[key] = m.start
        starts = table.setdefault(var, {})
        if starts.setdefault(_seconds(m.end), m.start) != m.start:
            log.warning(
                "%s: %s periods ending at %g h start at different hours across reference "
                "times or members; the first is recorded",
                path,
                m.name,
                m.end,
            )
    return table


# ---------------------------------------------------------------------------------------------
# Opening with cfgrib


def _open(path: Path, fbk: dict, chunks) -> list[xr.Dataset]:
    """``xr.open_dataset(engine="cfgrib")`` on one filter; split like ``cfgrib.open_datasets``
    when the filter still mixes hypercubes."""
    cfgrib = _cfgrib()
    try:
        return [
            xr.open_dataset(
                path,
                engine="cfgrib",
                chunks=chunks,
                decode_timedelta=True,
                backend_kwargs={"indexpath": "", "filter_by_keys": fbk, "errors": "ignore"},
            )
        ]
    except cfgrib.DatasetBuildError as err:
        subfilters = err.args[2] if len(err.args) > 2 else []
        if not subfilters:
            raise
        out: list[xr.Dataset] = []
        for sub in subfilters:
            out.extend(_open(path, sub, chunks))
        return out


def _pieces(path: Path, group: _Group, chunks, notes: list[str]) -> list[xr.Dataset]:
    """Datasets holding every variable of the group (the group at once, then any variable
    cfgrib left out, alone); what cannot be read is logged and added to ``notes``."""
    try:
        pieces = _open(path, group.filter_by_keys(), chunks)
    except Exception as err:  # cfgrib could not build the group at all: one variable at a time
        log.debug("%s: %s opened variable by variable (%s)", path, group.label, err)
        pieces = []
    present = {
        int(da.attrs.get("GRIB_paramId", -1)) for ds in pieces for da in ds.data_vars.values()
    }
    names = {name for ds in pieces for name in ds.data_vars}
    for param_id, name in group.names.items():
        if param_id in present:
            continue
        if name in names:  # cfgrib skipped it for its name
            notes.append(f"{name} (paramId {param_id}, {group.label}) dropped: name taken")
            log.warning("%s: %s", path, notes[-1])
            continue
        try:
            alone = _open(path, {**group.filter_by_keys(), "paramId": param_id}, chunks)
        except Exception as err:
            notes.append(f"{name} ({group.label}) dropped: cfgrib cannot read it ({err})")
            log.warning("%s: %s", path, notes[-1])
            continue
        pieces.extend(alone)
        names.update(n for ds in alone for n in ds.data_vars)
    return pieces


def _strip(ds: xr.Dataset, group: _Group) -> xr.Dataset:
    """Drop the vertical scalar coordinate (kept as ``GRIB_level``) and ``valid_time``."""
    drop = [c for c in (group.type_of_level, "valid_time") if c in ds.coords]
    for name in ds.data_vars:
        ds[name].attrs["GRIB_level"] = group.level
        ds[name].attrs.pop("coordinates", None)
    return ds.drop_vars(drop)


def _expand_shared(pieces: list[xr.Dataset]) -> list[xr.Dataset]:
    """Make ``number``/``time``/``step`` dimensions everywhere when any piece has them as a
    dimension or the scalar values differ, so that pieces merge on one axis."""
    for dim in ("step", "time", "number"):
        having = [p for p in pieces if dim in p.coords]
        scalars = {p[dim].values.item() for p in having if p[dim].ndim == 0}
        if any(dim in p.dims for p in having) or len(scalars) > 1:
            pieces = [
                p.expand_dims(dim) if dim in p.coords and dim not in p.dims else p for p in pieces
            ]
    return pieces


def _same_grid(a: xr.Dataset, b: xr.Dataset) -> bool:
    for c in ("latitude", "longitude"):
        if (c in a.coords) != (c in b.coords):
            return False
        if c in a.coords and not (a[c].shape == b[c].shape and np.array_equal(a[c], b[c])):
            return False
    return True


def _valid_time(ds: xr.Dataset) -> xr.Dataset:
    if "time" in ds.coords and "step" in ds.coords:
        valid = ds["time"] + ds["step"]
        valid.attrs = {"standard_name": "time", "long_name": "time"}
        ds = ds.assign_coords(valid_time=valid)
    return ds


def _seconds(hours: float) -> int:
    """Lookup key for a step: whole seconds, immune to float rounding of fractional hours."""
    return round(float(hours) * 3600)


def _step_hours(ds: xr.Dataset) -> np.ndarray:
    return np.atleast_1d(ds["step"].values / np.timedelta64(1, "s") / 3600.0)


def _set_step_attrs(ds: xr.Dataset, table: dict[tuple, dict[int, float]]) -> None:
    """``GRIB_startStep``/``GRIB_endStep`` (and ``accumulation_start`` for accumulations) in
    hours, aligned with ``step``, for variables whose messages cover a time range."""
    if "step" not in ds.coords:
        return
    hours = _step_hours(ds)
    scalar = ds["step"].ndim == 0
    for name, da in ds.data_vars.items():
        key = (
            int(da.attrs.get("GRIB_paramId", -1)),
            da.attrs.get("GRIB_typeOfLevel"),
            float(da.attrs.get("GRIB_level", 0.0)),
            da.attrs.get("GRIB_stepType"),
        )
        starts = table.get(key)
        if not starts or all(s * 3600 == e for e, s in starts.items()):
            continue
        start = np.array([starts.get(_seconds(h), np.nan) for h in hours])
        end = np.where(np.isnan(start), np.nan, hours)
        values = {"GRIB_startStep": start, "GRIB_endStep": end}
        if da.attrs.get("GRIB_stepType") == "accum":
            values["accumulation_start"] = start
        for attr, arr in values.items():
            ds[name].attrs[attr] = float(arr[0]) if scalar else arr


# ---------------------------------------------------------------------------------------------
# Reading in one pass with ecCodes

#: Grids whose latitude and longitude are 1-D dimension coordinates: the ones the one-pass
#: reader cuts to a window (other grids go through cfgrib).
_DIRECT_GRIDS = ("regular_ll", "regular_gg")
#: What cfgrib asks of its messages (its defaults, as ``xr.open_dataset(engine="cfgrib")``).
_ENCODE_CF = ("parameter", "time", "geography", "vertical")
#: Attributes of ``time``/``step`` that xarray's CF decoding moves into the encoding.
_DECODED_ATTRS = ("units", "calendar", "dtype")


class _Fallback(Exception):
    """A layout the one-pass reader leaves to cfgrib (which then reads it as before)."""


@dataclass
class _Var:
    """One variable (paramId at one typeOfLevel, level and stepType) being read."""

    group: _Group
    attrs: dict
    geo: dict  # latitude/longitude coordinates (cut to the window)
    shape: tuple[int, ...]  # the message's grid shape
    cut: tuple | None  # index into the (Ny, Nx) values
    unique: dict[str, dict] = field(default_factory=dict)  # cfgrib's one-value keys
    fields: dict[tuple, int] = field(default_factory=dict)  # (number, time, step) -> offset


def _geo_cut(geo_vars: dict, window) -> tuple[dict, tuple | None]:
    """Latitude/longitude coordinates cut to ``window`` and the index doing it."""
    lat, lon = geo_vars["latitude"], geo_vars["longitude"]
    coords = {
        "latitude": xr.Variable(("latitude",), np.asarray(lat.data), dict(lat.attributes)),
        "longitude": xr.Variable(("longitude",), np.asarray(lon.data), dict(lon.attributes)),
    }
    cut = window(xr.Dataset(coords=coords)) if window is not None else None
    if not cut:
        return coords, None
    rows, cols = cut.get("latitude", slice(None)), cut.get("longitude", slice(None))
    coords = {"latitude": coords["latitude"][rows], "longitude": coords["longitude"][cols]}
    return coords, (rows, cols)


def _take(values: np.ndarray, cut: tuple | None) -> np.ndarray:
    """``values[rows, cols]`` for slices or positions on each axis (an outer index)."""
    if cut is None:
        return values
    rows, cols = cut
    return values[rows][:, cols]


def _read_direct(
    path: Path, messages: Sequence[GribMessage], groups: Sequence[_Group], window, notes: list
) -> list[tuple[_Group, xr.Dataset]]:
    """The surface fields in one pass over the file: each needed message decoded once, cut
    to ``window`` right away, with cfgrib's names, coordinates and attributes.

    Raises
    ------
    _Fallback
        A layout cfgrib builds differently (several levels of one parameter in a group
        without a level filter, duplicate fields, keys that vary within a variable, grids
        that are not regular latitude/longitude) or a message ecCodes cannot decode: cfgrib
        then reads the file as before (and reports what it reports).
    """
    from cfgrib import dataset as cfds

    codes = _eccodes()
    group_of = {(g.type_of_level, g.level, g.step_type): g for g in groups}
    levels: dict[tuple, float] = {}
    for m in messages:
        if _is_surface(m) and SURFACE_LEVELS.get(m.type_of_level) is None:
            if levels.setdefault((m.type_of_level, m.step_type, m.param_id), m.level) != m.level:
                raise _Fallback(f"{m.name}: several {m.type_of_level} levels")
    variables: dict[tuple, _Var] = {}
    global_values: dict[tuple, dict[str, dict]] = {}
    epoch = np.datetime64("1970-01-01T00:00:00", "ns")
    with path.open("rb") as fh:
        for m in sorted((m for m in messages if _is_surface(m)), key=lambda m: m.offset):
            key = (m.type_of_level, m.level, m.step_type, m.param_id)
            var = variables.get(key)
            # cfgrib's index: time in seconds since 1970, step in hours (its computed keys).
            header = (m.index["number"], int((m.time - epoch) // np.timedelta64(1, "s")), m.end)
            if var is not None and header in var.fields:
                raise _Fallback(f"{m.name}: two messages for one field")
            if var is None:
                fh.seek(m.offset)
                h = codes.codes_grib_new_from_file(fh)
                if h is None:
                    raise _Fallback(f"message at byte {m.offset} cannot be read")
                try:
                    var = variables[key] = _first_field(h, group_of[key[:3]], window)
                except _Fallback:
                    raise
                except Exception as err:
                    raise _Fallback(f"{m.name}: cannot be read ({err})") from None
                finally:
                    codes.codes_release(h)
            for k in cfds.DATA_ATTRIBUTES_KEYS:
                value = 1 if k == "stepUnits" else m.index[k]  # cfgrib: always hours
                var.unique.setdefault(k, {})[value] = None
            for k in cfds.GLOBAL_ATTRIBUTES_KEYS:
                global_values.setdefault(key[:3], {}).setdefault(k, {})[m.index[k]] = None
            var.fields[header] = m.offset
    out: list[tuple[_Group, xr.Dataset]] = []
    names_in_group: dict[str, set[str]] = {}
    for group in groups:
        attrs = {}
        for k, seen in global_values.get((group.type_of_level, group.level, group.step_type),
                                         {}).items():  # fmt: skip
            if len(seen) > 1:
                raise _Fallback(f"{group.label}: several values of {k}")
            value = next(iter(seen))
            if value not in ("undef", "unknown"):
                attrs["GRIB_" + k] = value
        attrs["Conventions"] = "CF-1.7"
        if "GRIB_centreDescription" in attrs:
            attrs["institution"] = attrs["GRIB_centreDescription"]
        taken = names_in_group.setdefault(group.label, set())
        for key, var in variables.items():
            if var.group is not group:
                continue
            ds = _direct_dataset(path, var, attrs)
            name = next(iter(ds.data_vars))
            if name in taken:
                notes.append(f"{name} (paramId {key[3]}, {group.label}) dropped: name taken")
                log.warning("%s: %s", path, notes[-1])
                continue
            taken.add(name)
            out.append((group, _strip(ds, group)))
    return out


def _first_field(h, group: _Group, window) -> _Var:
    """A variable's grid, window and attributes from its first message (cfgrib's code on a
    clone of the handle, so that cfgrib's message object may release it)."""
    from cfgrib import cfmessage
    from cfgrib import dataset as cfds

    codes = _eccodes()
    msg = cfmessage.CfMessage(codes_id=codes.codes_clone(h))
    grid_type = msg["gridType"]
    if grid_type not in _DIRECT_GRIDS:
        raise _Fallback(f"gridType {grid_type}")
    extra = sorted(cfds.EXTRA_DATA_ATTRIBUTES_KEYS + cfds.GRID_TYPE_MAP.get(grid_type, []))
    dims, shape, geo_vars = cfds.build_geography_coordinates(msg, _ENCODE_CF, "ignore")
    if dims != ("latitude", "longitude"):
        raise _Fallback(f"grid dimensions {dims}")
    geo, cut = _geo_cut(geo_vars, window)
    return _Var(group, cfds.read_data_var_attrs(msg, extra), geo, tuple(shape), cut)


def _direct_dataset(path: Path, var: _Var, global_attrs: dict) -> xr.Dataset:
    """One variable as cfgrib would give it (coordinates ``number``, ``time``, ``step``,
    ``latitude``, ``longitude``; singletons scalar)."""
    from cfgrib import dataset as cfds

    attrs = {}
    for k, seen in var.unique.items():
        if len(seen) > 1:
            raise _Fallback(f"several values of {k} in one variable")
        value = next(iter(seen))
        if value not in ("undef", "unknown"):
            attrs["GRIB_" + k] = value
    attrs.update(var.attrs)
    cfds.encode_cf_first(attrs, _ENCODE_CF, ("time", "step"))
    headers = list(var.fields)
    coords: dict[str, xr.Variable] = {}
    dims: list[str] = []
    axes: list[dict] = []
    for i, name in enumerate(("number", "time", "step")):
        values = sorted({h[i] for h in headers})
        if values == ["undef"]:
            axes.append({"undef": 0})
            continue
        coord_attrs = {
            "long_name": f"original GRIB coordinate for key: {name}({name})",
            "units": "1",
            **cfds.COORD_ATTRS.get(name, {}),
        }
        if name in ("time", "step"):  # decoded by xarray: units and calendar are encoding
            coord_attrs = {k: v for k, v in coord_attrs.items() if k not in _DECODED_ATTRS}
        data = np.array(values)
        if name == "time":
            data = (data * 1_000_000_000).astype("datetime64[ns]")
        elif name == "step":
            data = (data * 3600 * 1_000_000_000).round().astype("timedelta64[ns]")
        if len(values) == 1:
            coords[name] = xr.Variable((), data[0], coord_attrs)
        else:
            coords[name] = xr.Variable((name,), data, coord_attrs)
            dims.append(name)
        axes.append({v: j for j, v in enumerate(values)})
    geo_shape = tuple(var.geo[c].size for c in ("latitude", "longitude"))
    header_dims = [(i, name) for i, name in enumerate(("number", "time", "step")) if name in dims]
    shape = tuple(coords[name].size for _, name in header_dims) + geo_shape
    placed = {
        tuple(axes[i][header[i]] for i, _ in header_dims): offset
        for header, offset in var.fields.items()
    }
    data = indexing.LazilyIndexedArray(_FieldsArray(path, var, shape, placed))
    name = attrs.get("GRIB_shortName", f"paramId_{attrs.get('GRIB_paramId')}")
    if attrs.get("GRIB_cfVarName", "unknown") not in ("undef", "unknown"):
        name = attrs["GRIB_cfVarName"]
    attrs["coordinates"] = " ".join([*coords, "latitude", "longitude"])
    da = xr.Variable((*dims, "latitude", "longitude"), data, attrs)
    return xr.Dataset({name: da}, coords={**coords, **var.geo}, attrs=dict(global_attrs))


class _FieldsArray(BackendArray):
    """A variable's fields, decoded when read: only the messages a read needs, each cut to
    the window as soon as it is decoded (cfgrib's missing-value handling and alternative row
    scanning)."""

    def __init__(self, path: Path, var: _Var, shape: tuple[int, ...], placed: dict):
        from cfgrib import messages as cfmessages

        self.path, self.var, self.shape, self.placed = path, var, shape, placed
        self.dtype = np.dtype(cfmessages.DEFAULT_VALUES_DTYPE)
        self.missing = cfmessages.MISSING_VAUE_INDICATOR

    def __getitem__(self, key):
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.BASIC, self._read
        )

    def _read(self, key: tuple) -> np.ndarray:
        nhead = len(self.shape) - 2
        head = [range(n)[k] if isinstance(k, slice) else [k] for k, n in
                zip(key[:nhead], self.shape[:nhead], strict=True)]  # fmt: skip
        where = [{v: j for j, v in enumerate(h)} for h in head]
        out = np.full((*map(len, head), *self.shape[nhead:]), np.nan, dtype=self.dtype)
        codes = _eccodes()
        with self.path.open("rb") as fh:
            for index, offset in sorted(self.placed.items(), key=lambda item: item[1]):
                if not all(i in w for i, w in zip(index, where, strict=True)):
                    continue
                fh.seek(offset)
                h = codes.codes_grib_new_from_file(fh)
                try:
                    codes.codes_set(h, "missingValue", self.missing)  # as cfgrib asks
                    values = codes.codes_get_values(h).reshape(self.var.shape)
                    if _get(codes, h, "alternativeRowScanning", int, 0):
                        values = values.copy()
                        values[1::2, :] = values[1::2, ::-1]
                finally:
                    codes.codes_release(h)
                field_ = _take(values, self.var.cut).astype(self.dtype)
                field_[field_ == self.missing] = np.nan
                out[tuple(w[i] for i, w in zip(index, where, strict=True))] = field_
        out = out[(*(0 if not isinstance(k, slice) else slice(None) for k in key[:nhead]),
                   *key[nhead:])]  # fmt: skip
        return out


def open_grib(
    path: str | Path,
    *,
    chunks: dict | None = None,
    window: Callable[[xr.Dataset], dict | None] | None = None,
) -> xr.Dataset:
    """One raw dataset of the surface fields of a GRIB1/GRIB2 file (see the module docstring).

    Parameters
    ----------
    path : str or Path
        The GRIB file; nothing is written beside it.
    chunks : optional
        Dask chunks (e.g. ``{}`` or ``{"step": 1}``); ``None`` keeps lazy arrays that decode
        their messages when read.
    window : callable, optional
        Given the grid as a coordinates-only dataset (``latitude``/``longitude`` as stored),
        the rows and columns to keep (``{dimension: slice or positions}``, or None for all):
        fields are cut to them as they are decoded (:func:`cityops.ingest.canonical.
        crop_window`).

    Raises
    ------
    InputError
        Not a GRIB file, truncated or corrupt, or no surface field.
    """
    path = Path(path)
    messages = scan_grib(path)
    groups = _groups(messages)
    if not groups:
        found = sorted({m.type_of_level for m in messages})
        raise InputError(
            f"{path}: no surface fields (level types found: {', '.join(found)}; expected "
            "surface, heightAboveGround 2 m / 10 m or meanSea)"
        )
    table = _step_table(messages, path)

    notes: list[str] = []
    pieces: list[tuple[_Group, xr.Dataset]] = []
    try:
        pieces = _read_direct(path, messages, groups, window, notes)
        direct = True
    except _Fallback as why:
        log.debug("%s: read through cfgrib (%s)", path, why)
        notes, pieces, direct = [], [], False
    if not direct:
        for group in groups:
            for ds in _pieces(path, group, chunks, notes):
                pieces.append((group, _strip(ds, group)))
    if not pieces:
        raise InputError(f"{path}: cfgrib could not read any surface field")

    kept: list[xr.Dataset] = []
    first: xr.Dataset | None = None
    taken: dict[str, str] = {}
    for group, ds in pieces:
        for name in ds.data_vars:
            if name in taken:
                note = f"{name} ({group.label}) dropped: name taken by {taken[name]}"
                log.warning("%s: %s", path, note)
                notes.append(note)
                continue
            one = ds[[name]]
            if first is None:
                first = one
            elif not _same_grid(first, one):
                note = f"{name} ({group.label}) dropped: on another grid"
                log.warning("%s: %s", path, note)
                notes.append(note)
                continue
            taken[name] = group.label
            kept.append(one)
    kept = _expand_shared(kept)
    try:
        merged = xr.merge(kept, join="outer", compat="no_conflicts", combine_attrs="override")
    except Exception as err:
        raise InputError(f"{path}: surface fields cannot be combined ({err})") from None
    if "step" in merged.dims:
        merged = merged.sortby("step")
    merged = _valid_time(merged)
    _set_step_attrs(merged, table)

    if direct and chunks is not None:
        merged = merged.chunk(chunks)
    cfgrib = _cfgrib()
    eccodes = _eccodes()
    attrs = {k: v for k, v in pieces[0][1].attrs.items() if k != "history"}
    attrs["cityops_reader"] = "grib"
    attrs["source"] = str(path)
    how = "headers once, each field used decoded once" if direct else "through cfgrib"
    history = (
        f"{path.name}: read by cityops.ingest.grib (ecCodes {eccodes.codes_get_api_version()}"
        f" {how}, cfgrib {cfgrib.__version__}): {len(kept)} variables from "
        f"{', '.join(g.label for g in groups)}"
    )
    if notes:
        history += "; " + "; ".join(notes)
    attrs["history"] = history
    merged.attrs = attrs
    log.info("%s", history)
    return merged


# ---------------------------------------------------------------------------------------------
# Several files of one run


def combine_steps(datasets: Sequence[xr.Dataset]) -> xr.Dataset:
    """Datasets from :func:`open_grib` for one run (e.g. one file per lead time) along
    ``step``, with ``GRIB_startStep``/``GRIB_endStep``/``accumulation_start`` kept aligned.

    A step present in several datasets is taken from the first (logged). Datasets with
    different reference times raise :class:`InputError`.
    """
    if not datasets:
        raise InputError("no GRIB dataset to combine")
    sources = [str(ds.attrs.get("source", "?")) for ds in datasets]
    refs = {
        tuple(np.atleast_1d(ds["time"].values).tolist()) for ds in datasets if "time" in ds.coords
    }
    if len(refs) > 1:
        raise InputError(
            f"{', '.join(sources)}: different reference times; expected files of one run"
        )
    for ds, src in zip(datasets[1:], sources[1:], strict=True):
        if not _same_grid(datasets[0], ds):
            raise InputError(f"{src}: not on the grid of {sources[0]}; expected files of one run")
    prepared: list[xr.Dataset] = []
    seen: set[float] = set()
    for ds, src in zip(datasets, sources, strict=True):
        if "step" not in ds.coords:
            raise InputError(f"{src}: no 'step' coordinate to combine on")
        ds = ds.drop_vars("valid_time", errors="ignore")
        if "step" not in ds.dims:
            ds = ds.expand_dims("step")
        hours = _step_hours(ds)
        fresh = np.array([h not in seen for h in hours])
        if not fresh.all():
            log.warning(
                "%s: steps %s already read from an earlier file; skipped",
                src,
                ", ".join(f"{h:g} h" for h in hours[~fresh]),
            )
            if not fresh.any():
                continue
            ds = ds.isel(step=np.flatnonzero(fresh))
        seen.update(hours[fresh].tolist())
        # Per-step attributes become variables on ``step`` for the concatenation.
        extra = {}
        for name, da in ds.data_vars.items():
            for attr in _STEP_ATTRS:
                if attr in da.attrs:
                    values = np.atleast_1d(np.asarray(da.attrs[attr], dtype=float))
                    if values.size == len(fresh):
                        values = values[fresh]
                    extra[f"__{attr}__{name}"] = ("step", values)
        prepared.append(ds.assign(extra))
    combined = xr.concat(
        prepared,
        dim="step",
        data_vars="all",
        coords="different",
        compat="equals",
        join="outer",
        combine_attrs="drop_conflicts",
    )
    combined = combined.sortby("step")
    for var in [v for v in combined.data_vars if str(v).startswith("__")]:
        _, attr, name = str(var).split("__", 2)
        if name in combined:
            combined[name].attrs[attr] = combined[var].values.astype(float)
        combined = combined.drop_vars(var)
    for name, da in combined.data_vars.items():  # attributes dropped as conflicting
        for ds in datasets:
            if name in ds:
                for key, value in ds[name].attrs.items():
                    if key not in _STEP_ATTRS:
                        da.attrs.setdefault(key, value)
    combined = _valid_time(combined)
    combined.attrs["source"] = ", ".join(sources)
    combined.attrs["history"] = "\n".join(
        dict.fromkeys(str(ds.attrs.get("history", "")) for ds in datasets if ds.attrs)
    ).strip()
    combined.attrs["cityops_reader"] = "grib"
    return combined
