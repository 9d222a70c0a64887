"""`changes.gke`: which GKE node pools a runbook may change. The pure rule, the compiler's checks, the workflow's
check of a step about to run, and the plan's wire form. The action wrapper's check is in tests/test_gke_actions.py
and the whole path on the dev server in tests/test_gke_runbooks.py."""

from __future__ import annotations

import textwrap

import pytest

from activities.gke.schemas import NODE_POOL_LEASE
from incidentctl.dsl.allowed_changes import (
    ChangedNodePool,
    changed_node_pool,
    changed_object,
    gke_refusal,
    step_refusal,
)
from incidentctl.dsl.compiler import compile_source
from incidentctl.dsl.errors import RunbookErrors
from incidentctl.dsl.plan import Changes, GkeChanges, Plan
from incidentctl.library import installed_actions

CATALOG = installed_actions()
PROD_WEB = Changes(gke=GkeChanges(clusters=["acme-prod/europe-west1/*"], node_pools=["web", "web-*"]))


def pool(project: str = "acme-prod", location: str = "europe-west1", cluster: str = "shop",
         node_pool: str = "web") -> ChangedNodePool:
    found = changed_node_pool(NODE_POOL_LEASE, {"project": project, "location": location, "cluster": cluster,
                                                "node_pool": node_pool})
    assert found is not None
    return found


def test_the_changed_node_pool_comes_from_the_lease_template() -> None:
    assert pool() == ChangedNodePool("acme-prod/europe-west1/shop", "web")
    assert changed_object(NODE_POOL_LEASE, {"project": "p"}) is None, "not a Kubernetes object"
    assert changed_node_pool("k8s/{context}/{namespace}/deployments/{deployment}", {}) is None


def test_clusters_and_node_pools_must_match_the_globs() -> None:
    assert gke_refusal(PROD_WEB, pool()) is None
    assert gke_refusal(PROD_WEB, pool(node_pool="web-2")) is None
    assert gke_refusal(PROD_WEB, pool(project="acme-staging")) == (
        "refused to change node pool web of GKE cluster acme-staging/europe-west1/shop: acme-staging/europe-west1/shop "
        "is not in the runbook's changes.gke.clusters (acme-prod/europe-west1/*)")
    assert "batch matches none of the runbook's changes.gke.node_pools (web, web-*)" in (
        gke_refusal(PROD_WEB, pool(node_pool="batch")) or "")
    assert gke_refusal(Changes(gke=GkeChanges(clusters=["*"])), pool(project="any-project")) is None


def test_a_declaration_without_a_gke_part_allows_no_node_pool_and_no_declaration_leaves_it_alone() -> None:
    k8s_only = Changes(clusters=["*"], namespaces=["*"])
    assert "has no gke part" in (gke_refusal(k8s_only, pool()) or "")
    assert gke_refusal(None, pool()) is None, "a plan from before any declaration runs as before"


def test_the_workflow_check_routes_a_gke_lease_to_the_gke_rule() -> None:
    params = {"project": "acme-prod", "location": "europe-west1", "cluster": "shop", "node_pool": "batch"}
    assert "changes.gke.node_pools" in (step_refusal(PROD_WEB, NODE_POOL_LEASE, params) or "")
    assert step_refusal(PROD_WEB, NODE_POOL_LEASE, {**params, "node_pool": "web"}) is None
    assert step_refusal(None, NODE_POOL_LEASE, params) is None


# ---------------------------------------------------------------------------------------------------- compiler

GKE_CHANGES = """\
changes:
  gke:
    clusters: ["acme-prod/*/*"]
    node_pools: [web]
"""
RESIZE = GKE_CHANGES + """\
name: resize
version: 1
parameters:
  node_pool: {type: string, default: "${{ alert.labels.node_pool }}"}
steps:
  - id: resize
    action: gke.resize_node_pool
    params: {project: acme-prod, location: europe-west1, cluster: shop, node_pool: "${{ params.node_pool }}",
             node_count: 4, max_nodes: 6}
"""


def compile_plan(text: str) -> Plan:
    return compile_source(textwrap.dedent(text), "rb.yaml", CATALOG)


def errors_of(text: str) -> list[str]:
    with pytest.raises(RunbookErrors) as caught:
        compile_plan(text)
    return [str(e) for e in caught.value.errors]


def test_a_gke_only_block_compiles_without_kubernetes_parts_and_round_trips() -> None:
    plan = compile_plan(RESIZE)
    assert plan.changes == Changes(gke=GkeChanges(clusters=["acme-prod/*/*"], node_pools=["web"]))
    wire = plan.to_json()["changes"]
    assert wire["gke"] == {"clusters": ["acme-prod/*/*"], "node_pools": ["web"]}
    assert Plan.from_json(plan.to_json()).changes == plan.changes
    assert compile_plan(RESIZE.replace("    node_pools: [web]\n", "")).changes.gke.node_pools == ["*"]


def test_a_runbook_that_changes_node_pools_must_say_which() -> None:
    assert errors_of(RESIZE.replace(GKE_CHANGES, "")) == [
        "rb.yaml:7:13: $.steps[0].action: gke.resize_node_pool changes GKE node pools: say which in the top-level "
        "`changes.gke` block (clusters as project/location/cluster, node_pools)"]
    k8s_only = "changes:\n  clusters: ['*']\n  namespaces: ['*']\n"
    (error,) = errors_of(RESIZE.replace(GKE_CHANGES, k8s_only))
    assert "gke.resize_node_pool changes GKE node pools" in error


def test_a_literal_node_pool_outside_the_block_is_refused_at_compile_time() -> None:
    (error,) = errors_of(RESIZE.replace('"${{ params.node_pool }}"', "batch"))
    assert error.startswith("rb.yaml:11:13: $.steps[0].action: refused to change node pool batch of GKE cluster "
                            "acme-prod/europe-west1/shop")


@pytest.mark.parametrize(("block", "expected"), [
    ("changes: {gke: {node_pools: [web]}}\n", "rb.yaml:1:16: $.changes.gke: missing required key 'clusters'"),
    ("changes: {gke: {clusters: [shop]}}\n", "rb.yaml:1:28: $.changes.gke.clusters[0]:"),
    ("changes: {gke: {clusters: ['*'], zones: [a]}}\n", "rb.yaml:1:34: $.changes.gke.zones: unknown key 'zones'"),
])
def test_a_malformed_gke_part_is_named_at_its_line(block: str, expected: str) -> None:
    errors = errors_of(RESIZE.replace(GKE_CHANGES, block))
    assert any(e.startswith(expected) for e in errors), errors


def test_the_plan_summary_says_which_node_pools_the_runbook_may_change() -> None:
    from incidentctl.dsl.summary import summarize_plan

    assert "changes gke clusters acme-prod/*/*; node pools web" in summarize_plan(compile_plan(RESIZE))
