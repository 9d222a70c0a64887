"""The gke actions through the real wire: google-cloud-container's REST transport against the fake GKE API, run as
a local process (stopped by PID). Operations take about a second there, so every change is awaited for real."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.base import ActionInput, get_action
from incidentctl.dsl.plan import Changes, GkeChanges
from incidentctl.gkesim.seed import CLUSTER, LOCATION, NEW_VERSION, OLD_VERSION, PROJECT
from tests.gke_fake import WHERE, FakeGke, run_gke, start_gke

FAST = {"poll": "0.1s"}


@pytest.fixture
def gke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGke]:
    with start_gke(tmp_path, monkeypatch) as fake:
        yield fake


async def failure(name: str, **params: Any) -> ApplicationError:
    with pytest.raises(ApplicationError) as failed:
        await run_gke(name, **params)
    return failed.value


def start_operation(gke: FakeGke, pool: str, verb: str, body: dict[str, Any]) -> str:
    """Someone else's operation on a pool (a person in the console, the autoscaler): started over plain HTTP."""
    path = f"/v1/projects/{PROJECT}/locations/{LOCATION}/clusters/{CLUSTER}/nodePools/{pool}:{verb}"
    return gke._json(path, body)["name"]


# ---- reads

async def test_cluster_status_reads_the_cluster_its_pools_and_running_operations(gke: FakeGke) -> None:
    status = await run_gke("gke.cluster_status")
    assert (status["name"], status["status"], status["running"], status["current_node_count"]) == (
        CLUSTER, "RUNNING", True, 7)
    assert status["version"] == NEW_VERSION
    pools = {p["name"]: p for p in status["node_pools"]}
    assert pools["web"]["autoscaling"] == {"enabled": True, "min_node_count": 1, "max_node_count": 3}
    assert pools["batch"]["status"] == "RUNNING_WITH_ERROR" and pools["batch"]["zones"] == 2
    assert status["running_operations"] == []
    start_operation(gke, "web", "setSize", {"nodeCount": 3})
    (running,) = (await run_gke("gke.cluster_status"))["running_operations"]
    assert running["type"] == "SET_NODE_POOL_SIZE" and running["target"].endswith("/nodePools/web")


async def test_node_pool_status_and_operation_status(gke: FakeGke) -> None:
    pool = await run_gke("gke.node_pool_status", node_pool="batch")
    assert (pool["status"], pool["version"], pool["busy"]) == ("RUNNING_WITH_ERROR", NEW_VERSION, False)
    assert pool["status_message"] == "Node pool upgrade failed: surge node not ready"
    assert pool["locations"] == [f"{LOCATION}-b", f"{LOCATION}-c"]
    name = start_operation(gke, "batch", "setSize", {"nodeCount": 2})
    busy = await run_gke("gke.node_pool_status", node_pool="batch")
    assert busy["busy"] and busy["status"] == "RECONCILING" and busy["running_operations"][0]["name"] == name
    assert (await run_gke("gke.node_pool_status", node_pool="web"))["busy"] is False, "another pool's operation"
    op = await run_gke("gke.operation_status", operation=name)
    assert op["name"] == name and op["type"] == "SET_NODE_POOL_SIZE" and op["status"] in ("PENDING", "RUNNING")
    full = f"projects/{PROJECT}/locations/{LOCATION}/operations/{name}"
    assert (await run_gke("gke.operation_status", operation=full))["name"] == name


# ---- resize

async def test_resize_waits_for_its_operation_and_the_pool_has_the_new_size(gke: FakeGke) -> None:
    result = await run_gke("gke.resize_node_pool", node_pool="web", node_count=5, max_nodes=6, **FAST)
    assert result["operation"]["status"] == "DONE" and result["operation"]["type"] == "SET_NODE_POOL_SIZE"
    assert (result["total_nodes"], result["waited_for"], result["resumed"]) == (5, [], False)
    assert gke.pool("web")["node_count"] == 5
    assert (await run_gke("gke.node_pool_status", node_pool="web"))["status"] == "RUNNING"


async def test_resize_outside_its_bound_is_refused_before_any_change(gke: FakeGke) -> None:
    over = await failure("gke.resize_node_pool", node_pool="web", node_count=7, max_nodes=6)
    assert (over.type, over.non_retryable) == ("RefusedByBound", True)
    # batch has two zones: 3 per zone is 6 nodes in all.
    zones = await failure("gke.resize_node_pool", node_pool="batch", node_count=3, max_nodes=5)
    assert "3 nodes per zone (6 in its 2 zones) is outside the bounds [0, 5]" in zones.message
    under = await failure("gke.resize_node_pool", node_pool="web", node_count=0, max_nodes=6, min_nodes=1)
    assert under.type == "RefusedByBound"
    assert gke.calls(":setSize") == 0 and gke.pool("web")["node_count"] == 3


