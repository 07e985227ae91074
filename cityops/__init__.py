"""cityops: gridded weather forecasts to per-town risk briefings for city operations.

The data path (``spec/architecture.md``)::

    forecast files --ingest--> canonical Dataset --rules--> level Dataset
        --geo--> town risk table --report--> briefings, CAP, index

Public entry points are imported lazily so that ``import cityops`` stays cheap.
"""

from __future__ import annotations

# pyproj before anything loads ecCodes: the eccodes wheels bundle their own PROJ, and a pyproj
# imported after them crashes the interpreter at exit (see cityops.ingest.grib).
import pyproj  # noqa: F401

__version__ = "0.9.0"

__all__ = ["__version__"]
