"""`k8s.what_changed` correlation logic on realistic API dicts (no cluster: the module is pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from activities.k8s.changes import correlate, diff_templates

NS = "shop"
ALERT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
WINDOW_START = ALERT - timedelta(minutes=60)
DEPLOYMENT_UID = "0b7c6a1e-dep-cart"

SECRET_VALUE = "hunter2-super-secret"
SECRET_B64 = "aHVudGVyMi1zdXBlci1zZWNyZXQ="
LITERAL_PASSWORD = "literal-pass-in-env"


# ---------------------------------------------------------------------------------------------------------
# Fixture builders: shaped like `kubectl get -o json` output, with only the fields the module reads.


def ts(minutes_before_alert: float) -> str:
    return (ALERT - timedelta(minutes=minutes_before_alert)).strftime("%Y-%m-%dT%H:%M:%SZ")


def managed(*entries: tuple[str, float] | tuple[str, float, str]) -> list[dict[str, Any]]:
    fields = []
    for entry in entries:
        item: dict[str, Any] = {"manager": entry[0], "operation": "Update", "apiVersion": "v1",
                                "time": ts(entry[1]), "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {}}}
        if len(entry) == 3:
            item["subresource"] = entry[2]
        fields.append(item)
    return fields


def container(
    image: str = "shop/cart:1.4.2", *, name: str = "cart", env: list[dict[str, Any]] | None = None,
    memory: str = "512Mi",
) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "env": env if env is not None else base_env(),
        "envFrom": [{"configMapRef": {"name": "cart-config"}}],
        "resources": {"limits": {"memory": memory}, "requests": {"cpu": "250m"}},
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
    }


def base_env() -> list[dict[str, Any]]:
    return [
        {"name": "LOG_LEVEL", "value": "info"},
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
    ]


def template(
    containers: list[dict[str, Any]] | None = None, *, pod_hash: str = "aaa", restarted_at: str | None = None,
) -> dict[str, Any]:
    annotations = {"prometheus.io/scrape": "true"}
    if restarted_at:
        annotations["kubectl.kubernetes.io/restartedAt"] = restarted_at
    return {
        "metadata": {"labels": {"app": "cart", "pod-template-hash": pod_hash}, "annotations": annotations},
        "spec": {
            "containers": containers if containers is not None else [container()],
            "volumes": [
                {"name": "tls", "projected": {"sources": [{"secret": {"name": "cart-tls"}}]}},
                {"name": "cache", "emptyDir": {}},
            ],
        },
    }


def deployment(tmpl: dict[str, Any] | None = None) -> dict[str, Any]:
    tmpl = tmpl or template()
    tmpl = {**tmpl, "metadata": {**tmpl["metadata"], "labels": {"app": "cart"}}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "cart", "namespace": NS, "uid": DEPLOYMENT_UID,
                     "annotations": {"deployment.kubernetes.io/revision": "7"}},
        "spec": {"replicas": 3, "template": tmpl},
    }


def replica_set(
    name: str, revision: int | None, created_minutes_before: float, tmpl: dict[str, Any], *,
    managed_fields: list[dict[str, Any]] | None = None, owner: str = "cart", owner_uid: str = DEPLOYMENT_UID,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": NS,
        "creationTimestamp": ts(created_minutes_before),
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": owner, "uid": owner_uid,
                             "controller": True}],
    }
    if revision is not None:
        metadata["annotations"] = {"deployment.kubernetes.io/revision": str(revision)}
    if managed_fields is not None:
        metadata["managedFields"] = managed_fields
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": metadata, "spec": {"template": tmpl}}


def config_map(name: str, created_minutes_before: float, *updates: float) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": NS, "creationTimestamp": ts(created_minutes_before)}
    if updates:
        metadata["managedFields"] = managed(*[("kubectl-edit", u) for u in updates])
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"feature.x": "on"}}


def secret(name: str, created_minutes_before: float, *updates: float) -> dict[str, Any]:
    obj = config_map(name, created_minutes_before, *updates)
    obj["kind"] = "Secret"
    obj["type"] = "Opaque"
    obj["data"] = {"password": SECRET_B64}
    obj["stringData"] = {"password": SECRET_VALUE}
    return obj


def node(
    name: str, *, ready: str = "True", transition_minutes_before: float = 5000, reason: str = "KubeletReady",
    cordoned_minutes_before: float | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"podCIDR": "10.0.0.0/24"}
    if cordoned_minutes_before is not None:
        spec["unschedulable"] = True
        spec["taints"] = [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule",
                           "timeAdded": ts(cordoned_minutes_before)}]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "creationTimestamp": ts(90000)},
        "spec": spec,
        "status": {"conditions": [
            {"type": "MemoryPressure", "status": "False", "lastTransitionTime": ts(5000)},
            {"type": "Ready", "status": ready, "reason": reason, "message": f"{reason} message",
             "lastHeartbeatTime": ts(0.5), "lastTransitionTime": ts(transition_minutes_before)},
        ]},
    }


def event(
    reason: str, kind: str, name: str, minutes_before: float, *, message: str = "", count: int | None = None,
    only_event_time: bool = False, namespace: str = NS,
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{name}.{reason.lower()}", "namespace": namespace},
        "involvedObject": {"kind": kind, "name": name, "namespace": "" if kind == "Node" else namespace},
        "reason": reason,
        "message": message,
        "type": "Normal",
    }
    if only_event_time:
        # events.k8s.io-style: MicroTime eventTime, no legacy timestamps.
        obj["eventTime"] = (ALERT - timedelta(minutes=minutes_before)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        obj["firstTimestamp"] = obj["lastTimestamp"] = None
    else:
        obj["firstTimestamp"] = ts(minutes_before + 30)
        obj["lastTimestamp"] = ts(minutes_before)
        obj["count"] = count or 1
    return obj


def pod(name: str, node_name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": NS}, "spec": {"nodeName": node_name}}


def run(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "namespace": NS, "deployment": deployment(), "replica_sets": [], "events": [], "config_maps": [],
        "secrets": [], "nodes": [], "pods": [], "window_start": WINDOW_START, "alert_time": ALERT,
    }
    args.update(overrides)
    result = correlate(**args)
    # The output crosses a Temporal activity boundary: it must survive JSON unchanged.
    assert json.loads(json.dumps(result)) == result
    return result


def new_template() -> dict[str, Any]:
    env = [
        {"name": "LOG_LEVEL", "value": "debug"},
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password-v2"}}},
        {"name": "NEW_FLAG", "value": "1"},
    ]
    return template([container("shop/cart:1.4.3", env=env, memory="1Gi")], pod_hash="bbb")


def rollout_sets() -> list[dict[str, Any]]:
    return [
        replica_set("cart-5d8f", 5, 4000, template(pod_hash="zzz")),
        replica_set("cart-6a1b", 6, 3000, template()),
        replica_set("cart-7c2d", 7, 12, new_template(),
                    managed_fields=managed(("kube-controller-manager", 1), ("kube-controller-manager", 0.5, "status"))),
        # Noise the filter must drop: no revision annotation, and another Deployment's ReplicaSet.
        replica_set("cart-legacy", None, 10, template()),
        replica_set("cart-canary-1", 9, 5, template(), owner="cart-canary", owner_uid="other-uid"),
    ]


# ---------------------------------------------------------------------------------------------------------
# Rollouts


def test_recent_rollout_is_the_top_suspect_with_revisions_and_diff() -> None:
    result = run(replica_sets=rollout_sets(), config_maps=[config_map("unrelated", 9000, 20)])

    top = result["top_suspect"]
    assert top["rank"] == 1 and top["kind"] == "rollout" and top["object"] == "Deployment/cart"
    assert top["at"] == "2026-11-23T09:48:00Z" and top["age_minutes"] == 12.0 and top["score"] == 88.0
    assert top["reason"] == ("Deployment shop/cart rolled out revision 7 (image shop/cart:1.4.2 -> shop/cart:1.4.3; "
                             "env LOG_LEVEL info -> debug; +3 more changes) 12.0 minutes before the alert.")
    assert result["workload"] == {"kind": "Deployment", "namespace": NS, "name": "cart"}
    assert result["window"] == {"start": "2026-11-23T09:00:00Z", "end": "2026-11-23T10:00:00Z"}

    rollout = result["rollout"]
    assert (rollout["revision"], rollout["replica_set"]) == (7, "cart-7c2d")
    assert (rollout["previous_revision"], rollout["previous_replica_set"]) == (6, "cart-6a1b")
    assert rollout["created"] == "2026-11-23T09:48:00Z"
    assert rollout["restart"] is False and rollout["rollback"] is False
    assert rollout["diff"] == [
        {"container": "cart", "field": "image", "from": "shop/cart:1.4.2", "to": "shop/cart:1.4.3"},
        {"container": "cart", "field": "env.LOG_LEVEL", "from": "info", "to": "debug"},
        {"container": "cart", "field": "env.DB_PASSWORD", "from": "secretKeyRef db/password",
         "to": "secretKeyRef db/password-v2"},
        {"container": "cart", "field": "env.NEW_FLAG", "from": None, "to": "1"},
        {"container": "cart", "field": "resources.limits.memory", "from": "512Mi", "to": "1Gi"},
    ]
    assert rollout["diff_text"].splitlines() == [
        "  container cart: image shop/cart:1.4.2 -> shop/cart:1.4.3",
        "  container cart: env LOG_LEVEL info -> debug",
        "  container cart: env DB_PASSWORD secretKeyRef db/password -> secretKeyRef db/password-v2",
        "  container cart: env NEW_FLAG (unset) -> 1",
        "  container cart: resources.limits.memory 512Mi -> 1Gi",
    ]
    assert result["summary"] == (
        "Deployment shop/cart rolled out revision 7 12.0 minutes before the alert (image shop/cart:1.4.2 -> "
        "shop/cart:1.4.3; env LOG_LEVEL info -> debug; +3 more changes); 1 other change in the window.")
    # Only the in-window revision is a change; the canary's and the annotation-less ReplicaSets are not.
    rollouts = [c for c in result["changes"] if c["kind"] == "rollout"]
    assert [c["details"]["revision"] for c in rollouts] == [7]


def test_restart_only_rollout_is_reported_as_restart() -> None:
    before = template(pod_hash="aaa", restarted_at="2026-11-20T08:00:00Z")
    after = template(pod_hash="bbb", restarted_at="2026-11-23T09:55:00Z")
    result = run(deployment=deployment(after),
                 replica_sets=[replica_set("cart-a", 3, 5000, before), replica_set("cart-b", 4, 5, after)])

    rollout = result["rollout"]
    assert rollout["revision"] == 4 and rollout["restart"] is True and rollout["diff"] == []
    assert "rollout restart" in rollout["diff_text"]
    assert result["changes"][0]["summary"] == "Deployment shop/cart rolled out revision 4 (rollout restart)."
    assert result["top_suspect"]["reason"].endswith("(rollout restart) 5.0 minutes before the alert.")


def test_rollback_reusing_an_old_replica_set_is_timed_by_managed_fields() -> None:
    old_good = template([container("shop/cart:1.4.2")], pod_hash="old")
    bad = template([container("shop/cart:1.4.3")], pod_hash="bad")
    # `kubectl rollout undo` re-used the 3-day-old ReplicaSet and bumped its revision 5 -> 7 eight minutes ago;
    # the later status write (replica counts) must not move the rollout time.
    fields = managed(("kube-controller-manager", 8), ("kube-controller-manager", 1, "status"))
    reused = replica_set("cart-old", 7, 4320, old_good, managed_fields=fields)
    result = run(deployment=deployment(old_good),
                 replica_sets=[reused, replica_set("cart-bad", 6, 40, bad)])

    rollout = result["rollout"]
    assert (rollout["revision"], rollout["previous_revision"]) == (7, 6)
    assert rollout["rollback"] is True and rollout["time_source"] == "managedFields"
    assert rollout["created"] == "2026-11-23T09:52:00Z"
    assert rollout["diff"] == [{"container": "cart", "field": "image", "from": "shop/cart:1.4.3",
                                "to": "shop/cart:1.4.2"}]
    assert result["top_suspect"]["object"] == "Deployment/cart" and result["top_suspect"]["age_minutes"] == 8.0
    # The bad rollout 40 minutes ago is in the window too, ranked below the newer rollback.
    assert [(s["kind"], s["age_minutes"]) for s in result["suspects"]] == [("rollout", 8.0), ("rollout", 40.0)]


def test_rollback_without_managed_fields_falls_back_to_creation_and_leaves_the_window() -> None:
    result = run(replica_sets=[replica_set("cart-old", 7, 4320, template()),
                               replica_set("cart-bad", 6, 4000, template(pod_hash="b"))])
    assert result["rollout"] is None and result["changes"] == []


# ---------------------------------------------------------------------------------------------------------
# Window, config, nodes, scaling


def test_changes_outside_the_window_are_excluded() -> None:
    result = run(
        replica_sets=[replica_set("cart-a", 1, 90, template())],  # rolled out before the window
        config_maps=[config_map("cart-config", 9000, 75), config_map("in-window", 9000, 30)],
        events=[event("ScalingReplicaSet", "Deployment", "cart", -2, message="after the alert")],
        nodes=[node("node-1", ready="False", transition_minutes_before=61)],
    )
    assert [c["object"] for c in result["changes"]] == ["ConfigMap/in-window"]
    assert result["changes"][0]["at"] == "2026-11-23T09:30:00Z"
    assert result["rollout"] is None


def test_change_exactly_on_the_window_edges_is_included() -> None:
    result = run(config_maps=[config_map("at-start", 60), config_map("at-alert", 9000, 0)])
    assert {c["object"] for c in result["changes"]} == {"ConfigMap/at-start", "ConfigMap/at-alert"}
    created = next(c for c in result["changes"] if c["object"] == "ConfigMap/at-start")
    assert created["details"]["change"] == "created"


def test_referenced_config_map_ranks_above_a_newer_unreferenced_one() -> None:
    result = run(config_maps=[config_map("cart-config", 9000, 30), config_map("billing-config", 9000, 2)])

    assert [s["object"] for s in result["suspects"]] == ["ConfigMap/cart-config", "ConfigMap/billing-config"]
    by_object = {c["object"]: c for c in result["changes"]}
    assert by_object["ConfigMap/cart-config"]["details"]["referenced_by_workload"] is True
    assert by_object["ConfigMap/cart-config"]["details"]["changed_by"] == "kubectl-edit"
    assert by_object["ConfigMap/billing-config"]["details"]["referenced_by_workload"] is False
    assert result["top_suspect"]["reason"] == (
        "ConfigMap shop/cart-config, referenced by the workload's pod template, was updated "
        "30.0 minutes before the alert.")
    # Changes stay newest first regardless of rank.
    assert [c["object"] for c in result["changes"]] == ["ConfigMap/billing-config", "ConfigMap/cart-config"]


def test_node_that_went_not_ready_under_the_workload_pods() -> None:
    result = run(
        nodes=[node("node-2", ready="False", transition_minutes_before=3, reason="NodeStatusUnknown"),
               node("node-3", ready="False", transition_minutes_before=2), node("node-1")],
        pods=[pod("cart-7c2d-aaaaa", "node-2"), pod("cart-7c2d-bbbbb", "node-2"), pod("cart-7c2d-ccccc", "node-1")],
        events=[event("NodeNotReady", "Node", "node-2", 3.5, message="Node node-2 status is now: NodeNotReady"),
                event("NodeHasDiskPressure", "Node", "node-1", 20, message="disk pressure")],
    )

    top = result["top_suspect"]
    assert top["object"] == "Node/node-2" and top["kind"] == "node"
    assert top["reason"] == ("Node node-2, which runs 2 pods of the workload, became NotReady "
                             "(NodeStatusUnknown: NodeStatusUnknown message) 3.0 minutes before the alert.")
    node2 = next(c for c in result["changes"] if c["object"] == "Node/node-2")
    assert node2["details"]["runs_workload_pods"] is True and node2["details"]["workload_pod_count"] == 2
    assert node2["details"]["status"] == "False"
    # The NodeNotReady event mirrors the condition change and is not a second suspect.
    assert [c["object"] for c in result["changes"]].count("Node/node-2") == 1
    node3 = next(c for c in result["changes"] if c["object"] == "Node/node-3")
    assert node3["details"]["runs_workload_pods"] is False
    assert [s["object"] for s in result["suspects"]] == ["Node/node-2", "Node/node-1", "Node/node-3"]


def test_cordoned_node_is_a_change() -> None:
    result = run(nodes=[node("node-4", cordoned_minutes_before=15)], pods=[pod("p", "node-4")],
                 events=[event("NodeNotSchedulable", "Node", "node-4", 15)])
    assert len(result["changes"]) == 1
    assert result["changes"][0]["summary"] == (
        "Node node-4, which runs 1 pod of the workload, was cordoned (unschedulable).")


def test_scaling_events_of_the_deployment_and_its_hpa() -> None:
    result = run(events=[
        event("ScalingReplicaSet", "Deployment", "cart", 6, message="Scaled up replica set cart-7c2d to 6", count=2),
        event("ScalingReplicaSet", "Deployment", "checkout", 4, message="not our workload"),
        event("SuccessfulRescale", "HorizontalPodAutoscaler", "cart", 7, only_event_time=True,
              message="New size: 6; reason: cpu resource utilization above target"),
        event("ScalingReplicaSet", "Deployment", "cart", 5, namespace="other-ns"),
    ])
    assert [c["object"] for c in result["changes"]] == ["Deployment/cart", "HorizontalPodAutoscaler/cart"]
    scaled, hpa = result["changes"]
    assert scaled["details"] == {"reason": "ScalingReplicaSet", "message": "Scaled up replica set cart-7c2d to 6",
                                 "count": 2, "source": "Deployment"}
    assert hpa["at"] == "2026-11-23T09:53:00Z" and hpa["details"]["count"] == 1


def test_ranking_order_across_classes_at_equal_age() -> None:
    result = run(
        replica_sets=[replica_set("cart-a", 1, 9000, template()), replica_set("cart-b", 2, 10, new_template())],
        config_maps=[config_map("cart-config", 9000, 10), config_map("other", 9000, 10)],
        nodes=[node("node-1", ready="False", transition_minutes_before=10),
               node("node-9", ready="False", transition_minutes_before=10)],
        pods=[pod("p", "node-1")],
        events=[event("ScalingReplicaSet", "Deployment", "cart", 10)],
    )
    assert [s["object"] for s in result["suspects"]] == [
        "Deployment/cart", "ConfigMap/cart-config", "Node/node-1", "ConfigMap/other", "Deployment/cart",
        "Node/node-9"]
    assert [s["rank"] for s in result["suspects"]] == [1, 2, 3, 4, 5, 6]
    assert [s["score"] for s in result["suspects"]] == [90.0, 63.0, 54.0, 27.0, 18.0, 9.0]


def test_old_rollout_score_is_floored() -> None:
    result = run(window_start=ALERT - timedelta(hours=6),
                 replica_sets=[replica_set("cart-a", 1, 9000, template()), replica_set("cart-b", 2, 300, template())])
    assert result["top_suspect"]["score"] == 50.0


# ---------------------------------------------------------------------------------------------------------
# Safety and edge cases


def test_secret_values_never_reach_the_output() -> None:
    env_before = [*base_env(), {"name": "API_TOKEN", "value": "old-" + LITERAL_PASSWORD}]
    env_after = [
        {"name": "LOG_LEVEL", "value": "info"},
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
        {"name": "API_TOKEN", "value": LITERAL_PASSWORD},
        {"name": "EXTRA", "valueFrom": {"secretKeyRef": {"name": "db", "key": "extra"}}},
    ]
    before = template([container(env=env_before)])
    after = template([container(env=env_after)], pod_hash="new")
    result = run(deployment=deployment(after),
                 replica_sets=[replica_set("cart-a", 1, 9000, before), replica_set("cart-b", 2, 4, after)],
                 secrets=[secret("db", 9000, 3), secret("unrelated", 20)])

    dumped = json.dumps(result)
    for value in (SECRET_VALUE, SECRET_B64, LITERAL_PASSWORD, "feature.x"):
        assert value not in dumped
    diff = {entry["field"]: entry for entry in result["rollout"]["diff"]}
    assert diff["env.EXTRA"]["to"] == "secretKeyRef db/extra"
    assert diff["env.API_TOKEN"]["from"] == diff["env.API_TOKEN"]["to"] == "<redacted>"
    db = next(c for c in result["changes"] if c["object"] == "Secret/db")
    assert db["details"]["referenced_by_workload"] is True and db["kind"] == "secret"
    assert next(c for c in result["changes"] if c["object"] == "Secret/unrelated")["details"]["change"] == "created"


def test_no_changes_says_so() -> None:
    result = run(replica_sets=[replica_set("cart-a", 1, 9000, template())],
                 config_maps=[config_map("cart-config", 9000)], nodes=[node("node-1")])
    assert result["changes"] == [] and result["suspects"] == []
    assert result["top_suspect"] is None and result["rollout"] is None
    assert result["summary"] == "No changes found between 2026-11-23T09:00:00Z and 2026-11-23T10:00:00Z."


def test_no_workload_gives_namespace_view_without_rollouts() -> None:
    result = run(deployment=None, replica_sets=[replica_set("cart-b", 2, 4, template())],
                 config_maps=[config_map("cart-config", 9000, 5)],
                 events=[event("ScalingReplicaSet", "Deployment", "checkout", 4)])
    assert result["workload"] is None and result["rollout"] is None
    assert [c["kind"] for c in result["changes"]] == ["scaling", "config_map"]
    assert all(c["details"].get("referenced_by_workload") in (None, False) for c in result["changes"])


def test_max_changes_is_respected() -> None:
    config_maps = [config_map(f"cm-{i}", 9000, i + 1) for i in range(10)]
    result = run(config_maps=config_maps, max_changes=3)
    assert [c["object"] for c in result["changes"]] == ["ConfigMap/cm-0", "ConfigMap/cm-1", "ConfigMap/cm-2"]
    assert len(result["suspects"]) == 3 and result["top_suspect"] == result["suspects"][0]
    # The summary still counts everything that changed, not just what fit.
    assert result["summary"].endswith("; 9 other changes in the window.")


def test_robust_to_sparse_objects_and_only_event_time() -> None:
    result = run(
        deployment={"metadata": {"name": "cart"}},  # no uid, no template: match ReplicaSets by owner name
        replica_sets=[
            {"metadata": {"name": "bare"}},
            {"metadata": {"name": "cart-x", "ownerReferences": [{"kind": "Deployment", "name": "cart"}],
                          "annotations": {"deployment.kubernetes.io/revision": "not-a-number"}}},
            replica_set("cart-y", 3, 7, template(), owner_uid="stale-uid"),
        ],
        config_maps=[{"metadata": {"name": "no-times"}}, {}],
        secrets=[{"metadata": {"name": "s", "creationTimestamp": "garbage"}}],
        nodes=[{"metadata": {"name": "n"}, "status": {"conditions": [{"type": "Ready"}]}}, {}],
        events=[event("Rebooted", "Node", "node-5", 9, only_event_time=True, message="Node node-5 rebooted"), {}],
        window_start=datetime(2026, 11, 23, 9, 0),  # naive: read as UTC
    )
    assert [c["object"] for c in result["changes"]] == ["Deployment/cart", "Node/node-5"]
    assert result["rollout"]["previous_revision"] is None
    assert "no earlier revision" in result["rollout"]["diff_text"]
    for change in result["changes"]:
        assert change["at"].endswith("Z") and "+" not in change["at"]
    assert result["window"]["start"] == "2026-11-23T09:00:00Z"


def test_diff_reports_added_removed_containers_env_from_and_volumes() -> None:
    old = template([container(), container("envoy:1.29", name="proxy")])
    new = template([container(), container("otel/collector:0.99", name="otel")])
    new["spec"]["containers"][0]["envFrom"] = [{"secretRef": {"name": "cart-env"}}]
    new["spec"]["containers"][0]["command"] = ["/cart", "--fast"]
    new["spec"]["volumes"][0] = {"name": "tls", "secret": {"secretName": "cart-tls-v2"}}
    diff, restart = diff_templates(old, new)
    assert restart is False
    assert diff == [
        {"container": "cart", "field": "command", "from": None, "to": ["/cart", "--fast"]},
        {"container": "cart", "field": "envFrom", "from": ["configMapRef cart-config"], "to": ["secretRef cart-env"]},
        {"container": "otel", "field": "container", "from": None, "to": "otel/collector:0.99"},
        {"container": "proxy", "field": "container", "from": "envoy:1.29", "to": None},
        {"container": None, "field": "volumes", "from": "tls: projected (secret cart-tls)",
         "to": "tls: secret cart-tls-v2"},
    ]
