"""Heartbeats: every action tells Temporal it is alive, so a worker that dies mid-action is noticed in seconds.

The `@action` wrapper runs `keep_alive()` around each action: a background task that heartbeats every few seconds
while the action runs (inside a Temporal activity only). Actions that carry progress in their heartbeat details
(a wait's first start, delete_pods' victims) send them with `heartbeat()` here, never `activity.heartbeat`
directly: Temporal keeps only the details of the latest heartbeat and a retry reads them back
(`activity.info().heartbeat_details`), so the background beat re-sends the last details it knows of, never
None, and starts from the previous attempt's details, which a retry would otherwise lose before it read them.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

# How often the background task beats, at most; and at least 4 times per heartbeat timeout. The SDK sends the
# first heartbeat at once and then at most one per 80% of the timeout (the latest details), so beating more often
# than it sends costs nothing.
KEEPALIVE_EVERY_S = 5.0
BEATS_PER_TIMEOUT = 4


@dataclass
class _LastDetails:
    details: Sequence[Any] = field(default_factory=tuple)


# The details of the running action's latest heartbeat; a holder, so the background task (which copied the
# context when it was created) sees what the action sends later.
_LAST: contextvars.ContextVar[_LastDetails | None] = contextvars.ContextVar("incidentctl_heartbeat", default=None)


def in_activity() -> bool:
    from temporalio import activity  # here, not at module import: building the action catalog must not load it

    return activity.in_activity()


def heartbeat(*details: Any) -> None:
    """Heartbeat with `details` (what a retry will find in `activity.info().heartbeat_details`); nothing outside
    a Temporal activity (tests also call actions directly)."""
    from temporalio import activity

    if not activity.in_activity():
        return
    last = _LAST.get()
    if last is not None:
        last.details = details
    activity.heartbeat(*details)


def previous_details() -> Sequence[Any]:
    """The details the previous attempt last sent (empty on a first attempt or outside Temporal)."""
    from temporalio import activity

    return tuple(activity.info().heartbeat_details) if activity.in_activity() else ()


@contextlib.asynccontextmanager
async def keep_alive() -> AsyncIterator[None]:
    """Heartbeat in the background while the body runs, re-sending the latest details.

    The first beat waits one period: the SDK sends the first heartbeat of an attempt at once and throttles the
    next ones, so an action that sends details early (a wait's start) must be the one that gets through at once."""
    if not in_activity():
        yield
        return
    from temporalio import activity

    timeout = activity.info().heartbeat_timeout
    every_s = min(KEEPALIVE_EVERY_S, timeout.total_seconds() / BEATS_PER_TIMEOUT) if timeout else KEEPALIVE_EVERY_S
    last = _LastDetails(previous_details())
    token = _LAST.set(last)

    async def beat() -> None:
        while True:
            await asyncio.sleep(every_s)
            activity.heartbeat(*last.details)

    task = asyncio.create_task(beat(), name="incidentctl-keepalive")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        _LAST.reset(token)
