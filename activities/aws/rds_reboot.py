"""`aws.rds_reboot`: reboot an RDS DB instance (optionally failing over to its standby) and wait until it is
available again.

Why a retry is safe: the reboot is recorded in the step's heartbeat details, and a retry that finds the record,
or finds the instance still rebooting, only waits. A worker that dies between RDS accepting and the heartbeat
leaving, with the instance already available again, makes the retry reboot once more: the same end state, one
more short outage.
"""

from __future__ import annotations

from typing import Any

from activities.aws.api import Progress, aws_action, call, wait_for
from activities.aws.databases import db_summary, describe_db
from activities.aws.schemas import DB_INSTANCE, RDS_INSTANCE_LEASE, WAITING, aws_params
from activities.base import ActionInput

REBOOTED = "rebooted"
REBOOTING = "rebooting"


@aws_action(
    "aws.rds_reboot",
    iam_actions=("rds:RebootDBInstance", "rds:DescribeDBInstances"),
    params=aws_params({"db_instance": DB_INSTANCE,
                       "force_failover": {"type": "boolean", "default": False,
                                          "description": "Multi-AZ only: reboot by failing over to the standby"},
                       "wait": {"type": "boolean", "default": True, "description": "wait until available"},
                       **WAITING, "timeout": {**WAITING["timeout"], "default": "30m"}}, ["db_instance"]),
    mutates=True, idempotent=True, lease=RDS_INSTANCE_LEASE,
    description="Reboot an RDS DB instance (optionally with failover) and wait until it is available.",
)
async def rds_reboot(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    subject = f"DB instance {p['db_instance']}"
    before = await describe_db(p, subject)
    failover = " with failover" if p["force_failover"] else ""
    if inp.dry_run:  # RDS has no DryRun: the instance was read, nothing is sent
        return {"dry_run": True, "would": f"would reboot {subject}{failover}", "db": db_summary(before)}
    progress = Progress(p)
    resumed = progress.reached(REBOOTED) or (progress.resumed and before.get("DBInstanceStatus") == REBOOTING)
    if not resumed:
        await call(p, "rds", "reboot_db_instance", subject, DBInstanceIdentifier=p["db_instance"],
                   ForceFailover=p["force_failover"])
        progress.mark(REBOOTED)
    if p["wait"]:
        await wait_for(p, "rds", "db_instance_available", subject, progress, DBInstanceIdentifier=p["db_instance"])
    return {"rebooted": True, "failover": p["force_failover"], "resumed": resumed,
            "waited_s": round(progress.elapsed(), 1), "db": db_summary(await describe_db(p, subject))}
