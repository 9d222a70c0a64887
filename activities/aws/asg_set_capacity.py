"""`aws.asg_set_capacity`: set an Auto Scaling group's desired capacity within its min/max and the runbook's bound.

Why a retry is safe: the desired capacity is an absolute number, so setting it again sets the same number.
"""

from __future__ import annotations

import asyncio
from typing import Any

from activities.aws.api import Progress, aws_action, call
from activities.aws.groups import read_group, summary
from activities.aws.schemas import ASG_LEASE, ASG_NAME, WAITING, aws_params
from activities.base import ActionInput
from activities.errors import ActionError

HARD_MAX_CAPACITY = 1000
REFUSED_BY_BOUND = "RefusedByBound"


def bounds_refusal(group: dict[str, Any], desired: int, bound: int) -> str | None:
    """Why `desired` may not be set: outside the group's [MinSize, MaxSize], or above the runbook's bound."""
    low, high = group["MinSize"], min(group["MaxSize"], bound, HARD_MAX_CAPACITY)
    if low <= desired <= high:
        return None
    return (f"setting Auto Scaling group {group['AutoScalingGroupName']} to {desired} is outside [{low}, {high}] "
            f"(group min {group['MinSize']}, group max {group['MaxSize']}, runbook max {bound})")


@aws_action(
    "aws.asg_set_capacity",
    iam_actions=("autoscaling:SetDesiredCapacity", "autoscaling:DescribeAutoScalingGroups"),
    params=aws_params({
        "group": ASG_NAME,
        "desired": {"type": "integer", "minimum": 0},
        "max": {"type": "integer", "minimum": 0, "maximum": HARD_MAX_CAPACITY,
                "description": "the runbook's bound: never set more than this, whatever the group's MaxSize"},
        "honor_cooldown": {"type": "boolean", "default": False},
        "wait": {"type": "boolean", "default": True, "description": "wait until that many instances are in service"},
        **WAITING,
    }, ["group", "desired", "max"]),
    mutates=True, idempotent=True, lease=ASG_LEASE,
    description=f"Set an Auto Scaling group's desired capacity within its min/max and `max` (never above "
                f"{HARD_MAX_CAPACITY}), and wait until that many instances are in service.",
)
async def asg_set_capacity(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    subject = f"Auto Scaling group {p['group']}"
    group = await read_group(p)
    refused = bounds_refusal(group, p["desired"], p["max"])
    if refused:
        raise ActionError(refused, type=REFUSED_BY_BOUND, non_retryable=True)
    before = group["DesiredCapacity"]
    if inp.dry_run:  # Auto Scaling has no DryRun: the group was read and the bounds checked, nothing is sent
        return {"group": p["group"], "before": before, "after": p["desired"], "dry_run": True,
                "would": f"would set the desired capacity of {subject} from {before} to {p['desired']}"}
    if before != p["desired"]:
        await call(p, "autoscaling", "set_desired_capacity", subject, AutoScalingGroupName=p["group"],
                   DesiredCapacity=p["desired"], HonorCooldown=p["honor_cooldown"])
    progress = Progress(p)
    now = summary(await read_group(p))
    while p["wait"] and not now["at_desired"]:
        if progress.expired():
            raise ActionError(f"{subject}: {now['in_service']} of {p['desired']} instances in service after "
                              f"{progress.timeout:.0f}s", now, type="VerificationFailed", non_retryable=True)
        progress.mark("waiting", in_service=now["in_service"])
        await asyncio.sleep(progress.interval)
        now = summary(await read_group(p))
    return {"group": p["group"], "before": before, "after": p["desired"], "changed": before != p["desired"],
            "status": now}

