"""An incident's milestones (detected, opened, acknowledged, mitigated, resolved, closed) and the durations between.

Pure, over the incident's summary (docs/review.md). Incidents recorded before the engine kept `times` have none of
the lifecycle fields; for them the milestones their summary does imply are taken from it (and said so), so the
review and the report cover old incidents too. Durations are measured from the moment the incident opened,
except time to detect, which ends there; a missing milestone gives a missing duration, never zero.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

MILESTONES = ("detected_at", "opened_at", "acknowledged_at", "mitigating_at", "mitigated_at", "needs_attention_at",
              "monitoring_at", "resolved_at", "closed_at")

# duration name -> (from milestone, to milestone)
DURATIONS = {
    "time_to_detect_s": ("detected_at", "opened_at"),
    "time_to_acknowledge_s": ("opened_at", "acknowledged_at"),
    "time_to_mitigate_s": ("opened_at", "mitigated_at"),
    "time_to_resolve_s": ("opened_at", "resolved_at"),
    "time_to_close_s": ("opened_at", "closed_at"),
}

# Before the lifecycle, the workflow ended with the runbook, in one of these statuses.
LEGACY_FAILED = ("failed", "rolled_back")


def parse_time(value: Any) -> datetime | None:
    """An ISO-8601 time (Alertmanager's `Z` suffix included) as an aware datetime; None for anything else."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    # Alertmanager sends year 1 for "no time"; no incident is that old.
    return parsed if parsed.tzinfo is not None and parsed.year > 1970 else None


def incident_times(summary: dict[str, Any], detected_at: str | None = None) -> tuple[dict[str, str | None], list[str]]:
    """The milestones of an incident, and a sentence for each one that was inferred rather than recorded.

    `detected_at` is the earliest alert `startsAt` found in the history, used when the summary has none.
    """
    recorded = summary.get("times")
    times: dict[str, str | None] = {name: None for name in MILESTONES}
    if isinstance(recorded, dict):
        times.update({name: recorded.get(name) for name in MILESTONES})
    inferred: list[str] = []

    def infer(name: str, value: Any, why: str) -> None:
        if times[name] is None and value:
            times[name] = value
            inferred.append(f"{name}: {why}")

    roles = summary.get("roles") or {}
    resolution = summary.get("resolution") or {}
    infer("detected_at", detected_at, "the earliest startsAt of the incident's alerts, from its history")
    infer("opened_at", summary.get("started_at"), "when the workflow started")
    infer("acknowledged_at", roles.get("acknowledged_at"), "from the roles")
    infer("resolved_at", resolution.get("at"), "from the resolution")
    if not isinstance(recorded, dict):
        # The incident predates lifecycle times: its runbook started with it, and its end ended the incident.
        status, finished = summary.get("status"), summary.get("finished_at")
        legacy = "the incident predates lifecycle times"
        infer("mitigating_at", summary.get("started_at"), f"the runbook started with the incident ({legacy})")
        if status == "resolved":
            infer("mitigated_at", finished, f"the runbook succeeded when it ended ({legacy})")
            infer("resolved_at", finished, f"the runbook's end resolved it ({legacy})")
        if status in LEGACY_FAILED:
            infer("needs_attention_at", finished, f"the runbook {status.replace('_', ' ')} ({legacy})")
        infer("closed_at", finished, f"the workflow ended with the runbook ({legacy})")
    return times, inferred


def durations(times: dict[str, str | None]) -> dict[str, float | None]:
    """Seconds between milestones (DURATIONS), None where either end is missing."""
    return {name: seconds_between(times.get(start), times.get(end)) for name, (start, end) in DURATIONS.items()}


def seconds_between(start: Any, end: Any) -> float | None:
    began, ended = parse_time(start), parse_time(end)
    return round((ended - began).total_seconds(), 3) if began and ended else None


def approval_waits(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Each decided approval step: when it was asked (the step's start), when the vote that settled it came, and
    the wait between. Approvals that timed out or stood down have no decision and are left out."""
    votes: dict[str, list[dict[str, Any]]] = {}
    for vote in summary.get("approvals") or []:
        votes.setdefault(vote.get("step"), []).append(vote)
    waits = []
    for key, record in (summary.get("steps") or {}).items():
        decided_statuses = ("succeeded", "failed")
        if record.get("kind") != "approval" or not votes.get(key) or record.get("status") not in decided_statuses:
            continue
        decided = votes[key][-1].get("at")  # the vote after which the step went on is its last
        waits.append({"step": key, "requested_at": record.get("started_at"), "decided_at": decided,
                      "outcome": "approved" if record["status"] == "succeeded" else "rejected",
                      "wait_s": seconds_between(record.get("started_at"), decided)})
    return waits
