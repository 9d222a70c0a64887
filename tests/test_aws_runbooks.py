"""The shipped AWS runbooks end to end: real Temporal dev server, in-process worker, moto's server as AWS.

moto reports every running instance's status checks as ok (it cannot fail a check), so the reboot path runs with
`skip_if_passing: false`, as an operator would who reboots on the alert alone; the default path (checks passing
again by the time the runbook looks) is the one where nothing is changed. The Auto Scaling runbook's alarm and
CPU are set by the test through moto (moto does not evaluate alarms against metrics).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from incidentctl import client as incidents
from incidentctl.intake.routing import Router
from incidentctl.library import compile_file, compile_text
from tests.aws_moto import REGION, MotoServer, create_group, launch_instance
from tests.conftest import TEST_TASK_QUEUE, eventually
from tests.runbook_run import RUNBOOKS, alert, approve, finished, start, waiting_on
from workflows.model import ApprovalDecision

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def alert_for(instance: str) -> dict[str, str]:
    return {"alertname": "EC2StatusCheckFailed", "instance_id": instance, "region": REGION,
            "severity": "critical"}


def test_the_status_check_alarm_routes_to_the_runbook_with_its_parameters() -> None:
    from incidentctl.params import resolve_params

    router = Router([compile_file(RUNBOOKS / "aws-ec2-instance-unhealthy.yaml")])
    labels = alert_for("i-0123456789abcdef0")
    route = router.route(labels)
    assert route is not None and route.runbook == "aws-ec2-instance-unhealthy"
    params = resolve_params(route.plan, {}, {"labels": labels, "annotations": {}})
    assert (params["instance_id"], params["region"]) == ("i-0123456789abcdef0", REGION)
    assert router.severity(route, labels) == "SEV2"


async def test_unhealthy_instance_is_rebooted_with_approval_and_verified(
        client: Client, worker: Worker, unique: str, aws: MotoServer) -> None:
    instance = launch_instance(aws)
    incident = await start(client, "aws-ec2-instance-unhealthy", unique, alert_for(instance),
                           skip_if_passing=False)
    asked = await approve(client, incident, "approve_reboot")
    summary = await finished(client, incident)

    assert f"Instance {instance} in {REGION}" in asked["message"] and "Reboot it?" in asked["message"]
    assert asked["will_run"]["action"] == "aws.ec2_reboot"
    assert asked["will_run"]["params"]["instance_id"] == instance
    assert summary["outcome"] == "succeeded", summary.get("failure")
    steps = summary["steps"]
    assert steps["status"]["output"]["state"] == "running"
    assert steps["reboot"]["output"]["rebooted"] is True
    assert steps["verify"]["output"]["checks_ok"] is True
    operations = aws.operations()
    assert operations.count("RebootInstances") == 1, operations
    reboot = next(params for op, params in aws.calls() if op == "RebootInstances")
    assert reboot["InstanceId.1"] == instance and "DryRun" not in reboot
    assert operations.index("RebootInstances") < len(operations) - 1, "verified after the reboot"


async def test_rejected_reboot_changes_nothing(client: Client, worker: Worker, unique: str, aws: MotoServer) -> None:
    instance = launch_instance(aws)
    incident = await start(client, "aws-ec2-instance-unhealthy", unique, alert_for(instance),
                           skip_if_passing=False)
    await eventually(lambda: incidents.show_incident(client, incident), waiting_on("approve_reboot"), timeout=60)
    await incidents.decide(client, incident, ApprovalDecision(approver="bob", approve=False, step="approve_reboot",
                                                              comment="it is being replaced"))
    summary = await finished(client, incident)
    assert summary["outcome"] == "failed"
    assert "reboot" not in summary["steps"]
    assert "RebootInstances" not in aws.operations()


async def test_checks_passing_again_end_the_runbook_without_a_reboot(
        client: Client, worker: Worker, unique: str, aws: MotoServer) -> None:
    instance = launch_instance(aws)
    incident = await start(client, "aws-ec2-instance-unhealthy", unique, alert_for(instance))
    summary = await finished(client, incident)
    assert summary["outcome"] == "succeeded"
    assert "passing_again" in summary["steps"] and "approve_reboot" not in summary["steps"]
    assert "RebootInstances" not in aws.operations()


async def test_a_stopped_instance_is_handed_to_people(client: Client, worker: Worker, unique: str,
                                                      aws: MotoServer) -> None:
    instance = launch_instance(aws)
    aws.client("ec2").stop_instances(InstanceIds=[instance])
    incident = await start(client, "aws-ec2-instance-unhealthy", unique, alert_for(instance))
    summary = await finished(client, incident)
    assert summary["outcome"] == "needs_attention", summary
    assert "stopped, not running" in str(summary["steps"]["not_running"]["output"])
    assert "RebootInstances" not in aws.operations()


def cpu(aws: MotoServer, group: str, value: float, minutes_ago: float) -> None:
    aws.client("cloudwatch").put_metric_data(Namespace="AWS/EC2", MetricData=[{
        "MetricName": "CPUUtilization", "Dimensions": [{"Name": "AutoScalingGroupName", "Value": group}],
        "Value": value, "Timestamp": datetime.now(UTC) - timedelta(minutes=minutes_ago)}])


def desired_of(aws: MotoServer, group: str) -> int:
    found = aws.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[group])
    return found["AutoScalingGroups"][0]["DesiredCapacity"]


async def test_hot_group_is_scaled_out_within_the_bound_and_back_after_the_cool_down(
        client: Client, worker: Worker, unique: str, aws: MotoServer) -> None:
    create_group(aws, "web", min_size=1, desired=2, max_size=6)
    cloudwatch = aws.client("cloudwatch")
    cloudwatch.put_metric_alarm(AlarmName="web-cpu-high", MetricName="CPUUtilization", Namespace="AWS/EC2",
                                Dimensions=[{"Name": "AutoScalingGroupName", "Value": "web"}], Statistic="Average",
                                Period=60, EvaluationPeriods=1, Threshold=80, ComparisonOperator="GreaterThanThreshold")
    cloudwatch.set_alarm_state(AlarmName="web-cpu-high", StateValue="ALARM", StateReason="CPU 92%")
    cpu(aws, "web", 92.0, minutes_ago=3)
    labels = {"alertname": "ASGHighCPU", "group": "web", "region": REGION, "alarm": "web-cpu-high",
              "severity": "warning"}
    # step 4 from 2 would be 6; the runbook's max of 5 bounds it.
    incident = await start(client, "aws-asg-high-cpu", unique, labels, step=4, max=5, cooldown="1m")
    asked = await approve(client, incident, "approve_scale_out")
    assert "CPU averages 92.0% over 10 minutes. Scale out from 2 to 5 instances" in asked["message"]
    await eventually(lambda: asyncio.to_thread(desired_of, aws, "web"), lambda n: n == 5, timeout=60)

    # The alarm clears and the CPU stays low: the minute-long cool-down window holds only the low datapoint.
    cloudwatch.set_alarm_state(AlarmName="web-cpu-high", StateValue="OK", StateReason="CPU 30%")
    cpu(aws, "web", 30.0, minutes_ago=0)
    summary = await finished(client, incident)

    assert summary["outcome"] == "succeeded", summary.get("failure")
    steps = summary["steps"]
    assert (steps["scale_out"]["output"]["before"], steps["scale_out"]["output"]["after"]) == (2, 5)
    assert steps["alarm_ok"]["output"]["state"] == "OK"
    assert steps["cooldown"]["output"]["value"] == 30.0
    assert (steps["scale_back"]["output"]["before"], steps["scale_back"]["output"]["after"]) == (5, 2)
    assert desired_of(aws, "web") == 2
    sets = [params["DesiredCapacity"] for op, params in aws.calls() if op == "SetDesiredCapacity"]
    assert sets == ["5", "2"]


async def test_a_group_already_at_its_bound_is_handed_to_people(client: Client, worker: Worker, unique: str,
                                                                 aws: MotoServer) -> None:
    create_group(aws, "web", min_size=1, desired=5, max_size=6)
    labels = {"alertname": "ASGHighCPU", "group": "web", "region": REGION, "alarm": "web-cpu-high"}
    incident = await start(client, "aws-asg-high-cpu", unique, labels, max=5)
    summary = await finished(client, incident)
    assert summary["outcome"] == "needs_attention"
    assert "SetDesiredCapacity" not in aws.operations()


EC2_RUNBOOK = (RUNBOOKS / "aws-ec2-instance-unhealthy.yaml").read_text()
SHIPPED_AWS_CHANGES = 'changes:\n  aws:\n    regions: ["*"]\n    resources: ["ec2/i-*"]\n'


async def scheduled_actions(client: Client, incident: str) -> list[str]:
    history = await client.get_workflow_handle(incident).fetch_history()
    return [e.activity_task_scheduled_event_attributes.activity_type.name for e in history.events
            if e.HasField("activity_task_scheduled_event_attributes")]


async def test_an_alert_cannot_aim_a_reboot_outside_the_runbooks_regions(
        client: Client, worker: Worker, unique: str, aws: MotoServer) -> None:
    """The runbook allows eu-west-1 only; an alert from us-east-1 gets its instance looked at, approved even, and
    the workflow refuses the reboot before it is scheduled."""
    assert SHIPPED_AWS_CHANGES in EC2_RUNBOOK
    narrowed = EC2_RUNBOOK.replace(SHIPPED_AWS_CHANGES, 'changes:\n  aws:\n    regions: [eu-west-1]\n')
    plan = compile_text(narrowed, "aws-ec2-instance-unhealthy.yaml")
    instance = launch_instance(aws, "us-east-1")
    labels = {**alert_for(instance), "region": "us-east-1"}
    started = await incidents.start_incident(client, plan, alert=alert(**labels), params={"skip_if_passing": False},
                                             key=unique, task_queue=TEST_TASK_QUEUE, started_by="alertmanager")
    await approve(client, started.incident_id, "approve_reboot")
    summary = await finished(client, started.incident_id)
    reboot = summary["steps"]["reboot"]
    assert reboot["status"] == "failed" and reboot["error"]["type"] == "ChangeNotAllowed"
    assert "region us-east-1 is not in the runbook's changes.aws.regions (eu-west-1)" in reboot["error"]["message"]
    assert "aws.ec2_reboot" not in await scheduled_actions(client, started.incident_id), "refused by the workflow"
    assert "RebootInstances" not in aws.operations()
