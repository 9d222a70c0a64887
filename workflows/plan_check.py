"""The worker checks an incident's plan before any step runs (incidentctl/plan_signing.py says how): the
workflow hashes the plan it received and asks an activity whether its signature holds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

from incidentctl.dsl.plan import plan_hash

VERIFY_ACTIVITY = "incident.verify_plan"


@dataclass
class PlanCheck:
    plan_hash: str  # computed by the workflow from the plan it received, never taken from the plan's own field
    signature: str


async def check_plan(plan: dict[str, Any], signature: str) -> dict[str, Any]:
    """{"ok", "checked", "reason"}: the verdict, recorded in history once. A local activity: it runs in the
    worker that runs the incident, without a round trip through the server's task queue."""
    return await workflow.execute_local_activity(
        VERIFY_ACTIVITY, PlanCheck(plan_hash=plan_hash(plan), signature=signature), result_type=dict,
        start_to_close_timeout=timedelta(seconds=30), retry_policy=RetryPolicy(maximum_attempts=5))
