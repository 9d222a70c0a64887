"""Which runbook handles an alert: each runbook's `trigger` (alertname + matchers), highest priority first."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from incidentctl.intake.matchers import Matcher, parse_matcher

DEFAULT_SEVERITY_MAP = {"critical": "SEV1", "page": "SEV1", "high": "SEV2", "error": "SEV2", "major": "SEV2",
                        "warning": "SEV3", "minor": "SEV3", "info": "SEV4", "none": "SEV4"}


@dataclass(frozen=True)
class Route:
    plan: dict[str, Any]
    alertname: str
    matchers: tuple[Matcher, ...]
    priority: int
    group_by: tuple[str, ...]

    @property
    def runbook(self) -> str:
        return str(self.plan["runbook"]["name"])

    def matches(self, labels: dict[str, str]) -> bool:
        return labels.get("alertname") == self.alertname and all(m.matches(labels) for m in self.matchers)


class Router:
    def __init__(self, plans: list[dict[str, Any]], severity_map: dict[str, str] | None = None) -> None:
        routes = []
        for plan in plans:
            trigger = plan.get("trigger")
            if not trigger:
                continue
            routes.append(Route(plan=plan, alertname=trigger["alertname"],
                                matchers=tuple(parse_matcher(m) for m in trigger.get("matchers") or []),
                                priority=int(trigger.get("priority", 0)),
                                group_by=tuple(trigger.get("group_by") or ())))
        # Explicit priority first; the runbook name breaks ties so routing never depends on file order.
        self.routes = sorted(routes, key=lambda r: (-r.priority, r.runbook))
        self.severity_map = {k.lower(): v for k, v in (severity_map or DEFAULT_SEVERITY_MAP).items()}

    def route(self, labels: dict[str, str]) -> Route | None:
        return next((r for r in self.routes if r.matches(labels)), None)

    def severity(self, route: Route, labels: dict[str, str]) -> str:
        fixed = (route.plan.get("trigger") or {}).get("severity")
        if fixed:
            return str(fixed)
        mapped = self.severity_map.get(labels.get("severity", "").lower())
        return mapped or str(route.plan["runbook"].get("severity") or "SEV3")


def incident_key(route: Route, alert: dict[str, Any], group_labels: dict[str, str]) -> str:
    """Readable and stable: the group's label values (or the fingerprint) plus a short hash of all of it."""
    if route.group_by:
        group = {name: alert["labels"].get(name, "") for name in route.group_by}
    else:
        group = group_labels
    if not group:
        return str(alert["fingerprint"])
    canonical = json.dumps({"runbook": route.runbook, "group": group}, sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:10]
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", "-".join(group[k] for k in sorted(group))).strip("-")[:60]
    return f"{readable}-{digest}" if readable else digest
