"""The pure parts of the aws actions: what an AWS error means, a statistic over a window, capacity bounds, the
`changes.aws` rule (compiler, workflow check, action wrapper) and the IAM policy the actions add up to."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from activities.aws import faults
from activities.aws.asg_set_capacity import bounds_refusal
from activities.aws.iam import declared, policy_json
from activities.aws.metrics import combine
from activities.aws.schemas import ASG_LEASE, EC2_INSTANCE_LEASE
from activities.base import ActionInput, get_action
from activities.catalog import load_all
from incidentctl.dsl.allowed_changes import AwsResource, aws_refusal, changed_aws_resource, changed_object, step_refusal
from incidentctl.dsl.compiler import compile_source
from incidentctl.dsl.errors import RunbookErrors
from incidentctl.dsl.plan import AwsChanges, Changes, Plan
from incidentctl.library import installed_actions

ROOT = Path(__file__).resolve().parents[1]
REBOOT = faults.AwsCall("ec2", "RebootInstances")

# --- what an AWS error means --------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["Throttling", "ThrottlingException", "RequestLimitExceeded",
                                  "TooManyRequestsException", "ThrottledException", "ThrottlingSomethingNew"])
def test_throttling_is_retried(code: str) -> None:
    error = faults.client_error(REBOOT, code, "slow down", 400, "instance i-1")
    assert error.type == faults.THROTTLED and not error.non_retryable
    assert faults.is_transient(code, 400)


@pytest.mark.parametrize(("code", "status"), [("InternalError", 500), ("ServiceUnavailable", 503), ("", 502)])
def test_aws_side_failures_are_retried(code: str, status: int) -> None:
    error = faults.client_error(REBOOT, code, "", status, "instance i-1")
    assert error.type == faults.UNAVAILABLE and not error.non_retryable


@pytest.mark.parametrize("code", ["UnauthorizedOperation", "AccessDenied", "AccessDeniedException"])
def test_access_denied_names_the_iam_action_and_is_final(code: str) -> None:
    error = faults.client_error(REBOOT, code, "not authorized", 403, "instance i-1")
    assert error.type == faults.ACCESS_DENIED and error.non_retryable
    assert "give the worker's role (or the step's role_arn) the IAM action ec2:RebootInstances" in error.message


@pytest.mark.parametrize("code", ["InvalidInstanceID.NotFound", "DBInstanceNotFound", "ResourceNotFoundException",
                                  "ServiceNotFoundException", "NoSuchEntity"])
def test_not_found_is_final(code: str) -> None:
    error = faults.client_error(REBOOT, code, "", 400, "instance i-1")
    assert error.type == faults.NOT_FOUND and error.non_retryable and error.message.startswith("instance i-1 not found")


def test_any_other_refusal_is_final_and_says_the_code() -> None:
    error = faults.client_error(REBOOT, "IncorrectInstanceState", "is stopped", 400, "instance i-1")
    assert error.type == faults.REJECTED and error.non_retryable
    assert error.message == "AWS refused ec2:RebootInstances on instance i-1 (IncorrectInstanceState: is stopped)"


# --- a statistic over a window ------------------------------------------------------------------------------


def test_the_window_average_weights_each_period_by_its_samples() -> None:
    points = [{"Average": 10.0, "SampleCount": 1.0}, {"Average": 40.0, "SampleCount": 3.0}]
    assert combine("Average", points) == pytest.approx(32.5)
    assert combine("Maximum", [{"Maximum": 3.0}, {"Maximum": 7.0}]) == 7.0
    assert combine("Minimum", [{"Minimum": 3.0}, {"Minimum": 7.0}]) == 3.0
    assert combine("Sum", [{"Sum": 3.0}, {"Sum": 7.0}]) == 10.0
    assert combine("Average", []) is None


# --- capacity bounds ----------------------------------------------------------------------------------------

GROUP = {"AutoScalingGroupName": "web", "MinSize": 2, "MaxSize": 10, "DesiredCapacity": 3}


@pytest.mark.parametrize(("desired", "bound", "allowed"), [(2, 5, True), (5, 5, True), (6, 5, False),
                                                           (1, 5, False), (10, 20, True), (11, 20, False)])
def test_capacity_stays_within_the_group_and_the_runbook_bound(desired: int, bound: int, allowed: bool) -> None:
    assert (bounds_refusal(GROUP, desired, bound) is None) is allowed


# --- changes.aws --------------------------------------------------------------------------------------------

PROD = Changes(aws=AwsChanges(regions=["eu-*"], resources=["ec2/i-*", "autoscaling/web"]))


def test_aws_leases_name_a_region_a_service_and_a_resource() -> None:
    params = {"region": "eu-west-1", "instance_id": "i-0abc"}
    assert changed_aws_resource(EC2_INSTANCE_LEASE, params) == AwsResource("eu-west-1", "ec2", "i-0abc")
    assert changed_object(EC2_INSTANCE_LEASE, params) is None, "not a Kubernetes object"
    assert changed_aws_resource("k8s/{context}/{namespace}/deployments/{deployment}", {}) is None


def test_the_rule_checks_region_and_resource() -> None:
    assert aws_refusal(PROD, AwsResource("eu-west-1", "ec2", "i-0abc")) is None
    assert aws_refusal(PROD, AwsResource("eu-west-1", "autoscaling", "web")) is None
    assert "region us-east-1 is not in the runbook's changes.aws.regions (eu-*)" in (
        aws_refusal(PROD, AwsResource("us-east-1", "ec2", "i-0abc")) or "")
    assert "autoscaling/api matches none of the runbook's changes.aws.resources (ec2/i-*, autoscaling/web)" in (
        aws_refusal(PROD, AwsResource("eu-west-1", "autoscaling", "api")) or "")
    assert "the runbook's changes block has no aws part" in (
        aws_refusal(Changes(clusters=["*"], namespaces=["*"]), AwsResource("eu-west-1", "ec2", "i-0abc")) or "")
    assert aws_refusal(None, AwsResource("us-east-1", "ec2", "i-0abc")) is None, "plans from before the block"


def test_the_workflow_check_applies_the_rule_to_aws_steps() -> None:
    assert step_refusal(PROD, ASG_LEASE, {"region": "eu-west-1", "group": "web"}) is None
    assert "matches none" in (step_refusal(PROD, ASG_LEASE, {"region": "eu-west-1", "group": "batch"}) or "")


async def test_the_action_wrapper_refuses_a_resource_outside_the_block_before_calling_aws() -> None:
    from temporalio.exceptions import ApplicationError

    load_all()
    step = ActionInput(action="aws.ec2_reboot", params={"region": "us-east-1", "instance_id": "i-0123456789abcdef0"},
                       changes=PROD)
    with pytest.raises(ApplicationError) as caught:
        await get_action("aws.ec2_reboot").activity(step)
    assert caught.value.type == "ChangeNotAllowed" and caught.value.non_retryable
    assert "region us-east-1 is not in the runbook's changes.aws.regions" in caught.value.message


CATALOG = installed_actions()
REBOOT_RUNBOOK = """\
name: reboot
version: 1
parameters:
  instance: {type: string, default: "${{ alert.labels.instance_id }}"}
