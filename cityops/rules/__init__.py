"""Warning rules: tables as data, the evaluation engine, windows and Beaufort."""

from cityops.rules.engine import HazardResult, LevelResult, evaluate
from cityops.rules.table import (
    Condition,
    HazardRules,
    LevelRule,
    RuleTable,
    beaufort_lower_bound,
    level_names,
    load_rule_table,
)
from cityops.rules.windows import window_reduce, window_status

__all__ = [
    "Condition",
    "HazardResult",
    "HazardRules",
    "LevelResult",
    "LevelRule",
    "RuleTable",
    "beaufort_lower_bound",
    "evaluate",
    "level_names",
    "load_rule_table",
    "window_reduce",
    "window_status",
]
