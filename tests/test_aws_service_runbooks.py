"""The shipped ECS and RDS runbooks end to end: real Temporal dev server, in-process worker, moto's server as AWS.

moto places no ECS tasks (a service's running count stays 0 whatever it wants), so a forced deployment never
becomes steady there: the ECS runbook is shown forcing the deployment, waiting, giving up and paging; its
`verify` step after a steady deployment cannot be shown against moto. moto's RDS reboot is instant and does not
model a failover (the instance stays in its zone): the test shows what is asked of RDS (ForceFailover only for a
Multi-AZ instance) and that the runbook verifies the instance available afterwards.
"""

from __future__ import annotations

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from incidentctl import client as incidents
from incidentctl.intake.routing import Router
from incidentctl.library import compile_file
from incidentctl.params import resolve_params
from tests.aws_moto import REGION, MotoServer
from tests.conftest import eventually
from tests.runbook_run import RUNBOOKS, approve, finished, start, waiting_on
from workflows.model import ApprovalDecision

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def ecs_alert(service: str = "api") -> dict[str, str]:
    return {"alertname": "ECSServiceUnhealthy", "cluster": "prod", "service": service, "region": REGION,
            "severity": "critical"}


def rds_alert(db_instance: str = "orders") -> dict[str, str]:
    return {"alertname": "RDSConnectionFailures", "db_instance": db_instance, "region": REGION,
            "severity": "warning"}


def ecs_service(aws: MotoServer, desired: int = 2) -> None:
    ecs = aws.client("ecs")
    ecs.create_cluster(clusterName="prod")
    ecs.register_task_definition(family="api", containerDefinitions=[{"name": "api", "image": "nginx",
                                                                      "memory": 128}])
    ecs.create_service(cluster="prod", serviceName="api", taskDefinition="api", desiredCount=desired)


def db_instance(aws: MotoServer, name: str, *, multi_az: bool) -> str:
    """A DB instance of its own per test: another incident's recent reboot of the same instance would make the
    runbook ask for a fresh approval (workflows/leases.py), which these tests do not give."""
    aws.client("rds").create_db_instance(DBInstanceIdentifier=name, DBInstanceClass="db.t3.micro",
                                         Engine="postgres", MasterUsername="admin", MasterUserPassword="x" * 12,
                                         AllocatedStorage=20, MultiAZ=multi_az)
    return name


@pytest.mark.parametrize(("runbook", "labels", "expected", "severity"), [
    ("aws-ecs-service-unhealthy", ecs_alert(), {"cluster": "prod", "service": "api", "region": REGION}, "SEV2"),
    ("aws-rds-connection-failures", rds_alert(), {"db_instance": "orders", "region": REGION}, "SEV3"),
])
def test_the_alerts_route_to_the_runbooks_with_their_parameters(runbook: str, labels: dict[str, str],
                                                                expected: dict[str, str], severity: str) -> None:
    router = Router([compile_file(RUNBOOKS / f"{name}.yaml")
                     for name in ("aws-ecs-service-unhealthy", "aws-rds-connection-failures")])
    route = router.route(labels)
    assert route is not None and route.runbook == runbook
    params = resolve_params(route.plan, {}, {"labels": labels, "annotations": {}})
    assert {key: params[key] for key in expected} == expected
    assert router.severity(route, labels) == severity


async def test_an_unhealthy_service_is_redeployed_and_pages_when_it_does_not_become_steady(
        client: Client, worker: Worker, unique: str, aws: MotoServer) -> None:
    """The deployment is forced once and waited for; in moto no task ever runs, so the wait gives up as it would
    for a task definition whose fresh tasks fail too, and the rollback pages."""
    ecs_service(aws, desired=2)
    incident = await start(client, "aws-ecs-service-unhealthy", unique, ecs_alert(), steady_timeout="4s")
    summary = await finished(client, incident)

    steps = summary["steps"]
    assert (steps["status"]["output"]["desired"], steps["status"]["output"]["running"]) == (2, 0)
    redeploy = steps["redeploy"]
    assert redeploy["status"] == "failed" and redeploy["error"]["type"] == "VerificationFailed"
    assert "services_stable not reached" in redeploy["error"]["message"]
    assert "verify" not in steps, "nothing is verified after a deployment that never became steady"
    assert "did not become steady after a new deployment (0 of 2 tasks ran before it)" in str(
        steps["escalate"]["output"])
    updates = [params for op, params in aws.calls() if op == "UpdateService"]
    assert updates == [{"cluster": "prod", "service": "api", "forceNewDeployment": True}], "forced once"
    operations = aws.operations()
    assert operations.count("DescribeServices") >= 3, "the wait polled the service"
    assert summary["outcome"] == "rolled_back", summary["outcome"]


