"""Alert intake over real HTTP against the real dev server: dedup, resolve, re-fire, routing, auth, bad input."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from incidentctl import client as incidents
from incidentctl.devserver import DevServer
from incidentctl.intake.runner import RunningReceiver, start_receiver
from incidentctl.intake.server import ReceiverAuth
from tests.conftest import TEST_TASK_QUEUE, eventually

TOKEN = "s3cret-token"
HMAC_SECRET = "hmac-key"

CRASHLOOP = """
name: rx-crashloop
version: 1
severity: SEV3
service: "${{ params.namespace }}/${{ params.pod }}"
trigger:
  alertname: KubePodCrashLooping
  matchers: ['namespace=~"prod-.*"']
  priority: 10
parameters:
  namespace: {type: string, required: true, default: "${{ alert.labels.namespace }}"}
  pod: {type: string, default: "${{ alert.labels.pod }}"}
on_alert_resolved: {goto: verify}
steps:
  - id: diagnose
    action: util.echo
    params: {message: "pod ${{ params.pod }} in ${{ params.namespace }}"}
  - id: gate
    approval: {message: "restart ${{ params.pod }}?", approvers: [alice]}
  - id: fix
    action: util.echo
    params: {message: fixing}
  - id: verify
    action: util.echo
    params: {message: "alerts are ${{ incident.alert_status }}, re-fires ${{ incident.refires }}"}
"""

CATCH_ALL = """
name: rx-catch-all
version: 1
trigger: {alertname: KubePodCrashLooping, severity: SEV4}
parameters:
  namespace: {type: string, required: true, default: "${{ alert.labels.namespace }}"}
steps:
  - id: gate
    approval: {message: "look at ${{ params.namespace }}?"}
