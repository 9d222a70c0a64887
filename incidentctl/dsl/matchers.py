"""Alertmanager-style label matchers: `name="value"`, `name!="v"`, `name=~"re"`, `name!~"re"`.

Regexes are anchored as in Alertmanager (the whole label value must match) and use RE2, as Alertmanager does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from incidentctl.dsl.regex import RegexError, compile_regex

_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|([^"\s]*))\s*$')


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    value: str
    pattern: Any = None  # the compiled RE2 pattern of =~ and !~

    def matches(self, labels: dict[str, str]) -> bool:
        actual = labels.get(self.label, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self.pattern is not None
        found = self.pattern.fullmatch(actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f'{self.label}{self.op}"{self.value}"'


def parse_matcher(text: str) -> Matcher:
    """One matcher, or ValueError with a sentence saying what is wrong."""
    found = _MATCHER.match(text)
    if not found:
        raise ValueError(f"{text!r} is not a label matcher like 'namespace=\"prod\"', 'env!=\"dev\"', "
                         "'pod=~\"api-.*\"' or 'team!~\"test.*\"'")
    label, op, quoted, bare = found.groups()
    value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
    pattern = None
    if op in ("=~", "!~"):
        try:
            pattern = compile_regex(value)
        except RegexError as exc:
            raise ValueError(f"{text!r}: {exc}") from None
    return Matcher(label, op, value, pattern)
