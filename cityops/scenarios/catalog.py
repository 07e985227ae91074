"""The scenario catalogue: one builder per situation and the registry of what each is for.

A builder takes a :class:`~cityops.scenarios.grid.Frame` and returns instantaneous fields on
the 15-minute samples (``precip_rate`` in mm/h, temperatures in degC, wind in m/s, ...);
:mod:`cityops.scenarios.dataset` turns them into hourly canonical variables. Hazard features
(storm cells, fronts, fog, heat core) follow the frame's perturbation (timing ``f.t``,
position ``f.xs``/``f.ys``, intensity ``f.amp``); geography (terrain, valleys) and the
clock (diurnal cycle) do not.

``ScenarioInfo.expected`` states what the national signal table gives at the seat's nearest
grid cell of the towns a situation is built to hit, for the control run (any seed) at the
default ``issued``: the tests recompute each entry from the data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cityops.scenarios.grid import (
    Frame,
    Grid,
    cell,
    daylight,
    diurnal,
    envelope,
    sigmoid,
    terrain,
    valley_index,
)
from cityops.scenarios.places import PLACES
from cityops.scenarios.weather import (
    LAPSE_RATE,
    daily_cycle,
    gust_from_wind,
    relative_humidity,
    visibility,
    wet_up,
)

__all__ = ["BUILDERS", "SCENARIOS", "ScenarioInfo", "list_scenarios"]

Fields = dict[str, np.ndarray]


@dataclass(frozen=True)
class ScenarioInfo:
    """What a scenario is, when it is issued by default and what it is built to produce.

    Attributes
    ----------
    name : str
        Identifier used by ``cityops scenario NAME``.
    title_zh, title_en, description_zh, description_en : str
    default_issued : pandas.Timestamp
        Forecast reference time (UTC) used when none is given.
    hours : int
        Forecast length; valid times run hourly from ``issued + 1 h`` to ``issued + hours``.
    expected : tuple of dict
        ``{"town_code", "hazard", "level", "onset_utc"}`` (``onset_utc`` ISO 8601 UTC with
        ``Z``, None for level 0): the national signal level at the seat's nearest grid cell
        of each town the situation is built to hit, for the control run at
        ``default_issued``. Onset is the first valid time whose window meets the level
        (interfaces.md §2). See :meth:`expected_at` for another ``issued``.
    anchored : bool
        A reconstruction of a past event whose published station totals pin where the rain
        fell: the observed companion keeps the forecast's positions (no displacement) and
        departs from it in timing, intensity and small-scale detail only, and its builder
        calibrates it to the published totals at the stations' nearest cells.

    Notes
    -----
    How ``expected`` is read from the national table (spec/warning-signals.md), at the nearest
    grid cell of the town's point, for every seed of the control run:

    - rainstorm / blizzard: sums of ``precip`` / ``snowfall`` over (t - N h, t];
    - gale: ``wind`` or ``gust`` against the Beaufort lower bounds; heat (orange, red):
      ``t2m_max``; fog: ``vis`` (strictly below); frost: ``tsurf`` (at or below);
    - sandstorm: ``vis`` below the level's bound where ``dust`` is 1,000 ug m-3 or more
      (visibility alone never makes a sandstorm; in these scenarios visibility is below
      1,000 m only where dust exceeds about 2,900 ug m-3);
    - cold wave: Beijing calendar day D against D - 1 (both complete days); the level holds
      from the first step of D at which the running minimum of ``t2m_min`` in D is at or
      below both (Tmin(D-1) - drop) and the level's cap, and the mean wind in D has reached
      the force. An engine that uses another reading (sliding 24 h windows, onset at the
      start or end of the day) gets the same level (the drop is 14 degC, the day-2 wind
      12 m/s) but possibly another onset.

    Level 0 entries state that the town is meant to stay below every level of that hazard.
    """

    name: str
    title_zh: str
    title_en: str
    description_zh: str
    description_en: str
    default_issued: pd.Timestamp
    hours: int
    expected: tuple[dict, ...]
    anchored: bool = False

    def expected_at(self, issued: str | pd.Timestamp | None = None) -> tuple[dict, ...]:
        """``expected`` with onsets moved along when the scenario is issued at another time."""
        if issued is None:
            return tuple(dict(e) for e in self.expected)
        ts = pd.Timestamp(issued)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        offset = ts - self.default_issued
        out = []
        for e in self.expected:
            e = dict(e)
            if e.get("onset_utc"):
                onset = pd.Timestamp(e["onset_utc"]) + offset
                e["onset_utc"] = onset.strftime("%Y-%m-%dT%H:%M:%SZ")
            out.append(e)
        return tuple(out)


def _at(code: str) -> tuple[float, float]:
    p = PLACES[code]
    return Grid.km(p.lon, p.lat)


def _along(bearing: float) -> tuple[float, float]:
    b = np.deg2rad(bearing)
    return float(np.sin(b)), float(np.cos(b))


def _elev_correction() -> np.ndarray:
    """Temperature correction (K) for the terrain's departure from 1,350 m."""
    return -LAPSE_RATE * (terrain() - 1350.0)


def _lightning(anvils: list[np.ndarray], cape):
    """Lightning probability from convective anvils (rain-rate-like load) and, weakly, CAPE."""
    load = sum(anvils)
    p_lightning = 0.97 * (1.0 - np.exp(-load / 6.0)) + 0.03 * np.clip(cape / 2500.0, 0.0, 1.0)
    return np.clip(p_lightning, 0.0, 1.0)


# --- quiet day ---------------------------------------------------------------------------------


