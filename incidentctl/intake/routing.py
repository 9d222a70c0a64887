"""Which runbook handles an alert: each runbook's `trigger` (alertname + matchers), highest priority first."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from incidentctl.dsl.matchers import Matcher, parse_matcher
from incidentctl.dsl.plan import Plan

# Labels that always split incidents, whatever the grouping: one broken thing per cluster is its own incident.
DEFAULT_KEY_LABELS = ("cluster",)
DEFAULT_SEVERITY_MAP = {"critical": "SEV1", "page": "SEV1", "high": "SEV2", "error": "SEV2", "major": "SEV2",
                        "warning": "SEV3", "minor": "SEV3", "info": "SEV4", "none": "SEV4"}


@dataclass(frozen=True)
class Route:
    plan: Plan
    alertname: str | None  # None: any alertname, the matchers decide (senders that name alerts after their rules)
    matchers: tuple[Matcher, ...]
    priority: int
    group_by: tuple[str, ...]
    fixed_severity: str | None = None  # trigger.severity: SEV2
    severity_by_label: tuple[tuple[str, str], ...] = ()  # trigger.severity: {warning: SEV2}, keys lowercased
    target: str | bool | None = None  # trigger.target: a template, False for none, None to derive from labels

    @property
    def runbook(self) -> str:
        return self.plan.runbook.name

    def matches(self, labels: dict[str, str]) -> bool:
        named = self.alertname is None or labels.get("alertname") == self.alertname
        return named and all(m.matches(labels) for m in self.matchers)


class Router:
    def __init__(self, plans: list[Plan], severity_map: dict[str, str] | None = None,
                 key_labels: tuple[str, ...] = DEFAULT_KEY_LABELS) -> None:
        self.key_labels = key_labels
        # Every runbook loaded, by name (people may run one inside an incident: incident run, HTTP `runbooks`).
        self.plans = {plan.runbook.name: plan for plan in plans}
        routes = []
        for plan in plans:
            trigger = plan.trigger
            if not trigger:
                continue
            severity = trigger.get("severity")
            routes.append(Route(plan=plan, alertname=trigger.get("alertname"),
                                matchers=tuple(parse_matcher(m) for m in trigger.get("matchers") or []),
                                priority=int(trigger.get("priority", 0)),
                                group_by=tuple(trigger.get("group_by") or ()),
                                fixed_severity=str(severity) if isinstance(severity, str) and severity else None,
                                severity_by_label=tuple((str(k).lower(), str(v)) for k, v in severity.items())
                                if isinstance(severity, dict) else (),
                                target=trigger.get("target")))
        # Explicit priority first; the runbook name breaks ties so routing never depends on file order.
        self.routes = sorted(routes, key=lambda r: (-r.priority, r.runbook))
        self.severity_map = {k.lower(): v for k, v in (severity_map or DEFAULT_SEVERITY_MAP).items()}

    def route(self, labels: dict[str, str]) -> Route | None:
        return next((r for r in self.routes if r.matches(labels)), None)

    def severity(self, route: Route, labels: dict[str, str]) -> str:
        """The trigger's fixed severity; else the trigger's own map of the alert's severity label; else the
        receiver's map (INCIDENTCTL_SEVERITY_MAP or the default); else the runbook's default severity."""
        if route.fixed_severity:
            return route.fixed_severity
        label = labels.get("severity", "").lower()
        mapped = dict(route.severity_by_label).get(label) or self.severity_map.get(label)
        return mapped or route.plan.runbook.severity


def incident_key(route: Route, alert: dict[str, Any], group_labels: dict[str, str],
                 key_labels: tuple[str, ...] = DEFAULT_KEY_LABELS) -> str:
    """Readable and stable: the group's label values (or the fingerprint) plus a short hash of all of it.

    `key_labels` the alert carries are added to any grouping, so alerts of two clusters never share an incident
    (the fingerprint, used when there is no grouping, already covers every label).
    """
    labels = alert["labels"]
    group = {name: labels.get(name, "") for name in route.group_by} if route.group_by else dict(group_labels)
    if group:
        group.update({name: labels[name] for name in key_labels if name in labels and name not in group})
    if not group:
        return str(alert["fingerprint"])
    canonical = json.dumps({"runbook": route.runbook, "group": group}, sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:10]
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", "-".join(group[k] for k in sorted(group))).strip("-")[:60]
    return f"{readable}-{digest}" if readable else digest
