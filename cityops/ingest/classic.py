"""A size check for classic NetCDF files (CDF-1, CDF-2, CDF-5) that netCDF-C does not make.

A classic file cut short (an interrupted download or copy) still opens, and netCDF-C reads the
missing bytes as zeros: a truncated precipitation file silently says "no rain". The header
states where each variable's data begins and how large it is, so the file size it needs is
known before any data is read. :func:`truncated_variable` parses the header (format
specification: https://docs.unidata.ucar.edu/netcdf-c/current/file_format_specifications.html)
and names the first variable whose data runs past the end of the file.

NetCDF-4 (HDF5) files need no such check: HDF5 compares the end-of-file address in its
superblock with the file size and refuses a truncated file when it is opened.
"""

from __future__ import annotations

import struct
from pathlib import Path

__all__ = ["truncated_variable"]

_ABSENT, _DIMENSION, _VARIABLE, _ATTRIBUTE = 0, 10, 11, 12
# nc_type -> bytes per value (byte, char, short, int, float, double, ubyte, ushort, uint,
# int64, uint64).
_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 4, 6: 8, 7: 1, 8: 2, 9: 4, 10: 8, 11: 8}
_STREAMING = (0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF)  # numrecs of a file still being written


class _Header:
    def __init__(self, data: bytes, version: int):
        self.data = data
        self.pos = 4
        self.version = version

    def _unpack(self, fmt: str, size: int) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return value

    def int32(self) -> int:
        return self._unpack(">i", 4)

    def non_neg(self) -> int:
        # Counts and lengths: 64-bit in CDF-5, 32-bit otherwise.
        return self._unpack(">Q", 8) if self.version == 5 else self._unpack(">I", 4)

    def offset(self) -> int:
        return self._unpack(">I", 4) if self.version == 1 else self._unpack(">Q", 8)

    def name(self) -> str:
        n = self.non_neg()
        text = self.data[self.pos : self.pos + n].decode("utf-8", "replace")
        self.pos += (n + 3) // 4 * 4
        return text

    def attributes(self) -> None:
        tag, count = self.int32(), self.non_neg()
        if tag not in (_ABSENT, _ATTRIBUTE):
            raise ValueError("bad attribute list")
        for _ in range(count):
            self.name()
            nc_type = self.int32()
            n = self.non_neg()
            self.pos += (n * _TYPE_SIZE[nc_type] + 3) // 4 * 4


def truncated_variable(path: str | Path) -> tuple[str, int, int] | None:
    """``(variable, bytes needed, file size)`` when a classic NetCDF file ends before the data
    of ``variable``; None when the file is complete, not classic NetCDF, or its header cannot
    be parsed (netCDF-C then reports the problem itself)."""
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(4)
        if len(head) < 4 or head[:3] != b"CDF" or head[3] not in (1, 2, 5):
            return None
        # The header is at most a few hundred kB even for files with many attributes.
        data = head + fh.read(8 * 2**20)
    try:
        hdr = _Header(data, head[3])
        numrecs = hdr.non_neg()
        tag, ndims = hdr.int32(), hdr.non_neg()
        if tag not in (_ABSENT, _DIMENSION):
            return None
        dims = []
        for _ in range(ndims):
            hdr.name()
            dims.append(hdr.non_neg())
        hdr.attributes()
        tag, nvars = hdr.int32(), hdr.non_neg()
        if tag not in (_ABSENT, _VARIABLE):
            return None
        variables = []
        for _ in range(nvars):
            name = hdr.name()
            dimids = [hdr.non_neg() for _ in range(hdr.non_neg())]
            hdr.attributes()
            nc_type = hdr.int32()
            vsize = hdr.non_neg()
            begin = hdr.offset()
            shape = [dims[d] for d in dimids]
            is_record = bool(shape) and shape[0] == 0
            one = _TYPE_SIZE[nc_type]
            for n in shape[1:] if is_record else shape:
                one *= n
            variables.append((name, is_record, begin, one, vsize))
    except (struct.error, KeyError, IndexError, ValueError):
        return None
    if numrecs in _STREAMING:
        return None
    record_vars = [v for v in variables if v[1]]
    # One record variable: records are not padded; several: each record is the sum of vsizes.
    recsize = record_vars[0][3] if len(record_vars) == 1 else sum(v[4] for v in record_vars)
    for name, is_record, begin, one, _vsize in variables:
        if is_record:
            end = begin + (numrecs - 1) * recsize + one if numrecs else begin
        else:
            end = begin + one
        if end > size:
            return name, end, size
    return None
