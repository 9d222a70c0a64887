"""What a container image does when the simulator runs it: start fine, crash, run out of memory, fail to pull,
or run but fail its readiness probe.

Real clusters decide this by running the image; the simulator looks the image up in a table the scenario or a
test fills in. Unknown images behave.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from incidentctl.k8ssim.units import parse_quantity

MODES = ("ok", "crash", "oom", "pull_error", "unready")


@dataclass
class ImageBehaviour:
    mode: str = "ok"
    cpu: str = "50m"  # usage reported by metrics.k8s.io
    memory: str = "64Mi"  # usage; with mode "oom" the container is killed when its limit is below this
    cpu_demand: str = ""  # CPU the image wants; a CPU limit below it throttles: throttled fraction 1 - limit/demand
    log: list[str] = field(default_factory=lambda: ["listening on :8080"])
    crash_log: list[str] = field(default_factory=lambda: ["fatal: exiting"])
    probe_failure: str = "HTTP probe failed with statuscode: 503"  # mode "unready": what the readiness probe says

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


def cpu_limit(container: dict[str, Any]) -> Fraction | None:
    limit = ((container.get("resources") or {}).get("limits") or {}).get("cpu")
    return parse_quantity(str(limit)) if limit is not None else None


def throttled_fraction(behaviour: ImageBehaviour, container: dict[str, Any]) -> Fraction:
    """Share of CFS periods in which the container is throttled: 1 - limit/demand when its limit is below its demand."""
    limit = cpu_limit(container)
    if not behaviour.cpu_demand or limit is None:
        return Fraction(0)
    demand = parse_quantity(behaviour.cpu_demand)
    return max(Fraction(0), 1 - limit / demand) if demand > 0 else Fraction(0)


def cpu_usage(behaviour: ImageBehaviour, container: dict[str, Any]) -> Fraction:
    """What metrics.k8s.io reports: the image's demand capped at the limit (a throttled container uses all its
    quota), or `cpu` for images without a demand."""
    if not behaviour.cpu_demand:
        return parse_quantity(behaviour.cpu)
    limit = cpu_limit(container)
    demand = parse_quantity(behaviour.cpu_demand)
    return demand if limit is None else min(demand, limit)
