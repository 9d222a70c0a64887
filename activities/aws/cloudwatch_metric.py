"""`aws.cloudwatch_metric`: one statistic of a CloudWatch metric over a recent window, and its datapoints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from activities.aws.api import aws_action, call, duration_param
from activities.aws.metrics import STATISTICS, combine
from activities.aws.schemas import DURATION, aws_params
from activities.base import ActionInput
from activities.errors import ActionError

MAX_WINDOW_S = 24 * 3600.0
# GetMetricStatistics returns at most 1,440 datapoints per call.
MAX_DATAPOINTS = 1440


@aws_action(
    "aws.cloudwatch_metric",
    iam_actions=("cloudwatch:GetMetricStatistics",),
    params=aws_params({
        "namespace": {"type": "string", "minLength": 1, "description": "e.g. AWS/EC2"},
        "metric": {"type": "string", "minLength": 1, "description": "e.g. CPUUtilization"},
        "dimensions": {"type": "object", "additionalProperties": {"type": "string"}, "default": {},
                       "description": "dimension name -> value, e.g. {AutoScalingGroupName: web}"},
        "statistic": {"enum": list(STATISTICS), "default": "Average"},
        "window": {**DURATION, "default": "5m", "description": "how far back from now (at most 24h)"},
        "period": {"type": "integer", "minimum": 1, "default": 60, "description": "seconds per datapoint"},
    }, ["namespace", "metric"]),
    description="A CloudWatch metric's statistic (Average, Sum, Minimum, Maximum, SampleCount) over a window.",
)
async def cloudwatch_metric(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    window = duration_param(p, "window")
    if not 0 < window <= MAX_WINDOW_S or window / p["period"] > MAX_DATAPOINTS:
        raise ActionError(f"window {p['window']} must be within 24h and at most {MAX_DATAPOINTS} periods of "
                          f"{p['period']}s", type="InvalidParams", non_retryable=True)
    end = datetime.now(UTC)
    statistics = sorted({p["statistic"], "SampleCount"})
    found = await call(p, "cloudwatch", "get_metric_statistics", f"metric {p['namespace']}/{p['metric']}",
                       Namespace=p["namespace"], MetricName=p["metric"],
                       Dimensions=[{"Name": k, "Value": v} for k, v in sorted(p["dimensions"].items())],
                       StartTime=end - timedelta(seconds=window), EndTime=end, Period=p["period"],
                       Statistics=statistics)
    points = sorted(found.get("Datapoints", []), key=lambda d: d["Timestamp"])
    value = combine(p["statistic"], points)
    return {"metric": f"{p['namespace']}/{p['metric']}", "dimensions": p["dimensions"], "statistic": p["statistic"],
            "window_s": window, "value": value, "has_data": value is not None,
            "datapoints": [{"at": d["Timestamp"].isoformat(), "value": d.get(p["statistic"])} for d in points]}
