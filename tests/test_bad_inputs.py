"""The bad-input corpus (issue 11): malformed forecasts, rule tables, registries and ledgers.

Every file is generated here (nothing is downloaded) and every case has a defined outcome,
listed in ``docs/bad_inputs.md``:

* **error** — exit status 2 (bad input), exactly one line on stderr
  (``cityops: error: FILE: ... expected ...``) naming the file and saying what was expected,
  no traceback, and no output folder left behind (a previous good run stays as it was);
* **warning** — the run succeeds (exit status 0) and the problem is recorded where a duty
  forecaster sees it: the forecast's ``history`` (the briefing's data section) and/or the
  ``note`` column of ``town_hazards``;
* **ok** — legal input, however odd (irregular steps, one step, 0-360 longitudes, 300 mm in an
  hour, -50 degC), that must pass with the right levels.

Most cases call :func:`cityops.cli.main` in this process (fast); a handful run the real
command in a subprocess to check the exit status and stderr of the process itself.
"""

from __future__ import annotations

import ctypes
import glob
import itertools
import json
import os
import re
import shutil
import sqlite3
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
import yaml

from cityops import ledger
from cityops.cli import main
from cityops.geo.jurisdiction import load_jurisdiction
from cityops.ingest import open_forecast
from tests.conftest import ISSUED, make_forecast
from tests.grib_fixtures import write_gfs_like

ROOT = Path(__file__).resolve().parents[1]
JURISDICTION = ROOT / "data" / "jurisdictions" / "ejin-horo"

# A 0.1° grid around the banner (lon 109.00..110.42, lat 38.92..39.80).
LAT = np.round(np.arange(38.8, 39.95, 0.1), 2)
LON = np.round(np.arange(108.9, 110.55, 0.1), 2)
# 75 mm in the 3 h ending 09 UTC: rainstorm orange (national: >= 50 mm in 3 h), not red.
RAIN = np.r_[np.zeros(6), [20.0, 30.0, 25.0], np.zeros(15)]
NO_GEOMETRY = "150627L01"


def forecast(**values) -> object:
    """The good canonical forecast, with some variables replaced or added."""
    base = {"precip": RAIN, "t2m": 22.0, "wind": 3.0}
    base.update(values)
    return make_forecast(base, lat=LAT, lon=LON)


def write_nc(ds, path: Path, **kwargs) -> Path:
    ds.to_netcdf(path, engine="netcdf4", **kwargs)
    return path


def run(argv: list[str], capsys) -> tuple[int, list[str]]:
    """``cityops -q ARGV`` in this process: exit status and the stderr lines."""
    status = main(["-q", *map(str, argv)])
    _, err = capsys.readouterr()
    return status, err.strip().splitlines()


def assert_one_clear_line(lines: list[str], named: Path, *fragments: str) -> str:
    """Exactly one stderr line, no traceback, naming the file and saying what was expected."""
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("cityops: error: "), line
    assert "Traceback" not in line and "internal error" not in line, line
    assert named.name in line, f"{named.name} not named in: {line}"
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in: {line}"
    return line


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return write_nc(forecast(), tmp_path_factory.mktemp("good") / "good.nc")


# ---------------------------------------------------------------------------------------------
# Builders of bad forecast files: each writes into ``tmp`` and returns the file's path.


def empty_file(tmp: Path) -> Path:
    path = tmp / "empty.nc"
    path.write_bytes(b"")
    return path


def text_file(tmp: Path) -> Path:
    path = tmp / "download_error.nc"
    path.write_text("<html><body>502 Bad Gateway</body></html>\n")
    return path


def truncated_netcdf4(tmp: Path) -> Path:
    data = write_nc(forecast(), tmp / "full.nc").read_bytes()
    path = tmp / "truncated4.nc"
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


def truncated_classic(tmp: Path) -> Path:
    data = write_nc(forecast(), tmp / "full3.nc", format="NETCDF3_64BIT").read_bytes()
    path = tmp / "truncated3.nc"
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


def _libhdf5():
    """The HDF5 library bundled with the netCDF4 wheel (or the system's), via ctypes."""
    import netCDF4

    here = Path(netCDF4.__file__).parent
    candidates = sorted(glob.glob(str(here.parent / "netcdf4.libs" / "libhdf5-*.so*")))
    candidates += sorted(glob.glob(str(here.parent / "netCDF4.libs" / "libhdf5-*.so*")))
    candidates += ["libhdf5.so", "libhdf5_serial.so"]
    for name in candidates:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    pytest.skip("no HDF5 library found to write a plain HDF5 file")