steps:
  - id: reboot
    action: aws.ec2_reboot
    params: {region: REGION, instance_id: "${{ params.instance }}"}
"""


def compile_text(text: str) -> Plan:
    return compile_source(textwrap.dedent(text), "rb.yaml", CATALOG)


def errors_of(text: str) -> list[str]:
    with pytest.raises(RunbookErrors) as caught:
        compile_text(text)
    return [str(e) for e in caught.value.errors]


def test_a_runbook_that_changes_aws_must_say_where() -> None:
    (error,) = errors_of(REBOOT_RUNBOOK.replace("REGION", "eu-west-1"))
    assert "aws.ec2_reboot changes AWS resources: say where this runbook may change things in a top-level " \
           "`changes.aws` block" in error
    k8s_only = "changes: {clusters: ['*'], namespaces: ['*']}\n"
    (error,) = errors_of(k8s_only + REBOOT_RUNBOOK.replace("REGION", "eu-west-1"))
    assert "aws.ec2_reboot changes AWS resources: say where in `changes.aws`" in error


def test_an_aws_only_block_needs_no_clusters_and_compiles_into_the_plan() -> None:
    plan = compile_text("changes: {aws: {regions: [eu-west-1]}}\n" + REBOOT_RUNBOOK.replace("REGION", "eu-west-1"))
    assert plan.changes == Changes(aws=AwsChanges(regions=["eu-west-1"], resources=["*"]))
    assert plan.to_json()["changes"]["aws"] == {"regions": ["eu-west-1"], "resources": ["*"], "operations": []}
    assert Plan.from_json(plan.to_json()).changes == plan.changes
    from incidentctl.dsl.summary import summarize_plan

    summary = summarize_plan(plan)
    assert "changes aws regions eu-west-1; resources *; operations -" in summary
    assert "changes clusters" not in summary, "no Kubernetes part to show"


def test_a_literal_region_outside_the_block_is_refused_at_compile_time() -> None:
    literal = REBOOT_RUNBOOK.replace("REGION", "us-east-1").replace('"${{ params.instance }}"', "i-0123456789abcdef0")
    (error,) = errors_of("changes: {aws: {regions: ['eu-*']}}\n" + literal)
    assert "refused to change AWS ec2/" in error and "region us-east-1 is not in the runbook's changes.aws.regions" \
        in error


def test_a_kubernetes_step_still_needs_clusters() -> None:
    text = """\
    changes: {namespaces: [shop], aws: {regions: [eu-west-1]}}
    name: scale
    version: 1
    steps:
      - id: scale
        action: k8s.scale
        params: {namespace: shop, deployment: cart, replicas: 3}
    """
    assert any("k8s.scale changes Kubernetes objects: say in changes.clusters" in e for e in errors_of(text))


# --- the IAM policy -----------------------------------------------------------------------------------------


def test_every_aws_action_declares_its_iam_actions_and_mutating_ones_a_lease() -> None:
    specs = [spec for spec in load_all() if spec.name.startswith("aws.")]
    assert {spec.name for spec in specs} == set(declared())
    for spec in specs:
        assert spec.params_schema["required"][-1] == "region" and "role_arn" in spec.params_schema["properties"]
        if spec.mutates:
            assert spec.lease and changed_aws_resource(spec.lease, {}) is not None, spec.name


def test_the_committed_policy_is_the_one_the_actions_declare() -> None:
    committed = (ROOT / "deploy" / "aws" / "iam-policy.json").read_text()
    assert committed == policy_json(), "run .venv/bin/python scripts/aws_iam_policy.py and commit the result"
    statements = {s["Sid"]: s["Action"] for s in json.loads(committed)["Statement"]}
    assert "ec2:RebootInstances" in statements["IncidentctlChanges"]
    assert all(a.split(":")[1].startswith(("Describe", "Get", "List")) for a in statements["IncidentctlReads"])
    assert not any(a.split(":")[1].startswith(("Describe", "Get", "List")) for a in statements["IncidentctlChanges"])
