"""`aws.cloudwatch_alarm`: a CloudWatch alarm's state (OK, ALARM, INSUFFICIENT_DATA), metric or composite."""

from __future__ import annotations

from typing import Any

from activities.aws.api import aws_action, call
from activities.aws.faults import NOT_FOUND
from activities.aws.schemas import aws_params
from activities.base import ActionInput
from activities.errors import ActionError


@aws_action(
    "aws.cloudwatch_alarm",
    iam_actions=("cloudwatch:DescribeAlarms",),
    params=aws_params({"alarm": {"type": "string", "minLength": 1, "maxLength": 255}}, ["alarm"]),
    description="A CloudWatch alarm's state, why it is in it, and since when.",
)
async def cloudwatch_alarm(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    found = await call(p, "cloudwatch", "describe_alarms", f"alarm {p['alarm']}", AlarmNames=[p["alarm"]],
                       AlarmTypes=["MetricAlarm", "CompositeAlarm"])
    alarms = [*found.get("MetricAlarms", []), *found.get("CompositeAlarms", [])]
    if not alarms:
        raise ActionError(f"CloudWatch alarm {p['alarm']} not found in {p['region']}", type=NOT_FOUND,
                          non_retryable=True)
    alarm = alarms[0]
    updated = alarm.get("StateUpdatedTimestamp")
    return {"alarm": alarm["AlarmName"], "state": alarm["StateValue"], "reason": alarm.get("StateReason", ""),
            "since": updated.isoformat() if updated else None, "ok": alarm["StateValue"] == "OK",
            "composite": "AlarmRule" in alarm}
