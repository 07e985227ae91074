"""Synthetic canonical forecasts and jurisdictions for the benchmarks (not test fixtures).

The forecast has every canonical variable of ``interfaces.md`` §1 in its canonical units, as
float32 ``(time, lat, lon)`` (or ``(member, time, lat, lon)``), like the shipped samples
(``tests/conftest.py::make_forecast`` builds the small float64 ones of the unit tests). Each
variable is random noise shaped so that every national rule fires somewhere: heavy-tailed
rain and snow, strong winds, low visibility, hot days and cold nights.

Data are made lazily, one dask block per (member, space chunk) with the whole time axis, from
a seed derived from the block's position: a block's values do not depend on the chunking of
the others, ``.compute()`` gives the in-memory dataset and a 2000 x 2000 grid never needs to
sit in memory.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import shapely
import xarray as xr

__all__ = [
    "ISSUED",
    "NATIONAL_INPUTS",
    "VARIABLES",
    "synthetic_forecast",
    "synthetic_jurisdiction",
]

#: Forecast reference time: April, so the frost rows (growing season) are evaluated too.
ISSUED = pd.Timestamp("2026-04-10T00:00")

#: name: (units, offset, scale, power). Value = offset + scale * u**power, u uniform [0, 1).
VARIABLES: dict[str, tuple[str, float, float, int]] = {
    "precip": ("mm", 0.0, 60.0, 8),
    "snowfall": ("mm", 0.0, 8.0, 8),
    "t2m": ("degC", -5.0, 40.0, 1),
    "t2m_max": ("degC", -2.0, 44.0, 1),
    "t2m_min": ("degC", -12.0, 30.0, 1),
    "tsurf": ("degC", -8.0, 40.0, 1),
    "wind": ("m s-1", 0.0, 36.0, 2),
    "gust": ("m s-1", 0.0, 46.0, 2),
    "vis": ("m", 10.0, 20000.0, 2),
    "rh": ("percent", 5.0, 95.0, 1),
    "pm25": ("ug m-3", 0.0, 600.0, 4),
    "dust": ("ug m-3", 0.0, 1500.0, 4),
    "cape": ("J kg-1", 0.0, 3000.0, 2),
    "p_lightning": ("1", 0.0, 1.0, 1),
    "p_hail": ("1", 0.0, 1.0, 2),
}

#: The variables the national rule set reads on this dataset (first preference of each
#: condition; ``t2m`` and ``pm25`` are present but unread): the floor is measured over these.
NATIONAL_INPUTS = [
    "precip", "snowfall", "t2m_max", "t2m_min", "tsurf", "wind", "gust", "vis", "rh", "dust",
    "cape", "p_lightning", "p_hail",
]  # fmt: skip


def _block(spec: tuple[float, float, int], seed: int, block_info=None) -> np.ndarray:
    """One float32 block: offset + scale * u**power from a seed fixed by the block's place."""
    info = block_info[None]
    shape = info["chunk-shape"]
    where = tuple(loc[0] for loc in info["array-location"])
    rng = np.random.default_rng([seed, *where])
    out = rng.random(shape, dtype=np.float32)
    offset, scale, power = spec
    p = 1
    while p < power:  # power is 1, 2, 4 or 8: square in place
        np.multiply(out, out, out=out)
        p *= 2
    out *= np.float32(scale)
    if offset:
        out += np.float32(offset)
    return out


