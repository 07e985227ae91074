"""The scenario grid, the sub-hourly sampling frame and the analytic shapes weather is built from.

Every scenario field is an analytic function of position (km east / north of a reference
point) and time (hours since ``issued``), sampled every 15 minutes so that hourly sums,
maxima and minima over "the step ending at ``time``" (interfaces.md §1) are consistent with
the instantaneous values.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from itertools import pairwise

import numpy as np
from scipy.ndimage import gaussian_filter

__all__ = [
    "CONTROL",
    "Frame",
    "Grid",
    "Perturbation",
    "cell",
    "diurnal",
    "envelope",
    "polyline_distance",
    "scenario_grid",
    "sigmoid",
    "terrain",
    "valley_index",
]

# Grid: 0.03 degree (about 3 km), covering 108.70-110.70 E and 38.70-40.00 N.
LON_START, LAT_START, SPACING = 108.70, 38.70, 0.03
N_LON, N_LAT = 68, 45  # 108.70 ... 110.71 E, 38.70 ... 40.02 N
REF_LON, REF_LAT = 109.75, 39.40  # origin of the km coordinates
KM_PER_DEG_LAT = 111.0
KM_PER_DEG_LON = 111.32 * float(np.cos(np.deg2rad(REF_LAT)))
SUBSTEPS = 4  # samples per hour (15 min)


@dataclass(frozen=True, eq=False)
class Grid:
    """Regular lat/lon grid with local km coordinates (``x`` east, ``y`` north)."""

    lon: np.ndarray
    lat: np.ndarray
    x: np.ndarray  # (lat, lon) km
    y: np.ndarray  # (lat, lon) km

    @property
    def shape(self) -> tuple[int, int]:
        return (self.lat.size, self.lon.size)

    @staticmethod
    def km(lon: float, lat: float) -> tuple[float, float]:
        """Local km coordinates of a WGS-84 point."""
        return ((lon - REF_LON) * KM_PER_DEG_LON, (lat - REF_LAT) * KM_PER_DEG_LAT)

    def nearest(self, lon: float, lat: float) -> tuple[int, int]:
        """Indices (j, i) of the grid cell nearest to a point."""
        return int(np.abs(self.lat - lat).argmin()), int(np.abs(self.lon - lon).argmin())


@cache
def scenario_grid() -> Grid:
    """The fixed scenario grid (cached; treat its arrays as read-only)."""
    lon = np.round(LON_START + SPACING * np.arange(N_LON), 4)
    lat = np.round(LAT_START + SPACING * np.arange(N_LAT), 4)
    lon2, lat2 = np.meshgrid(lon, lat)
    x = (lon2 - REF_LON) * KM_PER_DEG_LON
    y = (lat2 - REF_LAT) * KM_PER_DEG_LAT
    for a in (lon, lat, x, y):
        a.flags.writeable = False
    return Grid(lon=lon, lat=lat, x=x, y=y)


@dataclass(frozen=True)
class Perturbation:
    """How a realisation departs from the scenario's control run.

    Attributes
    ----------
    dt : float
        Hours the weather features run late (positive) or early (negative).
    dx, dy : float
        Displacement of the weather features, km east and north.
    amp : float
        Factor on the intensity of the hazard features.
    """

    dt: float = 0.0
    dx: float = 0.0
    dy: float = 0.0
    amp: float = 1.0


CONTROL = Perturbation()


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma_km: float) -> np.ndarray:
    """Smooth random field (zero mean, unit standard deviation), correlation ``sigma_km``."""
    white = rng.standard_normal(shape)
    sigma = (sigma_km / (SPACING * KM_PER_DEG_LAT), sigma_km / (SPACING * KM_PER_DEG_LON))
    field = gaussian_filter(white, sigma=sigma, mode="reflect")
    field -= field.mean()
    return field / max(float(field.std()), 1e-12)


class Frame:
    """Everything a scenario builder needs: grid, sample times, perturbation and texture.

    Samples are taken every ``1/SUBSTEPS`` hour from ``issued`` to ``issued + hours``;
    arrays built on them have shape ``(n_samples, lat, lon)`` (or broadcast to it).

    Parameters
    ----------
    grid : Grid
    hours : int
        Forecast length.
    start_hour : float
        Hour of day (UTC) of the scenario's default ``issued``: the diurnal cycle follows it.
    pert : Perturbation
    rng : numpy.random.Generator
        Texture (small-scale weather detail) of this realisation.
    observed : bool, optional
        The realisation is the observed companion ("what really happened"): a builder that
        reconstructs a past event calibrates it to the observations at their fixed places,
        not with the features' displacement.
    """

    def __init__(
        self,
        grid: Grid,
        hours: int,
        start_hour: float,
        pert: Perturbation,
        rng: np.random.Generator,
        *,
        observed: bool = False,
    ):
        self.grid = grid
        self.observed = observed
        self.hours = hours
        self.pert = pert
        self.rng = rng
        n = hours * SUBSTEPS + 1
        self.lead = (np.arange(n, dtype=float) / SUBSTEPS)[:, None, None]
        self.clock = (start_hour + self.lead) % 24.0  # hour of day, UTC
        self.t = self.lead - pert.dt  # time of the weather features
        self.x, self.y = grid.x, grid.y  # fixed geography
        self.xs, self.ys = grid.x - pert.dx, grid.y - pert.dy  # displaced features
        self.amp = pert.amp

    def damped(self, share: float) -> float:
        """Intensity factor for quantities that vary less than rain: ``1 + share (amp - 1)``."""
        return 1.0 + share * (self.amp - 1.0)

    @property
    def n(self) -> int:
        return self.lead.shape[0]

    def noise(self, sigma_km: float, amplitude: float = 1.0) -> np.ndarray:
        """A smooth texture field from this realisation's generator."""
        return amplitude * smooth_noise(self.rng, self.grid.shape, sigma_km)

    def full(self, a: np.ndarray) -> np.ndarray:
        return np.broadcast_to(a, (self.n, *self.grid.shape))

    def step_sum(self, rate: np.ndarray) -> np.ndarray:
        """Amount over each hourly step from a rate per hour (trapezoid rule)."""
        r = self.full(rate)
        mid = 0.5 * (r[:-1] + r[1:])
        return mid.reshape(self.hours, SUBSTEPS, *self.grid.shape).sum(axis=1) / SUBSTEPS

    def step_max(self, a: np.ndarray) -> np.ndarray:
        a = self.full(a)
        body = a[:-1].reshape(self.hours, SUBSTEPS, *self.grid.shape).max(axis=1)
        return np.maximum(body, a[SUBSTEPS::SUBSTEPS])

    def step_min(self, a: np.ndarray) -> np.ndarray:
        a = self.full(a)
        body = a[:-1].reshape(self.hours, SUBSTEPS, *self.grid.shape).min(axis=1)
        return np.minimum(body, a[SUBSTEPS::SUBSTEPS])

    def at_end(self, a: np.ndarray) -> np.ndarray:
        """Instantaneous value at the end of each step (the valid time)."""
        return np.array(self.full(a)[SUBSTEPS::SUBSTEPS])

    def accumulate(self, rate: np.ndarray, tau: float) -> np.ndarray:
        """Running amount of ``rate`` with an e-folding memory of ``tau`` hours."""
        r = self.full(rate)
        out = np.empty_like(r, dtype=float)
        keep = np.exp(-1.0 / (SUBSTEPS * tau))
        acc = np.zeros(self.grid.shape)
        for k in range(self.n):
            acc = acc * keep + r[k] / SUBSTEPS
            out[k] = acc
        return out


