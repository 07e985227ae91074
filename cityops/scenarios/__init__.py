"""Synthetic but physically plausible CF NetCDF forecasts for demos, drills and tests.

Each scenario is a drill script for Ejin Horo Banner (a convective rainstorm over the banner
seat, a blizzard and cold wave, a gale with a sandstorm, a heatwave, radiation fog and frost,
the August 2022 extreme rain, and a quiet day) built from analytic, smooth fields on a
0.03 degree grid, with a deterministic seed, optional ensemble members and an "observed"
companion that differs as real events do.

Examples
--------
>>> from cityops.scenarios import SCENARIOS, make_scenario, write_scenario
>>> sorted(SCENARIOS)[:2]
['2022-08-ejin-horo-extreme-rain', 'autumn-fog']
>>> ds = make_scenario("july-rainstorm", members=3)  # doctest: +SKIP
>>> write_scenario("july-rainstorm", "out/fc.nc", observed_out="out/obs.nc")  # doctest: +SKIP
>>> late_east = make_scenario(
...     "july-rainstorm", observed=True, observed_shift=Perturbation(dt=2.0, dx=20.0)
... )  # doctest: +SKIP
"""

from cityops.scenarios.catalog import SCENARIOS, ScenarioInfo, list_scenarios
from cityops.scenarios.dataset import VARIABLES, get_scenario, make_scenario
from cityops.scenarios.grid import Perturbation
from cityops.scenarios.io import write_scenario

__all__ = [
    "SCENARIOS",
    "VARIABLES",
    "Perturbation",
    "ScenarioInfo",
    "get_scenario",
    "list_scenarios",
    "make_scenario",
    "write_scenario",
]
