"""People and groups for approvals: a YAML file mapping group names to users."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import yaml

DEFAULT_PEOPLE_FILE = Path(__file__).resolve().parents[1] / "config" / "people.yaml"


class PeopleConfigError(ValueError):
    pass


def people_file() -> Path | None:
    configured = os.environ.get("INCIDENTCTL_PEOPLE")
    if configured:
        return Path(configured)
    return DEFAULT_PEOPLE_FILE if DEFAULT_PEOPLE_FILE.exists() else None


def load_groups(path: Path | None = None) -> dict[str, list[str]]:
    """`{group: [users]}`; a missing default file means no groups, a broken file is an error with its name."""
    path = path or people_file()
    if path is None:
        return {}
    try:
        stat = path.stat()
    except OSError as exc:
        raise PeopleConfigError(f"cannot read people file {path}: {exc.strerror}") from None
    # Read again only when the file changed: every incident start asks, the receiver many times a second.
    groups = _parsed(path, stat.st_mtime_ns, stat.st_size)
    return {name: list(users) for name, users in groups.items()}


@functools.lru_cache(maxsize=8)
def _parsed(path: Path, mtime_ns: int, size: int) -> dict[str, list[str]]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise PeopleConfigError(f"cannot read people file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise PeopleConfigError(f"people file {path} is not valid YAML: {exc}") from None
    groups = data.get("groups") if isinstance(data, dict) else None
    if not isinstance(groups, dict) or not all(
        isinstance(name, str) and isinstance(users, list) and all(isinstance(u, str) for u in users)
        for name, users in groups.items()
    ):
        raise PeopleConfigError(f"people file {path} must have `groups:` mapping group names to lists of users")
    return {name: list(users) for name, users in groups.items()}
