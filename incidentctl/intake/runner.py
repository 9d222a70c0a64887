"""Starting the receiver inside an asyncio program (the `receiver` command, `incidentctl dev`, tests)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from temporalio.client import Client

from incidentctl.dsl.catalog import runbook_dirs
from incidentctl.dsl.compiler import compile_directory
from incidentctl.intake.delivery import AlertIntake
from incidentctl.intake.routing import Router
from incidentctl.intake.server import ReceiverAuth, create_app
from workflows.model import TASK_QUEUE

log = logging.getLogger("incidentctl.receiver")


@dataclass
class RunningReceiver:
    runner: web.AppRunner
    url: str
    intake: AlertIntake

    async def stop(self) -> None:
        await self.runner.cleanup()


def auth_from_env(insecure: bool = False) -> ReceiverAuth:
    return ReceiverAuth(token=os.environ.get("INCIDENTCTL_RECEIVER_TOKEN") or None,
                        hmac_secret=os.environ.get("INCIDENTCTL_RECEIVER_HMAC_SECRET") or None, insecure=insecure)


def load_router(paths: list[Path] | None = None) -> Router:
    plans, errors = compile_directory(paths or runbook_dirs())
    for error in errors:
        log.error("runbook not loaded: %s", error)
    return Router(plans)


async def start_receiver(client: Client, *, host: str = "127.0.0.1", port: int = 9095,
                         auth: ReceiverAuth, task_queue: str = TASK_QUEUE,
                         runbook_paths: list[Path] | None = None) -> RunningReceiver:
    intake = AlertIntake(client, load_router(runbook_paths), task_queue=task_queue)
    runner = web.AppRunner(create_app(intake, auth), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return RunningReceiver(runner, f"http://{host}:{bound}", intake)
