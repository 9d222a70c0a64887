"""`incidentctl demo`: one incident end to end on the embedded Temporal server.

`--scenario kubernetes` (default): a simulated cluster where the last rollout crash-loops; the incident
diagnoses it, correlates the rollout, asks for approval, rolls back, verifies and closes.
`--scenario http`: a local web service that answers 503 until an approved restart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from temporalio.client import Client

from incidentctl import client as incidents
from incidentctl.connection import connect
from incidentctl.demo_service import DemoService
from incidentctl.devserver import DevServer
from incidentctl.k8ssim.process import crash_looping_pod, start_simulator
from incidentctl.library import load_plan
from incidentctl.output import incident_report, timeline_report
from incidentctl.people import people_file
from incidentctl.review import load_review
from incidentctl.review_markdown import review_markdown
from workflows.model import ApprovalDecision, Closure, ReviewEdit

DEMO_APPROVER = "demo-oncall"
K8S_APPROVER = "alice"
# The groups the shipped runbooks ask for, as config/people.yaml has them; the demo brings its own so that it
# runs the same from an installed wheel, where there is no config/ directory.
DEMO_GROUPS = {"sre": [K8S_APPROVER, "bob", "carol"], "sre-leads": ["dana"], "demo": [DEMO_APPROVER]}


@dataclass
class DemoIncident:
    runbook: str
    alert: dict[str, Any]
    params: dict[str, Any]
    approver: str


async def _http_incident(stack: contextlib.AsyncExitStack, workdir: Path) -> DemoIncident:
    service = DemoService()
    base_url = await service.start()
    stack.push_async_callback(service.stop)
    print(f"demo service     {base_url} (answers 503 until restarted)")
    alert = {"status": "firing", "labels": {"alertname": "ServiceHealthCheckFailing", "service": "checkout",
                                             "job": "demo", "severity": "critical"},
             "annotations": {"summary": "checkout health check failing"}}
    return DemoIncident("demo-http-service", alert, {"base_url": base_url}, DEMO_APPROVER)


async def _kubernetes_incident(stack: contextlib.AsyncExitStack, workdir: Path) -> DemoIncident:
    simulator = start_simulator(workdir / "k8s-sim", ["bad-rollout"], metrics_server=True)
    stack.callback(simulator.stop)
    os.environ["INCIDENTCTL_KUBECONFIG"] = str(simulator.kubeconfig)
    pod = crash_looping_pod(simulator.url, "shop", "app=cart")
    print(f"simulated k8s    {simulator.url}  shop/cart: revision 2 (shop/cart:1.4.3) rolled out 12 minutes ago; "
          f"pod {pod} is crash-looping")
    alert = {"status": "firing", "labels": {"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": pod,
                                             "container": "cart", "severity": "warning"},
             "annotations": {"summary": f"Pod shop/{pod} is in waiting state (reason: CrashLoopBackOff)."}}
    return DemoIncident("k8s-pod-crashlooping", alert, {"stable_for": "10s"}, K8S_APPROVER)


SCENARIOS = {"kubernetes": _kubernetes_incident, "http": _http_incident}


async def _run(server: DevServer, scenario: str, workdir: Path) -> str:
    from incidentctl.identity_policy import IdentityPolicy
    from incidentctl.plan_signing import plans_required_from_env
    from incidentctl.workers import build_worker

    client = await connect(server.address)
    if people_file() is None:
        # Installed from a wheel there is no config/: the demo's own worker reads the demo's people.
        people = workdir / "people.yaml"
        people.write_text(yaml.safe_dump({"groups": DEMO_GROUPS}))
        os.environ["INCIDENTCTL_PEOPLE"] = str(people)
    async with contextlib.AsyncExitStack() as stack:
        demo = await SCENARIOS[scenario](stack, workdir)
        plan = load_plan(demo.runbook)
        async with build_worker(client, identity=IdentityPolicy.for_dev(),
                                plans_required=plans_required_from_env(default=False)):
            started = await incidents.start_incident(client, plan, params=demo.params, alert=demo.alert,
                                                     started_by="alertmanager", groups=DEMO_GROUPS)
            print(f"incident started {started.incident_id}  (runbook {demo.runbook})\n")
            while True:
                state = await incidents.show_incident(client, started.incident_id)
                if state["pending_approvals"] or state.get("outcome"):
                    break
                await asyncio.sleep(0.2)
            for pending in state["pending_approvals"]:
                print(f"APPROVAL REQUESTED  step {pending['step']}: {pending['message']}")
                print(f"  the demo plays the on-call engineer: approving as {demo.approver}\n")
                await incidents.decide(client, started.incident_id,
                                       ApprovalDecision(approver=demo.approver, approve=True,
                                                        step=pending["step"], comment="approved in the demo"))
            state = await incidents.wait_for_runbook(client, started.incident_id)
            print("\n" + incident_report(state))
            if state["outcome"] != "succeeded":
                return str(state["outcome"])
            return await _review_and_close(client, started.incident_id, demo.approver)


async def _review_and_close(client: Client, incident: str, person: str) -> str:
    """What people do once the incident is resolved: the review (required for SEV1/SEV2), then close it."""
    state = await _until(lambda: incidents.show_incident(client, incident), lambda s: s["status"] == "resolved")
    changes = (state["steps"].get("changes") or {}).get("output") or {}
    cause = changes.get("summary") or "see the runbook's diagnosis"
    await incidents.update_review(client, incident, ReviewEdit(by=person, fields={
        "summary": f"{state['service'] or state['runbook']} recovered after the incident's runbook ran",
        "root_cause": cause, "what_went_well": ["the runbook found the change and proposed the fix"],
        "action_items": [{"text": "add a canary stage to this deployment", "owner": "sre"}], "completed": True}))
    print(f"\nREVIEW written by {person}; closing the incident")
    await incidents.close_incident(client, incident, Closure(by=person))
    result = await client.get_workflow_handle(incident).result()
    print("\nTimeline")
    print(timeline_report(await incidents.incident_timeline(client, incident)))
    review, _ = await load_review(client, incident)
    print("\n" + review_markdown(review))
    return str(result["status"])


async def _until(probe: Any, check: Any, timeout: float = 60.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if check(value) or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.2)


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
            status = asyncio.run(_run(server, args.scenario, Path(workdir)))
            print(f"\ndemo incident finished: {status}")
            if args.keep_running:
                print(f"server still running at {server.address} (UI {server.ui_url}); Ctrl-C to stop")
                try:
                    asyncio.run(asyncio.Event().wait())
                except KeyboardInterrupt:
                    pass
        finally:
            server.stop()
    return 0 if status == "closed" else 1
