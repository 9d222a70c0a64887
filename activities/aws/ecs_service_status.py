"""`aws.ecs_service_status`: an ECS service's desired and running counts and its deployments."""

from __future__ import annotations

from typing import Any

from activities.aws.api import aws_action
from activities.aws.containers import describe_service, service_summary
from activities.aws.schemas import ECS_NAME, aws_params
from activities.base import ActionInput


@aws_action(
    "aws.ecs_service_status",
    iam_actions=("ecs:DescribeServices",),
    params=aws_params({"cluster": ECS_NAME, "service": ECS_NAME}, ["cluster", "service"]),
    description="An ECS service's desired, running and pending counts and its deployments (steady: one, complete).",
)
async def ecs_service_status(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    return service_summary(await describe_service(p, f"ECS service {p['service']} in cluster {p['cluster']}"))
