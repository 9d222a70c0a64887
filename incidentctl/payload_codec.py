"""Every payload incidentctl puts in Temporal (inputs, results, signals, updates, queries, failures' details)
encrypted with AES-256-GCM, so alert text, pod logs and runbook outputs are not readable in the history store.

Keys come from `INCIDENTCTL_PAYLOAD_KEYS` (or the file `INCIDENTCTL_PAYLOAD_KEYS_FILE`): `id=<base64 of 32
bytes>` entries separated by commas or lines, the first one encrypting, all of them decrypting, so a key is
rotated by putting a new one first and dropping the old one once no open incident needs it. Every process
that talks to Temporal (worker, receiver, CLI) needs the same keys; `incidentctl codec key` makes one. The
Temporal UI reads histories through `incidentctl codec serve` (the codec server protocol).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from incidentctl.keyring import KeyringError as CodecKeyError
from incidentctl.keyring import new_key, parse_keys

__all__ = ["CodecKeyError", "EncryptionCodec", "keys_from_env", "new_key", "parse_keys"]

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12


def keys_from_env() -> list[tuple[str, bytes]]:
    """The configured keys, first the one that encrypts; none means payloads are not encrypted."""
    if os.environ.get("INCIDENTCTL_PAYLOAD_KEYS"):
        return parse_keys(os.environ["INCIDENTCTL_PAYLOAD_KEYS"], "INCIDENTCTL_PAYLOAD_KEYS")
    path = os.environ.get("INCIDENTCTL_PAYLOAD_KEYS_FILE")
    if path:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise CodecKeyError(f"INCIDENTCTL_PAYLOAD_KEYS_FILE {path}: {exc.strerror}") from None
        return parse_keys(text, path)
    return []


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if not keys:
            raise CodecKeyError("an encryption codec needs at least one key")
        self._current = keys[0][0]
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        cipher = self._ciphers[self._current]
        encoded = []
        for payload in payloads:
            nonce = os.urandom(NONCE_BYTES)
            data = nonce + cipher.encrypt(nonce, payload.SerializeToString(), self._current.encode())
            encoded.append(Payload(metadata={"encoding": ENCODING, KEY_ID: self._current.encode()}, data=data))
        return encoded

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        from cryptography.exceptions import InvalidTag

        decoded = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                decoded.append(payload)  # written before encryption was turned on
                continue
            key_id = payload.metadata.get(KEY_ID, b"").decode()
            cipher = self._ciphers.get(key_id)
            if cipher is None:
                raise CodecKeyError(f"a payload is encrypted with key {key_id!r}, which this process does not have "
                                    "(INCIDENTCTL_PAYLOAD_KEYS)")
            try:
                plain = cipher.decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:], key_id.encode())
            except InvalidTag:
                raise CodecKeyError(f"a payload under key {key_id!r} does not decrypt: wrong key or altered data") \
                    from None
            decoded.append(Payload.FromString(plain))
        return decoded
