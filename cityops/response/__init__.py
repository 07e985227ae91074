"""Response plans: the jurisdiction's HQ groups, special plans, measures and timing rules."""

from cityops.response.plan import (
    Group,
    Measure,
    Plan,
    SpecialPlan,
    load_plan,
    measures_for,
    posture_for,
)
from cityops.response.planning import TASK_COLUMNS, Response, plan_response

__all__ = [
    "TASK_COLUMNS",
    "Group",
    "Measure",
    "Plan",
    "Response",
    "SpecialPlan",
    "load_plan",
    "measures_for",
    "plan_response",
    "posture_for",
]
