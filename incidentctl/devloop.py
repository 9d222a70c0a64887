"""`incidentctl dev`: the embedded Temporal dev server plus a worker, until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from temporalio.client import Client

from incidentctl.devserver import DevServer


async def _serve(server: DevServer, task_queue: str) -> None:
    from worker import build_worker

    client = await Client.connect(server.address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with build_worker(client, task_queue):
        print(f"worker           polling task queue {task_queue!r}")
        print("ready: start an incident with `incidentctl incident start --runbook NAME ...`; Ctrl-C stops all")
        await stop.wait()
    print("worker stopped")


def run_dev(args: argparse.Namespace) -> int:
    db_file = Path(args.db_file)
    db_file.parent.mkdir(parents=True, exist_ok=True)
    server = DevServer(port=args.port, ui_port=args.ui_port, db_file=str(db_file),
                       log_file=db_file.parent / "temporal-server.log")
    server.start()
    print(f"temporal server  {server.address}   (incidents kept in {db_file})")
    print(f"temporal web UI  {server.ui_url}")
    try:
        asyncio.run(_serve(server, args.task_queue))
    finally:
        server.stop()
        print("temporal server stopped")
    return 0
