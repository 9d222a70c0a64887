"""Runbook compiler: YAML -> schema check -> semantic checks -> plan (the workflow's input).

Everything that can be known before an incident runs is checked here, and every error points at the YAML
line: unknown actions and wrong parameters, bad expressions and references, jumps, unreachable steps.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from activities.base import UnknownAction, get_action
from activities.catalog import load_all
from incidentctl.dsl import expressions
from incidentctl.dsl.durations import parse_duration
from incidentctl.dsl.errors import RunbookError, RunbookErrors
from incidentctl.dsl.source import Path_, Source, load_yaml
from incidentctl.dsl.validate import STEP_KINDS, explain, schema_errors

PLAN_FORMAT = 1
DEFAULT_TIMEOUT_S = 300.0
DEFAULT_RETRY = {"max_attempts": 3, "initial_interval_s": 1.0, "backoff": 2.0, "max_interval_s": 30.0,
                 "non_retryable_errors": []}
CONTEXT_ROOTS = ("params", "alert", "steps", "incident", "result", "loop")
# What `steps.<id>` exposes (design.md, "Context roots").
STEP_RESULT_FIELDS = ("output", "status", "error")
# Fields evaluated with the step's own action result in scope.
RESULT_FIELDS = ("outputs", "assert", "until", "message")
# Fields evaluated before a container step's body runs: its nested steps have no results yet there.
BEFORE_BODY_FIELDS = ("when", "foreach")
_PY_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "integer": (int,), "number": (int, float),
                                          "boolean": (bool,), "array": (list,), "object": (dict,)}


@dataclass
class StepInfo:
    step: dict[str, Any]
    path: Path_
    ancestors: tuple[str, ...]
    outputs: set[str] | None


@dataclass
class _Compiler:
    source: Source
    errors: list[RunbookError] = field(default_factory=list)
    steps: dict[str, StepInfo] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)

    def error(self, path: Path_, message: str) -> None:
        self.errors.append(self.source.error(path, message))

    # ------------------------------------------------------------ pass 1: ids

    def collect(self, steps: list[dict[str, Any]], path: Path_, ancestors: tuple[str, ...]) -> None:
        for index, step in enumerate(steps):
            step_path = (*path, index)
            step_id = step["id"]
            if step_id in self.steps:
                first = self.source.position(self.steps[step_id].path)[0]
                self.error((*step_path, "id"), f"duplicate step id {step_id!r} (first used on line {first})")
            else:
                outputs = set(step["outputs"]) if isinstance(step.get("outputs"), dict) else None
                self.steps[step_id] = StepInfo(step, step_path, ancestors, outputs)
            for child_path, child_steps in _children(step, step_path):
                self.collect(child_steps, child_path, (*ancestors, step_id))

    # ------------------------------------------------------------ pass 2: plan

    def compile_steps(self, steps: list[dict[str, Any]], path: Path_, loop_vars: frozenset[str]) -> list[dict]:
        self.check_jumps(steps, path)
        return [self.compile_step(step, (*path, i), loop_vars) for i, step in enumerate(steps)]

    def compile_step(self, step: dict[str, Any], path: Path_, loop_vars: frozenset[str]) -> dict[str, Any]:
        kind = next(k for k in STEP_KINDS if k in step)
        plan = _empty_step(step, kind, self.source.position(path)[0])
        action = step.get("action") or step.get("check") or step.get("wait_until")
        if kind == "notify":
            notify = dict(step["notify"])
            action = f"notify.{notify.pop('channel', 'log')}"
            plan["params"] = notify
        elif action:
            plan["params"] = step.get("params") or {}
        if action:
            plan["action"] = action
            plan["mutates"] = self.check_action(action, plan["params"], path, kind)
            plan["heartbeat_s"] = _heartbeat_timeout(action)
        plan["timeout_s"] = self.duration(step, "timeout", path, DEFAULT_TIMEOUT_S if action else None)
        plan["retry"] = self.retry(step, path, plan["mutates"]) if action else None
        plan["on_failure"] = _on_failure(step.get("on_failure"))
        plan["next"], plan["end"] = step.get("next"), bool(step.get("end"))
        plan["outputs"] = step.get("outputs")
        plan["when"] = _bare(step.get("when"))
        plan["assert"] = _bare(step.get("assert"))
        plan["message"] = step.get("message")
        plan["until"] = _bare(step.get("until"))
        if kind == "wait_until":
            plan["interval_s"] = self.duration(step, "interval", path, 10.0)
            plan["deadline_s"] = plan["timeout_s"] if "timeout" in step else 600.0
            plan["timeout_s"] = min(plan["deadline_s"], DEFAULT_TIMEOUT_S)
        if kind == "sleep":
            plan["duration_s"] = self.duration(step, "sleep", path, 0.0)
        if kind == "approval":
            plan["approval"] = self.approval(step.get("approval") or {}, (*path, "approval"))
        if kind == "branch":
            plan["cases"], plan["default"] = [], None
            for i, case in enumerate(step["branch"]):
                if "default" in case:
                    plan["default"] = self.compile_steps(case["default"], (*path, "branch", i, "default"), loop_vars)
                else:
                    plan["cases"].append({"when": _bare(case["when"]), "steps": self.compile_steps(
                        case["steps"], (*path, "branch", i, "steps"), loop_vars)})
        if kind == "parallel":
            plan["fail_fast"] = bool(step.get("fail_fast"))
            plan["branches"] = [
                {"name": branch.get("name") or f"branch{i + 1}",
                 "steps": self.compile_steps(branch["steps"], (*path, "parallel", i, "steps"), loop_vars)}
                for i, branch in enumerate(step["parallel"])
            ]
        if kind == "foreach":
            plan["items"] = _bare(step["foreach"])
            plan["as"] = step.get("as") or "item"
            if plan["as"] in CONTEXT_ROOTS:
                # The loop variable would hide a context root for the whole body.
                self.error((*path, "as"), f"the loop variable cannot be called {plan['as']!r}: that name is "
                                          f"taken ({', '.join(CONTEXT_ROOTS)})")
            plan["concurrency"] = int(step.get("concurrency") or 1)
            plan["steps"] = self.compile_steps(step["steps"], (*path, "steps"), loop_vars | {plan["as"], "loop"})
        self.check_expressions(step, path, loop_vars)
        return plan

    # ------------------------------------------------------------ checks

    def check_action(self, name: str, params: dict[str, Any], path: Path_, kind: str) -> bool:
        key = "notify" if kind == "notify" else kind
        try:
            spec = get_action(name)
        except UnknownAction:
            known = [s.name for s in load_all()]
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else " (see `incidentctl actions list`)"
            self.error((*path, key), f"unknown action {name!r}{hint}")
            return False
        literal = {k: v for k, v in params.items() if not _has_template(v)}
        # Templated values are only known when the incident runs: count them present, check them then.
        schema = _count_present(spec.params_schema, set(params))
        where = path if kind == "channel" else (*path, "notify" if kind == "notify" else "params")
        for raw in jsonschema.Draft202012Validator(schema).iter_errors(literal):
            for sub, message, at_key in explain(raw):
                message = message.replace("required key", "parameter").replace("unknown key", "unknown parameter")
                self.errors.append(self.source.error((*where, *sub), f"{name}: {message}", at_key=at_key))
        return spec.mutates

    def duration(self, step: dict[str, Any], key: str, path: Path_, default: float | None) -> float | None:
        if key not in step:
            return default
        try:
            return parse_duration(step[key])
        except ValueError as exc:
            self.error((*path, key), str(exc))
            return default

    def retry(self, step: dict[str, Any], path: Path_, mutates: bool) -> dict[str, Any]:
        # A remediation is retried only when its author says it is safe to repeat.
        retry = {**DEFAULT_RETRY, "max_attempts": 1 if mutates else DEFAULT_RETRY["max_attempts"]}
        given = step.get("retry") or {}
        for key in ("max_attempts", "backoff", "non_retryable_errors"):
            if key in given:
                retry[key] = given[key]
        for key in ("initial_interval", "max_interval"):
            if key in given:
                retry[f"{key}_s"] = self.duration(given, key, (*path, "retry"), retry[f"{key}_s"])
        retry["max_interval_s"] = max(retry["max_interval_s"], retry["initial_interval_s"])
        return retry

    def approval(self, spec: dict[str, Any], path: Path_) -> dict[str, Any]:
        approvers, groups = list(spec.get("approvers") or []), list(spec.get("groups") or [])
        required = int(spec.get("required", 1))
        if approvers and not groups and required > len(approvers):
            self.error((*path, "required"), f"needs {required} approvals but only {len(approvers)} approver(s) "
                                            "are listed")
        escalation = []
        for i, stage in enumerate(spec.get("escalation") or []):
            where = (*path, "escalation", i)
            if not stage.get("approvers") and not stage.get("groups"):
                self.error(where, "an escalation stage names approvers or groups")
            escalation.append({"approvers": list(stage.get("approvers") or []),
                               "groups": list(stage.get("groups") or []),
                               "timeout_s": self.duration(stage, "timeout", where, None)})
        stages = [{"timeout_s": self.duration(spec, "timeout", path, None)}, *escalation]
        for i, stage in enumerate(stages[:-1]):
            if stage["timeout_s"] is None:
                where = (*path, "timeout") if i == 0 else (*path, "escalation", i - 1)
                self.error(where, "a stage followed by an escalation needs a timeout, or the escalation never starts")
        return {"message": spec.get("message"), "approvers": approvers, "groups": groups, "required": required,
                "timeout_s": stages[0]["timeout_s"], "on_timeout": spec.get("on_timeout", "reject"),
                "allow_self_approval": bool(spec.get("allow_self_approval", False)), "escalation": escalation}

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
                if target not in self.steps:
                    close = difflib.get_close_matches(target, list(self.steps), n=1)
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

    def check_expressions(self, step: dict[str, Any], path: Path_, loop_vars: frozenset[str]) -> None:
        fields: list[tuple[str, Any, bool]] = [
            ("when", step.get("when"), False), ("assert", step.get("assert"), True),
            ("until", step.get("until"), True), ("foreach", step.get("foreach"), False),
        ]
        for key in ("params", "outputs", "message", "notify", "approval"):
            if key in step:
                fields.append((key, step[key], key in RESULT_FIELDS))
        for key, value, _ in fields:
            if value is None or isinstance(value, bool):
                continue
            where = (*path, key)
            is_condition = key in ("when", "assert", "until", "foreach")
            try:
                refs = (expressions.references_in_expression(value) if is_condition and isinstance(value, str)
                        else expressions.references(value))
            except expressions.ExpressionError as exc:
                self.error(where, f"expression error: {exc}")
                continue
            allow_result = key in RESULT_FIELDS
            for ref in refs:
                self.check_reference(ref, where, step, loop_vars, allow_result, key in BEFORE_BODY_FIELDS)
        for case_index, case in enumerate(step.get("branch") or []):
            if "when" in case and isinstance(case["when"], str):
                where = (*path, "branch", case_index, "when")
                try:
                    refs = expressions.references_in_expression(case["when"])
                except expressions.ExpressionError as exc:
                    self.error(where, f"expression error: {exc}")
                    continue
                for ref in refs:
                    self.check_reference(ref, where, step, loop_vars, False, True)

    def check_reference(self, ref: expressions.Reference, where: Path_, step: dict[str, Any],
                        loop_vars: frozenset[str], allow_result: bool, before_body: bool) -> None:
        root, parts = ref.root, ref.path
        if root in ("alert", "incident") or root in loop_vars:
            return
        if root == "result":
            if not allow_result:
                self.error(where, f"'result' is only known in a step's outputs, assert, until and message "
                                  f"(in {ref.text!r})")
            return
        if root == "params":
            if parts and parts[0] not in self.parameters:
                declared = ", ".join(sorted(self.parameters)) or "none"
                self.error(where, f"unknown parameter {parts[0]!r} in {ref.text!r} (declared: {declared})")
            return
        if root == "steps":
            self.check_step_reference(ref, where, step, before_body)
            return
        scope = ", ".join(sorted({"params", "alert", "steps", "incident", *loop_vars}))
        self.error(where, f"unknown name {root!r} in {ref.text!r} (known here: {scope})")

    def check_step_reference(self, ref: expressions.Reference, where: Path_, step: dict[str, Any],
                             before_body: bool) -> None:
        parts = ref.path
        if not parts:
            return
        target = str(parts[0])
        info = self.steps.get(target)
        if info is None:
            close = difflib.get_close_matches(target, list(self.steps), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            self.error(where, f"no step {target!r} in {ref.text!r}{hint}")
            return
        if target == step["id"]:
            self.error(where, f"step {target!r} refers to its own result before it has one; use 'result'")
            return
        if before_body and step["id"] in info.ancestors:
            # `outputs` of a container may summarise its body (it is rendered afterwards); when/foreach may not.
            self.error(where, f"step {target!r} runs inside step {step['id']!r}, so it has no result yet when "
                              f"{step['id']!r} starts")
            return
        if len(parts) > 1 and parts[1] not in STEP_RESULT_FIELDS:
            self.error(where, f"{ref.text!r}: a step has {', '.join(STEP_RESULT_FIELDS)}, not {parts[1]!r}")
            return
        if len(parts) > 2 and parts[1] == "output" and info.outputs is not None and parts[2] not in info.outputs:
            self.error(where, f"step {target!r} has no output {parts[2]!r} (its outputs: "
                              f"{', '.join(sorted(info.outputs))})")

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
                self.check_reference(ref, ("service",), {"id": ""}, frozenset(), False, False)

    def check_alert_policy(self, data: dict[str, Any]) -> dict[str, Any]:
        """`on_alert_resolved` as plan data; a goto must name a top-level step. Trigger matchers must parse."""
        from incidentctl.intake.matchers import parse_matcher

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
            return {"mode": "goto", "target": policy["goto"]}
        return {"mode": policy, "target": None}

    def communication(self, spec: dict[str, Any] | None) -> dict[str, Any] | None:
        """Channels as (action, params) with their params checked now; cadence in seconds per severity."""
        if not spec:
            return None
        channels = []
        for i, channel in enumerate(spec.get("channels") or []):
            params = {k: v for k, v in channel.items() if k != "type"}
            action = f"notify.{channel['type']}"
            # message/event/key are filled in for each message; check the rest against the notifier's schema.
            self.check_action(action, {**params, "message": "x"}, ("communication", "channels", i), "channel")
            channels.append({"action": action, "params": params})
        cadence = {"SEV1": 900.0, "SEV2": 1800.0, "SEV3": 3600.0, "SEV4": None}
        for severity, value in (spec.get("status_updates") or {}).items():
            # YAML reads a bare `off` as false; both mean no status updates for that severity.
            cadence[severity] = None if value in ("off", False) else self.duration(
                spec["status_updates"], severity, ("communication", "status_updates"), None)
        for key in ("impact", "root_cause"):
            for problem in expressions.check_syntax(spec.get(key)):
                self.error(("communication", key), f"expression error: {problem}")
        return {"channels": channels, "cadence_s": cadence, "impact": spec.get("impact"),
                "send_timeout_s": self.duration(spec, "send_timeout", ("communication",), 30.0),
                "root_cause": spec.get("root_cause"), "approve_url": spec.get("approve_url")}

    def check_parameters(self, parameters: dict[str, Any]) -> None:
        for name, spec in parameters.items():
            default, kind = spec.get("default"), spec.get("type", "string")
            path = ("parameters", name, "default")
            if default is None:
                continue
            try:
                refs = expressions.references(default)
            except expressions.ExpressionError as exc:
                self.error(path, f"expression error: {exc}")
                continue
            for ref in refs:
                if ref.root != "alert":
                    self.error(path, f"a parameter default may only use 'alert', not {ref.root!r}")
            if refs or expressions.is_template(default):
                continue
            valid = isinstance(default, _PY_TYPES[kind]) and not (kind in ("integer", "number")
                                                                  and isinstance(default, bool))
            if not valid:
                self.error(path, f"default {default!r} is not of the declared type {kind}")
            elif spec.get("enum") and default not in spec["enum"]:
                self.error(path, f"default {default!r} is not one of {spec['enum']}")


def _children(step: dict[str, Any], path: Path_) -> list[tuple[Path_, list[dict[str, Any]]]]:
    out: list[tuple[Path_, list[dict[str, Any]]]] = []
    for i, case in enumerate(step.get("branch") or []):
        key = "default" if "default" in case else "steps"
        out.append(((*path, "branch", i, key), case[key]))
    for i, branch in enumerate(step.get("parallel") or []):
        out.append(((*path, "parallel", i, "steps"), branch["steps"]))
    if "foreach" in step:
        out.append(((*path, "steps"), step["steps"]))
    return out


def _bare(expression: Any) -> Any:
    if isinstance(expression, bool):
        return "true" if expression else "false"
    return expressions.unwrap(expression) if isinstance(expression, str) else expression


def _on_failure(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return {"mode": "goto", "target": value["goto"]}
    return {"mode": value or "abort", "target": None}


def _count_present(schema: dict[str, Any], present: set[str]) -> dict[str, Any]:
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


def _heartbeat_timeout(action: str) -> float | None:
    try:
        return get_action(action).heartbeat_timeout_s
    except UnknownAction:
        return None


def _empty_step(step: dict[str, Any], kind: str, line: int | None) -> dict[str, Any]:
    return {
        "id": step["id"], "kind": kind, "name": step.get("name") or step["id"], "line": line,
        "when": None, "timeout_s": None, "retry": None, "on_failure": {"mode": "abort", "target": None},
        "next": None, "end": False, "outputs": None,
        "action": None, "mutates": False, "params": None, "heartbeat_s": None,
        "assert": None, "message": None,
        "until": None, "interval_s": None, "deadline_s": None,
        "duration_s": None, "approval": None,
        "cases": None, "default": None,
        "branches": None, "fail_fast": False,
        "items": None, "as": None, "steps": None, "concurrency": 1,
    }


def plan_hash(plan: dict[str, Any]) -> str:
    body = {k: v for k, v in plan.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def compile_source(text: str, file: str) -> dict[str, Any]:
    load_all()
    source = load_yaml(text, file)
    if not isinstance(source.data, dict):
        raise RunbookErrors([source.error((), "a runbook is a YAML mapping with name, version and steps")])
    errors = schema_errors(source)
    if errors:
        raise RunbookErrors(errors)
    data = source.data
    compiler = _Compiler(source, parameters=data.get("parameters") or {})
    compiler.check_parameters(compiler.parameters)
    compiler.collect(data["steps"], ("steps",), ())
    compiler.collect(data.get("rollback") or [], ("rollback",), ())
    steps = compiler.compile_steps(data["steps"], ("steps",), frozenset())
    rollback = compiler.compile_steps(data["rollback"], ("rollback",), frozenset()) if data.get("rollback") else []
    compiler.check_service(data.get("service"))
    on_alert_resolved = compiler.check_alert_policy(data)
    communication = compiler.communication(data.get("communication"))
    if compiler.errors:
        raise RunbookErrors(sorted(compiler.errors, key=lambda e: (e.line or 0, e.column or 0)))
    parameters = {
        name: {"type": spec.get("type", "string"), "required": bool(spec.get("required")),
               "default": spec.get("default"), "description": spec.get("description"), "enum": spec.get("enum")}
        for name, spec in compiler.parameters.items()
    }
    plan: dict[str, Any] = {
        "format": PLAN_FORMAT,
        "source": {"path": file},
        "runbook": {"name": data["name"], "version": str(data["version"]), "description": data.get("description"),
                    "owner": data.get("owner"), "team": data.get("team"), "severity": data.get("severity", "SEV3"),
                    "service": data.get("service")},
        "trigger": data.get("trigger"),
        "parameters": parameters,
        "steps": steps,
        "rollback": rollback,
        "on_alert_resolved": on_alert_resolved,
        "communication": communication,
    }
    plan["hash"] = plan_hash(plan)
    return plan


def compile_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RunbookErrors([RunbookError(str(path), None, None, "$", f"cannot read: {exc.strerror}")]) from None
    return compile_source(text, str(path))


def runbook_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
        else:
            files.append(path)
    return files


def compile_directory(paths: list[Path]) -> tuple[list[dict[str, Any]], list[RunbookError]]:
    plans: list[dict[str, Any]] = []
    errors: list[RunbookError] = []
    names: dict[str, str] = {}
    for file in runbook_files(paths):
        try:
            plan = compile_file(file)
        except RunbookErrors as exc:
            errors += exc.errors
            continue
        name = plan["runbook"]["name"]
        if name in names:
            errors.append(RunbookError(str(file), None, None, "$.name",
                                       f"runbook name {name!r} is already used by {names[name]}"))
            continue
        names[name] = str(file)
        plans.append(plan)
    return plans, errors


from incidentctl.dsl.summary import summarize_plan  # noqa: E402  (re-exported for the CLI)

__all__ = ["compile_source", "compile_file", "compile_directory", "summarize_plan", "plan_hash"]
