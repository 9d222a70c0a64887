"""`incidentctl dev`: the embedded Temporal dev server plus a worker, until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from temporalio.client import Client

from incidentctl.devserver import DevServer
from incidentctl.process import stop_on_signals


async def _serve(server: DevServer, task_queue: str, receiver_port: int) -> None:
    from incidentctl.intake.runner import auth_from_env, start_receiver
    from incidentctl.workers import build_worker

    client = await Client.connect(server.address)
    stop = stop_on_signals()
    # Dev mode accepts unauthenticated alerts unless a token or HMAC secret is configured.
    auth = auth_from_env(insecure=True)
    receiver = await start_receiver(client, port=receiver_port, auth=auth, task_queue=task_queue)
    mode = "token/HMAC required" if auth.token or auth.hmac_secret else "no auth (dev mode)"
    try:
        async with build_worker(client, task_queue):
            print(f"worker           polling task queue {task_queue!r}")
            print(f"alert receiver   {receiver.url}/alertmanager  ({mode})")
            print("ready: point Alertmanager at the receiver, or `incidentctl incident start --runbook NAME`; "
                  "Ctrl-C stops all")
            await stop.wait()
        print("worker stopped")
    finally:
        await receiver.stop()
        print("alert receiver stopped")


def run_dev(args: argparse.Namespace) -> int:
    db_file = Path(args.db_file)
    db_file.parent.mkdir(parents=True, exist_ok=True)
    simulator = None
    if args.simulate_cluster:
        from incidentctl.k8ssim.process import crash_looping_pod, start_simulator

        simulator = start_simulator(db_file.parent / "k8s-sim", args.scenario or ["bad-rollout"],
                                    metrics_server=True)
        # The worker runs in this process: its Kubernetes actions now talk to the simulated cluster.
        os.environ["INCIDENTCTL_KUBECONFIG"] = str(simulator.kubeconfig)
        print(f"simulated k8s    {simulator.url}   kubeconfig {simulator.kubeconfig}  "
              f"(scenarios: {', '.join(args.scenario or ['bad-rollout'])})")
        if "bad-rollout" in (args.scenario or ["bad-rollout"]):
            pod = crash_looping_pod(simulator.url, "shop", "app=cart")
            print("                 fire its alert: curl -X POST http://127.0.0.1:"
                  f"{args.receiver_port}/alerts -H 'Content-Type: application/json' -d "
                  f"'{{\"labels\": {{\"alertname\": \"KubePodCrashLooping\", \"namespace\": \"shop\", "
                  f"\"pod\": \"{pod}\"}}, \"group_by\": [\"namespace\", \"pod\"]}}'")
    try:
        return _run_dev(args, db_file)
    finally:
        if simulator is not None:
            simulator.stop()
            print("simulated cluster stopped")


def _run_dev(args: argparse.Namespace, db_file: Path) -> int:
    server = DevServer(port=args.port, ui_port=args.ui_port, db_file=str(db_file),
                       log_file=db_file.parent / "temporal-server.log")
    server.start()
    print(f"temporal server  {server.address}   (incidents kept in {db_file})")
    print(f"temporal web UI  {server.ui_url}")
    try:
        asyncio.run(_serve(server, args.task_queue, args.receiver_port))
    finally:
        server.stop()
        print("temporal server stopped")
    return 0
