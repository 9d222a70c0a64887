"""The JSON Schemas and the shipped runbooks, found as package data (importlib.resources).

In a source checkout they are the top-level schemas/ and runbooks/ directories; an installed wheel carries
them as the packages `incidentctl.schemas` and `incidentctl.runbooks` (pyproject.toml maps one to the other),
so a non-editable install validates runbooks and runs the demo without the source tree.
"""

from __future__ import annotations

import functools
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any


def schemas_dir() -> Path:
    override = os.environ.get("INCIDENTCTL_SCHEMAS_DIR")
    return Path(override) if override else Path(str(resources.files("incidentctl.schemas")))


def shipped_runbooks_dir() -> Path:
    return Path(str(resources.files("incidentctl.runbooks")))


@functools.cache
def _schema(directory: Path, name: str) -> dict[str, Any]:
    return json.loads((directory / name).read_text(encoding="utf-8"))


def load_schema(name: str) -> dict[str, Any]:
    """A schema of schemas/ by file name (parsed once per process)."""
    return _schema(schemas_dir(), name)
