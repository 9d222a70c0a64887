"""Talking to a Kubernetes API server with the official client: which cluster, one call, and what errors mean.

Every action takes the same connection params (`CONNECTION`): `kubeconfig` (a path, or `in-cluster` for the
pod's service account; default `$INCIDENTCTL_KUBECONFIG`, `$KUBECONFIG`, `~/.kube/config`, else in-cluster when
running in a pod) and `context` (default: the kubeconfig's current one). A runbook can address several
clusters by giving steps different contexts.

Calls go through the typed API classes but read raw JSON (`_preload_content=False`): outputs land in
workflow history as plain JSON, the way `kubectl get -o json` shows objects.
Transient failures (timeouts, connection errors, 429/500/502/503/504) are retried here with exponential
backoff; what retrying cannot fix becomes a non-retryable ActionError in one sentence.

The `kubernetes` SDK (some 360 modules) is imported by the functions that talk to a cluster, not at import time:
building the action catalog (the compiler, `incidentctl actions list`) must not pay for it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from activities import heartbeats
from activities.aws.eks_access import eks_api_client, is_eks_context
from activities.errors import ActionError
from activities.gke.kubernetes_access import gke_api_client, is_gke_context
from activities.k8s.schemas import DEFAULT_API_TIMEOUT_S
from incidentctl.dsl.durations import parse_duration

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

IN_CLUSTER = "in-cluster"
# Content types of the three kinds of PATCH the API server accepts.
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
TRANSIENT_STATUSES = {429, 500, 502, 503, 504}
ATTEMPTS = 4
FIRST_BACKOFF_S = 0.5
_log = logging.getLogger(__name__)

# `api` argument of call() -> class of kubernetes.client
_API_CLASSES = {
    "core": "CoreV1Api",
    "apps": "AppsV1Api",
    "policy": "PolicyV1Api",
    "networking": "NetworkingV1Api",
    "custom": "CustomObjectsApi",
}


class KubeError(Exception):
    """An API answer that is not success, with what we asked for (for messages that name the object)."""

    def __init__(self, status: int, message: str, reason: str = "", body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.body = body


@dataclass(frozen=True)
class Target:
    """What a call is about, to word errors: verb, resource (`deployments.apps`), namespace, name."""

    verb: str
    resource: str
    namespace: str = ""
    name: str = ""

    def describe(self) -> str:
        what = f'{self.resource} "{self.name}"' if self.name else self.resource
        return f'{what} in namespace "{self.namespace}"' if self.namespace else what


_clients: dict[tuple[str, str], tuple[float, ApiClient]] = {}
_clients_lock = threading.Lock()


def _kubeconfig_path(params: dict[str, Any]) -> str:
    explicit = params.get("kubeconfig") or os.environ.get("INCIDENTCTL_KUBECONFIG")
    if explicit:
        return explicit
    env = os.environ.get("KUBECONFIG")
    if env:
        return env.split(os.pathsep)[0]
    default = Path.home() / ".kube" / "config"
    if default.exists() or not os.environ.get("KUBERNETES_SERVICE_HOST"):
        return str(default)
    return IN_CLUSTER


def api_client(params: dict[str, Any]) -> ApiClient:
    """One ApiClient per (kubeconfig, context), rebuilt when the file changes (rotated tokens, new clusters).
    A context `gke://project/location/cluster` names a GKE cluster, `eks://region/cluster` an EKS cluster, reached
    without a kubeconfig."""
    context = params.get("context") or ""
    if is_gke_context(context):
        return gke_api_client(context)
    if is_eks_context(context):
        return eks_api_client(context)
    path = _kubeconfig_path(params)
    if path == IN_CLUSTER:
        stamp = 0.0
    else:
        try:
            stamp = Path(path).stat().st_mtime
        except OSError:
            raise ActionError(f"kubeconfig {path} does not exist or cannot be read", type="KubeConfig",
                              non_retryable=True) from None
    key = (path, context)
    with _clients_lock:
        cached = _clients.get(key)
        if cached is None or cached[0] != stamp:
            # The stale client is dropped, not closed: a call on another thread may still be using it.
            cached = _clients[key] = (stamp, _load(path, context))
        return cached[1]


def cluster_server(params: dict[str, Any]) -> str:
    """The API server (host:port) the params reach: names one cluster whatever context or user leads there."""
    host = str(api_client(params).configuration.host or "")
    return host.split("://", 1)[-1].rstrip("/")


def current_context(params: dict[str, Any]) -> str:
    """The context a step without one reaches: the kubeconfig's current context (`in-cluster` in a pod)."""
    path = _kubeconfig_path(params)
    if path == IN_CLUSTER:
        return IN_CLUSTER
    from kubernetes import config

    try:
        _, active = config.list_kube_config_contexts(config_file=path)
    except (config.ConfigException, ValueError, OSError) as exc:
        raise ActionError(f"cannot load kubeconfig {path}: {exc}", type="KubeConfig", non_retryable=True) from None
    return str(active["name"])


