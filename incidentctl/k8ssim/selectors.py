"""Label and field selectors as the Kubernetes API reads them: parsing, canonical strings and matching.

Semantics follow the API server rather than intuition: `!=` and `notin` also match objects that lack the
key, and a field the object does not have compares as the empty string (`spec.nodeName=` finds unscheduled
pods). Set-based string operators beyond `in`/`notin` (`>`/`<`) are not supported.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_NAME = re.compile(r"[A-Za-z0-9]([-_.A-Za-z0-9]*[A-Za-z0-9])?")
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"{_DNS_LABEL}(\.{_DNS_LABEL})*")
_PUNCTUATION = ("!", "=", "==", "!=", ",", "(", ")")
_SPEC_OPERATORS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
_FIELD_TERM = re.compile(r"([^=!]*)(==|!=|=)(.*)", re.DOTALL)
_FIELD_PATH = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")


class SelectorError(ValueError):
    """A selector that cannot be parsed or validated; the message is one sentence naming the bad part."""


@dataclass(frozen=True)
class Requirement:
    """One label requirement; `operator` is "=", "!=", "in", "notin", "exists" or "!" (does not exist)."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator == "=":
            return present and value == self.values[0]
        if self.operator == "!=":
            return not present or value != self.values[0]
        if self.operator == "in":
            return present and value in self.values
        if self.operator == "notin":
            return not present or value not in self.values
        if self.operator == "exists":
            return present
        return not present

    def __str__(self) -> str:
        if self.operator == "exists":
            return self.key
        if self.operator == "!":
            return f"!{self.key}"
        if self.operator in ("in", "notin"):
            return f"{self.key} {self.operator} ({','.join(self.values)})"
        return f"{self.key}{self.operator}{self.values[0]}"


@dataclass(frozen=True)
class LabelSelector:
    """All requirements must hold. `matches_nothing` is the selector of a missing (null) object-form selector."""

    requirements: tuple[Requirement, ...] = ()
    matches_nothing: bool = False

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.matches_nothing:
            return False
        present = labels or {}
        return all(requirement.matches(present) for requirement in self.requirements)

    @property
    def empty(self) -> bool:
        """True when the selector matches everything."""
        return not self.matches_nothing and not self.requirements

    def __str__(self) -> str:
        return ",".join(str(requirement) for requirement in self.requirements)


def _selector(requirements: list[Requirement]) -> LabelSelector:
    # Sorted by key (stable) like the API server, so equal selectors print, and compare, the same.
    return LabelSelector(tuple(sorted(requirements, key=lambda requirement: requirement.key)))


