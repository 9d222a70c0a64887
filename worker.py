"""Run one incidentctl worker: `python worker.py [--address H:P] [--namespace NS] [--task-queue Q]`.

Scale out by running more of these against the same Temporal cluster; each one serves every incident.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

from temporalio.client import Client
from temporalio.worker import Worker

from activities.catalog import all_activities
from activities.incident_history import IncidentHistory
from incidentctl.process import exit_without_finalizing, stop_on_signals
from workflows.incident import IncidentWorkflow
from workflows.model import TASK_QUEUE

DEFAULT_ADDRESS = "localhost:7233"


def build_worker(client: Client, task_queue: str = TASK_QUEUE, max_concurrent_activities: int = 100) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[IncidentWorkflow],
        activities=[*all_activities(), IncidentHistory(client).previous_runs],
        max_concurrent_activities=max_concurrent_activities,
    )


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
    client = await Client.connect(address, namespace=namespace)
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
