"""`aws.ec2_stop_start`: stop an instance, wait until stopped, start it, wait until running (and checks pass).

A stop and start moves an EBS-backed instance to other hardware, which a reboot does not; its public IPv4
address changes unless it has an Elastic IP, and instance-store data is lost (docs/aws.md).

Why a retry is safe: StopInstances on a stopped instance and StartInstances on a running one change nothing, and
the phase reached ("stopped") is carried in heartbeat details, so a retry after the stop starts the instance
instead of stopping it again. A running instance launched after the step began was started by this step (its
LaunchTime says so), so a retry whose heartbeat record was lost does not stop it again either.
"""

from __future__ import annotations

from typing import Any

from activities.aws.api import Progress, aws_action, call, ec2_dry_run, wait_for
from activities.aws.instances import instance_status
from activities.aws.schemas import EC2_INSTANCE_LEASE, INSTANCE_ID, WAITING, aws_params
from activities.base import ActionInput

STOPPED = "stopped"
STARTED = "started"


async def _launched_since(p: dict[str, Any], progress: Progress) -> bool:
    found = await call(p, "ec2", "describe_instances", f"instance {p['instance_id']}", InstanceIds=[p["instance_id"]])
    instance = found["Reservations"][0]["Instances"][0]
    return instance["State"]["Name"] == "running" and instance["LaunchTime"].timestamp() > progress.state["started"]


@aws_action(
    "aws.ec2_stop_start",
    iam_actions=("ec2:StopInstances", "ec2:StartInstances", "ec2:DescribeInstances", "ec2:DescribeInstanceStatus"),
    params=aws_params({"instance_id": INSTANCE_ID,
                       "wait_checks": {"type": "boolean", "default": True,
                                       "description": "after running, also wait until the status checks pass"},
                       **WAITING, "timeout": {**WAITING["timeout"], "default": "15m"}}, ["instance_id"]),
    mutates=True, idempotent=True, lease=EC2_INSTANCE_LEASE, heartbeat_timeout=120,
    description="Stop an EC2 instance and start it again (new host), waiting for each and for the status checks.",
)
async def ec2_stop_start(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    subject, ids = f"instance {p['instance_id']}", [p["instance_id"]]
    if inp.dry_run:
        return {"instance_id": p["instance_id"],
                **await ec2_dry_run(p, "stop_instances", subject, f"would stop and start {subject}", InstanceIds=ids)}
    progress = Progress(p)
    resumed = progress.resumed
    if not progress.reached(STOPPED) and not (resumed and await _launched_since(p, progress)):
        await call(p, "ec2", "stop_instances", subject, InstanceIds=ids)
        await wait_for(p, "ec2", "instance_stopped", subject, progress, InstanceIds=ids)
        progress.mark(STOPPED)
    await call(p, "ec2", "start_instances", subject, InstanceIds=ids)
    await wait_for(p, "ec2", "instance_running", subject, progress, InstanceIds=ids)
    progress.mark(STARTED)
    if p["wait_checks"]:
        await wait_for(p, "ec2", "instance_status_ok", subject, progress, InstanceIds=ids, IncludeAllInstances=True)
    return {"instance_id": p["instance_id"], "stopped_and_started": True, "resumed": resumed,
            "waited_s": round(progress.elapsed(), 1), "status": await instance_status(p)}