"""


@pytest.fixture(scope="module")
async def receiver(client: Client, worker: Worker, tmp_path_factory: pytest.TempPathFactory
                   ) -> AsyncIterator[RunningReceiver]:
    books = tmp_path_factory.mktemp("runbooks")
    (books / "crashloop.yaml").write_text(CRASHLOOP)
    (books / "catch-all.yaml").write_text(CATCH_ALL)
    running = await start_receiver(client, port=0, auth=ReceiverAuth(token=TOKEN, hmac_secret=HMAC_SECRET),
                                   task_queue=TEST_TASK_QUEUE, runbook_paths=[books])
    yield running
    await running.stop()


def alertmanager(status: str, alerts: list[dict[str, Any]], group: dict[str, str]) -> dict[str, Any]:
    """A real-shaped Alertmanager v4 notification."""
    return {
        "version": "4", "groupKey": "{}:" + json.dumps(group, sort_keys=True), "truncatedAlerts": 0,
        "status": status, "receiver": "incidentctl", "groupLabels": group,
        "commonLabels": {"alertname": "KubePodCrashLooping", **group}, "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [{"status": a.get("status", status), "labels": a["labels"],
                    "annotations": {"summary": "Pod is crash looping."}, "startsAt": "2026-11-23T08:00:00Z",
                    "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus:9090/graph",
                    **({"fingerprint": a["fingerprint"]} if "fingerprint" in a else {})} for a in alerts],
    }


def crash_alert(namespace: str, pod: str, severity: str = "critical") -> dict[str, Any]:
    return {"labels": {"alertname": "KubePodCrashLooping", "namespace": namespace, "pod": pod,
                       "severity": severity}}


async def post(receiver: RunningReceiver, path: str, body: Any, *, headers: dict[str, str] | None = None,
               raw: bytes | None = None) -> tuple[int, Any]:
    sent_headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json", **(headers or {})}
    data = raw if raw is not None else json.dumps(body).encode()
    async with aiohttp.ClientSession() as session:
        async with session.post(receiver.url + path, data=data, headers=sent_headers) as response:
            text = await response.text()
            try:
                return response.status, json.loads(text)
            except json.JSONDecodeError:
                return response.status, text


async def test_concurrent_identical_notifications_make_one_incident(
    receiver: RunningReceiver, client: Client, unique: str
) -> None:
    body = alertmanager("firing", [crash_alert(f"prod-{unique}", "api-0")], {"namespace": f"prod-{unique}"})
    answers = await asyncio.gather(*(post(receiver, "/alertmanager", body) for _ in range(50)))
    assert [status for status, _ in answers] == [200] * 50
    ids = {payload["incidents"][0]["incident_id"] for _, payload in answers}
    assert len(ids) == 1
    incident = ids.pop()
    assert sum(p["incidents"][0]["result"] == "started" for _, p in answers) == 1
    state = await eventually(lambda: incidents.show_incident(client, incident),
                             lambda s: s["status"] == "waiting_approval")
    assert state["notifications"] == 50
    assert (state["severity"], state["service"], state["params"]["pod"]) == ("SEV1", f"prod-{unique}/api-0", "api-0")
    alert = next(iter(state["alerts"].values()))
    assert alert["notifications"] == 50 and alert["status"] == "firing"
    runs = [e async for e in client.list_workflows(f"WorkflowId = '{incident}'")]
    assert len(runs) == 1
    timeline = await incidents.incident_timeline(client, incident)
    assert sum(e["kind"] == "alert_firing" for e in timeline) == 1, "repeats are counted, not added to the story"
    await incidents.cancel_incident(client, incident)


async def test_resolve_skips_to_verification_and_refire_starts_a_linked_incident(
    receiver: RunningReceiver, client: Client, unique: str
) -> None:
    group = {"namespace": f"prod-{unique}"}
    alert = crash_alert(f"prod-{unique}", "db-0")
    status, first = await post(receiver, "/alertmanager", alertmanager("firing", [alert], group))
    incident = first["incidents"][0]["incident_id"]
    await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["status"] == "waiting_approval")

    status, resolved = await post(receiver, "/alertmanager", alertmanager("resolved", [alert], group))
    assert status == 200 and resolved["incidents"][0]["result"] == "updated"
    assert resolved["incidents"][0]["firing"] == 0
    # Nobody needs to approve a restart any more: the waiting approval stands down by itself.
    summary = await client.get_workflow_handle(incident).result()
    assert summary["status"] == "resolved" and summary["alert_status"] == "resolved"
    assert summary["steps"]["gate"]["status"] == "superseded"
    assert "fix" not in summary["steps"], "on_alert_resolved jumped over the remediation"
    assert summary["steps"]["verify"]["output"]["message"] == "alerts are resolved, re-fires 0"

    # A late resolved notification for the closed incident starts nothing.
    status, late = await post(receiver, "/alertmanager", alertmanager("resolved", [alert], group))
    assert status == 200 and late["incidents"][0]["result"] == "closed"

    status, again = await post(receiver, "/alertmanager", alertmanager("firing", [alert], group))
    assert status == 200 and again["incidents"][0] == {**again["incidents"][0], "incident_id": incident,
                                                       "result": "started"}
    state = await eventually(lambda: incidents.show_incident(client, incident),
                             lambda s: s["status"] == "waiting_approval")
    assert state["refires"]["count"] == 1
    assert state["refires"]["previous_run_id"] == (await client.get_workflow_handle(incident).describe()).run_id \
        or state["refires"]["previous_run_id"] is not None
    await incidents.cancel_incident(client, incident)


async def test_routing_by_priority_and_unrouted_alerts_are_kept(receiver: RunningReceiver, client: Client,
                                                                 unique: str) -> None:
    status, routed = await post(receiver, "/alerts", {**crash_alert(f"dev-{unique}", "x", "warning"),
                                                      "group_by": ["namespace"]})
    assert status == 200 and routed["incidents"][0]["runbook"] == "rx-catch-all"
    state = await eventually(lambda: incidents.show_incident(client, routed["incidents"][0]["incident_id"]),
                             lambda s: s["status"] == "waiting_approval")
    assert state["severity"] == "SEV4", "the trigger's fixed severity overrides the label"
    await incidents.cancel_incident(client, routed["incidents"][0]["incident_id"])

    status, unrouted = await post(receiver, "/alerts", {"labels": {"alertname": f"Nobody{unique}"}})
    assert status == 200 and unrouted["incidents"] == []
    assert unrouted["unrouted"][0]["reason"] == "no runbook trigger matches"
    async with aiohttp.ClientSession() as session:
        async with session.get(receiver.url + "/alerts/unrouted", headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            kept = await r.json()
        async with session.get(receiver.url + "/metrics") as r:
            metrics = await r.text()
    assert any(row["labels"]["alertname"] == f"Nobody{unique}" for row in kept)
    assert "incidentctl_alerts_unrouted_total" in metrics and "# TYPE incidentctl_alerts_total counter" in metrics

    # A routed alert whose parameters cannot be filled is refused visibly, not dropped.
    status, refused = await post(receiver, "/alerts", {"labels": {"alertname": "KubePodCrashLooping"}})
    assert status == 200 and "missing required parameter 'namespace'" in refused["unrouted"][0]["reason"]


@pytest.mark.parametrize(
    ("headers", "raw", "status", "reason"),
    [
        ({"Authorization": ""}, None, 401, "missing or wrong credentials"),
        ({"Authorization": "Bearer wrong"}, None, 401, "missing or wrong credentials"),
        ({"Content-Type": "text/plain"}, None, 415, "content type must be application/json"),
        ({}, b"{not json", 400, "body is not valid JSON"),
        ({}, b'{"alerts": []}', 422, "body.alerts: [] should be non-empty"),
        ({}, b'{"alerts": [{"labels": {"a": 1}}]}', 422, "body.alerts[0].labels.a: 1 is not of type 'string'"),
        ({}, b'{"alerts": [{"labels": {"pod": "x"}}]}', 422, "every alert needs an alertname label"),
        ({}, b"[" + b"1," * 600_000 + b"1]", 413, "body larger than 1048576 bytes"),
    ],
)
async def test_bad_requests_get_a_4xx_with_a_reason(receiver: RunningReceiver, headers: dict[str, str],
                                                   raw: bytes | None, status: int, reason: str) -> None:
    body = alertmanager("firing", [crash_alert("prod-x", "y")], {})
    got, payload = await post(receiver, "/alertmanager", body, headers=headers, raw=raw)
    assert got == status
    assert reason in payload["error"]


async def test_hmac_signed_requests_are_accepted(receiver: RunningReceiver, unique: str, client: Client) -> None:
    raw = json.dumps({"labels": {"alertname": f"Signed{unique}"}}).encode()
    signature = "sha256=" + hmac.new(HMAC_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    status, payload = await post(receiver, "/alerts", None, raw=raw,
                                 headers={"Authorization": "", "X-Incidentctl-Signature": signature})
    assert status == 200 and payload["unrouted"][0]["labels"]["alertname"] == f"Signed{unique}"
    status, _ = await post(receiver, "/alerts", None, raw=raw + b" ",
                           headers={"Authorization": "", "X-Incidentctl-Signature": signature})
    assert status == 401


async def test_openapi_and_health(receiver: RunningReceiver) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(receiver.url + "/openapi.json") as r:
            spec = await r.json()
        async with session.get(receiver.url + "/healthz") as r:
            health = await r.json()
    assert spec["openapi"] == "3.1.0" and "/alertmanager" in spec["paths"]
    assert spec["components"]["schemas"]["AlertmanagerWebhook"]["required"] == ["alerts"]
    assert health == {"status": "ok", "runbooks_routed": 2}


async def test_temporal_down_answers_503_so_senders_retry(tmp_path: Path) -> None:
    server = DevServer(headless=True, log_file=tmp_path / "server.log")
    await asyncio.to_thread(server.start)
    books = tmp_path / "books"
    books.mkdir()
    (books / "crashloop.yaml").write_text(CRASHLOOP)
    lost_client = await Client.connect(server.address)
    running = await start_receiver(lost_client, port=0, auth=ReceiverAuth(insecure=True), runbook_paths=[books])
    try:
        server.stop()
        status, payload = await post(running, "/alertmanager",
                                     alertmanager("firing", [crash_alert("prod-a", "b")], {"namespace": "prod-a"}))
    finally:
        await running.stop()
        server.stop()
    assert status == 503
    assert "not recorded, retry later" in payload["error"]


def test_receiver_refuses_to_run_without_credentials() -> None:
    from incidentctl.intake.delivery import AlertIntake
    from incidentctl.intake.routing import Router
    from incidentctl.intake.server import create_app

    with pytest.raises(ValueError, match="needs INCIDENTCTL_RECEIVER_TOKEN or INCIDENTCTL_RECEIVER_HMAC_SECRET"):
        create_app(AlertIntake(None, Router([])), ReceiverAuth())  # type: ignore[arg-type]


async def test_cli_lists_unrouted_alerts(receiver: RunningReceiver, unique: str) -> None:
    await post(receiver, "/alerts", {"labels": {"alertname": f"Cli{unique}"}})

    async def run_cli(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "incidentctl.cli", "alerts", "unrouted", "--receiver", receiver.url, *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await process.communicate()
        return process.returncode or 0, out.decode(), err.decode()

    code, out, _ = await run_cli("--token", TOKEN, "-o", "json")
    assert code == 0 and any(row["labels"]["alertname"] == f"Cli{unique}" for row in json.loads(out))
    code, out, _ = await run_cli("--token", TOKEN)
    assert f"Cli{unique}" in out and "no runbook trigger matches" in out
    code, _, err = await run_cli("--token", "wrong")
    assert code == 1 and "the receiver refused: HTTP 401" in err


STAND_DOWN = """
name: rx-stand-down
version: 1
trigger: {alertname: DiskFilling, group_by: [host]}
on_alert_resolved: {goto: verify}
steps:
  - id: decide
    branch:
      - when: "true"
        steps:
          - id: gate
            approval: {message: "wipe the cache?", approvers: [alice]}
          - id: wipe
            action: util.echo
            params: {message: wiping}
  - id: verify
    action: util.echo
    params: {message: "alerts ${{ incident.alert_status }}"}