def _quiet_day(f: Frame) -> Fields:
    x, y = f.x, f.y
    t2m = daily_cycle(
        f,
        [(7.5, 22.0), (31.5, 23.5), (55.5, 24.0), (79.5, 24.0)],
        [(-2.0, 9.0), (22.0, 10.0), (46.0, 11.0), (70.0, 11.5)],
    )
    t2m = t2m + _elev_correction() + f.noise(25.0, 0.4)
    d = diurnal(f.clock)
    sun = daylight(f.clock, 21.3, 11.3)
    tsurf = t2m + 9.0 * sun - 2.0 * (1.0 - sun)
    # Weak afternoon showers on day 2 only, drifting east, far from any threshold.
    rate = np.zeros((f.n, *f.grid.shape))
    for lead, (xc, yc) in ((31.0, (-30.0, 35.0)), (32.5, (25.0, -35.0)), (33.0, (60.0, 40.0))):
        xc = xc + 15.0 * (f.t - lead)
        rate = rate + 0.7 * envelope(f.t, lead, 1.0) * cell(x, y, xc, yc, 7.0, 5.0, 90.0)
    rate = rate * (1.0 + 0.1 * f.noise(10.0)).clip(0.5)
    dew = 3.0 + 1.0 * f.noise(30.0)
    rh = wet_up(relative_humidity(t2m, dew), rate, 3.0)
    wind = np.clip(2.0 + 2.5 * d + f.noise(20.0, 0.4), 0.5, None)
    gust = gust_from_wind(wind, 1.6)
    dust = 70.0 + 20.0 * d + f.noise(20.0, 8.0)
    pm25 = 18.0 + 8.0 * (1.0 - d) + f.noise(20.0, 3.0)
    cape = np.clip(80.0 + 220.0 * d * (f.lead[:, :1] > 24.0) + f.noise(30.0, 20.0), 0.0, None)
    return {
        "precip_rate": rate,
        "t2m": t2m,
        "tsurf": tsurf,
        "wind": wind,
        "gust": gust,
        "vis": visibility(26000.0 + f.noise(30.0, 2000.0), rain=rate, dust=dust),
        "rh": rh,
        "pm25": pm25,
        "dust": dust,
        "cape": cape,
        "p_lightning": np.clip(0.03 * rate + 0.01 * cape / 300.0, 0.0, 0.05),
        "p_hail": np.zeros(1),
    }


# --- July rainstorm ----------------------------------------------------------------------------


def _july_rainstorm(f: Frame) -> Fields:
    x, y, t, amp = f.xs, f.ys, f.t, f.amp
    sx, sy = _at("150627100")
    bearing, speed, t_core = 30.0, 22.0, 12.0  # moving NNE, over the seat 20:00 BJT
    ux, uy = _along(bearing)
    dt = t - t_core
    # Leading cell, trailing cell (multicell) and stratiform region behind.
    lx, ly = sx + speed * dt * ux, sy + speed * dt * uy
    e1 = envelope(t, t_core, 1.0, 0.9)
    r1 = 80.0 * amp * e1
    tx, ty = sx + speed * (dt - 1.2) * ux, sy + speed * (dt - 1.2) * uy
    r2 = 40.0 * amp * envelope(t, t_core + 1.0, 1.0, 1.0)
    r3 = 6.0 * amp * envelope(t, t_core + 0.8, 1.5, 2.0)
    rate = (
        cell(x, y, lx, ly, 12.0, 8.0, bearing, r1)
        + cell(x, y, tx, ty, 9.0, 7.0, bearing, r2)
        + cell(x, y, lx - 20.0 * ux, ly - 20.0 * uy, 25.0, 15.0, bearing, r3)
    )
    # Lightning extends to the anvils: the cells widened.
    anvils = [
        cell(x, y, lx, ly, 20.0, 14.0, bearing, r1),
        cell(x, y, tx, ty, 15.0, 12.0, bearing, r2),
    ]
    hail = 0.75 * amp * e1**2
    hail = cell(x, y, lx, ly, 9.0, 6.0, bearing, hail)
    # Afternoon pop-up showers, far (> 30 km) from the eastern and western towns.
    popups = (
        (8.0, -60.0, 40.0, 14.0),
        (9.0, -15.0, -60.0, 12.0),
        (31.0, 30.0, 42.0, 16.0),
        (32.0, -50.0, -32.0, 12.0),
        (33.0, 12.0, -45.0, 18.0),
        (30.5, -70.0, 20.0, 10.0),
    )
    for lead, px, py, peak in popups:
        jx, jy = f.rng.uniform(-5.0, 5.0, 2)
        cx, cy = px + jx + 10.0 * (t - lead), py + jy + 10.0 * (t - lead)
        rp = peak * amp * envelope(t, lead, 0.6, 0.8)
        rate = rate + cell(x, y, cx, cy, 5.0, 5.0, 45.0, rp)
        anvil = cell(x, y, cx, cy, 9.0, 9.0, 45.0, rp)
        anvils.append(anvil)
        hail = hail + 0.1 / 18.0 * anvil
    rate = np.clip(rate * (1.0 + 0.04 * f.noise(12.0)), 0.0, None)

    cool = 1.0 - np.exp(-f.accumulate(rate, 4.0) / 12.0)  # rain-cooled pool
    wake = 1.0 - np.exp(-f.accumulate(rate, 10.0) / 15.0)  # convection spent
    t2m = daily_cycle(
        f,
        [(7.5, 31.0), (31.5, 27.5), (55.5, 29.0), (79.5, 29.0)],
        [(-2.0, 19.5), (22.0, 18.0), (46.0, 17.0), (70.0, 18.0)],
        shift=False,
    )
    t2m = t2m + _elev_correction() + f.noise(25.0, 0.4) - 8.0 * cool
    dew = np.interp(f.t[:, 0, 0], [0.0, 14.0, 30.0, 54.0], [16.0, 17.0, 13.0, 11.0])
    dew = dew[:, None, None] + f.noise(30.0, 0.8) + 2.0 * cool
    rh = wet_up(relative_humidity(t2m, dew), rate, 2.0)
    sun = daylight(f.clock, 21.7, 12.0)
    tsurf = t2m + 9.0 * sun * (1.0 - cool) - 1.0
    d = diurnal(f.clock)
    bg = np.clip(2.5 + 2.5 * d + f.noise(20.0, 0.5), 0.5, None)
    outflow = cell(x, y, lx + 6.0 * ux, ly + 6.0 * uy, 14.0, 12.0, bearing, 18.5 * amp * e1)
    wind = bg + 0.5 * outflow
    gust = gust_from_wind(bg, 1.6, outflow)
    day_peak = np.interp(f.t[:, 0, 0], [8.0, 32.0, 56.0], [2400.0, 1300.0, 600.0])[:, None, None]
    cape = day_peak * (0.15 + 0.85 * diurnal(f.clock, 22.0, 8.5))
    cape = np.clip(cape * (1.0 - y / 300.0) * (1.0 + f.noise(25.0, 0.1)), 0.0, None)
    cape = cape * (1.0 - 0.85 * wake)
    dust = np.clip((45.0 + f.noise(20.0, 8.0)) * (1.0 - 0.7 * cool), 5.0, None)
    pm25 = np.clip((18.0 + 8.0 * (1.0 - d) + f.noise(20.0, 3.0)) * (1.0 - 0.5 * cool), 3.0, None)
    return {
        "precip_rate": rate,
        "t2m": t2m,
        "tsurf": tsurf,
        "wind": wind,
        "gust": gust,
        "vis": visibility(22000.0 + f.noise(30.0, 2500.0), rain=rate, dust=dust),
        "rh": rh,
        "pm25": pm25,
        "dust": dust,
        "cape": cape,
        "p_lightning": _lightning(anvils, cape),
        "p_hail": np.clip(hail, 0.0, 1.0),
    }


