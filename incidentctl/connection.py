"""Connecting to Temporal as every incidentctl process does: address and namespace, TLS or mTLS, an API key
(Temporal Cloud), and the payload codec, all from the environment so the worker, the receiver and the CLI
agree.

    INCIDENTCTL_TEMPORAL_API_KEY          API key (implies TLS)
    INCIDENTCTL_TEMPORAL_TLS=1            TLS with the system's CAs
    INCIDENTCTL_TEMPORAL_TLS_CA           a CA bundle (PEM) to trust instead (implies TLS)
    INCIDENTCTL_TEMPORAL_TLS_CERT/_KEY    client certificate and key for mTLS (implies TLS)
    INCIDENTCTL_TEMPORAL_TLS_SERVER_NAME  the name to verify the server's certificate against
    INCIDENTCTL_PAYLOAD_KEYS(_FILE)       encrypt every payload (incidentctl/payload_codec.py)
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.service import TLSConfig

from incidentctl.payload_codec import EncryptionCodec, keys_from_env


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


async def connect(address: str, namespace: str = "default") -> Client:
    return await Client.connect(address, namespace=namespace, tls=tls_from_env(),
                                api_key=os.environ.get("INCIDENTCTL_TEMPORAL_API_KEY") or None,
                                data_converter=data_converter_from_env())
