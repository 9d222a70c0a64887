"""`python worker.py` as a separate process, and asking its health endpoints."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.conftest import eventually

ROOT = Path(__file__).resolve().parents[1]


class WorkerProcess:
    """`python worker.py ...` in its own session, its output in a log file, stopped by its PID."""

    def __init__(self, log: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.log = log
        self.process = subprocess.Popen([sys.executable, str(ROOT / "worker.py"), *args], cwd=ROOT,
                                        env={**os.environ, **(env or {})}, stdout=log.open("wb"),
                                        stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def health_url(self) -> str:
        found = await eventually(self._health_url_logged, lambda url: url is not None, timeout=30)
        return str(found)

    async def _health_url_logged(self) -> str | None:
        match = re.search(r"health endpoints at (http://\S+)/healthz", self.output())
        return match.group(1) if match else None

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


async def http_status(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as r:
        return r.status