def hdf5_not_netcdf(tmp: Path) -> Path:
    """A plain HDF5 file (no NetCDF dimensions or coordinates), written with libhdf5 itself."""
    h5 = _libhdf5()
    hid = ctypes.c_int64
    h5.H5open()
    for fn in ("H5Fcreate", "H5Screate_simple", "H5Dcreate2", "H5Gcreate2"):
        getattr(h5, fn).restype = hid
    h5.H5Fcreate.argtypes = [ctypes.c_char_p, ctypes.c_uint, hid, hid]
    h5.H5Screate_simple.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    h5.H5Gcreate2.argtypes = [hid, ctypes.c_char_p, hid, hid, hid]
    h5.H5Dcreate2.argtypes = [hid, ctypes.c_char_p, hid, hid, hid, hid, hid]
    h5.H5Dwrite.argtypes = [hid, hid, hid, hid, hid, ctypes.c_void_p]
    for fn in ("H5Dclose", "H5Gclose", "H5Sclose", "H5Fclose"):
        getattr(h5, fn).argtypes = [hid]
    path = tmp / "instrument.h5.nc"
    double = hid.in_dll(h5, "H5T_NATIVE_DOUBLE_g").value
    fid = h5.H5Fcreate(str(path).encode(), 2, 0, 0)  # H5F_ACC_TRUNC, default properties
    dims = (ctypes.c_uint64 * 2)(4, 5)
    sid = h5.H5Screate_simple(2, dims, None)
    gid = h5.H5Gcreate2(fid, b"measurements", 0, 0, 0)
    values = np.arange(20, dtype="f8")
    for parent, name in ((gid, b"raw"), (fid, b"temperature")):
        did = h5.H5Dcreate2(parent, name, double, sid, 0, 0, 0)
        assert h5.H5Dwrite(did, double, 0, 0, 0, values.ctypes.data) >= 0
        h5.H5Dclose(did)
    h5.H5Gclose(gid)
    h5.H5Sclose(sid)
    assert h5.H5Fclose(fid) >= 0
    assert path.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    return path


def hdf5_signature_garbage(tmp: Path) -> Path:
    path = tmp / "garbage.nc"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + np.random.default_rng(1).bytes(4000))
    return path


def no_variables(tmp: Path) -> Path:
    return write_nc(forecast().drop_vars(["precip", "t2m", "wind"]), tmp / "coords_only.nc")


def units_unreadable(tmp: Path) -> Path:
    ds = forecast()
    ds["precip"].attrs["units"] = "millimetres please"
    return write_nc(ds, tmp / "units_text.nc")


def units_wrong_dimension(tmp: Path) -> Path:
    ds = forecast()
    ds["precip"].attrs["units"] = "K"
    return write_nc(ds, tmp / "units_kelvin_rain.nc")


def units_missing(tmp: Path) -> Path:
    ds = forecast()
    del ds["t2m"].attrs["units"]
    return write_nc(ds, tmp / "no_units.nc")


def only_variable_all_nan(tmp: Path) -> Path:
    ds = make_forecast({"precip": np.full(24, np.nan)}, lat=LAT, lon=LON)
    return write_nc(ds, tmp / "all_nan_only.nc")


def time_not_monotonic(tmp: Path) -> Path:
    ds = forecast()
    return write_nc(ds.isel(time=[0, 2, 1, *range(3, 24)]), tmp / "shuffled.nc")


def time_duplicated(tmp: Path) -> Path:
    ds = forecast()
    return write_nc(ds.isel(time=[0, 1, 1, *range(2, 24)]), tmp / "duplicate.nc")


def time_not_datetime(tmp: Path) -> Path:
    ds = forecast()
    ds = ds.assign_coords(time=np.arange(24.0))  # hours, but without CF "units"
    return write_nc(ds, tmp / "time_numbers.nc")


def grid_elsewhere(tmp: Path) -> Path:
    ds = make_forecast(
        {"precip": RAIN}, lat=np.arange(39.6, 40.4, 0.1), lon=np.arange(116.0, 117.0, 0.1)
    )
    return write_nc(ds, tmp / "beijing.nc")


def dateline_without_banner(tmp: Path) -> Path:
    """0-360 longitudes 120..260 E: crosses the dateline, stops east of the banner (109-110 E).
    After conversion to -180..180 the grid is two pieces with a hole over the banner."""
    ds = make_forecast(
        {"precip": RAIN}, lat=np.arange(38.5, 40.6, 0.5), lon=np.arange(120.0, 260.1, 0.5)
    )
    return write_nc(ds, tmp / "pacific_0_360.nc")


def lat_lon_swapped(tmp: Path) -> Path:
    ds = forecast().rename(lat="lon_", lon="lat_").rename(lon_="lon", lat_="lat")
    return write_nc(ds, tmp / "swapped.nc")


def negative_precip(tmp: Path) -> Path:
    rain = np.broadcast_to(RAIN[:, None, None], (24, LAT.size, LON.size)).copy()
    rain[3, 5, 5] = -5.0
    return write_nc(forecast(precip=rain), tmp / "negative_rain.nc")


