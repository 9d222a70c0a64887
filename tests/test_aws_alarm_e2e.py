"""A shipped AWS runbook started by a CloudWatch alarm through SNS, end to end: signed SNS notifications (the test
CA of tests/sns_fake.py) posted to the real receiver loaded with the shipped runbooks, the incident on the real dev
server, its actions against moto, and the alarm's OK resolving its alert.

moto does not evaluate alarms or send SNS notifications: the test sets the alarm's state in moto and posts the
notification AWS would send for that state change, in the documented message shape.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from incidentctl import client as incidents
from incidentctl.intake.cloudwatch import parse_alarm
from incidentctl.intake.routing import Router
from incidentctl.intake.runner import RunningReceiver, start_receiver
from incidentctl.intake.server import ReceiverAuth
from incidentctl.intake.sns import SnsConfig
from incidentctl.intake.sns_signature import SnsTrust
from incidentctl.library import compile_file
from incidentctl.params import resolve_params
from tests.aws_moto import REGION, MotoServer, create_group
from tests.conftest import TEST_TASK_QUEUE, eventually
from tests.runbook_run import RUNBOOKS, approve
from tests.sns_fake import FakeSns, now_iso

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ACCOUNT = "123456789012"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:incidentctl-aws-alarms"


def group_cpu_alarm(name: str, group: str, state: str, reason: str) -> str:
    """The SNS Message of a CloudWatch alarm on a group's CPUUtilization changing state."""
    return json.dumps({
        "AlarmName": name, "AlarmDescription": f"CPU of {group} above 80%", "AWSAccountId": ACCOUNT,
        "NewStateValue": state, "NewStateReason": reason, "OldStateValue": "OK" if state == "ALARM" else "ALARM",
        "StateChangeTime": now_iso().replace("Z", "+0000"), "Region": "EU (Ireland)",
        "AlarmArn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}",
        "OKActions": [TOPIC], "AlarmActions": [TOPIC], "InsufficientDataActions": [],
        "Trigger": {"MetricName": "CPUUtilization", "Namespace": "AWS/EC2", "StatisticType": "Statistic",
                    "Statistic": "AVERAGE", "Unit": None,
                    "Dimensions": [{"value": group, "name": "AutoScalingGroupName"}],
                    "Period": 60, "EvaluationPeriods": 1, "ComparisonOperator": "GreaterThanThreshold",
                    "Threshold": 80.0, "TreatMissingData": "missing", "EvaluateLowSampleCountPercentile": ""},
    })


def test_a_group_cpu_alarm_routes_to_the_asg_runbook_among_the_shipped_ones() -> None:
    router = Router([compile_file(path) for path in sorted(RUNBOOKS.glob("*.yaml"))])
    alert = parse_alarm(group_cpu_alarm("web-cpu-high", "web", "ALARM", "1 datapoint [92.0] > 80"), TOPIC).alerts[0]
    route = router.route(alert["labels"])
    assert route is not None and route.runbook == "aws-asg-high-cpu"
    params = resolve_params(route.plan, {}, alert)
    assert (params["group"], params["region"], params["alarm"]) == ("web", REGION, "web-cpu-high")
    assert router.severity(route, alert["labels"]) == "SEV3", "CloudWatch sends no severity: the runbook's"
    # A CPU alarm on one instance names no group: not this runbook's.
    on_instance = json.loads(group_cpu_alarm("i-cpu", "web", "ALARM", "high"))
    on_instance["Trigger"]["Dimensions"] = [{"value": "i-0abc", "name": "InstanceId"}]
    labels = parse_alarm(json.dumps(on_instance), TOPIC).alerts[0]["labels"]
    assert router.route(labels) is None


@pytest.fixture(scope="module")
async def fake_sns(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FakeSns]:
    async with FakeSns(tmp_path_factory.mktemp("sns")).running() as fake:
        yield fake


@pytest.fixture(scope="module")
async def receiver(client: Client, worker: Worker, fake_sns: FakeSns) -> AsyncIterator[RunningReceiver]:
    """The receiver as deployed: every shipped runbook loaded, SNS trusted through the test CA only."""
    sns = SnsConfig(topic_arns=(TOPIC,), trust=SnsTrust(trusted_host=r"127\.0\.0\.1",
                                                       ca_bundle=str(fake_sns.ca_bundle)))
    running = await start_receiver(client, port=0, auth=ReceiverAuth(token="aws-alarm-token"),
                                   task_queue=TEST_TASK_QUEUE, runbook_paths=[RUNBOOKS], sns=sns)
    yield running
    await running.stop()


