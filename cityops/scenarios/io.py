"""Writing scenarios to NetCDF atomically."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from cityops.errors import InputError
from cityops.fsio import atomic_path
from cityops.scenarios.dataset import make_scenario
from cityops.scenarios.grid import Perturbation

__all__ = ["write_dataset", "write_scenario"]


def _with_time_bounds(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with CF time bounds: ``time_bnds`` (time, nv) = [time - 1 h, time].

    Every value stands for the hourly step ending at ``time`` (sums, maxima and minima over
    it, ``cell_methods``); CF 7.1 asks for the step as bounds of the time coordinate.
    """
    if "time" not in ds.dims or "time_bnds" in ds.variables:
        return ds
    time = ds["time"].values
    ds = ds.assign(time_bnds=(("time", "nv"), np.stack([time - np.timedelta64(1, "h"), time], 1)))
    ds["time"].attrs["bounds"] = "time_bnds"
    return ds


def _encoding(ds: xr.Dataset) -> dict:
    enc = {
        name: {
            "zlib": True,
            "complevel": 4,
            "shuffle": True,
            "dtype": "float32",
            "_FillValue": None,
        }
        for name in ds.data_vars
        if name != "time_bnds"
    }
    # CF: no _FillValue on coordinates (the time axis keeps make_scenario's encoding).
    keep = ("units", "calendar", "dtype")
    for name in ds.coords:
        own = {k: v for k, v in ds[name].encoding.items() if k in keep}
        enc[name] = {**own, "_FillValue": None}
    if "time_bnds" in ds.variables:
        # The bounds in the time axis's own units; int32 (cfchecker 4.1 counts only int32
        # and floating-point bounds as numeric).
        axis = {k: v for k, v in ds["time"].encoding.items() if k in ("units", "calendar")}
        enc["time_bnds"] = {**axis, "dtype": "int32", "_FillValue": None}
    return enc


def write_dataset(ds: xr.Dataset, out: str | os.PathLike) -> Path:
    """Write ``ds`` to NetCDF4 (zlib) through a temporary file in the same folder.

    Nothing is left behind on failure: either ``out`` is complete (replaced atomically,
    :func:`cityops.fsio.atomic_path`) or it is untouched.
    """
    out = Path(out)
    _write_all([(ds, out)])
    return out


def _write_all(items: list[tuple[xr.Dataset, Path]]) -> None:
    """Stage every file beside its target, then move them all into place.

    The files are renamed into place only once all are written; a failure removes every
    temporary file and leaves every target untouched.
    """
    with contextlib.ExitStack() as stack:
        for ds, target in items:
            tmp = stack.enter_context(atomic_path(target))
            ds = _with_time_bounds(ds)
            ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=_encoding(ds))


def write_scenario(
    name: str,
    out: str | os.PathLike,
    *,
    seed: int = 0,
    members: int | None = None,
    issued: str | pd.Timestamp | None = None,
    observed_out: str | os.PathLike | None = None,
    observed_shift: Perturbation | None = None,
) -> Path:
    """Write a scenario forecast (and optionally its observed companion) to NetCDF4.

    Parameters
    ----------
    name : str
        Scenario name (see :data:`cityops.scenarios.SCENARIOS`).
    out : path
        Forecast file to write (parent folders are created).
    seed, members, issued
        As in :func:`cityops.scenarios.make_scenario`.
    observed_out : path, optional
        Also write "what really happened" (``observed=True``, same seed and issued time).
    observed_shift : Perturbation, optional
        The observed companion's departure from the forecast (see
        :func:`cityops.scenarios.make_scenario`); needs ``observed_out``.

    Returns
    -------
    pathlib.Path
        ``out``.

    Notes
    -----
    Both datasets are built first, then written to temporary files beside their targets
    and moved into place (:func:`cityops.fsio.atomic_path`): a failure leaves no partial file.
    """
    out = Path(out)
    if observed_shift is not None and observed_out is None:
        raise InputError("observed_shift: needs observed_out (the observed file to write)")
    datasets = [(make_scenario(name, seed=seed, members=members, issued=issued), out)]
    if observed_out is not None:
        observed_out = Path(observed_out)
        if observed_out.resolve() == out.resolve():
            raise InputError(f"{observed_out}: the observed file must differ from the forecast")
        datasets.append(
            (
                make_scenario(
                    name, seed=seed, issued=issued, observed=True, observed_shift=observed_shift
                ),
                observed_out,
            )
        )
    _write_all(datasets)
    return out
