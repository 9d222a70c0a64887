"""Keys written as `id=<base64 of 32 bytes>` entries (commas or lines; `#` comments), as every key incidentctl
reads from its environment is: payload encryption, plan signatures, identity signatures. The id travels with
what a key made, so keys rotate: the first one makes, all of them check."""

from __future__ import annotations

import base64
import binascii
import secrets

KEY_BYTES = 32


class KeyringError(ValueError):
    pass


def new_key(key_id: str) -> str:
    return f"{key_id}={base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}"


def parse_keys(text: str, where: str, maker: str = "incidentctl codec key") -> list[tuple[str, bytes]]:
    """The (id, key) pairs of `text`, in order; `where` and `maker` name the setting and the command that makes
    a key, for the error."""
    keys: list[tuple[str, bytes]] = []
    for entry in text.replace("\n", ",").split(","):
        entry = entry.strip()
        if not entry or entry.startswith("#"):
            continue
        key_id, _, encoded = entry.partition("=")
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if not key_id.strip() or len(key) != KEY_BYTES:
            raise KeyringError(f"{where}: each key is `id=<base64 of {KEY_BYTES} bytes>` (make one with "
                               f"`{maker}`); {key_id.strip() or 'an entry'} is not")
        keys.append((key_id.strip(), key))
    return keys
