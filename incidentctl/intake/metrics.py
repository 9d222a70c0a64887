"""Prometheus text-format counters for the receiver (no client library needed for a handful of series)."""

from __future__ import annotations

from collections import defaultdict

_HELP = {
    "incidentctl_notifications_total": "Notifications (POST bodies) accepted, by endpoint.",
    "incidentctl_alerts_total": "Alerts received, by status.",
    "incidentctl_alerts_rejected_total": "Alerts of accepted notifications refused as malformed (listed as unrouted).",
    "incidentctl_connections_refused_total": "Connections answered 503 at once because the connection cap was reached.",
    "incidentctl_alerts_unrouted_total": "Alerts no runbook trigger matched (or whose parameters were refused).",
    "incidentctl_incidents_started_total": "Incidents started by the receiver (re-fires included).",
    "incidentctl_deliveries_total": "Notifications delivered to incidents, by result.",
    "incidentctl_requests_rejected_total": "Requests refused with a 4xx or 503, by reason.",
    "incidentctl_sns_messages_total": "SNS messages from an allowed topic whose signature verified, by type.",
    "incidentctl_request_seconds_sum": "Total time spent answering alert POSTs.",
    "incidentctl_request_seconds_count": "Alert POSTs answered.",
}


class Metrics:
    def __init__(self) -> None:
        self._values: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(lambda: defaultdict(float))

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        self._values[name][tuple(sorted(labels.items()))] += amount

    def get(self, name: str, **labels: str) -> float:
        return self._values[name][tuple(sorted(labels.items()))]

    def render(self) -> str:
        lines = []
        for name, help_text in _HELP.items():
            kind = "counter" if name.endswith("_total") else "gauge"
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
            series = self._values.get(name) or {(): 0.0}
            for labels, value in sorted(series.items()):
                rendered = ",".join(f'{k}="{v}"' for k, v in labels)
                lines.append(f"{name}{{{rendered}}} {value:g}" if rendered else f"{name} {value:g}")
        return "\n".join(lines) + "\n"
