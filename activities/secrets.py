"""Secrets an action reads from the worker's environment, and what of a URL may be shown.

A runbook names a variable (`url_env`, `token_env`) instead of writing a secret into the plan, which is kept
in every incident's history. It may only name variables the worker's operator allows
(`INCIDENTCTL_SECRET_ENV_ALLOW`, comma-separated globs; default below), so a runbook cannot send, say,
AWS_SECRET_ACCESS_KEY as a bearer token to a URL of its choosing. Errors show URLs without what usually
carries a secret: a webhook's path, any query string, user info.
"""

from __future__ import annotations

import fnmatch
import os
from urllib.parse import urlsplit

from activities.errors import ActionError

DEFAULT_ALLOWED = "INCIDENTCTL_*,SLACK_*,GITHUB_TOKEN,*_WEBHOOK_URL"
# The worker's and the service's own secrets: never readable by a runbook, whatever the allow-list says (the default
# `INCIDENTCTL_*` matches them), since `token_env` sends a value to a URL the runbook chooses.
WORKER_SECRETS = frozenset({
    "INCIDENTCTL_PLAN_KEYS", "INCIDENTCTL_PAYLOAD_KEYS", "INCIDENTCTL_CODEC_TOKEN", "INCIDENTCTL_RECEIVER_TOKEN",
    "INCIDENTCTL_RECEIVER_HMAC_SECRET", "INCIDENTCTL_TEMPORAL_API_KEY", "INCIDENTCTL_PROMETHEUS_TOKEN",
    "INCIDENTCTL_IDENTITY_SIGNING_KEY", "INCIDENTCTL_SLACK_SIGNING_SECRET", "INCIDENTCTL_TOKEN",
})


def allowed_env() -> list[str]:
    raw = os.environ.get("INCIDENTCTL_SECRET_ENV_ALLOW", DEFAULT_ALLOWED)
    return [glob.strip() for glob in raw.split(",") if glob.strip()]


def secret_from_env(variable: str, param: str) -> str:
    """The variable's value ("" when unset); refused when the operator does not allow reading it."""
    if variable in WORKER_SECRETS:
        raise ActionError(f"{param} names {variable!r}, a secret of the worker itself, which runbooks may not read",
                          type="SecretNotAllowed", non_retryable=True)
    globs = allowed_env()
    if not any(fnmatch.fnmatchcase(variable, glob) for glob in globs):
        raise ActionError(f"{param} names {variable!r}, which this worker does not let runbooks read "
                          f"(INCIDENTCTL_SECRET_ENV_ALLOW: {', '.join(globs) or 'nothing'})",
                          type="SecretNotAllowed", non_retryable=True)
    return os.environ.get(variable, "")


def shown_url(url: str, *, keep_path: bool) -> str:
    """`url` as errors may show it: scheme and host, the path only when asked, never user info or query."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(a URL that does not parse)"
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    path = parts.path if keep_path else ("/…" if parts.path not in ("", "/") else "")
    return f"{parts.scheme}://{host}{path}" + ("?…" if parts.query else "")
