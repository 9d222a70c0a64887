"""The worker admits an incident before any step runs (incidentctl/plan_signing.py says how): the workflow
hashes the plan it received and asks whether its signature holds, and which groups the worker's people file
has (never the starter's)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

from incidentctl.dsl.plan import plan_hash

ADMIT_ACTIVITY = "incident.admit"


@dataclass
class PlanCheck:
    plan_hash: str  # computed by the workflow from the plan it received, never taken from the plan's own field
    signature: str


async def admit(plan: dict[str, Any], signature: str) -> dict[str, Any]:
    """What the worker says of a starting incident, recorded in history once: `plan` (the verdict: "ok",
    "checked", "reason"), `groups` (its people file's groups, None when unreadable) and `people_error`.
    One local activity: it runs in the worker that runs the incident, with no task-queue round trip."""
    return await workflow.execute_local_activity(
        ADMIT_ACTIVITY, PlanCheck(plan_hash=plan_hash(plan), signature=signature), result_type=dict,
        start_to_close_timeout=timedelta(seconds=30), retry_policy=RetryPolicy(maximum_attempts=5))


async def check_plan(plan: dict[str, Any], signature: str) -> dict[str, Any]:
    """The plan verdict alone (a runbook a person runs inside an incident)."""
    return (await admit(plan, signature))["plan"]
