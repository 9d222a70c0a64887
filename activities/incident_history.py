"""Looking up an incident key's earlier runs (re-fires). Not a runbook action: the workflow calls it at start."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from temporalio import activity

if TYPE_CHECKING:
    from temporalio.client import Client


def visibility_quote(value: str) -> str:
    """A string literal for a Temporal visibility query."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class IncidentHistory:
    def __init__(self, client: Client) -> None:
        self._client = client

    @activity.defn(name="incident.previous_runs")
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
