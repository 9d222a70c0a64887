"""api.call/must through the official client: RBAC 403s, retried 5xx and timeouts, missing kubeconfig."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from activities.errors import ActionError
from activities.k8s import api
from activities.k8s.api import Target
from tests.k8s_sim import run_action

DEPLOYMENT_PATH = "/apis/apps/v1/namespaces/shop/deployments/cart"


def _gets(sim: Any, path: str) -> list[dict[str, Any]]:
    return [r for r in sim.requests() if r["method"] == "GET" and r["path"] == path]


async def test_forbidden_write_names_verb_resource_and_namespace(k8s_sim: Any) -> None:
    with k8s_sim("bad-rollout") as sim:
        params = sim.params(context="sim-readonly")
        # The helper raises the actions' own error; an action's wrapper hands Temporal an ApplicationError.
        with pytest.raises(ActionError) as forbidden:
            await api.must(params, Target("patch", "deployments.apps", "shop", "cart"), "apps",
                           "patch_namespaced_deployment", "cart", "shop", {"spec": {"paused": True}},
                           _content_type="application/merge-patch+json")
        # Reads are allowed to the same identity, so the 403 is about the verb, not the credentials.
        readable = await api.must(params, Target("get", "deployments.apps", "shop", "cart"), "apps",
                                  "read_namespaced_deployment", "cart", "shop")
        patches = [r for r in sim.requests() if r["method"] == "PATCH"]
    error = forbidden.value
    assert error.non_retryable and error.type == "KubeForbidden"
    assert error.message.startswith(
        'the worker\'s service account lacks verb patch on resource deployments.apps in namespace "shop"')
    assert 'cannot patch resource "deployments"' in str(error)  # the API server's own words follow
    assert len(patches) == 1 and patches[0]["content_type"] == "application/merge-patch+json"  # not retried
    assert readable["spec"].get("paused") is None


async def test_transient_5xx_is_retried_with_backoff(k8s_sim: Any) -> None:
    with k8s_sim("bad-rollout") as sim:
        sim.control("faults", {"count": 2, "status": 503, "path_contains": "/deployments/cart"})
        started = time.monotonic()
        status = await run_action("k8s.deployment_status", sim.params(namespace="shop", deployment="cart"))
        elapsed = time.monotonic() - started
        gets = _gets(sim, DEPLOYMENT_PATH)
    assert status["name"] == "cart" and status["revision"] == 2
    assert len(gets) == 3
    # Back-off of 0.5s then 1s between the attempts.
    assert elapsed >= api.FIRST_BACKOFF_S * 3
    assert gets[2]["at"] - gets[1]["at"] > gets[1]["at"] - gets[0]["at"] > api.FIRST_BACKOFF_S * 0.9


async def test_persistent_5xx_gives_up_retryably(k8s_sim: Any) -> None:
    with k8s_sim("bad-rollout") as sim:
        sim.control("faults", {"count": 10, "status": 503, "path_contains": "/deployments/cart"})
        with pytest.raises(ApplicationError) as unavailable:
            await run_action("k8s.deployment_status", sim.params(namespace="shop", deployment="cart"))
        gets = _gets(sim, DEPLOYMENT_PATH)
    error = unavailable.value
    # Temporal's own activity retry takes over: the API server may be back by then.
    assert error.non_retryable is False and error.type == "KubeUnavailable"
    assert len(gets) == api.ATTEMPTS
    assert 'get deployments.apps "cart" in namespace "shop": API server answered 503' in str(error)
    assert f"gave up after {api.ATTEMPTS} attempts" in str(error)


async def test_a_timed_out_request_is_retried(k8s_sim: Any) -> None:
    with k8s_sim("bad-rollout") as sim:
        sim.control("faults", {"count": 1, "status": 0, "delay_s": 3, "path_contains": "/deployments/cart"})
        started = time.monotonic()
        status = await run_action("k8s.deployment_status", sim.params(namespace="shop", deployment="cart",
                                                                     api_timeout=1))
        elapsed = time.monotonic() - started
        gets = _gets(sim, DEPLOYMENT_PATH)
    assert status["name"] == "cart"
    assert len(gets) == 2
    # Gave up on the first request after api_timeout, not after the 3s the server took.
    assert elapsed < 2.9


async def test_missing_kubeconfig_is_a_clear_non_retryable_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-kubeconfig.yaml"
    with pytest.raises(ApplicationError) as error:
        await run_action("k8s.deployment_status", {"kubeconfig": str(missing), "namespace": "shop",
                                                   "deployment": "cart"})
    assert error.value.non_retryable and error.value.type == "KubeConfig"
    assert error.value.message == f"kubeconfig {missing} does not exist or cannot be read"


async def test_unknown_context_is_a_clear_non_retryable_error(k8s_sim: Any) -> None:
    with k8s_sim() as sim:
        with pytest.raises(ApplicationError) as error:
            await run_action("k8s.deployment_status", sim.params(context="prod", namespace="shop",
                                                                 deployment="cart"))
    assert error.value.non_retryable and error.value.type == "KubeConfig"
    assert "context 'prod'" in str(error.value)