def _load(path: str, context: str) -> ApiClient:
    from kubernetes import client, config

    try:
        if path == IN_CLUSTER:
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            return client.ApiClient(configuration)
        return config.new_client_from_config(config_file=path, context=context or None, persist_config=False)
    except (config.ConfigException, ValueError, OSError) as exc:
        where = "in-cluster config" if path == IN_CLUSTER else f"kubeconfig {path}" + (
            f" context {context!r}" if context else "")
        raise ActionError(f"cannot load {where}: {exc}", type="KubeConfig", non_retryable=True) from None


def heartbeat(details: Any) -> None:
    """Heartbeat with progress `details` when running as an activity (tests also call actions directly)."""
    heartbeats.heartbeat(details)


def _decode(response: Any) -> Any:
    return _json_or_text(response.data)


def _json_or_text(data: Any) -> Any:
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return data.decode(errors="replace") if isinstance(data, bytes) else str(data)


def _raise_for(response: Any) -> None:
    if response.status < 400:
        return
    body = _decode(response)
    message = body.get("message", "") if isinstance(body, dict) else str(body or "")[:300]
    reason = body.get("reason", "") if isinstance(body, dict) else ""
    raise KubeError(response.status, message or f"HTTP {response.status}", reason, body)


def _call_once(params: dict[str, Any], api: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any],
               text: bool) -> Any:
    from kubernetes import client

    instance = getattr(client, _API_CLASSES[api])(api_client(params))
    # Actions get api_timeout from their schema's default; direct callers (tests) may leave it out.
    timeout = float(params.get("api_timeout", DEFAULT_API_TIMEOUT_S))
    try:
        response = getattr(instance, method)(*args, _preload_content=False, _request_timeout=timeout, **kwargs)
    except client.ApiException as exc:
        body = _json_or_text(exc.body)
        message = body.get("message", "") if isinstance(body, dict) else str(body or "")[:300]
        raise KubeError(exc.status or 0, message or f"HTTP {exc.status} {exc.reason}",
                        body.get("reason", "") if isinstance(body, dict) else "", body) from None
    try:
        _raise_for(response)
        return response.data.decode(errors="replace") if text else _decode(response)
    finally:
        response.release_conn()


