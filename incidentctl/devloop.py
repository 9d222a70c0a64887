"""`incidentctl dev`: the embedded Temporal dev server plus a worker and the alert receiver, until Ctrl-C; optionally
a simulated cluster and the real Prometheus and Alertmanager over it."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from incidentctl.connection import connect
from incidentctl.devserver import DevServer
from incidentctl.process import stop_on_signals

if TYPE_CHECKING:
    from incidentctl.k8ssim.process import SimulatorProcess
    from incidentctl.promstack import PromStack


async def _serve(server: DevServer, task_queue: str, receiver_port: int, metrics_address: str | None) -> None:
    from incidentctl.identity_policy import IdentityPolicy
    from incidentctl.intake.runner import auth_from_env, start_receiver
    from incidentctl.plan_signing import plans_required_from_env
    from incidentctl.worker_metrics import prometheus_runtime
    from incidentctl.workers import build_worker

    client = await connect(server.address, runtime=prometheus_runtime(metrics_address) if metrics_address else None)
    stop = stop_on_signals()
    # Dev mode accepts unauthenticated alerts unless a token or HMAC secret is configured.
    auth = auth_from_env(insecure=True)
    receiver = await start_receiver(client, port=receiver_port, auth=auth, task_queue=task_queue)
    mode = "token/HMAC required" if auth.token or auth.hmac_secret else "no auth (dev mode)"
    identity = IdentityPolicy.for_dev()
    people = ("verified people only" if identity.required else "anyone acts as the name given (dev mode)")
    try:
        async with build_worker(client, task_queue, identity=identity,
                                plans_required=plans_required_from_env(default=False)):
            print(f"worker           polling task queue {task_queue!r}; people's commands: {people}")
            print(f"alert receiver   {receiver.url}/alertmanager  ({mode})")
            print(f"web page         {receiver.url}/ui  (sign in with `incidentctl people token NAME`)")
            if metrics_address:
                print(f"worker metrics   http://{metrics_address}/metrics")
            print("ready: point Alertmanager at the receiver, or `incidentctl incident start --runbook NAME`; "
                  "Ctrl-C stops all")
            await stop.wait()
        print("worker stopped")
    finally:
        await receiver.stop()
        print("alert receiver stopped")


def _start_alert_pipeline(args: argparse.Namespace, directory: Path, simulator_url: str) -> PromStack:
    """Prometheus over the simulator and Alertmanager posting to this dev loop's receiver (docs/alerts.md)."""
    from incidentctl.intake.runner import auth_from_env
    from incidentctl.promstack import DEV_TIMINGS, PromStack, PromStackError

    auth = auth_from_env(insecure=True)
    if auth.hmac_secret and not auth.token:
        raise PromStackError("Alertmanager cannot sign bodies for INCIDENTCTL_RECEIVER_HMAC_SECRET: set "
                             "INCIDENTCTL_RECEIVER_TOKEN as well for --with-prometheus")
    # With no token the dev receiver accepts anything; Alertmanager still sends one, as in production.
    token = auth.token or secrets.token_urlsafe(24)
    receiver = f"http://127.0.0.1:{args.receiver_port}"
    # Each dev session has a new simulated cluster: series kept from the last one would only raise ghost alerts.
    shutil.rmtree(directory, ignore_errors=True)
    stack = PromStack(directory, simulator_url, receiver, token, DEV_TIMINGS, args.prometheus_port,
                      args.alertmanager_port).start()
    assert stack.prometheus is not None and stack.alertmanager is not None
    from activities.prometheus.api import URL_ENV

    # The worker runs in this process: runbooks' metric verification asks this Prometheus (unless one is set).
    os.environ.setdefault(URL_ENV, stack.prometheus.url)
    print(f"prometheus       {stack.prometheus.url}   (rules deploy/prometheus/*.yaml, every `for:` "
          f"{DEV_TIMINGS.rule_for}; the worker's {URL_ENV}: {os.environ[URL_ENV]})")
    print(f"alertmanager     {stack.alertmanager.url}   -> {receiver}/alertmanager")
    return stack


def run_dev(args: argparse.Namespace) -> int:
    db_file = Path(args.db_file)
    db_file.parent.mkdir(parents=True, exist_ok=True)
    simulator = stack = None
    try:
        if args.simulate_cluster:
            simulator = _start_simulator(args, db_file.parent)
        if args.with_prometheus and simulator is not None:
            stack = _start_alert_pipeline(args, db_file.parent / "alert-pipeline", simulator.url)
        return _run_dev(args, db_file)
    finally:
        if stack is not None:
            stack.stop()
            print("prometheus and alertmanager stopped")
        if simulator is not None:
            simulator.stop()
            print("simulated cluster stopped")


def _start_simulator(args: argparse.Namespace, directory: Path) -> SimulatorProcess:
    from incidentctl.k8ssim.process import crash_looping_pod, start_simulator

    scenarios = args.scenario or ["bad-rollout"]
    simulator = start_simulator(directory / "k8s-sim", scenarios, metrics_server=True)
    # The worker runs in this process: its Kubernetes actions now talk to the simulated cluster.
    os.environ["INCIDENTCTL_KUBECONFIG"] = str(simulator.kubeconfig)
    print(f"simulated k8s    {simulator.url}   kubeconfig {simulator.kubeconfig}  "
          f"(scenarios: {', '.join(scenarios)})")
    if "bad-rollout" in scenarios:
        if args.with_prometheus:
            print("                 Prometheus fires its KubePodCrashLooping alert by itself")
        else:
            pod = crash_looping_pod(simulator.url, "shop", "app=cart")
            print("                 fire its alert: curl -X POST http://127.0.0.1:"
                  f"{args.receiver_port}/alerts -H 'Content-Type: application/json' -d "
                  f"'{{\"labels\": {{\"alertname\": \"KubePodCrashLooping\", \"namespace\": \"shop\", "
                  f"\"pod\": \"{pod}\"}}, \"group_by\": [\"namespace\", \"pod\"]}}'")
    return simulator


def _run_dev(args: argparse.Namespace, db_file: Path) -> int:
    server = DevServer(port=args.port, ui_port=args.ui_port, db_file=str(db_file),
                       log_file=db_file.parent / "temporal-server.log")
    server.start()
    print(f"temporal server  {server.address}   (incidents kept in {db_file})")
    print(f"temporal web UI  {server.ui_url}")
    if server.address != "127.0.0.1:7233":
        # Other commands look for Temporal at TEMPORAL_ADDRESS (default 127.0.0.1:7233).
        print(f"in other shells  export TEMPORAL_ADDRESS={server.address}")
    try:
        asyncio.run(_serve(server, args.task_queue, args.receiver_port, args.metrics_address))
    finally:
        server.stop()
        print("temporal server stopped")
    return 0
