"""Alert storm: many Alertmanager notifications over a fixed set of groups, from concurrent clients.

Starts the embedded dev server, a worker and the receiver in this process, then POSTs `--notifications`
real-shaped Alertmanager payloads spread over `--groups` alert groups from `--clients` concurrent
clients. A 503 is retried as Alertmanager would. Prints accepted notifications/s, incidents created
(must equal the number of groups), p50/p99 from a group's first POST to its incident's first step
starting, and lost notifications (accepted by the receiver but not counted by an incident: must be 0).
Baseline, same run: the same number of notifications over other groups handed to the intake in-process
(no HTTP, auth or JSON), so the ratio shows what the HTTP receiver itself costs.

    .venv/bin/python bench/alert_storm.py [--notifications 10000] [--groups 100] [--clients 32] [--targets]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporalio.client import Client  # noqa: E402

from incidentctl import client as incidents  # noqa: E402
from incidentctl.devserver import DevServer  # noqa: E402
from incidentctl.identity import new_signing_key, signing_key_line  # noqa: E402
from incidentctl.intake.payloads import parse_alertmanager  # noqa: E402
from incidentctl.intake.runner import start_receiver  # noqa: E402
from incidentctl.intake.server import ReceiverAuth  # noqa: E402
from incidentctl.payload_codec import new_key  # noqa: E402
from incidentctl.workers import build_worker  # noqa: E402

# As a deployment runs: plans signed by whoever compiles them and checked by the worker (the default), and the
# starts the receiver makes signed with its identity key and checked by the worker (the default).
os.environ.setdefault("INCIDENTCTL_PLAN_KEYS", new_key("bench"))
_IDENTITY = new_signing_key("bench")
os.environ.setdefault("INCIDENTCTL_IDENTITY_SIGNING_KEY", signing_key_line(_IDENTITY))
os.environ.setdefault("INCIDENTCTL_IDENTITY_KEYS", _IDENTITY.public_line())

RUNBOOK = """
name: storm
version: 1
trigger: {alertname: StormAlert}
parameters:
  group: {type: string, required: true, default: "${{ alert.labels.group }}"}
steps:
  - id: triage
    action: util.echo
    params: {message: "group ${{ params.group }}"}
  - id: hold
    approval: {message: "hold the incident open during the storm", groups: [sre]}
"""


TARGETED = False  # --targets: every group is about a Deployment, so the receiver claims its target first


def payload(group: int, sequence: int) -> dict[str, Any]:
    labels = {"alertname": "StormAlert", "group": f"g{group:03d}", "instance": f"host-{group:03d}"}
    if TARGETED:
        labels.update(namespace="storm", deployment=f"app-{group:03d}")
    return {"version": "4", "status": "firing", "receiver": "incidentctl", "groupKey": f"storm:{group}",
            "groupLabels": {"group": labels["group"]}, "commonLabels": labels, "commonAnnotations": {},
            "externalURL": "http://alertmanager", "truncatedAlerts": 0,
            "alerts": [{"status": "firing", "labels": labels, "annotations": {"seq": str(sequence)},
                        "startsAt": "2026-11-23T08:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                        "generatorURL": "http://prometheus"}]}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def storm(args: argparse.Namespace, server: DevServer, workdir: Path) -> None:
    books = workdir / "runbooks"
    books.mkdir()
    (books / "storm.yaml").write_text(RUNBOOK)
    client = await Client.connect(server.address)
    first_post: dict[int, float] = {}
    incident_of: dict[int, str] = {}
    accepted = retried = 0
    queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
    for n in range(args.notifications):
        queue.put_nowait((n % args.groups, n))

    async with build_worker(client, task_queue="storm", max_concurrent_activities=200):
        receiver = await start_receiver(client, port=0, auth=ReceiverAuth(insecure=True), task_queue="storm",
                                        runbook_paths=[books])

        async def sender(session: aiohttp.ClientSession) -> None:
            nonlocal accepted, retried
            while not queue.empty():
                group, sequence = queue.get_nowait()
                first_post.setdefault(group, time.time())
                while True:
                    async with session.post(receiver.url + "/alertmanager", json=payload(group, sequence)) as r:
                        body = await r.json()
                        if r.status == 200:
                            accepted += 1
                            incident_of[group] = body["incidents"][0]["incident_id"]
                            break
                        retried += 1  # 503: not recorded; Alertmanager retries, so do we
                        await asyncio.sleep(0.2)

        began = time.perf_counter()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.clients)) as session:
            await asyncio.gather(*(sender(session) for _ in range(args.clients)))
        elapsed = time.perf_counter() - began

        # Baseline: the same deliveries without HTTP, on a fresh set of groups.
        direct: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
        for n in range(args.notifications):
            direct.put_nowait((args.groups + n % args.groups, n))

        async def direct_sender() -> None:
            while not direct.empty():
                group, sequence = direct.get_nowait()
                await receiver.intake.deliver(parse_alertmanager(payload(group, sequence)))

        began = time.perf_counter()
        await asyncio.gather(*(direct_sender() for _ in range(args.clients)))
        direct_elapsed = time.perf_counter() - began

        counted, latencies = 0, []
        for group, incident in incident_of.items():
            state = await incidents.show_incident(client, incident)
            counted += state["notifications"]
            timeline = await incidents.incident_timeline(client, incident)
            step_start = next(e["at"] for e in timeline if e["kind"] == "step_started")
            latencies.append((datetime.fromisoformat(step_start).timestamp() - first_post[group]) * 1000)
        created = len({i for i in incident_of.values()})
        runs = [e async for e in client.list_workflows("WorkflowType = 'IncidentWorkflow'")
                if int(e.id.rsplit("-g", 1)[-1].split("-")[0]) < args.groups]
        await receiver.stop()

    print(f"notifications sent {args.notifications} over {args.groups} groups from {args.clients} clients")
    print(f"accepted           {accepted} in {elapsed:.1f}s = {accepted / elapsed:.0f} notifications/s "
          f"({retried} answers were 503 and retried)")
    baseline = args.notifications / direct_elapsed
    print(f"baseline in-process delivery (no HTTP): {baseline:.0f} notifications/s; "
          f"receiver/baseline throughput x{accepted / elapsed / baseline:.2f}")
    print(f"incidents created  {created} (workflow runs: {len(runs)}; expected {args.groups})")
    print(f"first POST -> first step started: p50 {statistics.median(latencies):.0f} ms, "
          f"p99 {pct(latencies, 0.99):.0f} ms")
    print(f"lost notifications {accepted - counted} (accepted {accepted}, counted by incidents {counted})")
    print(json.dumps({"accepted_per_s": round(accepted / elapsed, 1),
                      "baseline_per_s": round(baseline, 1), "incidents": created, "runs": len(runs),
                      "p50_ms": round(statistics.median(latencies)), "p99_ms": round(pct(latencies, 0.99)),
                      "lost": accepted - counted}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notifications", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--targets", action="store_true",
                        help="alerts name a Deployment: each group's first notification claims its target")
    args = parser.parse_args()
    global TARGETED
    TARGETED = args.targets
    with tempfile.TemporaryDirectory() as workdir:
        server = DevServer(headless=True, log_file=Path(workdir) / "server.log")
        server.start()
        try:
            asyncio.run(storm(args, server, Path(workdir)))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
