"""The value types a runbook names (parameter types, schema types) and how to say them in a sentence."""

from __future__ import annotations

from typing import Any

TYPE_WORDS = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
              "array": "a list", "object": "a mapping", "null": "null"}
_PY_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "integer": (int,), "number": (int, float),
                                          "boolean": (bool,), "array": (list,), "object": (dict,),
                                          "null": (type(None),)}


def matches_type(value: Any, kind: str) -> bool:
    """JSON Schema's reading of a type name: true and false are not numbers."""
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _PY_TYPES.get(kind, (object,)))


def describe_value(value: Any) -> str:
    """`a string`, `an integer`, ... for the type a value has."""
    if isinstance(value, bool):
        return "a boolean"
    kind = next((k for k in ("string", "integer", "number", "array", "object", "null") if matches_type(value, k)),
                None)
    return TYPE_WORDS[kind] if kind else type(value).__name__