async def test_a_resize_waits_for_an_operation_already_running_on_the_pool_instead_of_colliding(
        gke: FakeGke) -> None:
    theirs = start_operation(gke, "web", "setAutoscaling",
                             {"autoscaling": {"enabled": True, "minNodeCount": 1, "maxNodeCount": 6}})
    result = await run_gke("gke.resize_node_pool", node_pool="web", node_count=5, max_nodes=6, **FAST)
    assert [op["name"] for op in result["waited_for"]] == [theirs]
    assert result["operation"]["name"] != theirs and result["operation"]["status"] == "DONE"
    assert gke.calls(":setSize") == 1, "one resize, never refused as an incompatible operation"
    assert gke.pool("web") == {"node_count": 5, "version": OLD_VERSION, "status": "RUNNING",
                               "autoscaling": {"enabled": True, "minNodeCount": 1, "maxNodeCount": 6}}


async def test_a_retried_resize_resumes_the_operation_its_previous_attempt_started(gke: FakeGke) -> None:
    """The previous attempt started a resize and died: its heartbeat details name the operation, and the retry
    waits for that one rather than asking GKE again."""
    started = start_operation(gke, "web", "setSize", {"nodeCount": 4})
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=2, heartbeat_details=[{"operation": started, "mine": True}])
    beats: list[Any] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    spec = get_action("gke.resize_node_pool")
    result = await env.run(spec.activity, ActionInput(
        action=spec.name, params={**WHERE, "node_pool": "web", "node_count": 4, "max_nodes": 6, **FAST},
        incident_id="i", step_id="resize"))
    assert result["resumed"] is True and result["operation"]["status"] == "DONE"
    assert result["operation"]["name"] == started.rsplit("/", 1)[-1]
    assert gke.calls(":setSize") == 1, "only the first attempt's call"
    assert gke.pool("web")["node_count"] == 4
    assert any(d and isinstance(d[0], dict) and d[0].get("status") == "DONE" for d in beats), beats


async def test_a_retry_whose_previous_attempt_was_waiting_out_someone_elses_operation_still_resizes(
        gke: FakeGke) -> None:
    """The previous attempt died while waiting for another operation on the pool: that one is not the resize."""
    theirs = start_operation(gke, "web", "setAutoscaling",
                             {"autoscaling": {"enabled": True, "minNodeCount": 1, "maxNodeCount": 6}})
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=2, heartbeat_details=[{"operation": theirs, "mine": False}])
    spec = get_action("gke.resize_node_pool")
    result = await env.run(spec.activity, ActionInput(
        action=spec.name, params={**WHERE, "node_pool": "web", "node_count": 5, "max_nodes": 6, **FAST},
        incident_id="i", step_id="resize"))
    assert result["resumed"] is False and [op["name"] for op in result["waited_for"]] == [theirs]
    assert gke.calls(":setSize") == 1 and gke.pool("web")["node_count"] == 5


async def test_the_same_resize_run_twice_ends_at_the_same_size(gke: FakeGke) -> None:
    for _ in range(2):
        result = await run_gke("gke.resize_node_pool", node_pool="batch", node_count=1, max_nodes=4, **FAST)
        assert result["total_nodes"] == 2 and result["operation"]["status"] == "DONE"
    assert gke.pool("batch")["node_count"] == 1


async def test_a_dry_run_resize_says_what_it_would_do_and_changes_nothing(gke: FakeGke) -> None:
    result = await run_gke("gke.resize_node_pool", dry_run=True, node_pool="web", node_count=5, max_nodes=6)
    assert result["would"] == (f"resize node pool web of cluster {PROJECT}/{LOCATION}/{CLUSTER} to 5 nodes per zone "
                               "(5 in all)")
    assert gke.calls(":setSize") == 0 and gke.pool("web")["node_count"] == 3


# ---- autoscaling and rollback

async def test_autoscaling_limits_are_set_within_the_bound_and_can_be_turned_off(gke: FakeGke) -> None:
    result = await run_gke("gke.set_node_pool_autoscaling", node_pool="web", min_node_count=2, max_node_count=6,
                           max_nodes=6, **FAST)
    assert result["before"] == {"enabled": True, "min_node_count": 1, "max_node_count": 3}
    assert gke.pool("web")["autoscaling"] == {"enabled": True, "minNodeCount": 2, "maxNodeCount": 6}
    above = await failure("gke.set_node_pool_autoscaling", node_pool="batch", min_node_count=1, max_node_count=4,
                          max_nodes=6)
    assert above.type == "RefusedByBound" and "4 nodes per zone (8 in its 2 zones)" in above.message
    inverted = await failure("gke.set_node_pool_autoscaling", node_pool="web", min_node_count=4, max_node_count=2,
                             max_nodes=6)
    assert (inverted.type, inverted.non_retryable) == ("InvalidParams", True)
    await run_gke("gke.set_node_pool_autoscaling", node_pool="web", enabled=False, max_nodes=6, **FAST)
    assert gke.pool("web")["autoscaling"] == {}


