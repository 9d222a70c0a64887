"""Where a runbook may change things: the pure rule (incidentctl.dsl.allowed_changes), the compiler's checks of the
`changes` block and of `on_timeout: approve`, and the action wrapper's own check (activities/change_guard.py).
The workflow and the simulator are in tests/test_allowed_changes_e2e.py."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from activities.base import ActionInput, get_action
from activities.catalog import load_all
from activities.k8s.schemas import DEPLOYMENT_LEASE, NODE_LEASE, PODS_LEASE
from incidentctl.dsl.allowed_changes import ChangedObject, changed_object, refusal, step_refusal
from incidentctl.dsl.compiler import compile_source
from incidentctl.dsl.errors import RunbookErrors
from incidentctl.dsl.plan import Changes, Plan
from incidentctl.library import installed_actions

CATALOG = installed_actions()
SHOP = Changes(clusters=["prod-*"], namespaces=["shop", "team-*"])


def deployment(namespace: str, name: str = "cart", context: str | None = "prod-eu") -> ChangedObject:
    found = changed_object(DEPLOYMENT_LEASE, {"namespace": namespace, "deployment": name, "context": context})
    assert found is not None
    return found


def test_the_changed_object_comes_from_the_lease_template_part_by_part() -> None:
    assert deployment("shop") == ChangedObject("prod-eu", "shop", "deployments", "cart")
    # An EKS context holds a `/`; a label selector may too. Neither moves the namespace.
    eks = "arn:aws:eks:eu-west-1:1234:cluster/prod"
    assert changed_object(PODS_LEASE, {"context": eks, "namespace": "shop", "selector": "app.kubernetes.io/name=x"}) \
        == ChangedObject(eks, "shop", "pods", "app.kubernetes.io/name=x")
    assert changed_object(NODE_LEASE, {"node": "node-3"}) == ChangedObject("", None, "nodes", "node-3")
    assert changed_object("http/{url}", {"url": "x"}) is None


def test_namespaces_listed_or_matched_by_a_glob_are_allowed() -> None:
    assert refusal(SHOP, deployment("shop")) is None
    assert refusal(SHOP, deployment("team-payments")) is None


def test_a_namespace_outside_the_list_is_refused_in_one_sentence_naming_object_namespace_and_rule() -> None:
    assert refusal(SHOP, deployment("billing")) == (
        "refused to change deployments/cart in namespace billing on context prod-eu: namespace billing is not in "
        "the runbook's changes.namespaces (shop, team-*)")


@pytest.mark.parametrize("namespace", ["kube-system", "kube-public", "kube-node-lease"])
def test_protected_namespaces_are_refused_even_by_a_star(namespace: str) -> None:
    everything = Changes(clusters=["*"], namespaces=["*", "kube-*"])
    assert refusal(everything, deployment(namespace, "coredns")) == (
        f"refused to change deployments/coredns in namespace {namespace} on context prod-eu: {namespace} is a "
        f"protected namespace, changed only by a runbook whose changes.namespaces lists it by name (this one "
        f"lists: *, kube-*)")


def test_a_protected_namespace_listed_by_name_is_allowed() -> None:
    assert refusal(Changes(clusters=["*"], namespaces=["kube-system"]), deployment("kube-system", "coredns")) is None


def test_the_worker_may_protect_more_namespaces() -> None:
    protected = ("kube-system", "payments")
    assert "payments is a protected namespace" in (refusal(Changes(clusters=["*"], namespaces=["pay*"]),
                                                           deployment("payments"), protected) or "")
    assert refusal(Changes(clusters=["*"], namespaces=["payments"]), deployment("payments"), protected) is None


def test_without_a_declaration_only_the_protected_namespaces_hold() -> None:
    assert refusal(None, deployment("anything")) is None
    assert "kube-system is a protected namespace" in (refusal(None, deployment("kube-system")) or "")


def test_clusters_are_kubeconfig_contexts_and_the_current_one_is_named_by_the_worker() -> None:
    assert "context staging is not in the runbook's changes.clusters (prod-*)" in (
        refusal(SHOP, deployment("shop", context="staging")) or "")
    current = deployment("shop", context=None)
    assert current.cluster == ""
    assert refusal(SHOP, current) is None, "the workflow cannot know the current context: the worker checks it"
    assert refusal(SHOP, current, current_context="prod-us") is None
    assert "context sim is not in the runbook's changes.clusters" in (refusal(SHOP, current,
                                                                              current_context="sim") or "")


def test_cluster_scoped_objects_need_their_resource_listed() -> None:
    node = changed_object(NODE_LEASE, {"node": "node-3", "context": "prod-eu"})
    assert node is not None
    assert refusal(Changes(clusters=["*"], cluster_resources=["nodes"]), node) is None
    assert refusal(SHOP, node) == ("refused to change nodes/node-3 (cluster-scoped) on context prod-eu: the "
                                   "runbook's changes.cluster_resources does not list nodes (it lists: none)")


def test_name_patterns_narrow_the_objects() -> None:
    canaries = Changes(clusters=["*"], namespaces=["shop"], names=["*-canary"])
    assert refusal(canaries, deployment("shop", "cart-canary")) is None
    assert "the name cart matches none of the runbook's changes.names (*-canary)" in (
        refusal(canaries, deployment("shop", "cart")) or "")


def test_the_workflow_check_leaves_old_plans_and_unleased_actions_alone() -> None:
    params = {"namespace": "kube-system", "deployment": "coredns"}
    assert step_refusal(None, DEPLOYMENT_LEASE, params) is None, "a plan from before the block runs as before"
    assert step_refusal(SHOP, None, params) is None
    assert "kube-system is a protected namespace" in (step_refusal(SHOP, DEPLOYMENT_LEASE, params) or "")


def test_an_old_plan_without_the_new_keys_parses_to_no_declaration() -> None:
    wire = compile_plan(SCALE).to_json()
    for key in ("changes", "auto_approve_mutations"):
        del wire[key]
    plan = Plan.from_json(wire)
    assert plan.changes is None and plan.auto_approve_mutations is False


# ---------------------------------------------------------------------------------------------------- compiler

CHANGES = """\
changes:
  clusters: ["*"]
  namespaces: [shop, "team-*"]
