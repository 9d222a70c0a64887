"""The generic aws actions' shared parts: an operation by service and name, its JSON answer, and what is a read."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from activities.aws.api import client
from activities.errors import ActionError

READ_PREFIXES = ("Describe", "Get", "List")
# An answer lands in workflow history; a bigger one is a query to narrow (filters, MaxResults).
MAX_ANSWER_CHARS = 200_000

SERVICE = {"type": "string", "pattern": "^[a-z0-9][-a-z0-9]{1,40}$", "description": "boto3 client name, e.g. ec2"}
OPERATION = {"type": "string", "pattern": "^[A-Z][A-Za-z0-9]{2,80}$",
             "description": "API operation as AWS names it, e.g. DescribeInstances"}
ARGS = {"type": "object", "default": {}, "description": "the operation's parameters, as AWS names them"}


def is_read(operation: str) -> bool:
    return operation.startswith(READ_PREFIXES)


async def method_of(params: dict[str, Any]) -> str:
    """The boto3 method for `params["operation"]` on `params["service"]`, checked to exist."""
    from botocore import xform_name
    from botocore.exceptions import UnknownServiceError

    try:
        api = await asyncio.to_thread(client, params, params["service"])
    except UnknownServiceError:
        raise ActionError(f"unknown AWS service {params['service']!r} (a boto3 client name such as ec2, rds)",
                          type="InvalidParams", non_retryable=True) from None
    if params["operation"] not in api.meta.service_model.operation_names:
        raise ActionError(f"{params['service']} has no operation {params['operation']}", type="InvalidParams",
                          non_retryable=True)
    return xform_name(params["operation"])


async def supports_dry_run(params: dict[str, Any]) -> bool:
    api = await asyncio.to_thread(client, params, params["service"])
    return "DryRun" in api.meta.service_model.operation_model(params["operation"]).input_shape.members


def as_json(answer: dict[str, Any]) -> dict[str, Any]:
    """An API answer as plain JSON (times as ISO 8601), without the transport's metadata."""
    body = {key: value for key, value in answer.items() if key != "ResponseMetadata"}
    text = json.dumps(body, default=lambda value: value.isoformat() if hasattr(value, "isoformat") else str(value))
    if len(text) > MAX_ANSWER_CHARS:
        raise ActionError(f"the answer is {len(text)} characters, more than {MAX_ANSWER_CHARS}: narrow the query "
                          "(filters, MaxResults)", type="OutputTooLarge", non_retryable=True)
    return json.loads(text)