def wind_500(tmp: Path) -> Path:
    wind = np.full((24, LAT.size, LON.size), 5.0)
    wind[10, 2:4, 2:4] = 500.0
    return write_nc(forecast(wind=wind), tmp / "wind_500.nc")


def kelvin_labelled_celsius(tmp: Path) -> Path:
    return write_nc(forecast(t2m=295.0), tmp / "t2m_kelvin_as_degC.nc")


def probability_in_percent(tmp: Path) -> Path:
    return write_nc(forecast(p_lightning=80.0), tmp / "p_lightning_percent.nc")


# --- GRIB: messages written with ecCodes (tests/grib_fixtures.py), then damaged byte by byte.
# Message order of write_gfs_like(upper_air=False, buckets="6h"): step 0 -> 2t, 10u, 10v,
# gust, prmsl (0-4); step 3 -> 2t (5), tmax, tmin, 10u, 10v, gust, prmsl (11), tp (12); ...
GRIB_STEPS = (0, 3, 6, 9)


def _grib_messages(data: bytes) -> list[tuple[int, int]]:
    out, i = [], 0
    while i < len(data):
        assert data[i : i + 4] == b"GRIB"
        total = struct.unpack(">Q", data[i + 8 : i + 16])[0]
        out.append((i, total))
        i += total
    return out


def _grib_sections(data: bytes, start: int, total: int) -> dict[int, tuple[int, int]]:
    out, j = {}, start + 16
    while j < start + total - 4:
        length, number = struct.unpack(">I", data[j : j + 4])[0], data[j + 4]
        out[number] = (j, length)
        j += length
    return out


def _damaged_grib(tmp: Path, name: str, message: int, how: str) -> Path:
    data = bytearray(
        write_gfs_like(
            tmp / f"{name}.src.grib2", buckets="6h", upper_air=False, steps=GRIB_STEPS
        ).read_bytes()
    )
    start, total = _grib_messages(bytes(data))[message]
    sections = _grib_sections(bytes(data), start, total)
    sec5, _ = sections[5]
    sec7, len7 = sections[7]
    if how == "bits_per_value":  # data representation no longer matches the data section
        data[sec5 + 19] = 16 if data[sec5 + 19] else 60
    elif how == "section_length":  # section 7 claims to run past the message
        data[sec7 : sec7 + 4] = struct.pack(">I", len7 + 1000)
    elif how == "packing_template":  # a data representation template ecCodes lacks
        data[sec5 + 9 : sec5 + 11] = struct.pack(">H", 61)
    path = tmp / f"{name}.grib2"
    path.write_bytes(bytes(data))
    return path


def grib_corrupt_data(tmp: Path, message: int = 5, name: str = "gfs_corrupt_jpeg") -> Path:
    """2t at step 3 packed as JPEG 2000 (as GFS packs its fields), its codestream scrambled:
    the headers are intact, the values fail to decode (ecCodes' DecodingError)."""
    import eccodes  # after pyproj: tests.grib_fixtures imports it first

    src = write_gfs_like(tmp / f"{name}.src.grib2", buckets="6h", upper_air=False, steps=GRIB_STEPS)
    path = tmp / f"{name}.grib2"
    with src.open("rb") as fin, path.open("wb") as fout:
        for i in itertools.count():
            handle = eccodes.codes_grib_new_from_file(fin)
            if handle is None:
                break
            if i == message:
                eccodes.codes_set(handle, "packingType", "grid_jpeg")
            eccodes.codes_write(handle, fout)
            eccodes.codes_release(handle)
    data = bytearray(path.read_bytes())
    start, total = _grib_messages(bytes(data))[message]
    sec7, len7 = _grib_sections(bytes(data), start, total)[7]
    data[sec7 + 5 : sec7 + len7] = bytes(b ^ 0x5A for b in data[sec7 + 5 : sec7 + len7])
    path.write_bytes(bytes(data))
    return path


def grib_data_section_short(tmp: Path) -> Path:
    # tp at step 3 is a constant field (0 bits, no data bytes); declaring 60 bits per value
    # would make ecCodes decode whatever lies beyond the message (1e17 mm, or a crash).
    return _damaged_grib(tmp, "gfs_short_tp", 12, "bits_per_value")


def grib_section_length(tmp: Path) -> Path:
    return _damaged_grib(tmp, "gfs_bad_section", 12, "section_length")


def grib_unknown_packing(tmp: Path) -> Path:
    return _damaged_grib(tmp, "gfs_bad_packing", 5, "packing_template")


def grib_truncated(tmp: Path) -> Path:
    data = write_gfs_like(
        tmp / "gfs_full.grib2", buckets="6h", upper_air=False, steps=GRIB_STEPS
    ).read_bytes()
    path = tmp / "gfs_cut.grib2"
    path.write_bytes(data[: len(data) - 100])
    return path


