"""k8s steps reach an EKS cluster by name (`context: eks://region/cluster`), through the real wire: the endpoint comes
from moto's DescribeCluster (a moto whose EKS endpoint is the simulator's: tests/moto_eks.py), the bearer token is
made as `aws eks get-token` makes it, and the Kubernetes API is the simulated cluster. The simulator does not
validate EKS tokens (it accepts the `k8s-aws-v1.` prefix); the test decodes the token the client sent and checks
it is the presigned STS GetCallerIdentity request the EKS authenticator calls. Calling it is not shown: moto's
server routes a query-signed GET by its body or path, not its X-Amz-Credential, so it answers as S3. Both are
local processes stopped by PID."""

from __future__ import annotations

import base64
import json
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.aws.api import ENDPOINT_ENV
from activities.base import ActionInput, get_action
from activities.catalog import load_all
from incidentctl.dsl.plan import Changes
from tests.aws_moto import CREDENTIALS, REGION, MotoServer, start_moto
from tests.k8s_sim import SimCluster, start_sim

CONTEXT = f"eks://{REGION}/prod"
WORKER_ARN = "arn:aws:iam::123456789012:user/incidentctl-worker"


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[MotoServer, SimCluster]]:
    with start_sim(tmp_path / "k8s") as sim:
        sim.control("token-prefixes", {"prefix": "k8s-aws-v1.", "user": WORKER_ARN})
        (tmp_path / "moto").mkdir()
        moto = start_moto(tmp_path / "moto", {"MOTO_EKS_ENDPOINT": sim.url},
                          command=[sys.executable, "-m", "tests.moto_eks"])
        try:
            monkeypatch.setenv(ENDPOINT_ENV, moto.url)
            for name, value in CREDENTIALS.items():
                monkeypatch.setenv(name, value)
            moto.client("eks").create_cluster(name="prod", roleArn="arn:aws:iam::123456789012:role/eks",
                                              resourcesVpcConfig={"subnetIds": ["subnet-1"]})
            yield moto, sim
        finally:
            moto.stop()


async def run(name: str, params: dict, changes: Changes | None = None) -> dict:
    load_all()
    return await get_action(name).activity(ActionInput(action=name, params=params, incident_id="i", step_id="s",
                                                       changes=changes))


async def failure(name: str, params: dict) -> ApplicationError:
    with pytest.raises(ApplicationError) as failed:
        await run(name, params)
    return failed.value


def presigned_url(token: str) -> str:
    assert token.startswith("k8s-aws-v1.")
    encoded = token.removeprefix("k8s-aws-v1.")
    assert "=" not in encoded, "base64url without padding"
    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()


async def test_a_k8s_step_reaches_an_eks_cluster_by_name_with_an_sts_token(
        world: tuple[MotoServer, SimCluster]) -> None:
    moto, sim = world
    status = await run("k8s.deployment_status", {"namespace": "shop", "deployment": "checkout", "context": CONTEXT})
    assert status["desired"] == 2
    # EKS is a REST API (no Action parameter): moto's recording names the call by its method and path.
    recorded = [json.loads(line) for line in moto.recording.read_text().splitlines()]
    assert [r for r in recorded if r["method"] == "GET" and r["url"].endswith("/clusters/prod")], "DescribeCluster"

    tokens = {r["token"] for r in sim.requests() if r["path"].startswith("/apis/apps/v1/namespaces/shop")}
    assert len(tokens) == 1
    url = presigned_url(tokens.pop())
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert url.startswith(moto.url) and (query["Action"], query["Version"]) == ("GetCallerIdentity", "2011-06-15")
    assert query["X-Amz-Expires"] == "60" and f"/{REGION}/sts/aws4_request" in query["X-Amz-Credential"]
    assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"].split(";"), "the cluster name is signed"
    assert query["X-Amz-Signature"] and query["X-Amz-Security-Token"] == CREDENTIALS["AWS_SESSION_TOKEN"]

    allowed = Changes(clusters=[f"eks://{REGION}/*"], namespaces=["shop"])
    scaled = await run("k8s.scale", {"namespace": "shop", "deployment": "checkout", "replicas": 3,
                                     "context": CONTEXT}, allowed)
    assert scaled["after"]["replicas"] == 3
    assert sim.get("/apis/apps/v1/namespaces/shop/deployments/checkout")["spec"]["replicas"] == 3


async def test_an_eks_context_that_names_no_cluster_fails_in_one_sentence(
        world: tuple[MotoServer, SimCluster]) -> None:
    malformed = await failure("k8s.deployment_status", {"namespace": "shop", "deployment": "checkout",
                                                        "context": "eks://prod"})
    assert (malformed.type, malformed.non_retryable) == ("KubeConfig", True)
    assert "write eks://region/cluster" in malformed.message
    missing = await failure("k8s.deployment_status", {"namespace": "shop", "deployment": "checkout",
                                                      "context": f"eks://{REGION}/nope"})
    assert (missing.type, missing.non_retryable) == ("AwsNotFound", True), missing.message
    assert "eks:DescribeCluster" in missing.message


def test_the_simulator_refuses_other_tokens(world: tuple[MotoServer, SimCluster]) -> None:
    _, sim = world
    request = urllib.request.Request(f"{sim.url}/api/v1/namespaces", headers={"Authorization": "Bearer other"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401
    assert json.loads(refused.value.read())["reason"] == "Unauthorized"