def synthetic_forecast(
    ny: int,
    nx: int,
    nt: int = 72,
    *,
    members: int | None = None,
    chunks: tuple[int, int] = (250, 250),
    variables: list[str] | None = None,
    seed: int = 0,
) -> xr.Dataset:
    """A lazy canonical forecast on a ``ny x nx`` 0.01° grid with ``nt`` hourly steps.

    Parameters
    ----------
    ny, nx, nt : int
        Grid size and number of hourly valid times (issued 2026-04-10 00 UTC).
    members : int, optional
        Ensemble size (adds a leading ``member`` dimension, one member per chunk).
    chunks : (int, int)
        Space chunk (lat, lon); time is never chunked.
    variables : list of str, optional
        Subset of :data:`VARIABLES` (default all).
    seed : int
        Base seed; each variable and block derives its own.

    Returns
    -------
    xarray.Dataset
        dask-backed, float32; call ``.compute()`` for the in-memory dataset.
    """
    names = variables or list(VARIABLES)
    shape = (nt, ny, nx)
    chunk = (nt, min(chunks[0], ny), min(chunks[1], nx))
    dims: tuple[str, ...] = ("time", "lat", "lon")
    if members:
        shape = (members, *shape)
        chunk = (1, *chunk)
        dims = ("member", *dims)
    data_vars = {}
    for i, name in enumerate(names):
        units, offset, scale, power = VARIABLES[name]
        arr = da.map_blocks(
            _block,
            (offset, scale, power),
            seed * 1000 + i,
            chunks=da.core.normalize_chunks(chunk, shape),
            dtype=np.float32,
            meta=np.empty((0,) * len(shape), np.float32),
        )
        data_vars[name] = (dims, arr, {"units": units})
    times = pd.date_range(ISSUED + pd.Timedelta("1h"), periods=nt, freq="h")
    coords = {
        "time": times,
        "lat": np.round(39.0 + 0.01 * np.arange(ny), 6),
        "lon": np.round(109.0 + 0.01 * np.arange(nx), 6),
    }
    if members:
        coords["member"] = np.arange(members)
    return xr.Dataset(
        data_vars, coords=coords, attrs={"issued": ISSUED.strftime("%Y-%m-%dT%H:%M:%SZ")}
    )


def synthetic_jurisdiction(n_units: int, lat: np.ndarray, lon: np.ndarray, *, seed: int = 0):
    """A jurisdiction of ``n_units`` polygons tiling the grid (Voronoi cells of random seats).

    Returns a :class:`cityops.geo.jurisdiction.Jurisdiction` whose outline is the grid's
    inner extent (half a cell inside its edges, so the grid covers every unit).
    """
    from pathlib import Path

    from cityops.geo.jurisdiction import Jurisdiction, Unit

    rng = np.random.default_rng(seed)
    dlat, dlon = abs(lat[1] - lat[0]), abs(lon[1] - lon[0])
    box = shapely.box(lon.min(), lat.min(), lon.max(), lat.max())
    pts = np.column_stack(
        [
            rng.uniform(lon.min() + dlon, lon.max() - dlon, n_units),
            rng.uniform(lat.min() + dlat, lat.max() - dlat, n_units),
        ]
    )
    cells = shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=box)
    polys = [shapely.intersection(g, box) for g in shapely.get_parts(cells)]
    # voronoi_polygons returns cells in no particular order: match each to its seat.
    tree = shapely.STRtree(polys)
    seat_of = {}
    for k, (x, y) in enumerate(pts):
        hit = tree.query(shapely.Point(x, y), predicate="intersects")
        seat_of[int(hit[0])] = k
    units = []
    for j, poly in enumerate(polys):
        k = seat_of.get(j, j)
        units.append(
            Unit(
                code=f"B{k:05d}",
                name_zh=f"单元{k}",
                name_en=f"unit {k}",
                kind="town",
                seat_lon=float(pts[k, 0]) if k < len(pts) else None,
                seat_lat=float(pts[k, 1]) if k < len(pts) else None,
                geometry=poly,
            )
        )
    units.sort(key=lambda u: u.code)
    return Jurisdiction(
        name=f"synthetic-{n_units}",
        code="999999",
        name_zh="合成辖区",
        name_en="synthetic jurisdiction",
        timezone="Asia/Shanghai",
        outline=box,
        units=tuple(units),
        path=Path("."),
    )
