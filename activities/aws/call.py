"""`aws.call`: one read-only AWS API operation (Describe*, Get*, List*) by service and name, for what has no named
action (as SSM Automation's aws:executeAwsApi). Other operations are `aws.change`'s, a mutating action."""

from __future__ import annotations

from typing import Any

from activities.aws.api import aws_action, call
from activities.aws.generic import ARGS, OPERATION, SERVICE, as_json, is_read, method_of
from activities.aws.schemas import aws_params
from activities.base import ActionInput
from activities.errors import ActionError
from incidentctl.dsl.allowed_changes import REFUSED


@aws_action(
    "aws.call",
    iam_actions=(),
    params=aws_params({"service": SERVICE, "operation": OPERATION, "args": ARGS}, ["service", "operation"]),
    description="Call one read-only AWS API operation (Describe*, Get*, List*) and return its answer.",
)
async def aws_call(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    if not is_read(p["operation"]):
        raise ActionError(f"aws.call only reads; {p['operation']} changes things: use aws.change with the operation "
                          "on the runbook's changes.aws.operations", type=REFUSED, non_retryable=True)
    method = await method_of(p)
    return as_json(await call(p, p["service"], method, f"{p['service']} {p['operation']}", **p["args"]))
