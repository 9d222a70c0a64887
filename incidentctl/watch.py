"""`incident watch`: an incident followed live, one line per thing that changed.

Each tick reads the status from the search attributes (the server's, no worker needed), the timeline (the
workflow's own, or the history's when no worker answers: incidentctl.incident_view) and the progress of running
steps from the workflow's pending activities (incidentctl.step_progress). New timeline entries are printed as
they come, a running step whenever its heartbeat details or attempt change, with the time since the incident
opened on every line. It ends when the workflow closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from incidentctl.client import ENDED, IncidentError
from incidentctl.incident_view import describe, read_timeline
from incidentctl.output import cell, elapsed, parse_time, progress_text
from incidentctl.step_progress import StepNames, running_steps
from workflows.model import STATUS_ATTR

if TYPE_CHECKING:
    from temporalio.client import Client

T = TypeVar("T")

class Follower:
    """What has been printed of one incident, so each tick prints only what is new."""

    def __init__(self, client: Client, incident: str, out: Callable[[str], None], query_timeout: timedelta) -> None:
        self.client, self.incident, self.out, self.query_timeout = client, incident, out, query_timeout
        self.opened_at: datetime | None = None
        self.status: str | None = None
        self.note: str | None = None
        self.seen: set[str] = set()
        self.source: str | None = None
        self.printed_until: datetime | None = None  # the newest entry printed
        self.progress: dict[str, tuple[Any, ...]] = {}
        self.names = StepNames()

    def _line(self, text: str, at: datetime | None = None) -> None:
        since = elapsed(((at or datetime.now(UTC)) - self.opened_at).total_seconds()) if self.opened_at else "-"
        self.out(f"[{since}] {text}")

    async def tick(self) -> bool:
        """Print what changed; False once the incident's workflow has closed."""
        description = await describe(self.client, self.incident)
        if self.opened_at is None:
            self.opened_at = description.start_time
        status = ENDED.get(description.status) or description.typed_search_attributes.get(STATUS_ATTR)
        view = await read_timeline(self.client, self.incident, self.query_timeout)
        if view.note != self.note:
            self.note = view.note
            if view.note:
                self._line(view.note)
        # The workflow's timeline and the history's tell the same story in other words: after a switch (a worker
        # came or went) only what is newer than the last line printed is new.
        cutoff = self.printed_until if self.source not in (None, view.source) else None
        self.source = view.source
        for entry in view.timeline:
            key = json.dumps(entry, sort_keys=True, default=str)
            if key in self.seen:
                continue
            self.seen.add(key)
            at = parse_time(entry.get("at"))
            if cutoff and at and at <= cutoff:
                continue
            if at:
                self.printed_until = max(self.printed_until or at, at)
            if entry.get("kind") in ("incident_started", "incident_opened") and at:
                self.opened_at = min(self.opened_at or at, at)
            step = f" {entry['step']}" if entry.get("step") else ""
            detail = f"  {cell(entry['detail'], 120)}" if entry.get("detail") else ""
            self._line(f"{entry.get('kind')}{step}{detail}", at)
        if status != self.status:
            self.status = status
            self._line(f"status {status}")
        now = datetime.now(UTC)
        current = await running_steps(self.client, description, self.names) if view.running else []
        for progress in current:
            fingerprint = (progress.state, progress.attempt, json.dumps(progress.details, default=str))
            if self.progress.get(progress.step) != fingerprint:
                self.progress[progress.step] = fingerprint
                self._line(progress_text(dataclasses.asdict(progress), now), now)
        self.progress = {p.step: self.progress[p.step] for p in current}
        if not view.running:
            self._line(f"incident {self.incident} ended: {status} (workflow {description.status.name.lower()})")
        return view.running


async def follow(client: Client, incident: str, out: Callable[[str], None], interval_s: float,
                 query_timeout: timedelta) -> None:
    """Print the incident's changes until its workflow closes (or the caller cancels this)."""
    follower = Follower(client, incident, out, query_timeout)
    while await follower.tick():
        await asyncio.sleep(interval_s)


async def narrate_while(client: Client, incident: str, waiting: Awaitable[T], out: Callable[[str], None],
                        interval_s: float, query_timeout: timedelta) -> T:
    """`start --wait`'s progress lines: what `watch` prints, while `waiting` runs, and once more when it is done
    (so the last steps are told before the result). A failed read is only a line, never the end of the wait."""
    follower = Follower(client, incident, out, query_timeout)

    async def tick() -> bool:
        try:
            return await follower.tick()
        except IncidentError as exc:
            out(f"(progress unavailable: {exc})")
            return True

    async def narrate() -> None:
        while await tick():
            await asyncio.sleep(interval_s)

    narrator = asyncio.create_task(narrate())
    try:
        return await waiting
    finally:
        narrator.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await narrator
        if not _stopping():  # after Ctrl-C, no last read: it may wait a whole query timeout for a dead worker
            await tick()


def _stopping() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
