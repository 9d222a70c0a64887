"""Run the fake GKE API as a separate local process (tests), stopped by its PID."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from incidentctl.gkesim.seed import DEFAULT_ACCESS_TOKEN, DEFAULT_OPERATION_S
from incidentctl.process import stop_process

STARTUP_S = 30.0


@dataclass
class GkeFakeProcess:
    url: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        """SIGTERM by PID, then SIGKILL if it does not go within 10 s."""
        stop_process(self.process)


def start_fake(directory: Path, *, operation_s: float = DEFAULT_OPERATION_S,
               access_token: str = DEFAULT_ACCESS_TOKEN) -> GkeFakeProcess:
    """Start `python -m incidentctl.gkesim`, wait until it serves, return its URL."""
    directory.mkdir(parents=True, exist_ok=True)
    ready = directory / f"gke-fake-{time.monotonic_ns()}.json"
    command = [sys.executable, "-m", "incidentctl.gkesim", "--ready-file", str(ready),
               "--operation-seconds", str(operation_s), "--access-token", access_token]
    log_path = directory / "gke-fake.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log, cwd=Path(__file__).resolve().parents[2])
    deadline = time.monotonic() + STARTUP_S
    while not ready.exists() or not ready.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                process.kill()
            raise RuntimeError(f"the fake GKE API did not start; its log ({log_path}) ends with:\n"
                               f"{log_path.read_text()[-2000:]}")
        time.sleep(0.05)
    return GkeFakeProcess(json.loads(ready.read_text())["url"], process)
