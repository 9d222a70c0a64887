"""The worker's RBAC comes from the actions: each k8s action declares what it needs, the declarations match the
API calls its code makes (read from the source: every call names a `Target(verb, resource, namespace)`), and
deploy/kubernetes/rbac.yaml is exactly what the generator makes of them."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest
import yaml

from activities.base import ActionSpec, KubeAccess
from activities.catalog import load_all
from activities.k8s import workload
from incidentctl import rbac

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "activities" / "k8s"
Need = tuple[str, str, bool]  # verb, resource, cluster-wide


def k8s_actions() -> list[ActionSpec]:
    return [spec for spec in load_all() if spec.name.startswith("k8s.")]


@functools.cache
def _module(name: str) -> tuple[dict[str, ast.AST], dict[str, str], dict[str, tuple[str, str]]]:
    """A k8s module's top-level functions, string constants, and names imported from sibling modules."""
    tree = ast.parse((K8S / f"{name}.py").read_text())
    functions: dict[str, ast.AST] = {}
    constants: dict[str, str] = {}
    imported: dict[str, tuple[str, str]] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            functions[node.name] = node
        elif (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
              and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            constants[node.targets[0].id] = node.value.value
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("activities.k8s."):
            for alias in node.names:
                imported[alias.asname or alias.name] = (node.module.rsplit(".", 1)[1], alias.name)
    return functions, constants, imported


def _constant(module: str, node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        _, constants, imported = _module(module)
        if node.id in constants:
            return constants[node.id]
        if node.id in imported:
            source, name = imported[node.id]
            return _module(source)[1].get(name)
    return None


def calls_of(module: str, function: str, seen: frozenset[tuple[str, str]] = frozenset()
             ) -> tuple[set[Need], set[str]]:
    """The (verb, resource, cluster-wide) of every Target `function` builds, itself or through the k8s helpers
    it calls; and the call sites whose resource is not a literal."""
    functions, _, imported = _module(module)
    needs: set[Need] = set()
    unresolved: set[str] = set()
    for node in ast.walk(functions[function]):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        name = node.func.id
        if name == "Target":
            verb, resource = _constant(module, node.args[0]), _constant(module, node.args[1])
            has_namespace = len(node.args) > 2 or any(k.arg == "namespace" for k in node.keywords)
            if verb is None or resource is None:
                unresolved.add(f"{module}.{function}:{node.lineno}")
            else:
                needs.add((verb, resource, not has_namespace))
            continue
        callee = (module, name) if name in functions else imported.get(name)
        if callee and callee not in seen and callee[1] in _module(callee[0])[0]:
            more, more_unresolved = calls_of(*callee, seen | {(module, function)})
            needs |= more
            unresolved |= more_unresolved
    return needs, unresolved


def declared(spec: ActionSpec) -> set[Need]:
    return {(verb, need.resource, need.cluster_wide) for need in spec.kube_access for verb in need.verbs}


def covered(need: Need, grants: set[Need]) -> bool:
    """A namespaced call is allowed by a namespaced or a cluster-wide grant; a cluster-wide one by the latter."""
    verb, resource, _ = need
    return need in grants or (verb, resource, True) in grants


def test_every_k8s_action_declares_what_it_needs() -> None:
    assert k8s_actions(), "the registry has k8s actions"
    assert [spec.name for spec in k8s_actions() if not spec.kube_access] == []
    assert [spec.name for spec in load_all() if spec.kube_access and not spec.name.startswith("k8s.")] == []


@pytest.mark.parametrize("spec", k8s_actions(), ids=lambda spec: spec.name)
def test_declarations_match_the_calls_the_action_makes(spec: ActionSpec) -> None:
    module = spec.activity.__module__.rsplit(".", 1)[1]
    needs, unresolved = calls_of(module, spec.activity.__name__)
    if spec.name == "k8s.workload_of":
        # It follows owner references through `_APIS`: the resources are that table's.
        assert unresolved == {f"workload.workload_of:{_target_line(workload.__file__, 'resource, namespace')}"}
        needs |= {("get", resource, False) for _, _, resource in workload._APIS.values()}
    else:
        assert unresolved == set()
    lookup = {(verb, rbac.NAMESPACE_LOOKUP.resource, True) for verb in rbac.NAMESPACE_LOOKUP.verbs}
    grants = declared(spec) | lookup
    assert {need for need in needs if not covered(need, grants)} == set(), "calls the declaration does not allow"
    # Scope is the declaration's to widen (a drain evicts pods in whichever namespace they run), not to add verbs.
    called = {(verb, resource) for verb, resource, _ in needs}
    assert {(verb, resource) for verb, resource, _ in declared(spec)} - called == set(), "declared, never called"


def _target_line(path: str, text: str) -> int:
    lines = Path(path).read_text().splitlines()
    return next(number for number, line in enumerate(lines, 1) if "Target(" in line and text in line)


def test_committed_rbac_yaml_is_the_generated_one() -> None:
    committed = (ROOT / "deploy" / "kubernetes" / "rbac.yaml").read_text()
    assert committed == rbac.render(load_all()), "regenerate: python -m incidentctl.rbac > deploy/kubernetes/rbac.yaml"


def _documents(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def test_cluster_wide_grants_only_what_cannot_be_namespaced() -> None:
    documents = _documents(rbac.render(load_all(), ["shop", "payments"]))
    cluster_role = next(doc for doc in documents if doc["kind"] == "ClusterRole")
    cluster_resources = {(rule["apiGroups"][0], resource, verb) for rule in cluster_role["rules"]
                         for resource in rule["resources"] for verb in rule["verbs"]}
    assert not any(resource == "secrets" for _, resource, _ in cluster_resources), "no cluster-wide secrets"
    assert not any(verb == "*" or resource == "*" for _, resource, verb in cluster_resources)
    assert not any(group == "apps" for group, _, _ in cluster_resources), "deployments are changed per namespace"
    # Cluster-scoped objects, and a drain's pods wherever they run.
    assert {resource for _, resource, _ in cluster_resources} == {"nodes", "namespaces", "pods", "pods/eviction"}
    assert {verb for _, resource, verb in cluster_resources if resource == "pods"} == {"list"}
    roles = {doc["metadata"]["namespace"]: doc for doc in documents if doc["kind"] == "Role"}
    assert sorted(roles) == ["default", "payments", "shop"]
    assert roles["default"]["rules"] == [{"apiGroups": [""], "resources": ["events"], "verbs": ["list"]}], (
        "only what_changed's node events in `default`, which runbooks do not act in")
    assert roles["shop"]["rules"] == roles["payments"]["rules"]
    secrets = [rule for rule in roles["shop"]["rules"] if "secrets" in rule["resources"]]
    assert [rule["verbs"] for rule in secrets] == [["list"]], "what_changed lists metadata only"
    bindings = [doc for doc in documents if doc["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert all(doc["subjects"] == [{"kind": "ServiceAccount", "name": rbac.SERVICE_ACCOUNT,
                                    "namespace": rbac.INSTALL_NAMESPACE}] for doc in bindings)


def test_runbooks_option_keeps_only_the_actions_they_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    (tmp_path / "look.yaml").write_text(
        "name: look\nversion: 1\nsteps:\n"
        "  - id: pods\n    action: k8s.unhealthy_pods\n    params: {namespace: shop, selector: app=cart}\n")
    assert rbac.main(["--runbooks", str(tmp_path), "--namespace", "shop"]) == 0
    documents = _documents(capsys.readouterr().out)
    role = next(doc for doc in documents if doc["kind"] == "Role")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]
    cluster_role = next(doc for doc in documents if doc["kind"] == "ClusterRole")
    assert cluster_role["rules"] == [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]}]


def test_a_runbook_that_does_not_compile_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.yaml").write_text("name: bad\nversion: 1\nsteps:\n  - id: x\n    action: k8s.nope\n")
    assert rbac.main(["--runbooks", str(tmp_path)]) == 2
    assert "bad.yaml" in capsys.readouterr().err


def test_access_rule_shorthand() -> None:
    from activities.k8s.access import rule

    assert rule("get,list pods/log") == KubeAccess(("get", "list"), "pods/log")
    assert rbac.split_resource("networkpolicies.networking.k8s.io") == ("networking.k8s.io", "networkpolicies")
