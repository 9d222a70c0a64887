"""Looking up an incident key's earlier runs (re-fires). Not a runbook action: the workflow calls it at start."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from temporalio.client import Client

PREVIOUS_RUNS = "incident.previous_runs"


def visibility_quote(value: str) -> str:
    """A string literal for a Temporal visibility query."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class IncidentHistory:
    def __init__(self, client: Client) -> None:
        self._client = client

    def activities(self) -> list[Callable[..., Any]]:
        """The Temporal activities to register on a worker, bound to this client."""
        _define_activities()
        return [self.previous_runs]

    async def previous_runs(self, incident_id: str) -> dict[str, Any]:
        """How many closed incidents had this key before, and the newest one's run id (to link them)."""
        # Imported here: the action catalog imports every module of activities/ and must stay cheap.
        from temporalio.client import WorkflowExecutionStatus

        count, newest, newest_close = 0, None, None
        query = f"WorkflowId = {visibility_quote(incident_id)} AND ExecutionStatus != 'Running'"
        async for execution in self._client.list_workflows(query):
            if execution.status == WorkflowExecutionStatus.CONTINUED_AS_NEW:
                continue  # one incident spans several runs; count it once, by its final run
            count += 1
            if execution.close_time and (newest_close is None or execution.close_time > newest_close):
                newest, newest_close = execution.run_id, execution.close_time
        return {"count": count, "previous_run_id": newest}


@functools.cache
def _define_activities() -> None:
    # When a worker is built, not at import (no `@activity.defn` on the method): the action catalog imports this
    # module, and temporalio is slow to import. Once: temporalio refuses to define a function twice.
    from temporalio import activity

    activity.defn(name=PREVIOUS_RUNS)(IncidentHistory.previous_runs)
