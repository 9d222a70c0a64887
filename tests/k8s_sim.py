"""Start the simulated Kubernetes API server as a local process (stopped by PID) and talk to it from tests."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kubernetes import client, config

from activities.base import ActionInput, get_action
from activities.catalog import load_all
from incidentctl.k8ssim.process import start_simulator
from incidentctl.k8ssim.scenarios import WORKER_TOKEN


class SimCluster:
    def __init__(self, url: str, kubeconfig: Path) -> None:
        self.url = url
        self.kubeconfig = kubeconfig

    def params(self, context: str = "sim", **extra: Any) -> dict[str, Any]:
        """Connection params for an action: this cluster's kubeconfig and a context."""
        return {"kubeconfig": str(self.kubeconfig), "context": context, **extra}

    def control(self, path: str, body: dict[str, Any]) -> Any:
        """POST to the simulator's `/_sim/` controls (node conditions, image behaviour, faults)."""
        request = urllib.request.Request(f"{self.url}/_sim/{path}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def requests(self) -> list[dict[str, Any]]:
        """Every API request the simulator received: method, path, query, content_type."""
        with urllib.request.urlopen(f"{self.url}/_sim/requests", timeout=10) as response:
            return json.loads(response.read())

    def api(self, context: str = "sim") -> client.ApiClient:
        """The official client, for a test to look at the cluster itself."""
        return config.new_client_from_config(config_file=str(self.kubeconfig), context=context,
                                             persist_config=False)

    def get(self, path: str) -> Any:
        """GET an API path as the worker (raw JSON), e.g. /apis/apps/v1/namespaces/shop/deployments/cart."""
        request = urllib.request.Request(f"{self.url}{path}",
                                         headers={"Authorization": f"Bearer {WORKER_TOKEN}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())


@contextmanager
def start_sim(directory: Path, *scenarios: str, metrics_server: bool = False,
              backoff_base: float = 1.0) -> Iterator[SimCluster]:
    running = start_simulator(directory, list(scenarios), metrics_server=metrics_server, backoff_base=backoff_base)
    try:
        yield SimCluster(running.url, running.kubeconfig)
    finally:
        running.stop()


async def run_action(name: str, params: dict[str, Any], *, dry_run: bool = False) -> Any:
    """Run an action's activity function directly (outside Temporal) against the simulator."""
    load_all()
    return await get_action(name).activity(ActionInput(action=name, params=params, incident_id="test-incident",
                                                       step_id="test-step", dry_run=dry_run))
