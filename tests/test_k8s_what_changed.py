"""k8s.what_changed against the simulated API server: the bad rollout is the top suspect, secrets stay secret."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from tests.k8s_sim import run_action

SECRET_B64 = "c3VwZXItc2VjcmV0LWRiLXBhc3N3b3Jk"
SECRET = base64.b64decode(SECRET_B64).decode()


async def test_bad_rollout_is_the_top_suspect_with_its_diff(k8s_sim: Any) -> None:
    with k8s_sim("bad-rollout") as sim:
        result = await run_action("k8s.what_changed", sim.params(namespace="shop", deployment="cart"))
    top = result["top_suspect"]
    assert top["kind"] == "rollout" and top["object"] == "Deployment/cart" and top["rank"] == 1
    assert 11.5 <= top["age_minutes"] <= 13  # revision 2 went out 12 minutes before "now"
    assert top["kind"] == "rollout" and top["age_minutes"] < 30  # the branch runbooks take
    rollout = result["rollout"]
    assert rollout["revision"] == 2 and rollout["previous_revision"] == 1
    diff = {(d["container"], d["field"]): (d["from"], d["to"]) for d in rollout["diff"]}
    assert diff[("cart", "image")] == ("shop/cart:1.4.2", "shop/cart:1.4.3")
    assert diff[("cart", "env.LOG_LEVEL")] == ("info", "debug")
    assert "shop/cart:1.4.3" in rollout["diff_text"]
    assert result["workload"] == {"kind": "Deployment", "namespace": "shop", "name": "cart"}
    assert result["summary"].startswith("Deployment shop/cart rolled out revision 2")
    # The first release (three days ago) and the config it created are outside the default 2h window.
    assert not any(c["object"] in ("Secret/cart-db", "ConfigMap/cart-config") for c in result["changes"])


async def test_secret_values_never_reach_the_output(k8s_sim: Any) -> None:
    with k8s_sim("bad-rollout") as sim:
        result = await run_action("k8s.what_changed", sim.params(namespace="shop", deployment="cart", window="7d"))
        whole_namespace = await run_action("k8s.what_changed", sim.params(namespace="shop", window="7d"))
        secret_lists = [r for r in sim.requests() if r["path"] == "/api/v1/namespaces/shop/secrets"]
    # The worker asks for metadata only, so the values are not even sent to it.
    assert len(secret_lists) == 2 and all("as=PartialObjectMetadataList" in r["accept"] for r in secret_lists)
    # With a week's window the secret's creation is a change: its name is reported, never its value.
    secret = next(c for c in result["changes"] if c["object"] == "Secret/cart-db")
    assert secret["details"]["referenced_by_workload"] is True
    for output in (result, whole_namespace):
        text = json.dumps(output)
        assert SECRET_B64 not in text and SECRET not in text
        assert "super-secret" not in text
    assert whole_namespace["workload"] is None and whole_namespace["rollout"] is None


async def test_alert_time_and_window_bound_the_changes(k8s_sim: Any) -> None:
    with k8s_sim("bad-rollout") as sim:
        earlier = (datetime.now(UTC) - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
        before_rollout = await run_action("k8s.what_changed", sim.params(namespace="shop", deployment="cart",
                                                                         alert_time=earlier))
        narrow = await run_action("k8s.what_changed", sim.params(namespace="shop", deployment="cart", window="5m"))
        with pytest.raises(ApplicationError) as bad_time:
            await run_action("k8s.what_changed", sim.params(namespace="shop", alert_time="yesterday"))
    assert before_rollout["top_suspect"] is None and before_rollout["changes"] == []
    assert before_rollout["window"]["end"] == earlier
    assert narrow["top_suspect"] is None and narrow["summary"].startswith("No changes found")
    assert bad_time.value.non_retryable and "alert_time" in str(bad_time.value)


async def test_node_going_not_ready_is_a_suspect(k8s_sim: Any) -> None:
    with k8s_sim("node-not-ready") as sim:
        result = await run_action("k8s.what_changed", sim.params(namespace="shop", deployment="inventory"))
    top = result["top_suspect"]
    assert top["kind"] == "node" and top["object"] == "Node/node-3"
    assert 5.5 <= top["age_minutes"] <= 7
    # The NodeNotReady event (default namespace) mirrors the condition change and is not counted twice.
    assert [c["object"] for c in result["changes"]].count("Node/node-3") == 1


async def test_unknown_deployment_is_named(k8s_sim: Any) -> None:
    with k8s_sim("bad-rollout") as sim:
        with pytest.raises(ApplicationError) as missing:
            await run_action("k8s.what_changed", sim.params(namespace="shop", deployment="nope"))
    assert missing.value.non_retryable
    assert 'deployments.apps "nope" in namespace "shop" not found' in str(missing.value)
