"""Which incident an alert group goes to when its target already has one open (docs/lifecycle.md).

The answer comes from the target's TargetWorkflow (`claim`, an update-with-start, so two receivers asking at
once get one owner). Owners this receiver has delivered to are remembered, so a group's later notifications
cost one update, as before; a remembered owner that turns out closed is forgotten and the target asked again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from workflows.target_state import Claim
from workflows.targets import TargetInput, TargetWorkflow, target_workflow_id

OWNERS_KEPT = 10_000
Limited = Callable[[str, Callable[[], Awaitable[Any]]], Awaitable[Any]]


def gone(exc: RPCError) -> bool:
    """The workflow the update was for is not running (never started, or completed)."""
    return exc.status == RPCStatusCode.NOT_FOUND or "already completed" in exc.message


class TargetDirectory:
    def __init__(self, client: Client, task_queue: str, rpc_timeout: timedelta, limited: Limited) -> None:
        self.client = client
        self.task_queue = task_queue
        self.rpc_timeout = rpc_timeout
        self.limited = limited
        self._owners: OrderedDict[str, str] = OrderedDict()

    def known_owner(self, target: str) -> str | None:
        return self._owners.get(target)

    def remember(self, target: str, owner: str) -> None:
        self._owners[target] = owner
        self._owners.move_to_end(target)
        while len(self._owners) > OWNERS_KEPT:
            self._owners.popitem(last=False)

    def forget(self, target: str) -> None:
        self._owners.pop(target, None)

    async def claim(self, target: str, claim: Claim) -> str:
        """The incident open for `target`: an earlier claimant, or `claim.incident_id` now."""
        workflow_id = target_workflow_id(target)
        start = WithStartWorkflowOperation(TargetWorkflow.run, TargetInput(target=target), id=workflow_id,
                                           task_queue=self.task_queue,
                                           id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
        try:
            receipt = await self.limited(workflow_id, lambda: self.client.execute_update_with_start_workflow(
                TargetWorkflow.claim, claim, start_workflow_operation=start, rpc_timeout=self.rpc_timeout))
        except BaseException:
            try:  # the start operation holds the same failure; read it so asyncio does not report it as lost
                await start.workflow_handle()
            except Exception:  # noqa: BLE001 - it is the failure being raised
                pass
            raise
        return str(receipt.owner)

    async def owner(self, target: str) -> str | None:
        """The incident open for `target`, asked without starting anything (resolved alerts)."""
        known = self.known_owner(target)
        if known:
            return known
        handle = self.client.get_workflow_handle(target_workflow_id(target))
        try:
            owner = await self.limited(handle.id, lambda: handle.execute_update(
                TargetWorkflow.owner, rpc_timeout=self.rpc_timeout))
        except RPCError as exc:
            if gone(exc):
                return None
            raise
        return str(owner) or None
