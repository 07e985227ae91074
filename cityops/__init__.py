"""cityops: gridded weather forecasts to per-town risk briefings for city operations.

The data path (``spec/architecture.md``)::

    forecast files --ingest--> canonical Dataset --rules--> level Dataset
        --geo--> town risk table --report--> briefings, CAP, index

Public entry points are imported lazily so that ``import cityops`` stays cheap.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
