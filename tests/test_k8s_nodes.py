"""Node actions (cordon, uncordon, drain) through the official client against the simulated API server."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from tests.k8s_sim import run_action

PODS = "/api/v1/namespaces/shop/pods"


def _pods(sim: Any, selector: str) -> dict[str, str | None]:
    """name -> node of the shop pods with `selector`."""
    listed = sim.get(f"{PODS}?labelSelector={selector}")["items"]
    return {pod["metadata"]["name"]: pod["spec"].get("nodeName") for pod in listed}


def _writes(sim: Any) -> list[dict[str, Any]]:
    return [r for r in sim.requests() if r["method"] in ("POST", "PATCH", "PUT", "DELETE")]


async def test_drain_moves_pods_off_a_not_ready_node(k8s_sim: Any) -> None:
    with k8s_sim("node-not-ready") as sim:
        before = _pods(sim, "app=inventory")
        on_node_3 = [name for name, node in before.items() if node == "node-3"]
        result = await run_action("k8s.drain", sim.params(node="node-3"))
        after = _pods(sim, "app=inventory")
        node = sim.get("/api/v1/nodes/node-3")
        again = await run_action("k8s.drain", sim.params(node="node-3"))
        writes = _writes(sim)
    assert len(on_node_3) == 1
    assert result["cordoned"] is True and result["changed"] is True and result["dry_run"] is False
    assert result["evicted"] == [f"shop/{on_node_3[0]}"]
    assert result["before"] == {"unschedulable": False, "pods": [f"shop/{on_node_3[0]}"]}
    assert result["after"] == {"unschedulable": True, "pods": []}
    assert node["spec"]["unschedulable"] is True
    # The ReplicaSet replaced the evicted pod on a Ready, schedulable node.
    assert on_node_3[0] not in after and len(after) == 3
    assert set(after.values()) <= {"node-1", "node-2"}
    # Through the eviction subresource (which checks the PodDisruptionBudget), never a plain delete.
    assert [w["path"] for w in writes if w["path"].endswith("/eviction")] == [f"{PODS}/{on_node_3[0]}/eviction"]
    assert not [w for w in writes if w["method"] == "DELETE"]
    assert again["changed"] is False and again["evicted"] == [] and again["cordoned"] is True


async def test_drain_blocked_by_a_disruption_budget_fails_and_keeps_the_pod(k8s_sim: Any) -> None:
    with k8s_sim("bad-rollout") as sim:
        # With node-1 gone, cart has exactly the 2 healthy pods its budget (minAvailable 2) requires.
        sim.control("nodes/node-1/condition", {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown"})
        cart_on_node_3 = [name for name, node in _pods(sim, "app=cart").items() if node == "node-3"]
        with pytest.raises(ApplicationError) as blocked:
            await run_action("k8s.drain", sim.params(node="node-3", timeout="2s"))
        remaining = _pods(sim, "app=cart")
        node = sim.get("/api/v1/nodes/node-3")
        evictions = [r for r in sim.requests() if r["path"].endswith("/eviction")]
    error = blocked.value
    assert error.non_retryable and error.type == "DrainIncomplete"
    message = error.message
    assert message.startswith("drain of node-3 incomplete after 2s: 1 pod blocked by a PodDisruptionBudget: shop/cart-")
    assert "(The disruption budget cart needs 2 healthy pods and has 2 currently)" in message
    [healthy] = [name for name in cart_on_node_3 if name in message]
    assert remaining[healthy] == "node-3"  # still there, still serving
    assert node["spec"]["unschedulable"] is True  # left cordoned, as kubectl drain does
    # The blocked eviction was retried with backoff until the deadline, not given up on at once.
    assert len([r for r in evictions if healthy in r["path"]]) >= 2


async def test_dry_run_drain_changes_nothing(k8s_sim: Any) -> None:
    with k8s_sim("node-not-ready") as sim:
        before = _pods(sim, "")
        result = await run_action("k8s.drain", sim.params(node="node-3"), dry_run=True)
        after = _pods(sim, "")
        node = sim.get("/api/v1/nodes/node-3")
        writes = _writes(sim)
    assert result["dry_run"] is True and result["cordoned"] is True and len(result["evicted"]) == 1
    assert result["after"]["pods"] == []
    assert not node["spec"].get("unschedulable")
    assert after == before
    assert {w["method"] for w in writes} == {"PATCH", "POST"}
    assert all(w["query"].get("dryRun") == "All" for w in writes)
    assert any(w["path"] == "/api/v1/nodes/node-3" for w in writes)
    assert any(w["path"].endswith("/eviction") for w in writes)


async def test_drain_refuses_more_pods_than_max_pods_and_changes_nothing(k8s_sim: Any) -> None:
    with k8s_sim("node-not-ready") as sim:
        with pytest.raises(ApplicationError) as refused:
            await run_action("k8s.drain", sim.params(node="node-1", max_pods=1))
        with pytest.raises(ApplicationError) as over_cap:
            await run_action("k8s.drain", sim.params(node="node-1", max_pods=500))
        with pytest.raises(ApplicationError) as too_long:
            await run_action("k8s.drain", sim.params(node="node-1", timeout="2h"))
        node = sim.get("/api/v1/nodes/node-1")
        writes = _writes(sim)
    assert refused.value.non_retryable and refused.value.type == "RefusedByBound"
    assert "node-1 has 2 pods to evict; max_pods is 1: refusing to drain" in str(refused.value)
    assert over_cap.value.non_retryable and over_cap.value.type == "InvalidParams"
    assert too_long.value.non_retryable and "longer than the maximum of 1h" in str(too_long.value)
    assert not node["spec"].get("unschedulable")
    assert writes == []


async def test_cordon_and_uncordon_are_idempotent(k8s_sim: Any) -> None:
    with k8s_sim() as sim:
        first = await run_action("k8s.cordon", sim.params(node="node-2"))
        second = await run_action("k8s.cordon", sim.params(node="node-2"))
        cordoned = sim.get("/api/v1/nodes/node-2")
        back = await run_action("k8s.uncordon", sim.params(node="node-2"))
        back_again = await run_action("k8s.uncordon", sim.params(node="node-2"))
        uncordoned = sim.get("/api/v1/nodes/node-2")
        patches = [w for w in _writes(sim) if w["method"] == "PATCH"]
    assert first == {"node": "node-2", "before": {"unschedulable": False}, "after": {"unschedulable": True},
                     "changed": True, "dry_run": False}
    assert second["changed"] is False and second["after"] == {"unschedulable": True}
    assert cordoned["spec"]["unschedulable"] is True
    assert back["changed"] is True and back["after"] == {"unschedulable": False}
    assert back_again["changed"] is False
    assert not uncordoned["spec"].get("unschedulable")
    # One patch each way: the idempotent repeats did not write.
    assert [p["content_type"] for p in patches] == ["application/merge-patch+json"] * 2


async def test_dry_run_cordon_persists_nothing(k8s_sim: Any) -> None:
    with k8s_sim() as sim:
        result = await run_action("k8s.cordon", sim.params(node="node-1"), dry_run=True)
        node = sim.get("/api/v1/nodes/node-1")
        [patch] = [w for w in _writes(sim) if w["method"] == "PATCH"]
    assert result["after"] == {"unschedulable": True} and result["dry_run"] is True
    assert not node["spec"].get("unschedulable")
    assert patch["query"] == {"dryRun": "All"}


async def test_read_only_credentials_and_unknown_nodes_are_named(k8s_sim: Any) -> None:
    with k8s_sim("node-not-ready") as sim:
        with pytest.raises(ApplicationError) as forbidden:
            await run_action("k8s.cordon", sim.params(context="sim-readonly", node="node-3"))
        with pytest.raises(ApplicationError) as drain_forbidden:
            await run_action("k8s.drain", sim.params(context="sim-readonly", node="node-3"))
        with pytest.raises(ApplicationError) as missing:
            await run_action("k8s.uncordon", sim.params(node="node-9"))
        pods = _pods(sim, "app=inventory")
    assert forbidden.value.non_retryable
    assert "the worker's service account lacks verb patch on resource nodes" in str(forbidden.value)
    assert "lacks verb patch on resource nodes" in str(drain_forbidden.value)
    assert "node-3" in pods.values()  # nothing was evicted
    assert missing.value.non_retryable and 'nodes "node-9" not found' in str(missing.value)


async def test_drain_refuses_pods_without_a_controller_unless_forced(k8s_sim: Any) -> None:
    with k8s_sim() as sim:
        from kubernetes import client

        client.CoreV1Api(sim.api()).create_namespaced_pod("shop", {
            "metadata": {"name": "debug-shell", "labels": {"app": "debug"}},
            "spec": {"nodeName": "node-2", "containers": [{"name": "sh", "image": "busybox"}]}})
        with pytest.raises(ApplicationError) as refused:
            await run_action("k8s.drain", sim.params(node="node-2"))
        schedulable = not sim.get("/api/v1/nodes/node-2")["spec"].get("unschedulable")
        forced = await run_action("k8s.drain", sim.params(node="node-2", force=True))
        left = _pods(sim, "app=debug")
    assert refused.value.non_retryable and "without a controller (shop/debug-shell)" in str(refused.value)
    assert schedulable  # refused before cordoning
    assert "shop/debug-shell" in forced["evicted"] and left == {}
