"""Incoming alert payloads: validated against schemas/, normalised to one shape, fingerprinted."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from incidentctl.dsl.validate import schemas_dir


class PayloadError(ValueError):
    """A 4xx-worthy problem with a request body, as one sentence."""


@dataclass
class Delivery:
    """One POST, normalised: the alerts it carries and the grouping the sender applied."""

    alerts: list[dict[str, Any]]
    group_labels: dict[str, str] = field(default_factory=dict)
    group_key: str = ""
    receiver: str = ""
    source: str = "alertmanager"
    truncated: int = 0


@functools.cache
def _validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads((schemas_dir() / name).read_text()))


def _check(schema: str, body: Any) -> None:
    error = jsonschema.exceptions.best_match(_validator(schema).iter_errors(body))
    if error is not None:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        raise PayloadError(f"body{where}: {error.message}")


def fingerprint(labels: dict[str, str]) -> str:
    """Stable id of an alert from its labels (for senders that give none, like older Alertmanagers)."""
    canonical = json.dumps(labels, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _alert(raw: dict[str, Any], common_labels: dict[str, str], common_annotations: dict[str, str]) -> dict[str, Any]:
    labels = {**common_labels, **raw["labels"]}
    if not labels.get("alertname"):
        raise PayloadError("every alert needs an alertname label")
    return {
        "fingerprint": raw.get("fingerprint") or fingerprint(labels),
        "status": raw.get("status", "firing"),
        "labels": labels,
        "annotations": {**common_annotations, **(raw.get("annotations") or {})},
        "startsAt": raw.get("startsAt"),
        "endsAt": raw.get("endsAt"),
        "generatorURL": raw.get("generatorURL"),
    }


def parse_alertmanager(body: Any) -> Delivery:
    _check("alertmanager-webhook.schema.json", body)
    common_labels = body.get("commonLabels") or {}
    common_annotations = body.get("commonAnnotations") or {}
    return Delivery(
        alerts=[_alert(a, common_labels, common_annotations) for a in body["alerts"]],
        group_labels=body.get("groupLabels") or {},
        group_key=body.get("groupKey", ""),
        receiver=body.get("receiver", ""),
        truncated=int(body.get("truncatedAlerts") or 0),
    )


def parse_single_alert(body: Any) -> Delivery:
    _check("alert.schema.json", body)
    alert = _alert(body, {}, {})
    group = {name: alert["labels"].get(name, "") for name in body.get("group_by") or []}
    return Delivery(alerts=[alert], group_labels=group, source="generic")
