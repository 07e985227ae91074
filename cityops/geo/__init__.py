"""Jurisdictions, their response units and grid-cell overlap weights (the ``geo`` room).

>>> from cityops.geo import load_jurisdiction, overlap_weights
>>> ejin_horo = load_jurisdiction("ejin-horo")
>>> ejin_horo.unit("阿镇").code
'150627100'
"""

from __future__ import annotations

from cityops.geo.jurisdiction import Jurisdiction, Unit, load_jurisdiction
from cityops.geo.masks import overlap_weights, touching

__all__ = ["Jurisdiction", "Unit", "load_jurisdiction", "overlap_weights", "touching"]
