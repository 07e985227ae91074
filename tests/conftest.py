"""Shared fixtures: factories that build small CF-complete canonical forecasts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from cityops.resources import canonical_variables

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SAMPLES = ROOT / "data" / "samples"

ISSUED = pd.Timestamp("2026-07-10T00:00")


def make_forecast(
    values: dict[str, np.ndarray | float],
    *,
    times: pd.DatetimeIndex | None = None,
    lat=(39.55, 39.58, 39.61),
    lon=(109.72, 109.75, 109.78),
    issued: pd.Timestamp = ISSUED,
    units: dict[str, str] | None = None,
) -> xr.Dataset:
    """A canonical forecast; each value is broadcast to (time, lat, lon).

    A 1-D array is a time series applied to every cell; a scalar is constant.
    """
    if times is None:
        n = max((np.size(v) for v in values.values() if np.ndim(v) == 1), default=24)
        times = pd.date_range(issued + pd.Timedelta("1h"), periods=n, freq="h")
    shape = (len(times), len(lat), len(lon))
    registry = canonical_variables()
    data_vars = {}
    for name, value in values.items():
        arr = np.asarray(value, dtype="float64")
        if arr.ndim == 1:
            arr = arr[:, None, None]
        arr = np.broadcast_to(arr, shape).copy()
        u = (units or {}).get(name, registry[name]["units"])
        data_vars[name] = (("time", "lat", "lon"), arr, {"units": u})
    return xr.Dataset(
        data_vars,
        coords={"time": times, "lat": list(lat), "lon": list(lon)},
        attrs={"issued": issued.strftime("%Y-%m-%dT%H:%M:%SZ")},
    )


@pytest.fixture
def forecast_factory():
    return make_forecast


@pytest.fixture(autouse=True, scope="session")
def _ledger_in_tmp(tmp_path_factory):
    """Briefing runs in tests record tasks in a throwaway ledger, not ./var."""
    import os

    os.environ["CITYOPS_LEDGER"] = str(tmp_path_factory.mktemp("ledger") / "ledger.sqlite")
    yield
