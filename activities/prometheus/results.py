"""Prometheus' query answers (`data` of /api/v1/query and /query_range) as step results runbooks can read.

Instant vector and scalar answers become `samples` (`labels`, `value`) with `value` the first sample's; range
answers become `series` (`labels`, `points` as [unix time, value]). Values are floats; NaN and ±Inf, which JSON
cannot carry, become null. Samples are sorted by their labels so the same answer reads the same in every history,
and bounded: results land in the workflow history.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# At most this many points in a range result, over all its series.
MAX_POINTS_REPORTED = 2000


class UnexpectedAnswer(ValueError):
    """`data` is not shaped as Prometheus' HTTP API documents."""


def number(text: Any) -> float | None:
    """A sample value as Prometheus sends it (a string, "NaN" and "+Inf" included); null when not finite."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise UnexpectedAnswer(f"sample value {text!r} is not a number") from None
    return value if math.isfinite(value) else None


def _labels(item: dict[str, Any]) -> dict[str, str]:
    labels = item.get("metric", {})
    if not isinstance(labels, dict):
        raise UnexpectedAnswer("a series' `metric` is not an object")
    return labels


def _sort_key(labels: dict[str, str]) -> list[tuple[str, str]]:
    return sorted(labels.items())


@dataclass(frozen=True)
class Instant:
    """An instant answer: every value (for conditions) and what is reported of it."""

    result_type: str
    values: list[float | str | None]
    reported: dict[str, Any]


def instant(data: dict[str, Any], limit: int) -> Instant:
    """An instant query's answer: vector or scalar (a string answer reads as one sample whose value is text)."""
    result_type, result = data.get("resultType"), data.get("result")
    if result_type == "vector" and isinstance(result, list):
        samples = sorted(({"labels": _labels(item), "value": number(item["value"][1])} for item in result),
                         key=lambda sample: _sort_key(sample["labels"]))
    elif result_type == "scalar" and isinstance(result, list):
        samples = [{"labels": {}, "value": number(result[1])}]
    elif result_type == "string" and isinstance(result, list):
        samples = [{"labels": {}, "value": str(result[1])}]
    elif result_type == "matrix":
        raise UnexpectedAnswer("the query returns a range vector (a selector with [duration]): "
                               "give `range` for a range query, or wrap it (rate, max_over_time, ...)")
    else:
        raise UnexpectedAnswer(f"unknown result type {result_type!r}")
    values = [sample["value"] for sample in samples]
    reported = {"result_type": result_type, "count": len(samples), "samples": samples[:limit],
                "truncated": len(samples) > limit, "value": values[0] if values else None}
    return Instant(result_type, values, reported)


def range_result(data: dict[str, Any], limit: int) -> dict[str, Any]:
    """A range query's answer (a matrix): at most `limit` series and MAX_POINTS_REPORTED points in all."""
    result_type, result = data.get("resultType"), data.get("result")
    if result_type != "matrix" or not isinstance(result, list):
        raise UnexpectedAnswer(f"a range query answered {result_type!r}, not a matrix")
    series = sorted(({"labels": _labels(item),
                      "points": [[float(t), number(v)] for t, v in item.get("values", [])]} for item in result),
                    key=lambda one: _sort_key(one["labels"]))
    reported, points = [], 0
    for one in series[:limit]:
        room = MAX_POINTS_REPORTED - points
        if room <= 0:
            break
        reported.append({**one, "points": one["points"][-room:]})  # the latest points say most about now
        points += len(reported[-1]["points"])
    truncated = len(reported) < len(series) or sum(len(s["points"]) for s in series[:len(reported)]) > points
    first = reported[0]["points"] if reported else []
    return {"result_type": result_type, "count": len(series), "series": reported, "truncated": truncated,
            "value": first[-1][1] if first else None}
