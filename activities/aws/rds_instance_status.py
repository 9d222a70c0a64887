"""`aws.rds_instance_status`: an RDS DB instance's status (available, rebooting, ...), engine and Multi-AZ."""

from __future__ import annotations

from typing import Any

from activities.aws.api import aws_action
from activities.aws.databases import db_summary, describe_db
from activities.aws.schemas import DB_INSTANCE, aws_params
from activities.base import ActionInput


@aws_action(
    "aws.rds_instance_status",
    iam_actions=("rds:DescribeDBInstances",),
    params=aws_params({"db_instance": DB_INSTANCE}, ["db_instance"]),
    description="An RDS DB instance's status (available, rebooting, ...), engine and whether it is Multi-AZ.",
)
async def rds_instance_status(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    return db_summary(await describe_db(p, f"DB instance {p['db_instance']}"))
