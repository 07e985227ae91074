"""Values as recorded: rule comparisons at the data's resolution.

Amounts and readings come to a fixed resolution (0.1 mm, 0.1 °C, 0.1 m/s: ``resolution`` in
``cityops/data/variables.yaml``), while binary floats hold most decimals only approximately:
15.3 + 15.4 + 19.3 mm summed in float32 is 49.99999905 mm, below a 50 mm bound that the
recorded amount, 50.0 mm, reaches; and the shortfall depends on the order of the sum.

The rule (one owner, used by the xarray path of :func:`cityops.rules.evaluate` and by the
fused kernel alike): a reduced value ``x`` (window sum or extreme, daily extreme, fall of the
daily minimum, value at a step) of a variable with resolution ``r`` is first recorded as an
observer would, rounded half away from zero (四舍五入) to a whole number of steps,
``k = sign(x) * floor(|x| / r + 1/2 + TOLERANCE)``, and the comparison is made in steps,
``k op t / r`` (``t / r`` taken as the whole number it is when the threshold lies on the
resolution grid, so both sides are exact). ``TOLERANCE`` (a thousandth of a step) only
absorbs the binary error of values that are exact halves in decimal (10.65 m/s is 10.6499996
in float32; it is recorded 10.7 m/s); it is far below the resolution, so 49.94 mm is still
49.9 mm. A comparison never accepts a value that, recorded, misses the bound (no
``threshold - r/2`` slack: 49.96 mm is recorded 50.0 mm because that is how it is recorded,
49.94 mm is not).

Variables without a resolution (probabilities, CAPE, derived indices) are compared as they
are, in float64.
"""

from __future__ import annotations

import numpy as np

from cityops.resources import canonical_variables

__all__ = ["TOLERANCE", "at_resolution", "compare", "resolution", "steps", "threshold_steps"]

#: Share of a resolution step by which an exact decimal half may fall short in binary and
#: still round up (10.65 recorded 10.7).
TOLERANCE = 1e-3

#: A threshold within this share of a step from a whole number of steps is on the grid.
_ON_GRID = 1e-6


def resolution(variable: str | None) -> float | None:
    """Recording resolution of a canonical variable (its units), or None."""
    if variable is None:
        return None
    value = canonical_variables().get(variable, {}).get("resolution")
    if value is None:
        # A derived amount (rain = precip - snowfall, ...) is recorded like the amount it
        # is built from.
        from cityops.rules.derived import derived_variables

        spec = derived_variables().get(variable)
        if spec is not None:
            return resolution(str(spec["derive"]["from"]))
    return None if value is None else float(value)


def steps(x, res: float):
    """``x`` as a whole number of resolution steps (float64), rounded half away from zero.
    NaN stays NaN. Works on numpy arrays and (lazily) on xarray/dask arrays."""
    x64 = x.astype(np.float64) if hasattr(x, "astype") else np.float64(x)
    return np.sign(x64) * np.floor(np.abs(x64) / res + 0.5 + TOLERANCE)


def threshold_steps(threshold: float, res: float) -> float:
    """The threshold in resolution steps: a whole number when it lies on the grid."""
    t = threshold / res
    whole = round(t)
    return float(whole) if abs(t - whole) < _ON_GRID else t


def at_resolution(x, res: float | None):
    """``x`` as recorded (rounded to the resolution), in ``x``'s dtype; ``x`` when no
    resolution."""
    if res is None:
        return x
    out = steps(x, res) * res
    return out.astype(x.dtype) if hasattr(x, "dtype") and hasattr(out, "astype") else out


_UFUNC = {">=": np.greater_equal, ">": np.greater, "<=": np.less_equal, "<": np.less}


def compare(x, op: str, threshold: float, res: float | None, out=None):
    """``x op threshold`` judged on the recorded value (see the module docstring).

    Parameters
    ----------
    x : array-like (numpy, xarray or dask)
        Reduced values in the variable's canonical units.
    op : {">=", ">", "<=", "<"}
    threshold : float
        In the same units.
    res : float or None
        Resolution of the variable; None compares ``x`` itself.
    out : numpy.ndarray of bool, optional
        Where to write (numpy input only).
    """
    f = _UFUNC[op]
    if res is None:
        return f(x, threshold) if out is None else f(x, threshold, out=out)
    k, t = steps(x, res), threshold_steps(threshold, res)
    return f(k, t) if out is None else f(k, t, out=out)
