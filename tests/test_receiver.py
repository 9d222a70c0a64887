"""Alert intake over real HTTP against the real dev server: dedup, resolve, re-fire, routing, auth, bad input."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from incidentctl import client as incidents
from incidentctl.devserver import DevServer
from incidentctl.intake.auth import SIGNATURE_HEADER, sign
from incidentctl.intake.runner import RunningReceiver, start_receiver
from incidentctl.intake.server import ReceiverAuth, ReceiverLimits
from tests.conftest import TEST_TASK_QUEUE, eventually
from workflows.model import Closure

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
resolve: {quiet_for: 2s, reopen_window: 1h}
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
    approval: {message: "look at ${{ params.namespace }}?", groups: [sre]}
"""

DISK = """
name: rx-disk
version: 1
trigger: {alertname: DiskFilling, severity: SEV3}
resolve: {quiet_for: 1s, reopen_window: 2s}
steps:
  - id: look
    action: util.echo
    params: {message: "disk on ${{ alert.labels.instance }}"}
"""

DISK_FULL = """
name: rx-disk-full
version: 1
trigger: {alertname: DiskFull, severity: SEV2}
resolve: {quiet_for: 1s, reopen_window: 2s, on_refire: rerun}
steps:
  - id: look
    action: util.echo
    params: {message: "disk full on ${{ alert.labels.instance }}"}
"""


@pytest.fixture(scope="module")
async def receiver(client: Client, worker: Worker, tmp_path_factory: pytest.TempPathFactory
                   ) -> AsyncIterator[RunningReceiver]:
    books = tmp_path_factory.mktemp("runbooks")
    (books / "crashloop.yaml").write_text(CRASHLOOP)
    (books / "catch-all.yaml").write_text(CATCH_ALL)
    (books / "disk.yaml").write_text(DISK)
    (books / "disk-full.yaml").write_text(DISK_FULL)
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
                    "annotations": {"summary": "Pod is crash looping."},
                    "startsAt": a.get("startsAt", "2026-11-23T08:00:00Z"),
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


async def test_resolve_monitor_reopen_close_and_a_refire_after_close_starts_a_linked_incident(
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
    # Nobody needs to approve a restart any more: the waiting approval stands down by itself, the runbook goes
    # on to verification, and the incident resolves once its alert stayed quiet for the runbook's 2s.
    summary = await incidents.wait_for_runbook(client, incident)
    assert summary["outcome"] == "succeeded" and summary["alert_status"] == "resolved"
    assert summary["steps"]["gate"]["status"] == "superseded"
    assert "fix" not in summary["steps"], "on_alert_resolved jumped over the remediation"
    assert summary["steps"]["verify"]["output"]["message"] == "alerts are resolved, re-fires 0"
    state = await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["status"] == "resolved")
    assert state["resolution"]["by"] == "alerts" and state["times"]["monitoring_at"] < state["times"]["resolved_at"]

    # A late resolved notification is counted on the open incident; a re-fire (new startsAt) inside the reopen
    # window re-opens it for people (on_refire: notify); the same firing sent again changes nothing.
    status, late = await post(receiver, "/alertmanager", alertmanager("resolved", [alert], group))
    assert status == 200 and late["incidents"][0]["result"] == "updated"
    refire = {**alert, "startsAt": "2026-11-23T09:00:00Z"}
    for _ in range(2):
        status, _ = await post(receiver, "/alertmanager", alertmanager("firing", [refire], group))
        assert status == 200
    state = await eventually(lambda: incidents.show_incident(client, incident),
                             lambda s: s["status"] == "needs_attention")
    assert next(iter(state["alerts"].values()))["refired"] == 1
    kinds = [e["kind"] for e in await incidents.incident_timeline(client, incident)]
    assert kinds.count("reopened") == 1
    await post(receiver, "/alertmanager", alertmanager("resolved", [refire], group))
    await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["status"] == "resolved")
    await incidents.close_incident(client, incident, Closure(by="alice", no_review=True))
    summary = await client.get_workflow_handle(incident).result()
    assert summary["status"] == "closed" and summary["closed_by"] == "alice"

    # A late resolved notification for the closed incident starts nothing.
    status, late = await post(receiver, "/alertmanager", alertmanager("resolved", [alert], group))
    assert status == 200 and late["incidents"][0]["result"] == "closed"

    status, again = await post(receiver, "/alertmanager",
                               alertmanager("firing", [{**alert, "startsAt": "2026-11-23T10:00:00Z"}], group))
    assert status == 200 and again["incidents"][0] == {**again["incidents"][0], "incident_id": incident,
                                                       "result": "started"}
    state = await eventually(lambda: incidents.show_incident(client, incident),
                             lambda s: s["status"] == "waiting_approval")
    assert state["refires"]["count"] == 1
    assert state["refires"]["previous_run_id"] == (await client.get_workflow_handle(incident).describe()).run_id \
        or state["refires"]["previous_run_id"] is not None
    await incidents.cancel_incident(client, incident)


