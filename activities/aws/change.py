"""`aws.change`: one AWS API operation that changes things, by service and name, for what has no named action (as
SSM Automation's aws:executeAwsApi).

A mutating action (approval, lease, dry run, `changes.aws`): it names the `resource` it changes, and the operation
must be on the runbook's allow-list, `changes.aws.operations` ("ec2:ModifyInstanceAttribute"), which the worker
checks here before calling. Not idempotent (the operation's own semantics decide), so it runs once.
"""

from __future__ import annotations

from typing import Any

from activities.aws.api import aws_action, call
from activities.aws.generic import ARGS, OPERATION, SERVICE, as_json, method_of, supports_dry_run
from activities.aws.schemas import GENERIC_LEASE, aws_params
from activities.base import ActionInput
from activities.errors import ActionError
from incidentctl.dsl.allowed_changes import REFUSED


@aws_action(
    "aws.change",
    iam_actions=(),
    params=aws_params({"service": SERVICE, "operation": OPERATION, "args": ARGS,
                       "resource": {"type": "string", "minLength": 1,
                                    "description": "the id or name of what the call changes (its lease, and what "
                                                   "changes.aws.resources globs match as <service>/<resource>)"}},
                      ["service", "operation", "resource"]),
    mutates=True, lease=GENERIC_LEASE,
    description="Call one AWS API operation that changes things; it must be on the runbook's changes.aws.operations.",
)
async def aws_change(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    wanted = f"{p['service']}:{p['operation']}"
    allowed = inp.changes.aws.operations if inp.changes and inp.changes.aws else []
    if wanted not in allowed:
        raise ActionError(f"refused to call {wanted}: it is not on the runbook's changes.aws.operations "
                          f"({', '.join(allowed) or 'none'})", type=REFUSED, non_retryable=True)
    method = await method_of(p)
    subject = f"{p['service']}/{p['resource']}"
    if inp.dry_run:
        if not await supports_dry_run(p):
            return {"dry_run": True, "would": f"would call {wanted} on {subject} with {p['args']}"}
        try:
            await call(p, p["service"], method, subject, **p["args"], DryRun=True)
        except ActionError as exc:
            if "DryRunOperation" not in exc.message:
                raise
        return {"dry_run": True, "would": f"would call {wanted} on {subject}", "checked_by_aws": True}
    return as_json(await call(p, p["service"], method, subject, **p["args"]))
