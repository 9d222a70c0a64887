"""What every mutating gke action does around its one API call: wait out operations already running on the pool,
resume a previous attempt's operation rather than start another, start one, wait for it, and report."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from activities.gke.api import PoolRef, previous_operation, wait_for_running, wait_operation


async def change_pool(ref: PoolRef, params: dict[str, Any], start: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    """Run `start` (the call that starts the operation) once the pool is free, and wait for what it started.

    A retried attempt (worker crash, transient error) whose previous attempt started an operation finds it in its
    heartbeat details and waits for it instead; with an absolute request (a size, limits) repeating the call
    after that operation would change nothing anyway, so the step is idempotent."""
    resumed = previous_operation()
    if resumed:
        return {"operation": await wait_operation(ref, resumed, params, mine=True), "waited_for": [], "resumed": True}
    waited = await wait_for_running(ref, params)
    started = await start()
    return {"operation": await wait_operation(ref, started.name, params, mine=True), "waited_for": waited,
            "resumed": False}