# --- analytic shapes -------------------------------------------------------------------------


def sigmoid(z):
    """Smooth 0-to-1 transition (a tanh front)."""
    return 0.5 * (1.0 + np.tanh(z))


def envelope(t, peak: float, rise: float, decay: float | None = None):
    """Life cycle in time: a Gaussian bump, ``rise`` hours wide before and ``decay`` after."""
    decay = rise if decay is None else decay
    width = np.where(t < peak, rise, decay)
    return np.exp(-0.5 * ((t - peak) / width) ** 2)


def cell(
    x,
    y,
    xc,
    yc,
    sigma_along: float,
    sigma_across: float,
    bearing: float,
    weight=None,
):
    """Anisotropic Gaussian, long axis along ``bearing`` (degrees clockwise from north).

    Parameters
    ----------
    x, y : array
        Positions (km), e.g. the grid (lat, lon).
    xc, yc : float or array
        Centre (km); arrays of shape (samples, 1, 1) for a moving cell.
    sigma_along, sigma_across : float
        Widths (km) along and across ``bearing``.
    weight : array, optional
        Amplitude per sample, shape (samples, 1, 1). When given, the result is
        ``weight * shape``, evaluated only where the weight is not negligible (a cell's life
        is short compared with the forecast).
    """
    b = np.deg2rad(bearing)
    sb, cb = np.sin(b), np.cos(b)
    ga = (x * sb + y * cb) / sigma_along
    gc = (x * cb - y * sb) / sigma_across
    ca = (np.asarray(xc) * sb + np.asarray(yc) * cb) / sigma_along
    cc = (np.asarray(xc) * cb - np.asarray(yc) * sb) / sigma_across
    if weight is None:
        return np.exp(-0.5 * ((ga - ca) ** 2 + (gc - cc) ** 2))
    w = np.asarray(weight, dtype=float)
    n = w.shape[0]
    ca = np.broadcast_to(ca, (n, 1, 1))
    cc = np.broadcast_to(cc, (n, 1, 1))
    out = np.zeros((n, *np.broadcast_shapes(np.shape(ga), np.shape(gc))))
    active = np.flatnonzero(np.abs(w.reshape(n, -1)).max(axis=1) > 1e-9)
    if active.size:
        q = (ga - ca[active]) ** 2 + (gc - cc[active]) ** 2
        out[active] = w[active] * np.exp(-0.5 * q)
    return out