# --- January blizzard and cold wave ------------------------------------------------------------


def _january_blizzard(f: Frame) -> Fields:
    x, y, t, amp = f.xs, f.ys, f.t, f.amp
    sx, sy = _at("150627100")
    # Snow band (WSW-ENE) drifting slowly south-east, heaviest 14:00 BJT on the 21st.
    band_bearing, drift = 70.0, 3.0
    nx_, ny_ = _along(band_bearing + 90.0)
    ax_, ay_ = _along(band_bearing)
    t_peak = 30.0
    across = (x - sx) * nx_ + (y - sy) * ny_ - drift * (t - t_peak)
    along = (x - sx) * ax_ + (y - sy) * ay_
    band = np.exp(-0.5 * (across / 14.0) ** 2) * (0.25 + 0.75 * np.exp(-0.5 * (along / 24.0) ** 2))
    snow = 4.25 * amp * envelope(t, t_peak, 3.5, 3.0) * band
    # Cold front, moving towards 150 deg at 40 km/h, over the seat at 17:00 UTC on the 21st.
    t_front, speed = 41.0, 40.0
    fx, fy = _along(150.0)
    normal = (x - sx) * fx + (y - sy) * fy
    since = t - t_front - normal / speed  # hours since the front passed
    behind = sigmoid(since / 0.8)
    squall = 0.8 * amp * np.exp(-0.5 * (since / 0.35) ** 2)
    rate = np.clip((snow + squall) * (1.0 + 0.03 * f.noise(15.0)), 0.0, None)

    pre = daily_cycle(
        f,
        [(7.5, -1.0), (31.5, -3.5), (55.5, -3.0)],
        [(-2.0, -9.0), (22.0, -8.5), (46.0, -8.0), (70.0, -8.0)],
        shift=False,
    )
    post = daily_cycle(
        f,
        [(7.5, -11.0), (31.5, -11.0), (55.5, -12.5)],
        [(-2.0, -20.0), (22.0, -20.0), (46.0, -22.5), (70.0, -25.0)],
        shift=False,
    )
    t2m = pre + behind * f.damped(0.5) * (post - pre) + _elev_correction() + f.noise(25.0, 0.3)
    dew = np.where(behind > 0.5, -30.0, t2m - 2.0 - 2.0 * (f.lead < 20.0))
    rh = wet_up(relative_humidity(t2m, dew), rate, 0.5)
    cloud = np.clip(rate / 0.5, 0.0, 1.0)
    sun = daylight(f.clock, 0.1, 9.75)
    tsurf = t2m - 1.5 + 4.0 * sun * (1.0 - cloud)
    pre_wind = 3.5 + 1.5 * diurnal(f.clock) + 1.5 * band
    post_wind = 13.5 * f.damped(0.5) * (0.55 + 0.45 * np.exp(-np.maximum(since, 0.0) / 8.0))
    wind = np.clip(pre_wind + behind * (post_wind - pre_wind), 0.5, None)
    wind = wind * (1.0 + 0.02 * f.noise(20.0))
    gust = gust_from_wind(wind, 1.4)
    blowing = behind * np.clip(wind - 10.0, 0.0, None) / 60000.0
    clear = 1.0 / (1.0 / (15000.0 + 10000.0 * behind) + blowing)
    pm25 = np.clip(55.0 - 40.0 * behind + f.noise(20.0, 5.0), 5.0, None)
    dust = np.clip(40.0 + f.noise(20.0, 6.0), 5.0, None)
    return {
        "precip_rate": rate,
        "t2m": t2m,
        "tsurf": tsurf,
        "wind": wind,
        "gust": gust,
        "vis": visibility(clear, snow=rate, dust=dust),
        "rh": rh,
        "pm25": pm25,
        "dust": dust,
        "cape": np.zeros(1),
        "p_lightning": np.zeros(1),
        "p_hail": np.zeros(1),
    }


# --- spring gale and sandstorm -----------------------------------------------------------------


