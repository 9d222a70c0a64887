"""Payloads encrypted in Temporal's history: the codec alone, then a real incident on the dev server through a
client and worker that encrypt, read back raw (ciphertext only) and through the codec server (clear)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import aiohttp
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client

from incidentctl import client as incidents
from incidentctl.codec_server import create_codec_app
from incidentctl.connection import connect, tls_from_env
from incidentctl.devserver import DevServer
from incidentctl.history import incident_history
from incidentctl.library import compile_text
from incidentctl.localhttp import serve
from incidentctl.payload_codec import ENCODING, CodecKeyError, EncryptionCodec, new_key, parse_keys
from incidentctl.workers import build_worker

MARKER = "pod-log-line-with-a-customer-email@example.com"
RUNBOOK = """
name: codec-check
version: 1
steps:
  - id: look
    action: util.echo
    params: {message: "saw ${{ alert.labels.detail }}"}
"""


def keys(*ids: str) -> list[tuple[str, bytes]]:
    return parse_keys(",".join(new_key(i) for i in ids), "test")


async def test_round_trip_rotation_and_refusals() -> None:
    old, new = keys("old")[0], keys("new")[0]
    plain = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(MARKER).encode())
    [sealed] = await EncryptionCodec([old]).encode([plain])
    assert sealed.metadata["encoding"] == ENCODING and MARKER.encode() not in sealed.data
    assert await EncryptionCodec([new, old]).decode([sealed]) == [plain], "a rotated-out key still decrypts"
    assert await EncryptionCodec([new]).decode([plain]) == [plain], "payloads from before encryption pass"
    with pytest.raises(CodecKeyError, match="key 'old', which this process does not have"):
        await EncryptionCodec([new]).decode([sealed])
    tampered = Payload(metadata=dict(sealed.metadata), data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
    with pytest.raises(CodecKeyError, match="wrong key or altered data"):
        await EncryptionCodec([old]).decode([tampered])
    with pytest.raises(CodecKeyError, match="id=<base64 of 32 bytes>"):
        parse_keys("k1=c2hvcnQ=", "INCIDENTCTL_PAYLOAD_KEYS")


def test_tls_and_api_key_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert tls_from_env() is False
    monkeypatch.setenv("INCIDENTCTL_TEMPORAL_API_KEY", "key")
    assert tls_from_env() is True
    (tmp_path / "ca.pem").write_bytes(b"CA")
    monkeypatch.setenv("INCIDENTCTL_TEMPORAL_TLS_CA", str(tmp_path / "ca.pem"))
    config = tls_from_env()
    assert not isinstance(config, bool) and config.server_root_ca_cert == b"CA"
    monkeypatch.setenv("INCIDENTCTL_TEMPORAL_TLS_CERT", str(tmp_path / "ca.pem"))
    with pytest.raises(ValueError, match="needs both"):
        tls_from_env()


async def test_an_incidents_history_holds_only_ciphertext(dev_server: DevServer, client: Client, unique: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    entry = new_key("k1")
    monkeypatch.setenv("INCIDENTCTL_PAYLOAD_KEYS", entry)
    sealed_client = await connect(dev_server.address)
    task_queue = f"codec-{unique}"
    alert = {"labels": {"alertname": "Codec", "detail": MARKER}, "status": "firing"}
    async with build_worker(sealed_client, task_queue):
        started = await incidents.start_incident(sealed_client, compile_text(RUNBOOK, "codec.yaml"), alert=alert,
                                                 key=unique, task_queue=task_queue)
        summary = await incidents.wait_for_runbook(sealed_client, started.incident_id, timeout=60)
        assert summary["steps"]["look"]["output"]["message"] == f"saw {MARKER}"
        history = await incident_history(sealed_client, started.incident_id)
        await incidents.cancel_incident(sealed_client, started.incident_id)

    # Read raw, as anyone with access to the history store would: no clear text, every payload sealed.
    raw = await client.get_workflow_handle(started.incident_id).fetch_history()
    text = raw.to_json()
    assert MARKER not in text and base64.b64encode(MARKER.encode()).decode()[:20] not in text
    started_event = raw.events[0].workflow_execution_started_event_attributes
    assert started_event.input.payloads[0].metadata["encoding"] == ENCODING
    # Through the codec (the worker's client), the review's history reads in clear.
    assert any(MARKER in json.dumps(e.data, default=str) for e in history.events)

    # The codec server gives the Temporal UI the clear payload, to a caller with the token only.
    runner, url = await serve(create_codec_app(EncryptionCodec(parse_keys(entry, "test")), token="t"))
    try:
        body = json_format.MessageToJson(Payloads(payloads=[started_event.input.payloads[0]]))
        async with aiohttp.ClientSession() as session:
            async with session.post(url + "/decode", data=body) as response:
                assert response.status == 401
            async with session.post(url + "/decode", data=body, headers={"Authorization": "Bearer t"}) as response:
                decoded = json_format.Parse(await response.text(), Payloads())
    finally:
        await runner.cleanup()
    assert MARKER in decoded.payloads[0].data.decode()
