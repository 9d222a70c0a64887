"""HTTP actions: `http.check` observes (a failing service is data, not an error); `http.request` changes things."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
from temporalio.exceptions import ApplicationError

from activities.base import ActionInput, action

MAX_BODY_BYTES = 1 << 20
EXCERPT_CHARS = 2000

_COMMON = {
    "url": {"type": "string", "pattern": "^https?://", "description": "http:// or https:// URL"},
    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
    "json": {"description": "JSON body to send"},
    "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 120, "description": "seconds, default 10"},
    "expected_status": {
        "oneOf": [{"type": "integer", "minimum": 100, "maximum": 599},
                  {"type": "array", "items": {"type": "integer", "minimum": 100, "maximum": 599}, "minItems": 1}],
    },
}


def _expected(params: dict[str, Any], default: list[int]) -> list[int]:
    value = params.get("expected_status", default)
    return [value] if isinstance(value, int) else list(value)


async def _send(params: dict[str, Any], method: str) -> tuple[int, str, float]:
    started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=float(params.get("timeout", 10)))
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.request(method, params["url"], headers=params.get("headers"),
                                   json=params.get("json")) as response:
            body = await response.content.read(MAX_BODY_BYTES)
            return response.status, body.decode("utf-8", errors="replace"), (time.monotonic() - started) * 1000


@action(
    "http.check",
    params={
        "type": "object",
        "properties": {
            **_COMMON,
            "method": {"enum": ["GET", "HEAD", "POST"]},
            "body_contains": {"type": "string"},
        },
        "required": ["url"],
        "additionalProperties": False,
    },
    description="Probe a URL; returns ok/status/body excerpt. Down or unexpected answers are ok=false, not errors.",
)
async def check(inp: ActionInput) -> dict[str, Any]:
    params = inp.params
    expected = _expected(params, [200])
    started = time.monotonic()
    try:
        status, body, elapsed = await _send(params, params.get("method", "GET"))
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        reason = f"no answer from {params['url']}: {type(exc).__name__}: {exc}".rstrip(": ")
        return {"ok": False, "status": 0, "elapsed_ms": round((time.monotonic() - started) * 1000, 1),
                "body_excerpt": "", "reason": reason}
    problems = []
    if status not in expected:
        problems.append(f"status {status}, expected {' or '.join(map(str, expected))}")
    if params.get("body_contains") and params["body_contains"] not in body:
        problems.append(f"body does not contain {params['body_contains']!r}")
    return {"ok": not problems, "status": status, "elapsed_ms": round(elapsed, 1),
            "body_excerpt": body[:EXCERPT_CHARS], "reason": "; ".join(problems) or None}


@action(
    "http.request",
    params={
        "type": "object",
        "properties": {**_COMMON, "method": {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE"]}},
        "required": ["url"],
        "additionalProperties": False,
    },
    mutates=True,
    description="Send a request that changes something (restart hook, feature flag); fails on unexpected status.",
)
async def request(inp: ActionInput) -> dict[str, Any]:
    params = inp.params
    method = params.get("method", "POST")
    expected = _expected(params, [200, 201, 202, 204])
    if inp.dry_run:
        return {"dry_run": True, "would_send": {"method": method, "url": params["url"], "json": params.get("json")}}
    try:
        status, body, elapsed = await _send(params, method)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise ApplicationError(f"{method} {params['url']}: no answer: {type(exc).__name__}: {exc}",
                               type="HTTPUnreachable") from None
    if status not in expected:
        # Server errors and throttling may pass; other client errors will not change on retry.
        retryable = status >= 500 or status == 429
        raise ApplicationError(f"{method} {params['url']} answered {status}: {body[:300]}", type="HTTPStatus",
                               non_retryable=not retryable)
    return {"status": status, "elapsed_ms": round(elapsed, 1), "body_excerpt": body[:EXCERPT_CHARS]}
