"""Diagnosis actions through the official client against the simulated API server (a local process)."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from tests.k8s_sim import run_action


async def test_deployment_status_reports_a_stalled_rollout(k8s_sim: Any) -> None:
    with k8s_sim("bad-rollout") as sim:
        status = await run_action("k8s.deployment_status", sim.params(namespace="shop", deployment="cart"))
        healthy = await run_action("k8s.deployment_status", sim.params(namespace="shop", deployment="checkout"))
    assert status["rollout"] == "stalled"
    assert status["revision"] == 2
    assert status["desired"] == 3 and status["updated"] == 1
    assert status["healthy"] is False
    assert healthy["rollout"] == "complete" and healthy["healthy"] is True and healthy["mismatch"] is None


async def test_unhealthy_pods_finds_the_crash_looping_new_revision(k8s_sim: Any) -> None:
    with k8s_sim("bad-rollout") as sim:
        result = await run_action("k8s.unhealthy_pods", sim.params(namespace="shop", selector="app=cart"))
        everything = await run_action("k8s.unhealthy_pods", sim.params(namespace="shop"))
    assert result["total"] == 4  # three old pods still serving + one new crash-looping
    assert result["unhealthy_count"] == 1
    assert result["top_reason"] == "CrashLoopBackOff"
    bad = result["unhealthy"][0]
    assert "shop/cart:1.4.3" in bad["images"]
    assert bad["restarts"] > 3
    assert everything["total"] == 6  # checkout's two pods are listed, and healthy


async def test_unknown_deployment_and_namespace_are_named(k8s_sim: Any) -> None:
    with k8s_sim() as sim:
        with pytest.raises(ApplicationError) as missing:
            await run_action("k8s.deployment_status", sim.params(namespace="shop", deployment="nope"))
        with pytest.raises(ApplicationError) as no_namespace:
            await run_action("k8s.deployment_status", sim.params(namespace="shopp", deployment="cart"))
    assert missing.value.non_retryable and 'deployments.apps "nope" in namespace "shop" not found' in str(missing.value)
    assert no_namespace.value.non_retryable and 'namespace "shopp" does not exist' in str(no_namespace.value)
