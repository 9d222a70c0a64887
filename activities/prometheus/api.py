"""Which Prometheus a step asks, and asking it: `GET /api/v1/<endpoint>` with a bounded answer.

The server is the step's `url`, else the worker's `INCIDENTCTL_PROMETHEUS_URL`. A bearer token comes from the
variable a step names in `token_env` (allow-listed, activities/secrets.py), else, only for the worker's own URL,
from `INCIDENTCTL_PROMETHEUS_TOKEN`: the worker's token is never sent to a URL a runbook chose.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from activities.errors import ActionError
from activities.secrets import secret_from_env, shown_url
from incidentctl.dsl.durations import parse_duration

if TYPE_CHECKING:
    from aiohttp import StreamReader

URL_ENV = "INCIDENTCTL_PROMETHEUS_URL"
TOKEN_ENV = "INCIDENTCTL_PROMETHEUS_TOKEN"  # in activities.secrets.WORKER_SECRETS: no runbook can name it
# A query answering with more than this is refused (narrow it): the whole answer is parsed in the worker.
MAX_ANSWER_BYTES = 8 << 20
ERROR_EXCERPT_CHARS = 500

# The params every prometheus action takes.
CONNECTION: dict[str, Any] = {
    "url": {"type": ["string", "null"], "pattern": "^https?://",
            "description": f"Prometheus base URL, e.g. http://prometheus:9090 (default: ${URL_ENV})"},
    "token_env": {"type": "string", "description": "variable holding a bearer token for `url` (allow-listed by "
                                                   "INCIDENTCTL_SECRET_ENV_ALLOW)"},
    "api_timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 120, "default": 15.0,
                    "description": "seconds per request to Prometheus"},
}
QUERY = {"type": "string", "minLength": 1, "maxLength": 10000, "description": "PromQL expression"}
DURATION = {"type": ["string", "number"], "description": "e.g. 30s, 5m"}


@dataclass(frozen=True)
class Endpoint:
    url: str  # base URL without a trailing slash
    token: str | None
    source: str  # "param" or the variable it came from

    @property
    def shown(self) -> str:
        return shown_url(self.url, keep_path=True)


def configured_url(params: dict[str, Any]) -> tuple[str, str] | None:
    """(URL, where it came from), or None when neither the step nor the worker names a Prometheus."""
    if params.get("url"):
        return params["url"], "param"
    worker_url = os.environ.get(URL_ENV, "").strip()
    return (worker_url, URL_ENV) if worker_url else None


def endpoint(params: dict[str, Any]) -> Endpoint:
    found = configured_url(params)
    if found is None:
        raise ActionError(f"no Prometheus to ask: give the step a `url` or set {URL_ENV} on the worker",
                          type="PrometheusNotConfigured", non_retryable=True)
    url, source = found
    if not url.startswith(("http://", "https://")):
        raise ActionError(f"{source}: {shown_url(url, keep_path=False)} is not an http:// or https:// URL",
                          type="PrometheusNotConfigured", non_retryable=True)
    if params.get("token_env"):
        token = secret_from_env(params["token_env"], "token_env") or None
    else:
        token = (os.environ.get(TOKEN_ENV) or None) if source == URL_ENV else None
    return Endpoint(url.rstrip("/"), token, source)


def duration_param(params: dict[str, Any], key: str) -> float:
    """A duration param in seconds; a malformed one fails the step at once, not on retry."""
    try:
        return parse_duration(params[key])
    except ValueError as exc:
        raise ActionError(f"invalid params: {key}: {exc}", type="InvalidParams", non_retryable=True) from None


def _answer_error(target: Endpoint, endpoint_name: str, status: int, body: bytes) -> ActionError:
    """Prometheus' own words for a refused query; 400/422 mean the PromQL itself is wrong or cannot run."""
    try:
        answer = json.loads(body)
        detail = f"{answer.get('errorType', 'error')}: {answer.get('error', '')}"
    except (ValueError, AttributeError):
        detail = body[:ERROR_EXCERPT_CHARS].decode("utf-8", errors="replace")
    message = f"Prometheus at {target.shown} refused the query ({endpoint_name}, HTTP {status}): {detail}"
    if status in (400, 422):
        return ActionError(message, type="PromQLError", non_retryable=True)
    if status in (401, 403):
        return ActionError(message, type="PrometheusUnauthorized", non_retryable=True)
    return ActionError(message, type="PrometheusUnavailable")


async def _read_bounded(content: StreamReader, limit: int) -> bytes:
    # read(n) returns what is buffered (one network chunk), not n bytes: loop until EOF or the bound.
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


async def get(target: Endpoint, endpoint_name: str, query: dict[str, str], timeout_s: float) -> dict[str, Any]:
    """The `data` of a successful answer of `/api/v1/<endpoint_name>`; ActionError otherwise:
    PromQLError (bad query, permanent), PrometheusUnavailable (no answer or 5xx, retryable), PrometheusUnauthorized.
    """
    import aiohttp  # here, not at module import: building the action catalog must not load the HTTP client

    headers = {"Authorization": f"Bearer {target.token}"} if target.token else {}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
            # POST with a form body, as Prometheus accepts: long PromQL does not fit every URL length limit.
            async with session.post(f"{target.url}/api/v1/{endpoint_name}", data=query,
                                    headers=headers) as response:
                body = await _read_bounded(response.content, MAX_ANSWER_BYTES + 1)
                status = response.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        reason = f"no answer within {timeout_s:g}s" if isinstance(exc, TimeoutError) else type(exc).__name__
        raise ActionError(f"Prometheus at {target.shown} did not answer ({reason})",
                          type="PrometheusUnavailable") from None
    if len(body) > MAX_ANSWER_BYTES:
        raise ActionError(f"Prometheus at {target.shown} answered more than {MAX_ANSWER_BYTES >> 20} MiB for this "
                          "query; narrow it (labels, aggregation, a shorter range or a larger step)",
                          type="PrometheusAnswerTooLarge", non_retryable=True)
    if status != 200:
        raise _answer_error(target, endpoint_name, status, body)
    try:
        answer = json.loads(body)
    except ValueError:
        raise ActionError(f"{target.shown} did not answer with JSON; is it a Prometheus?",
                          type="PrometheusUnavailable") from None
    if not isinstance(answer, dict) or answer.get("status") != "success" or not isinstance(answer.get("data"), dict):
        raise ActionError(f"{target.shown} did not answer as Prometheus' HTTP API does", type="PrometheusUnavailable")
    return answer["data"]
