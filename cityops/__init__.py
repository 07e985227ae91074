"""cityops: gridded weather forecasts to per-town risk briefings for city operations.

The data path (``spec/architecture.md``)::

    forecast files --ingest--> canonical Dataset --rules--> level Dataset
        --geo--> town risk table --report--> briefings, CAP, index

Public entry points are imported lazily so that ``import cityops`` stays cheap.
"""

from __future__ import annotations

# The ecCodes/PROJ import-order crash (findlibs < 0.1.4 loading the eccodes wheels' bundled
# PROJ globally) is fixed in the environment: pyproject.toml requires findlibs >= 0.1.4, and
# tests/test_environment.py runs plain xarray/cfgrib/pyproj scripts in every import order
# (docs/process_health.md).

__version__ = "0.10.0"

__all__ = ["__version__"]
