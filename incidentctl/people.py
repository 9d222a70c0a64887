"""People and groups for approvals: a YAML file mapping group names to users, and how each person proves who
they are to the receiver: an API token (stored as its sha256 only) for the people endpoints, and/or their
Slack user id for the Slack buttons (`people: {alice: {token_sha256: <64 hex>, slack: U0123ABC}}`)."""

from __future__ import annotations

import functools
import hashlib
import os
import re
import secrets
from pathlib import Path
from typing import Any

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
    groups = _load(path)[0]
    return {name: list(users) for name, users in groups.items()}


def load_token_owners(path: Path | None = None) -> dict[str, str]:
    """`{sha256 hex of a token: person}` from the file's `people:` section (none without a file)."""
    return dict(_load(path)[1])


def load_slack_users(path: Path | None = None) -> dict[str, str]:
    """`{Slack user id: person}` from the file's `people:` section (none without a file)."""
    return dict(_load(path)[2])


def _load(path: Path | None) -> tuple[dict[str, list[str]], dict[str, str], dict[str, str]]:
    path = path or people_file()
    if path is None:
        return {}, {}, {}
    try:
        stat = path.stat()
    except OSError as exc:
        raise PeopleConfigError(f"cannot read people file {path}: {exc.strerror}") from None
    # Read again only when the file changed: every incident start asks, the receiver many times a second.
    return _parsed(path, stat.st_mtime_ns, stat.st_size)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def new_token(person: str) -> tuple[str, str]:
    """A fresh API token for `person`, and the people-file line that lets it in (only its hash is stored)."""
    token = "ictl_" + secrets.token_urlsafe(32)
    return token, f"  {person}: {{token_sha256: {token_digest(token)}}}"


@functools.lru_cache(maxsize=8)
def _parsed(path: Path, mtime_ns: int, size: int) -> tuple[dict[str, list[str]], dict[str, str], dict[str, str]]:
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
    return ({name: list(users) for name, users in groups.items()}, *_credentials(path, data.get("people")))


TOKEN_DIGEST = re.compile(r"[0-9a-f]{64}")
# Slack user ids: U... (or W... for Enterprise Grid users), upper-case letters and digits.
SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,}")


def _credentials(path: Path, people: Any) -> tuple[dict[str, str], dict[str, str]]:
    """(`{token sha256: person}`, `{Slack user id: person}`); each credential belongs to one person."""
    if people is None:
        return {}, {}
    owners: dict[str, str] = {}
    slack_users: dict[str, str] = {}
    if isinstance(people, dict):
        for person, entry in people.items():
            if not (isinstance(person, str) and isinstance(entry, dict) and entry
                    and set(entry) <= {"token_sha256", "slack"}):
                break
            digest, slack = entry.get("token_sha256"), entry.get("slack")
            if digest is not None and not (isinstance(digest, str) and TOKEN_DIGEST.fullmatch(digest)):
                break
            if slack is not None and not (isinstance(slack, str) and SLACK_USER.fullmatch(slack)):
                break
            for credential, known, what in ((digest, owners, "token"), (slack, slack_users, "Slack user")):
                if credential is not None and known.setdefault(credential, person) != person:
                    raise PeopleConfigError(f"people file {path}: {known[credential]} and {person} have the same "
                                            f"{what}: each must be one person's")
        else:
            return owners, slack_users
    raise PeopleConfigError(f"people file {path}: `people:` maps each person to {{token_sha256: <64 hex>}} "
                            "(make one with `incidentctl people token NAME`) and/or {slack: <Slack user id, "
                            "U0123ABC>}")

