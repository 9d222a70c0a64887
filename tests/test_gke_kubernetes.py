"""k8s steps reach a GKE cluster by name (`context: gke://project/location/cluster`), through the real wire: the
endpoint and CA come from the fake GKE API (a local process), the bearer token from Application Default
Credentials (a service-account key file whose token endpoint is the fake's), and the Kubernetes API is the
simulated cluster (a local process). Both are stopped by PID."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from temporalio.exceptions import ApplicationError

from activities.base import ActionInput, get_action
from activities.catalog import load_all
from activities.gke.api import ENDPOINT_ENV
from incidentctl.dsl.plan import Changes
from incidentctl.gkesim.process import start_fake
from incidentctl.gkesim.seed import CLUSTER, LOCATION, PROJECT
from incidentctl.k8ssim.scenarios import WORKER_TOKEN
from tests.gke_fake import FakeGke
from tests.k8s_sim import SimCluster, start_sim

CONTEXT = f"gke://{PROJECT}/{LOCATION}/{CLUSTER}"


def service_account_key(path: Path, token_uri: str) -> Path:
    """A service-account key file, as `GOOGLE_APPLICATION_CREDENTIALS` names one, with a fresh RSA key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path.write_text(json.dumps({
        "type": "service_account", "project_id": PROJECT, "private_key_id": "test-key", "private_key": pem,
        "client_email": f"incidentctl-worker@{PROJECT}.iam.gserviceaccount.com", "client_id": "1",
        "token_uri": token_uri}))
    return path


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeGke, SimCluster]]:
    # The token the fake's token endpoint hands out is one the simulated cluster accepts.
    running = start_fake(tmp_path / "gke", access_token=WORKER_TOKEN)
    try:
        with start_sim(tmp_path / "k8s") as sim:
            monkeypatch.setenv(ENDPOINT_ENV, running.url)
            monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS",
                               str(service_account_key(tmp_path / "key.json", f"{running.url}/token")))
            yield FakeGke(running.url), sim
    finally:
        running.stop()


def move_endpoint(gke: FakeGke, endpoint: str) -> None:
    gke._json(f"/_sim/clusters/{PROJECT}/{LOCATION}/{CLUSTER}/endpoint", {"endpoint": endpoint})


async def run(name: str, params: dict, changes: Changes | None = None) -> dict:
    load_all()
    return await get_action(name).activity(ActionInput(action=name, params=params, incident_id="i", step_id="s",
                                                       changes=changes))


async def failure(name: str, params: dict, changes: Changes | None = None) -> ApplicationError:
    with pytest.raises(ApplicationError) as failed:
        await run(name, params, changes)
    return failed.value


async def test_a_k8s_step_reaches_a_gke_cluster_by_name(world: tuple[FakeGke, SimCluster]) -> None:
    gke, sim = world
    # GKE hands out a plain-HTTP endpoint elsewhere than this machine: the token is not sent there.
    move_endpoint(gke, "http://10.1.2.3")
    refused = await failure("k8s.deployment_status", {"namespace": "shop", "deployment": "checkout",
                                                      "context": CONTEXT})
    assert (refused.type, refused.non_retryable) == ("KubeConfig", True)
    assert "plain-HTTP endpoint http://10.1.2.3: refused" in refused.message

    move_endpoint(gke, sim.url)
    status = await run("k8s.deployment_status", {"namespace": "shop", "deployment": "checkout", "context": CONTEXT})
    assert status["desired"] == 2
    token_calls = [r for r in gke.requests() if r["path"] == "/token"]
    assert token_calls and token_calls[0]["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"

    allowed = Changes(clusters=[f"gke://{PROJECT}/*"], namespaces=["shop"])
    scaled = await run("k8s.scale", {"namespace": "shop", "deployment": "checkout", "replicas": 3,
                                     "context": CONTEXT}, allowed)
    assert scaled["after"]["replicas"] == 3
    assert sim.get("/apis/apps/v1/namespaces/shop/deployments/checkout")["spec"]["replicas"] == 3

    elsewhere = Changes(clusters=["gke://acme-staging/*"], namespaces=["shop"])
    outside = await failure("k8s.scale", {"namespace": "shop", "deployment": "checkout", "replicas": 4,
                                          "context": CONTEXT}, elsewhere)
    assert outside.type == "ChangeNotAllowed" and f"context {CONTEXT} is not in the runbook's changes.clusters" \
        in outside.message


async def test_a_gke_context_that_names_no_cluster_fails_in_one_sentence(world: tuple[FakeGke, SimCluster]) -> None:
    malformed = await failure("k8s.deployment_status", {"namespace": "shop", "deployment": "checkout",
                                                        "context": f"gke://{PROJECT}/{CLUSTER}"})
    assert (malformed.type, malformed.non_retryable) == ("KubeConfig", True)
    assert "write gke://project/location/cluster" in malformed.message
    missing = await failure("k8s.deployment_status", {"namespace": "shop", "deployment": "checkout",
                                                      "context": f"gke://{PROJECT}/{LOCATION}/nope"})
    assert (missing.type, missing.non_retryable) == ("GkeNotFound", True)