def diurnal(hour_utc, hour_min: float = 22.0, hour_max: float = 7.5):
    """Diurnal shape 0 (minimum near dawn) to 1 (afternoon maximum), Beijing = UTC + 8.

    Rises as a half cosine from ``hour_min`` to ``hour_max`` and falls back over the rest of
    the day (defaults: minimum 06:00 BJT, maximum 15:30 BJT).
    """
    h = np.asarray(hour_utc, dtype=float)
    rise_len = (hour_max - hour_min) % 24.0
    since_min = (h - hour_min) % 24.0
    rising = since_min <= rise_len
    s_rise = since_min / rise_len
    s_fall = (since_min - rise_len) / (24.0 - rise_len)
    return np.where(rising, 0.5 - 0.5 * np.cos(np.pi * s_rise), 0.5 + 0.5 * np.cos(np.pi * s_fall))


def daylight(hour_utc, sunrise_utc: float, sunset_utc: float):
    """Solar forcing 0-1: a half sine between sunrise and sunset (UTC hours), 0 at night."""
    h = np.asarray(hour_utc, dtype=float)
    length = (sunset_utc - sunrise_utc) % 24.0
    since = (h - sunrise_utc) % 24.0
    return np.where(since < length, np.sin(np.pi * since / length), 0.0)


def polyline_distance(x, y, points: list[tuple[float, float]]) -> np.ndarray:
    """Distance (km) from each point to a polyline given by its vertices."""
    best = np.full(np.shape(x), np.inf)
    for (x0, y0), (x1, y1) in pairwise(points):
        vx, vy = x1 - x0, y1 - y0
        s = np.clip(((x - x0) * vx + (y - y0) * vy) / (vx * vx + vy * vy), 0.0, 1.0)
        best = np.minimum(best, np.hypot(x - (x0 + s * vx), y - (y0 + s * vy)))
    return best


# The Wulanmulun river (乌兰木伦河) runs from north-west of Kangbashi past the banner seat
# to Ulan Mulun town; a second valley drains the south (札萨克 area). Vertices in km.
_RIVERS = (
    [(-14.0, 44.0), (2.0, 26.0), (7.0, 13.0), (22.0, 0.0), (38.0, -12.0), (58.0, -32.0)],
    [(-24.0, -4.0), (-6.0, -14.0), (4.0, -22.0), (20.0, -40.0)],
)


@cache
def valley_index() -> np.ndarray:
    """0-1 index of river valleys (1 on the valley floor), fixed geography."""
    g = scenario_grid()
    main = np.exp(-0.5 * (polyline_distance(g.x, g.y, _RIVERS[0]) / 5.0) ** 2)
    south = 0.7 * np.exp(-0.5 * (polyline_distance(g.x, g.y, _RIVERS[1]) / 4.0) ** 2)
    out = np.maximum(main, south)
    out.flags.writeable = False
    return out


@cache
def terrain() -> np.ndarray:
    """Elevation-like field (m): the Ordos plateau, its watershed ridge and river valleys.

    Fixed geography (the same for every seed): about 1,450-1,550 m on the Dongsheng ridge
    in the north and on the western uplands, 1,300-1,350 m around the banner seat and
    1,150-1,250 m in the Wulanmulun valley to the south-east.
    """
    g = scenario_grid()
    x, y = g.x, g.y
    base = 1380.0 + 1.2 * y - 1.4 * x
    ridge = 110.0 * np.exp(-0.5 * ((y - 50.0) / 18.0) ** 2)
    west = 70.0 * sigmoid((-x - 40.0) / 25.0)
    relief = 25.0 * smooth_noise(np.random.default_rng(20220817), g.shape, 6.0)
    elev = base + ridge + west - 120.0 * valley_index() + relief
    elev = np.clip(elev, 1050.0, 1650.0)
    elev.flags.writeable = False
    return elev
