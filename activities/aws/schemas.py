"""The parameter vocabulary of the aws actions: where to call (region, role), durations, and the schema shape."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

CONNECTION: dict[str, Any] = {
    # Required, not read from the worker's environment: the workflow checks a step's region against the runbook's
    # `changes.aws.regions` before it runs, and only the params are known there.
    "region": {"type": "string", "pattern": "^[a-z]{2}(-[a-z]+)+-[0-9]+$", "description": "AWS region, e.g. eu-west-1"},
    "role_arn": {"type": ["string", "null"], "pattern": "^arn:aws[-a-z]*:iam::[0-9]{12}:role/.+$",
                 "description": "IAM role to assume through STS for this step (default: the worker's own "
                                "credentials from the standard chain)"},
}
DURATION = {"type": ["string", "number"], "description": "e.g. 30s, 5m"}
INSTANCE_ID = {"type": "string", "pattern": "^i-[0-9a-f]{8,17}$"}
ASG_NAME = {"type": "string", "minLength": 1, "maxLength": 255}
ECS_NAME = {"type": "string", "pattern": "^[A-Za-z0-9][-A-Za-z0-9_]{0,254}$"}
DB_INSTANCE = {"type": "string", "pattern": "^[A-Za-z][-A-Za-z0-9]{0,62}$"}
# The waits of mutating actions: how long in all (across retries) and how often to look.
WAITING: dict[str, Any] = {"timeout": {**DURATION, "default": "10m"}, "interval": {**DURATION, "default": "5s"}}
MAX_WAIT_S = 3600.0

# The objects mutating actions change: aws/<region>/<service>/<id or name> (incidentctl.dsl.allowed_changes).
EC2_INSTANCE_LEASE = "aws/{region}/ec2/{instance_id}"
ASG_LEASE = "aws/{region}/autoscaling/{group}"
ECS_SERVICE_LEASE = "aws/{region}/ecs/{cluster}/{service}"
RDS_INSTANCE_LEASE = "aws/{region}/rds/{db_instance}"
GENERIC_LEASE = "aws/{region}/{service}/{resource}"


def aws_params(properties: dict[str, Any], required: Iterable[str] = (), **keywords: Any) -> dict[str, Any]:
    """An aws action's params schema: its own properties, then region and role, and nothing else."""
    return {"type": "object", "properties": {**properties, **CONNECTION}, "required": [*required, "region"],
            "additionalProperties": False, **keywords}
