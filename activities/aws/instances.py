"""EC2 instances as the aws actions read them: state and status checks (shared by the EC2 actions)."""

from __future__ import annotations

from typing import Any

from activities.aws.api import call


def status_of(entry: dict[str, Any]) -> dict[str, Any]:
    """One DescribeInstanceStatus entry as a step's output: `checks_ok` only when the instance runs and both
    required checks say ok (EBS counts when reported)."""
    checks = {name: (entry.get(key) or {}).get("Status", "not-applicable")
              for name, key in (("instance", "InstanceStatus"), ("system", "SystemStatus"),
                                ("ebs", "AttachedEbsStatus"))}
    failing = {name: status for name, status in checks.items() if status not in ("ok", "not-applicable")}
    state = entry.get("InstanceState", {}).get("Name", "unknown")
    return {
        "instance_id": entry.get("InstanceId"),
        "state": state,
        "availability_zone": entry.get("AvailabilityZone"),
        "checks": checks,
        "failing": failing,
        "checks_ok": state == "running" and not failing and checks["instance"] == "ok" and checks["system"] == "ok",
        "scheduled_events": [{"code": e.get("Code"), "description": e.get("Description")}
                             for e in entry.get("Events", [])],
    }


async def instance_status(p: dict[str, Any]) -> dict[str, Any]:
    found = await call(p, "ec2", "describe_instance_status", f"instance {p['instance_id']}",
                       InstanceIds=[p["instance_id"]], IncludeAllInstances=True)
    entries = found.get("InstanceStatuses", [])
    if not entries:  # an unknown id is InvalidInstanceID.NotFound; no entry is an instance already gone
        return {"instance_id": p["instance_id"], "state": "terminated", "availability_zone": None, "checks": {},
                "failing": {}, "checks_ok": False, "scheduled_events": []}
    return status_of(entries[0])
