"""Reading sparse Kubernetes JSON: the API omits empty fields, and some clients write null for them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def dig(obj: Any, *path: str) -> Any:
    """obj[path[0]][path[1]]..., or None as soon as a level is absent, null or not a dict."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def as_list(value: Any) -> list[Any]:
    """A list field; absent or null means none."""
    return value if isinstance(value, list) else []


def as_dict(value: Any) -> dict[str, Any]:
    """A map field; absent or null means empty."""
    return value if isinstance(value, dict) else {}


def selector_string(selector: Any) -> str:
    """A workload's object-form selector as a label selector string (`app=cart,tier in (web)`), for list calls."""
    spec = as_dict(selector)
    parts = [f"{key}={value}" for key, value in sorted(as_dict(spec.get("matchLabels")).items())]
    for expression in as_list(spec.get("matchExpressions")):
        key, operator = expression.get("key"), expression.get("operator")
        values = ",".join(sorted(str(v) for v in as_list(expression.get("values"))))
        parts.append({"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": f"{key}",
                      "DoesNotExist": f"!{key}"}.get(operator, f"{key}"))
    return ",".join(parts)


def parse_time(value: Any) -> datetime | None:
    """RFC3339 (with or without fractional seconds) -> aware UTC; None for anything unparsable."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    # The API never sends naive times; treating a stray one as UTC beats failing over it.
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_time(value: datetime) -> str:
    """RFC3339 in UTC to the second, as the API writes timestamps (a naive time is taken as UTC)."""
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def controller_ref(obj: Any) -> dict[str, Any] | None:
    """The owner reference marked `controller`: what would recreate the object (kubectl's GetControllerOf)."""
    return next((r for r in as_list(dig(obj, "metadata", "ownerReferences"))
                 if isinstance(r, dict) and r.get("controller")), None)


def owner_ref(obj: Any) -> dict[str, Any] | None:
    """The controller reference, else the first owner (objects written by hand may lack the flag)."""
    refs = [r for r in as_list(dig(obj, "metadata", "ownerReferences")) if isinstance(r, dict)]
    return controller_ref(obj) or (refs[0] if refs else None)
