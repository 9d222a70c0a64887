"""What the Temporal UI shows of an incident before opening any JSON: the workflow's static summary (one line, in
the workflow list and header) and static details (Markdown: runbook, severity, service, who started it, the
steps by name). Set once when the incident starts, by the CLI and by the receiver alike; the status as it moves is
the workflow's current details (workflows/context.py)."""

from __future__ import annotations

from incidentctl.dsl.plan import Plan, walk_steps
from workflows.model import IncidentInput

# More steps than this are summed up: the details are a glance, the plan is one click away.
LISTED_STEPS = 30


def static_summary(plan: Plan, inp: IncidentInput) -> str:
    service = f" on {inp.service}" if inp.service else ""
    dry_run = " (dry run)" if inp.dry_run else ""
    return f"{inp.severity} incident: runbook {plan.runbook.name}{service}{dry_run}"


def static_details(plan: Plan, inp: IncidentInput) -> str:
    runbook = plan.runbook
    lines = [f"**Runbook** {runbook.name} v{runbook.version}" + (f": {runbook.description}" if runbook.description
                                                                  else ""),
             f"**Severity** {inp.severity}", f"**Service** {inp.service or '-'}",
             f"**Started by** {inp.started_by or '-'}"]
    if runbook.owner or runbook.team:
        lines.append(f"**Owner** {runbook.owner or '-'}, team {runbook.team or '-'}")
    labels = (inp.alert or {}).get("labels") or {}
    if labels:
        lines.append("**Alert** " + ", ".join(f"{k}={v}" for k, v in sorted(labels.items())))
    steps = list(walk_steps(plan.steps))
    listed = [f"- {step.id}: {step.action or step.kind}" + (" (mutates)" if step.mutates else "")
              for step in steps[:LISTED_STEPS]]
    if len(steps) > LISTED_STEPS:
        listed.append(f"- ... and {len(steps) - LISTED_STEPS} more")
    return "\n\n".join(lines) + "\n\n**Steps**\n\n" + "\n".join(listed)
