"""`aws.asg_status`: an Auto Scaling group's capacity (min, desired, max) and its instances' health."""

from __future__ import annotations

from typing import Any

from activities.aws.api import aws_action
from activities.aws.groups import read_group, summary
from activities.aws.schemas import ASG_NAME, aws_params
from activities.base import ActionInput


@aws_action(
    "aws.asg_status",
    iam_actions=("autoscaling:DescribeAutoScalingGroups",),
    params=aws_params({"group": ASG_NAME}, ["group"]),
    description="An Auto Scaling group's min/desired/max capacity and how many of its instances are in service.",
)
async def asg_status(inp: ActionInput) -> dict[str, Any]:
    return summary(await read_group(inp.params))