"""
SCALE = CHANGES + """\
name: scale
version: 1
parameters:
  namespace: {type: string, default: "${{ alert.labels.namespace }}"}
steps:
  - id: scale
    action: k8s.scale
    params: {namespace: "${{ params.namespace }}", deployment: cart, replicas: 3}
"""


def compile_plan(text: str) -> Plan:
    return compile_source(textwrap.dedent(text), "rb.yaml", CATALOG)


def errors_of(text: str) -> list[str]:
    with pytest.raises(RunbookErrors) as caught:
        compile_plan(text)
    return [str(e) for e in caught.value.errors]


def test_the_block_compiles_into_the_plan_with_its_defaults() -> None:
    plan = compile_plan(SCALE)
    assert plan.changes == Changes(clusters=["*"], namespaces=["shop", "team-*"], cluster_resources=[], names=["*"])
    assert plan.to_json()["changes"] == {"clusters": ["*"], "namespaces": ["shop", "team-*"],
                                         "cluster_resources": [], "names": ["*"], "aws": None, "gke": None}


def test_the_plan_summary_says_where_the_runbook_may_change_things() -> None:
    from incidentctl.dsl.summary import summarize_plan

    assert "changes clusters *; namespaces shop, team-*; cluster resources -; names *" in summarize_plan(
        compile_plan(SCALE))


def test_a_runbook_that_changes_kubernetes_objects_must_say_where() -> None:
    assert errors_of(SCALE.replace(CHANGES, "")) == [
        "rb.yaml:7:13: $.steps[0].action: k8s.scale changes Kubernetes objects: say where this runbook may change "
        "things in a top-level `changes` block (clusters, namespaces)"]


def test_a_literal_object_outside_the_block_is_refused_at_compile_time() -> None:
    text = SCALE.replace('"${{ params.namespace }}"', "kube-system")
    (error,) = errors_of(text)
    assert error.startswith("rb.yaml:10:13: $.steps[0].action: refused to change deployments/cart in namespace "
                            "kube-system on the current kubeconfig context: kube-system is a protected namespace")


@pytest.mark.parametrize(("block", "expected"), [
    ("changes: {namespaces: [shop]}\n", "rb.yaml:1:10: $.changes: k8s.scale changes Kubernetes objects: say in "
                                        "changes.clusters which kubeconfig contexts"),
    ("changes: {clusters: [\"*\"]}\n", "rb.yaml:1:10: $.changes: changes lists neither namespaces nor "
                                      "cluster_resources: the runbook could change nothing"),
    ("changes: {clusters: [\"*\"], namespaces: [Shop]}\n", "rb.yaml:1:41: $.changes.namespaces[0]:"),
    ("changes: {clusters: [\"*\"], cluster_resources: [pods]}\n",
     "rb.yaml:1:48: $.changes.cluster_resources[0]: must be one of nodes"),
])
def test_a_malformed_block_is_named_at_its_line(block: str, expected: str) -> None:
    errors = errors_of(SCALE.replace(CHANGES, block))
    assert any(e.startswith(expected) for e in errors), errors


GATED = CHANGES + """\
name: gated
version: 1
steps:
  - id: gate
    approval: {message: "scale?", groups: [sre], timeout: 15m, on_timeout: approve}
  - id: scale
    action: k8s.scale
    params: {namespace: shop, deployment: cart, replicas: 3}
