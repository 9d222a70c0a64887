"""What people may write into an incident's post-incident review (the `update_review` update). Pure."""

from __future__ import annotations

from typing import Any

TEXT_FIELDS = ("summary", "impact", "root_cause")
LIST_FIELDS = ("what_went_well", "what_to_improve")
MAX_TEXT = 20_000


def review_problem(fields: dict[str, Any]) -> str | None:
    """Why these review fields must be refused, or None."""
    if not isinstance(fields, dict) or not fields:
        return "give at least one review field to set"
    for key, value in fields.items():
        if key in TEXT_FIELDS:
            if not isinstance(value, str) or len(value) > MAX_TEXT:
                return f"{key} must be text of at most {MAX_TEXT} characters"
        elif key in LIST_FIELDS:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                return f"{key} must be a list of texts"
        elif key == "action_items":
            if not isinstance(value, list) or not all(
                    isinstance(v, dict) and isinstance(v.get("text"), str) and isinstance(v.get("owner", ""), str)
                    for v in value):
                return "action_items must be a list of {text, owner}"
        elif key == "completed":
            if not isinstance(value, bool):
                return "completed must be true or false"
        else:
            known = ", ".join((*TEXT_FIELDS, *LIST_FIELDS, "action_items", "completed"))
            return f"unknown review field {key!r} (known: {known})"
    return None
