"""A retried aws step continues where the previous attempt was (its heartbeat details), against moto: an attempt
after a worker crash does not reboot, stop or send a command again when the first attempt already did.

The attempts run in temporalio's ActivityEnvironment, which hands the action the heartbeat details a previous
attempt left (as Temporal does on a retry) and records the ones it sends."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities.base import ActionInput, get_action
from activities.catalog import load_all
from tests.aws_moto import REGION, MotoServer, launch_instance

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def attempt(name: str, params: dict[str, Any], details: list[Any], attempt_number: int = 2
                  ) -> tuple[dict[str, Any], list[Any]]:
    """Run `name` as attempt `attempt_number` that finds `details`; its result and the details it heartbeated."""
    load_all()
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=attempt_number, heartbeat_details=details)
    sent: list[Any] = []
    env.on_heartbeat = lambda *beat: sent.append(beat)
    inp = ActionInput(action=name, params={"region": REGION, **params}, incident_id="inc-1", step_id="s1")
    return await env.run(get_action(name).activity, inp), sent


async def test_a_reboot_attempt_records_the_reboot_and_a_retry_only_waits(aws: MotoServer) -> None:
    instance = launch_instance(aws)
    first, beats = await attempt("aws.ec2_reboot", {"instance_id": instance, "interval": "1s"}, [], 1)
    assert first["resumed"] is False
    recorded = next(beat[0] for beat in beats if beat and "rebooted" in beat[0].get("phases", []))
    retried, _ = await attempt("aws.ec2_reboot", {"instance_id": instance, "interval": "1s"}, [recorded])
    assert retried["resumed"] is True and retried["status"]["checks_ok"]
    assert aws.operations().count("RebootInstances") == 1, "the retry did not reboot again"


async def test_a_stop_start_retry_after_the_stop_only_starts(aws: MotoServer) -> None:
    instance = launch_instance(aws)
    aws.client("ec2").stop_instances(InstanceIds=[instance])  # what the first attempt did before the crash
    details = [{"started": time.time() - 30, "phases": ["stopped"], "phase": "stopped"}]
    result, _ = await attempt("aws.ec2_stop_start", {"instance_id": instance, "interval": "1s"}, details)
    assert result["resumed"] and result["status"]["state"] == "running"
    assert [op for op in aws.operations() if op in ("StopInstances", "StartInstances")] == [
        "StopInstances", "StartInstances"], "the test's stop, then only the retry's start"


async def test_a_stop_start_retry_whose_record_was_lost_sees_its_own_start(aws: MotoServer) -> None:
    """The heartbeat saying "stopped" never left, but the instance was launched after the step began: the first
    attempt stopped and started it, so the retry does not stop it again."""
    started = time.time() - 5
    instance = launch_instance(aws)  # launched after `started`, as if the first attempt had started it
    details = [{"started": started, "phases": ["waiting"], "phase": "waiting"}]
    result, _ = await attempt("aws.ec2_stop_start", {"instance_id": instance, "interval": "1s"}, details)
    assert result["status"]["state"] == "running"
    assert "StopInstances" not in aws.operations()


async def test_an_ssm_retry_waits_for_the_command_already_sent(aws: MotoServer) -> None:
    instance = launch_instance(aws)
    sent = aws.client("ssm").send_command(InstanceIds=[instance], DocumentName="AWS-RunPatchBaseline",
                                          Parameters={"Operation": ["Scan"]})["Command"]["CommandId"]
    details = [{"started": time.time(), "phases": ["sent"], "phase": "sent", "command_id": sent}]
    result, _ = await attempt("aws.ssm_run_command", {"instance_id": instance, "document": "AWS-RunPatchBaseline",
                                                      "parameters": {"Operation": ["Scan"]}}, details)
    assert result["command_id"] == sent and result["status"] == "Success"
    assert aws.operations().count("SendCommand") == 1, "only the first attempt's"
