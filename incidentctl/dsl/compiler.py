"""Runbook compiler: YAML -> schema check -> semantic checks -> typed plan (the workflow's input).

Everything that can be known before an incident runs is checked here, and every error points at the YAML
line: unknown actions and wrong parameters (against the action catalog handed in), bad expressions and
references (incidentctl.dsl.scope), jumps, unreachable steps. Defaults come from incidentctl.dsl.plan.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from incidentctl.dsl import allowed_changes, expressions
from incidentctl.dsl.actions import ActionCatalog, ActionInfo
from incidentctl.dsl.durations import parse_duration
from incidentctl.dsl.errors import RunbookError, RunbookErrors
from incidentctl.dsl.matchers import parse_matcher
from incidentctl.dsl.plan import (
    DEFAULT_CADENCE_S,
    DEFAULT_HEARTBEAT_S,
    DEFAULT_SEND_TIMEOUT_S,
    DEFAULT_TIMEOUT_S,
    DEFAULT_WAIT_DEADLINE_S,
    DEFAULT_WAIT_INTERVAL_S,
    MUTATING_MAX_ATTEMPTS,
    NON_IDEMPOTENT_MAX_ATTEMPTS,
    STEP_KINDS,
    AlertPolicy,
    Approval,
    AwsChanges,
    Branch,
    Case,
    Changes,
    Channel,
    Communication,
    EscalationStage,
    GkeChanges,
    Leases,
    OnFailure,
    Parameter,
    Plan,
    Resolve,
    Retry,
    RunbookInfo,
    Source,
    Step,
)
from incidentctl.dsl.scope import Scope
from incidentctl.dsl.source import Path_, load_yaml
from incidentctl.dsl.types import matches_type
from incidentctl.dsl.validate import explain, schema_errors

# Temporal refuses payloads over 2 MiB by default, and every incident's input carries its plan (twice, with the
# alert, when it continues as new): a plan stays well below.
MAX_PLAN_BYTES = 512 * 1024


@dataclass
class _Compiler:
    source: Any  # incidentctl.dsl.source.Source
    catalog: ActionCatalog
    errors: list[RunbookError] = field(default_factory=list)
    # Every compiled step with its path, in document order (main steps, then rollback, then on_cancel).
    compiled: list[tuple[Path_, Step]] = field(default_factory=list)

    def __post_init__(self) -> None:
        data = self.source.data
        self.scope = Scope(self.error, lambda path: self.source.position(path)[0], data.get("parameters") or {})

    def error(self, path: Path_, message: str) -> None:
        self.errors.append(self.source.error(path, message))

    # ------------------------------------------------------------ steps

    def compile_steps(self, steps: list[dict[str, Any]], path: Path_, loop_vars: frozenset[str]) -> list[Step]:
        self.check_jumps(steps, path)
        return [self.compile_step(step, (*path, i), loop_vars) for i, step in enumerate(steps)]

    def compile_step(self, raw: dict[str, Any], path: Path_, loop_vars: frozenset[str]) -> Step:
        kind = next(k for k in STEP_KINDS if k in raw)
        step = Step(id=raw["id"], kind=kind, name=raw.get("name") or raw["id"], line=self.source.position(path)[0])
        self.compiled.append((path, step))
        action = raw.get("action") or raw.get("check") or raw.get("wait_until")
        if kind == "notify":
            notify = dict(raw["notify"])
            action = f"notify.{notify.pop('channel', 'log')}"
            step.params = notify
        elif action:
            step.params = raw.get("params") or {}
        if action:
            step.action = action
            info = self.check_action(action, step.params, path, kind)
            if info is not None:
                step.mutates, step.heartbeat_s = info.mutates, info.heartbeat_timeout_s or DEFAULT_HEARTBEAT_S
                step.lease = info.lease if info.mutates else None
            step.retry = self.retry(raw, path, step.mutates, info is not None and info.idempotent)
        step.timeout_s = self.duration(raw, "timeout", path, DEFAULT_TIMEOUT_S if action else None)
        step.on_failure = _on_failure(raw.get("on_failure"))
        step.next, step.end = raw.get("next"), bool(raw.get("end"))
        step.end_outcome = raw["end"] if isinstance(raw.get("end"), str) else None
        step.outputs = raw.get("outputs")
        step.when, step.assert_, step.until = _bare(raw.get("when")), _bare(raw.get("assert")), _bare(raw.get("until"))
        step.message = raw.get("message")
        if kind == "wait_until":
            step.interval_s = self.duration(raw, "interval", path, DEFAULT_WAIT_INTERVAL_S)
            step.deadline_s = step.timeout_s if "timeout" in raw else DEFAULT_WAIT_DEADLINE_S
            step.timeout_s = min(step.deadline_s or DEFAULT_WAIT_DEADLINE_S, DEFAULT_TIMEOUT_S)
        elif kind == "sleep":
            step.duration_s = self.duration(raw, "sleep", path, 0.0)
        elif kind == "approval":
            step.approval = self.approval(raw.get("approval") or {}, (*path, "approval"))
        elif kind == "branch":
            step.cases, step.default = [], None
            for i, case in enumerate(raw["branch"]):
                if "default" in case:
                    step.default = self.compile_steps(case["default"], (*path, "branch", i, "default"), loop_vars)
                else:
                    step.cases.append(Case(when=_bare(case["when"]), steps=self.compile_steps(
                        case["steps"], (*path, "branch", i, "steps"), loop_vars)))
        elif kind == "parallel":
            step.fail_fast = bool(raw.get("fail_fast"))
            step.branches = [Branch(name=branch.get("name") or f"branch{i + 1}",
                                    steps=self.compile_steps(branch["steps"], (*path, "parallel", i, "steps"),
                                                             loop_vars))
                             for i, branch in enumerate(raw["parallel"])]
        elif kind == "foreach":
            step.items = _bare(raw["foreach"])
            step.as_ = raw.get("as") or "item"
            if step.as_ in expressions.CONTEXT_ROOTS:
                # The loop variable would hide a context root for the whole body.
                self.error((*path, "as"), f"the loop variable cannot be called {step.as_!r}: that name is taken "
                                          f"({', '.join(expressions.CONTEXT_ROOTS)})")
            step.concurrency = int(raw.get("concurrency") or 1)
            step.steps = self.compile_steps(raw["steps"], (*path, "steps"), loop_vars | {step.as_, "loop"})
        self.scope.check_step(raw, path, loop_vars)
        return step

    # ------------------------------------------------------------ checks

    def check_action(self, name: str, params: dict[str, Any], path: Path_, kind: str) -> ActionInfo | None:
        """Literal params against the action's schema; the action, when known."""
        key = "notify" if kind == "notify" else kind
        info = self.catalog.get(name)
        if info is None:
            close = difflib.get_close_matches(name, list(self.catalog), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else " (see `incidentctl actions list`)"
            self.error((*path, key), f"unknown action {name!r}{hint}")
            return None
        literal = {k: v for k, v in params.items() if not _has_template(v)}
        where = path if kind == "channel" else (*path, "notify" if kind == "notify" else "params")
        for raw in _params_validator(info, frozenset(params)).iter_errors(literal):
            for sub, message, at_key in explain(raw):
                message = message.replace("required key", "parameter").replace("unknown key", "unknown parameter")
                self.errors.append(self.source.error((*where, *sub), f"{name}: {message}", at_key=at_key))
        return info

    def duration(self, step: dict[str, Any], key: str, path: Path_, default: float | None) -> float | None:
        if key not in step:
            return default
        try:
            return parse_duration(step[key])
        except ValueError as exc:
            self.error((*path, key), str(exc))
            return default

    def retry(self, step: dict[str, Any], path: Path_, mutates: bool, idempotent: bool) -> Retry:
        retry = Retry(max_attempts=MUTATING_MAX_ATTEMPTS if idempotent else NON_IDEMPOTENT_MAX_ATTEMPTS) \
            if mutates else Retry()
        given = step.get("retry") or {}
        retry.max_attempts = given.get("max_attempts", retry.max_attempts)
        retry.backoff = given.get("backoff", retry.backoff)
        retry.non_retryable_errors = list(given.get("non_retryable_errors", retry.non_retryable_errors))
        where = (*path, "retry")
        retry.initial_interval_s = self.duration(given, "initial_interval", where, retry.initial_interval_s) or 0.0
        retry.max_interval_s = max(self.duration(given, "max_interval", where, retry.max_interval_s) or 0.0,
                                   retry.initial_interval_s)
        return retry

    def approval(self, spec: dict[str, Any], path: Path_) -> Approval:
        approval = Approval(message=spec.get("message"), approvers=list(spec.get("approvers") or []),
                            groups=list(spec.get("groups") or []), required=int(spec.get("required", 1)),
                            timeout_s=self.duration(spec, "timeout", path, None),
                            on_timeout=spec.get("on_timeout", "reject"),
                            allow_self_approval=bool(spec.get("allow_self_approval", False)))
        if not approval.approvers and not approval.groups:
            self.error(path, "an approval names who decides (approvers, groups or both): one anybody could give "
                             "would approve nothing")
        elif approval.approvers and not approval.groups and approval.required > len(approval.approvers):
            self.error((*path, "required"), f"needs {approval.required} approvals but only "
                                            f"{len(approval.approvers)} approver(s) are listed")
        for i, stage in enumerate(spec.get("escalation") or []):
            where = (*path, "escalation", i)
            if not stage.get("approvers") and not stage.get("groups"):
                self.error(where, "an escalation stage names approvers or groups")
            approval.escalation.append(EscalationStage(approvers=list(stage.get("approvers") or []),
                                                       groups=list(stage.get("groups") or []),
                                                       timeout_s=self.duration(stage, "timeout", where, None)))
        timeouts = [approval.timeout_s] + [stage.timeout_s for stage in approval.escalation]
        for i, timeout in enumerate(timeouts[:-1]):
            if timeout is None:
                where = (*path, "timeout") if i == 0 else (*path, "escalation", i - 1)
                self.error(where, "a stage followed by an escalation needs a timeout, or the escalation never starts")
        return approval

    def check_jumps(self, steps: list[dict[str, Any]], path: Path_) -> None:
        positions = {s["id"]: i for i, s in enumerate(steps)}
        edges: dict[int, set[int]] = {i: set() for i in range(len(steps))}
        for i, step in enumerate(steps):
            failure = step.get("on_failure")
            targets = [("next", step.get("next"))]
            if isinstance(failure, dict):
                targets.append(("on_failure", failure.get("goto")))
            bad_next = False
            for key, target in targets:
                if target is None:
                    continue
                where = (*path, i, key)
                word = "goto" if key == "on_failure" else "next"
                if target not in self.scope.steps:
                    close = difflib.get_close_matches(target, list(self.scope.steps), n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    self.error(where, f"no step {target!r}{hint}")
                elif target not in positions or positions[target] <= i:
                    self.error(where, f"{word} target {target!r} is not a later step in the same list: jumps may "
                                      "only go forward, so runbooks cannot loop")
                else:
                    edges[i].add(positions[target])
                    continue
                bad_next = bad_next or key == "next"
            # A broken `next` is already reported; treating it as a fall-through avoids a second, misleading
            # "can never run" error for the step after it.
            falls_through = i + 1 < len(steps) and (
                (not step.get("next") and not step.get("end")) or step.get("when")
                or failure == "continue" or bad_next)
            if falls_through:
                edges[i].add(i + 1)
            if step.get("on_failure") == "rollback" and not self.source.data.get("rollback"):
                self.error((*path, i, "on_failure"), "on_failure is rollback but the runbook has no rollback section")
        reachable, todo = {0}, [0]
        while todo:
            for nxt in edges[todo.pop()]:
                if nxt not in reachable:
                    reachable.add(nxt)
                    todo.append(nxt)
        for i, step in enumerate(steps):
            if i not in reachable:
                self.error((*path, i, "id"), f"step {step['id']!r} can never run: every path jumps over it")

    def check_service(self, service: Any) -> None:
        """`service` is rendered when the incident starts: only params, alert and incident exist then."""
        if service is None:
            return
        try:
            refs = expressions.references(service)
        except expressions.ExpressionError as exc:
            self.error(("service",), f"expression error: {exc}")
            return
        for ref in refs:
            if ref.root not in ("params", "alert", "incident"):
                self.error(("service",), f"the service is known before any step runs, so it may use params, alert "
                                         f"and incident, not {ref.root!r} (in {ref.text!r})")
            else:
                self.scope.check_reference(ref, ("service",), None, frozenset(), False, False)

    def alert_policy(self, data: dict[str, Any]) -> AlertPolicy:
        """`on_alert_resolved` as plan data; a goto must name a top-level step. Trigger matchers must parse."""
        for i, text in enumerate((data.get("trigger") or {}).get("matchers") or []):
            try:
                parse_matcher(text)
            except ValueError as exc:
                self.error(("trigger", "matchers", i), str(exc))
        policy = data.get("on_alert_resolved", "continue")
        if isinstance(policy, dict):
            top_level = [s["id"] for s in data["steps"]]
            if policy["goto"] not in top_level:
                self.error(("on_alert_resolved", "goto"), f"on_alert_resolved goes to {policy['goto']!r}, which is not "
                                                            f"a top-level step (top-level: {', '.join(top_level)})")
            return AlertPolicy(mode="goto", target=policy["goto"])
        return AlertPolicy(mode=policy)

    def resolve(self, spec: dict[str, Any]) -> Resolve:
        resolve = Resolve(requires=spec.get("requires"), on_refire=spec.get("on_refire", "notify"),
                          quiet_for_s=self.duration(spec, "quiet_for", ("resolve",), None))
        resolve.reopen_window_s = self.duration(spec, "reopen_window", ("resolve",), resolve.reopen_window_s) or 0.0
        return resolve

    def leases(self, spec: dict[str, Any]) -> Leases:
        leases = Leases(approvers=list(spec.get("approvers") or []), groups=list(spec.get("groups") or []))
        for key, name in (("wait", "wait_s"), ("recent_changes", "recent_changes_s"),
                          ("approval_timeout", "approval_timeout_s")):
            setattr(leases, name, self.duration(spec, key, ("leases",), getattr(leases, name)) or 0.0)
        return leases

    def changes(self, spec: dict[str, Any] | None) -> Changes | None:
        """The `changes` block; a runbook whose steps change Kubernetes objects or AWS resources must have one
        (with `clusters`, resp. an `aws` part), and a step whose object is literal must fit it now rather than
        fail when the incident runs."""
        leased = [(path, step) for path, step in self.compiled
                  if step.lease and allowed_changes.changed_object(step.lease, {}) is not None]
        aws_leased = [(path, step) for path, step in self.compiled
                      if step.lease and allowed_changes.changed_aws_resource(step.lease, {}) is not None]
        if spec is None:
            if leased:
                path, step = leased[0]
                self.error((*path, step.kind), f"{step.action} changes Kubernetes objects: say where this runbook "
                                               "may change things in a top-level `changes` block (clusters, "
                                               "namespaces)")
            if aws_leased:
                path, step = aws_leased[0]
                self.error((*path, step.kind), f"{step.action} changes AWS resources: say where this runbook may "
                                               "change things in a top-level `changes.aws` block (regions, "
                                               "resources)")
            self.gke_changes(None)
            return None
        changes = Changes(clusters=list(spec.get("clusters") or []), namespaces=list(spec.get("namespaces") or []),
                          cluster_resources=list(spec.get("cluster_resources") or []))
        changes.names = list(spec.get("names") or changes.names)
        if spec.get("aws") is not None:
            changes.aws = AwsChanges(regions=list(spec["aws"]["regions"]))
            changes.aws.resources = list(spec["aws"].get("resources") or changes.aws.resources)
            changes.aws.operations = list(spec["aws"].get("operations") or [])
        if leased and not changes.clusters:
            path, step = leased[0]
            self.error(("changes",), f"{step.action} changes Kubernetes objects: say in changes.clusters which "
                                     "kubeconfig contexts (\"*\" for any)")
        changes.gke = self.gke_changes(spec.get("gke"))
        if not changes.namespaces and not changes.cluster_resources and (
                leased or (changes.aws is None and changes.gke is None)):
            self.error(("changes",), "changes lists neither namespaces nor cluster_resources: the runbook could "
                                     "change nothing")
        if aws_leased and changes.aws is None:
            path, step = aws_leased[0]
            self.error((*path, step.kind), f"{step.action} changes AWS resources: say where in `changes.aws` "
                                           "(regions, resources)")
        for path, step in leased + aws_leased:
            fields = allowed_changes.template_fields(step.lease or "")
            if any(_has_template((step.params or {}).get(name)) for name in fields):
                continue  # known when the incident runs, and checked then
            refused = allowed_changes.step_refusal(changes, step.lease, step.params or {})
            if refused:
                self.error((*path, step.kind), refused)
        return changes

    def gke_changes(self, spec: dict[str, Any] | None) -> GkeChanges | None:
        """The `changes.gke` part; a runbook whose steps change GKE node pools must have one, and a step whose node
        pool is literal must fit it now."""
        steps = [(path, step) for path, step in self.compiled
                 if step.lease and allowed_changes.changed_node_pool(step.lease, {}) is not None]
        if spec is None:
            if steps:
                path, step = steps[0]
                self.error((*path, step.kind), f"{step.action} changes GKE node pools: say which in the top-level "
                                               "`changes.gke` block (clusters as project/location/cluster, "
                                               "node_pools)")
            return None
        gke = GkeChanges(clusters=list(spec["clusters"]))
        gke.node_pools = list(spec.get("node_pools") or gke.node_pools)
        for path, step in steps:
            fields = allowed_changes.template_fields(step.lease or "")
            if any(_has_template((step.params or {}).get(name)) for name in fields):
                continue  # known when the incident runs, and checked then
            pool = allowed_changes.changed_node_pool(step.lease or "", step.params or {})
            refused = allowed_changes.gke_refusal(Changes(gke=gke), pool) if pool else None
            if refused:
                self.error((*path, step.kind), refused)
        return gke

    def check_auto_approvals(self, auto_approve_mutations: bool) -> None:
        """An approval that approves itself on timeout must not let a change through with nobody deciding."""
        if auto_approve_mutations:
            return
        for index, (path, step) in enumerate(self.compiled):
            if not step.approval or step.approval.on_timeout != "approve":
                continue
            later = next((s for _, s in self.compiled[index + 1:] if s.mutates), None)
            if later is not None:
                self.error((*path, "approval", "on_timeout"),
                           f"on_timeout: approve would let mutating step {later.id!r} ({later.action}) run with "
                           "nobody deciding; use on_timeout: reject, or say `auto_approve_mutations: true` at the "
                           "top of the runbook")

    def communication(self, spec: dict[str, Any] | None) -> Communication | None:
        """Channels as (action, params) with their params checked now; cadence in seconds per severity."""
        if not spec:
            return None
        channels = []
        for i, channel in enumerate(spec.get("channels") or []):
            params = {k: v for k, v in channel.items() if k != "type"}
            action = f"notify.{channel['type']}"
            # message/event/key are filled in for each message; check the rest against the notifier's schema.
            self.check_action(action, {**params, "message": "x"}, ("communication", "channels", i), "channel")
            channels.append(Channel(action=action, params=params))
        cadence = dict(DEFAULT_CADENCE_S)
        for severity, value in (spec.get("status_updates") or {}).items():
            # YAML reads a bare `off` as false; both mean no status updates for that severity.
            cadence[severity] = None if value in ("off", False) else self.duration(
                spec["status_updates"], severity, ("communication", "status_updates"), None)
        for key in ("impact", "root_cause"):
            for problem in expressions.check_syntax(spec.get(key)):
                self.error(("communication", key), f"expression error: {problem}")
        return Communication(channels=channels, cadence_s=cadence, impact=spec.get("impact"),
                             send_timeout_s=self.duration(spec, "send_timeout", ("communication",),
                                                          DEFAULT_SEND_TIMEOUT_S) or DEFAULT_SEND_TIMEOUT_S,
                             root_cause=spec.get("root_cause"), approve_url=spec.get("approve_url"))

    def parameters(self, declared: dict[str, Any]) -> dict[str, Parameter]:
        out = {}
        for name, spec in declared.items():
            parameter = Parameter(type=spec.get("type", "string"), required=bool(spec.get("required")),
                                  default=spec.get("default"), description=spec.get("description"),
                                  enum=spec.get("enum"))
            out[name] = parameter
            self.check_default(name, parameter)
        return out

    def check_default(self, name: str, parameter: Parameter) -> None:
        default, path = parameter.default, ("parameters", name, "default")
        if default is None:
            return
        try:
            refs = expressions.references(default)
        except expressions.ExpressionError as exc:
            self.error(path, f"expression error: {exc}")
            return
        for ref in refs:
            if ref.root != "alert":
                self.error(path, f"a parameter default may only use 'alert', not {ref.root!r}")
        if refs or expressions.is_template(default):
            return
        if not matches_type(default, parameter.type):
            self.error(path, f"default {default!r} is not of the declared type {parameter.type}")
        elif parameter.enum and default not in parameter.enum:
            self.error(path, f"default {default!r} is not one of {parameter.enum}")


def _bare(expression: Any) -> Any:
    if isinstance(expression, bool):
        return "true" if expression else "false"
    return expressions.unwrap(expression) if isinstance(expression, str) else expression


def _on_failure(value: Any) -> OnFailure:
    if isinstance(value, dict):
        return OnFailure(mode="goto", target=value["goto"])
    return OnFailure(mode=value or "abort")


_PARAMS_VALIDATORS: dict[tuple[int, frozenset[str]], tuple[dict[str, Any], jsonschema.Draft202012Validator]] = {}


def _params_validator(info: ActionInfo, present: frozenset[str]) -> jsonschema.Draft202012Validator:
    """The action's params schema with the params the step gives counted present: templated values are only
    known when the incident runs, so `required` is satisfied by them and they are checked then. Kept per
    schema and set of params, since a runbook directory names the same few actions over and over."""
    key = (id(info.params_schema), present)
    cached = _PARAMS_VALIDATORS.get(key)
    if cached is None or cached[0] is not info.params_schema:
        cached = _PARAMS_VALIDATORS[key] = (info.params_schema, jsonschema.Draft202012Validator(
            _count_present(info.params_schema, present)))
    return cached[1]


def _count_present(schema: dict[str, Any], present: frozenset[str]) -> dict[str, Any]:
    """The schema with `present` keys taken as given in every `required` (also inside anyOf/oneOf/allOf)."""
    relaxed = dict(schema)
    relaxed["required"] = [k for k in schema.get("required", []) if k not in present]
    for combinator in ("anyOf", "allOf", "oneOf"):
        if combinator in schema:
            relaxed[combinator] = [_count_present(branch, present) for branch in schema[combinator]]
    if "oneOf" in relaxed and any(not branch.get("required") and set(branch) <= {"required"}
                                  for branch in relaxed["oneOf"]):
        del relaxed["oneOf"]  # a satisfied branch could now match alongside another; it is checked at run time
    if "dependentRequired" in schema:
        relaxed["dependentRequired"] = {k: [d for d in v if d not in present]
                                        for k, v in schema["dependentRequired"].items()}
    return relaxed


def _has_template(value: Any) -> bool:
    """A value with a template anywhere inside is only known at run time (e.g. `nodes: ["${{ params.node }}"]`)."""
    if isinstance(value, dict):
        return any(_has_template(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_template(v) for v in value)
    return expressions.is_template(value)


def compile_source(text: str, file: str, catalog: ActionCatalog) -> Plan:
    source = load_yaml(text, file)
    if not isinstance(source.data, dict):
        raise RunbookErrors([source.error((), "a runbook is a YAML mapping with name, version and steps")])
    errors = schema_errors(source)
    if errors:
        raise RunbookErrors(errors)
    data = source.data
    compiler = _Compiler(source, catalog)
    parameters = compiler.parameters(data.get("parameters") or {})
    compiler.scope.collect(data["steps"], ("steps",), "steps")
    compiler.scope.collect(data.get("rollback") or [], ("rollback",), "rollback")
    compiler.scope.collect(data.get("on_cancel") or [], ("on_cancel",), "on_cancel")
    steps = compiler.compile_steps(data["steps"], ("steps",), frozenset())
    rollback = compiler.compile_steps(data["rollback"], ("rollback",), frozenset()) if data.get("rollback") else []
    on_cancel = (compiler.compile_steps(data["on_cancel"], ("on_cancel",), frozenset())
                 if data.get("on_cancel") else [])
    resolve = compiler.resolve(data.get("resolve") or {})
    leases = compiler.leases(data.get("leases") or {})
    compiler.check_service(data.get("service"))
    on_alert_resolved = compiler.alert_policy(data)
    communication = compiler.communication(data.get("communication"))
    changes = compiler.changes(data.get("changes"))
    auto_approve_mutations = bool(data.get("auto_approve_mutations"))
    compiler.check_auto_approvals(auto_approve_mutations)
    if compiler.errors:
        raise RunbookErrors(sorted(compiler.errors, key=lambda e: (e.line or 0, e.column or 0)))
    runbook = RunbookInfo(name=data["name"], version=str(data["version"]), description=data.get("description"),
                          owner=data.get("owner"), team=data.get("team"), severity=data.get("severity", "SEV3"),
                          service=data.get("service"))
    plan = Plan(runbook=runbook, source=Source(path=file), trigger=data.get("trigger"), parameters=parameters,
                steps=steps, rollback=rollback, on_cancel=on_cancel, on_alert_resolved=on_alert_resolved,
                resolve=resolve, leases=leases, communication=communication, changes=changes,
                auto_approve_mutations=auto_approve_mutations).with_hash()
    size = len(json.dumps(plan.wire_json, separators=(",", ":")))
    if size > MAX_PLAN_BYTES:
        # Every incident carries its plan in its input: past Temporal's payload limit none could even start.
        raise RunbookErrors([source.error((), f"the compiled plan is {size // 1024} KiB, over the "
                                              f"{MAX_PLAN_BYTES // 1024} KiB limit: split the runbook")])
    return plan


def compile_file(path: str | Path, catalog: ActionCatalog) -> Plan:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RunbookErrors([RunbookError(str(path), None, None, "$", f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        raise RunbookErrors([RunbookError(str(path), None, None, "$", f"not UTF-8 text: {exc.reason}")]) from None
    return compile_source(text, str(path), catalog)


def runbook_files(paths: list[Path]) -> list[Path]:
    """The runbook files in `paths` (directories are searched, hidden directories and virtualenvs skipped)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()
                            and not _hidden(p.relative_to(path)))
        else:
            files.append(path)
    return files


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") or part in ("node_modules", "site-packages", "__pycache__")
               for part in relative.parts[:-1])


def compile_directory(paths: list[Path], catalog: ActionCatalog) -> tuple[list[Plan], list[RunbookError]]:
    plans: list[Plan] = []
    errors: list[RunbookError] = []
    names: dict[str, str] = {}
    for file in runbook_files(paths):
        try:
            plan = compile_file(file, catalog)
        except RunbookErrors as exc:
            errors += exc.errors
            continue
        name = plan.runbook.name
        if name in names:
            errors.append(RunbookError(str(file), None, None, "$.name",
                                       f"runbook name {name!r} is already used by {names[name]}"))
            continue
        names[name] = str(file)
        plans.append(plan)
    return plans, errors
