"""Only plans compiled by incidentctl run: each incident's plan travels with an HMAC of its sha256, made by
whoever compiled it (the receiver, the CLI) and checked by the worker before any step runs.

Keys: `INCIDENTCTL_PLAN_KEYS` (`id=<base64 of 32 bytes>` entries, the first signing, all verifying, so keys
rotate; `incidentctl codec key` makes the same kind). A worker with keys refuses an unsigned or altered plan,
e.g. one started by hand with `temporal workflow start`. A worker without keys refuses every plan unless
`INCIDENTCTL_PLAN_SIGNATURES=optional` (what `incidentctl dev` and the demo use unless told otherwise): then it
runs any plan and says so in the incident (`plan_check` on the timeline). The check is an activity, so its
verdict is recorded once and a replay (or a later key rotation) never re-decides it.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
from collections.abc import Callable, Mapping
from typing import Any

from incidentctl.identity_policy import IdentityPolicy
from incidentctl.payload_codec import parse_keys
from incidentctl.people import PeopleConfigError, load_groups
from workflows.plan_check import ADMIT_ACTIVITY, PlanCheck


def _keys() -> list[tuple[str, bytes]]:
    return _parsed_keys(os.environ.get("INCIDENTCTL_PLAN_KEYS", ""))


@functools.lru_cache(maxsize=4)
def _parsed_keys(raw: str) -> list[tuple[str, bytes]]:
    # The receiver signs every notification's plan: parse the variable once per value, not per alert.
    return parse_keys(raw, "INCIDENTCTL_PLAN_KEYS") if raw.strip() else []


def _mac(key: bytes, plan_hash: str) -> str:
    return hmac.new(key, plan_hash.encode(), hashlib.sha256).hexdigest()


def sign_plan(plan_hash: str) -> str:
    """`<key id>:<hex>` with the first key, or "" when this process has no keys."""
    keys = _keys()
    return f"{keys[0][0]}:{_mac(keys[0][1], plan_hash)}" if keys else ""


def plans_required_from_env(env: Mapping[str, str] | None = None, default: bool = True) -> bool:
    """`INCIDENTCTL_PLAN_SIGNATURES`: `required` (the default outside `incidentctl dev`) or `optional`."""
    env = os.environ if env is None else env
    mode = env.get("INCIDENTCTL_PLAN_SIGNATURES", "").strip().lower()
    return default if not mode else mode != "optional"


def verify_plan(check: PlanCheck, required: bool = False) -> dict[str, Any]:
    keys = dict(_keys())
    if not keys and required:
        return {"ok": False, "checked": True,
                "reason": "this worker runs only signed plans but has no key to check them: give the worker, the "
                          "receiver and the CLI the same INCIDENTCTL_PLAN_KEYS (`incidentctl codec key` makes "
                          "one), or set INCIDENTCTL_PLAN_SIGNATURES=optional where any plan may run"}
    if not keys:
        return {"ok": True, "checked": False,
                "reason": "this worker checks no plan signatures (INCIDENTCTL_PLAN_KEYS is not set)"}
    key_id, _, given = check.signature.partition(":")
    if not check.signature:
        return {"ok": False, "checked": True, "reason": "the plan is not signed: only plans compiled by "
                "incidentctl with this deployment's key run (was it started by hand?)"}
    if key_id not in keys:
        return {"ok": False, "checked": True, "reason": f"the plan is signed with key {key_id!r}, which this "
                "worker does not have"}
    if not hmac.compare_digest(given.encode(), _mac(keys[key_id], check.plan_hash).encode()):
        return {"ok": False, "checked": True, "reason": "the plan does not match its signature: it was altered "
                "after it was compiled"}
    return {"ok": True, "checked": True, "reason": f"signed with key {key_id!r}"}


class Admission:
    """The worker's local activity for a starting incident: is its plan signed, who is in which group (from
    this worker's people file, never the starter's), and what it requires of people's commands (`identity`:
    the policy given, else the worker's environment read at each admission)."""

    def __init__(self, identity: IdentityPolicy | None = None, plans_required: bool | None = None) -> None:
        self.identity = identity
        self.plans_required = plans_required  # None: INCIDENTCTL_PLAN_SIGNATURES, read at each admission

    def activities(self) -> list[Callable[..., Any]]:
        _define_activities()
        return [self.admit]

    async def admit(self, check: PlanCheck) -> dict[str, Any]:
        try:
            groups: dict[str, list[str]] | None = load_groups()
            people_error = None
        except PeopleConfigError as exc:
            groups, people_error = None, str(exc)
        identity = self.identity or IdentityPolicy.from_env()
        plans_required = plans_required_from_env() if self.plans_required is None else self.plans_required
        return {"plan": verify_plan(check, plans_required), "groups": groups, "people_error": people_error,
                "identity": identity.pinned()}


@functools.cache
def _define_activities() -> None:
    from temporalio import activity

    activity.defn(name=ADMIT_ACTIVITY)(Admission.admit)
