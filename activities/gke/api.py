"""Talking to GKE with google-cloud-container: the client, one call, what errors mean, and operations.

The client uses the REST transport. `INCIDENTCTL_GKE_ENDPOINT` points it elsewhere than container.googleapis.com
(a private endpoint, or the local fake tests run); credentials are Application Default Credentials, except for
a plain `http://` endpoint, which gets anonymous ones: a Google token must never travel unencrypted, and only a
local fake or proxy listens on plain HTTP.

Errors: permission denied and not found cannot be fixed by retrying (non-retryable, naming the IAM permission the
call needs); throttling, unavailability, timeouts and "the cluster is running an incompatible operation" are
transient (retried by the step's retry policy). The SDK is imported inside functions: building the action
catalog must not load it.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from activities import heartbeats
from activities.errors import ActionError
from incidentctl.dsl.durations import parse_duration

ENDPOINT_ENV = "INCIDENTCTL_GKE_ENDPOINT"
RUNNING_STATUSES = ("PENDING", "RUNNING")
# IAM permissions, for the message of a refused call (roles: docs/gke.md).
READ_CLUSTER = "container.clusters.get"
READ_OPERATIONS = "container.operations.get"
LIST_OPERATIONS = "container.operations.list"
UPDATE_CLUSTER = "container.clusters.update"

_REQUEST_PREFIX = re.compile(r"^(GET|POST|PUT|PATCH|DELETE) \S+: ")
_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


@dataclass(frozen=True)
class PoolRef:
    """A node pool (or, with `node_pool` empty, a cluster) by its resource names."""

    project: str
    location: str
    cluster: str
    node_pool: str = ""

    @classmethod
    def of(cls, params: dict[str, Any]) -> PoolRef:
        return cls(params["project"], params["location"], params["cluster"], params.get("node_pool") or "")

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.location}"

    @property
    def cluster_name(self) -> str:
        return f"{self.parent}/clusters/{self.cluster}"

    @property
    def pool_name(self) -> str:
        return f"{self.cluster_name}/nodePools/{self.node_pool}"

    def operation_name(self, operation: str) -> str:
        """An operation's full name from its id (`operation-123`) or its full name."""
        return operation if operation.startswith("projects/") else f"{self.parent}/operations/{operation}"

    def describe(self) -> str:
        where = f"{self.project}/{self.location}/{self.cluster}"
        return f"node pool {self.node_pool} of cluster {where}" if self.node_pool else f"cluster {where}"


def cluster_manager() -> Any:
    """One ClusterManagerClient per endpoint for the life of the worker."""
    endpoint = os.environ.get(ENDPOINT_ENV, "")
    with _clients_lock:
        client = _clients.get(endpoint)
        if client is None:
            client = _clients[endpoint] = _build(endpoint)
        return client


def _build(endpoint: str) -> Any:
    from google.cloud import container_v1

    if not endpoint:
        return container_v1.ClusterManagerClient(transport="rest")
    credentials = None
    if endpoint.startswith("http://"):
        from google.auth.credentials import AnonymousCredentials

        credentials = AnonymousCredentials()
    return container_v1.ClusterManagerClient(transport="rest", client_options={"api_endpoint": endpoint},
                                             credentials=credentials)


def gke_error(exc: Exception, what: str, permission: str) -> ActionError:
    """What an SDK exception means for the step, in one sentence naming the object."""
    from google.api_core import exceptions as google_errors
    from google.auth import exceptions as auth_errors

    # The REST transport prefixes GKE's own message with the method and URL: the URL says nothing `what` does not.
    message = _REQUEST_PREFIX.sub("", getattr(exc, "message", None) or str(exc), count=1)
    if isinstance(exc, google_errors.Forbidden | google_errors.Unauthorized):
        return ActionError(f"permission denied on {what}: the worker's Google identity needs {permission} "
                           f"({message})", type="GkePermissionDenied", non_retryable=True)
    if isinstance(exc, auth_errors.DefaultCredentialsError):
        return ActionError(f"no Google credentials for {what}: set up Application Default Credentials "
                           f"({message})", type="GkePermissionDenied", non_retryable=True)
    if isinstance(exc, google_errors.NotFound):
        return ActionError(f"{what} not found ({message})", type="GkeNotFound", non_retryable=True)
    if isinstance(exc, google_errors.Conflict) or (isinstance(exc, google_errors.BadRequest)
                                                   and "incompatible operation" in message):
        return ActionError(f"{what}: the cluster is busy with another operation ({message})", type="GkeBusy")
    if isinstance(exc, google_errors.BadRequest | google_errors.MethodNotAllowed):
        return ActionError(f"{what}: GKE refused the request ({message})", type="GkeInvalidRequest",
                           non_retryable=True)
    return ActionError(f"{what}: GKE did not answer ({type(exc).__name__}: {message})", type="GkeUnavailable")


async def call(method: str, request: dict[str, Any], *, what: str, permission: str, timeout_s: float) -> Any:
    """`ClusterManagerClient.<method>(request)` on a thread; SDK errors become ActionErrors."""
    import requests
    from google.api_core import exceptions as google_errors
    from google.auth import exceptions as auth_errors

    def run() -> Any:
        # No SDK retry: transient failures go back to the step's retry policy, which the runbook controls.
        return getattr(cluster_manager(), method)(request=request, timeout=timeout_s, retry=None)

    try:
        return await asyncio.to_thread(run)
    except (google_errors.GoogleAPIError, requests.RequestException, auth_errors.GoogleAuthError) as exc:
        raise gke_error(exc, what, permission) from exc


