"""Auto Scaling groups as the aws actions read them (shared by aws.asg_status and aws.asg_set_capacity)."""

from __future__ import annotations

from typing import Any

from activities.aws.api import call
from activities.aws.faults import NOT_FOUND
from activities.errors import ActionError

IN_SERVICE = "InService"


def summary(group: dict[str, Any]) -> dict[str, Any]:
    instances = [{"instance_id": i.get("InstanceId"), "lifecycle_state": i.get("LifecycleState"),
                  "health": i.get("HealthStatus"), "availability_zone": i.get("AvailabilityZone")}
                 for i in group.get("Instances", [])]
    in_service = sum(1 for i in instances if i["lifecycle_state"] == IN_SERVICE and i["health"] == "Healthy")
    return {
        "group": group["AutoScalingGroupName"],
        "min": group["MinSize"], "desired": group["DesiredCapacity"], "max": group["MaxSize"],
        "in_service": in_service,
        "at_desired": in_service == group["DesiredCapacity"],
        "instances": instances,
        "suspended_processes": sorted(p.get("ProcessName", "") for p in group.get("SuspendedProcesses", [])),
    }


async def read_group(p: dict[str, Any]) -> dict[str, Any]:
    """The group's description; AWS answers an unknown name with an empty list, which is a not-found here."""
    found = await call(p, "autoscaling", "describe_auto_scaling_groups", f"Auto Scaling group {p['group']}",
                       AutoScalingGroupNames=[p["group"]])
    groups = found.get("AutoScalingGroups", [])
    if not groups:
        raise ActionError(f"Auto Scaling group {p['group']} not found in {p['region']}", type=NOT_FOUND,
                          non_retryable=True)
    return groups[0]