def _spring_gale(f: Frame) -> Fields:
    x, y, t = f.xs, f.ys, f.t
    sx, sy = _at("150627100")
    t_front, speed = 5.5, 45.0  # over the seat 13:30 BJT
    fx, fy = _along(150.0)
    normal = (x - sx) * fx + (y - sy) * fy
    since = t - t_front - normal / speed
    behind = sigmoid(since / 0.3)
    # Gale behind the front: 3.5 h plateau then easing; strongest with afternoon mixing.
    decay = 0.3 + 0.7 * np.exp(-np.maximum(since - 3.5, 0.0) / 3.0)
    mixing = 0.7 + 0.3 * diurnal(f.clock)
    core = cell(x, y, sx, sy, 16.0, 10.0, 150.0)  # channelled core over the banner seat
    gale = 19.0 * (1.0 + 0.03 * f.noise(25.0)) * (1.0 + 0.42 * core)
    pre_wind = 6.0 + 2.0 * diurnal(f.clock) + f.noise(25.0, 0.4)
    later = 6.0 + 2.0 * diurnal(f.clock) - 2.0 * sigmoid((f.lead - 40.0) / 4.0)
    excess = np.clip(f.damped(0.4) * gale * decay * mixing - later, 0.0, None)
    wind = pre_wind + behind * (later - pre_wind + excess)
    gust = gust_from_wind(wind, 1.32)
    source = 1.0 + 0.05 * f.noise(30.0)
    dust = 150.0 + behind * 36.0 * np.clip(wind - 9.0, 0.0, None) ** 2 * source
    dust = dust + (1.0 - behind) * 150.0 * diurnal(f.clock)
    pre = daily_cycle(f, [(7.5, 21.0), (31.5, 21.0)], [(-2.0, 6.0), (22.0, 7.0)])
    post = daily_cycle(
        f,
        [(7.5, 11.0), (31.5, 12.0), (55.5, 15.0), (79.5, 16.0)],
        [(-2.0, 6.0), (22.0, 5.5), (46.0, 6.0), (70.0, 7.0)],
        shift=False,
    )
    t2m = pre + behind * (post - pre) + _elev_correction() + f.noise(25.0, 0.3)
    dew = -2.0 + behind * (-12.0 + 2.0) + f.noise(30.0, 0.8)
    rh = relative_humidity(t2m, dew)
    sun = daylight(f.clock, 22.0, 11.0)
    tsurf = t2m + 8.0 * sun - 2.5 * (1.0 - sun)
    rate = 0.3 * np.exp(-0.5 * (since / 0.3) ** 2) * (0.5 + 0.5 * f.noise(30.0)).clip(0.0)
    pm25 = np.clip(25.0 + 0.009 * (dust - 150.0), 10.0, None)
    cape = np.clip(100.0 * (1.0 - behind) * diurnal(f.clock) + f.noise(30.0, 10.0), 0.0, None)
    return {
        "precip_rate": rate,
        "t2m": t2m,
        "tsurf": tsurf,
        "wind": wind,
        "gust": gust,
        "vis": visibility(25000.0, rain=rate, dust=dust),
        "rh": rh,
        "pm25": pm25,
        "dust": dust,
        "cape": cape,
        "p_lightning": np.clip(0.02 * np.exp(-0.5 * (since / 0.5) ** 2), 0.0, 1.0),
        "p_hail": np.zeros(1),
    }


# --- summer heatwave ---------------------------------------------------------------------------


def _summer_heatwave(f: Frame) -> Fields:
    x, y, amp = f.xs, f.ys, f.damped(0.4)
    sx, sy = _at("150627100")
    clim = 33.0  # the anomaly above this scales with the intensity perturbation
    highs = [(7.5, 33.0), (31.5, 36.2), (55.5, 38.8), (79.5, 36.8), (103.5, 33.0)]
    lows = [(-2.0, 20.0), (22.0, 22.0), (46.0, 23.5), (70.0, 24.0), (94.0, 22.0)]
    cycle = daily_cycle(f, highs, lows)
    cycle = clim + amp * (cycle - clim)
    d = diurnal(f.clock)
    core_amp = np.interp(f.t[:, 0, 0], [7.5, 31.5, 55.5, 79.5, 103.5], [1.5, 2.6, 4.9, 2.6, 1.0])
    core = cell(x, y, sx - 4.0, sy + 4.0, 9.0, 9.0, 0.0)
    heat_core = amp * core_amp[:, None, None] * core * (0.3 + 0.7 * d)
    t2m = cycle + heat_core + 0.4 * _elev_correction() + f.noise(25.0, 0.25)
    dew = 9.0 + 1.5 * f.noise(30.0)
    rh = relative_humidity(t2m, dew)
    sun = daylight(f.clock, 21.8, 11.9)
    tsurf = t2m + 13.0 * sun - 1.5 * (1.0 - sun)
    wind = np.clip(2.0 + 2.0 * d + f.noise(20.0, 0.4), 0.5, None)
    dust = 90.0 + 60.0 * d + f.noise(20.0, 10.0)
    cape = np.clip(150.0 + 600.0 * d + f.noise(30.0, 60.0), 0.0, None)
    pm25 = 18.0 + 10.0 * d + f.noise(20.0, 3.0)
    return {
        "precip_rate": np.zeros(1),
        "t2m": t2m,
        "tsurf": tsurf,
        "wind": wind,
        "gust": gust_from_wind(wind, 1.7),
        "vis": visibility(26000.0 + f.noise(30.0, 2000.0), dust=dust),
        "rh": rh,
        "pm25": pm25,
        "dust": dust,
        "cape": cape,
        "p_lightning": np.clip(0.04 * cape / 750.0, 0.0, 0.04),
        "p_hail": np.zeros(1),
    }


# --- autumn fog and frost ----------------------------------------------------------------------


