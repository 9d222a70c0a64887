"""Kubernetes clients for EKS clusters named by a k8s step's `context: eks://region/cluster`, so a runbook needs no
kubeconfig for them: the API server's endpoint and CA come from eks:DescribeCluster, and requests carry the bearer
token `aws eks get-token` makes (what the EKS authenticator accepts): a presigned STS GetCallerIdentity URL whose
signature covers the header `x-k8s-aws-id: <cluster>`, base64url without padding, after `k8s-aws-v1.`.

The token proves the worker's AWS identity (the standard credential chain); the cluster maps that identity to
Kubernetes RBAC (an access entry or the aws-auth ConfigMap). Presigning is local, so a token is made afresh well
before EKS stops accepting it (15 minutes after signing). A client is rebuilt from a fresh DescribeCluster after
REBUILD_AFTER_S, so a rotated CA or a moved endpoint is picked up.
"""

from __future__ import annotations

import base64
import re
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from activities.aws.api import _config, as_action_error, aws_call_of, client, endpoint_url
from activities.errors import ActionError

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

EKS_CONTEXT = "eks://"
TOKEN_PREFIX = "k8s-aws-v1."
CLUSTER_ID_HEADER = "x-k8s-aws-id"
# As `aws eks get-token`: the URL's own expiry; EKS accepts a token for 15 minutes after it was signed.
PRESIGN_EXPIRES_S = 60
TOKEN_REUSE_S = 600.0
REBUILD_AFTER_S = 600.0
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]+$")
# A plain-HTTP Kubernetes endpoint gets the token only on this machine (a test's simulated cluster).
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}

# By (AWS endpoint, context): one name behind two AWS endpoints (moto, a VPC endpoint proxy) is two clusters.
_clients: dict[tuple[str, str], tuple[float, ApiClient]] = {}
_clients_lock = threading.Lock()


def is_eks_context(context: str | None) -> bool:
    return bool(context) and str(context).startswith(EKS_CONTEXT)


def parse_context(context: str) -> tuple[str, str]:
    """(region, cluster name) of `eks://region/name`."""
    parts = context[len(EKS_CONTEXT):].split("/")
    if len(parts) != 2 or not all(parts) or not _REGION.match(parts[0]):
        raise ActionError(f"context {context!r} does not name an EKS cluster: write eks://region/cluster, e.g. "
                          "eks://eu-west-1/prod", type="KubeConfig", non_retryable=True)
    return parts[0], parts[1]


def eks_api_client(context: str) -> ApiClient:
    """The Kubernetes client for `eks://region/cluster`, built once per REBUILD_AFTER_S."""
    key = (endpoint_url() or "", context)
    with _clients_lock:
        cached = _clients.get(key)
        if cached is not None and time.monotonic() - cached[0] < REBUILD_AFTER_S:
            return cached[1]
    built = _build(*parse_context(context))
    with _clients_lock:
        _clients[key] = (time.monotonic(), built)
    return built


def _aws(region: str, service: str, method: str, subject: str, **kwargs: Any) -> Any:
    """One boto3 call, its failure as our ActionError (AwsAccessDenied naming the IAM action, AwsNotFound, ...)."""
    api = client({"region": region}, service)
    try:
        return getattr(api, method)(**kwargs)
    except Exception as exc:
        error = as_action_error(exc, aws_call_of(api, method), subject)
        if error is None:
            raise
        raise error from exc


def describe_cluster(region: str, name: str) -> dict[str, Any]:
    return _aws(region, "eks", "describe_cluster", f"EKS cluster {name} in {region}", name=name)["cluster"]


def bearer_token(region: str, name: str) -> str:
    """`aws eks get-token --cluster-name name`: a presigned STS GetCallerIdentity URL that signs the cluster id."""
    import boto3

    # A client of its own: the header hook must not reach other STS calls of this worker.
    sts = boto3.Session(region_name=region).client("sts", endpoint_url=endpoint_url(), config=_config())

    def add_cluster_id(request: Any, **_: Any) -> None:
        request.headers[CLUSTER_ID_HEADER] = name

    sts.meta.events.register("before-sign.sts.GetCallerIdentity", add_cluster_id)
    try:
        url = sts.generate_presigned_url("get_caller_identity", Params={}, ExpiresIn=PRESIGN_EXPIRES_S,
                                         HttpMethod="GET")
    except Exception as exc:
        error = as_action_error(exc, aws_call_of(sts, "get_caller_identity"), f"a token for EKS cluster {name}")
        if error is None:
            raise
        raise error from exc
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def _token_source(region: str, name: str) -> Callable[[], str]:
    lock = threading.Lock()
    made: list[tuple[float, str]] = []

    def token() -> str:
        with lock:
            if not made or time.monotonic() - made[0][0] > TOKEN_REUSE_S:
                made[:] = [(time.monotonic(), bearer_token(region, name))]
            return made[0][1]

    return token


def _ca_file(ca_data: str, where: str) -> str | None:
    if not ca_data:
        return None
    try:
        pem = base64.b64decode(ca_data, validate=True)
    except ValueError:
        raise ActionError(f"{where}: its certificateAuthority.data is not base64", type="KubeConfig",
                          non_retryable=True) from None
    with tempfile.NamedTemporaryFile("wb", prefix="incidentctl-eks-ca-", suffix=".pem", delete=False) as file:
        file.write(pem)
        return file.name


def _build(region: str, name: str) -> ApiClient:
    from kubernetes import client as kubernetes

    cluster = describe_cluster(region, name)
    where = f"EKS cluster {name} in {region}"
    endpoint = str(cluster.get("endpoint") or "")
    if not endpoint:
        raise ActionError(f"{where} has no endpoint yet (status {cluster.get('status')})", type="KubeConfig")
    host = endpoint if "://" in endpoint else f"https://{endpoint}"
    if urllib.parse.urlsplit(host).scheme != "https" and urllib.parse.urlsplit(host).hostname not in _LOOPBACK:
        raise ActionError(f"{where} has a plain-HTTP endpoint {host}: refused, an AWS token never travels "
                          "unencrypted", type="KubeConfig", non_retryable=True)
    token = _token_source(region, name)
    configuration = kubernetes.Configuration()
    configuration.host = host
    configuration.ssl_ca_cert = _ca_file(str((cluster.get("certificateAuthority") or {}).get("data") or ""), where)
    configuration.api_key_prefix = {"authorization": "Bearer"}
    configuration.api_key = {"authorization": token()}

    def refresh(conf: Any) -> None:
        conf.api_key["authorization"] = token()

    configuration.refresh_api_key_hook = refresh
    return kubernetes.ApiClient(configuration)