FORECAST_ERRORS = [
    pytest.param(empty_file, ("empty file (0 bytes)", "expected a NetCDF"), id="empty-file"),
    pytest.param(text_file, ("unknown file format", "expected NetCDF, GRIB"), id="html-not-netcdf"),
    pytest.param(truncated_netcdf4, ("cannot be read as NetCDF", "expected a complete"), id="truncated-netcdf4"),
    pytest.param(truncated_classic, ("truncated NetCDF file", "expected the complete file"), id="truncated-netcdf3"),
    pytest.param(hdf5_not_netcdf, ("no latitude/longitude", "expected 'lat'/'lon'"), id="hdf5-not-netcdf"),
    pytest.param(hdf5_signature_garbage, ("cannot be read as NetCDF", "expected a complete"), id="hdf5-signature-garbage"),
    pytest.param(no_variables, ("no usable variable", "expected one of precip"), id="no-variables"),
    pytest.param(units_unreadable, ("'precip'", "'millimetres please'", "expected mm"), id="units-unreadable"),
    pytest.param(units_wrong_dimension, ("'precip'", "'K'", "not convertible to mm"), id="units-wrong-dimension"),
    pytest.param(units_missing, ("'t2m'", "no 'units' attribute", "expected degC"), id="units-missing"),
    pytest.param(only_variable_all_nan, ("no usable variable", "every value is missing (NaN)"), id="only-variable-all-nan"),
    pytest.param(time_not_monotonic, ("'time' is not increasing", "expected sorted times"), id="time-not-monotonic"),
    pytest.param(time_duplicated, ("duplicated time 2026-07-10T02:00:00Z", "expected each valid time once"), id="time-duplicated"),
    pytest.param(time_not_datetime, ("'time' is not a date-time", "expected CF time units"), id="time-not-datetime"),
    pytest.param(grid_elsewhere, ("does not cover the jurisdiction", "expected a grid covering it"), id="grid-not-covering"),
    pytest.param(dateline_without_banner, ("no lon between -100 and 120", "expected a grid covering it"), id="dateline-0-360-hole-over-banner"),
    pytest.param(lat_lon_swapped, ("'lat' has values 108.9..110.5", "expected latitudes", "swapped"), id="lat-lon-swapped"),
    pytest.param(negative_precip, ("'precip'", "1 value below 0 mm", "-5", "expected precip >= 0 mm", "valid_min"), id="negative-precipitation"),
    pytest.param(wind_500, ("'wind'", "4 values above 150 m s-1", "500", "expected wind <= 150 m s-1"), id="wind-500-m-s"),
    pytest.param(kelvin_labelled_celsius, ("'t2m'", "above 70 degC", "295", "expected t2m <= 70 degC"), id="kelvin-labelled-degC"),
    pytest.param(probability_in_percent, ("'p_lightning'", "above 1 (range 80 to 80)", "expected p_lightning <= 1:"), id="probability-in-percent"),
    pytest.param(grib_corrupt_data, ("variable 't2m' cannot be read (DecodingError: Decoding invalid)", "expected intact data"), id="grib-corrupt-data-section"),
    pytest.param(grib_data_section_short, ("GRIB message 13", "data section holds 0 bytes", "expected 263"), id="grib-data-section-too-short"),
    pytest.param(grib_section_length, ("GRIB message 13", "section 7", "expected sections 1-7"), id="grib-corrupt-section-length"),
    pytest.param(grib_unknown_packing, ("variable 't2m' cannot be read", "expected intact data"), id="grib-unknown-packing"),
    pytest.param(grib_truncated, ("GRIB message", "truncated", "expected a complete message"), id="grib-truncated"),
]  # fmt: skip


@pytest.mark.parametrize("build, fragments", FORECAST_ERRORS)
def test_bad_forecast_is_one_clear_error(build, fragments, tmp_path, capsys):
    path = build(tmp_path)
    out = tmp_path / "run"
    status, lines = run(["assess", path, "--out", out], capsys)
    assert status == 2, lines
    assert_one_clear_line(lines, path, *fragments)
    assert not out.exists()
    assert not list(tmp_path.glob("*.idx"))  # nothing written beside the input


# ---------------------------------------------------------------------------------------------
# Bad rule tables (--rules FILE)

RULE_ROW = {
    "level": 3,
    "lead": "3 h",
    "any": [{"variable": "precip", "reduce": "sum", "window": "3 h", "op": ">=", "threshold": "50 mm"}],
    "source": "test",
}  # fmt: skip


