"""HTTP actions: `http.check` observes (a failing service is data, not an error); `http.request` changes things."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from activities.base import ActionInput, action
from activities.errors import ActionError
from activities.secrets import shown_url

if TYPE_CHECKING:
    from aiohttp import ClientResponse

# A health endpoint that streams gigabytes must not exhaust the worker: read at most this much of any body.
MAX_BODY_BYTES = 1 << 20
EXCERPT_CHARS = 2000

_STATUS = {"type": "integer", "minimum": 100, "maximum": 599}
_COMMON: dict[str, Any] = {
    "url": {"type": "string", "pattern": "^https?://", "description": "http:// or https:// URL"},
    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
    "json": {"description": "JSON body to send"},
    "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 120, "default": 10.0,
                "description": "seconds for the whole exchange, body included"},
}


def _expected_status(default: list[int]) -> dict[str, Any]:
    return {"oneOf": [_STATUS, {"type": "array", "items": _STATUS, "minItems": 1}], "default": default,
            "description": "status code or codes that count as success"}


@dataclass(frozen=True)
class _Answer:
    status: int
    body: str
    elapsed_ms: float


def _expected(params: dict[str, Any]) -> list[int]:
    value = params["expected_status"]
    return [value] if isinstance(value, int) else list(value)


class _NoAnswer(Exception):
    """The request got no HTTP answer at all (refused, reset, timed out); the message says which, in a sentence."""


async def _read_bounded(response: ClientResponse) -> bytes:
    # StreamReader.read(n) returns whatever is buffered (one network chunk), not n bytes: loop until EOF or
    # the bound, so `body_contains` sees the whole (bounded) body and not just the first chunk.
    chunks: list[bytes] = []
    size = 0
    while size < MAX_BODY_BYTES:
        chunk = await response.content.read(MAX_BODY_BYTES - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _decode(response: ClientResponse, body: bytes) -> str:
    try:
        return body.decode(response.charset or "utf-8", errors="replace")
    except LookupError:  # a server announcing a charset Python does not know
        return body.decode("utf-8", errors="replace")


async def _send(params: dict[str, Any], method: str) -> _Answer:
    import aiohttp  # here, not at module import: building the action catalog must not load the HTTP client

    started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=float(params["timeout"]))
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.request(method, params["url"], headers=params.get("headers"),
                                       json=params.get("json")) as response:
                body = _decode(response, await _read_bounded(response))
                return _Answer(response.status, body, round((time.monotonic() - started) * 1000, 1))
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise _NoAnswer(_no_answer(method, params, exc)) from None


def _no_answer(method: str, params: dict[str, Any], exc: BaseException) -> str:
    """One sentence for a request that got no HTTP answer at all."""
    target = f"{method} {shown_url(params['url'], keep_path=True)}"
    if isinstance(exc, TimeoutError):  # aiohttp's ServerTimeoutError is a TimeoutError too
        return f"{target}: no answer within {float(params['timeout']):g}s (timeout)"
    detail = str(exc) or type(exc).__name__
    return f"{target}: no answer ({type(exc).__name__}: {detail})"


@action(
    "http.check",
    params={
        "type": "object",
        "properties": {
            **_COMMON,
            "expected_status": _expected_status([200]),
            "method": {"enum": ["GET", "HEAD", "POST"], "default": "GET"},
            "body_contains": {"type": "string", "description": "substring the body must contain"},
        },
        "required": ["url"],
        "additionalProperties": False,
    },
    description="Probe a URL; returns ok/status/body excerpt. Down or unexpected answers are ok=false, not errors.",
)
async def check(inp: ActionInput) -> dict[str, Any]:
    params = inp.params
    method = params["method"]
    expected = _expected(params)
    started = time.monotonic()
    try:
        answer = await _send(params, method)
    except _NoAnswer as exc:
        # "The service is down" is what a check is for: report it so `assert`/`until` can decide.
        return {"ok": False, "status": 0, "elapsed_ms": round((time.monotonic() - started) * 1000, 1),
                "body_excerpt": "", "reason": str(exc)}
    problems = []
    if answer.status not in expected:
        problems.append(f"status {answer.status}, expected {' or '.join(map(str, expected))}")
    needle = params.get("body_contains")
    if needle and needle not in answer.body:
        problems.append(f"body does not contain {needle!r}")
    return {"ok": not problems, "status": answer.status, "elapsed_ms": answer.elapsed_ms,
            "body_excerpt": answer.body[:EXCERPT_CHARS], "reason": "; ".join(problems) or None}


@action(
    "http.request",
    params={
        "type": "object",
        "properties": {**_COMMON, "expected_status": _expected_status([200, 201, 202, 204]),
                       "method": {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE"], "default": "POST"}},
        "required": ["url"],
        "additionalProperties": False,
    },
    mutates=True,
    description="Send a request that changes something (restart hook, feature flag); fails on unexpected status.",
)
async def request(inp: ActionInput) -> dict[str, Any]:
    params = inp.params
    method = params["method"]
    expected = _expected(params)
    if inp.dry_run:
        # Headers are left out on purpose: they typically carry credentials, and this lands in the history.
        return {"dry_run": True, "would_send": {"method": method, "url": params["url"], "json": params.get("json")}}
    try:
        answer = await _send(params, method)
    except _NoAnswer as exc:
        # Retryable: the runbook's retry policy decides whether resending this change is safe.
        raise ActionError(str(exc), type="HTTPUnreachable") from None
    if answer.status not in expected:
        # Server errors and throttling may pass; other client errors will not change on retry.
        retryable = answer.status >= 500 or answer.status == 429
        raise ActionError(f"{method} {shown_url(params['url'], keep_path=True)} answered {answer.status}: "
                          f"{answer.body[:300]}",
                          {"status": answer.status}, type="HTTPStatus", non_retryable=not retryable)
    return {"ok": True, "status": answer.status, "elapsed_ms": answer.elapsed_ms,
            "body_excerpt": answer.body[:EXCERPT_CHARS]}
