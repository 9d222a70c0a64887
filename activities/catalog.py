"""Finding the actions: every module of the `activities` package is imported, and importing registers them.

No hand-kept list: a new module under activities/ (or a subpackage) is found by existing. Where an action lives
follows from its name (docs/design.md, "Actions"): `family.verb_rest` is in `activities/family.py` or
`activities/family/<w>.py`, where `<w>` is the verb or its leading words (`k8s.wait_stable` in
`activities/k8s/wait.py`). Modules that register nothing are helpers (`k8s/api.py`, `k8s/health.py`, ...).
Importing any module here must stay cheap: SDKs (kubernetes, cloud clients) and temporalio itself are imported
inside the code that talks to them, so building the catalog for the compiler or the CLI does not load them.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

from activities.base import ActionSpec, registered_actions
from incidentctl.dsl.actions import ActionInfo

PACKAGE = "activities"


def _module_names(package: str) -> list[str]:
    """`package`'s modules and those of its subpackages, recursively (the packages themselves included)."""
    names = [package]
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__, f"{package}."):
        names += _module_names(info.name) if info.ispkg else [info.name]
    return names


@functools.cache
def action_modules() -> tuple[str, ...]:
    """Every module of the activities package, imported (which registers its actions), sorted by name."""
    # Not pkgutil.walk_packages: it silently skips a subpackage whose import fails, and its actions with it.
    names = sorted(_module_names(PACKAGE))
    for name in names:
        importlib.import_module(name)
    return tuple(names)


def load_all() -> list[ActionSpec]:
    """Import every action module and return the registry, sorted by name."""
    action_modules()
    return registered_actions()


def all_activities() -> list[Callable[..., Any]]:
    """The activity callables to pass to `temporalio.worker.Worker(activities=...)` (the first call imports
    temporalio and defines them; building the catalog does neither)."""
    return [spec.temporal_activity() for spec in load_all()]


def action_catalog() -> dict[str, ActionInfo]:
    """Name -> what the compiler needs to know of each action (see incidentctl.dsl.actions)."""
    return {spec.name: ActionInfo(spec.name, spec.params_schema, spec.mutates, spec.description,
                                  spec.heartbeat_timeout_s, spec.lease, spec.idempotent)
            for spec in load_all()}
