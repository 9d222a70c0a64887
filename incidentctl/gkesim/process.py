"""Run the fake GKE API as a separate local process (tests), stopped by its PID."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from incidentctl.gkesim.seed import DEFAULT_ACCESS_TOKEN, DEFAULT_OPERATION_S
from incidentctl.process import start_with_ready_file, stop_process


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
    process, ready_says = start_with_ready_file(command, ready, directory / "gke-fake.log", "the fake GKE API")
    return GkeFakeProcess(ready_says["url"], process)
