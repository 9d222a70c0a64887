"""A readable rendering of a compiled plan for `incidentctl runbook plan`."""

from __future__ import annotations

import json
from typing import Any

from incidentctl.dsl.durations import format_duration
from incidentctl.dsl.plan import Plan, Step


def _short(value: Any, width: int = 90) -> str:
    text = json.dumps(value, separators=(", ", ": ")) if not isinstance(value, str) else value
    return text if len(text) <= width else text[: width - 1] + "…"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return format_duration(value) if float(value).is_integer() else f"{value:g}s"


def _step_lines(step: Step, number: str, indent: str) -> list[str]:
    kind = step.kind
    title = f" — {step.name}" if step.name != step.id else ""
    lines = [f"{indent}{number} {step.id} [{kind}]{title}  (line {step.line})"]
    pad = indent + "    "
    if step.when:
        lines.append(f"{pad}when: {step.when}")
    if step.action:
        lines.append(f"{pad}action: {step.action}{'  (MUTATES)' if step.mutates else ''}")
        if step.params:
            lines.append(f"{pad}params: {_short(step.params)}")
        attempts, backoff = (step.retry.max_attempts, step.retry.backoff) if step.retry else (1, 1.0)
        lines.append(f"{pad}timeout {_seconds(step.timeout_s)} per attempt, {attempts} attempt(s), "
                     f"backoff x{backoff:g}")
    if step.assert_:
        lines.append(f"{pad}assert: {step.assert_}")
    if step.until:
        lines.append(f"{pad}until: {step.until}  every {_seconds(step.interval_s)}, "
                     f"give up after {_seconds(step.deadline_s)}")
    if kind == "sleep":
        lines.append(f"{pad}sleep {_seconds(step.duration_s)}")
    if step.approval:
        spec = step.approval
        who = ", ".join(spec.approvers + [f"group:{g}" for g in spec.groups]) or "anyone"
        timeout = f"timeout {_seconds(spec.timeout_s)} then {spec.on_timeout}" if spec.timeout_s else "no timeout"
        lines.append(f"{pad}asks: {_short(spec.message or '')}")
        lines.append(f"{pad}needs {spec.required} approval(s) from {who}; {timeout}")
    if step.outputs:
        lines.append(f"{pad}outputs: {_short(step.outputs)}")
    for i, case in enumerate(step.cases or []):
        lines.append(f"{pad}case {i + 1}: when {case.when}")
        lines += _list_lines(case.steps, f"{number}.{i + 1}", pad + "  ")
    if step.default is not None:
        lines.append(f"{pad}default:")
        lines += _list_lines(step.default, f"{number}.d", pad + "  ")
    for i, branch in enumerate(step.branches or []):
        lines.append(f"{pad}in parallel — {branch.name}:")
        lines += _list_lines(branch.steps, f"{number}.{i + 1}", pad + "  ")
    if kind == "foreach":
        lines.append(f"{pad}for each {step.as_} in {step.items} ({step.concurrency} at a time):")
        lines += _list_lines(step.steps or [], f"{number}.", pad + "  ")
    if step.on_failure.mode != "abort":
        target = f" {step.on_failure.target}" if step.on_failure.target else ""
        lines.append(f"{pad}on failure: {step.on_failure.mode}{target}")
    if step.next:
        lines.append(f"{pad}then: go to {step.next}")
    if step.end:
        lines.append(f"{pad}then: end of runbook")
    return lines


def _list_lines(steps: list[Step], prefix: str, indent: str) -> list[str]:
    lines: list[str] = []
    for i, step in enumerate(steps, start=1):
        number = f"{prefix}{i}" if prefix.endswith(".") or not prefix else f"{prefix}.{i}"
        lines += _step_lines(step, number, indent)
    return lines


def summarize_plan(plan: Plan) -> str:
    book = plan.runbook
    lines = [f"runbook {book.name} v{book.version}  ({plan.source.path})", f"plan    sha256 {plan.hash}"]
    if book.description:
        lines.append(f"        {book.description}")
    lines.append(f"owner {book.owner or '-'}  team {book.team or '-'}  severity {book.severity}")
    if plan.trigger:
        lines.append(f"trigger {_short(plan.trigger)}")
    kubernetes = ("clusters", "namespaces", "cluster_resources")
    if plan.changes and any(getattr(plan.changes, key) for key in kubernetes):
        listed = {key: ", ".join(getattr(plan.changes, key)) or "-" for key in (*kubernetes, "names")}
        lines.append(f"changes clusters {listed['clusters']}; namespaces {listed['namespaces']}; "
                     f"cluster resources {listed['cluster_resources']}; names {listed['names']}")
    if plan.changes and plan.changes.aws:
        lines.append(f"changes aws regions {', '.join(plan.changes.aws.regions)}; "
                     f"resources {', '.join(plan.changes.aws.resources)}; "
                     f"operations {', '.join(plan.changes.aws.operations) or '-'}")
    if plan.changes and plan.changes.gke:
        lines.append(f"changes gke clusters {', '.join(plan.changes.gke.clusters)}; "
                     f"node pools {', '.join(plan.changes.gke.node_pools)}")
    if plan.auto_approve_mutations:
        lines.append("auto_approve_mutations: an approval may approve a change when nobody decides")
    if plan.parameters:
        lines.append("parameters:")
        for name, spec in plan.parameters.items():
            req = "required" if spec.required else "optional"
            default = f", default {_short(spec.default, 60)}" if spec.default is not None else ""
            lines.append(f"  {name}: {spec.type} ({req}{default})")
    lines.append("steps:")
    lines += _list_lines(plan.steps, "", "  ")
    if plan.rollback:
        lines.append("rollback:")
        lines += _list_lines(plan.rollback, "R", "  ")
    return "\n".join(lines)
