"""What every room of the interpreter shares: the input, the typed plan, the state, and the expression scope."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from temporalio import workflow

from incidentctl.dsl.plan import Plan, Step
from workflows import metrics
from workflows.model import SEVERITY_ATTR, STATUS_ATTR, IncidentInput
from workflows.state import IncidentState


@dataclass
class Scope:
    """Step results and loop variables visible to expressions; foreach iterations get a child scope."""

    results: dict[str, dict[str, Any]]
    variables: dict[str, Any] = field(default_factory=dict)
    key_suffix: str = ""
    parent: Scope | None = None
    key_prefix: str = ""  # "<runbook>/" for the steps of another runbook run inside the incident

    def child(self, variables: dict[str, Any], key_suffix: str) -> Scope:
        return Scope(results={}, variables=variables, key_suffix=self.key_suffix + key_suffix, parent=self,
                     key_prefix=self.key_prefix)

    def visible_results(self) -> dict[str, dict[str, Any]]:
        merged = self.parent.visible_results() if self.parent else {}
        return {**merged, **self.results}

    def visible_variables(self) -> dict[str, Any]:
        merged = self.parent.visible_variables() if self.parent else {}
        return {**merged, **self.variables}

    def key(self, step: Step) -> str:
        """The step's name in records and the timeline: its id, plus `[i]` per enclosing foreach iteration."""
        return self.key_prefix + step.id + self.key_suffix


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class IncidentRun:
    """One run of one incident, as the rooms see it."""

    def __init__(self, inp: IncidentInput) -> None:
        self.input = inp
        self.plan = Plan.from_json(inp.plan)
        labels = (inp.alert or {}).get("labels") or {}
        runbook = self.plan.runbook
        # The runbook owner commands by default; the alert's team label routes the work, else the runbook's team.
        self.state = IncidentState(roles={"commander": runbook.owner or "",
                                          "assignee": labels.get("team") or runbook.team or "",
                                          "acknowledged_by": None, "acknowledged_at": None, "time_to_ack_s": None},
                                   severity=inp.severity)
        # The runbook being run: the incident's own, or another one a person runs inside the incident.
        self.active_plan: Plan = self.plan
        # The workflow instance running this incident is its event loop: its identity, even against another
        # worker's instance of the same run in this process. None: built outside a workflow (a summary of the
        # state continue-as-new carried, incidentctl/summaries.py), which acts on nothing.
        self._instance = _running_loop() if workflow.in_workflow() else None
        self.active_params: dict[str, Any] = inp.params
        # Patches a room asks about, asked when the incident starts (IncidentWorkflow.__init__); None: ask then.
        self.people_checked: bool | None = None

    @property
    def groups(self) -> dict[str, list[str]]:
        """Who is in which group for this incident's approvals: the worker's people file, read at start."""
        return self.state.groups if self.state.groups is not None else self.input.groups

    @staticmethod
    def now() -> datetime:
        return workflow.now()

    def event(self, kind: str, step: str | None = None, detail: dict[str, Any] | None = None) -> None:
        self.state.event(self.now().isoformat(), kind, step, detail)

    def acting(self) -> bool:
        """Whether this incident's workflow instance is the one running now. Not always so for its code: the
        garbage collector closes a coroutine left by an evicted incident whenever it likes, and the coroutine's
        `finally` then runs inside whichever workflow is running on that thread (another incident, or a new
        instance of this one). A command issued there would land in that history, which then no longer replays
        (seen under load: docs/design.md, "Code that outlives its workflow")."""
        return self._instance is not None and _running_loop() is self._instance

    def set_status(self, status: str) -> None:
        """The status, for queries and for `incident list` (the other search attributes are set at start and
        carried by continue-as-new)."""
        self.state.status = status
        if not self.acting():
            return
        workflow.upsert_search_attributes([STATUS_ATTR.value_set(status)])
        self.show_details()

    def count_end(self, status: str) -> None:
        """The incident ended (closed or cancelled; resolved, failed or rolled back before the lifecycle)."""
        metrics.count(metrics.INCIDENTS_CLOSED, runbook=self.plan.runbook.name,
                      severity=self.state.severity or self.input.severity, status=status)

    def set_severity(self, severity: str) -> None:
        self.state.severity = severity
        if not self.acting():
            return
        workflow.upsert_search_attributes([SEVERITY_ATTR.value_set(severity)])
        self.show_details()

    def show_details(self) -> None:
        """The incident at a glance as the Temporal UI's "current details" of the workflow: status, severity,
        runbook, service and the steps running now. Served by the SDK's metadata query: it adds no command."""
        if not self.acting():
            return  # a step's `finally` run while an evicted workflow's coroutines are closed: nobody to show
        state, inp = self.state, self.input
        head = f"**{state.status}** · {state.severity or inp.severity} · runbook {self.active_plan.runbook.name}"
        lines = [head + (f" · {inp.service}" if inp.service else "")]
        if state.running:
            lines.append("running: " + ", ".join(state.running))
        workflow.set_current_details("\n\n".join(lines))

    def expression_context(self, scope: Scope) -> dict[str, Any]:
        inp = self.input
        return {
            "params": self.active_params,
            "alert": inp.alert or {},
            "steps": scope.visible_results(),
            "incident": {
                "id": inp.incident_id,
                "severity": self.state.severity or inp.severity,
                "runbook": self.plan.runbook.name,
                "service": inp.service,
                "dry_run": inp.dry_run,
                "started_at": self.state.started_at,
                "alert_status": self.state.alert_status(),
                "refires": self.state.refires.get("count", 0),
            },
            **scope.visible_variables(),
        }

    def summary(self) -> dict[str, Any]:
        inp, runbook = self.input, self.plan.runbook
        return self.state.summary({
            "incident_id": inp.incident_id, "runbook": runbook.name, "runbook_version": runbook.version,
            "plan_hash": self.plan.hash or None, "severity": inp.severity, "service": inp.service,
            "params": inp.params, "dry_run": inp.dry_run,
        })