def _key_problem(key: Any) -> str | None:
    if not isinstance(key, str):
        return f"key {json.dumps(key)} is not a string"
    prefix, slash, name = key.rpartition("/")
    if slash and (len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        return f'key "{key}" is not a valid label key: the part before "/" must be a lowercase DNS subdomain'
    if len(name) > 63 or not _NAME.fullmatch(name):
        return (f'key "{key}" is not a valid label key: the name must be 1-63 characters of [-_.A-Za-z0-9], '
                "starting and ending with a letter or digit")
    return None


def _value_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"value {json.dumps(value)} is not a string"
    if value and (len(value) > 63 or not _NAME.fullmatch(value)):
        return (f'value "{value}" is not a valid label value: it must be at most 63 characters of [-_.A-Za-z0-9], '
                "starting and ending with a letter or digit")
    return None


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
        elif text.startswith(("==", "!="), i):
            tokens.append(text[i:i + 2])
            i += 2
        elif text[i] in "!=,()":
            tokens.append(text[i])
            i += 1
        else:
            end = i
            while end < len(text) and not text[end].isspace() and text[end] not in "!=,()":
                end += 1
            tokens.append(text[i:end])
            i = end
    return tokens


class _LabelParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.position = 0

    def error(self, reason: str) -> SelectorError:
        return SelectorError(f'invalid label selector "{self.text}": {reason}')

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> str | None:
        token = self.peek()
        self.position += 1
        return token

    def identifier(self, wanted: str) -> str:
        token = self.take()
        if token is None or token in _PUNCTUATION:
            found = "the end" if token is None else f'"{token}"'
            raise self.error(f"expected {wanted}, found {found}")
        return token

    def key(self, wanted: str) -> str:
        key = self.identifier(wanted)
        problem = _key_problem(key)
        if problem:
            raise self.error(problem)
        return key

    def value(self, wanted: str) -> str:
        value = self.identifier(wanted)
        problem = _value_problem(value)
        if problem:
            raise self.error(problem)
        return value

    def parse(self) -> LabelSelector:
        requirements = [self.requirement()]
        while (token := self.take()) is not None:
            if token != ",":
                raise self.error(f'expected "," between requirements, found "{token}"')
            requirements.append(self.requirement())
        return _selector(requirements)

    def requirement(self) -> Requirement:
        if self.peek() == "!":
            self.take()
            return Requirement(self.key('a label key after "!"'), "!")
        key = self.key("a label key")
        if self.peek() in (None, ","):
            return Requirement(key, "exists")
        operator = self.take()
        if operator in ("=", "==", "!="):
            # `k=` is legal and means "k is set to the empty string".
            value = "" if self.peek() in (None, ",") else self.value(f'a value after "{operator}"')
            return Requirement(key, "!=" if operator == "!=" else "=", (value,))
        if operator in ("in", "notin"):
            if self.take() != "(":
                raise self.error(f'expected "(" after "{operator}"')
            values = {self.value(f'a value in the "{operator}" list')}
            while (token := self.take()) != ")":
                if token != ",":
                    found = "the end" if token is None else f'"{token}"'
                    raise self.error(f'expected "," or ")" in the "{operator}" list, found {found}')
                values.add(self.value(f'a value in the "{operator}" list'))
            return Requirement(key, operator, tuple(sorted(values)))
        raise self.error(f'expected an operator (=, ==, !=, in, notin), "," or the end after "{key}", '
                         f'found "{operator}"')


def parse_label_selector(text: str) -> LabelSelector:
    """The query-string form (`app=cart,tier in (web,api),!canary`); blank matches everything."""
    if not text.strip():
        return LabelSelector()
    return _LabelParser(text).parse()


def label_selector_from_spec(spec: Mapping[str, Any] | None) -> LabelSelector:
    """The object form from workload specs; `{}` matches everything and None (no selector) matches nothing."""
    if spec is None:
        return LabelSelector(matches_nothing=True)
    if not isinstance(spec, Mapping):
        raise SelectorError("invalid label selector: expected an object with matchLabels and/or matchExpressions")
    unknown = sorted(set(spec) - {"matchLabels", "matchExpressions"})
    if unknown:
        raise SelectorError(f'invalid label selector: unknown field "{unknown[0]}" '
                            "(expected matchLabels and/or matchExpressions)")
    requirements: list[Requirement] = []
    for key, value in (spec.get("matchLabels") or {}).items():
        problem = _key_problem(key) or _value_problem(value)
        if problem:
            raise SelectorError(f"invalid label selector: {problem}")
        requirements.append(Requirement(key, "=", (value,)))
    for expression in spec.get("matchExpressions") or []:
        requirements.append(_requirement_from_expression(expression))
    return _selector(requirements)


def _requirement_from_expression(expression: Any) -> Requirement:
    if not isinstance(expression, Mapping):
        raise SelectorError("invalid label selector: each matchExpressions entry must be an object")
    key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
    problem = _key_problem(key)
    if problem:
        raise SelectorError(f"invalid label selector: {problem}")
    mapped = _SPEC_OPERATORS.get(operator) if isinstance(operator, str) else None
    if mapped is None:
        raise SelectorError(f"invalid label selector: operator {json.dumps(operator)} for key \"{key}\" "
                            "is not one of In, NotIn, Exists, DoesNotExist")
    if not isinstance(values, list):
        raise SelectorError(f'invalid label selector: values for key "{key}" must be a list')
    if mapped in ("in", "notin") and not values:
        raise SelectorError(f'invalid label selector: operator {operator} for key "{key}" needs at least one value')
    if mapped in ("exists", "!") and values:
        raise SelectorError(f'invalid label selector: operator {operator} for key "{key}" takes no values')
    for value in values:
        problem = _value_problem(value)
        if problem:
            raise SelectorError(f"invalid label selector: {problem}")
    return Requirement(key, mapped, tuple(sorted(set(values))))


def label_selector_to_string(spec: Mapping[str, Any] | None) -> str:
    """The string form of an object-form selector, as in `status.selector` (`app=cart,tier in (web)`).

    A null selector matches nothing but has no string form; it prints as "" like the API server's.
    """
    return str(label_selector_from_spec(spec))


@dataclass(frozen=True)
class FieldRequirement:
    """`path` is dotted into the object; `operator` is "=" or "!="."""

    path: str
    operator: str
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return (_field_value(obj, self.path) == self.value) == (self.operator == "=")

    def __str__(self) -> str:
        return f"{self.path}{self.operator}{self.value}"


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all(requirement.matches(obj) for requirement in self.requirements)

    @property
    def paths(self) -> frozenset[str]:
        """The fields used, so a caller can refuse fields its resource does not support, as the API server does."""
        return frozenset(requirement.path for requirement in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(requirement) for requirement in self.requirements)


def _field_value(obj: Mapping[str, Any], path: str) -> str:
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return ""
        current = current[part]
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    if isinstance(current, str):
        return current
    if isinstance(current, dict | list):
        return json.dumps(current, separators=(",", ":"), sort_keys=True)
    return str(current)


def parse_field_selector(text: str) -> FieldSelector:
    """`path=value`, `path==value`, `path!=value`, comma-separated; blank matches everything.

    Empty terms (a trailing comma) are skipped as the API server does; backslash escapes are not supported.
    """
    requirements: list[FieldRequirement] = []
    for term in text.split(","):
        if not term.strip():
            continue
        match = _FIELD_TERM.fullmatch(term)
        if match is None:
            raise SelectorError(f'invalid field selector "{text}": "{term.strip()}" is not '
                                "PATH=VALUE, PATH==VALUE or PATH!=VALUE")
        path, operator, value = match.group(1).strip(), match.group(2), match.group(3).strip()
        if not _FIELD_PATH.fullmatch(path):
            raise SelectorError(f'invalid field selector "{text}": "{path}" is not a dotted field path '
                                "like metadata.name")
        requirements.append(FieldRequirement(path, "!=" if operator == "!=" else "=", value))
    return FieldSelector(tuple(requirements))