def _rules(tmp: Path, name: str, **row) -> Path:
    level = {**RULE_ROW, **row}
    level = {k: v for k, v in level.items() if v is not None}
    doc = {
        "ruleset": "test",
        "source": "test",
        "hazards": {"rainstorm": {"name_zh": "暴雨", "levels": [level]}},
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def _condition(**changes) -> list[dict]:
    return [{**RULE_ROW["any"][0], **changes}]


def rules_yaml_syntax(tmp: Path) -> Path:
    path = tmp / "rules_syntax.yaml"
    path.write_text(
        "ruleset: test\nsource: test\nhazards:\n  rainstorm: {levels: [\n", encoding="utf-8"
    )
    return path


def rules_unknown_variable(tmp: Path) -> Path:
    return _rules(tmp, "rules_variable", any=_condition(variable="rainfall"))


def rules_bad_operator(tmp: Path) -> Path:
    return _rules(tmp, "rules_operator", any=_condition(op="=>"))


def rules_missing_level(tmp: Path) -> Path:
    return _rules(tmp, "rules_level", level=None)


def rules_threshold_units(tmp: Path) -> Path:
    return _rules(tmp, "rules_units", any=_condition(threshold="50 degC"))


def rules_no_levels(tmp: Path) -> Path:
    path = tmp / "rules_empty_hazard.yaml"
    path.write_text(
        "ruleset: test\nsource: test\nhazards:\n  rainstorm: {levels: []}\n", encoding="utf-8"
    )
    return path


RULE_ERRORS = [
    pytest.param(rules_yaml_syntax, ("is not valid YAML",), id="rules-yaml-syntax"),
    pytest.param(rules_unknown_variable, ("unknown variable 'rainfall'", "expected one of precip"), id="rules-unknown-variable"),
    pytest.param(rules_bad_operator, ("field 'op': '=>' is not one of", "'>='"), id="rules-bad-operator"),
    pytest.param(rules_missing_level, ("field 'level': None is not 1..4",), id="rules-missing-level"),
    pytest.param(rules_threshold_units, ("'50 degC' is not convertible to mm",), id="rules-threshold-units"),
    pytest.param(rules_no_levels, ("hazard rainstorm: needs at least one level",), id="rules-hazard-without-levels"),
]  # fmt: skip


@pytest.mark.parametrize("build, fragments", RULE_ERRORS)
def test_bad_rule_table_is_one_clear_error(build, fragments, good, tmp_path, capsys):
    path = build(tmp_path)
    out = tmp_path / "run"
    status, lines = run(["assess", good, "--rules", path, "--out", out], capsys)
    assert status == 2, lines
    assert_one_clear_line(lines, path, *fragments)
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# Bad registries: a copy of the Ejin Horo folder with one file damaged (--jurisdiction DIR)


def _copy_jurisdiction(tmp: Path) -> Path:
    folder = tmp / "ejin-horo-copy"
    shutil.copytree(JURISDICTION, folder)
    return folder


def jurisdiction_bad_timezone(tmp: Path) -> Path:
    folder = _copy_jurisdiction(tmp)
    path = folder / "jurisdiction.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace("timezone: Asia/Shanghai", "timezone: Asia/Beijing"), encoding="utf-8"
    )
    return path


def units_self_intersecting(tmp: Path) -> Path:
    folder = _copy_jurisdiction(tmp)
    path = folder / "units.geojson"
    doc = json.loads(path.read_text(encoding="utf-8"))
    bowtie = shapely.Polygon([(109.7, 39.55), (109.8, 39.62), (109.8, 39.55), (109.7, 39.62)])
    assert not bowtie.is_valid
    doc["features"][0]["geometry"] = shapely.geometry.mapping(bowtie)
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


