"""What a container image does when the simulator runs it: start fine, crash, run out of memory, or fail to pull.

Real clusters decide this by running the image; the simulator looks the image up in a table the scenario or a
test fills in. Unknown images behave.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MODES = ("ok", "crash", "oom", "pull_error")


@dataclass
class ImageBehaviour:
    mode: str = "ok"
    cpu: str = "50m"  # usage reported by metrics.k8s.io
    memory: str = "64Mi"  # usage; with mode "oom" the container is killed when its limit is below this
    # CPU the image wants; a CPU limit below it is throttled (cAdvisor: throttled/periods = 1 - limit/demand).
    cpu_demand: str = ""
    log: list[str] = field(default_factory=lambda: ["listening on :8080"])
    crash_log: list[str] = field(default_factory=lambda: ["fatal: exiting"])

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageBehaviour:
        mode = data.get("mode", "ok")
        if mode not in MODES:
            raise ValueError(f"image mode {mode!r} is not one of {', '.join(MODES)}")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class ImageTable:
    def __init__(self) -> None:
        self._table: dict[str, ImageBehaviour] = {}

    def set(self, image: str, behaviour: ImageBehaviour) -> None:
        self._table[image] = behaviour

    def get(self, image: str) -> ImageBehaviour:
        return self._table.get(image) or ImageBehaviour()
