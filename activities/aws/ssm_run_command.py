"""`aws.ssm_run_command`: run a named SSM document with typed parameters on one instance, and wait for its result.

Never free-form shell: the documents that run whatever commands they are given (AWS-RunShellScript and the like)
are refused, so an alert label cannot become a command line. Write a document of your own whose parameters
are typed and validated (allowedPattern), and name it here.

Runs once (not idempotent): what a document does is its own. The command id is recorded in the step's heartbeat
details, so a retry after a worker crash waits for the command already sent instead of sending another.
"""

from __future__ import annotations

import asyncio
from typing import Any

from activities.aws.api import Progress, aws_action, call
from activities.aws.schemas import EC2_INSTANCE_LEASE, INSTANCE_ID, WAITING, aws_params
from activities.base import ActionInput
from activities.errors import ActionError

# Documents whose parameters are shell or script text.
SHELL_DOCUMENTS = frozenset({"AWS-RunShellScript", "AWS-RunPowerShellScript", "AWS-RunRemoteScript",
                             "AWS-RunSaltState", "AWS-RunAnsiblePlaybook", "AWS-ApplyAnsiblePlaybooks",
                             "AWS-RunDocument"})
DONE = {"Success", "Failed", "Cancelled", "TimedOut"}
MAX_OUTPUT_CHARS = 4000
SENT = "sent"


@aws_action(
    "aws.ssm_run_command",
    iam_actions=("ssm:SendCommand", "ssm:GetCommandInvocation"),
    params=aws_params({
        "instance_id": INSTANCE_ID,
        "document": {"type": "string", "pattern": "^[A-Za-z0-9_.:/-]{3,128}$",
                     "description": "the SSM document's name or ARN (never a shell-runner such as AWS-RunShellScript)"},
        "document_version": {"type": ["string", "null"], "description": "e.g. $DEFAULT, $LATEST, 3"},
        "parameters": {"type": "object", "default": {},
                       "additionalProperties": {"type": "array", "items": {"type": "string"}, "maxItems": 20},
                       "description": "the document's parameters, each a list of strings"},
        "comment": {"type": "string", "maxLength": 100, "default": "incidentctl"},
        **WAITING,
    }, ["instance_id", "document"]),
    mutates=True, lease=EC2_INSTANCE_LEASE,
    description="Run a named SSM document (typed parameters, no free-form shell) on an instance and wait for it.",
)
async def ssm_run_command(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    document = p["document"].rsplit("/", 1)[-1]
    if document in SHELL_DOCUMENTS:
        raise ActionError(f"{document} runs the shell text it is given; name a document with typed parameters "
                          "instead", type="RefusedByBound", non_retryable=True)
    subject = f"SSM document {p['document']} on instance {p['instance_id']}"
    if inp.dry_run:  # SSM has no DryRun
        return {"dry_run": True, "would": f"would run {subject} with {p['parameters']}"}
    progress = Progress(p)
    command_id = progress.state.get("command_id")
    if not command_id:
        extra = {"DocumentVersion": p["document_version"]} if p.get("document_version") else {}
        sent = await call(p, "ssm", "send_command", subject, InstanceIds=[p["instance_id"]],
                          DocumentName=p["document"], Parameters=p["parameters"], Comment=p["comment"], **extra)
        command_id = sent["Command"]["CommandId"]
        progress.mark(SENT, command_id=command_id)
    while True:
        try:
            invocation = await call(p, "ssm", "get_command_invocation", subject, CommandId=command_id,
                                    InstanceId=p["instance_id"])
        except ActionError as exc:
            if "InvocationDoesNotExist" not in exc.message:  # just sent: SSM has not recorded it yet
                raise
            invocation = {"Status": "Pending"}
        status = invocation.get("Status", "Pending")
        if status in DONE:
            break
        if progress.expired():
            raise ActionError(f"{subject}: still {status} after {progress.timeout:.0f}s (command {command_id})",
                              type="VerificationFailed", non_retryable=True)
        progress.mark("waiting", status=status)
        await asyncio.sleep(progress.interval)
    result = {"command_id": command_id, "status": status, "exit_code": invocation.get("ResponseCode"),
              "stdout": (invocation.get("StandardOutputContent") or "")[:MAX_OUTPUT_CHARS],
              "stderr": (invocation.get("StandardErrorContent") or "")[:MAX_OUTPUT_CHARS]}
    if status != "Success":
        raise ActionError(f"{subject} ended {status} (exit code {result['exit_code']})", result,
                          type="CommandFailed", non_retryable=True)
    return result
