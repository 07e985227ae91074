"""Building a scenario: realisations (control, observed, ensemble members) to a CF dataset."""

from __future__ import annotations

import logging
import numbers
import zlib

import numpy as np
import pandas as pd
import xarray as xr

import cityops
from cityops.errors import InputError
from cityops.resources import canonical_variables
from cityops.scenarios.catalog import BUILDERS, SCENARIOS, ScenarioInfo
from cityops.scenarios.grid import CONTROL, Frame, Perturbation, scenario_grid
from cityops.scenarios.weather import snow_fraction

__all__ = [
    "VARIABLES",
    "get_scenario",
    "make_scenario",
    "member_perturbation",
    "observed_perturbation",
]

log = logging.getLogger("cityops")

# Every scenario carries all of these (interfaces.md §1), so no rule lacks its input.
VARIABLES = (
    "precip",
    "snowfall",
    "t2m",
    "t2m_max",
    "t2m_min",
    "tsurf",
    "wind",
    "gust",
    "vis",
    "rh",
    "pm25",
    "dust",
    "cape",
    "p_lightning",
    "p_hail",
)
MAX_MEMBERS = 100

# Random streams: (seed, stream, ...) keys of numpy's SeedSequence.
_TEXTURE, _OBSERVED_TEXTURE, _MEMBER_TEXTURE, _OBSERVED_DRAW, _MEMBER_DRAW = 0, 1, 2, 11, 12


def get_scenario(name: str) -> ScenarioInfo:
    """The :class:`ScenarioInfo` of ``name``; :class:`InputError` listing valid names if unknown."""
    try:
        return SCENARIOS[name]
    except (KeyError, TypeError):
        raise InputError(
            f"unknown scenario {name!r}; expected one of: {', '.join(SCENARIOS)}"
        ) from None


def _key(name: str) -> int:
    """Stable per-scenario stream id, so scenarios with one seed do not share their draws."""
    return zlib.crc32(name.encode("utf-8"))


def observed_perturbation(name: str, seed: int) -> Perturbation:
    """How "what really happened" departs from the forecast, drawn from ``seed``.

    Timing 1-3 h early or late, features displaced 10-25 km in any direction, intensity
    off by a factor 0.7-0.9 or 1.1-1.3. An anchored scenario (a reconstruction pinned by
    published station totals, :attr:`ScenarioInfo.anchored`) gets the same timing and
    intensity draws but no displacement. :func:`make_scenario` takes an explicit departure
    instead through ``observed_shift``.
    """
    rng = np.random.default_rng([seed, _key(name), _OBSERVED_DRAW])
    dt = rng.choice([-1.0, 1.0]) * rng.uniform(1.0, 3.0)
    dist, direction = rng.uniform(10.0, 25.0), rng.uniform(0.0, 2.0 * np.pi)
    amp = 1.0 + rng.choice([-1.0, 1.0]) * rng.uniform(0.1, 0.3)
    if get_scenario(name).anchored:
        return Perturbation(dt=float(dt), amp=float(amp))
    return Perturbation(
        dt=float(dt),
        dx=float(dist * np.sin(direction)),
        dy=float(dist * np.cos(direction)),
        amp=float(amp),
    )


def member_perturbation(name: str, seed: int, member: int) -> Perturbation:
    """Ensemble member ``member`` (0 is the control): timing, position and intensity spread."""
    if member == 0:
        return CONTROL
    rng = np.random.default_rng([seed, _key(name), _MEMBER_DRAW, member])
    dt = float(np.clip(rng.normal(0.0, 1.2), -3.0, 3.0))
    dx, dy = rng.normal(0.0, 10.0, 2)
    scale = min(1.0, 25.0 / max(float(np.hypot(dx, dy)), 1e-9))
    amp = float(np.clip(np.exp(rng.normal(0.0, 0.12)), 0.75, 1.25))
    return Perturbation(dt=dt, dx=float(dx * scale), dy=float(dy * scale), amp=amp)


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, not {seed!r}")
    return int(seed)


