"""Kubernetes clients for GKE clusters named by a k8s step's `context: gke://project/location/cluster`, so a
runbook needs no kubeconfig for them: the API server's endpoint and CA are read through the GKE API, and requests
carry a Google access token from Application Default Credentials (what `gke-gcloud-auth-plugin` does for kubectl).

A client is kept for REBUILD_AFTER_S and then rebuilt from a fresh read, so a rotated CA or a moved endpoint is
picked up; the token is refreshed before it expires, on the request that finds it stale.
"""

from __future__ import annotations

import base64
import os
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from activities.errors import ActionError
from activities.gke.api import ENDPOINT_ENV, READ_CLUSTER, PoolRef, cluster_manager, gke_error

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

GKE_CONTEXT = "gke://"
REBUILD_AFTER_S = 600.0
READ_TIMEOUT_S = 30.0
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
# A plain-HTTP Kubernetes endpoint gets the token only on this machine (a test's simulated cluster).
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}

# By (GKE API endpoint, context): one name on two GKE APIs (a fake, a private endpoint) is two clusters.
_clients: dict[tuple[str, str], tuple[float, ApiClient]] = {}
_clients_lock = threading.Lock()


def is_gke_context(context: str | None) -> bool:
    return bool(context) and str(context).startswith(GKE_CONTEXT)


def parse_context(context: str) -> PoolRef:
    parts = context[len(GKE_CONTEXT):].split("/")
    if len(parts) != 3 or not all(parts):
        raise ActionError(f"context {context!r} does not name a GKE cluster: write gke://project/location/cluster",
                          type="KubeConfig", non_retryable=True)
    return PoolRef(*parts)


def gke_api_client(context: str) -> ApiClient:
    """The Kubernetes client for `gke://project/location/cluster`, built once per REBUILD_AFTER_S."""
    key = (os.environ.get(ENDPOINT_ENV, ""), context)
    with _clients_lock:
        cached = _clients.get(key)
        if cached is not None and time.monotonic() - cached[0] < REBUILD_AFTER_S:
            return cached[1]
    built = _build(parse_context(context))
    with _clients_lock:
        _clients[key] = (time.monotonic(), built)
    return built


def _read_cluster(ref: PoolRef) -> Any:
    from google.api_core import exceptions as google_errors

    try:
        return cluster_manager().get_cluster(request={"name": ref.cluster_name}, timeout=READ_TIMEOUT_S, retry=None)
    except google_errors.GoogleAPIError as exc:
        raise gke_error(exc, ref.describe(), READ_CLUSTER) from exc


def _token_source(ref: PoolRef) -> Callable[[], str]:
    """A function returning a valid access token of the worker's Application Default Credentials."""
    import google.auth
    from google.auth import exceptions as auth_errors
    from google.auth.transport.requests import Request

    try:
        credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
    except auth_errors.GoogleAuthError as exc:
        raise gke_error(exc, ref.describe(), "container.clusters.get (and Kubernetes RBAC)") from exc
    lock = threading.Lock()

    def token() -> str:
        with lock:
            if not credentials.valid:
                credentials.refresh(Request())
            return str(credentials.token)

    return token


def _ca_file(ca_certificate: str) -> str | None:
    if not ca_certificate:
        return None
    with tempfile.NamedTemporaryFile("wb", prefix="incidentctl-gke-ca-", suffix=".pem", delete=False) as file:
        file.write(base64.b64decode(ca_certificate))
        return file.name


def _build(ref: PoolRef) -> ApiClient:
    from google.auth import exceptions as auth_errors
    from kubernetes import client

    cluster = _read_cluster(ref)
    host = cluster.endpoint if "://" in cluster.endpoint else f"https://{cluster.endpoint}"
    parsed = urllib.parse.urlsplit(host)
    if parsed.scheme != "https" and parsed.hostname not in _LOOPBACK:
        raise ActionError(f"{ref.describe()} has a plain-HTTP endpoint {host}: refused, a Google token never "
                          "travels unencrypted", type="KubeConfig", non_retryable=True)
    token = _token_source(ref)
    configuration = client.Configuration()
    configuration.host = host
    configuration.ssl_ca_cert = _ca_file(cluster.master_auth.cluster_ca_certificate)
    configuration.api_key_prefix = {"authorization": "Bearer"}
    try:
        configuration.api_key = {"authorization": token()}
    except auth_errors.GoogleAuthError as exc:
        raise gke_error(exc, ref.describe(), "a token from Application Default Credentials") from exc

    def refresh(conf: Any) -> None:
        conf.api_key["authorization"] = token()

    configuration.refresh_api_key_hook = refresh
    return client.ApiClient(configuration)
