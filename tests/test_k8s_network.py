"""k8s.isolate and k8s.remove_isolation through the official client against the simulated API server."""

from __future__ import annotations

import urllib.error
from typing import Any

import pytest
from kubernetes import client
from temporalio.exceptions import ApplicationError

from tests.k8s_sim import run_action

POLICIES = "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies"
POLICY = f"{POLICIES}/incidentctl-isolate-cart"


def _exists(sim: Any, path: str) -> bool:
    try:
        sim.get(path)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return False
        raise
    return True


async def test_isolate_and_remove_isolation_round_trip(k8s_sim: Any) -> None:
    with k8s_sim("bad-rollout") as sim:
        created = await run_action("k8s.isolate", sim.params(namespace="shop", deployment="cart"))
        policy = sim.get(POLICY)
        again = await run_action("k8s.isolate", sim.params(namespace="shop", deployment="cart"))
        widened = await run_action("k8s.isolate", sim.params(namespace="shop", deployment="cart",
                                                             allow_from_namespaces=["monitoring"]))
        replaced = sim.get(POLICY)
        removed = await run_action("k8s.remove_isolation", sim.params(namespace="shop", deployment="cart"))
        gone = not _exists(sim, POLICY)
        removed_again = await run_action("k8s.remove_isolation", sim.params(namespace="shop", deployment="cart"))
    isolated = {"podSelector": {"matchLabels": {"app": "cart"}}, "policyTypes": ["Ingress"], "ingress": []}
    assert created == {"policy": "incidentctl-isolate-cart", "namespace": "shop",
                       "pod_selector": {"matchLabels": {"app": "cart"}}, "before": None, "after": isolated,
                       "changed": True, "dry_run": False}
    assert policy["spec"]["podSelector"] == {"matchLabels": {"app": "cart"}}
    assert policy["spec"]["policyTypes"] == ["Ingress"] and not policy["spec"].get("ingress")
    assert policy["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "incidentctl"
    assert again["changed"] is False and again["before"] == again["after"] == isolated
    allow = [{"from": [{"namespaceSelector": {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["monitoring"]}]}}]}]
    assert widened["changed"] is True and widened["before"] == isolated and widened["after"]["ingress"] == allow
    assert replaced["spec"]["ingress"] == allow
    assert removed["changed"] is True and removed["before"]["ingress"] == allow and removed["after"] is None
    assert gone
    assert removed_again == {"policy": "incidentctl-isolate-cart", "namespace": "shop", "before": None,
                             "after": None, "changed": False, "dry_run": False}


async def test_a_policy_incidentctl_did_not_create_is_left_alone(k8s_sim: Any) -> None:
    with k8s_sim("bad-rollout") as sim:
        api = client.NetworkingV1Api(sim.api())
        api.create_namespaced_network_policy("shop", {
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "incidentctl-isolate-cart", "namespace": "shop", "labels": {"team": "shop"}},
            "spec": {"podSelector": {"matchLabels": {"app": "cart"}}, "policyTypes": ["Egress"]}})
        with pytest.raises(ApplicationError) as not_removed:
            await run_action("k8s.remove_isolation", sim.params(namespace="shop", name="incidentctl-isolate-cart"))
        with pytest.raises(ApplicationError) as not_replaced:
            await run_action("k8s.isolate", sim.params(namespace="shop", deployment="cart"))
        policy = sim.get(POLICY)
    assert not_removed.value.non_retryable
    assert "not managed by incidentctl" in not_removed.value.message
    assert "refusing to delete it" in not_removed.value.message
    assert not_replaced.value.non_retryable and "refusing to replace it" in not_replaced.value.message
    assert policy["spec"]["policyTypes"] == ["Egress"] and policy["metadata"]["labels"] == {"team": "shop"}


async def test_dry_runs_create_and_delete_nothing(k8s_sim: Any) -> None:
    with k8s_sim("bad-rollout") as sim:
        preview = await run_action("k8s.isolate", sim.params(namespace="shop", deployment="cart"), dry_run=True)
        created = _exists(sim, POLICY)
        await run_action("k8s.isolate", sim.params(namespace="shop", deployment="cart"))
        removal = await run_action("k8s.remove_isolation", sim.params(namespace="shop", deployment="cart"),
                                   dry_run=True)
        kept = _exists(sim, POLICY)
        dry = [r for r in sim.requests() if r["method"] in ("POST", "DELETE") and r["query"].get("dryRun") == "All"]
    assert preview["changed"] is True and preview["dry_run"] is True and preview["before"] is None
    assert preview["after"]["podSelector"] == {"matchLabels": {"app": "cart"}}
    assert not created
    assert removal["changed"] is True and removal["dry_run"] is True and removal["after"] is None
    assert kept
    assert [r["method"] for r in dry] == ["POST", "DELETE"]


async def test_params_and_errors(k8s_sim: Any) -> None:
    with k8s_sim("bad-rollout") as sim:
        with pytest.raises(ApplicationError) as no_target:
            await run_action("k8s.remove_isolation", sim.params(namespace="shop"))
        with pytest.raises(ApplicationError) as no_deployment:
            await run_action("k8s.isolate", sim.params(namespace="shop", deployment="nope"))
        with pytest.raises(ApplicationError) as forbidden:
            await run_action("k8s.isolate", sim.params(context="sim-readonly", namespace="shop", deployment="cart"))
    assert no_target.value.type == "InvalidParams"
    assert no_deployment.value.non_retryable
    assert 'deployments.apps "nope" in namespace "shop" not found' in no_deployment.value.message
    assert forbidden.value.non_retryable
    assert ("the worker's service account lacks verb create on resource networkpolicies.networking.k8s.io"
            in forbidden.value.message)
