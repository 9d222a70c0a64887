"""Remediation and verification actions against the simulated API server, read back through the official client."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from activities.base import ActionInput, get_action
from activities.catalog import load_all
from tests.k8s_sim import run_action

CART = "/apis/apps/v1/namespaces/shop/deployments/cart"


async def test_rollout_undo_restores_the_previous_template_and_verifies(k8s_sim: Any) -> None:
    with k8s_sim("bad-rollout") as sim:
        params = sim.params(namespace="shop", deployment="cart")
        undone = await run_action("k8s.rollout_undo", params)
        again = await run_action("k8s.rollout_undo", params)
        verified = await run_action("k8s.wait_rollout", {**params, "timeout": "20s", "interval": "0.2s"})
        deployment = sim.get(CART)
        replica_sets = sim.get("/apis/apps/v1/namespaces/shop/replicasets?labelSelector=app%3Dcart")["items"]
    assert undone["changed"] is True and undone["dry_run"] is False
    assert undone["before"]["images"] == {"cart": "shop/cart:1.4.3"} and undone["before"]["revision"] == 2
    assert undone["after"]["images"] == {"cart": "shop/cart:1.4.2"} and undone["after"]["revision"] == 3
    assert undone["to_revision"] == 1
    # The retry of the same step recognises its own rollback instead of flipping back to revision 2.
    assert again["changed"] is False and "already" in again["note"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "shop/cart:1.4.2"
    # kubectl semantics: the old ReplicaSet is re-used and becomes revision 3; no third ReplicaSet appears.
    revisions = sorted(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] for rs in replica_sets)
    assert revisions == ["2", "3"]
    assert verified["ok"] is True and verified["status"]["available"] == 3


async def test_rollout_undo_dry_run_changes_nothing(k8s_sim: Any) -> None:
    with k8s_sim("bad-rollout") as sim:
        result = await run_action("k8s.rollout_undo", sim.params(namespace="shop", deployment="cart"), dry_run=True)
        deployment = sim.get(CART)
        patches = [r for r in sim.requests() if r["method"] == "PATCH"]
    assert result["dry_run"] is True and result["after"]["images"] == {"cart": "shop/cart:1.4.2"}
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "shop/cart:1.4.3"
    assert [p["query"].get("dryRun") for p in patches] == ["All"]
    assert patches[0]["content_type"].startswith("application/json-patch+json")


async def test_rollout_undo_to_an_unknown_revision_is_refused(k8s_sim: Any) -> None:
    with k8s_sim("bad-rollout") as sim:
        with pytest.raises(ApplicationError) as refused:
            await run_action("k8s.rollout_undo", sim.params(namespace="shop", deployment="cart", to_revision=9))
    assert refused.value.non_retryable and "no revision 9 (known: 1, 2)" in str(refused.value)


async def test_rollout_undo_goes_only_from_the_expected_revision(k8s_sim: Any) -> None:
    """Two incidents each approved "from 2 to 1": the first rolls back, the second (another step) finds
    revision 3 and refuses instead of undoing the rollback; a retry of the first still sees its own mark."""
    load_all()
    undo = get_action("k8s.rollout_undo").activity
    with k8s_sim("bad-rollout") as sim:
        params = sim.params(namespace="shop", deployment="cart", to_revision=1, expect_revision=2)
        first = await undo(ActionInput(action="k8s.rollout_undo", params=params, incident_id="inc-1",
                                       step_id="rollback"))
        retried = await undo(ActionInput(action="k8s.rollout_undo", params=params, incident_id="inc-1",
                                         step_id="rollback"))
        with pytest.raises(ApplicationError) as refused:
            await undo(ActionInput(action="k8s.rollout_undo", params=params, incident_id="inc-2",
                                   step_id="rollback"))
        deployment = sim.get(CART)
    assert first["changed"] is True and first["before"]["revision"] == 2 and first["to_revision"] == 1
    assert retried["changed"] is False and "already" in retried["note"]
    assert refused.value.non_retryable and refused.value.type == "RevisionChanged"
    assert ("shop/cart changed since the approval: current revision 3, approved going from 2 to 1"
            in str(refused.value))
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "shop/cart:1.4.2"
    assert deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"


async def test_wait_rollout_fails_on_a_stalled_rollout(k8s_sim: Any) -> None:
    with k8s_sim("bad-rollout") as sim:
        with pytest.raises(ApplicationError) as stalled:
            await run_action("k8s.wait_rollout", sim.params(namespace="shop", deployment="cart", timeout="3s"))
    assert stalled.value.type == "VerificationFailed" and "stalled" in str(stalled.value)


async def test_rollout_restart_replaces_every_pod(k8s_sim: Any) -> None:
    with k8s_sim() as sim:
        params = sim.params(namespace="shop", deployment="checkout")
        pods_before = {p["metadata"]["name"] for p in sim.get("/api/v1/namespaces/shop/pods")["items"]}
        restarted = await run_action("k8s.rollout_restart", params)
        await run_action("k8s.wait_rollout", {**params, "timeout": "20s", "interval": "0.2s"})
        pods_after = {p["metadata"]["name"] for p in sim.get("/api/v1/namespaces/shop/pods")["items"]}
    assert restarted["changed"] is True and restarted["after"]["restarted_at"]
    assert restarted["after"]["images"] == restarted["before"]["images"]
    assert len(pods_after) == 2 and not pods_after & pods_before


async def test_scale_within_bounds_and_refusal_outside(k8s_sim: Any) -> None:
    with k8s_sim() as sim:
        params = sim.params(namespace="shop", deployment="checkout")
        scaled = await run_action("k8s.scale", {**params, "replicas": 4, "max_replicas": 6})
        ready = await run_action("k8s.wait_pods_ready", {**params_without(params, "deployment"),
                                                         "selector": "app=checkout", "min_ready": 4,
                                                         "timeout": "20s", "interval": "0.2s"})
        with pytest.raises(ApplicationError) as refused:
            await run_action("k8s.scale", {**params, "replicas": 50, "max_replicas": 10})
        replicas = sim.get("/apis/apps/v1/namespaces/shop/deployments/checkout")["spec"]["replicas"]
    assert scaled["before"]["replicas"] == 2 and scaled["after"]["replicas"] == 4
    assert ready["ready"] == 4
    assert refused.value.non_retryable and "outside the bounds [0, 10]" in str(refused.value)
    assert replicas == 4


def params_without(params: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k != key}


async def test_raising_the_memory_limit_within_its_bound_ends_the_oom_kills(k8s_sim: Any) -> None:
    with k8s_sim("oom") as sim:
        params = sim.params(namespace="shop", deployment="search")
        stable = {**params_without(params, "deployment"), "selector": "app=search", "interval": "0.2s"}
        with pytest.raises(ApplicationError) as unstable:
            await run_action("k8s.wait_stable", {**stable, "for": "1s", "timeout": "3s"})
        with pytest.raises(ApplicationError) as too_much:
            await run_action("k8s.set_resources", {**params, "memory_factor": 2, "max_memory": "384Mi"})
        raised = await run_action("k8s.set_resources", {**params, "memory_factor": 1.5, "max_memory": "512Mi"})
        settled = await run_action("k8s.wait_stable", {**stable, "for": "2s", "timeout": "30s"})
    assert unstable.value.type == "VerificationFailed"
    assert too_much.value.non_retryable and "exceeds max_memory 384Mi" in str(too_much.value)
    assert raised["before"]["resources"]["search"]["limits"]["memory"] == "256Mi"
    assert raised["after"]["resources"]["search"]["limits"]["memory"] == "384Mi"
    assert settled["ok"] is True and settled["all_ready"] is True
