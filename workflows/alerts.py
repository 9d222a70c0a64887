"""The alerts bound to an incident: notifications counted per fingerprint, and the runbook's resolve policy.

Pure functions over IncidentState (time is passed in), tested without a server; the workflow's update handler
and the interpreter call them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from incidentctl.dsl.plan import AlertPolicy, Step
from workflows.model import AlertNotification
from workflows.state import IncidentState


def notification_problem(notification: AlertNotification) -> str | None:
    """Why a notification must be refused before it enters history, or None."""
    if not notification.alerts:
        return "a notification needs at least one alert"
    for alert in notification.alerts:
        if not isinstance(alert, dict) or not alert.get("fingerprint"):
            return "every alert needs a fingerprint"
        if alert.get("status", "firing") not in ("firing", "resolved"):
            return f"alert status must be firing or resolved, not {alert.get('status')!r}"
    return None


def record_notification(state: IncidentState, notification: AlertNotification, now: str,
                        policy: AlertPolicy) -> int:
    """Count a delivery: new alerts and changes of status are story events, repeats are only counted.

    Returns how many alerts were new to this incident.
    """
    state.notifications += 1
    new_alerts = 0
    joined = notification.joined
    if joined and not any(j.get("incident_key") == joined.get("incident_key") for j in state.joined):
        names = sorted({str(a.get("labels", {}).get("alertname", "?")) for a in notification.alerts})
        entry = {**joined, "alertnames": names, "at": now}
        state.joined.append(entry)
        state.event(now, "alerts_joined", detail=entry)
    for alert in notification.alerts:
        fingerprint, status = alert["fingerprint"], alert.get("status", "firing")
        starts_at = alert.get("startsAt")
        known = state.alerts.get(fingerprint)
        if known is None:
            new_alerts += 1
            state.alerts[fingerprint] = {"status": status, "labels": alert.get("labels", {}), "first_seen": now,
                                         "last_seen": now, "notifications": 1, "refired": 0, "starts_at": starts_at}
            if joined:
                state.alerts[fingerprint]["joined_from"] = joined.get("runbook")
            state.event(now, f"alert_{status}", detail={"fingerprint": fingerprint, "labels": alert.get("labels")})
            _detected(state, starts_at)
            continue
        known["notifications"] += 1
        known["last_seen"] = now
        if known["status"] == status:
            continue
        if status == "firing" and starts_at and starts_at == known.get("starts_at"):
            # The same firing, sent again after its resolve (a late or repeated notification): counted only.
            continue
        if status == "firing":
            known["refired"] += 1
            known["starts_at"] = starts_at or known.get("starts_at")
            state.refire_pending = state.refire_pending or state.status == "resolved"
        known["status"] = status
        state.event(now, f"alert_{status}", detail={"fingerprint": fingerprint, "repeat": known["notifications"]})
    if firing_count(state) == 0 and state.alerts and not state.resolved_handled:
        state.event(now, "alerts_all_resolved", detail={"policy": {"mode": policy.mode, "target": policy.target}})
    return new_alerts


def _detected(state: IncidentState, starts_at: Any) -> None:
    """Time to detect starts when the first alert started firing (Alertmanager's startsAt)."""
    if not isinstance(starts_at, str) or starts_at.startswith("0001-"):
        return  # Go's zero time: not set
    try:
        started = datetime.fromisoformat(starts_at.upper().replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return
    earliest = state.times.get("detected_at")
    if earliest is None or started < datetime.fromisoformat(earliest):
        state.times["detected_at"] = started.isoformat()


def firing_count(state: IncidentState) -> int:
    return sum(1 for a in state.alerts.values() if a["status"] == "firing")


def alerts_cleared(state: IncidentState, policy: AlertPolicy) -> bool:
    """All alerts resolved and the runbook wants that to change course (not yet applied)."""
    return not state.resolved_handled and state.alert_status() == "resolved" and policy.mode != "continue"


def apply_resolve_policy(state: IncidentState, policy: AlertPolicy, steps: list[Step], index: int, now: str
                         ) -> int | None:
    """Between top-level steps: where to go on once every alert resolved (None: the runbook is finished)."""
    if state.resolved_handled or state.alert_status() != "resolved" or policy.mode == "continue":
        return index
    state.resolved_handled = True
    if policy.mode == "finish":
        state.event(now, "runbook_finished_early", detail={"reason": "all alerts resolved"})
        return None
    target = next((i for i, s in enumerate(steps) if s.id == policy.target), index)
    if target > index:
        state.event(now, "step_goto", steps[target].id, {"target": policy.target, "reason": "alerts resolved"})
        return target
    return index


def receipt_counts(state: IncidentState) -> dict[str, Any]:
    firing = firing_count(state)
    return {"notifications": state.notifications, "firing": firing, "resolved": len(state.alerts) - firing}