async def test_a_refire_after_the_reopen_window_closes_the_resolved_incident_and_starts_a_linked_one(
    receiver: RunningReceiver, client: Client, unique: str
) -> None:
    group = {"instance": f"db-{unique}"}
    alert = {"labels": {"alertname": "DiskFilling", "instance": f"db-{unique}", "severity": "warning"}}
    _, first = await post(receiver, "/alertmanager", alertmanager("firing", [alert], group))
    incident = first["incidents"][0]["incident_id"]
    old_run = (await client.get_workflow_handle(incident).describe()).run_id
    await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["status"] == "mitigated")
    await post(receiver, "/alertmanager", alertmanager("resolved", [alert], group))
    state = await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["status"] == "resolved")
    await asyncio.sleep(2.5)  # past the runbook's 2s reopen window: the next firing is news

    _, again = await post(receiver, "/alertmanager",
                          alertmanager("firing", [{**alert, "startsAt": "2026-11-23T11:00:00Z"}], group))
    assert again["incidents"][0]["incident_id"] == incident and again["incidents"][0]["result"] == "started"
    old = await client.get_workflow_handle(incident, run_id=old_run).result()
    assert old["status"] == "closed" and old["closed_by"] == "incidentctl"
    assert old["times"]["resolved_at"] == state["times"]["resolved_at"]
    new = await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["status"] == "mitigated")
    assert new["refires"] == {"count": 1, "previous_run_id": old_run}
    await incidents.cancel_incident(client, incident)


async def test_a_refire_after_the_window_reopens_a_sev2_incident_whose_review_is_due(
    receiver: RunningReceiver, client: Client, unique: str
) -> None:
    group = {"instance": f"db-{unique}"}
    alert = {"labels": {"alertname": "DiskFull", "instance": f"db-{unique}", "severity": "critical"}}
    _, first = await post(receiver, "/alertmanager", alertmanager("firing", [alert], group))
    incident = first["incidents"][0]["incident_id"]
    await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["status"] == "mitigated")
    await post(receiver, "/alertmanager", alertmanager("resolved", [alert], group))
    await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["status"] == "resolved")
    await asyncio.sleep(2.5)

    _, again = await post(receiver, "/alertmanager",
                          alertmanager("firing", [{**alert, "startsAt": "2026-11-23T11:00:00Z"}], group))
    assert again["incidents"][0]["result"] == "updated", "no new incident: this one still owes its review"
    state = await eventually(lambda: incidents.show_incident(client, incident),
                             lambda s: len(s["runbook_runs"]) == 2 and s["status"] == "mitigated")
    kinds = [e["kind"] for e in await incidents.incident_timeline(client, incident)]
    assert kinds.index("refired_after_window") < kinds.index("reopened")
    assert state["severity"] == "SEV2" and state["refires"]["count"] == 0
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
        async with session.get(receiver.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            metrics = await r.text()
    assert any(row["labels"].get("alertname") == f"Nobody{unique}" for row in kept)
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
        ({}, b"[" + b"1," * 2_200_000 + b"1]", 413, "body larger than 4194304 bytes"),
        ({}, b"[" * 3000 + b"]" * 3000, 400, "nested deeper than 32 levels"),
        ({}, b'{"alerts": [{"labels": {"alertname": "A", "n": ' + b"7" * 5000 + b"}}]}", 400,
         "body is not valid JSON: Exceeds the limit (4300 digits)"),
        ({}, b'{"alerts": [{"labels": {"alertname": "A"}, "startsAt": "now"}]}', 422,
         "body.alerts[0].startsAt: 'now' is not an RFC 3339 time"),
    ],
)
async def test_bad_requests_get_a_4xx_with_a_reason(receiver: RunningReceiver, headers: dict[str, str],
                                                   raw: bytes | None, status: int, reason: str) -> None:
    body = alertmanager("firing", [crash_alert("prod-x", "y")], {})
    got, payload = await post(receiver, "/alertmanager", body, headers=headers, raw=raw)
    assert got == status
    assert reason in payload["error"]


