"""Durations in runbooks: `500ms`, `30s`, `5m`, `1h30m`, `2d`, `1w`, or a number of seconds."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
DURATION_PATTERN = r"^\s*(\d+(\.\d+)?(ms|s|m|h|d|w))+\s*$"


def parse_duration(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative ({value})")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"a duration must be text like '5m' or a number of seconds, not {type(value).__name__}")
    text = value.replace(" ", "")
    parts = _PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{value!r} is not a duration like '90s', '5m', '1h30m' or '2d'")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def format_duration(seconds: float) -> str:
    """3725 -> "1h2m5s"; rounded to whole seconds, "0s" for zero, a leading "-" when negative."""
    total = round(seconds)
    sign, total = ("-" if total < 0 else ""), abs(total)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, total = divmod(total, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return sign + ("".join(parts) or "0s")