def _check_shift(shift, observed: bool, info: ScenarioInfo) -> Perturbation | None:
    """An explicit observed departure: a :class:`Perturbation` with finite numbers, amp > 0."""
    if shift is None:
        return None
    if not observed:
        raise InputError(
            "observed_shift: applies to the observed companion only; pass observed=True"
        )
    if not isinstance(shift, Perturbation):
        raise InputError(
            f"observed_shift: expected a Perturbation(dt=hours, dx=km east, dy=km north, "
            f"amp=factor), not {shift!r}"
        )
    values = {"dt": shift.dt, "dx": shift.dx, "dy": shift.dy, "amp": shift.amp}
    for field_name, value in values.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Real)
            or not np.isfinite(float(value))
        ):
            raise InputError(f"observed_shift: {field_name} must be a finite number, not {value!r}")
    if shift.amp <= 0:
        raise InputError(f"observed_shift: amp must be a positive factor, not {shift.amp!r}")
    if info.anchored and (shift.dx != 0 or shift.dy != 0):
        raise InputError(
            f"observed_shift: {info.name} reconstructs a past event whose published station "
            f"totals pin where the rain fell; its observed companion cannot be displaced "
            f"(dx=0, dy=0; dt and amp are allowed)"
        )
    return Perturbation(**{k: float(v) for k, v in values.items()})


def _check_members(members) -> int | None:
    if members is None:
        return None
    if (
        isinstance(members, bool)
        or not isinstance(members, numbers.Integral)
        or not 1 <= members <= MAX_MEMBERS
    ):
        raise InputError(f"members must be an integer from 1 to {MAX_MEMBERS}, not {members!r}")
    return int(members)


def _parse_issued(issued, info: ScenarioInfo) -> pd.Timestamp:
    if issued is None:
        return info.default_issued
    try:
        ts = pd.Timestamp(issued)
    except (ValueError, TypeError):
        ts = pd.NaT
    if ts is pd.NaT or pd.isna(ts):
        raise InputError(
            f"issued: cannot read time {issued!r}; expected ISO 8601, e.g. "
            f"{info.default_issued.strftime('%Y-%m-%dT%H:%MZ')}"
        )
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    if (ts - info.default_issued) % pd.Timedelta("1D") != pd.Timedelta(0):
        log.warning(
            "scenario %s issued at %s: the situation moves with it, but its diurnal cycle "
            "was written for %02d:00 UTC",
            info.name,
            ts.isoformat(),
            info.default_issued.hour,
        )
    return ts


def _realise(
    info: ScenarioInfo, pert: Perturbation, rng: np.random.Generator, observed: bool = False
) -> dict:
    """Hourly canonical variables (float64 arrays, time x lat x lon) of one realisation."""
    f = Frame(
        scenario_grid(),
        info.hours,
        float(info.default_issued.hour),
        pert,
        rng,
        observed=observed,
    )
    s = BUILDERS[info.name](f)
    rate = np.clip(f.full(s["precip_rate"]), 0.0, None)
    t2m = f.full(s["t2m"])
    snow = rate * snow_fraction(t2m)
    wind = f.at_end(s["wind"])
    out = {
        "precip": f.step_sum(rate),
        "snowfall": f.step_sum(snow),
        "t2m": f.at_end(t2m),
        "t2m_max": f.step_max(t2m),
        "t2m_min": f.step_min(t2m),
        "tsurf": f.at_end(s["tsurf"]),
        "wind": wind,
        "gust": np.maximum(f.step_max(s["gust"]), wind),
        "vis": f.at_end(s["vis"]),
        "rh": np.clip(f.at_end(s["rh"]), 1.0, 100.0),
        "pm25": np.clip(f.at_end(s["pm25"]), 0.0, None),
        "dust": np.clip(f.at_end(s["dust"]), 0.0, None),
        "cape": np.clip(f.at_end(s["cape"]), 0.0, None),
        "p_lightning": np.clip(f.step_max(s["p_lightning"]), 0.0, 1.0),
        "p_hail": np.clip(f.step_max(s["p_hail"]), 0.0, 1.0),
    }
    # Sums of non-negative rates; keep snowfall <= precip exactly after rounding to float32.
    out["precip"] = np.clip(out["precip"], 0.0, None).astype(np.float32)
    out["snowfall"] = np.minimum(
        np.clip(out["snowfall"], 0.0, None).astype(np.float32), out["precip"]
    )
    return out


