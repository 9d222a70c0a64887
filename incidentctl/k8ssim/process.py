"""Run the simulator as a separate local process (tests, `incidentctl dev --simulate-cluster`, the demo)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from incidentctl.k8ssim.scenarios import WORKER_TOKEN
from incidentctl.process import start_with_ready_file, stop_process


@dataclass
class SimulatorProcess:
    url: str
    kubeconfig: Path
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        """SIGTERM by PID, then SIGKILL if it does not go within 10 s."""
        stop_process(self.process)


def start_simulator(directory: Path, scenarios: list[str], *, metrics_server: bool = False,
                    backoff_base: float = 1.0, port: int = 0) -> SimulatorProcess:
    """Start `python -m incidentctl.k8ssim`, wait until it serves, return its URL and kubeconfig."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.monotonic_ns()
    ready = directory / f"k8s-sim-{stamp}.json"
    kubeconfig = directory / f"kubeconfig-{stamp}.yaml"
    command = [sys.executable, "-m", "incidentctl.k8ssim", "--kubeconfig", str(kubeconfig), "--ready-file",
               str(ready), "--backoff-base", str(backoff_base), "--port", str(port)]
    for scenario in scenarios:
        command += ["--scenario", scenario]
    if metrics_server:
        command.append("--metrics-server")
    process, ready_says = start_with_ready_file(command, ready, directory / "k8s-sim.log",
                                                "the Kubernetes simulator")
    return SimulatorProcess(ready_says["url"], kubeconfig, process)


def crash_looping_pod(url: str, namespace: str, selector: str) -> str:
    """The most restarted pod matching `selector`: what a KubePodCrashLooping alert would name."""
    query = urllib.parse.urlencode({"labelSelector": selector})
    request = urllib.request.Request(f"{url}/api/v1/namespaces/{namespace}/pods?{query}",
                                     headers={"Authorization": f"Bearer {WORKER_TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        pods = json.loads(response.read())["items"]
    restarts = {p["metadata"]["name"]: sum(s.get("restartCount", 0) for s in p["status"].get("containerStatuses", []))
                for p in pods}
    return max(restarts, key=lambda name: restarts[name])
