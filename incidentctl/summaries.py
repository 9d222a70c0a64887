"""An incident's summary (the dict `incident show` prints) from wherever it can be had, and what could not be had.

A completed incident's summary is its workflow result, which the server keeps: no worker needed. An open (or
cancelled) one is asked with the `state` query, which a worker answers. With no worker, the newest run's input
still holds the state carried at its last continue-as-new, which is shown for what it is; otherwise there is no
summary, and `missing` says why and what to do.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from incidentctl.client import IncidentError, incident_state, worker_polling

if TYPE_CHECKING:
    from temporalio.client import Client

RESULT, QUERY, CARRIED, NONE = "workflow result", "state query", "carried state", "none"


@dataclass
class FoundSummary:
    summary: dict[str, Any] | None
    source: str  # RESULT, QUERY, CARRIED or NONE
    missing: list[str] = field(default_factory=list)  # sentences: what is not known, and why


def summary_from_carried(inp: dict[str, Any]) -> dict[str, Any] | None:
    """The summary as of a run's start, from the state continue-as-new carried into its input."""
    if not isinstance(inp.get("carried"), dict):
        return None
    # The engine's own summary of its own state, so both say the same; imported here, as only this path needs it.
    from workflows.context import IncidentRun
    from workflows.model import IncidentInput

    known = {f.name for f in dataclasses.fields(IncidentInput)}
    run = IncidentRun(IncidentInput(**{k: v for k, v in inp.items() if k in known}))
    run.state.restore(inp["carried"])
    return run.summary()


async def find_summary(client: Client, incident_id: str, *, run_id: str | None, closed: str | None,
                       task_queue: str, result: dict[str, Any] | None, latest_input: dict[str, Any] | None
                       ) -> FoundSummary:
    """`closed` is how the run ended (None while open); `result` its workflow result when it completed;
    `latest_input` the run's input (for the carried state), when at hand."""
    if isinstance(result, dict):
        return FoundSummary(result, RESULT)
    missing: list[str] = []
    if await worker_polling(client, task_queue):
        try:
            return FoundSummary(await incident_state(client, incident_id, run_id), QUERY)
        except IncidentError as exc:
            missing.append(f"the incident's state could not be asked: {exc}")
    else:
        missing.append(f"no worker is polling task queue {task_queue!r}, so the incident's state could not be asked "
                       "(start one with `python worker.py` or `incidentctl dev`)")
    summary = summary_from_carried(latest_input or {})
    if summary is not None:
        missing.append(f"the summary is the state carried into run {summary.get('runs')} (continue-as-new), "
                       "not the current one: step results, people's edits and times after it are missing")
        return FoundSummary(summary, CARRIED, missing)
    state = "closed" if closed else "open"
    missing.append(f"the incident is {state} and has no summary without a worker: its severity changes, notes, "
                   "review text, lifecycle times and the results of steps that ran no action are missing")
    return FoundSummary(None, NONE, missing)
