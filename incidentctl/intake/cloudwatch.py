"""A CloudWatch alarm state change (the JSON message SNS carries) as one alert in the Alertmanager shape.

One alarm is one alert: its fingerprint and incident group are the account, region and alarm name, so every
state change of the alarm reaches the same incident. ALARM is firing (startsAt: the state change time, so a
later ALARM is a re-fire), OK is resolved. INSUFFICIENT_DATA says nothing about the broken thing (the metric
stopped arriving: an instance stopped, an agent died), so it is not delivered: it is answered and kept with the
unrouted alerts, and the incident stays as it was. Alarms that must page on missing data set
TreatMissingData=breaching and go to ALARM instead.
"""

from __future__ import annotations

from typing import Any

from incidentctl.intake.cloud_labels import add_labels, parse_time, rfc3339
from incidentctl.intake.payloads import Delivery, PayloadError, decode_json, fingerprint

STATES = {"ALARM": "firing", "OK": "resolved"}
NOT_DELIVERED_STATE = "INSUFFICIENT_DATA"
SOURCE = "cloudwatch"


def _text(message: dict[str, Any], name: str, required: bool = True) -> str:
    value = message.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise PayloadError(f"the CloudWatch alarm message needs {name} as a non-empty string")
    return value


def _region_account(message: dict[str, Any], topic_arn: str) -> tuple[str, str]:
    """Region code and account from AlarmArn (arn:aws:cloudwatch:<region>:<account>:alarm:<name>); the
    message's `Region` is a display name ("US East (N. Virginia)"), so the topic's region is the fallback."""
    for arn in (message.get("AlarmArn"), topic_arn):
        parts = arn.split(":") if isinstance(arn, str) else []
        if len(parts) >= 6 and parts[0] == "arn" and parts[3]:
            account = message.get("AWSAccountId") if isinstance(message.get("AWSAccountId"), str) else parts[4]
            return parts[3], account or parts[4]
    raise PayloadError("the CloudWatch alarm message names no region (no AlarmArn, and the TopicArn is not an ARN)")


def _metric(trigger: Any) -> tuple[str, str, dict[str, Any]]:
    """Namespace, metric name and dimensions of the alarm's metric; empty for composite alarms (no Trigger) and
    metric math over several metrics (no one metric to name)."""
    if not isinstance(trigger, dict):
        return "", "", {}
    if trigger.get("MetricName"):
        metric = trigger
        dimensions = trigger.get("Dimensions")
    else:
        stats = [m["MetricStat"]["Metric"] for m in trigger.get("Metrics") or []
                 if isinstance(m, dict) and isinstance(m.get("MetricStat"), dict)
                 and isinstance(m["MetricStat"].get("Metric"), dict)]
        if len(stats) != 1:
            return "", "", {}
        metric = stats[0]
        dimensions = metric.get("Dimensions")
    named = {}
    for dimension in dimensions if isinstance(dimensions, list) else []:
        if isinstance(dimension, dict):
            # SNS writes {"value": ..., "name": ...}; the CloudWatch API's {"Name", "Value"} is taken as well.
            name, value = dimension.get("name", dimension.get("Name")), dimension.get("value", dimension.get("Value"))
            if isinstance(name, str) and name and value is not None:
                named[name] = value
    return str(metric.get("Namespace") or ""), str(metric.get("MetricName") or ""), named


def parse_alarm(text: str, topic_arn: str) -> Delivery:
    """The SNS `Message` of a CloudWatch alarm notification -> a Delivery of one alert (or none delivered)."""
    try:
        message = decode_json(text)  # the same limits as a body of ours (depth, lone surrogates)
    except PayloadError as exc:
        raise PayloadError(f"the SNS message is not a CloudWatch alarm (its Message: {exc})") from None
    if not isinstance(message, dict) or "AlarmName" not in message or "NewStateValue" not in message:
        raise PayloadError("the SNS message is not a CloudWatch alarm (no AlarmName and NewStateValue)")
    name, state = _text(message, "AlarmName"), _text(message, "NewStateValue")
    if state not in STATES and state != NOT_DELIVERED_STATE:
        raise PayloadError(f"NewStateValue {state!r} is not ALARM, OK or INSUFFICIENT_DATA")
    changed = rfc3339(parse_time(_text(message, "StateChangeTime"), "StateChangeTime"))
    region, account = _region_account(message, topic_arn)
    namespace, metric, dimensions = _metric(message.get("Trigger"))
    identity = {"alertname": name, "account": account, "region": region}
    labels = {**identity, "source": SOURCE}
    add_labels(labels, {"namespace": namespace or None, "metric": metric or None}, "cloudwatch_")
    add_labels(labels, dimensions, "dimension_")
    reason = _text(message, "NewStateReason", required=False)
    annotations = {key: value for key, value in {
        "summary": _text(message, "AlarmDescription", required=False) or reason,
        "description": reason,
        "alarm_arn": _text(message, "AlarmArn", required=False),
        "old_state": _text(message, "OldStateValue", required=False),
        "new_state": state,
    }.items() if value}
    status = STATES.get(state, state.lower())  # insufficient_data: only ever shown with the unrouted alerts
    alert = {
        "fingerprint": fingerprint(identity),
        "status": status,
        "labels": labels,
        "annotations": annotations,
        "startsAt": changed if status == "firing" else None,
        "endsAt": changed if status == "resolved" else None,
        "generatorURL": f"https://console.aws.amazon.com/cloudwatch/home?region={region}#alarmsV2:alarm/{name}",
    }
    delivery = Delivery(alerts=[], group_labels=identity, source=SOURCE)
    if state == NOT_DELIVERED_STATE:
        delivery.not_delivered.append((alert, "CloudWatch state INSUFFICIENT_DATA is neither firing nor resolved: "
                                              "not delivered, the incident stays as it was"))
    else:
        delivery.alerts.append(alert)
    return delivery
