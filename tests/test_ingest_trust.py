"""Silently wrong inputs (issue 16) and the CMPA hourly ingest (issue 15 item 13).

Each case drives the CLI (``cityops assess FILE --out DIR`` through :func:`cityops.cli.main`,
as ``tests/test_bad_inputs.py`` does) and asserts the outcome a duty forecaster sees: exit
status 2 with one clear stderr line naming the file and what was expected, or exit status 0
with the warning in the ``note`` column of ``town_hazards.csv``. The cases are listed in
``docs/bad_inputs.md`` ("Silently wrong inputs (issue 16)").

Rainstorm levels are those of the national table (GB/T 27962 / 气象灾害预警信号): blue 50 mm
in 12 h, yellow 50 mm in 6 h, orange 50 mm in 3 h, red 100 mm in 3 h ("以上": >=).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cityops.cli import main
from cityops.errors import InputError
from cityops.geo.jurisdiction import load_jurisdiction
from cityops.ingest import open_forecast
from cityops.ingest.grib import check_structure
from cityops.ingest.stations import read_micaps1_stations, read_station_csv
from tests.conftest import ISSUED, SHARED, make_forecast
from tests.grib_fixtures import write_gfs_like, write_grib1

# A 0.1° grid around the banner (lon 109.00..110.42, lat 38.92..39.80): 12 x 17 cells.
LAT = np.round(np.arange(38.8, 39.95, 0.1), 2)
LON = np.round(np.arange(108.9, 110.55, 0.1), 2)
NO_GEOMETRY = "150627L01"
REAL = SHARED / "realdata"
real = pytest.mark.skipif(not REAL.exists(), reason="../shared/realdata absent")


def run(argv: list, capsys) -> tuple[int, list[str]]:
    """``cityops -q ARGV`` in this process: exit status and the stderr lines."""
    status = main(["-q", *map(str, argv)])
    _, err = capsys.readouterr()
    return status, err.strip().splitlines()


def refused(path: Path, tmp: Path, capsys, *fragments: str, extra=()) -> str:
    """``assess`` exits 2 with one line naming the file and the fragments; nothing written."""
    out = tmp / "run"
    status, lines = run(["assess", path, "--out", out, *extra], capsys)
    assert status == 2, lines
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("cityops: error: ") and path.name in line, line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in: {line}"
    assert not out.exists()
    return line


def assessed(path: Path, tmp: Path, capsys, *extra) -> pd.DataFrame:
    """``assess`` exits 0; the town hazard table (units with a polygon)."""
    out = tmp / "run"
    status, lines = run(["assess", path, "--out", out, *extra], capsys)
    assert status == 0, lines
    table = pd.read_csv(out / "town_hazards.csv", dtype={"town_code": str}, keep_default_na=False)
    return table[table.town_code != NO_GEOMETRY]


def rain_rows(table: pd.DataFrame) -> pd.DataFrame:
    return table[table.hazard == "rainstorm"]


def write_nc(ds, path: Path) -> Path:
    ds.to_netcdf(path, engine="netcdf4")
    return path


def grid_forecast(values: dict, *, times=None, units=None):
    return make_forecast(values, lat=LAT, lon=LON, times=times, units=units)


# ---------------------------------------------------------------------------------------------
# 1. A damaged GRIB1 byte


def _grib1_bds(data: bytes, message: int) -> tuple[int, int, int]:
    """(start of message, offset of section 1, offset of section 4) of GRIB1 message N."""
    start = 0
    for _ in range(message):
        start += int.from_bytes(data[start + 4 : start + 7], "big")
    pos = start + 8
    pds = pos
    flags = data[pos + 7]
    pos += int.from_bytes(data[pos : pos + 3], "big")
    if flags & 0x80:
        pos += int.from_bytes(data[pos : pos + 3], "big")
    if flags & 0x40:
        pos += int.from_bytes(data[pos : pos + 3], "big")
    return start, pds, pos


@pytest.fixture
def grib1(tmp_path) -> Path:
    return write_grib1(tmp_path / "intact.grib1", steps=(0, 6, 12))


@pytest.mark.parametrize("bits", [25, 12], ids=["more-bits", "fewer-bits"])
def test_grib1_damaged_bits_per_value_is_refused(grib1, tmp_path, capsys, bits):
    # Message 2 is 2t at +6 h (24 bits per value); one damaged byte makes ecCodes decode
    # garbage that looks like weather.
    data = bytearray(grib1.read_bytes())
    _, _, bds = _grib1_bds(bytes(data), 1)
    assert data[bds + 10] == 24
    data[bds + 10] = bits
    path = tmp_path / "damaged.grib1"
    path.write_bytes(bytes(data))
    refused(path, tmp_path, capsys, "GRIB message 2", "data section holds", f"of {bits} bits")


def test_grib1_bits_per_value_out_of_range_is_refused(grib1, tmp_path, capsys):
    # A constant field (0 bits, no data) declared with 200 bits per value and a matching length
    # cannot be: GRIB1 packs at most 32 bits per value.
    data = bytearray(grib1.read_bytes())
    _, _, bds = _grib1_bds(bytes(data), 1)
    data[bds + 10] = 200
    path = tmp_path / "bits200.grib1"
    path.write_bytes(bytes(data))
    refused(path, tmp_path, capsys, "GRIB message 2", "the message is corrupt")


@pytest.mark.parametrize(
    "section, fragment",
    [(1, "run past the message's end"), (4, "expected them to add up to the message length")],
    ids=["section-1", "section-4"],
)
def test_grib1_section_lengths_must_add_up(grib1, tmp_path, capsys, section, fragment):
    data = bytearray(grib1.read_bytes())
    _, pds, bds = _grib1_bds(bytes(data), 1)
    at = pds if section == 1 else bds
    length = int.from_bytes(data[at : at + 3], "big")
    data[at : at + 3] = (length + 2).to_bytes(3, "big")
    path = tmp_path / "bad_length.grib1"
    path.write_bytes(bytes(data))
    refused(path, tmp_path, capsys, "GRIB message 2", fragment, "the message is corrupt")


def test_grib1_intact_file_is_accepted(grib1, tmp_path, capsys):
    assert check_structure(grib1) == 5
    table = assessed(grib1, tmp_path, capsys)
    assert table.evaluated.astype(str).str.lower().eq("true").any()


def test_grib2_fewer_bits_per_value_is_refused(tmp_path, capsys):
    # GRIB2 2t at +3 h (message 6) with 16 instead of 24 bits per value: the data section is
    # now longer than its values need, and would decode to garbage.
    src = write_gfs_like(tmp_path / "src.grib2", buckets="6h", upper_air=False, steps=(0, 3))
    data = bytearray(src.read_bytes())
    start = 0
    for _ in range(5):
        start += struct.unpack(">Q", data[start + 8 : start + 16])[0]
    j = start + 16
    while data[j + 4] != 5:
        j += struct.unpack(">I", data[j : j + 4])[0]
    assert data[j + 19] == 24
    data[j + 19] = 16
    path = tmp_path / "bits16.grib2"
    path.write_bytes(bytes(data))
    refused(path, tmp_path, capsys, "GRIB message 6", "data section holds")


@real
@pytest.mark.parametrize(
    "name", ["gfs.t12z.pgrbf120.2p5deg.grib2", "gfs_2p5_2008021312_f000-f072.grb2"]
)
def test_real_grib_files_pass_the_structure_check(name):
    assert check_structure(REAL / name) > 0


# ---------------------------------------------------------------------------------------------
# 2. How amounts are stored: decided from metadata, never from the values

# Hourly amounts rising through a storm (mm in the hour ending at each time): the last 3 h
# hold 35 + 45 + 50 = 130 mm, red (>= 100 mm in 3 h). Differenced as a running total it would
# be 15, 10, 5 mm an hour: no rainstorm at all.
RISING = np.array([0, 0, 1, 2, 5, 10, 20, 35, 45, 50, 50, 50], dtype=float)


def hourly_tp(tmp: Path, name: str, **attrs) -> Path:
    ds = grid_forecast({"precip": RISING}).rename(precip="tp")
    ds["tp"].attrs = {"units": "mm", **attrs.pop("var_attrs", {})}
    if attrs.pop("no_reference", False):
        del ds.attrs["issued"]
    ds.attrs.update(attrs)
    return write_nc(ds, tmp / name)


def test_rising_hourly_tp_without_metadata_is_refused(tmp_path, capsys):
    path = hourly_tp(tmp_path, "tp_hourly.nc")
    refused(path, tmp_path, capsys, "variable 'tp' (precip)", "--mapping", "kind")


def test_precipitation_amount_without_cell_methods_is_refused(tmp_path, capsys):
    ds = grid_forecast({"precip": RISING}).rename(precip="rain")
    ds["rain"].attrs = {"units": "mm", "standard_name": "precipitation_amount"}
    path = write_nc(ds, tmp_path / "cf_no_cell_methods.nc")
    refused(path, tmp_path, capsys, "variable 'rain' (precip)", "--mapping", "kind")


def test_mapping_kind_interval_decides(tmp_path, capsys):
    path = hourly_tp(tmp_path, "tp_hourly.nc")
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        yaml.safe_dump({"variables": {"tp": {"name": "precip", "kind": "interval"}}})
    )
    table = assessed(path, tmp_path, capsys, "--mapping", mapping)
    assert (rain_rows(table).level == 4).all()


def test_cell_methods_time_sum_decides(tmp_path, capsys):
    path = hourly_tp(tmp_path, "tp_sum.nc", var_attrs={"cell_methods": "time: sum"})
    assert (rain_rows(assessed(path, tmp_path, capsys)).level == 4).all()


def test_era5_hourly_tp_is_per_hour_by_convention(tmp_path, capsys):
    # ERA5 from the CDS: no reference time, ECMWF attributes: hourly tp is the hour's amount.
    path = hourly_tp(
        tmp_path,
        "era5.nc",
        no_reference=True,
        institution="European Centre for Medium-Range Weather Forecasts",
        GRIB_centre="ecmf",
    )
    assert (rain_rows(assessed(path, tmp_path, capsys)).level == 4).all()


def test_ifs_running_tp_is_differenced_by_convention(tmp_path, capsys):
    # The same storm as IFS stores it: totals since the start, with its reference time.
    path = hourly_tp(
        tmp_path, "ifs.nc", institution="European Centre for Medium-Range Weather Forecasts"
    )
    ds = open_forecast(path)
    np.testing.assert_allclose(ds["precip"].isel(lat=0, lon=0).values, np.diff(RISING, prepend=0))
    assert "ECMWF IFS forecast" in ds.attrs["history"]


# GFS 3-hourly steps with 6 h buckets: amounts 25 mm (06-09 UTC) and 30 mm (09-12 UTC) are
# stored as 25 and 55. Correct: 55 mm in 6 h, 30 mm at most in 3 h: yellow (level 2). Taken as
# interval amounts, 55 mm "in 3 h" would be orange.
GFS_STEPS = ISSUED + pd.to_timedelta(np.arange(3, 25, 3), unit="h")
GFS_STORED = np.array([0, 0, 25, 55, 0, 0, 0, 0], dtype=float)


def gfs_netcdf(tmp: Path) -> Path:
    ds = grid_forecast({"precip": GFS_STORED}, times=GFS_STEPS).rename(precip="tp")
    ds["tp"].attrs = {"units": "kg m-2", "GRIB_centre": "kwbc"}
    ds.attrs.update(
        institution="US National Weather Service - NCEP", title="GFS 0.25 degree forecast"
    )
    return write_nc(ds, tmp / "gfs_buckets.nc")


def test_gfs_buckets_in_netcdf_are_differenced(tmp_path, capsys):
    path = gfs_netcdf(tmp_path)
    ds = open_forecast(path)
    np.testing.assert_allclose(ds["precip"].isel(lat=0, lon=0).values, [0, 0, 25, 30, 0, 0, 0, 0])
    assert (rain_rows(assessed(path, tmp_path, capsys)).level == 2).all()


def test_mapping_kind_bucket_with_period(tmp_path, capsys):
    ds = grid_forecast({"precip": GFS_STORED}, times=GFS_STEPS).rename(precip="apcp6")
    ds["apcp6"].attrs = {"units": "mm"}
    path = write_nc(ds, tmp_path / "buckets_unknown.nc")
    refused(path, tmp_path, capsys, "--mapping")  # unknown name: no variable at all
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        yaml.safe_dump(
            {"variables": {"apcp6": {"name": "precip", "kind": "bucket", "period": "6 h"}}}
        )
    )
    assert (rain_rows(assessed(path, tmp_path, capsys, "--mapping", mapping)).level == 2).all()


def test_bucket_without_period_in_mapping_is_refused(tmp_path, capsys):
    path = gfs_netcdf(tmp_path)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(yaml.safe_dump({"variables": {"tp": {"name": "precip", "kind": "bucket"}}}))
    out = tmp_path / "run"
    status, lines = run(["assess", path, "--out", out, "--mapping", mapping], capsys)
    assert status == 2 and len(lines) == 1 and "kind bucket needs 'period'" in lines[0], lines


# ---------------------------------------------------------------------------------------------
# 3. Missing steps are named, never "none"


def test_missing_leading_steps_are_named_in_every_rainstorm_note(tmp_path, capsys):
    # The first 9 h of a storm missing (NaN), then 60 mm in 3 h: orange where seen.
    rain = np.r_[np.full(9, np.nan), [20.0, 20.0, 20.0], np.zeros(12)]
    path = write_nc(grid_forecast({"precip": rain, "t2m": 22.0}), tmp_path / "first_9h_missing.nc")
    rows = rain_rows(assessed(path, tmp_path, capsys))
    for note in rows.note:
        assert "no data at 9 valid times" in note, note
        assert "2026-07-10 01:00–09:00 UTC (2026-07-10 09:00–17:00 Beijing time)" in note, note
        assert "level 0 means no data, not no hazard" in note, note


def test_missing_steps_in_the_middle_are_named(tmp_path, capsys):
    rain = np.r_[np.zeros(5), [np.nan, np.nan], np.zeros(17)]
    path = write_nc(grid_forecast({"precip": rain}), tmp_path / "hole.nc")
    rows = rain_rows(assessed(path, tmp_path, capsys))
    assert rows.note.str.contains(
        "no data at 2 valid times (2026-07-10 06:00–07:00 UTC", regex=False
    ).all()


# ---------------------------------------------------------------------------------------------
# 4. Plausibility: missing codes, wrong units


def test_undeclared_9999_missing_code_is_refused(tmp_path, capsys):
    rain = np.zeros((24, LAT.size, LON.size))
    rain[4, 3, 3] = 9999.0  # a missing value without _FillValue
    path = write_nc(grid_forecast({"precip": rain}), tmp_path / "rain_9999.nc")
    refused(path, tmp_path, capsys, "'precip'", "9999 mm over 1 h", "1 × 9999", "_FillValue")


def test_undeclared_999_9_code_inside_the_bounds_is_refused(tmp_path, capsys):
    """999.9 mm in one 6 h step is below the world-record bound for 6 h, but it is the
    MICAPS missing code: refused by name, never read as a yellow rainstorm."""
    times = ISSUED + pd.to_timedelta(np.arange(6, 49, 6), unit="h")
    rain = np.zeros((times.size, LAT.size, LON.size))
    rain[2, 2:5, 2:5] = 999.9
    path = write_nc(grid_forecast({"precip": rain}, times=times), tmp_path / "rain_6h_999.nc")
    refused(path, tmp_path, capsys, "'precip'", "9 × 999.9", "missing-value code", "_FillValue")


def test_visibility_9999_m_is_a_reading_not_a_code(tmp_path, capsys):
    """METAR reports 10 km or more as 9999 m (variables.yaml missing_code_is_value)."""
    vis = np.full((24, LAT.size, LON.size), 9999.0)
    path = write_nc(grid_forecast({"vis": vis}), tmp_path / "vis_9999.nc")
    from cityops.cli import main

    assert main(["-q", "assess", str(path), "--out", str(tmp_path / "o")]) == 0


def test_undeclared_minus_9999_temperature_is_named(tmp_path, capsys):
    t2m = np.full((24, LAT.size, LON.size), 20.0)
    t2m[2, 1, 1] = -9999.0
    path = write_nc(grid_forecast({"t2m": t2m}), tmp_path / "t2m_9999.nc")
    refused(path, tmp_path, capsys, "'t2m'", "below -100 degC", "1 × -9999", "_FillValue")


def test_millimetres_labelled_metres_is_refused(tmp_path, capsys):
    # 7.5 "m" in 3 h is 7500 mm in 3 h: millimetres labelled metres.
    times = ISSUED + pd.to_timedelta(np.arange(3, 25, 3), unit="h")
    rain = np.r_[0, 0, 7.5, 0, 0, 0, 0, 0]
    path = write_nc(
        grid_forecast({"precip": rain}, times=times, units={"precip": "m"}), tmp_path / "mm_as_m.nc"
    )
    refused(path, tmp_path, capsys, "reaches 7500 mm over 3 h", "expected at most", "labelled 'm'")


def test_hourly_amount_of_ten_metres_is_refused(tmp_path, capsys):
    rain = np.r_[np.zeros(3), [10.0], np.zeros(20)]
    path = write_nc(grid_forecast({"precip": rain}, units={"precip": "m"}), tmp_path / "ten_m.nc")
    refused(path, tmp_path, capsys, "reaches 10000 mm over 1 h", "valid_max_by_period")


def test_extreme_but_possible_hourly_rain_passes(tmp_path, capsys):
    rain = np.r_[np.zeros(3), [300.0], np.zeros(20)]  # the 1 h world record is 305 mm
    path = write_nc(grid_forecast({"precip": rain}), tmp_path / "record_hour.nc")
    assert (rain_rows(assessed(path, tmp_path, capsys)).level == 4).all()


def test_visibility_in_km_labelled_m_is_refused(tmp_path, capsys):
    vis = np.linspace(0.2, 30.0, 24)  # km, every cell: "m" would be red fog everywhere
    path = write_nc(grid_forecast({"vis": vis, "rh": 95.0}), tmp_path / "vis_km_as_m.nc")
    refused(path, tmp_path, capsys, "'vis'", "below 100 m", "km labelled m")


def test_humidity_fraction_labelled_percent_is_refused(tmp_path, capsys):
    path = write_nc(
        grid_forecast({"rh": np.linspace(0.3, 0.95, 24), "vis": 5000.0}),
        tmp_path / "rh_fraction.nc",
    )
    refused(path, tmp_path, capsys, "'rh'", "below 1.5 percent", "fraction labelled percent")


def test_dense_fog_over_part_of_the_grid_passes(tmp_path, capsys):
    vis = np.full((24, LAT.size, LON.size), 8000.0)
    vis[5:9, 4:8, 4:8] = 50.0  # real dense fog somewhere for a few hours
    path = write_nc(grid_forecast({"vis": vis, "rh": 98.0}), tmp_path / "patchy_fog.nc")
    assessed(path, tmp_path, capsys)


# ---------------------------------------------------------------------------------------------
# 5. Station observations: the same checks as grids


def _stations_csv(tmp: Path, header: str, value: str) -> Path:
    path = tmp / "stations.csv"
    path.write_text(
        f"station_id,lon,lat,time_utc,{header}\n"
        f"53543,109.98,39.83,2026-07-10T01:00Z,1.0\n"
        f"53543,109.98,39.83,2026-07-10T02:00Z,{value}\n",
        encoding="utf-8",
    )
    return path


def test_station_9999_is_refused_with_its_line(tmp_path):
    path = _stations_csv(tmp_path, "precip", "9999")
    with pytest.raises(InputError, match=r"stations\.csv: line 3: .*'precip'.*9999.*_FillValue"):
        read_station_csv(path)


def test_station_kelvin_without_unit_is_refused(tmp_path):
    path = _stations_csv(tmp_path, "t2m", "293.4").read_text().replace(",1.0\n", ",292.8\n")
    (tmp_path / "k.csv").write_text(path)
    with pytest.raises(InputError, match=r"line 2: .*'t2m'.*above 70 degC.*t2m\[K\]"):
        read_station_csv(tmp_path / "k.csv")


def test_station_kelvin_with_unit_is_converted(tmp_path):
    text = _stations_csv(tmp_path, "t2m[K]", "293.15").read_text().replace(",1.0\n", ",283.15\n")
    (tmp_path / "k.csv").write_text(text)
    df = read_station_csv(tmp_path / "k.csv")
    np.testing.assert_allclose(df["t2m"], [10.0, 20.0])


def test_review_refuses_station_9999(tmp_path, capsys):
    forecast = write_nc(grid_forecast({"precip": np.zeros(24)}), tmp_path / "fc.nc")
    stations = _stations_csv(tmp_path, "precip", "9999")
    out = tmp_path / "review"
    status, lines = run(
        ["review", "--forecast", forecast, "--observed", stations, "--out", out, "--no-case"],
        capsys,
    )
    assert status == 2, lines
    assert len(lines) == 1 and "stations.csv: line 3" in lines[0] and "9999" in lines[0], lines
    assert not out.exists()


def test_old_import_path_still_works():
    from cityops.review import observations

    assert observations.read_station_csv is read_station_csv


@real
def test_real_micaps1_stations_pass_the_checks():
    df = read_micaps1_stations(REAL / "19082208.000")
    assert len(df) > 5000 and df["precip"].max() < 500


# ---------------------------------------------------------------------------------------------
# 6. MICAPS diamond 4: lead gaps, the file's own period, the header's encoding

M4_LAT = np.round(np.arange(38.8, 39.95, 0.1), 2)
M4_LON = np.round(np.arange(108.9, 110.55, 0.1), 2)


def write_m4(folder: Path, lead: int, value: float, *, description: str, encoding="gbk", raw=None):
    """A MICAPS diamond 4 precipitation grid, run 2026-07-10 08 Beijing time (00 UTC)."""
    name = f"26071008.{lead:03d}"
    head = (
        f"26 07 10 08 {lead} 0 0.1 0.1 {M4_LON[0]} {M4_LON[-1]} {M4_LAT[0]} {M4_LAT[-1]} "
        f"{M4_LON.size} {M4_LAT.size} 10 0 100 0 0\n"
    )
    grid = np.full((M4_LAT.size, M4_LON.size), value)
    body = "\n".join(" ".join(f"{v:g}" for v in row) for row in grid) + "\n"
    desc = raw if raw is not None else description.encode(encoding)
    path = folder / name
    path.write_bytes(b"diamond 4 " + desc + b"\n" + head.encode() + body.encode())
    return path


def test_micaps_missing_lead_file_is_a_gap_not_a_coarse_step(tmp_path, capsys):
    # 3 h amounts at leads 3, 9, 12 (lead 6 missing): 60 mm in the 3 h to lead 9 is orange.
    folder = tmp_path / "m4"
    folder.mkdir()
    for lead, value in ((3, 0.0), (9, 60.0), (12, 0.0)):
        write_m4(folder, lead, value, description="3小时降水")
    rows = rain_rows(assessed(folder / "26071008.*", tmp_path, capsys))
    assert (rows.level == 3).all()
    for note in rows.note:
        assert (
            "no data at 1 valid time (2026-07-10 06:00 UTC (2026-07-10 14:00 Beijing time))" in note
        )
        assert "too coarse" not in note  # (the grid-spacing note of small towns is right)


def test_micaps_24h_amount_at_lead_48_covers_24_to_48(tmp_path, capsys):
    path = write_m4(tmp_path, 48, 30.0, description="24小时降水")
    ds = open_forecast(path)
    assert pd.Timestamp(ds["step_start"].values[0]) == ISSUED + pd.Timedelta("24h")
    assessed(path, tmp_path, capsys)


def test_micaps_utf8_header_is_read_as_utf8(tmp_path, capsys):
    path = write_m4(tmp_path, 24, 5.0, description="24小时降水", encoding="utf-8")
    ds = open_forecast(path)
    assert "precip" in ds and ds.attrs["micaps_description"] == "24小时降水"
    assessed(path, tmp_path, capsys)


def test_micaps_undecodable_header_is_refused(tmp_path, capsys):
    path = write_m4(tmp_path, 24, 5.0, description="", raw=b"\xff\xfe\xfd\x80 rain")
    refused(path, tmp_path, capsys, "neither UTF-8 nor GBK")


# ---------------------------------------------------------------------------------------------
# 7. CMPA hourly analysis (issue 15 item 13)

CMPA = REAL / "cmpa_china_hourly_precip_20170610.nc"


@real
def test_real_cmpa_skipped_hours_are_missing_not_seven_hour_steps(tmp_path, capsys):
    import xarray as xr

    bounds = load_jurisdiction("ejin-horo").bounds
    ds = open_forecast(CMPA, bounds=bounds)
    with xr.open_dataset(CMPA, engine="netcdf4") as raw:
        rate = raw["crain"].sel(lat=ds["lat"], lon=ds["lon"], method="nearest")
        at9 = rate.sel(time="2017-06-10T09:00").values
    # The hourly rate is 1 h of rain at 09 UTC, not 7 h (02 -> 09 UTC skipped in the file).
    np.testing.assert_allclose(ds["precip"].sel(time="2017-06-10T09:00").values, at9, atol=1e-4)
    hours = (ds["time"] - ds["step_start"]) / np.timedelta64(1, "h")
    assert (hours == 1).all()
    assert np.isnan(ds["precip"].sel(time="2017-06-10T05:00").values).all()
    assert "2017-06-10 03:00–08:00 UTC" in ds["precip"].attrs["cityops_missing"]
    rows = rain_rows(assessed(CMPA, tmp_path, capsys))
    assert rows.note.str.contains("no data at 7 valid times").all()
