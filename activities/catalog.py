"""Which modules hold actions. Adding a backend: write `activities/<backend>.py` and name it here."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from activities.base import ActionSpec, registered_actions
from incidentctl.dsl.actions import ActionInfo

ACTION_MODULES: tuple[str, ...] = (
    "activities.util",
    "activities.http",
    "activities.notify",
    "activities.notify_http",
    "activities.notify_github",
    "activities.k8s.diagnose",
    "activities.k8s.workload",
    "activities.k8s.correlate",
    "activities.k8s.rollout",
    "activities.k8s.pods",
    "activities.k8s.nodes",
    "activities.k8s.network",
    "activities.k8s.verify",
)


def load_all() -> list[ActionSpec]:
    """Import every action module (registration happens at import) and return the registry, sorted by name."""
    for module in ACTION_MODULES:
        # Idempotent: importlib caches modules, so a second call registers nothing twice.
        importlib.import_module(module)
    return registered_actions()


def all_activities() -> list[Callable[..., Any]]:
    """The activity callables to pass to `temporalio.worker.Worker(activities=...)`."""
    return [spec.activity for spec in load_all()]


def action_catalog() -> dict[str, ActionInfo]:
    """Name -> what the compiler needs to know of each action (see incidentctl.dsl.actions)."""
    return {spec.name: ActionInfo(spec.name, spec.params_schema, spec.mutates, spec.description,
                                  spec.heartbeat_timeout_s) for spec in load_all()}
