"""moto's server mode as a local process (one per test session, stopped by PID), and boto3 pointed at it.

The `aws` fixture empties moto's state before each test, points the actions at it
(INCIDENTCTL_AWS_ENDPOINT_URL) with dummy credentials, and gives the test a boto3 client factory to seed and read
AWS as the test's own witness.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from activities.aws.api import ENDPOINT_ENV
from incidentctl.process import stop_process

STARTUP_S = 60.0
REGION = "eu-west-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}


@dataclass
class MotoServer:
    url: str
    process: subprocess.Popen[bytes]
    recording: Path  # moto's request recorder writes every request it receives here, one JSON line each

    def stop(self) -> None:
        """SIGTERM by PID, then SIGKILL if it does not go within 10 s."""
        stop_process(self.process)

    def _post(self, path: str) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self.url}{path}", method="POST"), timeout=10)

    def reset(self) -> None:
        """Forget every resource and every recorded request."""
        self._post("/moto-api/reset")
        self._post("/moto-api/recorder/reset-recording")

    def recorded(self) -> list[dict[str, Any]]:
        """Every API request moto received since the reset, oldest first, as its operation, flat params and
        headers: the test's witness that a call went over the wire (or did not), and how it was signed."""
        requests = []
        for line in self.recording.read_text().splitlines():
            entry = json.loads(line)
            body = base64.b64decode(entry["body"]).decode() if entry.get("body_encoded") else entry.get("body") or ""
            headers = {k.lower(): v for k, v in entry.get("headers", {}).items()}
            if "x-amz-target" in headers:
                operation, params = headers["x-amz-target"].rsplit(".", 1)[-1], json.loads(body or "{}")
            else:
                params = dict(urllib.parse.parse_qsl(body))
                operation = params.pop("Action", "")
            requests.append({"operation": operation, "params": params, "headers": headers})
        return requests

    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        """(operation, params) of every request since the reset."""
        return [(r["operation"], r["params"]) for r in self.recorded()]

    def operations(self) -> list[str]:
        return [operation for operation, _ in self.calls()]

    def client(self, service: str, region: str = REGION) -> Any:
        import boto3

        return boto3.Session(region_name=region, aws_access_key_id="testing", aws_secret_access_key="testing"
                             ).client(service, endpoint_url=self.url)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serving(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=2):
            return True
    except OSError:
        return False


def start_moto(directory: Path, extra_env: dict[str, str] | None = None,
               command: list[str] | None = None) -> MotoServer:
    """moto's server on a free port; `command` replaces `moto_server` (a launcher that configures moto first)."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path, recording = directory / f"moto-{port}.log", directory / f"moto-{port}-requests.jsonl"
    recording.touch()
    launcher = command or [str(Path(sys.executable).parent / "moto_server")]
    env = {**os.environ, "MOTO_ENABLE_RECORDING": "1", "MOTO_RECORDER_FILEPATH": str(recording), **(extra_env or {})}
    with log_path.open("ab") as log:
        process = subprocess.Popen([*launcher, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log,
                                   env=env)
    deadline = time.monotonic() + STARTUP_S
    while not _serving(url):
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                process.kill()
            raise RuntimeError(f"moto_server did not start; its log ({log_path}) ends with:\n"
                               f"{log_path.read_text()[-2000:]}")
        time.sleep(0.1)
    return MotoServer(url, process, recording)


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = start_moto(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def aws(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """moto emptied, and the actions (in this process: direct calls and the in-process worker) pointed at it."""
    moto_server.reset()
    monkeypatch.setenv(ENDPOINT_ENV, moto_server.url)
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    return moto_server


def launch_instance(aws: MotoServer, region: str = REGION) -> str:
    """One running t3.micro from moto's first image; its id."""
    ec2 = aws.client("ec2", region)
    image = ec2.describe_images()["Images"][0]["ImageId"]
    return ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro")["Instances"][0][
        "InstanceId"]


def create_group(aws: MotoServer, name: str = "web", *, min_size: int = 1, desired: int = 2,
                 max_size: int = 6) -> None:
    """An Auto Scaling group from a launch template, in one availability zone."""
    ec2, autoscaling = aws.client("ec2"), aws.client("autoscaling")
    image = ec2.describe_images()["Images"][0]["ImageId"]
    template = f"{name}-template"
    ec2.create_launch_template(LaunchTemplateName=template,
                               LaunchTemplateData={"ImageId": image, "InstanceType": "t3.micro"})
    autoscaling.create_auto_scaling_group(AutoScalingGroupName=name, MinSize=min_size, MaxSize=max_size,
                                          DesiredCapacity=desired, LaunchTemplate={"LaunchTemplateName": template},
                                          AvailabilityZones=[f"{REGION}a"])
