"""When a query "holds" for `prometheus.wait`: `any` sample, `none`, or every sample compared with a number.

`any`: at least one sample (PromQL filters such as `up == 1` return only what matches). `none`: no sample at
all (`increase(restarts[5m]) > 0` returning nothing). A comparison (`<= 0.01`, `== 0`, `> 2`): at least one
sample and every sample's value satisfies it, so a query that matches no series never passes for a recovery;
a NaN/Inf (null) or text value never satisfies one.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}
_COMPARISON = re.compile(r"^\s*(==|!=|<=|>=|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
CONDITION_PATTERN = r"^\s*(any|none|(==|!=|<=|>=|<|>)\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*$"


@dataclass(frozen=True)
class Condition:
    kind: str  # any | none | compare
    op: str | None = None
    threshold: float | None = None

    def holds(self, values: Sequence[float | str | None]) -> bool:
        if self.kind == "any":
            return bool(values)
        if self.kind == "none":
            return not values
        assert self.op is not None and self.threshold is not None
        compare, threshold = _OPERATORS[self.op], self.threshold
        return bool(values) and all(isinstance(v, float) and compare(v, threshold) for v in values)

    def describe(self) -> str:
        if self.kind == "any":
            return "at least one sample"
        if self.kind == "none":
            return "no sample"
        return f"every sample {self.op} {self.threshold:g}"


def parse_condition(text: str) -> Condition:
    """`any`, `none` or `<op> <number>`; ValueError with a sentence otherwise."""
    word = text.strip()
    if word in ("any", "none"):
        return Condition(word)
    match = _COMPARISON.match(text)
    if match is None:
        raise ValueError(f"condition {text!r} is not `any`, `none` or a comparison such as `<= 0.01` or `== 0`")
    return Condition("compare", match.group(1), float(match.group(2)))
