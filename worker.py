"""Run one incidentctl worker: `python worker.py [--address H:P] [--namespace NS] [--task-queue Q]`.

Scale out by running more of these against the same Temporal cluster; each one serves every incident.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

from incidentctl.connection import connect
from incidentctl.process import exit_without_finalizing, stop_on_signals
from incidentctl.workers import build_worker
from workflows.model import TASK_QUEUE

DEFAULT_ADDRESS = "localhost:7233"
__all__ = ["build_worker", "main"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run an incidentctl Temporal worker.")
    parser.add_argument("--address", default=os.environ.get("TEMPORAL_ADDRESS", DEFAULT_ADDRESS),
                        help="Temporal frontend host:port (env TEMPORAL_ADDRESS, default %(default)s)")
    parser.add_argument("--namespace", default=os.environ.get("TEMPORAL_NAMESPACE", "default"),
                        help="Temporal namespace (env TEMPORAL_NAMESPACE, default %(default)s)")
    parser.add_argument("--task-queue", default=os.environ.get("INCIDENTCTL_TASK_QUEUE", TASK_QUEUE),
                        help="task queue (env INCIDENTCTL_TASK_QUEUE, default %(default)s)")
    return parser.parse_args(argv)


async def serve(address: str, namespace: str, task_queue: str) -> None:
    client = await connect(address, namespace)
    stop = stop_on_signals()
    async with build_worker(client, task_queue):
        logging.info("worker polling %s on %s (namespace %s)", task_queue, address, namespace)
        await stop.wait()
    logging.info("worker stopped")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(args.address, args.namespace, args.task_queue))
    except (ConnectionError, RuntimeError) as exc:
        logging.error("cannot run the worker against %s: %s", args.address, exc)
        return 1
    return 0


if __name__ == "__main__":
    exit_without_finalizing(main())
