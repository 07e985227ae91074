"""GRIB through the whole ingest path: buckets, running totals, one file per lead, ensembles,
the real GFS files, and the command line's exit status in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tests.conftest import SHARED
from tests.grib_fixtures import REFERENCE, write_gfs_like

BOUNDS = (109.004, 38.918, 110.424, 39.801)
# Step amounts in the fixture's rain box (lat >= 39.5, lon <= 109.5) and elsewhere, member 0.
RAIN_BOX = [0, 6, 6, 0, 3, 3, 0]  # steps ending 6, 9, ..., 24 h (step 3 also 0)
ELSEWHERE = [0, 0, 0, 0, 3, 3, 0]


def canonical(path, **kw):
    from cityops.ingest import open_forecast

    return open_forecast(path, bounds=BOUNDS, **kw)


def rain_at(ds, lat, lon, **sel):
    return ds["precip"].sel(lat=lat, lon=lon, **sel).sel(time=slice("2026-07-10T06", None)).values


@pytest.mark.parametrize("buckets", ["6h", "running", "3h"])
def test_same_weather_whatever_the_accumulation(tmp_path, buckets):
    ds = canonical(write_gfs_like(tmp_path / f"gfs_{buckets}.grib2", buckets=buckets))
    np.testing.assert_allclose(rain_at(ds, 39.5, 109.5), RAIN_BOX, atol=1e-3)
    np.testing.assert_allclose(rain_at(ds, 39.0, 110.0), ELSEWHERE, atol=1e-3)
    assert ds["precip"].attrs["units"] == "mm"
    # 2 m temperature: 293.15 + 0.25 h + (lat - 38.5) K -> degC
    t = float(ds["t2m"].sel(lat=39.5, lon=110.0, time="2026-07-10T12:00"))
    assert t == pytest.approx(20.0 + 3.0 + 1.0, abs=1e-3)
    assert ds["lat"].values[0] < ds["lat"].values[-1]  # stored north to south, now ascending
    assert ds.attrs["issued"] == "2026-07-10T00:00:00Z"
    assert "wind" in ds and "gust" in ds and "t2m_max" in ds


def test_one_grib_file_per_lead_time(tmp_path):
    for h in range(0, 25, 3):
        write_gfs_like(tmp_path / f"gfs.f{h:03d}.grib2", buckets="6h", steps=[h])
    ds = canonical(str(tmp_path / "gfs.f*.grib2"))
    assert ds.sizes["time"] == 9
    np.testing.assert_allclose(rain_at(ds, 39.5, 109.5), RAIN_BOX, atol=1e-3)


def test_grib_ensemble_has_members(tmp_path):
    ds = canonical(write_gfs_like(tmp_path / "ens.grib2", buckets="6h", members=3))
    assert ds.sizes["member"] == 3
    # Members multiply the rain by 1 + m/2.
    np.testing.assert_allclose(
        rain_at(ds, 39.5, 109.5, member=2), np.array(RAIN_BOX) * 2.0, atol=1e-3
    )


def test_cli_assess_on_grib_exits_cleanly(tmp_path):
    # ecCodes and pyproj in one process: the exit status must be 0 (no crash at exit).
    path = write_gfs_like(tmp_path / "gfs.grib2", buckets="6h")
    out = tmp_path / "run"
    res = subprocess.run(
        [sys.executable, "-m", "cityops.cli", "-q", "assess", str(path), "--out", str(out)],
        capture_output=True, text=True, env={**os.environ, "MPLBACKEND": "agg"}, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    table = pd.read_csv(out / "town_hazards.csv", dtype={"town_code": str})
    assert set(table["hazard"]) >= {"rainstorm", "gale", "heat"}


real = pytest.mark.skipif(not (SHARED / "realdata").exists(), reason="../shared/realdata absent")


@real
def test_real_gfs_2011_january_over_ordos():
    before = sorted(p.name for p in (SHARED / "realdata").iterdir())
    ds = canonical(SHARED / "realdata" / "gfs.t12z.pgrbf120.2p5deg.grib2")
    assert ds.attrs["issued"] == "2011-01-10T12:00:00Z"
    assert pd.Timestamp(ds["time"].values[0]) == REFERENCE.replace(
        year=2011, month=1, day=15, hour=12
    )
    # January at Ordos: 2 m temperature in degC, well below freezing (not ~250 K).
    assert -35 < float(ds["t2m"].min()) and float(ds["t2m"].max()) < 0
    # The 114-120 h bucket: the step starts 6 h before the valid time.
    assert pd.Timestamp(ds["step_start"].values[0]) == pd.Timestamp("2011-01-15T06:00")
    assert ds.sizes["lat"] <= 4 and ds.sizes["lon"] <= 4  # cropped before loading
    assert sorted(p.name for p in (SHARED / "realdata").iterdir()) == before  # no .idx files


@real
def test_real_gfs_2008_gapped_buckets_are_refused_clearly():
    from cityops.errors import InputError

    with pytest.raises(InputError, match="does not start at the previous step"):
        canonical(SHARED / "realdata" / "gfs_2p5_2008021312_f000-f072.grb2")
