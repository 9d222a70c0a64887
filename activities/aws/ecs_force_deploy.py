"""`aws.ecs_force_deploy`: start a new deployment of an ECS service (same task definition, new tasks) and wait
until the service is steady (boto3's services_stable: one deployment, running count = desired count).

Why a retry is safe: the deployment started is recorded in the step's heartbeat details, and a retry that finds
the record only waits. A worker that dies between ECS accepting and the heartbeat leaving makes the retry start
one more deployment, which replaces the first one's tasks again: the same end state, one more task turnover.
"""

from __future__ import annotations

from typing import Any

from activities.aws.api import Progress, aws_action, call, wait_for
from activities.aws.containers import describe_service, service_summary
from activities.aws.schemas import ECS_NAME, ECS_SERVICE_LEASE, WAITING, aws_params
from activities.base import ActionInput

DEPLOYED = "deployed"


@aws_action(
    "aws.ecs_force_deploy",
    iam_actions=("ecs:UpdateService", "ecs:DescribeServices"),
    params=aws_params({"cluster": ECS_NAME, "service": ECS_NAME,
                       "wait": {"type": "boolean", "default": True, "description": "wait until the service is steady"},
                       **WAITING, "timeout": {**WAITING["timeout"], "default": "20m"}}, ["cluster", "service"]),
    mutates=True, idempotent=True, lease=ECS_SERVICE_LEASE,
    description="Force a new deployment of an ECS service and wait until it is steady (services_stable).",
)
async def ecs_force_deploy(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    subject = f"ECS service {p['service']} in cluster {p['cluster']}"
    before = await describe_service(p, subject)
    if inp.dry_run:  # ECS has no DryRun: the service was read, nothing is sent
        return {"dry_run": True, "would": f"would force a new deployment of {subject}",
                "service": service_summary(before)}
    progress = Progress(p)
    resumed = progress.reached(DEPLOYED)
    if not resumed:
        updated = await call(p, "ecs", "update_service", subject, cluster=p["cluster"], service=p["service"],
                             forceNewDeployment=True)
        primary = next((d for d in updated["service"].get("deployments", []) if d.get("status") == "PRIMARY"), {})
        progress.mark(DEPLOYED, deployment=primary.get("id"))
    if p["wait"]:
        await wait_for(p, "ecs", "services_stable", subject, progress, cluster=p["cluster"], services=[p["service"]])
    return {"deployment": progress.state.get("deployment"), "resumed": resumed,
            "waited_s": round(progress.elapsed(), 1), "service": service_summary(await describe_service(p, subject))}
