"""Reading sparse Kubernetes JSON: the API omits empty fields, and some clients write null for them."""

from __future__ import annotations

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
