"""Diagnosis actions through the official client against the simulated API server (a local process)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
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
    assert status["selector"] == "app=cart"
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


# -- k8s.pod_logs ------------------------------------------------------------------------------------------------


async def test_pod_logs_reads_the_crashed_instance_of_the_crash_looping_pod(k8s_sim: Any) -> None:
    with k8s_sim("bad-rollout") as sim:
        logs = await run_action("k8s.pod_logs", sim.params(namespace="shop", selector="app=cart"))
        current = await run_action("k8s.pod_logs", sim.params(namespace="shop", pod=logs["pod"], previous=False))
        requests = [r for r in sim.requests() if r["path"].endswith("/log")]
    assert logs["pod"].startswith("cart-") and logs["container"] == "cart"
    assert logs["previous"] is True
    assert "panic: assignment to entry in nil map" in logs["lines"]
    assert logs["lines"][-1] == "main.loadRules(...) /src/cart/rules.go:88"
    assert logs["text"].endswith("rules.go:88\n") and logs["truncated"] is False
    assert logs["bytes"] == len(logs["text"].encode())
    assert current["previous"] is False and current["pod"] == logs["pod"]
    # The query carries the bounds, so a huge log is never transferred whole.
    assert requests[0]["query"]["previous"] == "true" and requests[0]["query"]["tailLines"] == "50"
    assert int(requests[0]["query"]["limitBytes"]) > 0 and requests[1]["query"]["previous"] == "false"


async def test_pod_logs_are_bounded_by_lines_and_bytes(k8s_sim: Any) -> None:
    with k8s_sim("bad-rollout") as sim:
        tail = await run_action("k8s.pod_logs", sim.params(namespace="shop", selector="app=cart", tail_lines=2))
        small = await run_action("k8s.pod_logs", sim.params(namespace="shop", selector="app=cart", max_bytes=70))
    assert tail["lines"] == ["goroutine 1 [running]:", "main.loadRules(...) /src/cart/rules.go:88"]
    assert tail["truncated"] is False
    # The newest output is kept, cut at a line boundary.
    assert small["truncated"] is True and small["bytes"] == 65 <= 70
    assert small["lines"] == ["goroutine 1 [running]:", "main.loadRules(...) /src/cart/rules.go:88"]


async def test_pod_logs_of_a_healthy_pod_and_of_a_pod_that_never_started(k8s_sim: Any) -> None:
    with k8s_sim("replicas-mismatch") as sim:
        healthy = await run_action("k8s.pod_logs", sim.params(namespace="shop", selector="app=checkout"))
        pulling = await run_action("k8s.pod_logs", sim.params(namespace="shop", selector="app=payments",
                                                               previous="auto"))
        listed = sim.get("/api/v1/namespaces/shop/pods?labelSelector=app%3Dpayments")
    assert healthy["previous"] is False and healthy["lines"] == ["checkout listening on :8080"]
    waiting = [p["metadata"]["name"] for p in listed["items"]
               if p["status"].get("containerStatuses", [{}])[0].get("state", {}).get("waiting")]
    assert pulling["pod"] in waiting
    # A pod the rollout created just now is still in ErrImagePull; older ones have reached ImagePullBackOff.
    assert pulling["lines"] == []
    assert "has not started (ImagePullBackOff" in pulling["note"] or "has not started (ErrImagePull" in pulling["note"]


async def test_pod_logs_errors_name_what_is_missing(k8s_sim: Any) -> None:
    with k8s_sim("bad-rollout") as sim:
        with pytest.raises(ApplicationError) as missing:
            await run_action("k8s.pod_logs", sim.params(namespace="shop", pod="cart-nope"))
        with pytest.raises(ApplicationError) as unmatched:
            await run_action("k8s.pod_logs", sim.params(namespace="shop", selector="app=nope"))
        pod = (await run_action("k8s.pod_logs", sim.params(namespace="shop", selector="app=cart")))["pod"]
        with pytest.raises(ApplicationError) as container:
            await run_action("k8s.pod_logs", sim.params(namespace="shop", pod=pod, container="sidecar"))
        with pytest.raises(ApplicationError) as neither:
            await run_action("k8s.pod_logs", sim.params(namespace="shop"))
        with pytest.raises(ApplicationError) as both:
            await run_action("k8s.pod_logs", sim.params(namespace="shop", pod=pod, selector="app=cart"))
        with pytest.raises(ApplicationError) as too_much:
            await run_action("k8s.pod_logs", sim.params(namespace="shop", pod=pod, max_bytes=10_000_000))
    assert missing.value.non_retryable and 'pods "cart-nope" in namespace "shop" not found' in str(missing.value)
    assert unmatched.value.non_retryable and 'no pods match selector "app=nope"' in str(unmatched.value)
    assert container.value.non_retryable and 'has no container "sidecar" (containers: cart)' in str(container.value)
    assert neither.value.non_retryable and "either pod (a name) or selector" in str(neither.value)
    assert both.value.non_retryable and "not both" in str(both.value)
    assert too_much.value.non_retryable and "max_bytes" in str(too_much.value)


# -- k8s.events --------------------------------------------------------------------------------------------------


async def test_events_of_a_deployment_include_its_replica_sets_and_pods(k8s_sim: Any) -> None:
    with k8s_sim("bad-rollout") as sim:
        result = await run_action("k8s.events", sim.params(namespace="shop", object="Deployment/cart", limit=200))
        warnings = await run_action("k8s.events", sim.params(namespace="shop", object="Deployment/cart",
                                                             types=["Warning"]))
        everything = await run_action("k8s.events", sim.params(namespace="shop", since="30d", limit=200))
    reasons = {e["reason"] for e in result["events"]}
    assert "ScalingReplicaSet" in reasons
    backoff = [e for e in result["events"] if e["reason"] == "BackOff"]
    assert backoff and backoff[0]["type"] == "Warning" and backoff[0]["object"].startswith("Pod/cart-")
    assert backoff[0]["count"] > 1  # deduplicated like the real event recorder
    assert "Back-off restarting failed container cart" in backoff[0]["message"]
    assert {e["object"].split("/")[0] for e in result["events"]} >= {"Deployment", "ReplicaSet", "Pod"}
    assert not any("checkout" in e["object"] for e in result["events"])
    times = [e["at"] for e in result["events"]]
    assert times == sorted(times, reverse=True)
    assert result["count"] == len(result["events"])
    assert result["warning_count"] == sum(e["type"] == "Warning" for e in result["events"]) >= 1
    assert warnings["events"] and all(e["type"] == "Warning" for e in warnings["events"])
    assert warnings["count"] == warnings["warning_count"] == result["warning_count"]
    # The default window (1h) hides the three-day-old first release; 30d shows checkout's and cart's first rollout.
    assert any(e["object"] == "Deployment/checkout" for e in everything["events"])
    assert everything["count"] > result["count"]


async def test_events_limit_and_single_object(k8s_sim: Any) -> None:
    with k8s_sim("bad-rollout") as sim:
        limited = await run_action("k8s.events", sim.params(namespace="shop", object="Deployment/cart", limit=2))
        pod = limited["events"][0]["object"] if limited["events"][0]["object"].startswith("Pod/") else None
        one = await run_action("k8s.events", sim.params(namespace="shop", object="Deployment/cart", limit=200))
        pod = pod or next(e["object"] for e in one["events"] if e["object"].startswith("Pod/"))
        only_pod = await run_action("k8s.events", sim.params(namespace="shop", object=pod))
        with pytest.raises(ApplicationError) as bad_since:
            await run_action("k8s.events", sim.params(namespace="shop", since="an hour"))
    assert len(limited["events"]) == 2 and limited["count"] > 2
    assert only_pod["events"] and all(e["object"] == pod for e in only_pod["events"])
    assert bad_since.value.non_retryable and "since" in str(bad_since.value)


# -- k8s.node_conditions -----------------------------------------------------------------------------------------


async def test_node_conditions_report_the_node_that_stopped_posting_status(k8s_sim: Any) -> None:
    with k8s_sim("node-not-ready") as sim:
        result = await run_action("k8s.node_conditions", sim.params())
        two = await run_action("k8s.node_conditions", sim.params(nodes=["node-1", "node-2"]))
        by_label = await run_action("k8s.node_conditions", sim.params(selector="kubernetes.io/hostname=node-3"))
        with pytest.raises(ApplicationError) as missing:
            await run_action("k8s.node_conditions", sim.params(nodes=["node-1", "node-9"]))
    assert result["not_ready"] == ["node-3"] and result["healthy"] is False
    assert result["pressure"] == [] and result["cordoned"] == []
    node3 = next(n for n in result["nodes"] if n["name"] == "node-3")
    assert node3["ready"] is None and "ReadyUnknown" in node3["problems"]
    assert "Kubelet stopped posting node status" in node3["reason"]
    assert two["healthy"] is True and [n["name"] for n in two["nodes"]] == ["node-1", "node-2"]
    assert [n["name"] for n in by_label["nodes"]] == ["node-3"] and by_label["healthy"] is False
    assert missing.value.non_retryable and "nodes node-9 not found" in str(missing.value)


async def test_node_conditions_on_a_healthy_cluster_with_pressure_and_cordon(k8s_sim: Any) -> None:
    with k8s_sim() as sim:
        healthy = await run_action("k8s.node_conditions", sim.params())
        sim.control("nodes/node-2/condition", {"type": "MemoryPressure", "status": "True",
                                                "reason": "KubeletHasInsufficientMemory"})
        # Raw JSON back: the typed Node model rejects the simulator's sparse nodeInfo.
        client.CoreV1Api(sim.api()).patch_node("node-1", {"spec": {"unschedulable": True}}, _preload_content=False)
        degraded = await run_action("k8s.node_conditions", sim.params())
    assert healthy["healthy"] is True and healthy["not_ready"] == [] and len(healthy["nodes"]) == 3
    assert degraded["pressure"] == ["node-2"] and degraded["cordoned"] == ["node-1"]
    assert degraded["not_ready"] == [] and degraded["healthy"] is False


# -- k8s.top_pods ------------------------------------------------------------------------------------------------


async def test_top_pods_with_metrics_server(k8s_sim: Any) -> None:
    with k8s_sim("oom", metrics_server=True) as sim:
        by_memory = await run_action("k8s.top_pods", sim.params(namespace="shop"))
        by_cpu = await run_action("k8s.top_pods", sim.params(namespace="shop", selector="app=checkout",
                                                             sort_by="cpu", limit=1))
    assert by_memory["available"] is True and by_memory["note"] is None
    checkout = [p for p in by_memory["pods"] if p["name"].startswith("checkout-")]
    assert len(checkout) == 2
    assert checkout[0]["cpu"] == "50m" and checkout[0]["cpu_cores"] == 0.05
    assert checkout[0]["memory"] == "64Mi" and checkout[0]["memory_bytes"] == 64 * 1024**2
    assert checkout[0]["memory_limit"] is None and checkout[0]["memory_percent_of_limit"] is None
    memories = [p["memory_bytes"] for p in by_memory["pods"]]
    assert memories == sorted(memories, reverse=True)
    assert len(by_cpu["pods"]) == 1 and by_cpu["pods"][0]["name"].startswith("checkout-")


async def test_top_pods_computes_the_share_of_the_memory_limit(k8s_sim: Any) -> None:
    with k8s_sim("oom", metrics_server=True) as sim:
        # Limit 256Mi, using 200Mi: running (not OOMKilled), so the metrics API reports it.
        sim.control("images", {"image": "shop/search:3.1.0", "mode": "ok", "memory": "200Mi", "cpu": "250m"})
        result = await run_action("k8s.top_pods", sim.params(namespace="shop", selector="app=search"))
    assert [p["name"][:7] for p in result["pods"]] == ["search-", "search-"]
    pod = result["pods"][0]
    assert pod["memory"] == "200Mi" and pod["memory_limit"] == "256Mi"
    assert pod["memory_percent_of_limit"] == 78.1
    assert pod["cpu"] == "250m" and pod["cpu_cores"] == 0.25


async def test_top_pods_without_metrics_server_is_a_note_not_a_failure(k8s_sim: Any) -> None:
    with k8s_sim("oom") as sim:
        result = await run_action("k8s.top_pods", sim.params(namespace="shop"))
    assert result == {"available": False, "pods": [],
                      "note": "metrics-server is not installed (metrics.k8s.io answered 404); resource usage skipped"}


def test_selector_string_covers_match_expressions() -> None:
    from activities.k8s.fields import selector_string

    spec = {"matchLabels": {"app": "cart", "tier": "web"},
            "matchExpressions": [{"key": "track", "operator": "NotIn", "values": ["canary", "beta"]},
                                 {"key": "zone", "operator": "Exists"},
                                 {"key": "legacy", "operator": "DoesNotExist"},
                                 {"key": "env", "operator": "In", "values": ["prod"]}]}
    assert selector_string(spec) == "app=cart,tier=web,track notin (beta,canary),zone,!legacy,env in (prod)"
    assert selector_string(None) == ""
