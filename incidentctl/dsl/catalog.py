"""Finding runbooks: by file path, or by `name:` among the runbook directories."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from incidentctl.dsl.compiler import compile_file, runbook_files


def runbook_dirs() -> list[Path]:
    configured = os.environ.get("INCIDENTCTL_RUNBOOKS")
    if configured:
        return [Path(p) for p in configured.split(os.pathsep) if p]
    return [Path(__file__).resolve().parents[2] / "runbooks"]


def _declared_name(path: Path) -> str | None:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return data.get("name") if isinstance(data, dict) else None


def find_runbook(name_or_path: str, dirs: list[Path] | None = None) -> Path:
    candidate = Path(name_or_path)
    if candidate.is_file():
        return candidate
    files = runbook_files([d for d in (dirs or runbook_dirs()) if d.is_dir()])
    names = {}
    for file in files:
        declared = _declared_name(file)
        if declared:
            names.setdefault(declared, file)
    if name_or_path in names:
        return names[name_or_path]
    available = ", ".join(sorted(names)) or "none"
    raise LookupError(f"no runbook named {name_or_path!r} (available: {available}); give a name or a file path")


def load_plan(name_or_path: str) -> dict[str, Any]:
    return compile_file(find_runbook(name_or_path))
