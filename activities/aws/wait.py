"""`aws.wait`: wait with one of boto3's waiters by service and name (as SSM Automation's
aws:waitForAwsResourceProperty), heartbeating, with one deadline across retries. Waiters only read."""

from __future__ import annotations

import asyncio
from typing import Any

from activities.aws.api import Progress, aws_action, client, wait_for
from activities.aws.generic import ARGS, SERVICE
from activities.aws.schemas import WAITING, aws_params
from activities.base import ActionInput
from activities.errors import ActionError


@aws_action(
    "aws.wait",
    iam_actions=(),
    params=aws_params({"service": SERVICE,
                       "waiter": {"type": "string", "pattern": "^[a-z][a-z0-9_]{2,80}$",
                                  "description": "boto3 waiter name, e.g. instance_running, db_instance_available"},
                       "args": ARGS, **WAITING}, ["service", "waiter"]),
    description="Wait until a boto3 waiter (e.g. ec2 instance_running) is satisfied, within a timeout.",
)
async def aws_wait(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    names = (await asyncio.to_thread(client, p, p["service"])).waiter_names
    if p["waiter"] not in names:
        raise ActionError(f"{p['service']} has no waiter {p['waiter']} (it has: {', '.join(names) or 'none'})",
                          type="InvalidParams", non_retryable=True)
    progress = Progress(p)
    await wait_for(p, p["service"], p["waiter"], f"{p['service']} {p['waiter']}", progress, **p["args"])
    return {"ok": True, "waiter": p["waiter"], "waited_s": round(progress.elapsed(), 1)}
