"""k8s.delete_pods through the official client against the simulated API server."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from tests.k8s_sim import run_action

PODS = "/api/v1/namespaces/shop/pods"


def _cart(sim: Any) -> dict[str, dict[str, Any]]:
    return {pod["metadata"]["name"]: pod for pod in sim.get(f"{PODS}?labelSelector=app%3Dcart")["items"]}


def _deletes(sim: Any) -> list[dict[str, Any]]:
    return [r for r in sim.requests() if r["method"] == "DELETE"]


async def test_deletes_the_crash_looping_pod_and_its_replica_set_replaces_it(k8s_sim: Any) -> None:
    with k8s_sim("bad-rollout") as sim:
        before = _cart(sim)
        [crashing] = [name for name, pod in before.items()
                      if pod["spec"]["containers"][0]["image"] == "shop/cart:1.4.3"]
        result = await run_action("k8s.delete_pods", sim.params(namespace="shop", selector="app=cart"))
        after = _cart(sim)
    assert result["deleted"] == [crashing] and result["matched"] == 1
    assert result["changed"] is True and result["dry_run"] is False
    assert len(result["before"]) == 4  # every selected pod is summarised; only the unhealthy one was eligible
    assert [s["name"] for s in result["before"] if s["problems"]] == [crashing]
    assert crashing not in after
    # Same ReplicaSet (pod-template-hash), new name: the controller replaced the deleted pod.
    template = before[crashing]["metadata"]["labels"]["pod-template-hash"]
    replacements = [name for name, pod in after.items() if pod["metadata"]["labels"]["pod-template-hash"] == template]
    assert len(replacements) == 1 and replacements[0] != crashing
    assert len(after) == 4


async def test_more_matches_than_max_pods_deletes_nothing(k8s_sim: Any) -> None:
    with k8s_sim("bad-rollout") as sim:
        before = _cart(sim)
        with pytest.raises(ApplicationError) as refused:
            await run_action("k8s.delete_pods", sim.params(namespace="shop", selector="app=cart",
                                                           only_unhealthy=False))
        with pytest.raises(ApplicationError) as over_cap:
            await run_action("k8s.delete_pods", sim.params(namespace="shop", selector="app=cart", max_pods=50))
        after = _cart(sim)
        deletes = _deletes(sim)
    assert refused.value.non_retryable and refused.value.type == "RefusedByBound"
    assert refused.value.message == "4 pods match app=cart in shop; max_pods is 1: refusing to delete any"
    assert over_cap.value.non_retryable and over_cap.value.type == "InvalidParams"
    assert set(after) == set(before)
    assert deletes == []


@pytest.mark.parametrize("selector", ["", "   "])
async def test_an_empty_selector_is_refused(k8s_sim: Any, selector: str) -> None:
    with k8s_sim("bad-rollout") as sim:
        with pytest.raises(ApplicationError) as refused:
            await run_action("k8s.delete_pods", sim.params(namespace="shop", selector=selector,
                                                           only_unhealthy=False, max_pods=20))
        with pytest.raises(ApplicationError) as missing:
            await run_action("k8s.delete_pods", sim.params(namespace="shop"))
        deletes = _deletes(sim)
    assert refused.value.non_retryable and refused.value.type == "InvalidParams"
    assert "params.selector" in refused.value.message
    assert missing.value.type == "InvalidParams" and "'selector' is a required property" in missing.value.message
    assert deletes == []


async def test_dry_run_deletes_nothing(k8s_sim: Any) -> None:
    with k8s_sim("bad-rollout") as sim:
        before = _cart(sim)
        result = await run_action("k8s.delete_pods", sim.params(namespace="shop", selector="app=cart"), dry_run=True)
        after = _cart(sim)
        [delete] = _deletes(sim)
    assert result["dry_run"] is True and len(result["deleted"]) == 1
    assert set(after) == set(before)
    assert delete["path"] == f"{PODS}/{result['deleted'][0]}" and delete["query"] == {"dryRun": "All"}


async def test_node_limits_the_pods_considered(k8s_sim: Any) -> None:
    with k8s_sim("bad-rollout") as sim:
        before = _cart(sim)
        on_node_1 = [name for name, pod in before.items() if pod["spec"]["nodeName"] == "node-1"]
        result = await run_action("k8s.delete_pods", sim.params(namespace="shop", selector="app=cart", node="node-1",
                                                                only_unhealthy=False))
        after = _cart(sim)
    assert len(on_node_1) == 1
    assert result["deleted"] == on_node_1 and result["node"] == "node-1"
    assert on_node_1[0] not in after and len(after) == 4


async def test_read_only_credentials_and_missing_namespace_are_named(k8s_sim: Any) -> None:
    with k8s_sim("bad-rollout") as sim:
        with pytest.raises(ApplicationError) as forbidden:
            await run_action("k8s.delete_pods", sim.params(context="sim-readonly", namespace="shop",
                                                           selector="app=cart"))
        with pytest.raises(ApplicationError) as no_namespace:
            await run_action("k8s.delete_pods", sim.params(namespace="shopp", selector="app=cart"))
        nothing = await run_action("k8s.delete_pods", sim.params(namespace="shop", selector="app=nope"))
    assert forbidden.value.non_retryable
    assert "the worker's service account lacks verb delete on resource pods" in forbidden.value.message
    assert no_namespace.value.non_retryable and 'namespace "shopp" does not exist' in no_namespace.value.message
    assert nothing["deleted"] == [] and nothing["changed"] is False and nothing["matched"] == 0
