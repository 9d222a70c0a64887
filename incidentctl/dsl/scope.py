"""Which names an expression in a runbook may use, where: the scope rules the compiler enforces.

A step may read the result of a step that has run before it: an earlier step, or (in a container's `outputs`)
its own body. Not a later step, not a step in another branch of the same `parallel` (it runs at the same time),
not a step in another case of the same `branch` (the two never run in one incident), not the container it sits
in (that has no result until its body is done), not a step inside a `foreach` from outside that loop (each
iteration has its own results), and not the rollback section from the main steps. Each
violation is an error at the line of the expression, so nothing evaluates to null by surprise at run time.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from incidentctl.dsl import expressions
from incidentctl.dsl.source import Path_

# The sections run after the main steps, and when (a main step cannot read them; they may read the main steps).
SECTION_WHEN = {"rollback": "after a failure", "on_cancel": "when a person cancels the incident"}
# What `steps.<id>` exposes (design.md, "Context roots").
STEP_RESULT_FIELDS = ("output", "status", "error")
# Fields evaluated with the step's own action result in scope.
RESULT_FIELDS = ("outputs", "assert", "until", "message")
# Fields evaluated before a container step's body runs: its nested steps have no results yet there.
BEFORE_BODY_FIELDS = ("when", "foreach")


@dataclass(frozen=True)
class Lane:
    """One branch of a `parallel` step or one case of a `branch` step."""

    container: str
    kind: str  # "parallel" or "branch"
    index: int


@dataclass
class StepInfo:
    step: dict[str, Any]
    path: Path_
    ancestors: tuple[str, ...]
    outputs: set[str] | None
    order: int  # position in document order, main steps first, then the rollback and on_cancel sections
    section: str  # "steps", "rollback" or "on_cancel"
    lanes: tuple[Lane, ...]
    loops: tuple[str, ...]  # the foreach steps it runs inside (once per item, in a scope of its own)


def children(step: dict[str, Any], path: Path_) -> list[tuple[Path_, list[dict[str, Any]], Lane | None]]:
    """The nested step lists of a runbook step as written, each with the lane it forms (if any)."""
    out: list[tuple[Path_, list[dict[str, Any]], Lane | None]] = []
    for i, case in enumerate(step.get("branch") or []):
        key = "default" if "default" in case else "steps"
        out.append(((*path, "branch", i, key), case[key], Lane(step["id"], "branch", i)))
    for i, branch in enumerate(step.get("parallel") or []):
        out.append(((*path, "parallel", i, "steps"), branch["steps"], Lane(step["id"], "parallel", i)))
    if "foreach" in step:
        out.append(((*path, "steps"), step["steps"], None))
    return out


@dataclass
class Scope:
    """Every step of one runbook by id, and the checks of references to them."""

    error: Callable[[Path_, str], None]
    position: Callable[[Path_], int | None]
    parameters: dict[str, Any]

    def __post_init__(self) -> None:
        self.steps: dict[str, StepInfo] = {}

    def collect(self, steps: list[dict[str, Any]], path: Path_, section: str,
                ancestors: tuple[str, ...] = (), lanes: tuple[Lane, ...] = (), loops: tuple[str, ...] = ()) -> None:
        for index, step in enumerate(steps):
            step_path = (*path, index)
            step_id = step["id"]
            if step_id in self.steps:
                first = self.position(self.steps[step_id].path)
                self.error((*step_path, "id"), f"duplicate step id {step_id!r} (first used on line {first})")
            else:
                outputs = set(step["outputs"]) if isinstance(step.get("outputs"), dict) else None
                self.steps[step_id] = StepInfo(step, step_path, ancestors, outputs, len(self.steps), section, lanes,
                                               loops)
            inner_loops = (*loops, step_id) if "foreach" in step else loops
            for child_path, child_steps, lane in children(step, step_path):
                self.collect(child_steps, child_path, section, (*ancestors, step_id),
                             (*lanes, lane) if lane else lanes, inner_loops)

    def check_step(self, step: dict[str, Any], path: Path_, loop_vars: frozenset[str]) -> None:
        """Every expression a step holds: syntax, and each name it uses."""
        fields: list[tuple[str, Any]] = [(k, step.get(k)) for k in ("when", "assert", "until", "foreach")]
        fields += [(key, step[key]) for key in ("params", "outputs", "message", "notify", "approval") if key in step]
        for key, value in fields:
            if value is None or isinstance(value, bool):
                continue
            is_condition = key in ("when", "assert", "until", "foreach")
            self.check_value((*path, key), value, is_condition, step, loop_vars, key in RESULT_FIELDS,
                             key in BEFORE_BODY_FIELDS)
        for case_index, case in enumerate(step.get("branch") or []):
            if "when" in case and isinstance(case["when"], str):
                self.check_value((*path, "branch", case_index, "when"), case["when"], True, step, loop_vars,
                                 False, True)

    def check_value(self, where: Path_, value: Any, is_condition: bool, step: dict[str, Any],
                    loop_vars: frozenset[str], allow_result: bool, before_body: bool) -> None:
        try:
            refs = (expressions.references_in_expression(value) if is_condition and isinstance(value, str)
                    else expressions.references(value))
        except expressions.ExpressionError as exc:
            self.error(where, f"expression error: {exc}")
            return
        for ref in refs:
            self.check_reference(ref, where, step, loop_vars, allow_result, before_body)

    def check_reference(self, ref: expressions.Reference, where: Path_, step: dict[str, Any] | None,
                        loop_vars: frozenset[str], allow_result: bool, before_body: bool) -> None:
        """`step` is None outside any step (service, communication): every step is visible there."""
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
        known = ", ".join(sorted({"params", "alert", "steps", "incident", *loop_vars}))
        self.error(where, f"unknown name {root!r} in {ref.text!r} (known here: {known})")

    def check_step_reference(self, ref: expressions.Reference, where: Path_, step: dict[str, Any] | None,
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
        problem = self.order_problem(info, step, before_body) if step is not None else None
        if problem:
            self.error(where, f"{problem} (in {ref.text!r})")
            return
        if len(parts) > 1 and parts[1] not in STEP_RESULT_FIELDS:
            self.error(where, f"{ref.text!r}: a step has {', '.join(STEP_RESULT_FIELDS)}, not {parts[1]!r}")
            return
        if len(parts) > 2 and parts[1] == "output" and info.outputs is not None and parts[2] not in info.outputs:
            self.error(where, f"step {target!r} has no output {parts[2]!r} (its outputs: "
                              f"{', '.join(sorted(info.outputs))})")

    def order_problem(self, target: StepInfo, step: dict[str, Any], before_body: bool) -> str | None:
        """Why `step` cannot have the result of `target` when it reads it, or None."""
        name, here = target.step["id"], step["id"]
        if name == here:
            return f"step {name!r} refers to its own result before it has one; use 'result'"
        reader = self.steps.get(here)
        if reader is None:
            return None  # a duplicate id, already reported
        # `outputs` of a container may summarise its body (it is rendered afterwards); when/foreach may not.
        nested = here in target.ancestors
        if nested and before_body:
            return f"step {name!r} runs inside step {here!r}, so it has no result yet when {here!r} starts"
        if name in reader.ancestors:
            return f"step {here!r} runs inside step {name!r}, which has no result until its body is done"
        outside = next((loop for loop in target.loops if loop not in reader.ancestors), None)
        if outside is not None:
            return (f"step {name!r} runs once per item inside foreach step {outside!r}: outside the loop read "
                    f"steps.{outside}.output.iterations")
        for lane in reader.lanes:
            other = next((t for t in target.lanes if t.container == lane.container and t.index != lane.index), None)
            if other is None:
                continue
            if lane.kind == "parallel":
                return (f"step {name!r} runs in another branch of parallel step {lane.container!r}, at the same "
                        f"time as {here!r}")
            return (f"step {name!r} is in another case of branch step {lane.container!r}: it never runs in the "
                    f"same incident as {here!r}")
        if target.section != reader.section and target.section in SECTION_WHEN:
            return f"step {name!r} is in the {target.section} section, which runs only {SECTION_WHEN[target.section]}"
        if not nested and target.order > reader.order:
            line = self.position(target.path)
            return (f"step {name!r} (line {line}) comes after {here!r}: it has no result yet when "
                    f"{here!r} runs")
        return None
