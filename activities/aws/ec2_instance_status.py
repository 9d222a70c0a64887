"""`aws.ec2_instance_status`: an instance's state and its status checks (instance, system, attached EBS)."""

from __future__ import annotations

from typing import Any

from activities.aws.api import aws_action
from activities.aws.instances import instance_status
from activities.aws.schemas import INSTANCE_ID, aws_params
from activities.base import ActionInput


@aws_action(
    "aws.ec2_instance_status",
    iam_actions=("ec2:DescribeInstanceStatus",),
    params=aws_params({"instance_id": INSTANCE_ID}, ["instance_id"]),
    description="An EC2 instance's state and status checks (instance, system, EBS), and its scheduled events.",
)
async def ec2_instance_status(inp: ActionInput) -> dict[str, Any]:
    return await instance_status(inp.params)
