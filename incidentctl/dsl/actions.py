"""What the language knows of an action: its name, parameter schema, whether it mutates, its heartbeat.

The compiler checks runbooks against an `ActionCatalog` handed to it; the action registry (activities/)
builds one from the actions it holds. The language never imports the actions, so compiling a runbook does
not import any backend's SDK.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ActionInfo:
    name: str
    params_schema: dict[str, Any]
    mutates: bool = False
    description: str = ""
    # A worker that dies mid-action is noticed after this long (None: the plan's DEFAULT_HEARTBEAT_S).
    heartbeat_timeout_s: float | None = None
    # Mutating actions: the object they change, a template over their params such as
    # "k8s/{context}/{namespace}/deployments/{deployment}"; a step holds that object's lease while it runs.
    lease: str | None = None
    # Mutating actions: repeating an attempt (a retry after a worker crash) changes nothing more than the first
    # did, so the compiler lets Temporal retry them (MUTATING_MAX_ATTEMPTS) by default.
    idempotent: bool = False

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "mutates": self.mutates,
                "params": self.params_schema}


ActionCatalog = Mapping[str, ActionInfo]
