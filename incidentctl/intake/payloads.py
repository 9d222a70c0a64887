"""Incoming alert payloads: decoded safely, validated alert by alert, normalised to one shape, fingerprinted.

A notification is accepted per alert: one malformed alert (no alertname, a bad timestamp) is rejected with
its reason while the good alerts of the same notification go on. Only a body that is not a notification at
all (no `alerts` list, not JSON) is refused as a whole.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jsonschema

from incidentctl.dsl.errors import json_path
from incidentctl.dsl.resources import load_schema

# Deeper than any alert needs; stops bodies built to exhaust recursion in whatever walks them later.
MAX_DEPTH = 32
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")
_SURROGATE = re.compile("[\ud800-\udfff]")


class PayloadError(ValueError):
    """A 4xx-worthy problem with a request body, as one sentence."""


@dataclass
class RejectedAlert:
    """An alert of an accepted notification that could not be taken, and why."""

    index: int
    reason: str
    labels: dict[str, str]
    status: str = "firing"
    fingerprint: str = ""


@dataclass
class Delivery:
    """One POST, normalised: the alerts it carries and the grouping the sender applied."""

    alerts: list[dict[str, Any]]
    group_labels: dict[str, str] = field(default_factory=dict)
    group_key: str = ""
    receiver: str = ""
    source: str = "alertmanager"
    truncated: int = 0
    rejected: list[RejectedAlert] = field(default_factory=list)
    # Well-formed alerts that are deliberately not delivered (a cloud alarm's INSUFFICIENT_DATA), with the reason:
    # answered and kept with the unrouted alerts, so nothing is dropped silently.
    not_delivered: list[tuple[dict[str, Any], str]] = field(default_factory=list)


def decode_json(raw: bytes) -> Any:
    """JSON text -> value, refusing what cannot be stored safely; every failure is a PayloadError."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise PayloadError(f"body is nested deeper than {MAX_DEPTH} levels") from None
    except UnicodeDecodeError as exc:
        raise PayloadError(f"body is not UTF-8: {exc.reason} at byte {exc.start}") from None
    except ValueError as exc:  # JSONDecodeError, and integers longer than Python converts (4,300 digits)
        raise PayloadError(f"body is not valid JSON: {exc}") from None
    return _safe(value, 0)


def _safe(value: Any, depth: int) -> Any:
    """The value with lone surrogates replaced (they cannot be encoded later), refusing deep nesting."""
    if depth > MAX_DEPTH:
        raise PayloadError(f"body is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value) if not value.isascii() else value
    if isinstance(value, dict):
        return {_safe(k, depth): _safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_safe(v, depth + 1) for v in value]
    return value


@functools.cache
def _validator(name: str, ref: str = "") -> jsonschema.Draft202012Validator:
    schema = load_schema(name)
    if ref:
        schema = {"$defs": schema["$defs"], **schema["$defs"][ref]}
    return jsonschema.Draft202012Validator(schema)


def _problem(validator: jsonschema.Draft202012Validator, body: Any, prefix: str) -> str | None:
    error = jsonschema.exceptions.best_match(validator.iter_errors(body))
    if error is None:
        return None
    return f"{json_path(error.absolute_path, root=prefix)}: {error.message}"


def fingerprint(labels: dict[str, str]) -> str:
    """Stable id of an alert from its labels (for senders that give none, like older Alertmanagers)."""
    canonical = json.dumps(labels, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def timestamp_problem(value: Any) -> str | None:
    """Why `value` is not an RFC 3339 time as Alertmanager writes it (Go's zero time included), or None."""
    if value is None:
        return None
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        return f"{value!r} is not an RFC 3339 time like 2026-11-23T08:00:00Z"
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError as exc:
        return f"{value!r} is not a real time: {exc}"
    return None


def _alert(raw: Any, common_labels: dict[str, str], common_annotations: dict[str, str], where: str
           ) -> dict[str, Any]:
    problem = _problem(_validator("alertmanager-webhook.schema.json", "alert"), raw, where)
    if problem:
        raise PayloadError(problem)
    labels = {**common_labels, **raw["labels"]}
    if not labels.get("alertname"):
        raise PayloadError(f"{where}.labels: every alert needs an alertname label")
    for key in ("startsAt", "endsAt"):
        problem = timestamp_problem(raw.get(key))
        if problem:
            raise PayloadError(f"{where}.{key}: {problem}")
    return {
        "fingerprint": raw.get("fingerprint") or fingerprint(labels),
        "status": raw.get("status", "firing"),
        "labels": labels,
        "annotations": {**common_annotations, **(raw.get("annotations") or {})},
        "startsAt": raw.get("startsAt"),
        "endsAt": raw.get("endsAt"),
        "generatorURL": raw.get("generatorURL"),
    }


def _rejected(index: int, raw: Any, reason: str) -> RejectedAlert:
    """What can be said of a bad alert: its string labels, status and fingerprint where it has them."""
    raw = raw if isinstance(raw, dict) else {}
    labels = raw.get("labels") if isinstance(raw.get("labels"), dict) else {}
    shown = {str(k): v if isinstance(v, str) else json.dumps(v)[:200] for k, v in list(labels.items())[:64]}
    status = raw.get("status") if raw.get("status") in ("firing", "resolved") else "firing"
    given = raw.get("fingerprint")
    return RejectedAlert(index, reason, shown, status, given if isinstance(given, str) else "")


def parse_alertmanager(body: Any) -> Delivery:
    problem = _problem(_validator("alertmanager-webhook.schema.json"), body, "body")
    if problem:
        raise PayloadError(problem)
    common_labels = body.get("commonLabels") or {}
    common_annotations = body.get("commonAnnotations") or {}
    delivery = Delivery(alerts=[], group_labels=body.get("groupLabels") or {}, group_key=body.get("groupKey", ""),
                        receiver=body.get("receiver", ""), truncated=int(body.get("truncatedAlerts") or 0))
    for index, raw in enumerate(body["alerts"]):
        try:
            delivery.alerts.append(_alert(raw, common_labels, common_annotations, f"body.alerts[{index}]"))
        except PayloadError as exc:
            delivery.rejected.append(_rejected(index, raw, str(exc)))
    return delivery


def parse_single_alert(body: Any) -> Delivery:
    problem = _problem(_validator("alert.schema.json"), body, "body")
    if problem:
        raise PayloadError(problem)
    alert = _alert({k: v for k, v in body.items() if k != "group_by"}, {}, {}, "body")
    group = {name: alert["labels"].get(name, "") for name in body.get("group_by") or []}
    return Delivery(alerts=[alert], group_labels=group, source="generic")