async def test_a_failed_upgrade_is_rolled_back_and_a_pool_without_one_is_refused(gke: FakeGke) -> None:
    result = await run_gke("gke.rollback_node_pool_upgrade", node_pool="batch", **FAST)
    assert (result["version_before"], result["status_before"]) == (NEW_VERSION, "RUNNING_WITH_ERROR")
    assert (result["version"], result["status"]) == (OLD_VERSION, "RUNNING")
    assert result["operation"]["type"] == "UPGRADE_NODES"
    nothing = await failure("gke.rollback_node_pool_upgrade", node_pool="web", **FAST)
    assert (nothing.type, nothing.non_retryable) == ("GkeInvalidRequest", True)
    assert "no failed or aborted upgrade" in nothing.message


# ---- errors and where a runbook may change things

async def test_unknown_clusters_and_pools_are_not_found_and_not_retried(gke: FakeGke) -> None:
    missing = await failure("gke.cluster_status", cluster="nope")
    assert (missing.type, missing.non_retryable) == ("GkeNotFound", True)
    assert missing.message.startswith(f"cluster {PROJECT}/{LOCATION}/nope not found")
    pool = await failure("gke.resize_node_pool", node_pool="nope", node_count=1, max_nodes=3)
    assert pool.type == "GkeNotFound" and "node pool nope of cluster" in pool.message


async def test_permission_denied_names_the_permission_and_is_not_retried(gke: FakeGke) -> None:
    gke.fault(403, "PERMISSION_DENIED", match=":setSize", method="POST")
    denied = await failure("gke.resize_node_pool", node_pool="web", node_count=4, max_nodes=6, **FAST)
    assert (denied.type, denied.non_retryable) == ("GkePermissionDenied", True)
    assert "needs container.clusters.update" in denied.message
    assert gke.pool("web")["node_count"] == 3


async def test_transient_errors_are_retryable_and_a_wait_rides_them_out(gke: FakeGke) -> None:
    gke.fault(503, "UNAVAILABLE", match="/clusters/", method="GET")
    unavailable = await failure("gke.cluster_status")
    assert (unavailable.type, unavailable.non_retryable) == ("GkeUnavailable", False)
    gke.fault(429, "RESOURCE_EXHAUSTED", match="/operations/", method="GET", times=3)
    result = await run_gke("gke.resize_node_pool", node_pool="web", node_count=4, max_nodes=6, **FAST)
    assert result["operation"]["status"] == "DONE" and gke.pool("web")["node_count"] == 4


async def test_the_worker_refuses_a_pool_outside_the_runbooks_changes(gke: FakeGke) -> None:
    allowed = Changes(gke=GkeChanges(clusters=[f"{PROJECT}/{LOCATION}/*"], node_pools=["web"]))
    refused = await failure("gke.resize_node_pool", changes=allowed, node_pool="batch", node_count=1, max_nodes=4)
    assert (refused.type, refused.non_retryable) == ("ChangeNotAllowed", True)
    assert refused.message == (f"refused to change node pool batch of GKE cluster {PROJECT}/{LOCATION}/{CLUSTER}: "
                               "batch matches none of the runbook's changes.gke.node_pools (web)")
    k8s_only = Changes(clusters=["*"], namespaces=["*"])
    no_gke = await failure("gke.resize_node_pool", changes=k8s_only, node_pool="web", node_count=4, max_nodes=6)
    assert no_gke.message.endswith("the runbook's changes block has no gke part")
    assert gke.calls(":setSize") == 0
    done = await run_gke("gke.resize_node_pool", changes=allowed, node_pool="web", node_count=4, max_nodes=6, **FAST)
    assert done["operation"]["status"] == "DONE"


def test_an_operation_is_matched_to_its_pool_by_name_whatever_the_link_says_of_project_and_location() -> None:
    from activities.gke.api import PoolRef, targets

    web = PoolRef(PROJECT, LOCATION, CLUSTER, "web")
    real = f"https://container.googleapis.com/v1/projects/123456789/zones/{LOCATION}-b/clusters/{CLUSTER}/nodePools/web"
    assert targets(web, real)
    assert not targets(web, real.replace("/nodePools/web", "/nodePools/web-2"))
    assert not targets(web, real.replace(f"/clusters/{CLUSTER}/", "/clusters/other/"))
    whole = PoolRef(PROJECT, LOCATION, CLUSTER)
    assert targets(whole, real) and targets(whole, real.split("/nodePools/")[0])
    assert not targets(whole, real.replace(f"/clusters/{CLUSTER}/", f"/clusters/{CLUSTER}-2/"))


async def test_error_messages_carry_gkes_words_not_the_request_url(gke: FakeGke) -> None:
    missing = await failure("gke.node_pool_status", node_pool="nope")
    assert missing.message == (f"node pool nope of cluster {PROJECT}/{LOCATION}/{CLUSTER} not found (Not found: "
                               f"projects/{PROJECT}/locations/{LOCATION}/clusters/{CLUSTER}/nodePools/nope.)")
    gke.fault(409, "ABORTED", match=":setSize", method="POST")
    busy = await failure("gke.resize_node_pool", node_pool="web", node_count=4, max_nodes=6, **FAST)
    assert (busy.type, busy.non_retryable) == ("GkeBusy", False)
