"""Shared physics of the synthetic scenarios: temperature cycles, humidity, visibility, phase.

Simple, documented relations that keep the variables of one scenario consistent with each
other (visibility falls where it rains, snows, is dusty or foggy; humidity follows temperature
and dew point); they are not a model of the atmosphere.
"""

from __future__ import annotations

import numpy as np

from cityops.scenarios.grid import Frame, diurnal

__all__ = [
    "LAPSE_RATE",
    "daily_cycle",
    "gust_from_wind",
    "relative_humidity",
    "snow_fraction",
    "visibility",
    "wet_up",
]

LAPSE_RATE = 0.0065  # K per m, applied to the terrain's departure from 1,350 m


def daily_cycle(
    f: Frame,
    highs: list[tuple[float, float]],
    lows: list[tuple[float, float]],
    *,
    hour_min: float = 22.0,
    hour_max: float = 7.5,
    shift: bool = True,
):
    """Temperature with a diurnal cycle between interpolated daily lows and highs.

    Parameters
    ----------
    f : Frame
    highs, lows : list of (lead hours, degC)
        Afternoon maxima and dawn minima of the air mass, at the leads (hours since issued)
        where they occur; interpolated linearly in between.
    hour_min, hour_max : float
        UTC hours of the daily minimum and maximum (defaults 06:00 and 15:30 BJT).
    shift : bool
        Follow the realisation's timing shift (the air mass arrives late or early).

    Returns
    -------
    numpy.ndarray
        Shape (samples, 1, 1).
    """
    t = (f.t if shift else f.lead)[:, 0, 0]
    hi = np.interp(t, [h[0] for h in highs], [h[1] for h in highs])
    lo = np.interp(t, [h[0] for h in lows], [h[1] for h in lows])
    shape = diurnal(f.clock[:, 0, 0], hour_min, hour_max)
    return (lo + (hi - lo) * shape)[:, None, None]


def relative_humidity(t2m, dewpoint):
    """Relative humidity (%) from temperature and dew point (Magnus, over water), 1-100."""
    a, b = 17.625, 243.04
    td = np.minimum(dewpoint, t2m)
    return np.clip(100.0 * np.exp(a * td / (b + td) - a * t2m / (b + t2m)), 1.0, 100.0)


def wet_up(rh, rate, scale: float):
    """Humidity rising towards saturation under precipitation ``rate`` (mm/h)."""
    return rh + (100.0 - rh) * (1.0 - np.exp(-np.maximum(rate, 0.0) / scale))


def snow_fraction(t2m):
    """Share of precipitation falling as snow: all below -1 degC, none above +1 degC."""
    return np.clip((1.0 - t2m) / 2.0, 0.0, 1.0)


def visibility(clear, *, rain=0.0, snow=0.0, dust=0.0, floor: float = 20.0):
    """Visibility (m) from additive extinction.

    ``clear`` is the clear-air visibility (m); rain and snow are rates (mm/h liquid
    equivalent), dust a concentration (ug m-3). Heavy rain (100 mm/h) gives about 950 m,
    heavy snow (4 mm/h) about 700 m, a dust load of 3,000 ug m-3 about 1,000 m and
    10,000 ug m-3 about 300 m.
    """
    ext = 1.0 / clear
    ext = ext + np.maximum(rain, 0.0) ** 0.55 / 12000.0
    ext = ext + np.maximum(snow, 0.0) / 3000.0
    ext = ext + np.maximum(dust, 0.0) / 3.0e6
    return np.maximum(1.0 / ext, floor)


def gust_from_wind(wind, factor: float = 1.5, extra: float = 0.0):
    """Gust (m/s) from the mean wind by a gust factor, plus convective outflow ``extra``."""
    return np.hypot(factor * wind, extra)
