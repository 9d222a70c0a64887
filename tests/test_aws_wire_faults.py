"""What AWS failures do to an aws step, through the wire: throttling (a proxy in front of moto answers
RequestLimitExceeded as EC2 does), access denied (moto enforcing IAM for a user without the permission), and a
step's role assumed through STS (moto's recorder shows the call made with the assumed credentials)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from activities.aws.api import ENDPOINT_ENV
from activities.base import ActionInput, get_action
from activities.catalog import load_all
from tests.aws_moto import REGION, MotoServer, launch_instance, start_moto

THROTTLED = (b'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>RequestLimitExceeded</Code>'
             b'<Message>Request limit exceeded.</Message></Error></Errors><RequestID>test</RequestID></Response>')


async def run(name: str, **params: Any) -> dict[str, Any]:
    load_all()
    return await get_action(name).activity(ActionInput(action=name, params={"region": REGION, **params},
                                                       incident_id="test-incident", step_id="test-step"))


@dataclass
class Proxy:
    url: str
    seen: dict[str, int]


@contextmanager
def throttling_proxy(target: str, operation: str, times: int) -> Iterator[Proxy]:
    """An HTTP proxy to `target` that answers the first `times` calls of `operation` as a throttled EC2 would."""
    seen = {"throttled": 0, "forwarded": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if f"Action={operation}".encode() in body and seen["throttled"] < times:
                seen["throttled"] += 1
                self._answer(503, THROTTLED, "text/xml")
                return
            seen["forwarded"] += 1
            request = urllib.request.Request(target + self.path, data=body, method="POST",
                                             headers={k: v for k, v in self.headers.items() if k.lower() != "host"})
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    self._answer(response.status, response.read(), response.headers.get("Content-Type", ""))
            except urllib.error.HTTPError as error:
                self._answer(error.code, error.read(), error.headers.get("Content-Type", ""))

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Proxy(f"http://127.0.0.1:{server.server_address[1]}", seen)
    finally:
        server.shutdown()
        server.server_close()


async def test_throttling_is_retried_with_backoff_until_it_passes(aws: MotoServer,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    instance = launch_instance(aws)
    with throttling_proxy(aws.url, "DescribeInstanceStatus", times=2) as proxy:
        monkeypatch.setenv(ENDPOINT_ENV, proxy.url)
        status = await run("aws.ec2_instance_status", instance_id=instance)
    assert status["state"] == "running"
    assert proxy.seen == {"throttled": 2, "forwarded": 1}


async def test_throttling_that_does_not_pass_leaves_a_retryable_error(aws: MotoServer,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    instance = launch_instance(aws)
    with throttling_proxy(aws.url, "DescribeInstanceStatus", times=100) as proxy:
        monkeypatch.setenv(ENDPOINT_ENV, proxy.url)
        with pytest.raises(ApplicationError) as caught:
            await run("aws.ec2_instance_status", instance_id=instance)
    assert caught.value.type == "AwsThrottled" and not caught.value.non_retryable, "Temporal retries it further"
    assert "RequestLimitExceeded" in caught.value.message
    assert proxy.seen["throttled"] == 4 and proxy.seen["forwarded"] == 0


@pytest.fixture
def enforcing_moto(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    """A moto that enforces IAM after the first three calls (the test's own setup of a user who may only read)."""
    server = start_moto(tmp_path, {"INITIAL_NO_AUTH_ACTION_COUNT": "3"})
    try:
        iam = server.client("iam")
        iam.create_user(UserName="worker")
        key = iam.create_access_key(UserName="worker")["AccessKey"]
        iam.put_user_policy(UserName="worker", PolicyName="reads", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": ["ec2:DescribeInstanceStatus"], "Resource": "*"}]}))
        monkeypatch.setenv(ENDPOINT_ENV, server.url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
        yield server
    finally:
        server.stop()


async def test_access_denied_is_final_and_names_the_iam_action(enforcing_moto: MotoServer) -> None:
    with pytest.raises(ApplicationError) as read:
        await run("aws.ec2_instance_status", instance_id="i-0123456789abcdef0")
    assert read.value.type == "AwsNotFound", "the read is allowed: AWS looked and found no such instance"
    with pytest.raises(ApplicationError) as caught:
        await run("aws.ec2_reboot", instance_id="i-0123456789abcdef0")
    assert caught.value.type == "AwsAccessDenied" and caught.value.non_retryable
    assert "the IAM action ec2:RebootInstances" in caught.value.message


async def test_a_steps_role_is_assumed_and_its_credentials_used(aws: MotoServer) -> None:
    instance = launch_instance(aws)
    role = "arn:aws:iam::123456789012:role/incidentctl-remediation"
    status = await run("aws.ec2_instance_status", instance_id=instance, role_arn=role)
    assert status["checks_ok"]
    recorded = aws.recorded()
    assume = next(i for i, request in enumerate(recorded) if request["operation"] == "AssumeRole")
    assert recorded[assume]["params"]["RoleArn"] == role
    describe = next(r for r in recorded[assume:] if r["operation"] == "DescribeInstanceStatus")
    credential = describe["headers"]["authorization"].split("Credential=")[1].split("/")[0]
    assert credential != "testing", "called with the role's credentials, not the worker's own"
