"""Moved to :mod:`cityops.cap` (the CAP format sits below ``report/`` and ``review/``, which both
use it). Kept importable for :mod:`cityops.report.batch` until it imports :mod:`cityops.cap`."""

from cityops.cap import CAP_NS, build_alerts, cancel_alert, write_alert, write_cap, xml_text

__all__ = ["CAP_NS", "build_alerts", "cancel_alert", "write_alert", "write_cap", "xml_text"]
