"""What the cloud alarm parsers share: label names Alertmanager matchers accept, times as Alertmanager writes them."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from incidentctl.intake.payloads import PayloadError

_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_]")


def label_name(name: str) -> str:
    """`name` as an Alertmanager label name ([A-Za-z_][A-Za-z0-9_]*), so trigger matchers can name it."""
    cleaned = _NOT_IN_NAME.sub("_", name)
    return cleaned if cleaned and not cleaned[0].isdigit() else f"_{cleaned}"


def add_labels(labels: dict[str, str], extra: dict[str, Any], clash_prefix: str) -> None:
    """Add `extra` as labels; a name the alarm's own labels already use gets `clash_prefix` (never overwrites)."""
    for raw_name, value in extra.items():
        if value is None:
            continue
        name = label_name(str(raw_name))
        if name in labels:
            name = clash_prefix + name
        labels.setdefault(name, value if isinstance(value, str) else str(value))


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: Any, where: str) -> datetime:
    """An ISO 8601 time as AWS writes them (`2026-12-01T10:00:00.000+0000`, `...Z`) or Unix seconds."""
    if isinstance(value, bool):
        raise PayloadError(f"{where}: {value!r} is not a time")
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise PayloadError(f"{where}: {value!r} is not a Unix time") from None
    if not isinstance(value, str):
        raise PayloadError(f"{where}: {value!r} is not a time")
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise PayloadError(f"{where}: {value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise PayloadError(f"{where}: {value!r} has no time zone")
    return moment
