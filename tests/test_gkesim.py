"""The fake GKE API: its operations on a stepped clock (pure), and its HTTP face as the real client sees it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from incidentctl.gkesim.seed import CLUSTER, LOCATION, OLD_VERSION, PROJECT, build
from incidentctl.gkesim.world import GkeApiError, cluster_json, operation_json
from tests.gke_fake import start_gke

WHERE = (PROJECT, LOCATION, CLUSTER)


def test_an_operation_goes_pending_running_done_and_applies_its_change_when_done() -> None:
    world = build(operation_s=10)
    op = world.set_size(*WHERE, "web", 5, now=100.0)
    assert (op.status, world.pool(*WHERE, "web")[1].status) == ("PENDING", "RECONCILING")
    world.tick(103.0)
    assert op.status == "RUNNING" and world.pool(*WHERE, "web")[1].node_count == 3
    world.tick(110.0)
    _, pool = world.pool(*WHERE, "web")
    assert (op.status, pool.node_count, pool.status) == ("DONE", 5, "RUNNING")
    assert operation_json(op)["targetLink"].endswith(f"/clusters/{CLUSTER}/nodePools/web")
    assert operation_json(op)["endTime"]


def test_a_second_change_while_one_runs_on_the_cluster_is_refused_as_gke_does() -> None:
    world = build(operation_s=10)
    world.set_size(*WHERE, "web", 5, now=0.0)
    with pytest.raises(GkeApiError) as refused:
        world.set_autoscaling(*WHERE, "batch", {"enabled": True, "minNodeCount": 1, "maxNodeCount": 4}, now=1.0)
    assert (refused.value.code, refused.value.status) == (400, "FAILED_PRECONDITION")
    assert "incompatible operation operation-1" in refused.value.message
    world.tick(10.0)
    assert world.set_autoscaling(*WHERE, "batch", {"enabled": False}, now=10.0).status == "PENDING"


def test_unknown_clusters_pools_and_operations_are_not_found() -> None:
    world = build(operation_s=1)
    for call in (lambda: world.cluster(PROJECT, LOCATION, "nope"), lambda: world.pool(*WHERE, "nope"),
                 lambda: world.operation(PROJECT, LOCATION, "operation-9"),
                 lambda: world.set_size(PROJECT, "us-east1", CLUSTER, "web", 1, now=0.0)):
        with pytest.raises(GkeApiError) as missing:
            call()
        assert (missing.value.code, missing.value.status) == (404, "NOT_FOUND")


def test_bad_requests_are_invalid_arguments_and_a_rollback_needs_a_failed_upgrade() -> None:
    world = build(operation_s=1)
    with pytest.raises(GkeApiError, match="Invalid node count -1"):
        world.set_size(*WHERE, "web", -1, now=0.0)
    with pytest.raises(GkeApiError, match="min 5 max 2"):
        world.set_autoscaling(*WHERE, "web", {"enabled": True, "minNodeCount": 5, "maxNodeCount": 2}, now=0.0)
    with pytest.raises(GkeApiError, match="no failed or aborted upgrade") as refused:
        world.rollback(*WHERE, "web", now=0.0)
    assert refused.value.status == "FAILED_PRECONDITION"
    world.rollback(*WHERE, "batch", now=0.0)
    world.tick(1.0)
    _, batch = world.pool(*WHERE, "batch")
    assert (batch.version, batch.previous_version, batch.status_message) == (OLD_VERSION, None, "")


def test_the_cluster_counts_nodes_in_every_zone_of_every_pool() -> None:
    seeded = cluster_json(build(operation_s=1).cluster(*WHERE))
    assert seeded["currentNodeCount"] == 3 * 1 + 2 * 2
    assert [p["name"] for p in seeded["nodePools"]] == ["web", "batch"]
    assert seeded["nodePools"][0]["autoscaling"] == {"enabled": True, "minNodeCount": 1, "maxNodeCount": 3}


def test_the_real_client_reads_and_changes_the_fake_over_http(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ClusterManagerClient on its REST transport, an http:// api_endpoint and anonymous credentials."""
    from google.api_core import exceptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import container_v1

    with start_gke(tmp_path, monkeypatch, operation_s=0.5) as fake:
        client = container_v1.ClusterManagerClient(transport="rest", client_options={"api_endpoint": fake.url},
                                                   credentials=AnonymousCredentials())
        name = f"projects/{PROJECT}/locations/{LOCATION}/clusters/{CLUSTER}"
        cluster = client.get_cluster(name=name)
        assert (cluster.name, cluster.status.name, cluster.current_node_count) == (CLUSTER, "RUNNING", 7)
        pool = client.get_node_pool(name=f"{name}/nodePools/web")
        assert (pool.autoscaling.enabled, pool.autoscaling.max_node_count) == (True, 3)
        op = client.set_node_pool_size(request={"name": f"{name}/nodePools/web", "node_count": 4})
        assert (op.operation_type.name, op.status.name) == ("SET_NODE_POOL_SIZE", "PENDING")
        with pytest.raises(exceptions.BadRequest, match="incompatible operation"):
            client.set_node_pool_size(request={"name": f"{name}/nodePools/web", "node_count": 4})
        deadline = time.monotonic() + 30
        while client.get_operation(name=f"projects/{PROJECT}/locations/{LOCATION}/operations/{op.name}"
                                   ).status.name != "DONE":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert fake.pool("web")["node_count"] == 4
        listed = client.list_operations(parent=f"projects/{PROJECT}/locations/{LOCATION}").operations
        assert [(o.name, o.status.name) for o in listed] == [(op.name, "DONE")]
        with pytest.raises(exceptions.NotFound, match="clusters/nope"):
            client.get_cluster(name=f"projects/{PROJECT}/locations/{LOCATION}/clusters/nope")
        fake.fault(403, "PERMISSION_DENIED", match="/clusters/", times=1)
        with pytest.raises(exceptions.Forbidden):
            client.get_cluster(name=name)
        assert client.get_cluster(name=name).name == CLUSTER, "a fault answers only `times` calls"
        assert all(r["authorization"] == "" for r in fake.requests()), "anonymous: no token sent"
