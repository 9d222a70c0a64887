"""Progress of an incident's running steps as Temporal holds it: its pending activities, with the details of
their latest heartbeat (a wait's `stable_for_s`, a drain's evictions), the attempt, and since when they run.

The server's description of the workflow lists pending activities by activity id and type; which runbook step
each one is comes from the ActionInput it was scheduled with (its `step_id`), read once from the run's history.
No worker is needed: all of it is the server's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from incidentctl.history import decode_run

if TYPE_CHECKING:
    from temporalio.client import Client, WorkflowExecutionDescription


@dataclass
class StepProgress:
    step: str  # the runbook step key (the activity type when the step cannot be told)
    action: str
    state: str  # scheduled, started, cancel_requested
    attempt: int
    started_at: str | None
    last_heartbeat_at: str | None
    details: list[Any]  # of the latest heartbeat
    last_failure: str | None = None  # why the previous attempt failed, while it is retried


class StepNames:
    """Activity id -> step key, per run, read from the run's history when an activity id is new to it."""

    def __init__(self) -> None:
        self._names: dict[tuple[str, str], str] = {}

    async def name(self, client: Client, incident: str, run_id: str, activity_id: str) -> str | None:
        if (run_id, activity_id) not in self._names:
            history = await client.get_workflow_handle(incident, run_id=run_id).fetch_history()
            for event in await decode_run(history, client.data_converter):
                if event.type == "ACTIVITY_TASK_SCHEDULED":
                    inp = event.data.get("input")
                    step = inp.get("step_id") if isinstance(inp, dict) else None
                    self._names[(run_id, event.data["activity_id"])] = step or event.data["activity_type"]
        return self._names.get((run_id, activity_id))


def _when(timestamp: Any) -> str | None:
    from datetime import UTC

    return timestamp.ToDatetime(tzinfo=UTC).isoformat() if timestamp and timestamp.seconds else None


async def running_steps(client: Client, description: WorkflowExecutionDescription, names: StepNames
                        ) -> list[StepProgress]:
    from temporalio.api.enums.v1 import PendingActivityState

    found = []
    for pending in description.raw_description.pending_activities:
        details = (await client.data_converter.decode(list(pending.heartbeat_details.payloads))
                   if pending.heartbeat_details.payloads else [])
        action = pending.activity_type.name
        step = await names.name(client, description.id, description.run_id, pending.activity_id)
        failure = pending.last_failure.message if pending.HasField("last_failure") else None
        found.append(StepProgress(
            step=step or action, action=action,
            state=PendingActivityState.Name(pending.state).removeprefix("PENDING_ACTIVITY_STATE_").lower(),
            attempt=pending.attempt, started_at=_when(pending.last_started_time),
            last_heartbeat_at=_when(pending.last_heartbeat_time), details=details, last_failure=failure or None))
    return found