async def call(params: dict[str, Any], target: Target, api: str, method: str, *args: Any, text: bool = False,
               **kwargs: Any) -> Any:
    """Call `<api>.<method>(*args, **kwargs)`; JSON (or text) on success, ActionError or KubeError on failure.

    KubeError is raised only for statuses the caller may want to handle itself (404, 409, 429 on eviction,
    422); use `fail()` to turn it into the standard ActionError.
    """
    from urllib3.exceptions import HTTPError  # the transport under the kubernetes client, loaded with it

    delay = FIRST_BACKOFF_S
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return await asyncio.to_thread(_call_once, params, api, method, args, kwargs, text)
        except KubeError as exc:
            if exc.status not in TRANSIENT_STATUSES or (exc.status == 429 and target.resource == "pods/eviction"):
                raise
            problem = f"{target.verb} {target.describe()}: API server answered {exc.status} ({exc})"
        except (HTTPError, OSError) as exc:
            problem = f"{target.verb} {target.describe()}: no answer from the API server ({type(exc).__name__})"
        if attempt == ATTEMPTS:
            raise ActionError(f"{problem}; gave up after {ATTEMPTS} attempts", type="KubeUnavailable")
        # Logged, not heartbeated: a heartbeat's details replace the action's own (a wait's clock), and the
        # action wrapper heartbeats anyway.
        _log.warning("retrying after: %s", problem)
        await asyncio.sleep(delay)
        delay *= 2
    raise AssertionError("unreachable")


def fail(exc: KubeError, target: Target) -> ActionError:
    """The one-sentence, correctly retryable ActionError for an API error."""
    if exc.status == 403:
        return ActionError(
            f"the worker's service account lacks verb {target.verb} on resource {target.resource}"
            + (f' in namespace "{target.namespace}"' if target.namespace else "") + f" (API server: {exc})",
            {"status": 403}, type="KubeForbidden", non_retryable=True)
    if exc.status == 401:
        return ActionError(f"the API server rejected the worker's credentials (401) while trying to "
                           f"{target.verb} {target.describe()}; check the kubeconfig and context",
                           {"status": 401}, type="KubeUnauthorized", non_retryable=True)
    if exc.status == 404:
        return ActionError(f"{target.describe()} not found", {"status": 404}, type="KubeNotFound",
                           non_retryable=True)
    if exc.status == 409:
        return ActionError(f"{target.verb} {target.describe()}: conflict ({exc}); retrying reads it again",
                           {"status": 409}, type="KubeConflict")
    return ActionError(f"{target.verb} {target.describe()}: API server answered {exc.status}: {exc}",
                       {"status": exc.status}, type="KubeRejected", non_retryable=True)


async def must(params: dict[str, Any], target: Target, api: str, method: str, *args: Any, text: bool = False,
               **kwargs: Any) -> Any:
    """`call`, with every API error turned into the standard ActionError (404 names a missing namespace)."""
    try:
        return await call(params, target, api, method, *args, text=text, **kwargs)
    except KubeError as exc:
        if exc.status == 404 and target.namespace and not await namespace_exists(params, target.namespace):
            raise namespace_missing(target.namespace, target.describe()) from None
        raise fail(exc, target) from None


def namespace_missing(namespace: str, looking_for: str) -> ActionError:
    """A typo in a namespace is named as such, rather than as the object not being found in it."""
    return ActionError(f'namespace "{namespace}" does not exist (looking for {looking_for})', {"status": 404},
                       type="KubeNotFound", non_retryable=True)


async def namespace_exists(params: dict[str, Any], namespace: str) -> bool:
    """True unless the API server says the namespace is not there (no permission to look counts as exists)."""
    try:
        await call(params, Target("get", "namespaces", name=namespace), "core", "read_namespace", namespace)
    except KubeError as exc:
        return exc.status != 404
    return True


def duration_param(params: dict[str, Any], key: str) -> float:
    """A duration param (`30s`, `5m`, seconds) in seconds; a malformed one fails the step at once, not on retry."""
    try:
        return parse_duration(params[key])
    except ValueError as exc:
        raise ActionError(f"invalid params: {key}: {exc}", type="InvalidParams", non_retryable=True) from None


def refuse(message: str, kind: str = "RefusedByBound", **details: Any) -> ActionError:
    """A request the action will not carry out (over a bound, unsafe); retrying would not change the answer."""
    return ActionError(message, *([details] if details else []), type=kind, non_retryable=True)


def dry_run_kwargs(dry_run: bool) -> dict[str, str]:
    """Server-side dry run: the API server validates and answers with the result, and persists nothing."""
    return {"dry_run": "All"} if dry_run else {}
