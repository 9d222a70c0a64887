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
from incidentctl.dsl.plan import AwsChanges, Changes
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


# --- ECS, RDS, SSM ----------------------------------------------------------------------------------------


def ecs_service(aws: MotoServer) -> None:
    ecs = aws.client("ecs")
    ecs.create_cluster(clusterName="prod")
    ecs.register_task_definition(family="api", containerDefinitions=[{"name": "api", "image": "nginx",
                                                                      "memory": 128}])
    ecs.create_service(cluster="prod", serviceName="api", taskDefinition="api", desiredCount=2)


async def test_ecs_force_deploy_starts_a_new_deployment(aws: MotoServer) -> None:
    ecs_service(aws)
    result = await run("aws.ecs_force_deploy", cluster="prod", service="api", wait=False)
    assert result["deployment"] and result["service"]["desired"] == 2
    updates = [params for op, params in aws.calls() if op == "UpdateService"]
    assert updates == [{"cluster": "prod", "service": "api", "forceNewDeployment": True}]


async def test_ecs_force_deploy_waits_for_steady_state_and_reports_when_it_does_not_come(aws: MotoServer) -> None:
    """moto places no tasks (no container instances run anything), so a service never becomes steady there: the
    wait is seen to poll and give up with what it saw; a steady service cannot be shown against moto."""
    ecs_service(aws)
    error = await fails("aws.ecs_force_deploy", cluster="prod", service="api", timeout="3s", interval="1s")
    assert error.type == "VerificationFailed" and error.non_retryable and "services_stable not reached" in error.message
    assert aws.operations().count("DescribeServices") >= 3


async def test_ecs_service_status_reports_counts_and_deployments(aws: MotoServer) -> None:
    ecs_service(aws)
    status = await run("aws.ecs_service_status", cluster="prod", service="api")
    assert (status["service"], status["desired"], status["running"]) == ("api", 2, 0)
    assert len(status["deployments"]) == 1 and status["steady"] is False, "moto runs no tasks"
    assert (await fails("aws.ecs_service_status", cluster="prod", service="nope")).type == "AwsNotFound"


async def test_ecs_unknown_service_and_dry_run(aws: MotoServer) -> None:
    ecs_service(aws)
    assert (await fails("aws.ecs_force_deploy", cluster="prod", service="nope")).type == "AwsNotFound"
    dry = await run("aws.ecs_force_deploy", cluster="prod", service="api", dry_run=True)
    assert dry["would"] == "would force a new deployment of ECS service api in cluster prod"
    assert "UpdateService" not in aws.operations()


def db_instance(aws: MotoServer) -> None:
    aws.client("rds").create_db_instance(DBInstanceIdentifier="orders", DBInstanceClass="db.t3.micro",
                                         Engine="postgres", MasterUsername="admin", MasterUserPassword="x" * 12,
                                         AllocatedStorage=20)


async def test_rds_reboot_reboots_and_waits_until_available(aws: MotoServer) -> None:
    db_instance(aws)
    status = await run("aws.rds_instance_status", db_instance="orders")
    assert (status["status"], status["engine"], status["multi_az"]) == ("available", "postgres", False)
    result = await run("aws.rds_reboot", db_instance="orders", force_failover=True, interval="1s")
    assert result["rebooted"] and result["db"]["status"] == "available"
    reboots = [params for op, params in aws.calls() if op == "RebootDBInstance"]
    assert [(r["DBInstanceIdentifier"], r["ForceFailover"]) for r in reboots] == [("orders", "true")]
    dry = await run("aws.rds_reboot", db_instance="orders", dry_run=True)
    assert dry["would"] == "would reboot DB instance orders" and aws.operations().count("RebootDBInstance") == 1
    error = await fails("aws.rds_reboot", db_instance="nope")
    assert error.type == "AwsNotFound" and "rds:DescribeDBInstances" in error.message


async def test_ssm_runs_a_named_document_and_returns_its_result(aws: MotoServer) -> None:
    instance = launch_instance(aws)
    result = await run("aws.ssm_run_command", instance_id=instance, document="AWS-RunPatchBaseline",
                       parameters={"Operation": ["Scan"]}, interval="1s")
    assert result["status"] == "Success" and result["command_id"]
    (sent,) = [params for op, params in aws.calls() if op == "SendCommand"]
    assert (sent["DocumentName"], sent["Parameters"], sent["InstanceIds"]) == (
        "AWS-RunPatchBaseline", {"Operation": ["Scan"]}, [instance])


