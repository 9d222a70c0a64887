"""People and groups for approvals: a YAML file mapping group names to users, and how each person proves who
they are to the receiver: a personal token (stored as its sha256 only) and/or the values of their identity
provider's claim (`oidc: [alice@example.com]`, or `email:`) for OIDC sign-in, and/or their Slack user id for
the Slack buttons (`slack: U0123ABC`)."""

from __future__ import annotations

import functools
import hashlib
import os
import re
import secrets
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class PeopleFile:
    groups: dict[str, list[str]] = field(default_factory=dict)
    token_owners: dict[str, str] = field(default_factory=dict)  # sha256 hex of a personal token -> person
    oidc_subjects: dict[str, str] = field(default_factory=dict)  # value of the OIDC claim -> person
    slack_users: dict[str, str] = field(default_factory=dict)  # Slack user id -> person


def load_groups(path: Path | None = None) -> dict[str, list[str]]:
    """`{group: [users]}`; a missing default file means no groups, a broken file is an error with its name."""
    return {name: list(users) for name, users in _load(path).groups.items()}


def load_token_owners(path: Path | None = None) -> dict[str, str]:
    """`{sha256 hex of a token: person}` from the file's `people:` section (none without a file)."""
    return dict(_load(path).token_owners)


def load_oidc_subjects(path: Path | None = None) -> dict[str, str]:
    """`{claim value: person}` from the `oidc:` (or `email:`) of each person in the `people:` section."""
    return dict(_load(path).oidc_subjects)


def load_slack_users(path: Path | None = None) -> dict[str, str]:
    """`{Slack user id: person}` from the file's `people:` section (none without a file)."""
    return dict(_load(path).slack_users)


def _load(path: Path | None) -> PeopleFile:
    path = path or people_file()
    if path is None:
        return PeopleFile()
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
def _parsed(path: Path, mtime_ns: int, size: int) -> PeopleFile:
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
    return PeopleFile({name: list(users) for name, users in groups.items()}, *_sign_ins(path, data.get("people")))


PEOPLE_FORM = ("`people:` maps each person to {token_sha256: <64 hex>} (`incidentctl people token NAME`) and/or "
               "{oidc: [<their value of the OIDC claim, e.g. alice@example.com>]} (or `email:`) and/or "
               "{slack: <Slack user id, U0123ABC>}")
SIGN_IN_KEYS = {"token_sha256", "oidc", "email", "slack"}
TOKEN_DIGEST = re.compile(r"[0-9a-f]{64}")
# Slack user ids: U... (or W... for Enterprise Grid users), upper-case letters and digits.
SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,}")


def _claim_values(entry: dict[str, Any]) -> list[str] | None:
    """The person's OIDC claim values ([] without any), or None when they are not strings."""
    given = [entry[key] for key in ("oidc", "email") if key in entry]
    values = [v for item in given for v in (item if isinstance(item, list) else [item])]
    return values if all(isinstance(v, str) and v.strip() for v in values) else None


def _sign_ins(path: Path, people: Any) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """(`{token sha256: person}`, `{OIDC claim value: person}`, `{Slack user id: person}`)."""
    if people is None:
        return {}, {}, {}
    if not isinstance(people, dict):
        raise PeopleConfigError(f"people file {path}: {PEOPLE_FORM}")
    owners: dict[str, str] = {}
    subjects: dict[str, str] = {}
    slack_users: dict[str, str] = {}
    for person, entry in people.items():
        ok = isinstance(person, str) and isinstance(entry, dict) and bool(entry) and set(entry) <= SIGN_IN_KEYS
        digest = entry.get("token_sha256") if ok else None
        slack = entry.get("slack") if ok else None
        values = _claim_values(entry) if ok else None
        if not ok or values is None or (digest is None and slack is None and not values) or (
                digest is not None and not (isinstance(digest, str) and TOKEN_DIGEST.fullmatch(digest))) or (
                slack is not None and not (isinstance(slack, str) and SLACK_USER.fullmatch(slack))):
            raise PeopleConfigError(f"people file {path}: person {person!r}: {PEOPLE_FORM}")
        # One credential must name one person: two would make whoever acts depend on the file's order.
        for credential, known, what in ((digest, owners, "token"), (slack, slack_users, "Slack user id"),
                                        *((v.strip(), subjects, "OIDC claim value") for v in values)):
            if credential is not None and known.setdefault(credential, person) != person:
                raise PeopleConfigError(f"people file {path}: {what} {credential!r} is given to both "
                                        f"{known[credential]} and {person}")
    return owners, subjects, slack_users
