"""Keeping people informed: opened, status updates at a cadence per severity, approval requests, closed.

Each message goes to every channel of the runbook's `communication` block through its notifier action, with a
key fixed before the first attempt, so a send retried after a worker crash is recognised and not repeated.
A channel that keeps failing is recorded on the timeline and never fails the incident.
"""

from __future__ import annotations

import asyncio
import builtins
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from activities.base import ActionInput
from incidentctl.dsl import expressions
from incidentctl.dsl.plan import Channel, Step
from workflows import approvals, messages
from workflows.context import IncidentRun, Scope
from workflows.errors import error_of
from workflows.model import CANCELLED, CLOSED, RESOLVED

SEND_ATTEMPTS = 5
# Asked when the incident starts (IncidentWorkflow.__init__): incidents started before it keep sending updates
# while resolved, as they did.
UPDATES_PAUSED_WHILE_RESOLVED = "status-updates-paused-while-resolved"


class Communicator:
    def __init__(self, run: IncidentRun) -> None:
        self.run = run
        self.spec = run.plan.communication
        self._finishing = False
        self._cadence_task: asyncio.Future[None] | None = None
        self.paused_while_resolved = False

    def statement(self, name: str) -> str:
        template = getattr(self.spec, name, None) if self.spec else None
        if not template:
            return ""
        try:
            return str(expressions.render(template, self.run.expression_context(Scope(results=self.run.state.results))))
        except expressions.ExpressionError as exc:
            return f"({name} unavailable: {exc})"

    def channel_settings(self, channel: Channel) -> dict[str, Any]:
        """A channel's settings with their templates rendered (`repo: "${{ params.repo }}"`), as sent."""
        if not any(isinstance(v, str) and "${{" in v for v in channel.params.values()):
            return dict(channel.params)
        context = self.run.expression_context(Scope(results=self.run.state.results))
        return {k: expressions.render(v, context) if isinstance(v, str) else v for k, v in channel.params.items()}

    async def open(self, first_run: bool) -> None:
        if not self.spec:
            return
        if first_run:
            await self.broadcast("opened", messages.opened(self.run.summary(), self.statement("impact")))
        self._cadence_task = asyncio.ensure_future(self._status_updates())

    async def broadcast(self, event: str, text: str, about: dict[str, Any] | None = None) -> None:
        """`about`: what the message is about, as params every notifier accepts (`approval_step`)."""
        assert self.spec is not None
        state, incident = self.run.state, self.run.input.incident_id
        state.comms_seq += 1
        seq = state.comms_seq
        key = f"{incident}/{event}/{seq}"
        timeout = timedelta(seconds=self.spec.send_timeout_s)

        async def send(channel: Channel) -> str | None:
            try:
                settings = self.channel_settings(channel)
            except expressions.ExpressionError as exc:
                return f"{channel.action}: its settings do not render: {exc}"
            try:
                await workflow.execute_activity(
                    channel.action,
                    ActionInput(action=channel.action, incident_id=incident, step_id=f"comms:{event}:{seq}",
                                params={**settings, "message": text, "event": event, "key": key, **(about or {})}),
                    start_to_close_timeout=timeout,
                    retry_policy=RetryPolicy(maximum_attempts=SEND_ATTEMPTS, initial_interval=timedelta(seconds=1)),
                )
                return None
            except ActivityError as exc:
                return f"{channel.action}: {error_of(exc).get('message')}"

        problems = await asyncio.gather(*(send(c) for c in self.spec.channels))
        failed = [p for p in problems if p]
        detail: dict[str, Any] = {"event": event, "seq": seq, "channels": len(problems) - len(failed)}
        if failed:
            detail["failed"] = failed
        self.run.event("notification_sent" if not failed else "notification_failed", detail=detail)

    async def _status_updates(self) -> None:
        assert self.spec is not None
        while not self._finishing:
            if self._resting():
                # Resolved: people had the "resolved" message; updates come back if the incident reopens.
                await workflow.wait_condition(lambda: self._finishing or not self._resting())
                continue
            # The severity may change while the incident is open (`incident severity`): so does the cadence.
            severity = self.run.state.severity or self.run.input.severity
            cadence = self.spec.cadence_s.get(severity)
            try:
                await workflow.wait_condition(
                    lambda s=severity: self._finishing or self._severity_changed(s) or self._resting(),
                    timeout=timedelta(seconds=cadence) if cadence else None)
            except builtins.TimeoutError:
                await self.broadcast("update", messages.status_update(self.run.summary(), self.statement("impact"),
                                                                      cadence))

    def _resting(self) -> bool:
        return self.paused_while_resolved and self.run.state.status == RESOLVED

    def _severity_changed(self, severity: str) -> bool:
        return (self.run.state.severity or self.run.input.severity) != severity

    async def stop_status_updates(self) -> None:
        self._finishing = True
        if self._cadence_task is not None:
            await self._cadence_task

    async def request_approval(self, pending: Any, upcoming: Step | None, scope: Scope) -> None:
        if not self.spec:
            return
        # What the approval commits to, else (a step that does not mutate) what would run now.
        following = pending.will_run or approvals.next_run(
            upcoming, scope.key(upcoming) if upcoming else "", self.run.expression_context(scope))
        text = messages.approval_request(self.run.summary(), pending.__dict__, following, self.spec.approve_url)
        await self.broadcast("approval_requested", text, {"approval_step": pending.step})

    async def close(self) -> None:
        """The last message: how the incident ended (resolved, failed, rolled back, closed, cancelled)."""
        if not self.spec:
            return
        await self.stop_status_updates()
        state = self.run.state
        duration = (self.run.now() - datetime.fromisoformat(state.started_at)).total_seconds()
        text = messages.closed(self.run.summary(), self.statement("impact"), self.statement("root_cause"), duration)
        event = {RESOLVED: "resolved", CLOSED: "closed", CANCELLED: "cancelled"}.get(state.status, "failed")
        await self.broadcast(event, text)

    async def tell(self, event: str, reason: str) -> None:
        """A change people must hear about while the incident stays open (resolved, needs attention)."""
        if not self.spec:
            return
        if event == "resolved":
            started = datetime.fromisoformat(self.run.state.started_at)
            text = messages.closed(self.run.summary(), self.statement("impact"), self.statement("root_cause"),
                                   (self.run.now() - started).total_seconds()) + f"\nWhy: {reason}"
        else:
            text = messages.lifecycle(self.run.summary(), event, reason)
        await self.broadcast(event, text)
