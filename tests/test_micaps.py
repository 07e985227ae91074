"""MICAPS diamond 4 grids and diamond 1 station files: small written fixtures and the real files."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cityops.errors import InputError
from cityops.ingest.micaps import read_micaps1, read_micaps4, sniff_micaps

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"

T2M_DESC = "26071008_024时效EC_细网格2米温度"
# 5 × 4 grid, rows from lat 41 down to 39.5, lon 100..102 step 0.5.
GRID_HEADER = "26 07 10 08 24 0 0.50 -0.50 100.0 102.0 41.0 39.5 5 4 2 -80 80 0 0"
ROWS = np.array(
    [
        [20.0, 21.0, 22.0, 23.0, 24.0],  # lat 41.0
        [19.5, 9999.0, 21.5, 22.5, 23.5],  # lat 40.5
        [18.0, 19.0, 20.0, 21.0, 22.0],  # lat 40.0
        [17.25, 18.25, 19.25, 20.25, 9999],  # lat 39.5
    ]
)


def grid_text(values=ROWS, per_line: int = 7) -> str:
    """Values as MICAPS writes them: a fixed count per line, rows wrapping across lines."""
    flat = [f"{v:g}" for v in np.asarray(values).ravel()]
    return "\n".join(" ".join(flat[i : i + per_line]) for i in range(0, len(flat), per_line))


def write_m4(
    tmp_path: Path,
    name: str = "26071008.024",
    desc: str = T2M_DESC,
    header: str = GRID_HEADER,
    values: str | None = None,
    *,
    raw_desc: bytes | None = None,
) -> Path:
    path = tmp_path / name
    first = b"diamond 4 " + (raw_desc if raw_desc is not None else desc.encode("gbk"))
    body = f" {header}\n{grid_text() if values is None else values}\n"
    path.write_bytes(first + b"\r\n" + body.replace("\n", "\r\n").encode("ascii"))
    return path


@pytest.fixture
def cityops_log(caplog, monkeypatch):
    """Capture the 'cityops' logger even after the CLI switched its propagation off."""
    monkeypatch.setattr(logging.getLogger("cityops"), "propagate", True)
    with caplog.at_level(logging.INFO, logger="cityops"):
        yield caplog


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# ------------------------------------------------------------------------------------ sniff


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"diamond 4 desc\n", 4),
        (b"  \r\n\xef\xbb\xbfDIAMOND   1 desc\n", 1),
        (b"\xef\xbb\xbf diamond\t4\n", 4),
        (b"diamond 14 x\n", None),
        (b"diamond 3 x\n", None),
        (b"\x89HDF\r\n\x1a\n", None),
        (b"CDF\x01", None),
    ],
)
def test_sniff(tmp_path, head, expected):
    path = tmp_path / "f"
    path.write_bytes(head + b"0" * 1000)
    assert sniff_micaps(path) == expected


def test_sniff_missing_file_is_none(tmp_path):
    assert sniff_micaps(tmp_path / "absent") is None


# -------------------------------------------------------------------------------- diamond 4


def test_small_grid(tmp_path, cityops_log):
    ds = read_micaps4(write_m4(tmp_path))
    da = ds["t2m"]
    assert da.dims == ("time", "lat", "lon") and da.dtype == np.float32
    np.testing.assert_allclose(ds["lat"], [39.5, 40.0, 40.5, 41.0])
    np.testing.assert_allclose(ds["lon"], [100.0, 100.5, 101.0, 101.5, 102.0])
    expected = np.where(ROWS == 9999, np.nan, ROWS)[::-1]
    np.testing.assert_allclose(da.values[0], expected, rtol=1e-6)
    assert np.isnan(da.sel(lat=40.5, lon=100.5)).item()
    assert np.isnan(da.sel(lat=39.5, lon=102.0)).item()
    assert da.sel(lat=41.0, lon=100.0).item() == 20.0
    assert da.attrs["units"] == "degC"
    assert da.attrs["long_name"] == T2M_DESC
    assert ds.attrs["issued"] == "2026-07-10T00:00:00Z"
    assert ds["time"].values[0] == np.datetime64("2026-07-11T00:00")
    assert ds.attrs["lead_hours"] == 24
    assert ds.attrs["cityops_reader"] == "micaps4"
    assert ds.attrs["micaps_description"] == T2M_DESC
    assert ds.attrs["source"].endswith("26071008.024")
    history = ds.attrs["history"]
    assert "t2m recognised" in history and "'2米温度'" in history
    assert "Beijing time" in history and "units: degC" in history
    assert not warnings_of(cityops_log)


def test_header_hour_disagreeing_with_name_loses_and_is_logged(tmp_path, cityops_log):
    header = GRID_HEADER.replace("26 07 10 08 24", "26 07 10 20 24")
    path = write_m4(tmp_path, header=header)
    ds = read_micaps4(path)
    assert ds.attrs["issued"] == "2026-07-10T00:00:00Z"
    (message,) = warnings_of(cityops_log)
    assert "26071008.024" in message and "2026-07-10 20:00" in message
    assert "2026-07-10 08:00" in message and "using the file name" in message
    assert "disagrees" in ds.attrs["history"]


def test_header_in_utc_is_recognised_as_such(tmp_path, cityops_log):
    header = GRID_HEADER.replace("26 07 10 08 24", "26 07 10 0 24")
    ds = read_micaps4(write_m4(tmp_path, header=header))
    assert ds.attrs["issued"] == "2026-07-10T00:00:00Z"
    assert any("same instant in UTC" in m for m in warnings_of(cityops_log))


def test_unparseable_name_uses_the_header(tmp_path):
    header = GRID_HEADER.replace("26 07 10 08 24", "2026 7 10 20 12")
    ds = read_micaps4(write_m4(tmp_path, name="t2m_guidance.txt", header=header))
    assert ds.attrs["issued"] == "2026-07-10T12:00:00Z"
    assert ds["time"].values[0] == np.datetime64("2026-07-11T00:00")
    assert "from the header" in ds.attrs["history"]


def test_precipitation_with_its_period(tmp_path):
    ds = read_micaps4(write_m4(tmp_path, desc="26071008_024时效EC_细网格24小时降水"))
    assert list(ds.data_vars) == ["precip"]
    assert ds["precip"].attrs["units"] == "mm"
    assert ds["precip"].attrs["accumulation_hours"] == 24


def test_visibility_in_km_is_converted_to_metres(tmp_path):
    ds = read_micaps4(write_m4(tmp_path, desc="EC_细网格能见度"))
    assert ds["vis"].attrs["units"] == "m"
    assert ds["vis"].sel(lat=41.0, lon=100.0).item() == pytest.approx(20000.0)
    assert "km" in ds.attrs["history"]


@pytest.mark.parametrize(
    ("desc", "variable"),
    [
        ("EC_细网格2米最高温度", "t2m_max"),
        ("24小时最低气温", "t2m_min"),
        ("10米阵风", "gust"),
        ("10米平均风速", "wind"),
        ("2米相对湿度", "rh"),
    ],
)
def test_elements_recognised(tmp_path, desc, variable):
    assert list(read_micaps4(write_m4(tmp_path, desc=desc)).data_vars) == [variable]


@pytest.mark.parametrize("desc", ["EC_细网格总云量", "EC_2米露点温度", "850hPa温度"])
def test_unknown_element_needs_a_variable(tmp_path, desc):
    path = write_m4(tmp_path, desc=desc)
    with pytest.raises(InputError, match="variable") as err:
        read_micaps4(path)
    message = str(err.value)
    assert str(path) in message and desc in message and "\n" not in message


def test_variable_and_units_override(tmp_path):
    path = write_m4(tmp_path, desc="EC_总云量", values=grid_text(ROWS + 273.15))
    ds = read_micaps4(path, variable="t2m", units="K")
    assert ds["t2m"].attrs["units"] == "degC"
    assert ds["t2m"].sel(lat=41.0, lon=100.0).item() == pytest.approx(20.0, abs=1e-4)
    assert "converted from K to degC" in ds.attrs["history"]
    ds = read_micaps4(write_m4(tmp_path), variable="t2m_max")
    assert list(ds.data_vars) == ["t2m_max"]
    assert "suggests t2m" in ds.attrs["history"]
    with pytest.raises(InputError, match="not a canonical variable"):
        read_micaps4(path, variable="temperature")


def test_damaged_description_is_matched_bytewise(tmp_path, cityops_log):
    # GBK bytes read as UTF-8 with replacement and written back (the real file's damage).
    damaged = "19071008_024时效EC_细网格2米温度场".encode("gbk").decode("utf-8", "replace")
    ds = read_micaps4(write_m4(tmp_path, raw_desc=damaged.encode("utf-8")))
    assert list(ds.data_vars) == ["t2m"]
    assert "锟斤拷" in ds.attrs["micaps_description"]
    assert any("damaged" in m for m in warnings_of(cityops_log))


def test_truncated_file(tmp_path):
    path = write_m4(tmp_path, values=grid_text(ROWS.ravel()[:-3]))
    with pytest.raises(InputError, match="truncated") as err:
        read_micaps4(path)
    assert str(path) in str(err.value) and "20 values" in str(err.value)


def test_non_numeric_value_names_its_line(tmp_path):
    text = grid_text().split("\n")
    text[1] = text[1].replace("23.5", "x23")
    path = write_m4(tmp_path, values="\n".join(text))
    with pytest.raises(InputError, match=r"line 4: grid value \d+ is 'x23'") as err:
        read_micaps4(path)
    assert str(path) in str(err.value)


def test_grid_size_inconsistent_with_bounds(tmp_path):
    path = write_m4(tmp_path, header=GRID_HEADER.replace(" 5 4 ", " 6 4 "))
    with pytest.raises(InputError, match=r"nlon=6 does not fit lon 100..102.*expected 5"):
        read_micaps4(path)


def test_not_a_diamond4_file(tmp_path):
    path = tmp_path / "26071008.000"
    path.write_bytes(b"diamond 1 obs\n26 07 10 08 0\n")
    with pytest.raises(InputError, match="not a MICAPS diamond 4 file") as err:
        read_micaps4(path)
    assert str(path) in str(err.value)


def test_longitudes_beyond_180_are_wrapped(tmp_path):
    header = GRID_HEADER.replace("100.0 102.0", "200.0 202.0")
    ds = read_micaps4(write_m4(tmp_path, header=header))
    np.testing.assert_allclose(ds["lon"], [-160.0, -159.5, -159.0, -158.5, -158.0])


# -------------------------------------------------------------------------------- diamond 1

M1_RECORDS = [
    "53543 110.01  39.82 1462 1   10   76    2  143    0    0    0   9999 9999 9999 9999"
    "    7   30    0   17.4 9999 9999 9999 9999",
    "53529 107.96  39.09 1381 1    0  320    4  124    0    0    0    1.5 9999 9999 9999"
    "    6  4.5   60   15.2 9999 9999 9999 9999",
    "53646 109.78  38.27 1157 1 9999 9999 9999 9999 9999 9999 9999   9999 9999 9999 9999"
    " 9999 9999 9999 9999.0 9999 9999 9999 9999",
]


def write_m1(tmp_path, records=M1_RECORDS, count=3, name="26071008.000", header="26 07 10 08"):
    path = tmp_path / name
    text = f"diamond 1 2026年07月10日08时地面观测\n  {header} {count}\n" + "\n".join(records)
    path.write_bytes(text.encode("gbk") + b"\n")
    return path


def test_station_file(tmp_path, cityops_log):
    df = read_micaps1(write_m1(tmp_path))
    assert list(df.columns) == [
        "station_id",
        "lon",
        "lat",
        "time_utc",
        "t2m",
        "wind",
        "vis",
        "precip",
        "dew_point",
        "pressure_msl",
    ]
    assert list(df["station_id"]) == ["53543", "53529", "53646"]
    assert (df["time_utc"] == pd.Timestamp("2026-07-10T00:00")).all()
    assert df["time_utc"].dt.tz is None
    first = df.iloc[0]
    assert first["t2m"] == pytest.approx(17.4) and first["wind"] == 2.0
    assert first["vis"] == pytest.approx(30000.0) and first["dew_point"] == 7.0
    assert first["pressure_msl"] == pytest.approx(1014.3) and np.isnan(first["precip"])
    assert df.iloc[1]["vis"] == pytest.approx(4500.0) and df.iloc[1]["precip"] == 1.5
    missing = df.iloc[2]
    assert missing[["t2m", "wind", "vis", "precip", "dew_point", "pressure_msl"]].isna().all()
    assert df.attrs["precip_hours"] == 6
    assert df.attrs["cityops_reader"] == "micaps1"
    assert df.attrs["time_utc"] == "2026-07-10T00:00:00Z"
    assert df.attrs["units"]["vis"] == "m"
    assert not warnings_of(cityops_log)


def test_station_count_mismatch_is_a_warning(tmp_path, cityops_log):
    df = read_micaps1(write_m1(tmp_path, count=5))
    assert len(df) == 3
    assert any("announces 5 stations" in m for m in warnings_of(cityops_log))


def test_truncated_station_record(tmp_path):
    records = [*M1_RECORDS[:2], M1_RECORDS[2][:40]]
    path = write_m1(tmp_path, records=records)
    with pytest.raises(InputError, match="line 5: truncated station record") as err:
        read_micaps1(path)
    assert str(path) in str(err.value)


def test_station_time_from_header_when_name_does_not_parse(tmp_path):
    df = read_micaps1(write_m1(tmp_path, name="obs.txt", header="2026 07 10 14"))
    assert (df["time_utc"] == pd.Timestamp("2026-07-10T06:00")).all()


# ------------------------------------------------------------------------------- real files


def real(name: str) -> Path:
    path = REALDATA / name
    if not path.exists():
        pytest.skip(f"real MICAPS file {name} not available (expected in {REALDATA})")
    return path


@pytest.mark.realdata
def test_real_diamond4(cityops_log):
    ds = read_micaps4(real("19051708.024"))
    t2m = ds["t2m"]
    assert t2m.shape == (1, 281, 361)
    assert t2m.attrs["units"] == "degC"
    assert float(ds["lat"][0]) == -10.0 and float(ds["lat"][-1]) == 60.0
    assert float(ds["lon"][0]) == 60.0 and float(ds["lon"][-1]) == 150.0
    assert -60 < float(t2m.min()) and float(t2m.max()) < 50
    ordos = t2m.sel(lon=109.7, lat=39.6, method="nearest").item()
    assert 5 < ordos < 30
    assert ds.attrs["issued"] == "2019-05-17T00:00:00Z"
    assert ds["time"].values[0] == np.datetime64("2019-05-18T00:00")
    messages = warnings_of(cityops_log)
    assert any("2019-05-17 00:00" in m and "19051708.024" in m for m in messages)


@pytest.mark.realdata
def test_real_diamond1():
    df = read_micaps1(real("19082208.000"))
    assert len(df) == 5147
    row = df[df["station_id"] == "53543"].iloc[0]
    assert row["lon"] == pytest.approx(110.01) and row["lat"] == pytest.approx(39.82)
    assert 10 < row["t2m"] < 30
    assert (df["time_utc"] == pd.Timestamp("2019-08-22T00:00")).all()
    assert df["vis"].max() <= 100_000
