"""Posting a message to a webhook URL with an idempotency key (shared by the webhook, Slack and GitHub notifiers).

Each message carries an idempotency key (incident/step), so a retried send is recognisable: generic
webhooks get it as the `Idempotency-Key` header and in the body; Slack's incoming webhooks have no way to
deduplicate, so Slack is at-least-once (the key is in the message metadata for humans).
"""

from __future__ import annotations

from typing import Any

from activities.base import ActionInput
from activities.errors import ActionError
from activities.secrets import secret_from_env, shown_url

# The params of a notifier that posts to a URL.
TARGET: dict[str, Any] = {
    "url": {"type": "string", "pattern": "^https?://"},
    "url_env": {"type": "string", "description": "variable holding the URL (keeps secrets out of runbooks)"},
    "message": {"type": "string", "minLength": 1},
    "event": {"type": "string", "description": "opened, update, approval_requested, resolved, ..."},
    "key": {"type": "string", "description": "idempotency key; default incident/step"},
    "approval_step": {"type": "string", "description": "set by incident communication on approval_requested: the "
                                                       "step waiting for the decision (Slack makes buttons of it)"},
}


def target_url(params: dict[str, Any]) -> str:
    url = params.get("url") or (secret_from_env(params["url_env"], "url_env") if params.get("url_env") else "")
    if not url:
        raise ActionError("no webhook URL: give `url` or set the variable named by `url_env`",
                          type="InvalidParams", non_retryable=True)
    return url


def idempotency_key(inp: ActionInput) -> str:
    return inp.params.get("key") or f"{inp.incident_id}/{inp.step_id}"


async def post_json(url: str, body: dict[str, Any], key: str) -> int:
    import aiohttp  # here, not at module import: building the action catalog must not load the HTTP client

    timeout = aiohttp.ClientTimeout(total=15)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.post(url, json=body, headers={"Idempotency-Key": key}) as response:
                text = await response.text()
                status = response.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        # The exception's own text may repeat the URL: only its type is said.
        raise ActionError(f"POST {shown_url(url, keep_path=False)}: no answer ({type(exc).__name__})",
                          type="HTTPUnreachable") from None
    if status >= 400:
        raise ActionError(f"POST {shown_url(url, keep_path=False)} answered {status}: {text[:300]}", type="HTTPStatus",
                          non_retryable=400 <= status < 500 and status != 429)
    return status
