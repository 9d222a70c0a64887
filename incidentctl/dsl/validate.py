"""JSON Schema validation of a runbook, with errors rewritten as sentences at YAML positions."""

from __future__ import annotations

import difflib
import functools
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError, best_match

from incidentctl.dsl.errors import RunbookError
from incidentctl.dsl.plan import STEP_KINDS
from incidentctl.dsl.resources import load_schema, schemas_dir
from incidentctl.dsl.source import Source
from incidentctl.dsl.types import TYPE_WORDS, describe_value

# How the schema marks a key of another step kind (see schemas/runbook.schema.json, $defs.step.dependentSchemas).
KIND_KEY_COMMENT = "kind-key:"

# Regexes mean little to a runbook author: say what the pattern allows instead.
_PATTERN_WORDS = {
    "^[a-z][a-z0-9_]*$": "use lowercase letters, digits and _, starting with a letter (ids appear in expressions "
                         "such as steps.<id>.output)",
    "^[a-z0-9][a-z0-9-]*$": "use lowercase letters, digits and -, starting with a letter or digit",
}


@functools.cache
def _validator(directory: Path) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(_inline_refs(load_schema("runbook.schema.json")))


# A step holds steps: those definitions stay references. The others are copied where they are used, because
# resolving a `$ref` is a good part of what jsonschema spends validating a runbook.
_RECURSIVE = ("step", "branch_case", "parallel_branch")


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    defs = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        name = ref.removeprefix("#/$defs/") if isinstance(ref, str) else ""
        # Only a reference with nothing beside it but a description: its meaning is exactly the definition's.
        if name in defs and name not in _RECURSIVE and set(node) <= {"$ref", "description"}:
            return walk(defs[name])
        return {key: walk(value) for key, value in node.items()}

    return walk(schema)


def _unknown_keys(error: ValidationError) -> list[tuple[list[str | int], str]]:
    """One error per unknown key, with a likely correction or else the keys that are allowed there."""
    path = list(error.absolute_path)
    allowed = sorted((error.schema.get("properties") or {}).keys())
    extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
    out = []
    for key in extra:
        close = difflib.get_close_matches(str(key), allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(allowed)})" if allowed else ""
        out.append(([*path, key], f"unknown key {key!r}{hint}"))
    return out


def _sentences(error: ValidationError) -> list[tuple[list[str | int], str]]:
    """Plain sentences for one schema error, each with the path it is about."""
    path = list(error.absolute_path)
    if error.validator == "additionalProperties":
        return _unknown_keys(error)
    if error.validator == "required" and isinstance(error.instance, dict):
        return [(path, f"missing required key {k!r}") for k in error.validator_value if k not in error.instance]
    return [_sentence(error)]


def _sentence(error: ValidationError) -> tuple[list[str | int], str]:
    """A plain sentence for one schema error, and the path it is about."""
    path = list(error.absolute_path)
    validator, expected, instance = error.validator, error.validator_value, error.instance
    if validator == "type":
        wanted = expected if isinstance(expected, list) else [expected]
        words = " or ".join(TYPE_WORDS.get(w, w) for w in wanted)
        return path, f"must be {words}, not {describe_value(instance)}"
    if validator == "enum":
        return path, f"must be one of {', '.join(map(str, expected))}, not {instance!r}"
    if validator == "pattern":
        words = _PATTERN_WORDS.get(expected, f"it must match {expected}")
        what = f"a valid {path[-1]}" if path and isinstance(path[-1], str) else "allowed here"
        return path, f"{instance!r} is not {what}: {words}"
    if validator == "minItems":
        return path, f"needs at least {expected} item(s)"
    if validator in ("minimum", "maximum", "exclusiveMinimum"):
        word = {"minimum": "at least", "maximum": "at most", "exclusiveMinimum": "more than"}[validator]
        return path, f"must be {word} {expected}, not {instance!r}"
    if validator == "anyOf" and error.schema.get("anyOf") and all(
        set(s) == {"required"} for s in error.schema["anyOf"]
    ):
        keys = [s["required"][0] for s in error.schema["anyOf"] if s["required"]]
        if set(keys) <= set(STEP_KINDS):
            return path, f"a step needs one kind key: {', '.join(STEP_KINDS)}"
        return path, f"needs one of {', '.join(keys)}"
    comment = str(error.schema.get("$comment", "")) if isinstance(error.schema, dict) else ""
    if validator == "not" and comment.startswith(KIND_KEY_COMMENT) and path:
        # A key another step kind takes (dependentSchemas of the kind key present).
        kind, key = comment.removeprefix(KIND_KEY_COMMENT), str(path[-1])
        if key in STEP_KINDS:
            found = " and ".join(k for k in STEP_KINDS if k in (kind, key))
            return path[:-1], f"a step has exactly one kind, found {found}: split it into separate steps"
        article = "an" if kind[0] in "aeiou" else "a"
        return path, f"{key!r} does not belong in {article} {kind} step"
    if validator == "oneOf" and str(error.schema.get("description", "")).startswith("Duration"):
        return path, f"{instance!r} is not a duration like '90s', '5m', '1h30m', '2d' or a number of seconds"
    if validator == "oneOf" and isinstance(instance, dict) and "default" in instance and "when" in instance:
        return path, "a branch case has either `when` + `steps` or `default`, not both"
    return path, error.message


def _leaves(error: ValidationError) -> ValidationError:
    """For oneOf/anyOf failures, the error of the alternative that came closest."""
    if error.validator in ("oneOf", "anyOf") and error.context:
        if str(error.schema.get("description", "")).startswith("Duration"):
            return error
        if error.validator == "anyOf" and all(set(s) == {"required"} for s in error.schema.get("anyOf", [])):
            return error
        return _leaves(best_match(error.context))
    if error.validator == "allOf" and error.context:
        return _leaves(best_match(error.context))
    return error


def explain(error: ValidationError) -> list[tuple[list[str | int], str, bool]]:
    """Sentences for one jsonschema error: (path, message, about_the_key) for each problem it holds."""
    leaf = _leaves(error)
    # "unknown key" and "does not belong" are about the key itself, so point at the key, not its value.
    at_key = leaf.validator in ("additionalProperties", "not")
    return [(path, message, at_key) for path, message in _sentences(leaf)]


def schema_errors(source: Source) -> list[RunbookError]:
    validator = _validator(schemas_dir())
    found: dict[tuple[str, str], RunbookError] = {}
    for raw in validator.iter_errors(source.data):
        for path, message, at_key in explain(raw):
            error = source.error(tuple(path), message, at_key=at_key)
            found.setdefault((error.json_path, message), error)
    return sorted(found.values(), key=lambda e: (e.line or 0, e.column or 0, e.json_path))