async def test_hmac_signed_requests_are_accepted_once_for_their_path_and_time(
        receiver: RunningReceiver, unique: str, client: Client) -> None:
    raw = json.dumps({"labels": {"alertname": f"Signed{unique}"}}).encode()
    signed = {"Authorization": "", **sign(HMAC_SECRET, "POST", "/alerts", raw)}
    status, payload = await post(receiver, "/alerts", None, raw=raw, headers=signed)
    assert status == 200 and payload["unrouted"][0]["labels"]["alertname"] == f"Signed{unique}"
    status, refused = await post(receiver, "/alerts", None, raw=raw, headers=signed)
    assert status == 401 and "already received" in refused["error"], "a replayed copy"
    status, refused = await post(receiver, "/alerts", None, raw=raw + b" ",
                                 headers={"Authorization": "", **sign(HMAC_SECRET, "POST", "/alerts", raw)})
    assert status == 401 and "wrong signature" in refused["error"], "the body changed"
    status, refused = await post(receiver, "/alertmanager", None, raw=raw,
                                 headers={"Authorization": "", **sign(HMAC_SECRET, "POST", "/alerts", raw)})
    assert status == 401 and "wrong signature" in refused["error"], "signed for another path"
    late = sign(HMAC_SECRET, "POST", "/alerts", raw, timestamp=int(time.time()) - 3600)
    status, refused = await post(receiver, "/alerts", None, raw=raw, headers={"Authorization": "", **late})
    assert status == 401 and "within 300 s" in refused["error"], "signed an hour ago"
    for path in ("/metrics", "/alerts/unrouted", "/openapi.json"):
        async with aiohttp.ClientSession() as session:
            async with session.get(receiver.url + path) as r:
                assert r.status == 401, path
            async with session.get(receiver.url + path, headers=sign(HMAC_SECRET, "GET", path, b"")) as r:
                assert r.status == 200, path
        async with aiohttp.ClientSession() as session, session.get(receiver.url + "/healthz") as r:
            assert r.status == 200


