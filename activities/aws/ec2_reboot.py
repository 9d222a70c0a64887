"""`aws.ec2_reboot`: reboot an instance and wait until its status checks pass.

Why a retry is safe: the reboot is recorded in the step's heartbeat details once AWS accepted it, and a retry
that finds the record only waits. A worker that dies between AWS accepting and the heartbeat leaving makes the
retry reboot once more: the outcome the step asked for (the instance rebooted since the step began, checks
passing) is the same, at the cost of one more short outage.
"""

from __future__ import annotations

from typing import Any

from activities.aws.api import Progress, aws_action, call, ec2_dry_run, wait_for
from activities.aws.instances import instance_status
from activities.aws.schemas import EC2_INSTANCE_LEASE, INSTANCE_ID, WAITING, aws_params
from activities.base import ActionInput

REBOOTED = "rebooted"


@aws_action(
    "aws.ec2_reboot",
    iam_actions=("ec2:RebootInstances", "ec2:DescribeInstanceStatus"),
    params=aws_params({"instance_id": INSTANCE_ID,
                       "wait": {"type": "boolean", "default": True,
                                "description": "wait until the status checks pass (instance_status_ok)"},
                       **WAITING}, ["instance_id"]),
    mutates=True, idempotent=True, lease=EC2_INSTANCE_LEASE,
    description="Reboot an EC2 instance (EC2's DryRun on a dry run), then wait until its status checks pass.",
)
async def ec2_reboot(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    subject, ids = f"instance {p['instance_id']}", [p["instance_id"]]
    if inp.dry_run:
        return {"instance_id": p["instance_id"],
                **await ec2_dry_run(p, "reboot_instances", subject, f"would reboot {subject}", InstanceIds=ids)}
    progress = Progress(p)
    resumed = progress.reached(REBOOTED)
    if not resumed:
        await call(p, "ec2", "reboot_instances", subject, InstanceIds=ids)
        progress.mark(REBOOTED)
    if p["wait"]:
        await wait_for(p, "ec2", "instance_status_ok", subject, progress, InstanceIds=ids, IncludeAllInstances=True)
    return {"instance_id": p["instance_id"], "rebooted": True, "resumed": resumed,
            "waited_s": round(progress.elapsed(), 1), "status": await instance_status(p)}
