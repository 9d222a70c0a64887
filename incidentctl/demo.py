"""`incidentctl demo`: one incident end to end on the embedded Temporal server, with a broken service."""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
from pathlib import Path

from temporalio.client import Client

from incidentctl import client as incidents
from incidentctl.demo_service import DemoService
from incidentctl.devserver import DevServer
from incidentctl.dsl.catalog import load_plan
from incidentctl.output import incident_report, timeline_report
from workflows.model import ApprovalDecision

DEMO_RUNBOOK = "demo-http-service"
DEMO_APPROVER = "demo-oncall"


async def _run(server: DevServer) -> str:
    from worker import build_worker

    service = DemoService()
    base_url = await service.start()
    print(f"demo service     {base_url} (answers 503 until restarted)")
    client = await Client.connect(server.address)
    plan = load_plan(DEMO_RUNBOOK)
    alert = {"status": "firing", "labels": {"alertname": "ServiceHealthCheckFailing", "service": "checkout",
                                             "job": "demo", "severity": "critical"},
             "annotations": {"summary": "checkout health check failing"}}
    try:
        async with build_worker(client):
            started = await incidents.start_incident(client, plan, params={"base_url": base_url}, alert=alert,
                                                     started_by="alertmanager")
            print(f"incident started {started.incident_id}\n")
            while True:
                state = await incidents.show_incident(client, started.incident_id)
                if state["pending_approvals"] or state["status"] in ("resolved", "failed", "rolled_back"):
                    break
                await asyncio.sleep(0.2)
            for pending in state["pending_approvals"]:
                print(f"APPROVAL REQUESTED  step {pending['step']}: {pending['message']}")
                print(f"  the demo plays the on-call engineer: approving as {DEMO_APPROVER}\n")
                await incidents.decide(client, started.incident_id,
                                       ApprovalDecision(approver=DEMO_APPROVER, approve=True,
                                                        step=pending["step"], comment="restart approved in demo"))
            result = await client.get_workflow_handle(started.incident_id).result()
            state = await incidents.show_incident(client, started.incident_id)
            print("\n" + incident_report(state))
            print("\nTimeline")
            print(timeline_report(await incidents.incident_timeline(client, started.incident_id)))
            return str(result["status"])
    finally:
        await service.stop()


def run_demo(args: argparse.Namespace) -> int:
    # Stakeholder messages (notify.log) are the demo's "Slack channel": show them as they are sent.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("NOTIFY  %(message)s"))
    notify_logger = logging.getLogger("incidentctl.notify")
    notify_logger.addHandler(handler)
    notify_logger.setLevel(logging.INFO)
    with tempfile.TemporaryDirectory(prefix="incidentctl-demo-") as workdir:
        server = DevServer(db_file=str(Path(workdir) / "temporal.db"), log_file=Path(workdir) / "server.log")
        server.start()
        print(f"temporal server  {server.address}   web UI {server.ui_url}")
        try:
            status = asyncio.run(_run(server))
            print(f"\ndemo incident finished: {status}")
            if args.keep_running:
                print(f"server still running at {server.address} (UI {server.ui_url}); Ctrl-C to stop")
                try:
                    asyncio.run(asyncio.Event().wait())
                except KeyboardInterrupt:
                    pass
        finally:
            server.stop()
    return 0 if status == "resolved" else 1
