"""Resolving an incident's parameters before it starts: CLI strings, alert-derived defaults, types.

Done in the client, not the workflow, so a wrong or missing parameter is refused with a sentence before
anything durable exists.
"""

from __future__ import annotations

import json
from typing import Any

from incidentctl.dsl import expressions
from incidentctl.dsl.plan import Plan
from incidentctl.dsl.types import TYPE_WORDS, matches_type


class ParameterError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def parse_assignments(pairs: list[str]) -> dict[str, str]:
    """`["k=v", ...]` from the command line into a dict of raw strings."""
    values: dict[str, str] = {}
    problems = []
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            problems.append(f"--param {pair!r} is not NAME=VALUE")
            continue
        values[name.strip()] = value
    if problems:
        raise ParameterError(problems)
    return values


def _coerce(name: str, kind: str, value: Any) -> Any:
    """Convert a command-line string to the declared type; typed values must already match."""
    if isinstance(value, str) and kind != "string":
        text = value.strip()
        try:
            if kind == "integer":
                return int(text)
            if kind == "number":
                return float(text)
            if kind == "boolean":
                lowered = text.lower()
                if lowered in ("true", "yes", "1", "on"):
                    return True
                if lowered in ("false", "no", "0", "off"):
                    return False
                raise ValueError(text)
            if kind in ("array", "object"):
                return json.loads(text)
        except ValueError:
            raise ParameterError([f"parameter {name!r} must be {TYPE_WORDS[kind]}, got {value!r}"]) from None
    if not matches_type(value, kind):
        raise ParameterError([f"parameter {name!r} must be {TYPE_WORDS[kind]}, got {value!r}"])
    return value


def resolve_params(plan: Plan, given: dict[str, Any], alert: dict[str, Any] | None) -> dict[str, Any]:
    """Declared parameters filled from `given`, else from their (possibly alert-templated) defaults."""
    declared = plan.parameters
    problems = [f"unknown parameter {name!r} (declared: {', '.join(sorted(declared)) or 'none'})"
                for name in given if name not in declared]
    context = {"alert": alert or {}, "params": {}}
    resolved: dict[str, Any] = {}
    for name, spec in declared.items():
        kind = spec.type
        if name in given:
            value = given[name]
        elif spec.default is not None:
            try:
                value = expressions.render(spec.default, context)
            except expressions.ExpressionError as exc:
                problems.append(f"parameter {name!r}: default cannot be computed: {exc}")
                continue
            # An alert-derived default that found no label counts as absent.
            if value in (None, ""):
                value = None
        else:
            value = None
        if value is None:
            if spec.required:
                problems.append(f"missing required parameter {name!r}"
                                + (f" ({spec.description})" if spec.description else ""))
            continue
        try:
            value = _coerce(name, kind, value)
        except ParameterError as exc:
            problems.extend(exc.problems)
            continue
        if spec.enum and value not in spec.enum:
            problems.append(f"parameter {name!r} must be one of {spec.enum}, got {value!r}")
            continue
        resolved[name] = value
    if problems:
        raise ParameterError(problems)
    return resolved