async def test_openapi_and_health(receiver: RunningReceiver) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(receiver.url + "/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            spec = await r.json()
        async with session.get(receiver.url + "/healthz") as r:
            health = await r.json()
    assert spec["openapi"] == "3.1.0" and "/alertmanager" in spec["paths"]
    assert spec["components"]["schemas"]["AlertmanagerWebhook"]["required"] == ["alerts"]
    assert health == {"status": "ok", "runbooks_routed": 4}


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
    assert code == 0 and any(row["labels"].get("alertname") == f"Cli{unique}" for row in json.loads(out))
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
        summary = await incidents.wait_for_runbook(client, incident)
    finally:
        await running.stop()
    steps = summary["steps"]
    assert summary["outcome"] == "succeeded" and summary["status"] == "monitoring"
    assert steps["gate"]["status"] == "superseded" and steps["decide"]["status"] == "superseded"
    assert "wipe" not in steps, "the remediation did not run after the alert cleared"
    assert steps["verify"]["output"]["message"] == "alerts resolved"
    kinds = [e["kind"] for e in await incidents.incident_timeline(client, incident)]
    assert kinds.index("alert_resolved") < kinds.index("approval_superseded") < kinds.index("runbook_finished")
    await incidents.cancel_incident(client, incident)


def kube_alert(namespace: str, pod: str, **labels: str) -> dict[str, Any]:
    """A KubePodCrashLooping alert as kube-prometheus sends it: about 1 KB with its annotations."""
    return {"status": "firing", "labels": {"alertname": "KubePodCrashLooping", "namespace": namespace, "pod": pod,
                                           "container": "app", "job": "kube-state-metrics", "severity": "warning",
                                           "endpoint": "http", "instance": "10.0.0.7:8080",
                                           "reason": "CrashLoopBackOff",
                                           "service": "kube-prometheus-stack-kube-state-metrics", "uid": pod * 2,
                                           "prometheus": "monitoring/kube-prometheus-stack-prometheus", **labels},
            "annotations": {"description": f"Pod {namespace}/{pod} (app) is in waiting state (reason: "
                                           f"\"CrashLoopBackOff\"). " + "x" * 400,
                            "runbook_url": "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/"
                                           "kubepodcrashlooping", "summary": "Pod is crash looping."},
            "startsAt": "2026-11-23T08:00:00.513Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=max_over_time%28kube_pod_container_status_waiting"}


async def test_a_600_alert_notification_is_accepted_whole(receiver: RunningReceiver, client: Client,
                                                         unique: str) -> None:
    namespace = f"prod-{unique}"
    body = {**alertmanager("firing", [], {"namespace": namespace}),
            "alerts": [kube_alert(namespace, f"web-{i:04d}") for i in range(600)]}
    raw = json.dumps(body).encode()
    assert len(raw) > 600_000, "well past the ~390 KB where the old reader cut bodies"
    status, payload = await post(receiver, "/alertmanager", None, raw=raw)
    assert status == 200, payload
    (outcome,) = payload["incidents"]
    assert (outcome["alerts"], outcome["firing"], outcome["result"]) == (600, 600, "started")
    state = await eventually(lambda: incidents.show_incident(client, outcome["incident_id"]),
                             lambda s: len(s["alerts"]) == 600)
    assert all(a["status"] == "firing" for a in state["alerts"].values())
    await incidents.cancel_incident(client, outcome["incident_id"])


async def raw_http(url: str, chunks: list[bytes], pause: float = 0.0) -> tuple[int, bytes]:
    """Send a request in separate TCP writes (`pause` seconds apart) and read the answer (not waiting for EOF)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(pause)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")))
        answer = head + await asyncio.wait_for(reader.readexactly(length), 10)
    finally:
        writer.close()
    return int(answer.split(b" ", 2)[1]), answer


def request_head(path: str, length: int | None, extra: str = "") -> bytes:
    size = f"Content-Length: {length}\r\n" if length is not None else "Transfer-Encoding: chunked\r\n"
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\n{size}Connection: close\r\n{extra}\r\n").encode()


async def test_a_body_that_arrives_in_pieces_is_read_whole(receiver: RunningReceiver, unique: str) -> None:
    body = json.dumps({"labels": {"alertname": f"Split{unique}"}}).encode()
    status, answer = await raw_http(receiver.url, [request_head("/alerts", len(body)), body[:7], body[7:]],
                                    pause=0.05)
    assert status == 200, answer
    assert f"Split{unique}".encode() in answer
    chunked = b"".join(f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (body[:9], body[9:])) + b"0\r\n\r\n"
    status, answer = await raw_http(receiver.url, [request_head("/alerts", None), chunked[:20], chunked[20:]],
                                    pause=0.05)
    assert status == 200, answer


async def test_a_chunked_body_past_the_limit_gets_413(receiver: RunningReceiver) -> None:
    async def five_mib() -> AsyncIterator[bytes]:
        yield b'{"alerts": ['
        for _ in range(5 * 1024):
            yield b'"' + b"x" * 1020 + b'",'
        yield b'"x"]}'

    async with aiohttp.ClientSession() as session:
        async with session.post(receiver.url + "/alertmanager", data=five_mib(),
                                headers={"Authorization": f"Bearer {TOKEN}",
                                         "Content-Type": "application/json"}) as response:
            assert response.status == 413
            assert "body larger than 4194304 bytes" in (await response.json())["error"]


async def test_good_alerts_go_on_and_bad_ones_are_answered_listed_and_counted(
    receiver: RunningReceiver, client: Client, unique: str
) -> None:
    namespace = f"prod-{unique}"
    body = alertmanager("firing", [crash_alert(namespace, "ok-0")], {"namespace": namespace})
    body["alerts"].append({"labels": {"pod": f"nameless-{unique}"}, "status": "firing"})
    body["commonLabels"] = {}  # as Alertmanager computes it when one alert lacks alertname
    status, payload = await post(receiver, "/alertmanager", body)
    assert status == 200, payload
    assert payload["incidents"][0]["alerts"] == 1
    (rejected,) = payload["rejected"]
    assert rejected["index"] == 1 and rejected["labels"] == {"pod": f"nameless-{unique}"}
    assert rejected["reason"] == "invalid alert: body.alerts[1].labels: every alert needs an alertname label"
    async with aiohttp.ClientSession() as session:
        async with session.get(receiver.url + "/alerts/unrouted", headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            kept = await r.json()
        async with session.get(receiver.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            metrics = await r.text()
    assert any(row["labels"].get("pod") == f"nameless-{unique}" and "alertname" in row["reason"] for row in kept)
    counted = next(line for line in metrics.splitlines() if line.startswith("incidentctl_alerts_rejected_total "))
    assert float(counted.split()[1]) >= 1
    await incidents.cancel_incident(client, payload["incidents"][0]["incident_id"])


async def test_text_that_cannot_be_encoded_is_stored_safely(receiver: RunningReceiver, client: Client,
                                                           unique: str) -> None:
    raw = json.dumps({"labels": {"alertname": "KubePodCrashLooping", "namespace": f"prod-{unique}",
                                 "pod": "bad\ud800pod"}, "group_by": ["namespace"]}).encode()
    assert b"\\ud800" in raw
    status, payload = await post(receiver, "/alerts", None, raw=raw)
    assert status == 200, payload
    incident = payload["incidents"][0]["incident_id"]
    state = await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["params"].get("pod"))
    assert state["params"]["pod"] == "bad\ufffdpod"
    env = {**os.environ, "TEMPORAL_ADDRESS": client.service_client.config.target_host}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "incidentctl.cli", "incident", "show", incident, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    assert process.returncode == 0 and b"Traceback" not in err, err
    assert "bad\ufffdpod" in out.decode()
    await incidents.cancel_incident(client, incident)


async def test_auth_scheme_and_signature_hex_are_case_insensitive(receiver: RunningReceiver, unique: str) -> None:
    raw = json.dumps({"labels": {"alertname": f"Case{unique}"}}).encode()
    status, _ = await post(receiver, "/alerts", None, raw=raw, headers={"Authorization": f"bearer {TOKEN}"})
    assert status == 200
    status, _ = await post(receiver, "/alerts", None, raw=raw, headers={"Authorization": f"BEARER  {TOKEN}"})
    assert status == 200
    signed = sign(HMAC_SECRET, "POST", "/alerts", raw)
    signed[SIGNATURE_HEADER] = signed[SIGNATURE_HEADER].upper()
    status, _ = await post(receiver, "/alerts", None, raw=raw, headers={"Authorization": "", **signed})
    assert status == 200
    status, _ = await post(receiver, "/alerts", None, raw=raw, headers={"Authorization": f"Basic {TOKEN}"})
    assert status == 401


async def test_idle_connections_are_cut_and_a_flood_is_turned_away(client: Client, worker: Worker,
                                                                   tmp_path: Path, unique: str) -> None:
    limits = ReceiverLimits(header_timeout_s=1.0, body_timeout_s=1.0, max_connections=5)
    running = await start_receiver(client, port=0, auth=ReceiverAuth(token=TOKEN), task_queue=TEST_TASK_QUEUE,
                                   runbook_paths=[tmp_path], limits=limits)
    host, port = running.url.removeprefix("http://").split(":")
    idle = []
    try:
        for _ in range(5):  # headers that never finish, as a slow or broken client sends them
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"POST /alerts HTTP/1.1\r\nHost: x\r\n")
            idle.append((reader, writer))
        await asyncio.sleep(0.2)
        status, answer = await raw_http(running.url, [request_head("/alerts", 2), b"{}"])
        assert status == 503 and b"too many open connections" in answer
        for reader, _ in idle:
            assert await asyncio.wait_for(reader.read(), 5) == b"", "an idle connection was closed by the receiver"
        body = json.dumps({"labels": {"alertname": f"AfterFlood{unique}"}}).encode()
        status, answer = await raw_http(running.url, [request_head("/alerts", len(body)), body])
        assert status == 200, answer
        # A body that stalls half way is answered 408 once its time is up.
        status, answer = await raw_http(running.url, [request_head("/alerts", 100), b'{"labels": '], pause=0.8)
        assert status == 408 and b"body not received within 1 s" in answer
    finally:
        for _, writer in idle:
            writer.close()
        await running.stop()
    assert running.intake.metrics.get("incidentctl_connections_refused_total") == 1


async def test_no_worker_answers_503_not_500(client: Client, tmp_path: Path, unique: str) -> None:
    (tmp_path / "crashloop.yaml").write_text(CRASHLOOP)
    running = await start_receiver(client, port=0, auth=ReceiverAuth(token=TOKEN),
                                   task_queue=f"nobody-polls-{unique}", runbook_paths=[tmp_path], rpc_timeout=2.0)
    namespace = f"prod-{unique}"
    try:
        status, payload = await post(running, "/alertmanager",
                                     alertmanager("firing", [crash_alert(namespace, "a")], {"namespace": namespace}))
    finally:
        await running.stop()
    assert status == 503, payload
    assert "not recorded, retry later" in payload["error"] and "no worker answered" in payload["error"]
    async for execution in client.list_workflows(f"WorkflowId STARTS_WITH 'incident-rx-crashloop-prod-{unique}'"):
        await client.get_workflow_handle(execution.id).terminate("test cleanup")


async def test_alerts_of_two_clusters_make_two_incidents(receiver: RunningReceiver, client: Client,
                                                         unique: str) -> None:
    namespace = f"prod-{unique}"
    alerts = [{"labels": {**crash_alert(namespace, "api-0")["labels"], "cluster": cluster}} for cluster in ("eu", "us")]
    status, payload = await post(receiver, "/alertmanager", alertmanager("firing", alerts, {"namespace": namespace}))
    assert status == 200
    ids = {o["incident_id"] for o in payload["incidents"]}
    assert len(ids) == 2
    for incident in ids:
        state = await eventually(lambda i=incident: incidents.show_incident(client, i), lambda s: s["alerts"])
        assert len(state["alerts"]) == 1
        await incidents.cancel_incident(client, incident)
