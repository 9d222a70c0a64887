"""Cloud alarms as alerts, through the wire: signed SNS messages (a test CA and SNS key, the certificate served
over local HTTPS) and Cloud Monitoring webhooks posted to the real receiver, incidents on the real dev server."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from incidentctl import client as incidents
from incidentctl.intake.cloud_monitoring import parse_notification
from incidentctl.intake.cloudwatch import parse_alarm
from incidentctl.intake.payloads import PayloadError
from incidentctl.intake.runner import RunningReceiver, start_receiver
from incidentctl.intake.server import ReceiverAuth
from incidentctl.intake.sns import SnsConfig
from incidentctl.intake.sns_signature import DEFAULT_TRUSTED_HOST, SnsTrust, string_to_sign
from tests.conftest import TEST_TASK_QUEUE, eventually
from tests.sns_fake import FakeSns, now_iso

TOKEN = "cloud-alarms-token"
ACCOUNT = "123456789012"
TOPIC = f"arn:aws:sns:eu-west-1:{ACCOUNT}:incidentctl-alarms"

EC2_CPU = """
name: ca-ec2-cpu
version: 1
severity: SEV3
trigger:
  matchers: ['source="cloudwatch"', 'namespace="AWS/EC2"', 'alertname=~"ca-cpu-.*"']
parameters:
  instance: {type: string, required: true, default: "${{ alert.labels.InstanceId }}"}
  region: {type: string, default: "${{ alert.labels.region }}"}
on_alert_resolved: {goto: verify}
resolve: {quiet_for: 1s, reopen_window: 1h}
steps:
  - id: gate
    approval: {message: "reboot ${{ params.instance }} in ${{ params.region }}?", approvers: [alice]}
  - id: verify
    action: util.echo
    params: {message: "alarm ${{ incident.alert_status }} for ${{ params.instance }}"}
"""

GCE_CPU = """
name: ca-gce-cpu
version: 1
severity: SEV3
trigger:
  matchers: ['source="cloud-monitoring"', 'resource_type="gce_instance"', 'alertname=~"ca-gce-.*"']
parameters:
  instance: {type: string, required: true, default: "${{ alert.labels.instance_id }}"}
on_alert_resolved: {goto: verify}
resolve: {quiet_for: 1s, reopen_window: 1h}
steps:
  - id: gate
    approval: {message: "restart ${{ params.instance }}?", approvers: [alice]}
  - id: verify
    action: util.echo
    params: {message: "policy ${{ incident.alert_status }} for ${{ params.instance }}"}
