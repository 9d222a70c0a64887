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
from incidentctl.intake.delivery import AlertIntake
from incidentctl.intake.routing import DEFAULT_KEY_LABELS, Router
from incidentctl.intake.server import ReceiverAuth, ReceiverLimits, create_app
from incidentctl.intake.sns import SnsConfig, sns_config_from_env
from incidentctl.library import compile_directory, runbook_dirs
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
    return Router(plans, severity_map=severity_map_from_env(), key_labels=key_labels_from_env())


def key_labels_from_env() -> tuple[str, ...]:
    """`INCIDENTCTL_INCIDENT_KEY_LABELS=cluster,region`: labels that always split incidents (default: cluster)."""
    raw = os.environ.get("INCIDENTCTL_INCIDENT_KEY_LABELS")
    if raw is None:
        return DEFAULT_KEY_LABELS
    return tuple(name.strip() for name in raw.split(",") if name.strip())


def limits_from_env() -> ReceiverLimits:
    """`INCIDENTCTL_RECEIVER_MAX_BODY` (bytes) and `INCIDENTCTL_RECEIVER_MAX_CONNECTIONS` override the defaults."""
    overrides = {}
    for env, name in (("INCIDENTCTL_RECEIVER_MAX_BODY", "max_body_bytes"),
                      ("INCIDENTCTL_RECEIVER_MAX_CONNECTIONS", "max_connections")):
        raw = os.environ.get(env)
        if raw:
            if not raw.isdigit() or int(raw) < 1:
                raise ValueError(f"{env} must be a positive whole number, not {raw!r}")
            overrides[name] = int(raw)
    return ReceiverLimits(**overrides)


async def start_receiver(client: Client, *, host: str = "127.0.0.1", port: int = 9095,
                         auth: ReceiverAuth, task_queue: str = TASK_QUEUE,
                         runbook_paths: list[Path] | None = None,
                         limits: ReceiverLimits | None = None, rpc_timeout: float = 10.0,
                         sns: SnsConfig | None = None) -> RunningReceiver:
    intake = AlertIntake(client, load_router(runbook_paths), task_queue=task_queue, rpc_timeout=rpc_timeout)
    limits = limits or limits_from_env()
    app = create_app(intake, auth, limits, sns or sns_config_from_env())
    runner, url = await serve(
        app, host, port, access_log=None, keepalive_timeout=limits.header_timeout_s,
        # After a refused body, drain what is still coming for at most this long (not aiohttp's 10 s).
        lingering_time=2.0,
        max_connections=limits.max_connections,
        on_refused=lambda: intake.metrics.inc("incidentctl_connections_refused_total"))
    return RunningReceiver(runner, url, intake)
