"""Moved to :mod:`cityops.report.explore` (the explorer is presentation: it imports ipywidgets,
matplotlib and papermill). ``cityops.explore.Explorer`` stays importable: it is the public
entry named since 0.9.0 (README)."""

from cityops.report.explore import BANNER, Explorer, find_forecasts, with_threshold

__all__ = ["BANNER", "Explorer", "find_forecasts", "with_threshold"]
