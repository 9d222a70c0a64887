"""Which modules hold actions. Adding a backend: write `activities/<backend>.py` and name it here."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from activities.base import ActionSpec, registered_actions

ACTION_MODULES = (
    "activities.util",
    "activities.http",
    "activities.notify",
)


def load_all() -> list[ActionSpec]:
    for module in ACTION_MODULES:
        importlib.import_module(module)
    return registered_actions()


def all_activities() -> list[Callable[..., Any]]:
    return [spec.activity for spec in load_all()]
