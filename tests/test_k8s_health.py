"""Pure Kubernetes classification: pod/node/deployment health from raw API dicts, and resource quantities."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from activities.k8s.health import (
    deployment_summary,
    format_bytes,
    node_summary,
    parse_quantity,
    pod_problems,
    replica_mismatch,
    summarize_pod,
)

NOW = datetime(2026, 11, 23, 10, 10, 0, tzinfo=UTC)
CREATED = "2026-11-23T10:00:00Z"  # ten minutes before NOW


# -- fixture builders: shaped like `kubectl get -o json`, camelCase, with only what each test needs to vary ------


def running(name: str = "cart", *, restarts: int = 0, ready: bool = True, last: dict[str, Any] | None = None,
            image: str = "registry.example.com/shop/cart:1.4.2") -> dict[str, Any]:
    status: dict[str, Any] = {
        "name": name,
        "image": image,
        "imageID": f"{image}@sha256:abc",
        "ready": ready,
        "started": True,
        "restartCount": restarts,
        "state": {"running": {"startedAt": "2026-11-23T10:01:00Z"}},
        "lastState": {},
    }
    if last is not None:
        status["lastState"] = {"terminated": last}
    return status


def waiting(name: str, reason: str, message: str = "", *, restarts: int = 0, last: dict[str, Any] | None = None,
            image: str = "registry.example.com/shop/cart:1.4.2") -> dict[str, Any]:
    state: dict[str, Any] = {"reason": reason}
    if message:
        state["message"] = message
    return {
        "name": name,
        "image": image,
        "imageID": "",
        "ready": False,
        "started": False,
        "restartCount": restarts,
        "state": {"waiting": state},
        "lastState": {"terminated": last} if last else {},
    }


def terminated(reason: str, exit_code: int, finished: str = "2026-11-23T10:08:00Z") -> dict[str, Any]:
    return {"exitCode": exit_code, "reason": reason, "startedAt": "2026-11-23T10:07:00Z", "finishedAt": finished}


def condition(kind: str, status: str, reason: str = "", message: str = "",
              since: str = "2026-11-23T10:02:00Z") -> dict[str, Any]:
    cond: dict[str, Any] = {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": since}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def pod(*, phase: str = "Running", containers: list[dict[str, Any]] | None = None,
        init: list[dict[str, Any]] | None = None, conditions: list[dict[str, Any]] | None = None,
        node: str | None = "ip-10-0-1-23.eu-west-1.compute.internal", memory_limit: str | None = "256Mi",
        **status_extra: Any) -> dict[str, Any]:
    statuses = [running()] if containers is None else containers
    if conditions is None:
        all_ready = all(c.get("ready") for c in statuses)
        conditions = [
            condition("PodScheduled", "True"),
            condition("Initialized", "True"),
            condition("ContainersReady", "True" if all_ready else "False"),
            condition("Ready", "True" if all_ready else "False"),
        ]
    resources: dict[str, Any] = {"requests": {"cpu": "250m", "memory": "128Mi"}}
    if memory_limit:
        resources["limits"] = {"memory": memory_limit}
    spec: dict[str, Any] = {
        "containers": [{"name": c["name"], "image": c["image"], "resources": resources} for c in statuses],
    }
    if init:
        spec["initContainers"] = [{"name": c["name"], "image": c["image"]} for c in init]
    if node:
        spec["nodeName"] = node
    status: dict[str, Any] = {"phase": phase, "conditions": conditions, **status_extra}
    if statuses:
        status["containerStatuses"] = statuses
    if init:
        status["initContainerStatuses"] = init
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "cart-7d9f8c6b5-x2k4q",
            "namespace": "shop",
            "creationTimestamp": CREATED,
            "labels": {"app": "cart", "pod-template-hash": "7d9f8c6b5"},
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "cart-7d9f8c6b5", "controller": True},
            ],
        },
        "spec": spec,
        "status": status,
    }


def reasons(problems: list[dict[str, Any]]) -> list[str]:
    return [p["reason"] for p in problems]


# -- quantities ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500m", 0.5),
        ("2", 2.0),
        ("0.25", 0.25),
        ("1.5Gi", 1610612736.0),
        ("128974848", 128974848.0),
        ("129e6", 129000000.0),
        ("123Mi", 128974848.0),
        ("129M", 129000000.0),
        ("64Ki", 65536.0),
        ("1k", 1000.0),
        ("1E", 1e18),
        ("1E3", 1000.0),
        ("2Ti", 2 * 1024.0**4),
        ("100n", 1e-7),
        ("250u", 0.00025),
        (".5", 0.5),
        ("+1", 1.0),
        (3, 3.0),
        (0.5, 0.5),
    ],
)
def test_parse_quantity(text: str | int | float, expected: float) -> None:
    assert parse_quantity(text) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("junk", ["", "abc", "1.2.3", "12 Mi", "12mi", "1Gb", "Mi", "1e", "1KiB", "--1", "nan"])
def test_parse_quantity_rejects_junk(junk: str) -> None:
    with pytest.raises(ValueError, match="invalid quantity"):
        parse_quantity(junk)


def test_parse_quantity_rejects_non_numbers() -> None:
    for junk in (True, None, float("inf")):
        with pytest.raises(ValueError, match="invalid quantity"):
            parse_quantity(junk)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0"),
        (256 * 1024**2, "256Mi"),
        (1610612736, "1.5Gi"),
        (1280 * 1024**2, "1.25Gi"),
        (2 * 1024**3, "2Gi"),
        (1100 * 1024**2, "1100Mi"),
        (3 * 1024**4, "3Ti"),
        (128974848, "123Mi"),
        # Not a whole Mi: rounded up, never down, because the result may become a memory limit.
        (129e6, "124Mi"),
        (1, "1Mi"),
    ],
)
def test_format_bytes(n: float, text: str) -> None:
    assert format_bytes(n) == text


@pytest.mark.parametrize("text", ["256Mi", "1.5Gi", "2Gi", "123Mi", "1100Mi", "3Ti"])
def test_format_bytes_round_trips_exact_values(text: str) -> None:
    assert format_bytes(parse_quantity(text)) == text


@pytest.mark.parametrize("n", [129e6, 1, 1024**2 + 1, 3.7 * 1024**3])
def test_format_bytes_never_rounds_down(n: float) -> None:
    back = parse_quantity(format_bytes(n))
    assert n <= back < n + 1024**2


# -- pods ---------------------------------------------------------------------------------------------------------


def test_healthy_pod_has_no_problems_and_a_full_summary() -> None:
    summary = summarize_pod(pod(), now=NOW)
    assert summary == {
        "name": "cart-7d9f8c6b5-x2k4q",
        "namespace": "shop",
        "node": "ip-10-0-1-23.eu-west-1.compute.internal",
        "phase": "Running",
        "ready": True,
        "restarts": 0,
        "age_s": 600.0,
        "images": ["registry.example.com/shop/cart:1.4.2"],
        "problems": [],
        "owner": "ReplicaSet/cart-7d9f8c6b5",
    }
    json.dumps(summary)


def test_crash_loop_names_restarts_and_last_exit() -> None:
    problems = pod_problems(pod(containers=[
        waiting("cart", "CrashLoopBackOff", "back-off 5m0s restarting failed container=cart", restarts=7,
                last=terminated("Error", 1)),
    ]), now=NOW)
    assert problems[0] == {
        "reason": "CrashLoopBackOff",
        "container": "cart",
        "detail": "container cart is in CrashLoopBackOff (restarted 7 times, last exit code 1: Error)",
    }
    # Seven restarts is also over the default threshold; both facts are reported, the specific one first.
    assert reasons(problems) == ["CrashLoopBackOff", "RestartsOverThreshold"]


def test_crash_loop_caused_by_oom_reports_both() -> None:
    problems = pod_problems(pod(containers=[
        waiting("cart", "CrashLoopBackOff", restarts=2, last=terminated("OOMKilled", 137)),
    ]), now=NOW)
    assert reasons(problems) == ["CrashLoopBackOff", "OOMKilled"]
    assert problems[0]["detail"] == (
        "container cart is in CrashLoopBackOff (restarted 2 times, last exit code 137: OOMKilled)"
    )
    assert "memory limit 256Mi" in problems[1]["detail"]


def test_oom_in_last_state_while_running_again() -> None:
    p = pod(containers=[running("cart", restarts=1, last=terminated("OOMKilled", 137))])
    problems = pod_problems(p, now=NOW)
    assert problems == [{
        "reason": "OOMKilled",
        "container": "cart",
        "detail": "container cart was OOMKilled (exit code 137, memory limit 256Mi, at 2026-11-23T10:08:00Z); "
                  "it is running again",
    }]
    assert summarize_pod(p, now=NOW)["ready"] is True


def test_oom_in_current_state_without_a_limit() -> None:
    c = waiting("cart", "ContainerCreating")
    c["state"] = {"terminated": terminated("OOMKilled", 137)}
    problems = pod_problems(pod(containers=[c], memory_limit=None), now=NOW)
    assert reasons(problems) == ["OOMKilled"]
    assert problems[0]["detail"].startswith("container cart was OOMKilled (exit code 137, no memory limit")


@pytest.mark.parametrize("reason", ["ImagePullBackOff", "ErrImagePull"])
def test_image_pull_failures(reason: str) -> None:
    msg = 'Back-off pulling image "registry.example.com/shop/cart:1.4.3"'
    p = pod(phase="Pending", containers=[waiting("cart", reason, msg, image="registry.example.com/shop/cart:1.4.3")])
    problems = pod_problems(p, now=NOW)
    assert problems[0] == {
        "reason": reason,
        "container": "cart",
        "detail": f"container cart cannot pull image registry.example.com/shop/cart:1.4.3 ({reason}: {msg})",
    }
    # The pod is also Pending; that line says what it waits on rather than repeating the scheduler.
    assert problems[1]["reason"] == "Pending"
    assert f"waiting for cart ({reason})" in problems[1]["detail"]


def test_create_container_config_error_carries_the_missing_secret() -> None:
    p = pod(phase="Pending", containers=[
        waiting("cart", "CreateContainerConfigError", 'secret "cart-db" not found'),
    ])
    problems = pod_problems(p, now=NOW, pending_grace_s=3600)
    assert problems == [{
        "reason": "CreateContainerConfigError",
        "container": "cart",
        "detail": 'container cart cannot be created (CreateContainerConfigError: secret "cart-db" not found)',
    }]


def test_restart_threshold_is_strictly_over() -> None:
    at = pod(containers=[running("cart", restarts=3, last=terminated("Error", 2))])
    over = pod(containers=[running("cart", restarts=4, last=terminated("Error", 2))])
    assert pod_problems(at, now=NOW) == []
    assert pod_problems(over, now=NOW) == [{
        "reason": "RestartsOverThreshold",
        "container": "cart",
        "detail": "container cart restarted 4 times (threshold 3), last exit code 2: Error",
    }]
    assert pod_problems(at, now=NOW, restart_threshold=2)[0]["reason"] == "RestartsOverThreshold"


def test_init_container_crash_loop() -> None:
    init = [waiting("migrate", "CrashLoopBackOff", restarts=5, last=terminated("Error", 3),
                    image="registry.example.com/shop/migrate:7")]
    app = [waiting("cart", "PodInitializing")]
    p = pod(phase="Pending", init=init, containers=app, conditions=[
        condition("PodScheduled", "True"),
        condition("Initialized", "False", "ContainersNotInitialized", "containers with incomplete status: [migrate]"),
        condition("Ready", "False", "ContainersNotReady", "containers with unready status: [cart]"),
    ])
    problems = pod_problems(p, now=NOW)
    assert problems[0] == {
        "reason": "CrashLoopBackOff",
        "container": "migrate",
        "detail": "init container migrate is in CrashLoopBackOff (restarted 5 times, last exit code 3: Error)",
    }
    assert reasons(problems) == ["CrashLoopBackOff", "RestartsOverThreshold", "Pending"]
    assert "waiting for migrate (init, CrashLoopBackOff), cart (PodInitializing)" in problems[2]["detail"]
    assert summarize_pod(p, now=NOW)["restarts"] == 5


def test_pending_unschedulable_carries_the_scheduler_message() -> None:
    msg = "0/3 nodes are available: 3 node(s) were unschedulable. preemption: 0/3 nodes are available."
    p = pod(phase="Pending", containers=[], node=None,
            conditions=[condition("PodScheduled", "False", "Unschedulable", msg)])
    problems = pod_problems(p, now=NOW)
    assert problems == [{
        "reason": "Pending",
        "container": None,
        "detail": f"pod has been Pending for 10m: Unschedulable: {msg}",
    }]
    summary = summarize_pod(p, now=NOW)
    assert summary["node"] is None and summary["ready"] is False and summary["restarts"] == 0


def test_pending_within_grace_is_not_a_problem() -> None:
    p = pod(phase="Pending", containers=[waiting("cart", "ContainerCreating")])
    assert pod_problems(p, now=NOW, pending_grace_s=900) == []
    assert reasons(pod_problems(p, now=NOW, pending_grace_s=300)) == ["Pending"]
    assert pod_problems(p, now=NOW, pending_grace_s=300)[0]["detail"] == (
        "pod has been Pending for 10m on node ip-10-0-1-23.eu-west-1.compute.internal, "
        "waiting for cart (ContainerCreating)"
    )


def test_pending_without_any_status_detail() -> None:
    p = {"metadata": {"name": "cart-x", "namespace": "shop"}, "spec": {}, "status": {"phase": "Pending"}}
    # No creationTimestamp: the age is unknown, so even a long grace cannot excuse it.
    assert pod_problems(p, pending_grace_s=600) == [
        {"reason": "Pending", "container": None, "detail": "pod has been Pending and is not yet scheduled"},
    ]


def test_running_but_not_ready() -> None:
    p = pod(containers=[running("cart", ready=False)], conditions=[
        condition("PodScheduled", "True"),
        condition("Ready", "False", "ContainersNotReady", "containers with unready status: [cart]"),
    ])
    assert pod_problems(p, now=NOW) == [{
        "reason": "NotReady",
        "container": None,
        "detail": "pod is Running but not Ready (ContainersNotReady: containers with unready status: [cart])",
    }]


def test_not_ready_is_suppressed_by_a_more_specific_reason() -> None:
    p = pod(containers=[
        running("sidecar"),
        waiting("cart", "CrashLoopBackOff", restarts=1, last=terminated("Error", 1)),
    ])
    assert summarize_pod(p, now=NOW)["ready"] is False
    assert reasons(pod_problems(p, now=NOW)) == ["CrashLoopBackOff"]


def test_failed_evicted_pod() -> None:
    msg = "The node was low on resource: memory. Threshold quantity: 100Mi, available: 51200Ki."
    c = running("cart")
    c["state"] = {"terminated": terminated("ContainerStatusUnknown", 137)}
    p = pod(phase="Failed", containers=[c], reason="Evicted", message=msg)
    assert pod_problems(p, now=NOW) == [
        {"reason": "Failed", "container": None, "detail": f"pod Failed (Evicted: {msg})"},
    ]


def test_failed_without_a_pod_reason_names_the_exit() -> None:
    c = running("job")
    c["state"] = {"terminated": terminated("Error", 2)}
    assert pod_problems(pod(phase="Failed", containers=[c]), now=NOW) == [
        {"reason": "Failed", "container": None, "detail": "pod Failed (job exit code 2: Error)"},
    ]


def test_succeeded_pod_is_fine() -> None:
    c = running("job")
    c["state"] = {"terminated": terminated("Completed", 0)}
    assert pod_problems(pod(phase="Succeeded", containers=[c], conditions=[]), now=NOW) == []


def test_bare_pod_without_status_does_not_crash() -> None:
    summary = summarize_pod({"metadata": {"name": "p"}})
    assert summary == {
        "name": "p", "namespace": None, "node": None, "phase": None, "ready": False, "restarts": 0,
        "age_s": None, "images": [], "problems": [], "owner": None,
    }
    assert summarize_pod({})["name"] is None


def test_naive_now_is_taken_as_utc() -> None:
    assert summarize_pod(pod(), now=datetime(2026, 11, 23, 10, 0, 30))["age_s"] == 30.0


# -- nodes --------------------------------------------------------------------------------------------------------


def node(*conditions: dict[str, Any], unschedulable: bool = False,
         taints: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"providerID": "aws:///eu-west-1a/i-0abc"}
    if unschedulable:
        spec["unschedulable"] = True
    if taints:
        spec["taints"] = taints
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "ip-10-0-1-23.eu-west-1.compute.internal"},
        "spec": spec,
        "status": {
            "conditions": list(conditions),
            "nodeInfo": {"kubeletVersion": "v1.31.2-eks-94953ac"},
            "capacity": {"cpu": "4", "memory": "16069568Ki"},
        },
    }


HEALTHY_PRESSURES = [
    condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
    condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
    condition("PIDPressure", "False", "KubeletHasSufficientPID"),
]


def test_ready_node() -> None:
    summary = node_summary(node(*HEALTHY_PRESSURES, condition("Ready", "True", "KubeletReady",
                                                              "kubelet is posting ready status")))
    assert summary == {
        "name": "ip-10-0-1-23.eu-west-1.compute.internal",
        "ready": True,
        "unschedulable": False,
        "conditions": {"MemoryPressure": "False", "DiskPressure": "False", "PIDPressure": "False", "Ready": "True"},
        "problems": [],
        "ready_since": "2026-11-23T10:02:00Z",
        "reason": "KubeletReady: kubelet is posting ready status",
        "taints": [],
        "kubelet_version": "v1.31.2-eks-94953ac",
    }


def test_not_ready_node() -> None:
    summary = node_summary(node(*HEALTHY_PRESSURES, condition(
        "Ready", "False", "KubeletNotReady", "container runtime network not ready: NetworkReady=false",
        since="2026-11-23T09:55:00Z")))
    assert summary["ready"] is False
    assert summary["problems"] == ["NotReady"]
    assert summary["ready_since"] == "2026-11-23T09:55:00Z"
    assert summary["reason"] == "KubeletNotReady: container runtime network not ready: NetworkReady=false"


def test_unknown_node_and_its_taint() -> None:
    summary = node_summary(node(
        condition("MemoryPressure", "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status."),
        condition("Ready", "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status."),
        taints=[
            {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule", "timeAdded": "2026-11-23T10:03:00Z"},
            {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2026-11-23T10:03:05Z"},
        ],
    ))
    assert summary["ready"] is None
    # An Unknown pressure is not a pressure: only the lost kubelet is reported.
    assert summary["problems"] == ["ReadyUnknown"]
    assert summary["reason"] == "NodeStatusUnknown: Kubelet stopped posting node status."
    assert summary["taints"] == [
        "node.kubernetes.io/unreachable:NoSchedule", "node.kubernetes.io/unreachable:NoExecute",
    ]


def test_node_pressures() -> None:
    summary = node_summary(node(
        condition("MemoryPressure", "True", "KubeletHasInsufficientMemory"),
        condition("DiskPressure", "True", "KubeletHasDiskPressure"),
        condition("PIDPressure", "True", "KubeletHasInsufficientPID"),
        condition("NetworkUnavailable", "True", "NoRouteCreated"),
        condition("Ready", "True", "KubeletReady"),
    ))
    assert summary["ready"] is True
    assert summary["problems"] == ["MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable"]


def test_cordoned_node() -> None:
    summary = node_summary(node(
        *HEALTHY_PRESSURES, condition("Ready", "True", "KubeletReady"), unschedulable=True,
        taints=[{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
                {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}],
    ))
    assert summary["unschedulable"] is True
    assert summary["problems"] == ["Unschedulable"]
    assert summary["taints"] == ["node.kubernetes.io/unschedulable:NoSchedule", "dedicated=gpu:NoSchedule"]


def test_node_without_status() -> None:
    summary = node_summary({"metadata": {"name": "new-node"}})
    assert summary["ready"] is None
    assert summary["problems"] == ["ReadyUnknown"]
    assert summary["ready_since"] is None and summary["kubelet_version"] is None
    assert summary["conditions"] == {} and summary["taints"] == []


# -- deployments --------------------------------------------------------------------------------------------------


def deployment(*, desired: int | None = 3, generation: int = 4, observed: int | None = 4, total: int = 3,
               updated: int = 3, ready: int = 3, available: int = 3, paused: bool = False,
               progressing: dict[str, Any] | None = None, extra_conditions: tuple[dict[str, Any], ...] = ()
               ) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": "cart"}},
        "template": {"spec": {"containers": [
            {"name": "cart", "image": "registry.example.com/shop/cart:1.4.2"},
            {"name": "envoy", "image": "envoyproxy/envoy:v1.31.0"},
        ]}},
        "progressDeadlineSeconds": 600,
    }
    if desired is not None:
        spec["replicas"] = desired
    if paused:
        spec["paused"] = True
    if progressing is None:
        progressing = condition("Progressing", "True", "NewReplicaSetAvailable",
                                'ReplicaSet "cart-7d9f8c6b5" has successfully progressed.')
    status: dict[str, Any] = {
        "replicas": total, "updatedReplicas": updated, "readyReplicas": ready, "availableReplicas": available,
        "conditions": [
            condition("Available", "True" if available >= (desired or 1) else "False",
                      "MinimumReplicasAvailable" if available >= (desired or 1) else "MinimumReplicasUnavailable"),
            progressing, *extra_conditions,
        ],
    }
    if total - available > 0:
        status["unavailableReplicas"] = total - available
    if observed is not None:
        status["observedGeneration"] = observed
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "cart", "namespace": "shop", "generation": generation},
        "spec": spec,
        "status": status,
    }


def test_complete_deployment() -> None:
    summary = deployment_summary(deployment())
    assert summary["rollout"] == "complete"
    assert summary["reason"] == "deployment cart successfully rolled out (3 of 3 replicas available)"
    assert summary["generation_observed"] is True
    assert (summary["desired"], summary["updated"], summary["ready"], summary["available"],
            summary["unavailable"]) == (3, 3, 3, 3, 0)
    assert summary["images"] == ["registry.example.com/shop/cart:1.4.2", "envoyproxy/envoy:v1.31.0"]
    assert summary["conditions"]["Progressing"] == {
        "status": "True", "reason": "NewReplicaSetAvailable",
        "message": 'ReplicaSet "cart-7d9f8c6b5" has successfully progressed.',
    }
    assert summary["namespace"] == "shop" and summary["name"] == "cart"
    assert replica_mismatch(deployment()) is None
    json.dumps(summary)


ROLLING = condition("Progressing", "True", "ReplicaSetUpdated", 'ReplicaSet "cart-5c4b" is progressing.')


@pytest.mark.parametrize(
    ("counts", "reason"),
    [
        ({"total": 4, "updated": 1, "ready": 3, "available": 3}, "1 of 3 new replicas have been updated"),
        ({"total": 4, "updated": 3, "ready": 4, "available": 4}, "waiting for 1 old replica to terminate"),
        ({"total": 5, "updated": 3, "ready": 5, "available": 5}, "waiting for 2 old replicas to terminate"),
        ({"total": 3, "updated": 3, "ready": 2, "available": 2}, "2 of 3 updated replicas are available"),
    ],
)
def test_progressing_deployment(counts: dict[str, int], reason: str) -> None:
    summary = deployment_summary(deployment(progressing=ROLLING, **counts))
    assert summary["rollout"] == "progressing"
    assert summary["reason"] == reason


def test_stalled_deployment() -> None:
    stuck = condition("Progressing", "False", "ProgressDeadlineExceeded",
                      'ReplicaSet "cart-5c4b" has timed out progressing.')
    quota = condition("ReplicaFailure", "True", "FailedCreate",
                      'pods "cart-5c4b-abcde" is forbidden: exceeded quota: shop-quota')
    summary = deployment_summary(deployment(total=4, updated=1, ready=3, available=3, progressing=stuck,
                                            extra_conditions=(quota,)))
    assert summary["rollout"] == "stalled"
    assert summary["reason"] == (
        'deployment cart exceeded its progress deadline: ReplicaSet "cart-5c4b" has timed out progressing.; '
        'ReplicaFailure: FailedCreate: pods "cart-5c4b-abcde" is forbidden: exceeded quota: shop-quota'
    )


def test_paused_deployment() -> None:
    paused = condition("Progressing", "Unknown", "DeploymentPaused", "Deployment is paused")
    summary = deployment_summary(deployment(paused=True, total=4, updated=1, available=3, progressing=paused))
    assert summary["rollout"] == "paused"
    assert summary["reason"] == "deployment cart is paused (1 of 3 replicas updated, 3 available)"


def test_generation_lag_is_progressing_even_with_a_stale_deadline() -> None:
    # The timed-out condition belongs to generation 4; generation 5 is a new rollout nobody has judged yet.
    stale = condition("Progressing", "False", "ProgressDeadlineExceeded", "old news")
    summary = deployment_summary(deployment(generation=5, observed=4, progressing=stale))
    assert summary["generation_observed"] is False
    assert summary["rollout"] == "progressing"
    assert summary["reason"] == "waiting for the controller to observe generation 5"


def test_deployment_without_status() -> None:
    d = {"metadata": {"name": "cart", "namespace": "shop", "generation": 1},
         "spec": {"template": {"spec": {"containers": [{"name": "cart", "image": "cart:1"}]}}}}
    summary = deployment_summary(d)
    assert summary == {
        "namespace": "shop", "name": "cart", "desired": 1, "updated": 0, "ready": 0, "available": 0,
        "unavailable": 0, "generation_observed": False, "rollout": "progressing",
        "reason": "waiting for the controller to observe generation 1", "conditions": {}, "images": ["cart:1"],
    }
    assert replica_mismatch(d) == {
        "desired": 1, "available": 0, "missing": 1,
        "detail": "deployment shop/cart has 0 of 1 desired replicas available (1 missing)",
    }
    assert deployment_summary({})["rollout"] == "progressing"


def test_scaled_to_zero_is_complete() -> None:
    d = deployment(desired=0, total=0, updated=0, ready=0, available=0)
    assert deployment_summary(d)["rollout"] == "complete"
    assert replica_mismatch(d) is None


def test_replica_mismatch() -> None:
    assert replica_mismatch(deployment(total=3, updated=3, ready=1, available=1, progressing=ROLLING)) == {
        "desired": 3, "available": 1, "missing": 2,
        "detail": "deployment shop/cart has 1 of 3 desired replicas available (2 missing)",
    }
    surge = replica_mismatch(deployment(total=4, updated=1, ready=4, available=4, progressing=ROLLING))
    assert surge == {
        "desired": 3, "available": 4, "missing": -1,
        "detail": "deployment shop/cart has 4 replicas available, 1 more than the 3 desired",
    }