def _variable_attrs(name: str) -> dict:
    spec = canonical_variables()[name]
    attrs = {"units": spec["units"]}
    if spec.get("standard_name"):
        attrs["standard_name"] = spec["standard_name"]
    attrs["long_name"] = spec.get("long_name", name)
    if spec.get("long_name_zh"):
        attrs["long_name_zh"] = spec["long_name_zh"]
    if spec.get("cell_method"):
        attrs["cell_methods"] = spec["cell_method"]
    return attrs


def make_scenario(
    name: str,
    *,
    seed: int = 0,
    members: int | None = None,
    issued: str | pd.Timestamp | None = None,
    observed: bool = False,
    observed_shift: Perturbation | None = None,
) -> xr.Dataset:
    """Synthetic, physically plausible canonical forecast (or observation) of a scenario.

    Parameters
    ----------
    name : str
        A key of :data:`SCENARIOS` (``cityops scenario --list``).
    seed : int, optional
        Seeds the small-scale weather detail (and the observed / member perturbations):
        the same name, seed and options give identical arrays.
    members : int, optional
        Ensemble size: adds a ``member`` dimension (0 .. N-1, member 0 is the control run)
        with perturbations of timing, position and intensity.
    issued : str or pandas.Timestamp, optional
        Forecast reference time (UTC; naive times are UTC). The whole situation moves with
        it; default :attr:`ScenarioInfo.default_issued`.
    observed : bool, optional
        Return "what really happened" instead of the forecast: timing 1-3 h off, features
        10-25 km away, intensity x0.7-0.9 or x1.1-1.3 (deterministic from ``seed``);
        ``cityops_kind="observed"``.
    observed_shift : Perturbation, optional
        With ``observed=True``: this departure from the forecast instead of the one drawn
        from ``seed`` (the small-scale texture is still the observed one of ``seed``).
        ``dt`` hours late (positive) or early (negative); ``dx``, ``dy`` km east and north
        (positive) of the forecast's features; ``amp`` factor on the hazard features'
        intensity. ``Perturbation(dt=2.0, dx=20.0)``: the storm arrives 2 h later and
        20 km east of the forecast, exactly as strong. Fixed geography (terrain, valleys)
        and the air mass's diurnal temperature cycle do not move. An anchored scenario
        (:attr:`ScenarioInfo.anchored`) takes no displacement.

    Returns
    -------
    xarray.Dataset
        Canonical dataset (interfaces.md §1): float32 variables on ``time`` (hourly valid
        times, the step ending at ``time``), ``lat``, ``lon`` (and ``member``), CF
        attributes from ``cityops/data/variables.yaml``.

    Raises
    ------
    InputError
        Unknown name, bad seed, members or issued, members with ``observed``, or
        ``observed_shift`` without ``observed`` or with non-finite values.

    Examples
    --------
    >>> from cityops.scenarios import make_scenario
    >>> ds = make_scenario("july-rainstorm")
    >>> float(ds.precip.sel(lon=109.75, lat=39.58, method="nearest").max()) > 50
    True
    """
    info = get_scenario(name)
    seed = _check_seed(seed)
    members = _check_members(members)
    if observed and members is not None:
        raise InputError("observed: an observed companion has no ensemble members")
    shift = _check_shift(observed_shift, observed, info)
    issued_ts = _parse_issued(issued, info)
    key = _key(name)
    if observed:
        pert = shift if shift is not None else observed_perturbation(name, seed)
        realisations = [(pert, [seed, key, _OBSERVED_TEXTURE])]
    elif members is None:
        realisations = [(CONTROL, [seed, key, _TEXTURE])]
    else:
        realisations = [
            (
                member_perturbation(name, seed, m),
                [seed, key, _TEXTURE] if m == 0 else [seed, key, _MEMBER_TEXTURE, m],
            )
            for m in range(members)
        ]
    fields = [
        _realise(info, p, np.random.default_rng(key), observed=observed) for p, key in realisations
    ]

    grid = scenario_grid()
    time = pd.date_range(issued_ts + pd.Timedelta("1h"), periods=info.hours, freq="1h").tz_convert(
        None
    )
    dims = ("time", "lat", "lon")
    if members is not None:
        dims = ("member", *dims)
    data_vars = {}
    for var in VARIABLES:
        arr = np.stack([f[var] for f in fields]) if members is not None else fields[0][var]
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        data_vars[var] = xr.Variable(dims, arr, attrs=_variable_attrs(var))
    coords = {
        "time": (
            "time",
            time.values,
            {"standard_name": "time", "axis": "T", "long_name": "valid time (end of the step)"},
        ),
        "lat": (
            "lat",
            grid.lat.copy(),
            {
                "standard_name": "latitude",
                "units": "degrees_north",
                "long_name": "latitude",
                "axis": "Y",
            },
        ),
        "lon": (
            "lon",
            grid.lon.copy(),
            {
                "standard_name": "longitude",
                "units": "degrees_east",
                "long_name": "longitude",
                "axis": "X",
            },
        ),
    }
    if members is not None:
        coords["member"] = (
            "member",
            np.arange(members, dtype=np.int32),
            {
                "standard_name": "realization",
                "units": "1",
                "long_name": "ensemble member",
                "comment": "member 0 is the control run",
            },
        )
    ds = xr.Dataset(data_vars, coords=coords)
    ds["time"].encoding.update(
        units=f"hours since {issued_ts.strftime('%Y-%m-%d %H:%M:%S')}",
        calendar="proleptic_gregorian",
        dtype="int32",
    )
    kind = "observed" if observed else "forecast"
    issued_text = issued_ts.strftime("%Y-%m-%dT%H:%M:%SZ")
    call = (
        f"cityops.scenarios.make_scenario({name!r}, seed={seed}, members={members}, "
        f"issued={issued_text!r}, observed={observed}"
        + (f", observed_shift={shift!r}" if shift is not None else "")
        + ")"
    )
    ds.attrs = {
        "Conventions": "CF-1.8",
        "title": f"{info.title_en} ({kind}, synthetic exercise data)",
        "title_zh": f"{info.title_zh}（{'实况' if observed else '预报'}，演练用合成数据）",
        "institution": "cityops synthetic scenarios",
        "source": f"cityops {cityops.__version__} scenario generator: analytic fields, "
        "not a model run and not observations",
        "history": f"created by {call}",
        "issued": issued_text,
        "cityops_scenario": name,
        "status": "Exercise",
        "cityops_seed": np.int32(seed),
        "cityops_kind": kind,
        "description": info.description_zh,
        "description_en": info.description_en,
        "wind_averaging": "10-minute mean wind; gusts are 3-second maxima over the step",
    }
    if members is not None:
        ds.attrs["cityops_members"] = np.int32(members)
    if observed:
        p = realisations[0][0]
        ds.attrs["cityops_perturbation"] = (
            f"timing {p.dt:+.1f} h, displacement {p.dx:+.1f} km east {p.dy:+.1f} km north, "
            f"intensity x{p.amp:.2f}"
        )
        if info.anchored:
            ds.attrs["cityops_perturbation"] += (
                "; anchored reconstruction: rain calibrated to the published station totals"
            )
    return ds
