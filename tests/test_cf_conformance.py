"""Outputs that conform (issue 15): ``levels.nc`` and the scenario inputs pass the CF checker.

Issue 15, "Outputs that conform": "``levels.nc`` and the scenario inputs pass the CF checker
(``cfchecker`` is installable from PyPI; add it to the test extras and test it):
``flag_values`` of the same type as the variable, ``step_start`` declared as time bounds,
units on ``level``, no ``_FillValue`` on coordinates, ``lwe_thickness_of_precipitation_amount``
for precipitation in mm."

The files are written by the command line (``cityops scenario``, ``cityops assess``) in
subprocesses and checked with ``cfchecker`` against local copies of the CF tables
(tests/cf_tables/README.md: the checker would otherwise download them). Every file must give
no FATAL, ERROR or WARN message. INFO messages are not failures; those seen are listed in
:data:`KNOWN_INFO` with the reason they are kept.

The checker needs the UDUNITS-2 C library (Debian ``libudunits2-0``, installed by
``make cf-tools``); without it, or without ``cfchecker``, these tests skip with the reason.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from tests.conftest import make_forecast

ENV = {**os.environ, "MPLBACKEND": "agg"}
TABLES = Path(__file__).with_name("cf_tables")
LAT = np.round(np.arange(38.85, 39.90, 0.05), 3)
LON = np.round(np.arange(108.95, 110.50, 0.05), 3)
SEAT = "150627100"  # 阿勒腾席热镇

#: INFO messages the checker gives on levels.nc, accepted (INFO is not a failure; listed so
#: that a new kind shows up in review):
#: - "attribute calendar is being used in a non-standard way": on ``<hazard>_onset``, times
#:   that are data (the valid time each level is first reached), not the time coordinate;
#:   without ``calendar`` a reader could not decode them.
#: - "attribute flag_values / flag_meanings is being used in a non-standard way": on the
#:   ``level`` coordinate (1-4, blue to red) that ``<hazard>_onset`` and
#:   ``<hazard>_probability`` are laid out on; the flags say what each number means.
KNOWN_INFO = (
    "attribute calendar is being used in a non-standard way",
    "attribute flag_values is being used in a non-standard way",
    "attribute flag_meanings is being used in a non-standard way",
)


def cityops(*args):
    return subprocess.run(
        [sys.executable, "-m", "cityops.cli", "-q", *map(str, args)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=900,
    )


@pytest.fixture(scope="session")
def cf_check(tmp_path_factory):
    """``check(path) -> {category: [(variable, message), ...]}`` with cfchecker's Python API."""
    try:
        from cfchecker import cfchecks
    except ImportError:
        pytest.skip("cfchecker is not installed (pip install -e '.[test]')")
    except (OSError, FileNotFoundError) as e:  # cfunits without the UDUNITS-2 C library
        pytest.skip(f"cfchecker cannot run: {e} (Debian libudunits2-0: `make cf-tools`)")
    folder = tmp_path_factory.mktemp("cf_tables")
    names = folder / "cf-standard-name-table.xml"
    with gzip.open(TABLES / "cf-standard-name-table.xml.gz", "rb") as src, open(names, "wb") as dst:
        shutil.copyfileobj(src, dst)

    def check(path: Path) -> dict[str, list[tuple[str, str]]]:
        inst = cfchecks.CFChecker(
            cfStandardNamesXML=str(names),
            cfAreaTypesXML=str(TABLES / "area-type-table.xml"),
            cfRegionNamesXML=str(TABLES / "standardized-region-list.xml"),
            version=cfchecks.CFVersion((1, 8)),
            silent=True,
        )
        found: dict[str, list[tuple[str, str]]] = {}
        try:
            results = inst.checker(str(path))
        except cfchecks.FatalCheckerError:
            results = inst.results
        scopes = [("(global)", results["global"]), *results["variables"].items()]
        for var, by_category in scopes:
            for category, messages in by_category.items():
                found.setdefault(category, []).extend((var, m) for m in messages)
        return found

    return check


def assert_conforms(found: dict[str, list[tuple[str, str]]], path: Path) -> None:
    bad = {c: found.get(c, []) for c in ("FATAL", "ERROR", "WARN") if found.get(c)}
    assert not bad, f"{path.name}: {bad}"
    unknown = [(v, m) for v, m in found.get("INFO", []) if not m.startswith(KNOWN_INFO)]
    assert not unknown, f"{path.name}: INFO messages not in KNOWN_INFO: {unknown}"


