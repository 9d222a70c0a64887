"""After the session: every history the shared test worker wrote replays on today's workflow code.

The suite makes hundreds of incidents through every path (update-with-start, re-fires, crashes, hand-overs), so
their histories are the widest determinism check we have. A history that does not replay is saved as JSON
(load it with `WorkflowHistory.from_json` and replay it offline) and fails the session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from incidentctl.workers import WORKFLOW_RUNNER
from workflows.incident import IncidentWorkflow
from workflows.targets import TargetWorkflow


async def histories_on(client: Client, task_queue: str) -> list[WorkflowHistory]:
    # Only this queue: tests with their own workers (payload codec, older code) write histories this
    # Replayer is not set up to read.
    found = []
    async for execution in client.list_workflows(f"TaskQueue = '{task_queue}'"):
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        found.append(await handle.fetch_history())
    return found


async def replay_failures(histories: list[WorkflowHistory], save_to: Path) -> list[str]:
    """One line per history that did not replay; each is saved under `save_to`."""
    async def each() -> AsyncIterator[WorkflowHistory]:
        for history in histories:
            yield history

    # debug_mode: no deadlock detector, whose 2 s limit a loaded machine exceeded once while replaying.
    replayer = Replayer(workflows=[IncidentWorkflow, TargetWorkflow], workflow_runner=WORKFLOW_RUNNER, debug_mode=True)
    results = await replayer.replay_workflows(each(), raise_on_replay_failure=False)
    by_run = {history.run_id: history for history in histories}
    lines = []
    for run_id, failure in results.replay_failures.items():
        history = by_run[run_id]
        save_to.mkdir(parents=True, exist_ok=True)
        saved = save_to / f"{history.workflow_id}.{run_id}.json"
        saved.write_text(history.to_json())
        lines.append(f"{history.workflow_id} ({saved}): {failure}")
    return lines
