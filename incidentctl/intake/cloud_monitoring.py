"""A Google Cloud Monitoring webhook notification (schema version 1.2) as one alert in the Alertmanager shape.

Cloud Monitoring opens one incident per alerting policy condition and time series (resource + metric labels),
and sends `state: open` when it opens and `state: closed` when it closes; the identity of that series is the
alert's fingerprint and group, so the open and the close (and a later re-open of the same series) reach one
incident of ours. Other states (none are documented for 1.2; older senders wrote `acknowledged`) are not
delivered: answered and kept with the unrouted alerts.
"""

from __future__ import annotations

from typing import Any

from incidentctl.intake.cloud_labels import add_labels, parse_time, rfc3339
from incidentctl.intake.payloads import Delivery, PayloadError, fingerprint

STATES = {"open": "firing", "closed": "resolved"}
SOURCE = "cloud-monitoring"


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{where} must be an object")
    return value


def parse_notification(body: Any) -> Delivery:
    """The webhook body -> a Delivery of one alert (or none delivered)."""
    if not isinstance(body, dict) or not isinstance(body.get("incident"), dict):
        raise PayloadError("not a Cloud Monitoring notification: no `incident` object")
    version = body.get("version")
    if not isinstance(version, str) or not version.startswith("1."):
        raise PayloadError(f"body.version: Cloud Monitoring schema version 1.x expected, not {version!r}")
    incident = body["incident"]
    policy, state = incident.get("policy_name"), incident.get("state")
    if not isinstance(policy, str) or not policy:
        raise PayloadError("body.incident.policy_name: needs the alerting policy's name")
    if not isinstance(state, str) or not state:
        raise PayloadError("body.incident.state: needs open or closed")
    resource = _mapping(incident.get("resource"), "body.incident.resource")
    metric = _mapping(incident.get("metric"), "body.incident.metric")
    project = incident.get("scoping_project_id") or _mapping(resource.get("labels"), "resource.labels").get(
        "project_id", "")
    identity: dict[str, str] = {"alertname": policy, "project": str(project)}
    add_labels(identity, {"condition": incident.get("condition_name"), "resource_type": resource.get("type"),
                          "metric": metric.get("type")}, "gcm_")
    add_labels(identity, _mapping(resource.get("labels"), "body.incident.resource.labels"), "resource_")
    add_labels(identity, _mapping(metric.get("labels"), "body.incident.metric.labels"), "metric_")
    labels = {**identity, "source": SOURCE}
    severity = incident.get("severity")
    if isinstance(severity, str) and severity and severity.lower() != "no severity":
        labels["severity"] = severity.lower()
    add_labels(labels, _mapping(incident.get("policy_user_labels"), "body.incident.policy_user_labels"), "user_")
    status = STATES.get(state.lower(), state.lower())
    started = incident.get("started_at")
    ended = incident.get("ended_at")
    documentation = _mapping(incident.get("documentation"), "body.incident.documentation")
    annotations = {key: str(value) for key, value in {
        "summary": incident.get("summary"),
        "description": documentation.get("content"),
        "incident_id": incident.get("incident_id"),
        "observed_value": incident.get("observed_value"),
        "threshold_value": incident.get("threshold_value"),
    }.items() if value not in (None, "")}
    alert = {
        "fingerprint": fingerprint(identity),
        "status": status,
        "labels": labels,
        "annotations": annotations,
        "startsAt": rfc3339(parse_time(started, "body.incident.started_at")) if started is not None else None,
        "endsAt": rfc3339(parse_time(ended, "body.incident.ended_at")) if ended and status == "resolved" else None,
        "generatorURL": incident.get("url") if isinstance(incident.get("url"), str) else None,
    }
    delivery = Delivery(alerts=[], group_labels=identity, source=SOURCE)
    if state.lower() in STATES:
        delivery.alerts.append(alert)
    else:
        delivery.not_delivered.append((alert, f"Cloud Monitoring state {state!r} is neither open nor closed: "
                                              "not delivered, the incident stays as it was"))
    return delivery
