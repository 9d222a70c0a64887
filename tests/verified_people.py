"""What the tests of verified people share: a worker that requires them, and starts proven by a trusted key."""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from temporalio.client import Client

from incidentctl import client as incidents
from incidentctl.dsl.plan import Plan
from incidentctl.identity import SigningKey, parse_trusted_keys, sign
from incidentctl.identity_policy import IdentityPolicy
from incidentctl.workers import build_worker


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
