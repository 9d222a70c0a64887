"""A CloudWatch statistic over a window from the per-period datapoints AWS returns (pure).

GetMetricStatistics answers per period; a window spans several. Averages are combined weighted by each
period's sample count, so the result is the window's own average, not an average of averages.
"""

from __future__ import annotations

from typing import Any

STATISTICS = ("Average", "Sum", "Minimum", "Maximum", "SampleCount")


def combine(statistic: str, datapoints: list[dict[str, Any]]) -> float | None:
    """The statistic over all `datapoints` (each holding it and SampleCount); None when there are none."""
    points = [d for d in datapoints if statistic in d]
    if not points:
        return None
    if statistic == "Average":
        samples = sum(d.get("SampleCount", 0.0) for d in points)
        if samples <= 0:
            return sum(d["Average"] for d in points) / len(points)
        return sum(d["Average"] * d.get("SampleCount", 0.0) for d in points) / samples
    if statistic in ("Sum", "SampleCount"):
        return float(sum(d[statistic] for d in points))
    return float((min if statistic == "Minimum" else max)(d[statistic] for d in points))
