"""cityops: gridded weather forecasts to per-town risk briefings for city operations.

The data path (``spec/architecture.md``)::

    forecast files --ingest--> canonical Dataset --rules--> level Dataset
        --geo--> town risk table --report--> briefings, CAP, index

Public entry points are imported lazily so that ``import cityops`` stays cheap.
"""

from __future__ import annotations

import sys as _sys

# pyproj before anything loads ecCodes: the eccodes wheels bundle their own PROJ, and a pyproj
# imported after them crashes the interpreter at exit (see cityops.ingest.grib and
# docs/process_health.md). Too late when ecCodes is already in: say so instead of crashing later.
if "pyproj" not in _sys.modules and {"gribapi", "eccodes", "cfgrib"} & set(_sys.modules):
    import warnings as _warnings

    _warnings.warn(
        "ecCodes (eccodes/cfgrib) was loaded before pyproj in this process: pyproj will not find "
        "its database and the interpreter may crash at exit (status 134/139). Import cityops "
        "(or pyproj) before eccodes, cfgrib or xarray's GRIB engine.",
        RuntimeWarning,
        stacklevel=2,
    )
import pyproj  # noqa: F401

__version__ = "0.10.0"

__all__ = ["__version__"]
