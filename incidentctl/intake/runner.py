"""Starting the receiver inside an asyncio program (the `receiver` command, `incidentctl dev`, tests)."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from temporalio.client import Client

from incidentctl.client import SEVERITIES
from incidentctl.dsl.catalog import runbook_dirs
from incidentctl.dsl.compiler import compile_directory
from incidentctl.intake.delivery import AlertIntake
from incidentctl.intake.routing import Router
from incidentctl.intake.server import ReceiverAuth, create_app
from incidentctl.localhttp import serve
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


def severity_map_from_env() -> dict[str, str] | None:
    """`INCIDENTCTL_SEVERITY_MAP='{"critical": "SEV1", "warning": "SEV3"}'` replaces the default mapping."""
    raw = os.environ.get("INCIDENTCTL_SEVERITY_MAP")
    if not raw:
        return None
    try:
        mapping = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"INCIDENTCTL_SEVERITY_MAP is not JSON: {exc}") from None
    if not isinstance(mapping, dict) or not all(v in SEVERITIES for v in mapping.values()):
        raise ValueError("INCIDENTCTL_SEVERITY_MAP must map label values to SEV1..SEV4, e.g. "
                         '\'{"critical": "SEV1"}\'')
    return {str(k): str(v) for k, v in mapping.items()}


def load_router(paths: list[Path] | None = None) -> Router:
    plans, errors = compile_directory(paths or runbook_dirs())
    for error in errors:
        log.error("runbook not loaded: %s", error)
    return Router(plans, severity_map=severity_map_from_env())


async def start_receiver(client: Client, *, host: str = "127.0.0.1", port: int = 9095,
                         auth: ReceiverAuth, task_queue: str = TASK_QUEUE,
                         runbook_paths: list[Path] | None = None) -> RunningReceiver:
    intake = AlertIntake(client, load_router(runbook_paths), task_queue=task_queue)
    runner, url = await serve(create_app(intake, auth), host, port, access_log=None)
    return RunningReceiver(runner, url, intake)