def _autumn_fog(f: Frame) -> Fields:
    x, y, t, amp = f.xs, f.ys, f.t, f.damped(0.4)
    valley = valley_index()
    elev = terrain()
    # Moist air in the east and the valleys; dry uplands in the west stay clear.
    moist = sigmoid((x + 25.0) / 12.0)
    core = cell(x, y, *_at("150627102"), 7.0, 5.0, 135.0)  # thickest over Ulan Mulun
    spatial = moist * (0.62 + 0.30 * valley) + 0.20 * core
    spatial = spatial + f.noise(15.0, 0.015) - 0.0004 * np.clip(elev - 1350.0, 0.0, None)
    night1 = sigmoid((t - 6.5) / 0.9) * (1.0 - sigmoid((t - 13.6) / 0.6))
    night3 = sigmoid((t - 56.0) / 1.0) * (1.0 - sigmoid((t - 61.5) / 0.6))
    fog = np.clip(amp * night1 * spatial + 0.40 * night3 * valley * moist, 0.0, None)
    vis = np.clip(10.0 ** (4.1 - 2.6 * fog), 15.0, 14000.0 + f.noise(30.0, 1500.0))
    # Temperature: calm clear nights, colder on the western uplands; fog keeps valleys mild.
    west = sigmoid((-f.x - 20.0) / 15.0)
    t2m = daily_cycle(
        f,
        [(-4.5, 15.0), (19.5, 13.0), (43.5, 15.5), (67.5, 17.0)],
        [(-14.0, 4.0), (10.0, 3.0), (34.0, 1.5), (58.0, 4.0), (82.0, 5.0)],
        shift=False,
    )
    night = 1.0 - daylight(f.clock, 23.1, 10.3)
    t2m = t2m + _elev_correction() + f.noise(25.0, 0.12) - 2.05 * west * night + 1.5 * fog
    sun = 1.0 - night
    tsurf = t2m + 7.0 * sun * (1.0 - 0.6 * np.minimum(fog, 1.0))
    tsurf = tsurf - 3.0 * night * (1.0 - np.minimum(1.6 * fog, 1.0))
    dew = np.interp(
        f.lead[:, 0, 0], [0.0, 16.0, 24.0, 40.0, 50.0, 60.0], [4.0, 3.0, 3.0, -6.0, -2.0, 3.0]
    )
    rh = relative_humidity(t2m, dew[:, None, None] + f.noise(30.0, 0.6))
    rh = np.maximum(
        rh, np.where(fog > 0.15, 85.0 + 15.0 * np.minimum((fog - 0.15) / 0.4, 1.0), 0.0)
    )
    d = diurnal(f.clock)
    wind = np.clip(0.8 + 2.2 * d + f.noise(20.0, 0.3) - 0.5 * np.minimum(fog, 1.0), 0.3, None)
    pm25 = np.clip(35.0 + 40.0 * np.minimum(fog, 1.0) + 15.0 * (1.0 - d), 5.0, 100.0)
    return {
        "precip_rate": np.zeros(1),
        "t2m": t2m,
        "tsurf": tsurf,
        "wind": wind,
        "gust": gust_from_wind(wind, 1.6),
        "vis": vis,
        "rh": rh,
        "pm25": pm25,
        "dust": np.clip(50.0 + f.noise(20.0, 8.0), 5.0, None),
        "cape": np.zeros(1),
        "p_lightning": np.zeros(1),
        "p_hail": np.zeros(1),
    }


# --- 2022-08-17/18 Ejin Horo extreme rain ------------------------------------------------------

# Event totals up to 09:00 BJT on 18 August (spec/events.md), at the nearest grid cells:
# 伊金霍洛镇 (Haolai station), Kangbashi (Qingchunshan) and Dongsheng (station 53543).
EVENT_2022_TOTALS = {"150627106": 248.4, "150603002": 96.2, "53543": 46.9}
EVENT_2022_END_LEAD = 25  # 2022-08-18T01:00Z = 09:00 BJT
EVENT_2022_SIGMA_KM = 20.0  # reach of the calibration around each station


def _log_correction(x, y, cx, cy, ratios: np.ndarray):
    """Smooth log-factor over ``(x, y)``, exactly ``log(ratios)`` at the points ``(cx, cy)``.

    Gaussian radial basis functions (width :data:`EVENT_2022_SIGMA_KM`) in log space: the
    factor ``exp`` of the result is positive everywhere, 1 far from the points.
    """
    sigma = EVENT_2022_SIGMA_KM
    phi = np.exp(-0.5 * ((cx[:, None] - cx) ** 2 + (cy[:, None] - cy) ** 2) / sigma**2)
    coef = np.linalg.solve(phi, np.log(ratios))
    return sum(
        c * np.exp(-0.5 * ((x - a) ** 2 + (y - b) ** 2) / sigma**2)
        for c, a, b in zip(coef, cx, cy, strict=True)
    )


def _rain_2022(f: Frame, x, y, jitter: np.ndarray, extras: bool = True):
    """Train of cells over 伊金霍洛镇 (back-building, moving NNE) and the rain shield.

    Returns the rain rate and, with ``extras``, the cells' anvils (lightning load) and the
    hail probability.
    """
    t, amp = f.t, f.amp
    px, py = _at("150627106")
    bearing, speed = 10.0, 30.0
    ux, uy = _along(bearing)
    rate = 0.0
    anvils, hail = [], 0.0
    births = 9.0 + 0.7 * np.arange(jitter.size)
    for birth, lateral in zip(births, jitter, strict=True):
        s = -18.0 + speed * (t - birth)  # along-track position of the cell
        growth = np.where(s < 0.0, np.exp(-0.5 * (s / 8.0) ** 2), np.exp(-np.maximum(s, 0) / 26.0))
        alive = (t >= birth).astype(float)
        peak = 44.0 * amp * envelope(birth, 15.0, 1.9, 1.7) * growth * alive
        cx, cy = px + s * ux + lateral * uy, py + s * uy - lateral * ux
        rate = rate + cell(x, y, cx, cy, 10.0, 8.0, bearing, peak)
        if extras:
            anvils.append(cell(x, y, cx, cy, 16.0, 13.0, bearing, peak))
            strength = 0.35 * amp * np.clip(peak / 50.0, 0.0, 1.0) ** 2
            hail = hail + cell(x, y, cx, cy, 8.0, 6.0, bearing, strength)
    shield = cell(x, y, px + 15.0 * ux, py + 15.0 * uy, 40.0, 25.0, bearing)
    rate = rate + 4.0 * amp * envelope(t, 15.0, 4.0, 3.5) * shield
    return rate, anvils, hail