@pytest.fixture(scope="module")
def scenario_files(tmp_path_factory):
    """``cityops scenario`` as ``make samples`` runs it: forecast, observed, history; and an
    ensemble forecast (``member`` coordinate)."""
    d = tmp_path_factory.mktemp("scenario")
    files = {
        "forecast": d / "july-rainstorm.nc",
        "observed": d / "july-rainstorm.observed.nc",
        "history": d / "july-rainstorm.history.nc",
        "ensemble": d / "january-blizzard.ens.nc",
    }
    res = cityops(
        "scenario", "july-rainstorm", "--out", files["forecast"],
        "--observed", files["observed"], "--history", files["history"],
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    res = cityops("scenario", "january-blizzard", "--members", 2, "--out", files["ensemble"])
    assert res.returncode == 0, res.stderr
    return files


@pytest.mark.parametrize(
    "kind",
    [
        "forecast",
        "observed",
        "ensemble",
        "history",
    ],
)
def test_scenario_inputs_pass_the_cf_checker(cf_check, scenario_files, kind):
    path = scenario_files[kind]
    assert_conforms(cf_check(path), path)


def test_scenario_inputs_declare_what_the_issue_asks(scenario_files):
    """The file itself, read with netCDF4 (not through xarray's decoding)."""
    with netCDF4.Dataset(scenario_files["forecast"]) as nc:
        precip = nc["precip"]
        assert precip.units == "mm"
        assert precip.standard_name == "lwe_thickness_of_precipitation_amount"
        assert precip.cell_methods == "time: sum"
        # Each value stands for the hour ending at `time`: CF bounds [time - 1 h, time].
        assert nc["time"].bounds == "time_bnds"
        t, b = nc["time"][:], nc["time_bnds"][:]
        assert b.shape == (len(t), 2)
        np.testing.assert_array_equal(b[:, 1], t)
        np.testing.assert_array_equal(b[:, 0], t - 1)  # hours since issued
        for coord in ("time", "lat", "lon", "time_bnds"):
            assert "_FillValue" not in nc[coord].ncattrs(), coord
    with netCDF4.Dataset(scenario_files["ensemble"]) as nc:
        assert nc["member"].units == "1" and "_FillValue" not in nc["member"].ncattrs()


@pytest.fixture(scope="module")
def assessed(scenario_files, tmp_path_factory):
    """``cityops assess`` on the scenario forecast, alone, with its observed companion
    joined, and on the ensemble."""
    d = tmp_path_factory.mktemp("assess")
    runs = {
        "forecast": ["assess", scenario_files["forecast"]],
        "observed": [
            "assess",
            scenario_files["forecast"],
            "--observed",
            scenario_files["observed"],
        ],
        "ensemble": ["assess", scenario_files["ensemble"]],
    }
    out = {}
    for name, args in runs.items():
        res = cityops(*args, "--out", d / name)
        assert res.returncode == 0, res.stderr
        out[name] = d / name / "levels.nc"
    return out


@pytest.mark.parametrize("run", ["forecast", "observed", "ensemble"])
def test_levels_nc_passes_the_cf_checker(cf_check, assessed, run):
    path = assessed[run]
    assert_conforms(cf_check(path), path)


def test_levels_nc_declares_what_the_issue_asks(assessed):
    path = assessed["forecast"]
    with netCDF4.Dataset(path) as nc:
        # flag_values of the same type as the variable
        flagged = [v for v in nc.variables.values() if "flag_values" in v.ncattrs()]
        assert {v.name for v in flagged} >= {"rainstorm_level", "rainstorm_extreme", "level"}
        for var in flagged:
            assert np.asarray(var.flag_values).dtype == var.dtype, var.name
        # units on level
        assert nc["level"].units == "1"
        # step_start declared as time bounds (time_bnds = [step_start, time]); step_start kept
        assert nc["time"].bounds == "time_bnds"
        assert nc["time_bnds"].dimensions == ("time", "nv")
        # no _FillValue on coordinates
        for coord in ("time", "lat", "lon", "level", "step_start", "time_bnds"):
            assert "_FillValue" not in nc[coord].ncattrs(), coord
        # onsets never reached are declared missing, not the most negative int64 as a date
        assert "_FillValue" in nc["rainstorm_onset"].ncattrs()
        # a fall of temperature is a difference: K (delta_degC is no UDUNITS unit)
        drops = [v for v in nc.variables if "daily_drop" in v]
        assert drops and all(nc[v].units == "K" for v in drops)
    with xr.open_dataset(path) as ds:
        bounds = ds["time_bnds"].values
        np.testing.assert_array_equal(bounds[:, 0], ds["step_start"].values)
        np.testing.assert_array_equal(bounds[:, 1], ds["time"].values)
        assert ds["rainstorm_onset"].isnull().any()  # decoded as NaT, not a date
        assert ds["rainstorm_level"].dtype == np.int8


@pytest.mark.parametrize(
    ("standard_name", "units", "amounts"),
    [
        # CF names as other producers write them: a mass per area, and a depth.
        ("precipitation_amount", "kg m-2", [20.0, 20.0, 20.0]),
        ("lwe_thickness_of_precipitation_amount", "mm", [20.0, 20.0, 20.0]),
    ],
)
def test_ingest_accepts_precipitation_amount_in_kg_m2(
    cf_check, tmp_path, standard_name, units, amounts
):
    """What cityops writes changed, not what it reads: ``precipitation_amount`` in kg m-2
    (1 kg m-2 of water is 1 mm) is still a precipitation input. 60 mm in 3 h: the national
    table's "3小时内降雨量将达50毫米以上" (orange)."""
    n = 12
    rain = np.zeros(n)
    rain[4:7] = amounts
    ds = make_forecast(
        {"precip": rain, "t2m": np.full(n, 20.0)},
        lat=LAT,
        lon=LON,
        issued=pd.Timestamp("2026-07-10T12:00"),
    )
    ds = ds.rename(precip="rain")
    ds["rain"].attrs = {"units": units, "standard_name": standard_name, "cell_methods": "time: sum"}
    path = tmp_path / "fc.nc"
    ds.to_netcdf(path)
    res = cityops("assess", path, "--out", tmp_path / "out")
    assert res.returncode == 0, res.stderr
    table = pd.read_csv(tmp_path / "out" / "town_hazards.csv", dtype={"town_code": str})
    row = table[(table.town_code == SEAT) & (table.hazard == "rainstorm")].iloc[0]
    assert row.level == 3
    assert_conforms(cf_check(tmp_path / "out" / "levels.nc"), tmp_path / "out" / "levels.nc")