async def test_a_service_that_wants_no_tasks_is_handed_to_people(client: Client, worker: Worker, unique: str,
                                                                  aws: MotoServer) -> None:
    ecs_service(aws, desired=0)
    incident = await start(client, "aws-ecs-service-unhealthy", unique, ecs_alert())
    summary = await finished(client, incident)
    assert summary["outcome"] == "needs_attention", summary
    assert "wants 0 tasks" in str(summary["steps"]["wants_no_tasks"]["output"])
    assert "UpdateService" not in aws.operations()


async def test_a_multi_az_instance_is_rebooted_with_failover_after_approval_and_verified(
        client: Client, worker: Worker, unique: str, aws: MotoServer) -> None:
    db = db_instance(aws, f"orders-{unique}", multi_az=True)
    incident = await start(client, "aws-rds-connection-failures", unique, rds_alert(db), force_failover=True)
    asked = await approve(client, incident, "approve_reboot")
    summary = await finished(client, incident)

    assert f"DB instance {db} in {REGION} (postgres, Multi-AZ true" in asked["message"]
    assert "failover to the standby: true" in asked["message"]
    assert asked["will_run"]["action"] == "aws.rds_reboot" and asked["will_run"]["params"]["force_failover"] is True
    assert summary["outcome"] == "succeeded", summary.get("failure")
    steps = summary["steps"]
    assert steps["reboot"]["output"]["failover"] is True and steps["verify"]["output"]["status"] == "available"
    reboots = [params for op, params in aws.calls() if op == "RebootDBInstance"]
    assert [(r["DBInstanceIdentifier"], r["ForceFailover"]) for r in reboots] == [(db, "true")]
    operations = aws.operations()
    assert operations.index("RebootDBInstance") < len(operations) - 1, "verified after the reboot"


async def test_a_single_az_instance_is_rebooted_without_failover(client: Client, worker: Worker, unique: str,
                                                                aws: MotoServer) -> None:
    """RDS refuses ForceFailover for a single-AZ instance: the runbook asks for it only where there is a standby."""
    db = db_instance(aws, f"orders-{unique}", multi_az=False)
    incident = await start(client, "aws-rds-connection-failures", unique, rds_alert(db), force_failover=True)
    asked = await approve(client, incident, "approve_reboot")
    summary = await finished(client, incident)
    assert "failover to the standby: false" in asked["message"]
    assert summary["outcome"] == "succeeded", summary.get("failure")
    reboots = [params for op, params in aws.calls() if op == "RebootDBInstance"]
    assert [r["ForceFailover"] for r in reboots] == ["false"]


async def test_a_rejected_reboot_changes_nothing(client: Client, worker: Worker, unique: str,
                                                 aws: MotoServer) -> None:
    db = db_instance(aws, f"orders-{unique}", multi_az=True)
    incident = await start(client, "aws-rds-connection-failures", unique, rds_alert(db))
    await eventually(lambda: incidents.show_incident(client, incident), waiting_on("approve_reboot"), timeout=60)
    await incidents.decide(client, incident, ApprovalDecision(approver="bob", approve=False, step="approve_reboot",
                                                              comment="the DB team is on it"))
    summary = await finished(client, incident)
    assert summary["outcome"] == "failed"
    assert "reboot" not in summary["steps"]
    assert "RebootDBInstance" not in aws.operations()


async def test_an_instance_that_is_not_available_is_handed_to_people(client: Client, worker: Worker, unique: str,
                                                                     aws: MotoServer) -> None:
    db = db_instance(aws, f"orders-{unique}", multi_az=False)
    aws.client("rds").stop_db_instance(DBInstanceIdentifier=db)
    incident = await start(client, "aws-rds-connection-failures", unique, rds_alert(db))
    summary = await finished(client, incident)
    assert summary["outcome"] == "needs_attention", summary
    assert "is stopped, not available" in str(summary["steps"]["not_available"]["output"])
    assert "RebootDBInstance" not in aws.operations()