async def test_ssm_refuses_free_form_shell(aws: MotoServer) -> None:
    instance = launch_instance(aws)
    error = await fails("aws.ssm_run_command", instance_id=instance, document="AWS-RunShellScript",
                        parameters={"commands": ["reboot"]})
    assert error.type == "RefusedByBound" and error.non_retryable
    assert "SendCommand" not in aws.operations()


# --- the generic actions ------------------------------------------------------------------------------------

MODIFY = "ec2:ModifyInstanceAttribute"


def allowing(*operations: str) -> Changes:
    return Changes(aws=AwsChanges(regions=["*"], operations=list(operations)))


async def change(instance: str, changes: Changes | None, dry_run: bool = False) -> dict[str, Any]:
    load_all()
    params = {"region": REGION, "service": "ec2", "operation": "ModifyInstanceAttribute", "resource": instance,
              "args": {"InstanceId": instance, "DisableApiTermination": {"Value": True}}}
    return await get_action("aws.change").activity(ActionInput(action="aws.change", params=params,
                                                               dry_run=dry_run, changes=changes))


def termination_protected(aws: MotoServer, instance: str) -> bool:
    answer = aws.client("ec2").describe_instance_attribute(InstanceId=instance, Attribute="disableApiTermination")
    return answer["DisableApiTermination"]["Value"]


async def test_aws_call_reads_any_describe_and_returns_plain_json(aws: MotoServer) -> None:
    instance = launch_instance(aws)
    answer = await run("aws.call", service="ec2", operation="DescribeInstances", args={"InstanceIds": [instance]})
    found = answer["Reservations"][0]["Instances"][0]
    assert found["InstanceId"] == instance and isinstance(found["LaunchTime"], str)
    assert "ResponseMetadata" not in answer


async def test_aws_call_refuses_what_is_not_a_read_and_names_unknown_operations(aws: MotoServer) -> None:
    error = await fails("aws.call", service="ec2", operation="TerminateInstances",
                        args={"InstanceIds": ["i-0123456789abcdef0"]})
    assert error.type == "ChangeNotAllowed" and "use aws.change" in error.message
    assert (await fails("aws.call", service="ec2", operation="DescribeNothing")).type == "InvalidParams"
    assert (await fails("aws.call", service="nosuchservice", operation="DescribeX")).type == "InvalidParams"
    assert "TerminateInstances" not in aws.operations()


async def test_aws_change_calls_only_what_the_runbook_allows(aws: MotoServer) -> None:
    instance = launch_instance(aws)
    with pytest.raises(ApplicationError) as caught:
        await change(instance, allowing("ec2:StopInstances"))
    assert caught.value.type == "ChangeNotAllowed" and f"{MODIFY}: it is not on" in caught.value.message
    assert not termination_protected(aws, instance)
    dry = await change(instance, allowing(MODIFY), dry_run=True)
    assert dry["checked_by_aws"] and not termination_protected(aws, instance)
    await change(instance, allowing(MODIFY))
    assert termination_protected(aws, instance)
    modified = [params.get("DryRun") for op, params in aws.calls() if op == "ModifyInstanceAttribute"]
    assert modified == ["true", None], "the dry run asked EC2 with DryRun, then the real call"


async def test_aws_wait_uses_a_boto3_waiter(aws: MotoServer) -> None:
    instance = launch_instance(aws)
    result = await run("aws.wait", service="ec2", waiter="instance_running", args={"InstanceIds": [instance]})
    assert result["ok"] is True
    aws.client("ec2").stop_instances(InstanceIds=[instance])
    error = await fails("aws.wait", service="ec2", waiter="instance_running", args={"InstanceIds": [instance]},
                        timeout="2s", interval="1s")
    assert error.type == "VerificationFailed"
    assert (await fails("aws.wait", service="ec2", waiter="nope_waiter")).type == "InvalidParams"


async def test_a_metric_window_beyond_a_day_is_refused_before_any_call(aws: MotoServer) -> None:
    error = await fails("aws.cloudwatch_metric", namespace="AWS/EC2", metric="CPUUtilization", window="2d")
    assert error.type == "InvalidParams" and error.non_retryable and "within 24h" in error.message
    assert "GetMetricStatistics" not in aws.operations()
