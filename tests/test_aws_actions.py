"""The aws actions through the wire: boto3 in the action, moto's server as a separate process (tests/aws_moto.py).

moto is the witness twice: the resources the test seeds and reads back with its own boto3 client, and moto's
request recorder, which shows which API calls reached it (a dry run sends DryRun=true or nothing at all).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from activities.base import ActionInput, get_action
from activities.catalog import load_all
from tests.aws_moto import REGION, MotoServer, create_group, launch_instance

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def run(name: str, *, dry_run: bool = False, **params: Any) -> dict[str, Any]:
    load_all()
    return await get_action(name).activity(ActionInput(action=name, params={"region": REGION, **params},
                                                       incident_id="test-incident", step_id="test-step",
                                                       dry_run=dry_run))


async def fails(name: str, **params: Any) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        await run(name, **params)
    return caught.value


def state_of(aws: MotoServer, instance_id: str) -> str:
    found = aws.client("ec2").describe_instances(InstanceIds=[instance_id])
    return found["Reservations"][0]["Instances"][0]["State"]["Name"]


# --- reads -------------------------------------------------------------------------------------------------


async def test_instance_status_reports_state_and_checks(aws: MotoServer) -> None:
    instance = launch_instance(aws)
    status = await run("aws.ec2_instance_status", instance_id=instance)
    assert status["instance_id"] == instance and status["state"] == "running"
    assert status["checks"]["instance"] == "ok" and status["checks"]["system"] == "ok" and status["checks_ok"]
    aws.client("ec2").stop_instances(InstanceIds=[instance])
    stopped = await run("aws.ec2_instance_status", instance_id=instance)
    assert stopped["state"] == "stopped" and stopped["checks_ok"] is False
    seeding = ("DescribeImages", "RunInstances", "StopInstances")  # the test's own calls
    assert [op for op in aws.operations() if op not in seeding] == ["DescribeInstanceStatus"] * 2


async def test_an_unknown_instance_is_a_permanent_not_found(aws: MotoServer) -> None:
    error = await fails("aws.ec2_instance_status", instance_id="i-0123456789abcdef0")
    assert error.type == "AwsNotFound" and error.non_retryable
    assert "instance i-0123456789abcdef0 not found" in error.message
    assert "ec2:DescribeInstanceStatus" in error.message


async def test_asg_status_counts_instances_in_service(aws: MotoServer) -> None:
    create_group(aws, "web", min_size=1, desired=2, max_size=6)
    status = await run("aws.asg_status", group="web")
    assert (status["min"], status["desired"], status["max"], status["in_service"]) == (1, 2, 6, 2)
    assert status["at_desired"] and len(status["instances"]) == 2
    error = await fails("aws.asg_status", group="nope")
    assert error.type == "AwsNotFound" and "Auto Scaling group nope not found in eu-west-1" in error.message


async def test_cloudwatch_alarm_state_follows_the_alarm(aws: MotoServer) -> None:
    cloudwatch = aws.client("cloudwatch")
    cloudwatch.put_metric_alarm(AlarmName="web-cpu-high", MetricName="CPUUtilization", Namespace="AWS/EC2",
                                Statistic="Average", Period=60, EvaluationPeriods=1, Threshold=70,
                                ComparisonOperator="GreaterThanThreshold")
    cloudwatch.set_alarm_state(AlarmName="web-cpu-high", StateValue="ALARM", StateReason="CPU at 95%")
    alarm = await run("aws.cloudwatch_alarm", alarm="web-cpu-high")
    assert (alarm["state"], alarm["reason"], alarm["ok"]) == ("ALARM", "CPU at 95%", False)
    cloudwatch.set_alarm_state(AlarmName="web-cpu-high", StateValue="OK", StateReason="back")
    assert (await run("aws.cloudwatch_alarm", alarm="web-cpu-high"))["ok"] is True
    assert (await fails("aws.cloudwatch_alarm", alarm="nope")).type == "AwsNotFound"


async def test_cloudwatch_metric_combines_the_window(aws: MotoServer) -> None:
    now = datetime.now(UTC)
    dimension = [{"Name": "AutoScalingGroupName", "Value": "web"}]
    aws.client("cloudwatch").put_metric_data(Namespace="AWS/EC2", MetricData=[
        {"MetricName": "CPUUtilization", "Dimensions": dimension, "Value": value, "Timestamp": now - timedelta(
            seconds=seconds)} for value, seconds in ((80.0, 30), (90.0, 20), (40.0, 150))])
    params = {"namespace": "AWS/EC2", "metric": "CPUUtilization", "dimensions": {"AutoScalingGroupName": "web"}}
    average = await run("aws.cloudwatch_metric", **params, window="10m")
    assert average["has_data"] and average["value"] == pytest.approx(70.0), average
    peak = await run("aws.cloudwatch_metric", **params, statistic="Maximum", window="10m")
    assert peak["value"] == 90.0
    other = await run("aws.cloudwatch_metric", **{**params, "dimensions": {"AutoScalingGroupName": "api"}})
    assert other["value"] is None and other["has_data"] is False and other["datapoints"] == []


# --- changes ----------------------------------------------------------------------------------------------


async def test_reboot_dry_run_asks_ec2_with_dry_run_and_changes_nothing(aws: MotoServer) -> None:
    instance = launch_instance(aws)
    result = await run("aws.ec2_reboot", instance_id=instance, dry_run=True)
    assert result == {"instance_id": instance, "dry_run": True, "would": f"would reboot instance {instance}",
                      "checked_by_aws": True}
    reboots = [params for operation, params in aws.calls() if operation == "RebootInstances"]
    assert reboots == [{"DryRun": "true", "InstanceId.1": instance, "Version": reboots[0]["Version"]}]


async def test_reboot_reboots_and_waits_for_the_checks(aws: MotoServer) -> None:
    instance = launch_instance(aws)
    result = await run("aws.ec2_reboot", instance_id=instance, interval="1s")
    assert result["rebooted"] and result["status"]["checks_ok"] and not result["resumed"]
    operations = aws.operations()
    assert operations.count("RebootInstances") == 1
    assert operations.index("RebootInstances") < len(operations) - 1 - operations[::-1].index("DescribeInstanceStatus")


async def test_reboot_of_an_unknown_instance_fails_permanently(aws: MotoServer) -> None:
    error = await fails("aws.ec2_reboot", instance_id="i-0123456789abcdef0")
    assert error.type == "AwsNotFound" and error.non_retryable and "ec2:RebootInstances" in error.message


async def test_stop_start_stops_then_starts_and_waits(aws: MotoServer) -> None:
    instance = launch_instance(aws)
    result = await run("aws.ec2_stop_start", instance_id=instance, interval="1s")
    assert result["stopped_and_started"] and result["status"]["state"] == "running"
    operations = [op for op in aws.operations() if op in ("StopInstances", "StartInstances")]
    assert operations == ["StopInstances", "StartInstances"]
    assert state_of(aws, instance) == "running"


async def test_stop_start_dry_run_sends_only_a_dry_run_stop(aws: MotoServer) -> None:
    instance = launch_instance(aws)
    result = await run("aws.ec2_stop_start", instance_id=instance, dry_run=True)
    assert result["would"] == f"would stop and start instance {instance}"
    assert [(op, params.get("DryRun")) for op, params in aws.calls() if op.endswith("Instances")
            and op != "RunInstances"] == [("StopInstances", "true")]
    assert state_of(aws, instance) == "running"


async def test_asg_set_capacity_sets_the_number_within_bounds(aws: MotoServer) -> None:
    create_group(aws, "web", min_size=1, desired=2, max_size=6)
    result = await run("aws.asg_set_capacity", group="web", desired=4, max=5, interval="1s")
    assert (result["before"], result["after"], result["changed"]) == (2, 4, True)
    assert result["status"]["in_service"] == 4
    group = aws.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["web"])
    assert group["AutoScalingGroups"][0]["DesiredCapacity"] == 4
    again = await run("aws.asg_set_capacity", group="web", desired=4, max=5)
    assert again["changed"] is False
    assert aws.operations().count("SetDesiredCapacity") == 1, "an absolute number already set is not sent again"


@pytest.mark.parametrize(("desired", "bound", "expected"), [
    (6, 5, "outside [1, 5] (group min 1, group max 6, runbook max 5)"),
    (7, 10, "outside [1, 6] (group min 1, group max 6, runbook max 10)"),
    (0, 10, "outside [1, 6]"),
])
async def test_asg_set_capacity_refuses_outside_the_bounds(aws: MotoServer, desired: int, bound: int,
                                                           expected: str) -> None:
    create_group(aws, "web", min_size=1, desired=2, max_size=6)
    error = await fails("aws.asg_set_capacity", group="web", desired=desired, max=bound)
    assert error.type == "RefusedByBound" and error.non_retryable and expected in error.message
    assert "SetDesiredCapacity" not in aws.operations()


async def test_asg_set_capacity_dry_run_checks_bounds_and_sends_nothing(aws: MotoServer) -> None:
    create_group(aws, "web", min_size=1, desired=2, max_size=6)
    result = await run("aws.asg_set_capacity", group="web", desired=3, max=5, dry_run=True)
    assert result["would"] == "would set the desired capacity of Auto Scaling group web from 2 to 3"
    assert "SetDesiredCapacity" not in aws.operations()
    assert (await fails("aws.asg_set_capacity", group="web", desired=9, max=5)).type == "RefusedByBound"
