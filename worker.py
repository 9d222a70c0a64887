"""Run one incidentctl worker: `python worker.py [--address H:P] [--namespace NS] [--task-queue Q]`.

Scale out by running more of these against the same Temporal cluster; each one serves every incident.
Every option has an environment variable, so containers configure it without a command line (docs/install.md):
the worker waits for Temporal to be reachable, serves /healthz and /readyz for probes, exports the Temporal
SDK's metrics for Prometheus, and on SIGTERM lets running steps finish for a grace period before it exits.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from dataclasses import dataclass
from datetime import timedelta

from aiohttp import web
from temporalio.runtime import Runtime

from incidentctl import tracing
from incidentctl.connection import ConnectionConfigError, connect_when_reachable
from incidentctl.dsl.durations import parse_duration
from incidentctl.payload_codec import CodecKeyError
from incidentctl.process import exit_without_finalizing, stop_on_signals
from incidentctl.worker_health import WorkerState, parse_bind_address, start_health_server
from incidentctl.worker_metrics import prometheus_runtime
from incidentctl.workers import build_worker
from workflows.model import TASK_QUEUE

DEFAULT_ADDRESS = "localhost:7233"
# Long enough for most diagnosis steps and a remediation's API calls; a wait longer than this is cancelled and
# retried by another worker (docs/install.md, "Upgrading worker code").
DEFAULT_SHUTDOWN_GRACE = "30s"
__all__ = ["build_worker", "main"]
log = logging.getLogger("incidentctl.worker")


@dataclass(frozen=True)
class WorkerSettings:
    address: str
    namespace: str
    task_queue: str
    shutdown_grace: timedelta
    connect_timeout_s: float | None = None
    health: tuple[str, int] | None = None
    metrics_address: str | None = None


def _duration(text: str) -> float:
    """`45s`, `2m`, or a number of seconds."""
    try:
        return parse_duration(float(text) if text.replace(".", "", 1).isdigit() else text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description="Run an incidentctl Temporal worker.")
    parser.add_argument("--address", default=env("TEMPORAL_ADDRESS", DEFAULT_ADDRESS),
                        help="Temporal frontend host:port (env TEMPORAL_ADDRESS, default %(default)s)")
    parser.add_argument("--namespace", default=env("TEMPORAL_NAMESPACE", "default"),
                        help="Temporal namespace (env TEMPORAL_NAMESPACE, default %(default)s)")
    parser.add_argument("--task-queue", default=env("INCIDENTCTL_TASK_QUEUE", TASK_QUEUE),
                        help="task queue (env INCIDENTCTL_TASK_QUEUE, default %(default)s)")
    parser.add_argument("--shutdown-grace", type=_duration,
                        default=env("INCIDENTCTL_WORKER_SHUTDOWN_GRACE", DEFAULT_SHUTDOWN_GRACE),
                        help="on SIGTERM, how long running steps may finish before they are cancelled "
                             "(env INCIDENTCTL_WORKER_SHUTDOWN_GRACE, default %(default)s)")
    parser.add_argument("--connect-timeout", type=_duration, default=env("INCIDENTCTL_TEMPORAL_CONNECT_TIMEOUT"),
                        help="give up when Temporal is unreachable this long (env "
                             "INCIDENTCTL_TEMPORAL_CONNECT_TIMEOUT; default: keep waiting)")
    parser.add_argument("--health-address", default=env("INCIDENTCTL_WORKER_HEALTH_ADDRESS"),
                        help="HOST:PORT to serve /healthz and /readyz on (env INCIDENTCTL_WORKER_HEALTH_ADDRESS; "
                             "default: none)")
    parser.add_argument("--metrics-address", default=env("INCIDENTCTL_WORKER_METRICS_ADDRESS"),
                        help="HOST:PORT to serve Prometheus metrics on, the Temporal SDK's and ours (env "
                             "INCIDENTCTL_WORKER_METRICS_ADDRESS; default: none)")
    # argparse applies `type` to a string default too, so a bad value in the environment is refused alike.
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> WorkerSettings:
    health = parse_bind_address(args.health_address, "--health-address") if args.health_address else None
    if args.metrics_address:
        parse_bind_address(args.metrics_address, "--metrics-address")
    return WorkerSettings(args.address, args.namespace, args.task_queue, timedelta(seconds=args.shutdown_grace),
                          args.connect_timeout, health, args.metrics_address or None)


def runtime_for(settings: WorkerSettings) -> Runtime | None:
    """The SDK runtime that exports its metrics (workflow and activity counts, latencies, poll results) and ours
    (incidentctl_*: incidentctl/worker_metrics.py, workflows/metrics.py)."""
    return prometheus_runtime(settings.metrics_address) if settings.metrics_address else None


async def serve(settings: WorkerSettings) -> None:
    stop = stop_on_signals()
    state = WorkerState()
    health_runner: web.AppRunner | None = None
    if settings.health:
        health_runner, url = await start_health_server(state, *settings.health)
        log.info("health endpoints at %s/healthz and /readyz", url)
    try:
        client = await connect_when_reachable(settings.address, settings.namespace, stop,
                                              give_up_after_s=settings.connect_timeout_s,
                                              runtime=runtime_for(settings))
        if client is None:
            return
        worker = build_worker(client, settings.task_queue, shutdown_grace=settings.shutdown_grace)
        async with worker:
            state.polling(client, worker)
            log.info("worker polling %s on %s (namespace %s)", settings.task_queue, settings.address,
                     settings.namespace)
            await stop.wait()
            state.phase = "stopping"
            log.info("stopping: running steps have %ss to finish", settings.shutdown_grace.total_seconds())
        log.info("worker stopped")
    finally:
        if health_runner:
            await health_runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = settings_from(args)
        asyncio.run(serve(settings))
    except (ConnectionConfigError, CodecKeyError, ValueError) as exc:
        logging.error("cannot run the worker: %s", exc)
        return 2
    except (ConnectionError, RuntimeError, OSError) as exc:
        logging.error("cannot run the worker against %s: %s", args.address, exc)
        return 1
    return 0


if __name__ == "__main__":
    code = main()
    tracing.flush()
    exit_without_finalizing(code)