"""


def alarm(name: str, state: str, *, instance: str = "i-0abc123", changed: str | None = None) -> str:
    """A CloudWatch alarm state change as SNS carries it (the documented message shape)."""
    return json.dumps({
        "AlarmName": name, "AlarmDescription": "CPU above 80% on the web tier", "AWSAccountId": ACCOUNT,
        "AlarmConfigurationUpdatedTimestamp": "2026-11-30T09:00:00.000+0000",
        "NewStateValue": state, "NewStateReason": f"Threshold Crossed: 1 datapoint [93.1] -> {state}",
        "StateChangeTime": changed or now_iso().replace("Z", "+0000"), "Region": "EU (Ireland)",
        "AlarmArn": f"arn:aws:cloudwatch:eu-west-1:{ACCOUNT}:alarm:{name}", "OldStateValue": "OK",
        "OKActions": [TOPIC], "AlarmActions": [TOPIC], "InsufficientDataActions": [],
        "Trigger": {"MetricName": "CPUUtilization", "Namespace": "AWS/EC2", "StatisticType": "Statistic",
                    "Statistic": "AVERAGE", "Unit": None,
                    "Dimensions": [{"value": instance, "name": "InstanceId"},
                                   {"value": "web-asg", "name": "AutoScalingGroupName"}],
                    "Period": 60, "EvaluationPeriods": 1, "DatapointsToAlarm": 1,
                    "ComparisonOperator": "GreaterThanThreshold", "Threshold": 80.0,
                    "TreatMissingData": "missing", "EvaluateLowSampleCountPercentile": ""},
    })


def gcm(policy: str, state: str, *, instance: str = "1234567890123456789", started: int = 1_764_580_000,
        ended: int | None = None) -> dict[str, Any]:
    """A Cloud Monitoring webhook notification, schema version 1.2."""
    return {"version": "1.2", "incident": {
        "incident_id": "0.opqiw61fsv7p", "scoping_project_id": "shop-prod", "scoping_project_number": 12345,
        "url": "https://console.cloud.google.com/monitoring/alerting/incidents/0.opqiw61fsv7p?project=shop-prod",
        "started_at": started, "ended_at": ended, "state": state,
        "summary": "CPU utilization for shop-web-1 is above the threshold of 0.8 with a value of 0.93.",
        "apigee_url": "", "observed_value": "0.93",
        "resource": {"type": "gce_instance", "labels": {"instance_id": instance, "zone": "europe-west1-b",
                                                         "project_id": "shop-prod"}},
        "resource_type_display_name": "VM Instance", "resource_id": instance, "resource_display_name": "shop-web-1",
        "resource_name": "shop-prod shop-web-1",
        "metric": {"type": "compute.googleapis.com/instance/cpu/utilization", "displayName": "CPU utilization",
                   "labels": {"instance_name": "shop-web-1"}},
        "metadata": {"system_labels": {}, "user_labels": {}},
        "policy_name": policy, "policy_user_labels": {"team": "web"},
        "documentation": {"content": "Check the web tier.", "mime_type": "text/markdown", "subject": "CPU"},
        "condition": {"name": "projects/shop-prod/alertPolicies/1/conditions/2", "displayName": "CPU > 80%"},
        "condition_name": "CPU > 80%", "threshold_value": "0.8", "severity": "Warning"}}


@pytest.fixture(scope="module")
async def fake_sns(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FakeSns]:
    async with FakeSns(tmp_path_factory.mktemp("sns")).running() as fake:
        yield fake


@pytest.fixture(scope="module")
async def receiver(client: Client, worker: Worker, fake_sns: FakeSns, tmp_path_factory: pytest.TempPathFactory
                   ) -> AsyncIterator[RunningReceiver]:
    books = tmp_path_factory.mktemp("cloud-runbooks")
    (books / "ec2-cpu.yaml").write_text(EC2_CPU)
    (books / "gce-cpu.yaml").write_text(GCE_CPU)
    trust = SnsTrust(trusted_host=r"127\.0\.0\.1", ca_bundle=str(fake_sns.ca_bundle))
    sns = SnsConfig(topic_arns=(TOPIC,), trust=trust)
    running = await start_receiver(client, port=0, auth=ReceiverAuth(token=TOKEN), task_queue=TEST_TASK_QUEUE,
                                   runbook_paths=[books], sns=sns)
    yield running
    await running.stop()


async def post(receiver: RunningReceiver, path: str, body: Any, headers: dict[str, str] | None = None,
               raw: bytes | None = None) -> tuple[int, Any]:
    # SNS posts text/plain with its message type in a header, and no credentials of ours.
    sent = {"Content-Type": "text/plain; charset=UTF-8", **(headers or {})}
    if path == "/sns" and isinstance(body, dict) and "Type" in body:
        sent.setdefault("x-amz-sns-message-type", body["Type"])
    async with aiohttp.ClientSession() as session:
        async with session.post(receiver.url + path, data=raw if raw is not None else json.dumps(body).encode(),
                                headers=sent) as response:
            text = await response.text()
            try:
                return response.status, json.loads(text)
            except json.JSONDecodeError:
                return response.status, text


# ---------------------------------------------------------------- parsing (no server)


def test_the_canonical_string_is_the_signed_fields_in_order() -> None:
    notification = {"Type": "Notification", "MessageId": "m1", "TopicArn": TOPIC, "Message": "hi\nthere",
                    "Timestamp": "2026-12-01T10:00:00.000Z", "SignatureVersion": "2", "Signature": "x",
                    "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/c.pem", "UnsubscribeURL": "u"}
    assert string_to_sign(notification) == (
        f"Message\nhi\nthere\nMessageId\nm1\nTimestamp\n2026-12-01T10:00:00.000Z\nTopicArn\n{TOPIC}\n"
        "Type\nNotification\n").encode()
    assert b"Subject\nS\nTimestamp" in string_to_sign({**notification, "Subject": "S"})
    confirmation = {**notification, "Type": "SubscriptionConfirmation", "Token": "t", "SubscribeURL": "s"}
    assert string_to_sign(confirmation) == (
        f"Message\nhi\nthere\nMessageId\nm1\nSubscribeURL\ns\nTimestamp\n2026-12-01T10:00:00.000Z\nToken\nt\n"
        f"TopicArn\n{TOPIC}\nType\nSubscriptionConfirmation\n").encode()


@pytest.mark.parametrize(("url", "reason"), [
    ("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem", None),
    ("https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem", None),
    ("http://sns.us-east-1.amazonaws.com/c.pem", "must be https"),
    ("https://sns.us-east-1.amazonaws.com.evil.example/c.pem", "is not a trusted SNS host"),
    ("https://evil.example/sns.us-east-1.amazonaws.com/c.pem", "is not a trusted SNS host"),
    ("https://user:pw@sns.us-east-1.amazonaws.com/c.pem", "must not carry credentials"),
    (None, "is missing"),
])
def test_certificates_come_from_sns_hosts_only(url: str | None, reason: str | None) -> None:
    problem = SnsTrust(trusted_host=DEFAULT_TRUSTED_HOST).url_problem(url, "SigningCertURL")
    assert problem is None if reason is None else reason in str(problem)


def test_a_cloudwatch_alarm_becomes_one_alert_per_alarm() -> None:
    firing = parse_alarm(alarm("HighCPU", "ALARM", changed="2026-12-01T10:00:00.000+0000"), TOPIC)
    alert = firing.alerts[0]
    assert alert["status"] == "firing" and alert["startsAt"] == "2026-12-01T10:00:00.000Z"
    assert alert["labels"] == {"alertname": "HighCPU", "account": ACCOUNT, "region": "eu-west-1",
                               "source": "cloudwatch", "namespace": "AWS/EC2", "metric": "CPUUtilization",
                               "InstanceId": "i-0abc123", "AutoScalingGroupName": "web-asg"}
    assert firing.group_labels == {"alertname": "HighCPU", "account": ACCOUNT, "region": "eu-west-1"}
    resolved = parse_alarm(alarm("HighCPU", "OK", instance="i-other"), TOPIC).alerts[0]
    assert resolved["status"] == "resolved" and resolved["fingerprint"] == alert["fingerprint"]
    other_region = parse_alarm(alarm("HighCPU", "ALARM").replace("eu-west-1", "us-east-1"), TOPIC).alerts[0]
    assert other_region["fingerprint"] != alert["fingerprint"]
    unknown = parse_alarm(alarm("HighCPU", "INSUFFICIENT_DATA"), TOPIC)
    assert unknown.alerts == [] and "INSUFFICIENT_DATA" in unknown.not_delivered[0][1]
    clash = json.loads(alarm("HighCPU", "ALARM"))
    clash["Trigger"]["Dimensions"] = [{"name": "region", "value": "x"}, {"name": "Service.Name", "value": "web"}]
    labels = parse_alarm(json.dumps(clash), TOPIC).alerts[0]["labels"]
    assert labels["region"] == "eu-west-1" and labels["dimension_region"] == "x" and labels["Service_Name"] == "web"


@pytest.mark.parametrize(("text", "reason"), [
    ("plain text published to the topic", "not a CloudWatch alarm (its Message: body is not valid JSON"),
    ("[" * 100 + "]" * 100, "nested deeper than 32 levels"),
    ('{"hello": 1}', "not a CloudWatch alarm (no AlarmName and NewStateValue)"),
    (alarm("A", "BROKEN"), "NewStateValue 'BROKEN' is not ALARM, OK or INSUFFICIENT_DATA"),
    (alarm("A", "ALARM", changed="yesterday"), "StateChangeTime: 'yesterday' is not an ISO 8601 time"),
])
def test_a_message_that_is_not_an_alarm_is_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_alarm(text, TOPIC)
    assert reason in str(caught.value)


def test_a_cloud_monitoring_incident_becomes_one_alert_per_series() -> None:
    opened = parse_notification(gcm("HighCPU", "open"))
    alert = opened.alerts[0]
    assert alert["status"] == "firing" and alert["startsAt"].startswith("2025-12-01T")
    assert alert["labels"] == {"alertname": "HighCPU", "project": "shop-prod", "condition": "CPU > 80%",
                               "resource_type": "gce_instance", "metric": "compute.googleapis.com/instance/cpu/"
                               "utilization", "instance_id": "1234567890123456789", "zone": "europe-west1-b",
                               "project_id": "shop-prod", "instance_name": "shop-web-1", "source": "cloud-monitoring",
                               "severity": "warning", "team": "web"}
    closed = parse_notification(gcm("HighCPU", "closed", ended=1_764_580_600)).alerts[0]
    assert closed["status"] == "resolved" and closed["fingerprint"] == alert["fingerprint"]
    assert parse_notification(gcm("HighCPU", "open", instance="2")).alerts[0]["fingerprint"] != alert["fingerprint"]
    assert parse_notification(gcm("HighCPU", "acknowledged")).not_delivered
    for body, reason in (({"incident": {}}, "version"), ({"version": "1.2"}, "no `incident` object"),
                         ({"version": "1.2", "incident": {"state": "open"}}, "policy_name")):
        with pytest.raises(PayloadError) as caught:
            parse_notification(body)
        assert reason in str(caught.value)


def test_the_openapi_document_describes_the_cloud_endpoints() -> None:
    from incidentctl.intake.openapi import openapi_document

    paths = openapi_document()["paths"]
    assert paths["/sns"]["post"]["security"] == [], "SNS proves itself by its signature, not our credentials"
    assert {"basic": []} in paths["/gcm"]["post"]["security"] and "403" in paths["/sns"]["post"]["responses"]


def test_the_sns_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from incidentctl.intake.sns import sns_config_from_env

    monkeypatch.setenv("INCIDENTCTL_SNS_TOPIC_ARNS", f" {TOPIC}, arn:aws:sns:*:{ACCOUNT}:alarms-* ,")
    config = sns_config_from_env()
    assert config.topic_arns == (TOPIC, f"arn:aws:sns:*:{ACCOUNT}:alarms-*")
    assert config.topic_allowed(f"arn:aws:sns:us-east-1:{ACCOUNT}:alarms-web")
    assert not config.topic_allowed("arn:aws:sns:us-east-1:999999999999:alarms-web")
    assert config.trust.trusted_host == DEFAULT_TRUSTED_HOST and config.trust.ca_bundle is None
    monkeypatch.setenv("INCIDENTCTL_SNS_CERT_HOST", "sns(")
    with pytest.raises(ValueError, match="INCIDENTCTL_SNS_CERT_HOST is not a regular expression"):
        sns_config_from_env()
    monkeypatch.delenv("INCIDENTCTL_SNS_CERT_HOST")
    monkeypatch.setenv("INCIDENTCTL_SNS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    with pytest.raises(ValueError, match="is not a file"):
        sns_config_from_env()


# ---------------------------------------------------------------- SNS through the wire


async def test_a_subscription_is_confirmed_only_for_an_allowed_topic_and_an_sns_url(
        receiver: RunningReceiver, fake_sns: FakeSns) -> None:
    before = len(fake_sns.confirmations)
    status, answer = await post(receiver, "/sns", fake_sns.sign(fake_sns.confirmation(TOPIC)))
    assert status == 200 and answer["confirmed"] == TOPIC
    assert answer["subscription_arn"].startswith(TOPIC + ":")
    assert len(fake_sns.confirmations) == before + 1 and fake_sns.confirmations[-1]["TopicArn"] == TOPIC

    other = "arn:aws:sns:eu-west-1:999999999999:someone-else"
    status, answer = await post(receiver, "/sns", fake_sns.sign(fake_sns.confirmation(other)))
    assert status == 403 and "is not on the allow-list" in answer["error"]
    elsewhere = fake_sns.confirmation(TOPIC, subscribe_url="https://attacker.example/?Action=ConfirmSubscription")
    status, answer = await post(receiver, "/sns", fake_sns.sign(elsewhere))
    assert status == 403 and "is not a trusted SNS host" in answer["error"]
    assert len(fake_sns.confirmations) == before + 1, "nothing else was fetched"

    unsubscribed = fake_sns.sign(fake_sns.confirmation(TOPIC, "UnsubscribeConfirmation"))
    status, answer = await post(receiver, "/sns", unsubscribed)
    assert status == 200 and answer == {"unsubscribed": TOPIC}
    assert len(fake_sns.confirmations) == before + 1, "an unsubscribe is not confirmed (that would resubscribe)"
    async with aiohttp.ClientSession() as session:
        async with session.get(receiver.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            metrics = await r.text()
    assert 'incidentctl_sns_messages_total{type="SubscriptionConfirmation"}' in metrics
    assert 'incidentctl_requests_rejected_total{reason="sns_topic"}' in metrics


async def test_an_alarm_opens_one_incident_with_its_labels_and_its_ok_resolves_it(
        receiver: RunningReceiver, client: Client, fake_sns: FakeSns, unique: str) -> None:
    name = f"ca-cpu-{unique}"
    firing = fake_sns.sign(fake_sns.notification(TOPIC, alarm(name, "ALARM", instance=f"i-{unique}")), version="1")
    status, answer = await post(receiver, "/sns", firing)
    assert status == 200, answer
    assert [(o["runbook"], o["result"]) for o in answer["incidents"]] == [("ca-ec2-cpu", "started")]
    incident = answer["incidents"][0]["incident_id"]
    assert ACCOUNT in incident and "eu-west-1" in incident

    state = await eventually(lambda: incidents.show_incident(client, incident),
                             lambda s: s["status"] == "waiting_approval")
    assert state["params"] == {"instance": f"i-{unique}", "region": "eu-west-1"}
    labels = next(iter(state["alerts"].values()))["labels"]
    assert {k: labels[k] for k in ("alertname", "account", "region", "namespace", "metric", "InstanceId",
                                   "AutoScalingGroupName")} == {
        "alertname": name, "account": ACCOUNT, "region": "eu-west-1", "namespace": "AWS/EC2",
        "metric": "CPUUtilization", "InstanceId": f"i-{unique}", "AutoScalingGroupName": "web-asg"}

    # SNS retries a delivery with the same signed message: counted on the one incident.
    status, again = await post(receiver, "/sns", firing)
    assert status == 200 and again["incidents"][0] == {**again["incidents"][0], "incident_id": incident,
                                                       "result": "updated"}
    # INSUFFICIENT_DATA changes nothing and says so.
    status, unknown = await post(receiver, "/sns", fake_sns.sign(
        fake_sns.notification(TOPIC, alarm(name, "INSUFFICIENT_DATA", instance=f"i-{unique}"))))
    assert status == 200 and unknown["incidents"] == [] and "INSUFFICIENT_DATA" in unknown["unrouted"][0]["reason"]

    ok = fake_sns.sign(fake_sns.notification(TOPIC, alarm(name, "OK", instance=f"i-{unique}"), subject="OK"))
    status, resolved = await post(receiver, "/sns", ok)
    assert status == 200 and resolved["incidents"][0]["incident_id"] == incident
    assert resolved["incidents"][0]["firing"] == 0
    summary = await incidents.wait_for_runbook(client, incident)
    assert summary["alert_status"] == "resolved" and summary["steps"]["gate"]["status"] == "superseded"
    assert summary["steps"]["verify"]["output"]["message"] == f"alarm resolved for i-{unique}"
    await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["status"] == "resolved")
    # The first ALARM sent again (a replay inside the age window, or a late retry) is the same firing: counted,
    # it does not re-open the incident. A new ALARM (a new StateChangeTime) would.
    status, replayed = await post(receiver, "/sns", firing)
    assert status == 200 and replayed["incidents"][0]["incident_id"] == incident
    state = await incidents.show_incident(client, incident)
    assert state["status"] == "resolved" and next(iter(state["alerts"].values()))["refired"] == 0
    kinds = [e["kind"] for e in await incidents.incident_timeline(client, incident)]
    assert kinds.count("alert_firing") == 1 and kinds.count("alert_resolved") == 1
    await incidents.cancel_incident(client, incident)


async def test_forged_altered_stale_or_unsigned_messages_are_refused(
        receiver: RunningReceiver, client: Client, fake_sns: FakeSns, unique: str) -> None:
    from tests.sns_fake import _key

    name = f"ca-cpu-forged-{unique}"
    signed = fake_sns.sign(fake_sns.notification(TOPIC, alarm(name, "ALARM")))
    altered = {**signed, "Message": alarm(name, "ALARM", instance="i-attacker")}
    forged = fake_sns.sign(fake_sns.notification(TOPIC, alarm(name, "ALARM")), key=_key())
    own_cert = fake_sns.sign(fake_sns.notification(TOPIC, alarm(name, "ALARM")),
                             cert_url="https://attacker.example/SimpleNotificationService-x.pem")
    stale = fake_sns.sign(fake_sns.notification(TOPIC, alarm(name, "ALARM"), timestamp=now_iso(-7200)))
    cases = [
        (altered, 403, "the signature does not match the message"),
        (forged, 403, "the signature does not match the message"),
        (own_cert, 403, "is not a trusted SNS host"),
        (stale, 403, "are refused as replays"),
        ({**signed, "SignatureVersion": "3"}, 403, "SignatureVersion must be 1 or 2"),
        ({**signed, "Signature": "not base64!"}, 403, "Signature is not base64"),
        ({k: v for k, v in signed.items() if k != "Signature"}, 400, "Signature missing"),
        ({**signed, "TopicArn": TOPIC + "-other"}, 403, "is not on the allow-list"),
        ({**signed, "Type": "Surprise"}, 400, "is not one of Notification"),
    ]
    for body, status, reason in cases:
        got, answer = await post(receiver, "/sns", body)
        assert (got, reason in str(answer.get("error"))) == (status, True), (reason, got, answer)
    got, answer = await post(receiver, "/sns", signed, headers={"x-amz-sns-message-type": "SubscriptionConfirmation"})
    assert got == 400 and "differs from the message's Type" in answer["error"]
    got, answer = await post(receiver, "/sns", None, raw=b"{not json")
    assert got == 400 and "not valid JSON" in answer["error"]
    not_alarm = fake_sns.sign(fake_sns.notification(TOPIC, "hello from a person"))
    got, answer = await post(receiver, "/sns", not_alarm)
    assert got == 422 and "not a CloudWatch alarm" in answer["error"]
    listed = [i async for i in client.list_workflows(f"WorkflowId STARTS_WITH 'incident-ca-ec2-cpu-{ACCOUNT}-{name}'")]
    assert listed == [], "nothing refused started an incident"


async def test_the_signing_certificate_is_fetched_once_and_the_endpoint_is_off_without_topics(
        receiver: RunningReceiver, client: Client, worker: Worker, fake_sns: FakeSns, unique: str,
        tmp_path: Path) -> None:
    def unsubscribed() -> dict[str, Any]:
        return fake_sns.sign(fake_sns.confirmation(TOPIC, "UnsubscribeConfirmation"))

    assert (await post(receiver, "/sns", unsubscribed()))[0] == 200
    fetched = fake_sns.certificate_fetches
    assert fetched >= 1
    for _ in range(3):
        assert (await post(receiver, "/sns", unsubscribed()))[0] == 200
    assert fake_sns.certificate_fetches == fetched, "the certificate is cached"

    # A trusted host that has no certificate now, or whose TLS does not verify: SNS should retry (503).
    missing = fake_sns.sign(fake_sns.confirmation(TOPIC), cert_url=f"{fake_sns.base_url}/gone.pem")
    status, answer = await post(receiver, "/sns", missing)
    assert status == 503 and "answered HTTP 404" in answer["error"]

    async def receiver_with(sns: SnsConfig) -> RunningReceiver:
        return await start_receiver(client, port=0, auth=ReceiverAuth(token=TOKEN), task_queue=TEST_TASK_QUEUE,
                                    runbook_paths=[tmp_path], sns=sns)

    untrusting = await receiver_with(SnsConfig(topic_arns=(TOPIC,), trust=SnsTrust(trusted_host=r"127\.0\.0\.1")))
    off = await receiver_with(SnsConfig())
    try:
        status, answer = await post(untrusting, "/sns", unsubscribed())
        assert status == 503 and "certificate verify failed" in answer["error"], "TLS is checked, not skipped"
        status, answer = await post(off, "/sns", fake_sns.sign(fake_sns.confirmation(TOPIC)))
        assert status == 403 and "SNS intake is off" in answer["error"]
    finally:
        await untrusting.stop()
        await off.stop()


# ---------------------------------------------------------------- Cloud Monitoring through the wire


async def test_cloud_monitoring_open_and_closed_reach_one_incident(receiver: RunningReceiver, client: Client,
                                                                   unique: str) -> None:
    policy = f"ca-gce-{unique}"
    basic = base64.b64encode(f"incidentctl:{TOKEN}".encode()).decode()
    json_type = {"Content-Type": "application/json"}
    for headers, path in (({}, "/gcm"), ({"Authorization": "Basic " + base64.b64encode(b"x:wrong").decode()}, "/gcm"),
                          ({}, "/gcm?auth_token=wrong")):
        status, answer = await post(receiver, path, gcm(policy, "open"), {**json_type, **headers})
        assert status == 401 and "missing or wrong credentials" in answer["error"]

    status, opened = await post(receiver, "/gcm", gcm(policy, "open", instance=unique),
                                {**json_type, "Authorization": f"Basic {basic}"})
    assert status == 200 and [(o["runbook"], o["result"]) for o in opened["incidents"]] == [("ca-gce-cpu", "started")]
    incident = opened["incidents"][0]["incident_id"]
    state = await eventually(lambda: incidents.show_incident(client, incident),
                             lambda s: s["status"] == "waiting_approval")
    assert state["params"] == {"instance": unique}
    labels = next(iter(state["alerts"].values()))["labels"]
    assert (labels["project"], labels["zone"], labels["severity"]) == ("shop-prod", "europe-west1-b", "warning")

    status, closed = await post(receiver, f"/gcm?auth_token={TOKEN}",
                                gcm(policy, "closed", instance=unique, ended=1_764_580_600), json_type)
    assert status == 200 and closed["incidents"][0]["incident_id"] == incident
    summary = await incidents.wait_for_runbook(client, incident)
    assert summary["alert_status"] == "resolved"
    assert summary["steps"]["verify"]["output"]["message"] == f"policy resolved for {unique}"

    status, bad = await post(receiver, f"/gcm?auth_token={TOKEN}", {"version": "1.2"}, json_type)
    assert status == 422 and "no `incident` object" in bad["error"]
    await incidents.cancel_incident(client, incident)
