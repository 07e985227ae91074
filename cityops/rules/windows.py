"""Time windows on irregular steps: sums and extremes over (t - window, t].

The value at valid time ``t`` stands for the step ending at ``t`` (interfaces.md §1). A window
of length N at ``t`` covers (t - N, t]. It is

- ``full`` when t - N is a step boundary at or after the start of the first step;
- ``partial`` when t - N lies before the first step's start (the forecast starts mid-window:
  the partial amount counts only if it already meets the threshold);
- ``unaligned`` when t - N falls inside a step (the data are too coarse for this window).

Windows are evaluated on time, not on counts of steps, so hourly-then-3-hourly runs work.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["FULL", "PARTIAL", "UNALIGNED", "step_starts", "window_reduce", "window_status"]

FULL, PARTIAL, UNALIGNED = "full", "partial", "unaligned"


def step_starts(time: xr.DataArray | pd.DatetimeIndex, first_step: pd.Timedelta | None = None):
    """Start of each step, given the valid (end) times.

    Parameters
    ----------
    time : DatetimeIndex or DataArray
        Valid times, strictly increasing.
    first_step : Timedelta, optional
        Length of the first step. Default: the length of the second step, or 1 h for a
        single-time file (documented assumption, logged by ingest).

    Returns
    -------
    pandas.DatetimeIndex
    """
    times = pd.DatetimeIndex(np.asarray(time))
    if first_step is None:
        first_step = times[1] - times[0] if len(times) > 1 else pd.Timedelta("1h")
    starts = times[:-1].insert(0, times[0] - first_step)
    return pd.DatetimeIndex(starts)


def window_status(
    time: xr.DataArray | pd.DatetimeIndex,
    window: pd.Timedelta,
    *,
    first_step: pd.Timedelta | None = None,
) -> np.ndarray:
    """Status (``full``, ``partial``, ``unaligned``) of the window ending at each time."""
    times = pd.DatetimeIndex(np.asarray(time))
    starts = step_starts(times, first_step)
    boundaries = set(starts[:1]) | set(times)
    begin = times - window
    status = np.empty(len(times), dtype=object)
    for i, b in enumerate(begin):
        if b < starts[0]:
            status[i] = PARTIAL
        elif b in boundaries:
            status[i] = FULL
        else:
            status[i] = UNALIGNED
    return status


def window_reduce(
    da: xr.DataArray,
    window: pd.Timedelta,
    how: str = "sum",
    *,
    first_step: pd.Timedelta | None = None,
) -> xr.DataArray:
    """Sum, maximum or minimum of ``da`` over the window (t - window, t] at each valid time.

    Lazy with dask: the result is built from shifted copies, one per step the window can hold.
    Steps falling outside the window contribute nothing; windows reaching before the first
    step hold only what exists (``partial``), see :func:`window_status`.

    Parameters
    ----------
    da : xarray.DataArray
        Data with a ``time`` dimension (per-step amounts for ``sum``).
    window : pandas.Timedelta
        Window length.
    how : {"sum", "max", "min"}
    first_step : pandas.Timedelta, optional
        Length of the first step (see :func:`step_starts`).

    Returns
    -------
    xarray.DataArray
        Same shape as ``da``; attrs kept, with ``cell_methods`` describing the window.
    """
    if how not in ("sum", "max", "min"):
        raise ValueError(f"how must be sum, max or min, not {how!r}")
    times = pd.DatetimeIndex(da["time"].values)
    starts = step_starts(times, first_step)
    # Number of previous steps a window can reach: steps whose start is >= t - window.
    n = len(times)
    max_back = 0
    for i in range(n):
        j = i
        while j - 1 >= 0 and starts[j - 1] >= times[i] - window:
            j -= 1
        max_back = max(max_back, i - j)
    out = da
    for k in range(1, max_back + 1):
        shifted = da.shift(time=k)
        # A step k positions back is inside the window when its start is >= t - window.
        back_start = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
        back_start[k:] = starts.values[:-k]
        inside = xr.DataArray(
            back_start >= (times - window).values, dims="time", coords={"time": da["time"]}
        )
        shifted = shifted.where(inside)
        if how == "sum":
            out = out + shifted.fillna(0)
        elif how == "max":
            out = np.fmax(out, shifted)
        else:
            out = np.fmin(out, shifted)
    out = out.astype(da.dtype, copy=False)
    attrs = dict(da.attrs)
    hours = window / pd.Timedelta("1h")
    attrs["cell_methods"] = f"time: {'sum' if how == 'sum' else how} (interval: {hours:g} hours)"
    out.attrs = attrs
    out.name = da.name
    return out
