"""`notify.github`: a GitHub issue per incident: opened on start, commented on updates, labelled and closed on resolve.

Idempotent by reading before writing: the issue body and every comment carry a hidden marker with the
message key, so a retried send finds its earlier write instead of posting twice.
"""

from __future__ import annotations

from typing import Any

from activities.base import ActionInput, action
from activities.errors import ActionError
from activities.notify.delivery import TARGET, idempotency_key
from activities.secrets import secret_from_env

MAX_PAGES = 10


class GitHub:
    def __init__(self, api_url: str, repo: str, token: str) -> None:
        self.base = f"{api_url.rstrip('/')}/repos/{repo}"
        self.headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    async def call(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None) -> Any:
        import aiohttp  # here, not at module import: building the action catalog must not load the HTTP client

        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
                async with session.request(method, self.base + path, json=body, params=params,
                                           headers=self.headers) as response:
                    payload = await response.json(content_type=None)
                    status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ActionError(f"GitHub {method} {path}: no answer: {exc}", type="HTTPUnreachable") from None
        if status == 403 or status == 401:
            raise ActionError(f"GitHub refused {method} {path} ({status}): check the token's scopes",
                              type="GitHubForbidden", non_retryable=True)
        if status >= 400:
            raise ActionError(f"GitHub {method} {path} answered {status}: {payload}", type="HTTPStatus",
                              non_retryable=status < 500 and status != 429)
        return payload

    async def find_issue(self, marker: str) -> dict[str, Any] | None:
        for page in range(1, MAX_PAGES + 1):
            issues = await self.call("GET", "/issues", params={"state": "all", "labels": "incident",
                                                                "per_page": "100", "page": str(page)})
            found = next((i for i in issues if marker in (i.get("body") or "")), None)
            if found or len(issues) < 100:
                return found
        return None

    async def has_comment(self, number: int, marker: str) -> bool:
        for page in range(1, MAX_PAGES + 1):
            comments = await self.call("GET", f"/issues/{number}/comments", params={"per_page": "100",
                                                                                  "page": str(page)})
            if any(marker in (c.get("body") or "") for c in comments):
                return True
            if len(comments) < 100:
                return False
        return False


def _marker(text: str) -> str:
    return f"<!-- incidentctl:{text} -->"


@action(
    "notify.github",
    params={"type": "object", "additionalProperties": False, "required": ["repo", "message"],
            "properties": {
                "repo": {"type": "string", "pattern": "^[^/\\s]+/[^/\\s]+$"},
                "api_url": {"type": "string", "pattern": "^https?://", "default": "https://api.github.com"},
                "token_env": {"type": "string", "default": "GITHUB_TOKEN"},
                "message": {"type": "string", "minLength": 1},
                "title": {"type": "string"},
                "event": {"enum": ["opened", "update", "approval_requested", "resolved", "failed", "message"],
                          "default": "message"},
                "key": {"type": "string"},
                "approval_step": TARGET["approval_step"],
            }},
    description="Keep one GitHub issue per incident: open, comment, label and close on resolve.",
)
async def github_issue(inp: ActionInput) -> dict[str, Any]:
    params = inp.params
    github = GitHub(params["api_url"], params["repo"], secret_from_env(params["token_env"], "token_env"))
    key = idempotency_key(inp)
    incident_marker = _marker(f"incident={inp.incident_id}")
    message_marker = _marker(f"message={key}")
    issue = await github.find_issue(incident_marker)
    created = False
    if issue is None:
        title = params.get("title") or f"[incident] {inp.incident_id}"
        body = f"{params['message']}\n\n{incident_marker}\n{message_marker}"
        issue = await github.call("POST", "/issues", {"title": title, "labels": ["incident"], "body": body})
        created = True
    number = int(issue["number"])
    event = params["event"]
    # The message may already be there: as the issue body (it opened the issue) or as a comment.
    if not created and message_marker not in (issue.get("body") or ""):
        if not await github.has_comment(number, message_marker):
            await github.call("POST", f"/issues/{number}/comments",
                              {"body": f"{params['message']}\n\n{message_marker}"})
    if event == "opened" and not created and issue.get("state") == "closed":
        await github.call("PATCH", f"/issues/{number}", {"state": "open"})  # the incident fired again
    if event in ("resolved", "failed") and issue.get("state") != "closed":
        await github.call("POST", f"/issues/{number}/labels", {"labels": [f"incident:{event}"]})
        await github.call("PATCH", f"/issues/{number}", {"state": "closed"})
    return {"delivered": True, "channel": "github", "issue": number, "created": created, "key": key}
