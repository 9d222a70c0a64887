"""ECS services as the aws actions read them (shared by aws.ecs_service_status and aws.ecs_force_deploy)."""

from __future__ import annotations

from typing import Any

from activities.aws.api import call
from activities.aws.faults import NOT_FOUND
from activities.errors import ActionError


def service_summary(service: dict[str, Any]) -> dict[str, Any]:
    """`steady` as boto3's services_stable waiter says it: one deployment, running count = desired count."""
    deployments = service.get("deployments", [])
    return {
        "service": service["serviceName"], "status": service.get("status"),
        "desired": service.get("desiredCount"), "running": service.get("runningCount"),
        "pending": service.get("pendingCount"),
        "deployments": [{"id": d.get("id"), "status": d.get("status"), "rollout_state": d.get("rolloutState"),
                         "running": d.get("runningCount"), "desired": d.get("desiredCount")}
                        for d in deployments],
        "steady": len(deployments) == 1 and service.get("runningCount") == service.get("desiredCount"),
    }


async def describe_service(p: dict[str, Any], subject: str) -> dict[str, Any]:
    found = await call(p, "ecs", "describe_services", subject, cluster=p["cluster"], services=[p["service"]])
    if not found.get("services"):  # ECS answers an unknown service with a failure entry, not an error
        reasons = ", ".join(f.get("reason", "") for f in found.get("failures", []))
        raise ActionError(f"{subject} not found ({reasons or 'no such service'})", type=NOT_FOUND,
                          non_retryable=True)
    return found["services"][0]
