"""RDS DB instances as the aws actions read them (shared by aws.rds_instance_status and aws.rds_reboot)."""

from __future__ import annotations

from typing import Any

from activities.aws.api import call


def db_summary(db: dict[str, Any]) -> dict[str, Any]:
    return {"db_instance": db["DBInstanceIdentifier"], "status": db.get("DBInstanceStatus"),
            "engine": db.get("Engine"), "multi_az": db.get("MultiAZ", False),
            "availability_zone": db.get("AvailabilityZone")}


async def describe_db(p: dict[str, Any], subject: str) -> dict[str, Any]:
    found = await call(p, "rds", "describe_db_instances", subject, DBInstanceIdentifier=p["db_instance"])
    return found["DBInstances"][0]
