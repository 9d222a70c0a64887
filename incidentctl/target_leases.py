"""The activity that hands an incident's lease request to its object's TargetWorkflow.

A workflow can signal another workflow but not start one; signal-with-start does both atomically, so the
first request for an object starts its TargetWorkflow and later ones join it. The request id makes a retried
delivery harmless (the target ignores ids it has seen).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from temporalio.client import Client

from workflows.leases import REQUEST_ACTIVITY
from workflows.target_state import LeaseCall
from workflows.targets import REQUEST_SIGNAL, TargetInput, TargetWorkflow, target_workflow_id


class TargetLeases:
    def __init__(self, client: Client) -> None:
        self._client = client

    def activities(self) -> list[Callable[..., Any]]:
        _define_activities()
        return [self.request_lease]

    async def request_lease(self, call: LeaseCall) -> str:
        """Send the request to the object's TargetWorkflow; the object's key, with the cluster named by the
        API server the worker reaches (so two contexts or users of one cluster share the lease)."""
        from temporalio import activity

        target = await asyncio.to_thread(resolved_target, call.target, call.request.params)
        await self._client.start_workflow(
            TargetWorkflow.run, TargetInput(target=target),
            id=target_workflow_id(target), task_queue=activity.info().task_queue,
            start_signal=REQUEST_SIGNAL, start_signal_args=[call.request])
        return target


def resolved_target(target: str, params: dict[str, Any]) -> str:
    """`k8s/<context>/...` with the context replaced by its API server; unchanged when that cannot be told
    (the action itself will then report what is wrong with its kubeconfig)."""
    if not target.startswith("k8s/"):
        return target
    from activities.errors import ActionError
    from activities.k8s.api import cluster_server

    try:
        server = cluster_server(params)
    except ActionError:
        return target
    _, _, rest = target[len("k8s/"):].partition("/")
    return f"k8s/{server}/{rest}" if server else target


@functools.cache
def _define_activities() -> None:
    from temporalio import activity

    activity.defn(name=REQUEST_ACTIVITY)(TargetLeases.request_lease)
