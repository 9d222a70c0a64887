"""Connecting to Temporal as every incidentctl process does: address and namespace, TLS or mTLS, an API key
(Temporal Cloud), and the payload codec, all from the environment so the worker, the receiver and the CLI
agree.

    INCIDENTCTL_TEMPORAL_API_KEY          API key (implies TLS)
    INCIDENTCTL_TEMPORAL_TLS=1            TLS with the system's CAs
    INCIDENTCTL_TEMPORAL_TLS_CA           a CA bundle (PEM) to trust instead (implies TLS)
    INCIDENTCTL_TEMPORAL_TLS_CERT/_KEY    client certificate and key for mTLS (implies TLS)
    INCIDENTCTL_TEMPORAL_TLS_SERVER_NAME  the name to verify the server's certificate against
    INCIDENTCTL_PAYLOAD_KEYS(_FILE)       encrypt every payload (incidentctl/payload_codec.py)
    OTEL_EXPORTER_OTLP_ENDPOINT, ...      trace every client call, and the worker built on it (incidentctl/tracing.py)
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig

from incidentctl import tracing
from incidentctl.payload_codec import EncryptionCodec, keys_from_env

log = logging.getLogger("incidentctl.connection")


class ConnectionConfigError(ValueError):
    pass


def _read(variable: str) -> bytes | None:
    path = os.environ.get(variable)
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConnectionConfigError(f"{variable}={path}: {exc.strerror}") from None


def tls_from_env() -> bool | TLSConfig:
    ca, cert, key = (_read(f"INCIDENTCTL_TEMPORAL_TLS_{name}") for name in ("CA", "CERT", "KEY"))
    if bool(cert) != bool(key):
        raise ConnectionConfigError("mTLS needs both INCIDENTCTL_TEMPORAL_TLS_CERT and INCIDENTCTL_TEMPORAL_TLS_KEY")
    server_name = os.environ.get("INCIDENTCTL_TEMPORAL_TLS_SERVER_NAME") or None
    if ca or cert or server_name:
        return TLSConfig(server_root_ca_cert=ca, client_cert=cert, client_private_key=key,
                         domain=server_name)
    return os.environ.get("INCIDENTCTL_TEMPORAL_TLS", "").lower() in ("1", "true", "yes") or bool(
        os.environ.get("INCIDENTCTL_TEMPORAL_API_KEY"))


def data_converter_from_env() -> DataConverter:
    keys = keys_from_env()
    if not keys:
        return DataConverter.default
    return dataclasses.replace(DataConverter.default, payload_codec=EncryptionCodec(keys))


async def connect(address: str, namespace: str = "default", runtime: Runtime | None = None) -> Client:
    try:
        interceptors = tracing.client_interceptors()
    except tracing.TracingConfigError as exc:
        raise ConnectionConfigError(str(exc)) from None
    return await Client.connect(address, namespace=namespace, tls=tls_from_env(),
                                api_key=os.environ.get("INCIDENTCTL_TEMPORAL_API_KEY") or None,
                                data_converter=data_converter_from_env(), runtime=runtime,
                                interceptors=interceptors)


@dataclass(frozen=True)
class Backoff:
    """Waits between connection attempts: doubling from `first_s`, never longer than `max_s`."""

    first_s: float = 1.0
    max_s: float = 30.0

    def delays(self) -> list[float]:
        """The waits up to the ceiling; the last one repeats from then on."""
        delays = [min(self.first_s, self.max_s)]
        while delays[-1] < self.max_s:
            delays.append(min(delays[-1] * 2, self.max_s))
        return delays


async def connect_when_reachable(address: str, namespace: str, stop: asyncio.Event, *,
                                 give_up_after_s: float | None = None, backoff: Backoff | None = None,
                                 runtime: Runtime | None = None) -> Client | None:
    """Connect, waiting for Temporal as long as it takes (or `give_up_after_s`): in a compose stack or a pod,
    the server often starts after us, and exiting would only trade a wait for a restart loop.

    None if `stop` is set while waiting. Configuration errors (a missing certificate) are raised at once:
    waiting cannot fix them. After `give_up_after_s`, the last connection error is raised as ConnectionError.
    """
    delays = (backoff or Backoff()).delays()
    began = asyncio.get_running_loop().time()
    attempt = 0
    while True:
        attempt += 1
        try:
            client = await connect(address, namespace, runtime)
        except RuntimeError as exc:  # the SDK's "Failed client connect: ..."
            problem = str(exc)
        else:
            if attempt > 1:
                log.info("Temporal at %s reachable after %d attempts", address, attempt)
            return client
        waited = asyncio.get_running_loop().time() - began
        if give_up_after_s is not None and waited >= give_up_after_s:
            raise ConnectionError(f"Temporal at {address} still unreachable after {waited:.0f}s: {problem}")
        delay = delays[min(attempt - 1, len(delays) - 1)]
        if give_up_after_s is not None:
            delay = min(delay, give_up_after_s - waited)
        log.warning("Temporal at %s not reachable (attempt %d): %s; retrying in %.0fs", address, attempt,
                    problem, delay)
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except TimeoutError:
            continue
        log.info("stopped while waiting for Temporal at %s", address)
        return None