async def notify(receiver: RunningReceiver, fake_sns: FakeSns, message: str, subject: str) -> dict[str, Any]:
    """Post a signed SNS Notification as SNS does (text/plain, its type in a header); the receiver's answer."""
    body = fake_sns.sign(fake_sns.notification(TOPIC, message, subject=subject))
    async with aiohttp.ClientSession() as session:
        async with session.post(receiver.url + "/sns", data=json.dumps(body).encode(),
                                headers={"Content-Type": "text/plain; charset=UTF-8",
                                         "x-amz-sns-message-type": "Notification"}) as response:
            answer = await response.json()
            assert response.status == 200, answer
            return answer


def desired_of(aws: MotoServer, group: str) -> int:
    found = aws.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[group])
    return found["AutoScalingGroups"][0]["DesiredCapacity"]


async def test_a_cloudwatch_alarm_through_sns_runs_the_asg_runbook_and_its_ok_resolves_the_alert(
        receiver: RunningReceiver, fake_sns: FakeSns, client: Client, unique: str, aws: MotoServer) -> None:
    group, alarm = f"web-{unique}", f"web-cpu-high-{unique}"
    create_group(aws, group, min_size=1, desired=2, max_size=6)
    cloudwatch = aws.client("cloudwatch")
    cloudwatch.put_metric_alarm(AlarmName=alarm, MetricName="CPUUtilization", Namespace="AWS/EC2",
                                Dimensions=[{"Name": "AutoScalingGroupName", "Value": group}], Statistic="Average",
                                Period=60, EvaluationPeriods=1, Threshold=80, ComparisonOperator="GreaterThanThreshold")
    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="CPU 92%")
    cloudwatch.put_metric_data(Namespace="AWS/EC2", MetricData=[{
        "MetricName": "CPUUtilization", "Dimensions": [{"Name": "AutoScalingGroupName", "Value": group}],
        "Value": 92.0, "Timestamp": datetime.now(UTC) - timedelta(minutes=3)}])

    firing = await notify(receiver, fake_sns, group_cpu_alarm(alarm, group, "ALARM", "1 datapoint [92.0] > 80"),
                          subject="ALARM")
    assert [(o["runbook"], o["result"]) for o in firing["incidents"]] == [("aws-asg-high-cpu", "started")], firing
    incident = firing["incidents"][0]["incident_id"]
    state = await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["params"], timeout=60)
    assert {k: state["params"][k] for k in ("group", "region", "alarm")} == {
        "group": group, "region": REGION, "alarm": alarm}, "the runbook's parameters from the SNS labels"

    asked = await approve(client, incident, "approve_scale_out")
    assert f"{group} CPU averages 92.0% over 10 minutes. Scale out from 2 to 4 instances" in asked["message"]
    await eventually(lambda: asyncio.to_thread(desired_of, aws, group), lambda n: n == 4, timeout=60)

    # The extra capacity brings CPU down: CloudWatch moves the alarm to OK and SNS says so.
    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="CPU 30%")
    resolved = await notify(receiver, fake_sns, group_cpu_alarm(alarm, group, "OK", "1 datapoint [30.0] < 80"),
                            subject="OK")
    assert resolved["incidents"][0]["incident_id"] == incident and resolved["incidents"][0]["firing"] == 0

    def alarm_cleared_and_cooling_down(state: dict[str, Any]) -> bool:
        alerts = list(state["alerts"].values())
        return (len(alerts) == 1 and alerts[0]["status"] == "resolved"
                and "cooldown" in state.get("current_steps", []))

    state = await eventually(lambda: incidents.show_incident(client, incident), alarm_cleared_and_cooling_down,
                             timeout=90)
    kinds = [e["kind"] for e in await incidents.incident_timeline(client, incident)]
    assert kinds.count("alert_firing") == 1 and kinds.count("alert_resolved") == 1
    # The OK does not cut the runbook short (on_alert_resolved: continue): the capacity stays through the
    # cool-down (15 minutes by default, not waited for here; the scale back is shown in test_aws_runbooks.py).
    assert desired_of(aws, group) == 4
    sets = [params["DesiredCapacity"] for op, params in aws.calls() if op == "SetDesiredCapacity"]
    assert sets == ["4"]
    await incidents.cancel_incident(client, incident)