def _event_2022(f: Frame) -> Fields:
    x, y = f.xs, f.ys
    jitter = f.rng.normal(0.0, 2.0, 19)
    texture = 1.0 + 0.05 * f.noise(12.0)
    rate, anvils, hail = _rain_2022(f, x, y, jitter)
    rate = rate * texture
    # Calibrate to the published totals (to 09:00 BJT on the 18th) at the three stations'
    # nearest cells with a smooth factor (Gaussian radial basis in log space, exact at the
    # three cells).
    g = f.grid
    pts = [g.nearest(PLACES[c].lon, PLACES[c].lat) for c in EVENT_2022_TOTALS]
    published = np.array(list(EVENT_2022_TOTALS.values()))
    cx = np.array([g.x[j, i] for j, i in pts])
    cy = np.array([g.y[j, i] for j, i in pts])
    end = EVENT_2022_END_LEAD
    if f.observed:
        # What really happened: the published totals were measured at the stations, so
        # the observed companion (anchored: retimed and rescaled from the forecast, not
        # displaced, see ScenarioInfo.anchored) is calibrated itself with a factor fixed in
        # geography: its totals at the three cells are the published ones. Displacing the
        # storm 10-25 km and then forcing the totals would inflate the displaced core to
        # 300-700 mm (the published maximum of the event is 248.4 mm); anchored, the
        # observed maximum stays within about 255-275 mm for seeds 0-9.
        totals = f.step_sum(rate)[:end]
        ratios = published / np.array([totals[:, j, i].sum() for j, i in pts])
        corr = _log_correction(f.x, f.y, cx, cy, ratios)
    else:
        # The forecast's control run (its texture, no perturbation) meets the published
        # totals at the three cells; the factor travels with the storm, so ensemble members
        # (displaced, retimed, rescaled) spread around them.
        ctrl = Frame(g, f.hours, 0.0, type(f.pert)(), f.rng)
        ctrl_rate = _rain_2022(ctrl, g.x, g.y, jitter, extras=False)[0]
        ctrl_rate = ctrl_rate * texture
        totals = ctrl.step_sum(ctrl_rate)[:end]
        ratios = published / np.array([totals[:, j, i].sum() for j, i in pts])
        corr = _log_correction(x, y, cx, cy, ratios)
    rate = np.clip(rate * np.exp(corr), 0.0, None)

    t = f.t
    cool = 1.0 - np.exp(-f.accumulate(rate, 4.0) / 12.0)
    wake = 1.0 - np.exp(-f.accumulate(rate, 10.0) / 15.0)
    t2m = daily_cycle(
        f,
        [(7.5, 28.0), (31.5, 25.0), (55.5, 26.0)],
        [(-2.0, 17.0), (22.0, 16.5), (46.0, 15.5)],
        shift=False,
    )
    t2m = t2m + _elev_correction() + f.noise(25.0, 0.3) - 7.0 * cool
    dew = 16.5 + f.noise(30.0, 0.8) + 2.0 * cool
    rh = wet_up(relative_humidity(t2m, dew), rate, 2.0)
    sun = daylight(f.clock, 21.9, 11.6)
    tsurf = t2m + 8.0 * sun * (1.0 - cool) - 1.0
    d = diurnal(f.clock)
    bg = np.clip(3.0 + 2.0 * d + f.noise(20.0, 0.5), 0.5, None)
    outflow = 0.28 * np.clip(rate, 0.0, 60.0)
    wind = bg + 0.5 * outflow
    gust = gust_from_wind(bg, 1.6, outflow)
    cape = np.interp(t[:, 0, 0], [6.0, 12.0, 24.0, 32.0], [1800.0, 2200.0, 600.0, 900.0])
    cape = cape[:, None, None] * (0.2 + 0.8 * diurnal(f.clock, 22.0, 9.0))
    cape = np.clip(cape * (1.0 + f.noise(25.0, 0.1)) * (1.0 - 0.8 * wake), 0.0, None)
    dust = np.clip((45.0 + f.noise(20.0, 8.0)) * (1.0 - 0.7 * cool), 5.0, None)
    pm25 = np.clip((16.0 + 6.0 * (1.0 - d) + f.noise(20.0, 3.0)) * (1.0 - 0.5 * cool), 3.0, None)
    return {
        "precip_rate": rate,
        "t2m": t2m,
        "tsurf": tsurf,
        "wind": wind,
        "gust": gust,
        "vis": visibility(20000.0 + f.noise(30.0, 2000.0), rain=rate, dust=dust),
        "rh": rh,
        "pm25": pm25,
        "dust": dust,
        "cape": cape,
        "p_lightning": _lightning(anvils, cape),
        "p_hail": np.clip(hail, 0.0, 1.0),
    }


# --- registry ----------------------------------------------------------------------------------


def _exp(code: str, hazard: str, level: int, onset: str | None) -> dict:
    return {"town_code": code, "hazard": hazard, "level": level, "onset_utc": onset}


BUILDERS: dict[str, Callable[[Frame], Fields]] = {
    "quiet-day": _quiet_day,
    "july-rainstorm": _july_rainstorm,
    "january-blizzard": _january_blizzard,
    "spring-gale": _spring_gale,
    "summer-heatwave": _summer_heatwave,
    "autumn-fog": _autumn_fog,
    "2022-08-ejin-horo-extreme-rain": _event_2022,
}

