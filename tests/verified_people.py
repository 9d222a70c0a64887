"""What the tests of verified people share: a worker that requires them, and starts proven by a trusted key."""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from incidentctl import client as incidents
from incidentctl.dsl.plan import Plan
from incidentctl.identity import SigningKey, parse_trusted_keys, sign, signing_key_line
from incidentctl.identity_policy import IdentityPolicy
from incidentctl.people import new_token
from incidentctl.workers import build_worker


def gated_runbook(name: str) -> str:
    """A runbook that waits for group sre's approval, then runs one step."""
    return f"""
name: {name}
version: 1
steps:
  - id: gate
    approval: {{message: "restart?", groups: [sre]}}
  - id: fix
    action: util.echo
    params: {{message: fixed}}
"""


def people_with_tokens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: SigningKey, names: tuple[str, ...],
                       sre: tuple[str, ...]) -> dict[str, str]:
    """A people file giving each of `names` a personal token and `sre` the group sre, and `key` as the receiver's
    signing key; each person's token."""
    made = {name: new_token(name) for name in names}
    people = tmp_path / "people.yaml"
    people.write_text(f"groups:\n  sre: [{', '.join(sre)}]\npeople:\n"
                      + "\n".join(line for _, line in made.values()) + "\n")
    monkeypatch.setenv("INCIDENTCTL_PEOPLE", str(people))
    monkeypatch.setenv("INCIDENTCTL_IDENTITY_SIGNING_KEY", signing_key_line(key))
    return {name: token for name, (token, _) in made.items()}


@asynccontextmanager
async def strict_worker(client: Client, key: SigningKey, prefix: str) -> AsyncIterator[str]:
    """A worker on a task queue of its own that requires verified people and trusts `key`; yields the queue."""
    queue = f"{prefix}-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, task_queue=queue, identity=IdentityPolicy(keys=parse_trusted_keys(
            key.public_line()))):
        yield queue


async def start_proven(client: Client, plan: Plan, queue: str, key: SigningKey, **kwargs: Any) -> str:
    """Start an incident whose start `key` proves (started by carol unless said), on `queue`; its id."""
    kwargs.setdefault("started_by", "carol")
    started = await incidents.start_incident(client, plan, key=uuid.uuid4().hex[:10], task_queue=queue,
                                             prove_start=functools.partial(sign, key), **kwargs)
    return started.incident_id
