"""TLS and mTLS to Temporal through the real wire: the worker, the receiver, the CLI and the Python client connect
with INCIDENTCTL_TEMPORAL_TLS_* to the dev server behind a TLS-terminating proxy (tests/tls_proxy.py; the dev
server has no TLS options), and a worker without a client certificate is kept out."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from incidentctl import client as incidents
from incidentctl.connection import connect
from incidentctl.devserver import DevServer, free_port
from incidentctl.library import compile_file
from tests.conftest import eventually, write
from tests.tls_proxy import SERVER_NAME, Certificates, TlsProxy, make_certificates, start_tls_proxy
from tests.worker_process import ROOT, WorkerProcess, http_status

RUNBOOK = """
name: over-tls
version: 1
steps:
  - id: hello
    action: util.echo
    params: {message: over mTLS}
"""


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    if not shutil.which("openssl"):
        pytest.skip("the openssl command is not installed (it makes the test certificates)")
    return make_certificates(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def mtls_proxy(dev_server: DevServer, certificates: Certificates) -> AsyncIterator[TlsProxy]:
    proxy = await start_tls_proxy(dev_server.address, certificates, require_client_cert=True)
    yield proxy
    await proxy.stop()


@pytest.fixture
def processes() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for process in started:
        process.stop()


def mtls_env(certificates: Certificates, *, client_cert: bool = True) -> dict[str, str]:
    env = {"INCIDENTCTL_TEMPORAL_TLS_CA": str(certificates.ca), "INCIDENTCTL_TEMPORAL_TLS_SERVER_NAME": SERVER_NAME}
    if client_cert:
        env |= {"INCIDENTCTL_TEMPORAL_TLS_CERT": str(certificates.client_cert),
                "INCIDENTCTL_TEMPORAL_TLS_KEY": str(certificates.client_key)}
    return env


async def test_worker_receiver_cli_and_client_work_over_mtls(
    mtls_proxy: TlsProxy, certificates: Certificates, processes: list[WorkerProcess], tmp_path: Path,
    unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = mtls_env(certificates)
    worker = WorkerProcess(tmp_path / "worker.log", "--address", mtls_proxy.address, "--task-queue", unique,
                           "--health-address", "127.0.0.1:0", env=env)
    processes.append(worker)
    health = await worker.health_url()
    await eventually(lambda: http_status(f"{health}/readyz"), lambda status: status == 200, timeout=60)

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    client = await connect(mtls_proxy.address)
    plan = compile_file(write(tmp_path / "tls.yaml", RUNBOOK))
    started = await incidents.start_incident(client, plan, key=unique, task_queue=unique)
    summary = await incidents.wait_for_runbook(client, started.incident_id)
    assert summary["steps"]["hello"]["output"]["message"] == "over mTLS"

    cli = await asyncio.to_thread(
        subprocess.run, [str(Path(sys.executable).parent / "incidentctl"), "incident", "show", started.incident_id,
                         "--address", mtls_proxy.address, "--output", "json"],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["incident_id"] == started.incident_id

    port = free_port()
    receiver = subprocess.Popen([str(Path(sys.executable).parent / "incidentctl"), "receiver", "--port", str(port),
                                 "--address", mtls_proxy.address, "--task-queue", unique], cwd=ROOT,
                                env={**os.environ, **env, "INCIDENTCTL_RECEIVER_TOKEN": "t"},
                                stdout=(tmp_path / "receiver.log").open("wb"), stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        await eventually(lambda: http_status(f"http://127.0.0.1:{port}/healthz"), lambda status: status == 200,
                         timeout=60)
    finally:
        receiver.terminate()
        receiver.wait(timeout=30)


async def test_a_worker_without_a_client_certificate_is_kept_out(
    mtls_proxy: TlsProxy, certificates: Certificates, tmp_path: Path
) -> None:
    env = {**os.environ, **mtls_env(certificates, client_cert=False)}
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, str(ROOT / "worker.py"), "--address", mtls_proxy.address,
                         "--connect-timeout", "3s"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "not reachable (attempt 1)" in result.stderr and "still unreachable after" in result.stderr


async def test_a_server_name_the_certificate_lacks_is_refused(
    mtls_proxy: TlsProxy, certificates: Certificates, tmp_path: Path
) -> None:
    env = {**os.environ, **mtls_env(certificates), "INCIDENTCTL_TEMPORAL_TLS_SERVER_NAME": "elsewhere.test"}
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, str(ROOT / "worker.py"), "--address", mtls_proxy.address,
                         "--connect-timeout", "2s"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "still unreachable after" in result.stderr


async def test_a_missing_certificate_file_is_named_at_once(tmp_path: Path) -> None:
    env = {**os.environ, "INCIDENTCTL_TEMPORAL_TLS_CA": str(tmp_path / "nope.pem")}
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, str(ROOT / "worker.py"), "--address", "127.0.0.1:1"], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"INCIDENTCTL_TEMPORAL_TLS_CA={tmp_path / 'nope.pem'}" in result.stderr
    assert "not reachable" not in result.stderr, "waiting cannot fix a configuration error"