def enum_name(value: Any) -> str:
    return getattr(value, "name", str(value))


def operation_record(op: Any) -> dict[str, Any]:
    """An operation as a step's output: id, type, status, what it targets, its error if it failed."""
    status = enum_name(op.status)
    error = op.error.message if op.error and op.error.message else (op.status_message or None)
    return {"name": op.name, "type": enum_name(op.operation_type), "status": status, "done": status == "DONE",
            "target": op.target_link, "start_time": op.start_time or None, "end_time": op.end_time or None,
            "error": error if status == "DONE" and error else None}


async def running_operations(ref: PoolRef, timeout_s: float) -> list[dict[str, Any]]:
    """Operations still running on `ref`'s node pool (or, with no pool, anywhere in its cluster)."""
    listed = await call("list_operations", {"parent": ref.parent}, what=f"operations in {ref.parent}",
                        permission=LIST_OPERATIONS, timeout_s=timeout_s)
    ops = [operation_record(op) for op in listed.operations]
    return [op for op in ops if op["status"] in RUNNING_STATUSES and targets(ref, op["target"])]


def targets(ref: PoolRef, target_link: str) -> bool:
    """Whether an operation's target link is `ref`'s node pool (or, with no pool, its cluster or anything in it).

    By cluster and pool name only: operations are listed per project and location already, and GKE's target links
    may name the project by number and the location as `zones/`."""
    cluster = f"/clusters/{ref.cluster}"
    if ref.node_pool:
        return target_link.endswith(f"{cluster}/nodePools/{ref.node_pool}")
    return target_link.endswith(cluster) or f"{cluster}/" in target_link


async def wait_operation(ref: PoolRef, operation: str, params: dict[str, Any], *, mine: bool = False,
                         on_poll: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Poll an operation until it is DONE (heartbeating), within `params["timeout"]`; fails if it failed.

    The heartbeat says whether this step started the operation (`mine`): a retry resumes only its own, never one
    it was waiting out. A transient error while polling does not end the wait: the operation runs on in GKE
    whatever our reads do."""
    name = ref.operation_name(operation)
    deadline = time.monotonic() + parse_duration(params["timeout"])
    poll_s = parse_duration(params["poll"])
    last: ActionError | None = None
    while True:
        try:
            op = operation_record(await call("get_operation", {"name": name}, what=f"operation {name}",
                                             permission=READ_OPERATIONS, timeout_s=params["api_timeout"]))
        except ActionError as exc:
            if exc.non_retryable:
                raise
            last = exc
        else:
            heartbeats.heartbeat({"operation": name, "status": op["status"], "mine": mine})
            if on_poll:
                on_poll(op)
            if op["done"]:
                if op["error"]:
                    raise ActionError(f"operation {op['name']} on {ref.describe()} failed: {op['error']}",
                                      op, type="GkeOperationFailed", non_retryable=True)
                return op
        if time.monotonic() >= deadline:
            why = f" (last error: {last.message})" if last else ""
            raise ActionError(f"operation {name} on {ref.describe()} did not finish within {params['timeout']}"
                              f"{why}", type="GkeOperationTimeout", non_retryable=True)
        await asyncio.sleep(poll_s)


async def wait_for_running(ref: PoolRef, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Wait for every operation already running on the pool (a previous attempt's, or anyone's): GKE refuses a
    second one while one runs, and ours must apply after theirs."""
    waited = []
    for op in await running_operations(ref, params["api_timeout"]):
        waited.append(await wait_operation(ref, op["name"], params))
    return waited


def previous_operation() -> str | None:
    """The operation a previous attempt of this step started (its heartbeat details), if any."""
    for detail in heartbeats.previous_details():
        if isinstance(detail, dict) and detail.get("operation") and detail.get("mine"):
            return str(detail["operation"])
    return None


def autoscaling_record(autoscaling: Any) -> dict[str, Any]:
    if not autoscaling or not autoscaling.enabled:
        return {"enabled": False, "min_node_count": None, "max_node_count": None}
    return {"enabled": True, "min_node_count": autoscaling.min_node_count,
            "max_node_count": autoscaling.max_node_count}


def pool_record(pool: Any) -> dict[str, Any]:
    return {"name": pool.name, "status": enum_name(pool.status), "status_message": pool.status_message or None,
            "version": pool.version, "locations": list(pool.locations), "zones": max(len(pool.locations), 1),
            "initial_node_count": pool.initial_node_count, "autoscaling": autoscaling_record(pool.autoscaling)}


async def read_pool(ref: PoolRef, timeout_s: float) -> Any:
    return await call("get_node_pool", {"name": ref.pool_name}, what=ref.describe(), permission=READ_CLUSTER,
                      timeout_s=timeout_s)


def refuse(message: str, kind: str = "RefusedByBound") -> ActionError:
    """A request the action will not carry out (over a bound); retrying would not change the answer."""
    return ActionError(message, type=kind, non_retryable=True)
