"""The runbook library: where runbooks are found, compiled against the actions this installation has.

Service layer: it hands the compiler (incidentctl.dsl) the catalog of the installed actions (activities/), so
the language never imports the actions and the CLI, the receiver and the demo compile runbooks one way.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import yaml

from activities.catalog import action_catalog
from incidentctl.dsl import compiler
from incidentctl.dsl.actions import ActionCatalog
from incidentctl.dsl.errors import RunbookError
from incidentctl.dsl.plan import Plan
from incidentctl.dsl.resources import shipped_runbooks_dir


@functools.cache
def installed_actions() -> ActionCatalog:
    return action_catalog()


def runbook_dirs() -> list[Path]:
    """`INCIDENTCTL_RUNBOOKS` (os.pathsep-separated), else the runbooks shipped with incidentctl."""
    configured = os.environ.get("INCIDENTCTL_RUNBOOKS")
    if configured:
        return [Path(p) for p in configured.split(os.pathsep) if p]
    return [shipped_runbooks_dir()]


def compile_text(text: str, file: str) -> Plan:
    return compiler.compile_source(text, file, installed_actions())


def compile_file(path: str | Path) -> Plan:
    return compiler.compile_file(path, installed_actions())


def compile_directory(paths: list[Path]) -> tuple[list[Plan], list[RunbookError]]:
    return compiler.compile_directory(paths, installed_actions())


def _declared_name(path: Path) -> str | None:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return data.get("name") if isinstance(data, dict) else None


def find_runbook(name_or_path: str, dirs: list[Path] | None = None) -> Path:
    candidate = Path(name_or_path)
    if candidate.is_file():
        return candidate
    files = compiler.runbook_files([d for d in (dirs or runbook_dirs()) if d.is_dir()])
    names: dict[str, Path] = {}
    for file in files:
        declared = _declared_name(file)
        if declared:
            names.setdefault(declared, file)
    if name_or_path in names:
        return names[name_or_path]
    available = ", ".join(sorted(names)) or "none"
    raise LookupError(f"no runbook named {name_or_path!r} (available: {available}); give a name or a file path")


def load_plan(name_or_path: str) -> Plan:
    return compile_file(find_runbook(name_or_path))