_INFOS = (
    ScenarioInfo(
        name="quiet-day",
        title_zh="平静天气日",
        title_en="Quiet day",
        description_zh=(
            "5月12—14日晴到多云，微风（平均风速2—5米/秒，阵风不超过10米/秒），气温9—24℃，"
            "能见度20公里以上，13日午后仅有零星小阵雨（不足1毫米）；全域任何时刻均不达到国家"
            "预警信号标准，用于检验“无信号”流程。演练用合成数据。"
        ),
        description_en=(
            "12-14 May: fair, light breeze (2-5 m/s mean, gusts below 10 m/s), 9-24 degC, "
            "visibility above 20 km, a few stray showers (< 1 mm) on the 13th; nothing reaches "
            "any national warning-signal level anywhere at any time (tests the no-signal path). "
            "Synthetic exercise data."
        ),
        default_issued=pd.Timestamp("2026-05-12T00:00Z"),
        hours=72,
        expected=tuple(
            _exp("150627100", hz, 0, None) for hz in ("rainstorm", "gale", "heat", "fog", "frost")
        ),
    ),
    ScenarioInfo(
        name="july-rainstorm",
        title_zh="七月强对流暴雨",
        title_en="July convective rainstorm",
        description_zh=(
            "7月10日傍晚至前半夜（北京时间），一个强对流风暴（多单体，强降水核心约10公里）自"
            "西南向东北移动（约22公里/小时），19—21时经过旗府所在地阿勒腾席热镇，3小时雨量超过"
            "100毫米（暴雨红色），伴雷电、冰雹和雷暴大风（阵风18—20米/秒），强降水时能见度降至"
            "1公里左右；风暴尺度小，东部纳林陶亥镇、西部红庆河镇雨量不足5毫米。午后对流有效位能"
            "约2000焦/千克，风暴过后冷池降温约8℃。11日午后有分散雷阵雨，12日转好。演练用合成数据。"
        ),
        description_en=(
            "Evening of 10 July (Beijing time): a severe multicell storm (heavy-rain core about "
            "10 km across) moves from south-west to north-east at about 22 km/h and crosses the "
            "banner seat Altan Xiret at 19-21 BJT with more than 100 mm in 3 h (rainstorm red), "
            "lightning, hail and outflow gusts of 18-20 m/s; visibility about 1 km in the "
            "heaviest rain. The storm is small: Narin Taohai (east) and Hongqinghe (west) get "
            "less than 5 mm. CAPE about 2,000 J/kg in the afternoon, a rain-cooled pool about "
            "8 degC colder behind the storm; scattered showers on the 11th, fair on the 12th. "
            "Synthetic exercise data."
        ),
        default_issued=pd.Timestamp("2026-07-10T00:00Z"),
        hours=72,
        expected=(
            _exp("150627100", "rainstorm", 4, "2026-07-10T13:00:00Z"),
            _exp("150627103", "rainstorm", 0, None),
            _exp("150627105", "rainstorm", 0, None),
        ),
    ),
    ScenarioInfo(
        name="january-blizzard",
        title_zh="一月暴雪与寒潮",
        title_en="January blizzard and cold wave",
        description_zh=(
            "1月21日白天（北京时间），一条西南西—东北东走向的强降雪带缓慢南压，核心在阿勒腾席热镇"
            "一带，6小时降雪量（水当量）15毫米以上（暴雪红色），苏布尔嘎镇等地10毫米以上（橙色），"
            "降雪时能见度约700米；路面温度低于0℃，道路结冰。22日1时前后强冷锋过境，2小时内气温骤降"
            "约12℃，偏北风6级（平均风速11—13米/秒，阵风7—8级），22日最低气温−22℃左右，日最低"
            "气温比21日下降约14℃（寒潮橙色）。演练用合成数据。"
        ),
        description_en=(
            "21 January (Beijing time): a WSW-ENE heavy-snow band sags slowly south with its core "
            "over Altan Xiret: 15 mm or more water equivalent in 6 h (blizzard red), 10 mm or more "
            "around Subur'ga (orange), visibility about 700 m in the "
            "heaviest snow; road surfaces below 0 degC (road icing). A strong cold front passes "
            "around 01 BJT on the 22nd: a 12 degC drop within 2 h, northerly force 6 (11-13 m/s, "
            "gusts force 7-8), minimum near -22 degC on the 22nd, 14 degC below the 21st "
            "(cold wave orange). Synthetic exercise data."
        ),
        default_issued=pd.Timestamp("2026-01-20T00:00Z"),
        hours=72,
        expected=(
            _exp("150627100", "blizzard", 4, "2026-01-21T07:00:00Z"),
            _exp("150627104", "blizzard", 3, "2026-01-21T06:00:00Z"),
            _exp("150627100", "cold_wave", 3, "2026-01-21T19:00:00Z"),
            _exp("150627104", "cold_wave", 3, "2026-01-21T19:00:00Z"),
            _exp("150627106", "cold_wave", 3, "2026-01-21T19:00:00Z"),
        ),
    ),
    ScenarioInfo(
        name="spring-gale",
        title_zh="春季冷锋大风与沙尘暴",
        title_en="Spring cold-front gale and sandstorm",
        description_zh=(
            "4月8日13—15时（北京时间）强冷锋自西北向东南过境，锋后西北大风：全旗平均风力8级以上"
            "（17.2米/秒以上），阿勒腾席热镇一带核心平均风力10级（24.5米/秒以上）、阵风11—12级；"
            "伴沙尘暴：大部地区能见度低于1000米，核心区低于500米（强沙尘暴），沙尘浓度数千至一万"
            "微克/立方米；相对湿度低于30%，无雾；锋后气温下降约10℃。大风持续4—6小时，9—10日减弱。"
            "演练用合成数据。"
        ),
        description_en=(
            "8 April, 13-15 BJT: a strong cold front sweeps from north-west to south-east, "
            "followed by a north-westerly gale: mean wind force 8 or more (17.2 m/s) over the "
            "whole banner and force 10 (24.5 m/s or more) with gusts force 11-12 in a core over "
            "Altan Xiret; sandstorm with visibility below 1,000 m over most of the banner and "
            "below 500 m in the core (strong sandstorm), dust several thousand to 10,000 ug/m3; "
            "relative humidity below 30 %, no fog; about 10 degC colder behind the front. The "
            "gale lasts 4-6 h and eases on the 9th and 10th. Synthetic exercise data."
        ),
        default_issued=pd.Timestamp("2026-04-08T00:00Z"),
        hours=72,
        expected=(
            _exp("150627100", "gale", 3, "2026-04-08T06:00:00Z"),
            _exp("150627100", "sandstorm", 3, "2026-04-08T06:00:00Z"),
            _exp("150627103", "gale", 2, "2026-04-08T07:00:00Z"),
            _exp("150627103", "sandstorm", 2, "2026-04-08T07:00:00Z"),
            _exp("150627106", "gale", 2, "2026-04-08T07:00:00Z"),
            _exp("150627106", "sandstorm", 2, "2026-04-08T07:00:00Z"),
        ),
    ),
    ScenarioInfo(
        name="summer-heatwave",
        title_zh="盛夏高温热浪",
        title_en="Summer heatwave",
        description_zh=(
            "7月20—23日持续高温少雨：21—23日（北京时间）连续三天大部地区最高气温35℃以上（高温"
            "黄色），22日大范围37℃以上（橙色），阿勒腾席热镇—康巴什一带热岛核心40℃以上（红色，"
            "最高约42—43℃）。注意：为检验红色预警流程，核心气温有意设定得高于鄂尔多斯有记录以来的"
            "极端最高气温，并非现实中可能出现的数值。午后相对湿度10%—20%，夜间最低气温22—25℃，"
            "最高气温出现在15—16时。演练用合成数据。"
        ),
        description_en=(
            "20-23 July: a dry heatwave. Daily maxima of 35 degC or more on three consecutive "
            "Beijing days (21-23) over most of the banner (heat yellow), 37 degC or more widely "
            "on the 22nd (orange) and 40 degC or more in a core over Altan Xiret and Kangbashi "
            "(red, up to about 42-43 degC). NOTE: the core is deliberately hotter than any "
            "temperature on record in Ordos, to exercise the red level; it is not a realistic "
            "value. Afternoon humidity 10-20 %, nights 22-25 degC, maxima at 15-16 BJT. "
            "Synthetic exercise data."
        ),
        default_issued=pd.Timestamp("2026-07-20T00:00Z"),
        hours=96,
        expected=(
            _exp("150627100", "heat", 4, "2026-07-22T06:00:00Z"),
            _exp("150627101", "heat", 3, "2026-07-22T06:00:00Z"),
            _exp("150627103", "heat", 3, "2026-07-22T06:00:00Z"),
        ),
    ),
    ScenarioInfo(
        name="autumn-fog",
        title_zh="秋季辐射雾与霜冻",
        title_en="Autumn radiation fog and frost",
        description_zh=(
            "10月14日夜间晴空微风，15日凌晨2—3时（北京时间）起辐射雾，4—9时最浓：东部和中部大部"
            "能见度低于500米，乌兰木伦河谷（阿勒腾席热镇、空港一带）低于200米，乌兰木伦镇附近小范围"
            "低于50米（强浓雾），10时前后消散；雾区相对湿度95%以上，PM2.5中等（40—90微克/立方米）。"
            "西部高地无雾。15日夜间至16日早晨晴冷，西部红庆河镇、苏布尔嘎镇一带地面最低温度−3至−4℃"
            "（霜冻），大部地区地面温度降至0℃以下。演练用合成数据。"
        ),
        description_en=(
            "Night of 14-15 October: clear and calm; radiation fog forms at 02-03 BJT and is "
            "densest at 04-09 BJT: visibility below 500 m over most of the centre and east, below "
            "200 m in the Wulanmulun valley (Altan Xiret, airport zone), below 50 m in a small "
            "core near Ulan Mulun (dense fog), lifting around 10 BJT; relative humidity 95 % or "
            "more in the fog, moderate PM2.5 (40-90 ug/m3). The western uplands stay clear. The "
            "next night is clear and cold: ground minimum -3 to -4 degC around Hongqinghe and "
            "Subur'ga (frost), below 0 degC over most of the banner. Synthetic exercise data."
        ),
        default_issued=pd.Timestamp("2026-10-14T12:00Z"),
        hours=72,
        expected=(
            _exp("150627102", "fog", 4, "2026-10-14T20:00:00Z"),
            _exp("150627100", "fog", 3, "2026-10-14T20:00:00Z"),
            _exp("150627103", "fog", 2, "2026-10-14T20:00:00Z"),
            _exp("150627105", "fog", 0, None),
            _exp("150627105", "frost", 2, "2026-10-15T20:00:00Z"),
        ),
    ),
    ScenarioInfo(
        name="2022-08-ejin-horo-extreme-rain",
        title_zh="2022年8月17—18日伊金霍洛旗极端降雨（重建）",
        title_en="Ejin Horo extreme rain of 17-18 August 2022 (reconstruction)",
        description_zh=(
            "依据公开资料重建的2022年8月17—18日伊金霍洛旗极端降雨：17日傍晚起（北京时间），对流"
            "单体在伊金霍洛镇西南侧反复生成并向北偏东移动，形成“列车效应”，18日0时前后最强，伊金"
            "霍洛镇3小时雨量超过100毫米。截至18日9时的公布累计雨量：伊金霍洛镇248.4毫米、康巴什"
            "青春山96.2毫米、东胜46.9毫米。实况文件在这三处的最近格点上与公布值一致；预报（控制成员）"
            "在这三处也校准到公布值。公布的站点雨量确定了降雨落区，因此实况的风暴位置与预报相同，"
            "只是时间（提前或推迟1—3小时）、逐时强度和细节不同，其他地点的雨量也随之不同；集合成员"
            "不逐点等于公布值。时间和空间细节为合成，仅供演练与复盘。"
        ),
        description_en=(
            "Reconstruction of the Ejin Horo extreme rain of 17-18 August 2022 from published "
            "figures: from the evening of the 17th (Beijing time) convective cells form again and "
            "again south-west of Ejin Horo town and move north-north-east (train effect), "
            "strongest around midnight, with more than 100 mm in 3 h at Ejin Horo town. "
            "Published totals to 09 BJT on the 18th: 248.4 mm at Ejin Horo town, 96.2 mm at "
            "Kangbashi (Qingchunshan), 46.9 mm at Dongsheng. The observed companion holds these "
            "totals at the three places' nearest grid cells; the forecast's control run is "
            "calibrated to them too. The published station totals pin where the rain fell, so "
            "the observed storm keeps the forecast's position and differs in timing (1-3 h "
            "early or late), hourly intensity and detail, and amounts elsewhere differ; "
            "ensemble members do not meet the totals point by point. Timing and spatial detail "
            "are synthetic; for drills and reviews."
        ),
        default_issued=pd.Timestamp("2022-08-17T00:00Z"),
        hours=48,
        anchored=True,
        expected=(
            _exp("150627106", "rainstorm", 4, "2022-08-17T16:00:00Z"),
            _exp("150627101", "rainstorm", 3, "2022-08-17T15:00:00Z"),
            _exp("150627103", "rainstorm", 0, None),
            _exp("150627105", "rainstorm", 0, None),
        ),
    ),
)

SCENARIOS: dict[str, ScenarioInfo] = {info.name: info for info in _INFOS}


def list_scenarios() -> list[ScenarioInfo]:
    """All scenarios, in catalogue order."""
    return list(SCENARIOS.values())