def units_truncated_json(tmp: Path) -> Path:
    folder = _copy_jurisdiction(tmp)
    path = folder / "units.geojson"
    text = path.read_text(encoding="utf-8")
    path.write_text(text[: len(text) // 2], encoding="utf-8")
    return path


def assets_bad_row(tmp: Path) -> Path:
    folder = _copy_jurisdiction(tmp)
    path = folder / "assets.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[2, "op"] = "=>"
    frame.to_csv(path, index=False)
    return path


def plan_bad_row(tmp: Path) -> Path:
    folder = _copy_jurisdiction(tmp)
    path = folder / "plan" / "measures.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["measures"][0]["min_level"] = 7
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


REGISTRY_ERRORS = [
    pytest.param(jurisdiction_bad_timezone, ("field 'timezone'", "'Asia/Beijing'", "expected an IANA name"), id="jurisdiction-yaml-bad-timezone"),
    pytest.param(units_self_intersecting, ("feature 0", "field 'geometry': invalid (Self-intersection", "expected a valid polygon"), id="geojson-self-intersecting"),
    pytest.param(units_truncated_json, ("not valid GeoJSON",), id="geojson-truncated"),
    pytest.param(assets_bad_row, ("row 3", "field 'op'", "'=>' is not one of"), id="assets-csv-bad-row"),
    pytest.param(plan_bad_row, ("min_level", "expected 1-4 (blue..red), got 7"), id="plan-yaml-bad-row"),
]  # fmt: skip


@pytest.mark.parametrize("build, fragments", REGISTRY_ERRORS)
def test_bad_registry_is_one_clear_error(build, fragments, good, tmp_path, capsys):
    path = build(tmp_path)
    out = tmp_path / "run"
    folder = path.parent if path.parent.name != "plan" else path.parent.parent
    status, lines = run(["assess", good, "--jurisdiction", folder, "--out", out], capsys)
    assert status == 2, lines
    assert_one_clear_line(lines, path, *fragments)
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# Ledgers: corrupt, or locked by another connection


def _ledger_with_tasks(path: Path) -> Path:
    conn = ledger.connect(path)
    conn.close()  # the last connection checkpoints the WAL into the file
    return path


def ledger_random_bytes(tmp: Path) -> Path:
    path = tmp / "random.sqlite"
    path.write_bytes(np.random.default_rng(2).bytes(8192))
    return path


def ledger_damaged_pages(tmp: Path) -> Path:
    path = _ledger_with_tasks(tmp / "damaged.sqlite")
    data = bytearray(path.read_bytes())
    assert len(data) > 4096 and data[:16] == b"SQLite format 3\x00"
    page = int.from_bytes(data[16:18], "big")
    data[page:] = np.random.default_rng(3).bytes(len(data) - page)  # all but the schema page
    path.write_bytes(bytes(data))
    return path


def ledger_is_folder(tmp: Path) -> Path:
    path = tmp / "ledger.sqlite"
    path.mkdir()
    return path


LEDGER_ERRORS = [
    pytest.param(ledger_random_bytes, ("not an SQLite database", "expected a cityops task ledger"), id="ledger-random-bytes"),
    pytest.param(ledger_damaged_pages, ("not a usable cityops ledger", "malformed", "expected an SQLite database"), id="ledger-damaged-pages"),
    pytest.param(ledger_is_folder, ("is a folder", "expected a cityops task ledger"), id="ledger-is-a-folder"),
]  # fmt: skip


@pytest.mark.parametrize("build, fragments", LEDGER_ERRORS)
def test_bad_ledger_is_one_clear_error(build, fragments, tmp_path, capsys):
    path = build(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    status, lines = run(["tasks", "list", "--ledger", path], capsys)
    assert status == 2, lines
    assert_one_clear_line(lines, path, *fragments)
    # A damaged ledger is not "repaired" by creating a fresh database over it.
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.fixture
def locked_ledger(tmp_path, monkeypatch):
    """A ledger another connection holds an exclusive lock on (as a stuck writer would)."""
    path = _ledger_with_tasks(tmp_path / "locked.sqlite")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    monkeypatch.setenv("CITYOPS_LEDGER_TIMEOUT", "0.2")
    yield path
    holder.execute("ROLLBACK")
    holder.close()


@pytest.mark.parametrize(
    "argv",
    [
        ["tasks", "list"],
        ["tasks", "update", "150627100-rainstorm-x-E20260710T0000", "--state", "dispatched", "--by", "值班员"],
        ["tasks", "export", "--out", "{tmp}/tasks.csv"],
    ],
    ids=["list", "update", "export"],
)  # fmt: skip
def test_locked_ledger_is_one_clear_error(argv, locked_ledger, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    status, lines = run([*argv, "--ledger", locked_ledger], capsys)
    assert status == 2, lines
    assert_one_clear_line(
        lines, locked_ledger, "locked by another connection", "expected it to be free"
    )
    assert not (tmp_path / "tasks.csv").exists()


def test_ledger_write_locked_in_wal_mode_readers_still_read(tmp_path, monkeypatch, capsys):
    # WAL: a writer holding the write lock does not stop readers; another writer gets exit 2.
    path = _ledger_with_tasks(tmp_path / "wal.sqlite")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    monkeypatch.setenv("CITYOPS_LEDGER_TIMEOUT", "0.2")
    try:
        status, lines = run(["tasks", "list", "--ledger", path], capsys)
        assert (status, lines) == (0, [])
        status, lines = run(
            ["tasks", "update", "x", "--state", "dispatched", "--by", "a", "--ledger", path], capsys
        )
        assert status == 2
        assert_one_clear_line(lines, path, "locked by another connection")
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_bad_ledger_timeout_setting_is_an_input_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CITYOPS_LEDGER_TIMEOUT", "soon")
    status, lines = run(["tasks", "list", "--ledger", tmp_path / "l.sqlite"], capsys)
    assert status == 2 and lines == [
        "cityops: error: CITYOPS_LEDGER_TIMEOUT='soon': expected a number of seconds >= 0"
    ]


# ---------------------------------------------------------------------------------------------
# Warnings: the run succeeds and says what was wrong


def _assess(path: Path, out: Path, capsys, *extra) -> pd.DataFrame:
    status, lines = run(["assess", path, "--out", out, *extra], capsys)
    assert status == 0, lines
    assert lines == []  # -q: no warning printed (they are recorded, below)
    table = pd.read_csv(out / "town_hazards.csv", dtype={"town_code": str}, keep_default_na=False)
    table["evaluated"] = table["evaluated"].astype(str).str.lower() == "true"
    # 水岸新城 (150627L01) has no polygon: never evaluated, whatever the forecast.
    return table[table.town_code != NO_GEOMETRY]


def _history(path: Path) -> str:
    juris = load_jurisdiction("ejin-horo")
    return open_forecast(path, bounds=juris.bounds).attrs["history"]


def test_all_nan_variable_is_dropped_with_the_reason(tmp_path, capsys):
    path = write_nc(forecast(precip=np.full(24, np.nan)), tmp_path / "precip_all_nan.nc")
    table = _assess(path, tmp_path / "run", capsys)
    rain = table[table.hazard == "rainstorm"]
    assert not rain.evaluated.any()
    assert rain.note.str.contains(
        "not evaluated: precip unusable ('precip' in the file: every value is missing (NaN))",
        regex=False,
    ).all()
    assert table[table.hazard == "heat"].evaluated.all()  # t2m still serves
    assert "precip: every value is missing (NaN); ignored" in _history(path)


def test_partly_nan_field_warns_in_note_and_history(tmp_path, capsys):
    rain = np.broadcast_to(RAIN[:, None, None], (24, LAT.size, LON.size)).copy()
    rain[:, 6:9, 8:11] = np.nan  # a block of missing cells over 阿勒腾席热镇, all the time
    path = write_nc(forecast(precip=rain), tmp_path / "precip_holes.nc")
    table = _assess(path, tmp_path / "run", capsys)
    # The share is of the cropped grid (the banner plus a margin), as the rules see it.
    warning = r"precip: \d\.\d+ % of the values missing \(NaN\): levels there may be too low"
    rain_rows = table[table.hazard == "rainstorm"]
    assert rain_rows.note.str.contains(warning).all()
    assert rain_rows.evaluated.all()
    assert not table[table.hazard == "heat"].note.str.contains("missing").any()
    assert re.search(warning, _history(path))


def test_missing_issued_is_inferred_and_recorded(tmp_path, capsys):
    ds = forecast()
    del ds.attrs["issued"]
    path = write_nc(ds, tmp_path / "no_issued.nc")
    _assess(path, tmp_path / "run", capsys)
    assert "no forecast reference time; issued taken as the start of the first step" in (
        _history(path)
    )


# ---------------------------------------------------------------------------------------------
# Legal, however odd: the run succeeds with the right levels


def _max_level(table: pd.DataFrame, hazard: str) -> int:
    return int(table[table.hazard == hazard].level.astype(int).max())


def test_irregular_steps_hourly_then_3_hourly(tmp_path, capsys):
    times = pd.DatetimeIndex(
        [ISSUED + pd.Timedelta(hours=h) for h in (*range(1, 7), *range(9, 25, 3))]
    )
    rain = np.zeros(len(times))
    rain[times.get_loc(ISSUED + pd.Timedelta(hours=12))] = 60.0  # 60 mm in the 3 h step
    ds = make_forecast({"precip": rain, "t2m": 22.0}, times=times, lat=LAT, lon=LON)
    table = _assess(write_nc(ds, tmp_path / "irregular.nc"), tmp_path / "run", capsys)
    assert _max_level(table, "rainstorm") == 3


def test_one_step_file_counts_a_partial_window_that_already_meets(tmp_path, capsys):
    times = pd.DatetimeIndex([ISSUED + pd.Timedelta(hours=1)])
    ds = make_forecast({"precip": [60.0], "t2m": [22.0]}, times=times, lat=LAT, lon=LON)
    table = _assess(write_nc(ds, tmp_path / "one_step.nc"), tmp_path / "run", capsys)
    assert _max_level(table, "rainstorm") == 3
    assert table[table.hazard == "rainstorm"].evaluated.all()


def test_0_360_longitudes_crossing_the_dateline(tmp_path, capsys):
    # 100..260 E: crosses 180; after conversion the piece 100..180 E holds the banner.
    ds = make_forecast(
        {"precip": RAIN, "t2m": 22.0}, lat=np.arange(38.5, 40.6, 0.5), lon=np.arange(100.0, 260.1, 0.5)
    )  # fmt: skip
    path = write_nc(ds, tmp_path / "dateline_0_360.nc")
    table = _assess(path, tmp_path / "run", capsys)
    assert _max_level(table, "rainstorm") == 3
    juris = load_jurisdiction("ejin-horo")
    canonical = open_forecast(path, bounds=juris.bounds)
    assert "longitudes 0-360 converted to -180..180" in canonical.attrs["history"]
    lon = canonical["lon"].values
    assert 108 <= lon.min() and lon.max() <= 111.5  # cropped, not the whole Pacific


def test_transposed_dimensions(tmp_path, capsys):
    ds = forecast().transpose("time", "lon", "lat")
    table = _assess(write_nc(ds, tmp_path / "lon_lat_order.nc"), tmp_path / "run", capsys)
    assert _max_level(table, "rainstorm") == 3


def test_extreme_but_legal_values_pass(tmp_path, capsys):
    rain = np.zeros(24)
    rain[6] = 300.0  # 300 mm in one hour (the world record is about 305 mm)
    path = write_nc(forecast(precip=rain, t2m=-50.0, wind=60.0), tmp_path / "extreme.nc")
    table = _assess(path, tmp_path / "run", capsys)
    rain_rows = table[table.hazard == "rainstorm"]
    assert _max_level(table, "rainstorm") == 4
    assert rain_rows.peak_value.replace("", np.nan).astype(float).max() == 300.0
    assert _max_level(table, "gale") == 4
    canonical = open_forecast(path, bounds=load_jurisdiction("ejin-horo").bounds)
    assert float(canonical["t2m"].min()) == -50.0


def test_packing_noise_below_zero_is_tolerated(tmp_path, capsys):
    rain = np.broadcast_to(RAIN[:, None, None], (24, LAT.size, LON.size)).copy()
    rain[0] = -0.004  # GRIB-style packing noise, within valid_tolerance
    table = _assess(
        write_nc(forecast(precip=rain), tmp_path / "noise.nc"), tmp_path / "run", capsys
    )
    assert _max_level(table, "rainstorm") == 3


def test_corrupt_data_of_an_unused_field_is_not_read(tmp_path, capsys):
    # prmsl (message 12) has a scrambled JPEG codestream; cityops never reads mean-sea-level
    # pressure, and the message's structure is intact.
    path = grib_corrupt_data(tmp_path, message=11, name="gfs_bad_prmsl")
    table = _assess(path, tmp_path / "run", capsys)
    assert set(table.hazard) >= {"rainstorm", "gale"}


def test_unsafe_structure_is_refused_even_in_an_unused_field(tmp_path, capsys):
    # A data section shorter than declared would make ecCodes read past the message: the
    # file is refused whatever field the message holds (prmsl, message 12).
    path = _damaged_grib(tmp_path, "gfs_short_prmsl", 11, "bits_per_value")
    status, lines = run(["assess", path, "--out", tmp_path / "run"], capsys)
    assert status == 2
    assert_one_clear_line(lines, path, "GRIB message 12", "data section holds 0 bytes")


# ---------------------------------------------------------------------------------------------
# A bad input never replaces or damages the previous good run


def test_previous_good_run_stays_in_place(good, tmp_path, capsys):
    out = tmp_path / "run"
    _assess(good, out, capsys)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    status, lines = run(["assess", negative_precip(tmp_path), "--out", out], capsys)
    assert status == 2 and len(lines) == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no staging folder left


# ---------------------------------------------------------------------------------------------
# The real command in a subprocess: exit status, stderr, nothing written


def _cityops(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cityops.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "MPLBACKEND": "agg", **(env or {})},
        cwd=ROOT,
        timeout=300,
    )


@pytest.mark.parametrize(
    "build, fragments",
    [
        pytest.param(empty_file, ("empty file",), id="empty-file"),
        # ecCodes prints its own "ECCODES ERROR" lines unless cityops redirects them.
        pytest.param(
            grib_corrupt_data, ("cannot be read", "DecodingError"), id="grib-corrupt-data"
        ),
    ],
)
def test_subprocess_bad_forecast(build, fragments, tmp_path):
    path = build(tmp_path)
    out = tmp_path / "run"
    res = _cityops("-q", "assess", path, "--out", out)
    assert res.returncode == 2, res.stderr
    assert_one_clear_line(res.stderr.strip().splitlines(), path, *fragments)
    assert "ECCODES" not in res.stderr and res.stdout == ""
    assert not out.exists()


def test_subprocess_bad_rules_without_quiet(good, tmp_path):
    # Without -q the info lines of ingest come first; the error is the one last line.
    path = rules_yaml_syntax(tmp_path)
    res = _cityops("assess", good, "--rules", path, "--out", tmp_path / "run")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert [x for x in lines if x.startswith("cityops: error:")] == lines[-1:]
    assert_one_clear_line(lines[-1:], path, "is not valid YAML")
    assert "Traceback" not in res.stderr and not (tmp_path / "run").exists()


def test_subprocess_locked_ledger(tmp_path):
    path = _ledger_with_tasks(tmp_path / "locked.sqlite")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        res = _cityops("tasks", "list", "--ledger", path, env={"CITYOPS_LEDGER_TIMEOUT": "0.3"})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert res.returncode == 2
    assert_one_clear_line(res.stderr.strip().splitlines(), path, "locked by another connection")
