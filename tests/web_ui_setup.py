"""What the web page's tests share: a receiver in front of a worker that requires verified people, people with
personal tokens, an alert whose labels are hostile HTML, and a signed-in session over real HTTP."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from temporalio.client import Client

from incidentctl import client as incidents
from incidentctl.identity import new_signing_key
from incidentctl.intake.runner import RunningReceiver, start_receiver
from incidentctl.intake.server import ReceiverAuth
from tests.conftest import eventually
from tests.verified_people import people_with_tokens, strict_worker

WEBHOOK_TOKEN = "web-webhook-token"
KEY = new_signing_key("web1")
HOSTILE = "<script>alert(1)</script>"
GATED = """
name: web-gated
version: 1
severity: SEV3
trigger:
  alertname: WebGatedBroken
steps:
  - id: strict
    approval: {message: "restart <b>now</b>?", groups: [sre]}
  - id: fix
    action: util.echo
    params: {message: fixed}
"""


@pytest.fixture
async def strict_queue(client: Client) -> AsyncIterator[str]:
    """A worker of its own that requires verified people and trusts only this receiver's key."""
    async with strict_worker(client, KEY, "web") as queue:
        yield queue


@pytest.fixture
def tokens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    return people_with_tokens(tmp_path, monkeypatch, KEY, ("bob", "mallory"), sre=("bob",))


@pytest.fixture
async def web_receiver(client: Client, strict_queue: str, tokens: dict[str, str], tmp_path: Path
                       ) -> AsyncIterator[RunningReceiver]:
    books = tmp_path / "runbooks"
    books.mkdir()
    (books / "web-gated.yaml").write_text(GATED)
    running = await start_receiver(client, port=0, auth=ReceiverAuth(token=WEBHOOK_TOKEN), task_queue=strict_queue,
                                   runbook_paths=[books])
    yield running
    await running.stop()


async def hostile_incident(receiver: RunningReceiver, client: Client) -> str:
    """An incident opened by an alert whose labels are HTML, waiting for the approval of group sre."""
    alert = {"labels": {"alertname": "WebGatedBroken", "run": uuid.uuid4().hex[:10], "evil": HOSTILE},
             "group_by": ["run"]}
    async with aiohttp.ClientSession() as session:
        async with session.post(receiver.url + "/alerts", json=alert,
                                headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"}) as response:
            answer = await response.json()
    assert response.status == 200 and answer["incidents"], answer
    incident = answer["incidents"][0]["incident_id"]
    await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["pending_approvals"])
    return incident


def form_csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


@dataclass
class Browsing:
    """An HTTP client with its own cookie jar (127.0.0.1 cookies need `unsafe`), as one person's browser."""
    session: aiohttp.ClientSession
    base: str

    async def get(self, path: str, **kwargs: Any) -> tuple[int, str, aiohttp.ClientResponse]:
        async with self.session.get(self.base + path, allow_redirects=False, **kwargs) as response:
            return response.status, await response.text(), response

    async def post(self, path: str, form: dict[str, str], **kwargs: Any) -> tuple[int, str, aiohttp.ClientResponse]:
        async with self.session.post(self.base + path, data=form, allow_redirects=False, **kwargs) as response:
            return response.status, await response.text(), response

    async def sign_in(self, token: str, next_page: str = "/ui") -> aiohttp.ClientResponse:
        _, page, _ = await self.get(f"/ui/login?next={next_page}")
        status, text, response = await self.post("/ui/login", {"csrf": form_csrf(page), "token": token,
                                                               "next": next_page})
        assert status == 303, text
        return response


async def browsing(receiver: RunningReceiver) -> Browsing:
    return Browsing(aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)), receiver.url)