"""


def test_on_timeout_approve_before_a_mutating_step_is_refused() -> None:
    assert errors_of(GATED) == [
        "rb.yaml:8:76: $.steps[0].approval.on_timeout: on_timeout: approve would let mutating step 'scale' "
        "(k8s.scale) run with nobody deciding; use on_timeout: reject, or say `auto_approve_mutations: true` at the "
        "top of the runbook"]


def test_auto_approve_mutations_allows_it_when_the_runbook_says_so() -> None:
    plan = compile_plan(GATED + "auto_approve_mutations: true\n")
    assert plan.auto_approve_mutations is True
    assert plan.steps[0].approval is not None and plan.steps[0].approval.on_timeout == "approve"


def test_on_timeout_approve_with_no_change_after_it_compiles() -> None:
    text = GATED.replace("action: k8s.scale\n    params: {namespace: shop, deployment: cart, replicas: 3}",
                         "action: k8s.deployment_status\n    params: {namespace: shop, deployment: cart}")
    assert compile_plan(text).steps[0].approval is not None


def test_the_shipped_containment_runbook_does_not_auto_approve() -> None:
    root = Path(__file__).resolve().parents[1]
    from incidentctl.library import compile_file

    plan = compile_file(root / "runbooks" / "k8s-security-containment.yaml")
    approvals = [s.approval for s in plan.walk() if s.approval]
    assert approvals and all(a.on_timeout == "reject" for a in approvals)
    assert plan.auto_approve_mutations is False


# ---------------------------------------------------------------------------------------------------- the worker

async def test_the_action_wrapper_refuses_a_protected_namespace_before_the_action_runs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """No cluster is reached: the kubeconfig does not even exist, and the refusal comes first."""
    from temporalio.exceptions import ApplicationError

    load_all()
    monkeypatch.setenv("INCIDENTCTL_KUBECONFIG", "/nonexistent/kubeconfig")
    isolate = get_action("k8s.isolate").activity
    with pytest.raises(ApplicationError) as caught:
        await isolate(ActionInput(action="k8s.isolate", params={"namespace": "kube-system", "deployment": "coredns"}))
    assert caught.value.type == "ChangeNotAllowed" and caught.value.non_retryable
    assert caught.value.message.startswith("refused to change deployments/coredns in namespace kube-system")

    monkeypatch.setenv("INCIDENTCTL_PROTECTED_NAMESPACES", " payments, ,vault ")
    with pytest.raises(ApplicationError) as caught:
        await isolate(ActionInput(action="k8s.isolate", params={"namespace": "vault", "deployment": "vault"},
                                  changes=Changes(clusters=["*"], namespaces=["*"])))
    assert "vault is a protected namespace" in caught.value.message
