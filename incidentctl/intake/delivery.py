"""Delivering alerts to incidents, exactly once per incident key.

Each group of alerts for one (runbook, key) is one Update-with-Start on the incident workflow: Temporal
starts the workflow if no run is open for that id and delivers the update to the open run otherwise,
atomically, so concurrent notifications for one group make exactly one incident. A notification carrying
only resolved alerts never starts an incident: it is delivered to an open one or recorded as too late.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WithStartWorkflowOperation,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from incidentctl.client import incident_id
from incidentctl.dsl import expressions
from incidentctl.identity import sign
from incidentctl.identity_policy import signing_key_from_env
from incidentctl.intake.joining import TargetDirectory, gone
from incidentctl.intake.metrics import Metrics
from incidentctl.intake.payloads import Delivery
from incidentctl.intake.routing import Route, Router, incident_key
from incidentctl.intake.targets import target_of
from incidentctl.params import ParameterError, resolve_params
from incidentctl.people import load_groups
from incidentctl.plan_signing import sign_plan
from incidentctl.ui_texts import static_details, static_summary
from workflows.incident import IncidentWorkflow
from workflows.model import (
    RUNNING,
    TASK_QUEUE,
    AlertNotification,
    AlertReceipt,
    IncidentInput,
    StartClaim,
    incident_search_attributes,
    wire,
)
from workflows.target_state import Claim

log = logging.getLogger("incidentctl.receiver")
# Temporal refuses more than 10 in-flight updates per workflow (history.maxInFlightUpdates); stay below it
# per receiver process and retry briefly when several receivers together reach it.
MAX_INFLIGHT_PER_INCIDENT = 5
BUSY_RETRIES = 8
# How long an alert waits for the incident that claimed its target a moment ago to start, before taking over.
OWNER_START_WAIT = timedelta(seconds=10)


class TemporalUnavailable(Exception):
    """Nothing durable was recorded: the sender must retry (HTTP 503)."""


@dataclass
class Outcome:
    incident_id: str
    runbook: str
    alerts: int
    result: str  # "started", "updated", "joined" (another incident holds the target), "closed" (already over)
    notifications: int = 0
    firing: int = 0


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)
    unrouted: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"incidents": [asdict(o) for o in self.outcomes], "unrouted": self.unrouted,
                "rejected": self.rejected}


class AlertIntake:
    def __init__(self, client: Client, router: Router, *, task_queue: str = TASK_QUEUE,
                 metrics: Metrics | None = None, rpc_timeout: float = 10.0, unrouted_kept: int = 1000) -> None:
        self.client = client
        self.router = router
        self.task_queue = task_queue
        self.metrics = metrics or Metrics()
        self.rpc_timeout = timedelta(seconds=rpc_timeout)
        self.unrouted: deque[dict[str, Any]] = deque(maxlen=unrouted_kept)
        self._inflight: dict[str, tuple[asyncio.Semaphore, int]] = {}
        self.groups = load_groups()
        # Signs what this receiver verified: people's commands, and the starts of incidents it opens.
        self.signing_key = signing_key_from_env()
        self.targets = TargetDirectory(client, task_queue, self.rpc_timeout, self._limited)

    async def _limited(self, workflow_id: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run `call` with at most MAX_INFLIGHT_PER_INCIDENT concurrent updates to one incident."""
        semaphore, users = self._inflight.get(workflow_id, (asyncio.Semaphore(MAX_INFLIGHT_PER_INCIDENT), 0))
        self._inflight[workflow_id] = (semaphore, users + 1)
        try:
            async with semaphore:
                for attempt in range(BUSY_RETRIES):
                    try:
                        return await call()
                    except RPCError as exc:
                        busy = exc.status == RPCStatusCode.RESOURCE_EXHAUSTED or "in-flight updates" in exc.message
                        if not busy or attempt == BUSY_RETRIES - 1:
                            raise
                        await asyncio.sleep(0.05 * 2**attempt * (0.5 + random.random()))
                raise AssertionError("unreachable")
        finally:
            semaphore, users = self._inflight[workflow_id]
            if users <= 1:
                del self._inflight[workflow_id]
            else:
                self._inflight[workflow_id] = (semaphore, users - 1)

    def reject(self, delivery: Delivery, report: Report | None = None) -> Report:
        """Record the alerts of `delivery` that could not be taken: answered, kept in the unrouted list, counted."""
        report = report or Report()
        for bad in delivery.rejected:
            record = self._record(bad.status, bad.fingerprint, bad.labels, f"invalid alert: {bad.reason}")
            report.rejected.append({"index": bad.index, **record})
            self.metrics.inc("incidentctl_alerts_rejected_total")
        return report

    async def deliver(self, delivery: Delivery) -> Report:
        report = self.reject(delivery)
        for alert, reason in delivery.not_delivered:
            self._unrouted(report, alert, reason)
        groups: dict[tuple[str, str], tuple[Route, list[dict[str, Any]]]] = {}
        for alert in delivery.alerts:
            self.metrics.inc("incidentctl_alerts_total", status=alert["status"])
            route = self.router.route(alert["labels"])
            if route is None:
                self._unrouted(report, alert, "no runbook trigger matches")
                continue
            key = incident_key(route, alert, delivery.group_labels, self.router.key_labels)
            groups.setdefault((route.runbook, key), (route, []))[1].append(alert)
        for (_, key), (route, alerts) in groups.items():
            outcome = await self._deliver_group(route, key, alerts, delivery, report)
            if outcome:
                report.outcomes.append(outcome)
        return report

    def _record(self, status: str, fingerprint: str, labels: dict[str, str], reason: str) -> dict[str, Any]:
        record = {"received_at": datetime.now(UTC).isoformat(), "reason": reason, "status": status,
                  "fingerprint": fingerprint, "labels": labels}
        self.unrouted.append(record)
        log.warning("alert not taken (%s): %s", reason, labels.get("alertname", "?"))
        return record

    def _unrouted(self, report: Report, alert: dict[str, Any], reason: str) -> None:
        report.unrouted.append(self._record(alert["status"], alert["fingerprint"], alert["labels"], reason))
        self.metrics.inc("incidentctl_alerts_unrouted_total")

    async def _deliver_group(self, route: Route, key: str, alerts: list[dict[str, Any]], delivery: Delivery,
                             report: Report) -> Outcome | None:
        workflow_id = incident_id(route.runbook, key)
        notification = AlertNotification(alerts=alerts, group_key=delivery.group_key, receiver=delivery.receiver,
                                         source=delivery.source)
        target = target_of(route.target, alerts[0])
        if all(a["status"] == "resolved" for a in alerts):
            owner = await self._call(workflow_id, self.targets.owner(target)) if target else None
            if owner and owner != workflow_id:
                notification.joined = _joined(target, route, workflow_id)
            return await self._resolve_only(route, owner or workflow_id, notification)
        first = next(a for a in alerts if a["status"] == "firing")
        try:
            inp = self._incident_input(route, workflow_id, first)
        except ParameterError as exc:
            for alert in alerts:
                self._unrouted(report, alert, f"runbook {route.runbook}: " + "; ".join(exc.problems))
            return None
        claimed = False
        if target:
            joined, owned = await self._to_target_owner(target, route, workflow_id, first, notification)
            if joined:
                return joined
            claimed = owned
            inp.target = target if owned else ""
        receipt = await self._start_or_update(route, workflow_id, inp, notification)
        if receipt.successor and await self._run_ended(workflow_id, receipt.run_id):
            # The re-fire closed the resolved incident (past its reopen window): it starts the next one.
            receipt, claimed = await self._start_or_update(route, workflow_id, inp, notification), False
        started = receipt.notifications == 1 and receipt.new_alerts > 0
        if target and inp.target:
            if started and not claimed:  # a new run of an incident this receiver knew: hold the target again
                await self._call(workflow_id, self.targets.claim(target, _claim(workflow_id, route, first)))
            self.targets.remember(target, workflow_id)
        if started:
            self.metrics.inc("incidentctl_incidents_started_total")
        self.metrics.inc("incidentctl_deliveries_total", result="started" if started else "updated")
        return Outcome(workflow_id, route.runbook, len(alerts), "started" if started else "updated",
                       receipt.notifications, receipt.firing)

    async def _start_or_update(self, route: Route, workflow_id: str, inp: IncidentInput,
                               notification: AlertNotification) -> AlertReceipt:
        start = WithStartWorkflowOperation(
            IncidentWorkflow.run, wire(inp), id=workflow_id, task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=incident_search_attributes(RUNNING, inp.severity, route.runbook, inp.service),
            static_summary=static_summary(route.plan, inp), static_details=static_details(route.plan, inp),
        )
        try:
            return await self._limited(workflow_id, lambda: self.client.execute_update_with_start_workflow(
                IncidentWorkflow.alert_notification, notification, start_workflow_operation=start,
                rpc_timeout=self.rpc_timeout,
            ))
        except (RPCError, RPCTimeoutOrCancelledError, WorkflowUpdateFailedError, RuntimeError) as exc:
            # The start operation holds the same failure; read it so asyncio does not report it as lost.
            try:
                await start.workflow_handle()
            except Exception:  # noqa: BLE001 - it is the failure already being reported
                pass
            raise self._unavailable(workflow_id, exc, exc) from None

    def _unavailable(self, workflow_id: str, what: object, exc: BaseException) -> TemporalUnavailable:
        """A delivery that recorded nothing: counted, and answered 503 so the sender retries."""
        self.metrics.inc("incidentctl_deliveries_total", result="failed")
        hint = " (no worker answered: is one running?)" if isinstance(exc, RPCTimeoutOrCancelledError) else ""
        return TemporalUnavailable(f"incident {workflow_id}: {what}{hint}")

    async def _run_ended(self, workflow_id: str, run_id: str, wait_s: float = 30.0) -> bool:
        """Whether that run of the incident ended within `wait_s` (it closes itself right after answering)."""
        handle = self.client.get_workflow_handle(workflow_id, run_id=run_id)
        try:
            async with asyncio.timeout(wait_s):  # not wait_for, which on 3.11 can drop a shutdown's cancel
                await handle.result(follow_runs=False)
        except TimeoutError:
            log.warning("incident %s did not end after handing over to a new incident", workflow_id)
            return False
        except Exception:  # noqa: BLE001 - it ended, in whatever way
            return True
        return True

    async def _call(self, workflow_id: str, call: Awaitable[Any]) -> Any:
        """A call to a target's workflow, with failures answered as for the incident's own (503: retry)."""
        try:
            return await call
        except (RPCError, RPCTimeoutOrCancelledError, WorkflowUpdateFailedError, RuntimeError) as exc:
            raise self._unavailable(workflow_id, f"target: {exc}", exc) from None

    async def _to_target_owner(self, target: str, route: Route, workflow_id: str, first: dict[str, Any],
                               notification: AlertNotification) -> tuple[Outcome | None, bool]:
        """Deliver to the incident already open for `target`, if another one is: (its outcome, False) then;
        (None, True) when this group's own incident holds the target; (None, False) when the owner could
        not be reached twice (the group opens its own incident, not holding the target)."""
        known = self.targets.known_owner(target)
        if known == workflow_id:
            return None, True
        joined = AlertNotification(**{**vars(notification), "joined": _joined(target, route, workflow_id)})
        stale = ""
        if known:
            outcome = await self._join(known, joined, route)
            if outcome:
                return outcome, False
            self.targets.forget(target)
            stale = known
        for _ in range(2):
            claim = _claim(workflow_id, route, first, stale)
            owner = await self._call(workflow_id, self.targets.claim(target, claim))
            if owner == workflow_id:
                return None, True
            outcome = await self._join_once_started(owner, joined, route)
            if outcome:
                self.targets.remember(target, owner)
                return outcome, False
            stale = owner  # it closed while the target still named it
        return None, False

    async def _join_once_started(self, owner: str, notification: AlertNotification,
                                 route: Route) -> Outcome | None:
        """`_join`, waiting while the owner is claimed but not started yet: another group of the same burst
        claimed the target a moment ago and is starting its incident now. Taking the target over then would
        open a second incident for one broken thing; only an owner that ran and ended, or that never started
        within OWNER_START_WAIT (its receiver failed between claim and start), is replaced."""
        deadline = asyncio.get_running_loop().time() + OWNER_START_WAIT.total_seconds()
        pause = 0.05
        while True:
            outcome = await self._join(owner, notification, route)
            if outcome:
                return outcome
            if await self._ever_started(owner):  # it started just now, or it ran and ended: one more try tells
                return await self._join(owner, notification, route)
            if asyncio.get_running_loop().time() + pause > deadline:
                log.warning("incident %s holds its target but did not start: taking the target over", owner)
                return None
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)

    async def _ever_started(self, workflow_id: str) -> bool:
        try:
            await self.client.get_workflow_handle(workflow_id).describe(rpc_timeout=self.rpc_timeout)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return False
            raise self._unavailable(workflow_id, f"owner: {exc.message}", exc) from None
        except RPCTimeoutOrCancelledError as exc:
            raise self._unavailable(workflow_id, f"owner: {exc}", exc) from None
        return True

    async def _join(self, owner: str, notification: AlertNotification, route: Route) -> Outcome | None:
        """Deliver to another incident (no start); None when it is no longer running."""
        receipt = await self._update_open(owner, notification)
        if receipt is None or (receipt.successor and await self._run_ended(owner, receipt.run_id)):
            return None  # gone, or it closed on this re-fire: the target is asked again
        self.metrics.inc("incidentctl_deliveries_total", result="joined")
        return Outcome(owner, route.runbook, len(notification.alerts), "joined", receipt.notifications,
                       receipt.firing)

    async def _resolve_only(self, route: Route, workflow_id: str, notification: AlertNotification) -> Outcome:
        receipt = await self._update_open(workflow_id, notification)
        if receipt is None:
            self.metrics.inc("incidentctl_deliveries_total", result="closed")
            return Outcome(workflow_id, route.runbook, len(notification.alerts), "closed")
        self.metrics.inc("incidentctl_deliveries_total", result="updated")
        return Outcome(workflow_id, route.runbook, len(notification.alerts), "updated", receipt.notifications,
                       receipt.firing)

    async def _update_open(self, workflow_id: str, notification: AlertNotification) -> AlertReceipt | None:
        """Deliver to a running incident without starting one; None when it is not running."""
        handle = self.client.get_workflow_handle(workflow_id)
        try:
            return await self._limited(workflow_id, lambda: handle.execute_update(
                IncidentWorkflow.alert_notification, notification, rpc_timeout=self.rpc_timeout))
        except RPCError as exc:
            if gone(exc):
                return None
            raise self._unavailable(workflow_id, exc.message, exc) from None
        except (WorkflowUpdateFailedError, RPCTimeoutOrCancelledError) as exc:
            raise self._unavailable(workflow_id, getattr(exc, "cause", None) or exc, exc) from None

    def _incident_input(self, route: Route, workflow_id: str, alert: dict[str, Any]) -> IncidentInput:
        plan = route.plan
        params = resolve_params(plan, {}, alert)
        service = str(expressions.render(plan.runbook.service or "", {"params": params, "alert": alert}) or "")
        started_by = f"alert:{alert['labels'].get('alertname')}"
        proof = "" if self.signing_key is None else sign(
            self.signing_key, workflow_id, StartClaim(started_by=started_by, plan_hash=plan.hash))
        return IncidentInput(incident_id=workflow_id, plan=route.plan.wire_json, params=params, alert=alert,
                             severity=self.router.severity(route, alert["labels"]), service=service,
                             started_by=started_by, track_refires=True, groups=self.groups,
                             plan_signature=sign_plan(plan.hash), start_proof=proof)


def _joined(target: str, route: Route, workflow_id: str) -> dict[str, Any]:
    return {"target": target, "runbook": route.runbook, "incident_key": workflow_id}


def _claim(workflow_id: str, route: Route, alert: dict[str, Any], stale_owner: str = "") -> Claim:
    return Claim(incident_id=workflow_id, runbook=route.runbook, alertname=str(alert["labels"].get("alertname", "")),
                 stale_owner=stale_owner)