"""


async def test_resolved_alert_stands_down_a_waiting_approval(client: Client, worker: Worker,
                                                           tmp_path: Path, unique: str) -> None:
    (tmp_path / "stand-down.yaml").write_text(STAND_DOWN)
    running = await start_receiver(client, port=0, auth=ReceiverAuth(token=TOKEN), task_queue=TEST_TASK_QUEUE,
                                   runbook_paths=[tmp_path])
    alert = {"labels": {"alertname": "DiskFilling", "host": f"db-{unique}"}, "group_by": ["host"]}
    try:
        status, started = await post(running, "/alerts", alert)
        incident = started["incidents"][0]["incident_id"]
        await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["pending_approvals"])
        status, _ = await post(running, "/alerts", {**alert, "status": "resolved"})
        assert status == 200
        summary = await client.get_workflow_handle(incident).result()
    finally:
        await running.stop()
    steps = summary["steps"]
    assert summary["status"] == "resolved"
    assert steps["gate"]["status"] == "superseded" and steps["decide"]["status"] == "superseded"
    assert "wipe" not in steps, "the remediation did not run after the alert cleared"
    assert steps["verify"]["output"]["message"] == "alerts resolved"
    kinds = [e["kind"] for e in await incidents.incident_timeline(client, incident)]
    assert kinds.index("alert_resolved") < kinds.index("approval_superseded") < kinds.index("incident_resolved")
