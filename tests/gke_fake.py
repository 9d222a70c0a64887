"""Start the fake GKE API as a local process (stopped by PID), point the gke actions at it, and look at it."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from activities.base import ActionInput, get_action
from activities.catalog import load_all
from activities.gke.api import ENDPOINT_ENV
from incidentctl.dsl.plan import Changes
from incidentctl.gkesim.process import start_fake
from incidentctl.gkesim.seed import CLUSTER, LOCATION, PROJECT

WHERE = {"project": PROJECT, "location": LOCATION, "cluster": CLUSTER}


class FakeGke:
    def __init__(self, url: str) -> None:
        self.url = url

    def _json(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method="POST" if data else "GET",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def pool(self, name: str) -> dict[str, Any]:
        """The pool as the fake holds it (node_count per zone, version, status, autoscaling)."""
        return self._json(f"/_sim/pools/{PROJECT}/{LOCATION}/{CLUSTER}/{name}")

    def fault(self, code: int, status: str, match: str = "", method: str = "*", times: int = 1) -> None:
        self._json("/_sim/faults", {"code": code, "status": status, "match": match, "method": method,
                                    "times": times})

    def requests(self) -> list[dict[str, Any]]:
        return self._json("/_sim/requests")

    def calls(self, suffix: str) -> int:
        """How many POSTs ended with `suffix` (`:setSize`)."""
        return sum(1 for r in self.requests() if r["method"] == "POST" and r["path"].endswith(suffix))


@contextmanager
def start_gke(directory: Path, monkeypatch: Any, *, operation_s: float = 1.0) -> Iterator[FakeGke]:
    """The fake, with INCIDENTCTL_GKE_ENDPOINT pointing the actions (in-process worker included) at it."""
    running = start_fake(directory, operation_s=operation_s)
    try:
        monkeypatch.setenv(ENDPOINT_ENV, running.url)
        yield FakeGke(running.url)
    finally:
        running.stop()


async def run_gke(name: str, *, dry_run: bool = False, changes: Changes | None = None, **params: Any) -> Any:
    """Run a gke action's activity function directly (outside Temporal) against the fake."""
    load_all()
    return await get_action(name).activity(ActionInput(action=name, params={**WHERE, **params},
                                                       incident_id="test-incident", step_id="test-step",
                                                       dry_run=dry_run, changes=changes))
