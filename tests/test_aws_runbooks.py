"""The shipped AWS runbooks end to end: real Temporal dev server, in-process worker, moto's server as AWS.

moto reports every running instance's status checks as ok (it cannot fail a check), so the reboot path runs with
`skip_if_passing: false`, as an operator would who reboots on the alert alone; the default path (checks passing
again by the time the runbook looks) is the one where nothing is changed.
"""

from __future__ import annotations

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from incidentctl import client as incidents
from incidentctl.intake.routing import Router
from incidentctl.library import compile_file
from tests.aws_moto import REGION, MotoServer, launch_instance
from tests.conftest import eventually
from tests.runbook_run import RUNBOOKS, approve, finished, start, waiting_on
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
