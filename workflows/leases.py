"""A mutating step holds its object's lease while it runs, so two incidents never change one object at once.

The lease lives in the object's TargetWorkflow (workflows/targets.py). The request goes out through a small
activity (a workflow cannot signal-with-start), the answer comes back as the incident's `lease_answer` signal,
the release is a signal. If another incident changed the object within its recent window, the step first asks
for a fresh approval whose message shows that change. Steps without a lease key (their action names none, or
a dry run that changes nothing) run as before. Kubernetes objects are named by the API server the worker
reaches (`k8s/<host:port>/<namespace>/<resource>/<name>`), so two contexts of one cluster share a lease.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

from incidentctl.dsl.allowed_changes import render_lease
from incidentctl.dsl.plan import Approval, Step
from workflows.context import IncidentRun
from workflows.errors import StepError
from workflows.target_state import LeaseAnswer, LeaseCall, LeaseRelease, LeaseRequest
from workflows.targets import RELEASE_SIGNAL, target_workflow_id

REQUEST_ACTIVITY = "target.request_lease"


def lease_key(template: str, params: dict[str, Any]) -> str:
    """The object a step changes, from its action's lease template and the step's rendered params."""
    return render_lease(template, params)


def describe_change(change: dict[str, Any]) -> str:
    who = ", ".join(change.get("approved_by") or []) or "no one"
    params = {k: v for k, v in (change.get("params") or {}).items() if v not in (None, "", [], {})}
    return (f"{change.get('action')} {params} by incident {change.get('incident_id')} (step {change.get('step')}) "
            f"at {change.get('at')}, approved by {who}: {change.get('outcome', 'done')}")


def fresh_approval_step(run: IncidentRun, step: Step, key: str, target: str, params: dict[str, Any],
                        changes: list[dict[str, Any]]) -> tuple[Step, str]:
    """The approval a step needs before changing `target` again; its key (approve with `--step KEY`)."""
    settings = run.active_plan.leases
    earlier = "; ".join(describe_change(c) for c in changes)
    message = (f"{target} was changed lately by another incident: {earlier}. "
               f"This incident's step {key} would now run {step.action} with {params}. Approve this change too?")
    approvers, groups = settings.people(run.active_plan)
    approval = Approval(message=message, approvers=approvers, groups=groups, timeout_s=settings.approval_timeout_s,
                        on_timeout="reject")
    return Step(id=f"{step.id}.confirm", kind="approval", approval=approval), f"{key}.confirm"


class Leases:
    def __init__(self, run: IncidentRun) -> None:
        self.run = run
        self.answers: dict[str, LeaseAnswer] = {}

    def on_answer(self, answer: LeaseAnswer) -> None:
        self.answers[answer.request_id] = answer

    async def acquire(self, step: Step, key: str, target: str, params: dict[str, Any]
                      ) -> tuple[str, str, LeaseAnswer]:
        """Wait for the lease (in request order) up to the runbook's `leases.wait`; the object's key as the
        cluster names it, the request id and the grant."""
        run, settings = self.run, self.run.active_plan.leases
        request_id = str(workflow.uuid4())
        assert step.timeout_s is not None and step.retry is not None
        hold_s = step.timeout_s * max(step.retry.max_attempts, 1) + settings.approval_timeout_s + 60
        request = LeaseRequest(request_id=request_id, incident_id=run.input.incident_id, step=key,
                               action=step.action or "", params=params, hold_s=hold_s,
                               recent_window_s=settings.recent_changes_s)
        # The activity answers with the object's key as the cluster names it (workflows/leases.py doc).
        target = await workflow.execute_activity(
            REQUEST_ACTIVITY, LeaseCall(target=target, request=request), result_type=str,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10), maximum_attempts=10))
        holder: dict[str, Any] | None = None
        deadline = run.now() + timedelta(seconds=settings.wait_s)
        while True:
            try:
                await workflow.wait_condition(lambda: request_id in self.answers,
                                              timeout=max(deadline - run.now(), timedelta(milliseconds=1)))
            except TimeoutError:
                await self.release(target, request_id, None)
                by = (f" by incident {holder.get('incident_id')} (step {holder.get('step')}, {holder.get('action')}"
                      f", since {holder.get('granted_at')})") if holder else ""
                raise StepError({"type": "LeaseBusy", "target": target, "holder": holder,
                                 "message": f"{target} is being changed{by}; waited {settings.wait_s:g}s for it"}
                                ) from None
            answer = self.answers.pop(request_id)
            if answer.granted:
                run.event("lease_granted", key, {"target": target, "recent_changes": len(answer.recent_changes)})
                return target, request_id, answer
            if holder is None:
                holder = answer.holder or {}
                run.event("lease_waiting", key, {"target": target, "holder": answer.holder})

    async def release(self, target: str, request_id: str, change: dict[str, Any] | None) -> None:
        handle = workflow.get_external_workflow_handle(target_workflow_id(target))
        try:
            await handle.signal(RELEASE_SIGNAL, LeaseRelease(request_id=request_id,
                                                             incident_id=self.run.input.incident_id, change=change))
        except Exception as exc:  # noqa: BLE001 - the target ended (the lease lapsed): nothing to release
            self.run.event("lease_release_failed", detail={"target": target, "error": str(exc)})
