"""The IAM actions each aws action calls, declared with it, and the least-privilege policy they add up to.

deploy/aws/iam-policy.json is this policy, written by scripts/aws_iam_policy.py (tests/test_aws_iam.py checks
that the committed file is what the registry says). Resources are "*": the Describe calls allow no narrower
resource, and which instances or groups a runbook may change is said by its `changes.aws` block; an operator
who wants IAM to say it too narrows the mutating statement's Resource.
"""

from __future__ import annotations

import json
from typing import Any

# action name -> IAM actions it may call (waiters and reads included)
_DECLARED: dict[str, tuple[str, ...]] = {}
POLICY_VERSION = "2012-10-17"


def declare(action: str, iam_actions: tuple[str, ...]) -> None:
    """`iam_actions` empty: the generic actions (aws.call, aws.wait, aws.change), whose IAM actions are those of
    the operations a runbook names; the operator adds those to the policy (docs/aws.md)."""
    if action in _DECLARED:
        raise ValueError(f"IAM actions of {action!r} are declared twice")
    if any(":" not in name for name in iam_actions):
        raise ValueError(f"{action}: IAM actions are named service:Operation, got {iam_actions!r}")
    _DECLARED[action] = tuple(iam_actions)


def declared() -> dict[str, tuple[str, ...]]:
    """Every aws action's IAM actions (the action modules imported first, which declares them)."""
    from activities.catalog import load_all  # the catalog imports this module: load it when asked, not at import

    load_all()
    return dict(sorted(_DECLARED.items()))


READ_PREFIXES = ("Describe", "Get", "List")


def is_read(iam_action: str) -> bool:
    return iam_action.split(":", 1)[1].startswith(READ_PREFIXES)


def policy() -> dict[str, Any]:
    """The policy document: one statement for the calls that only read, one for those that change things."""
    every = {iam_action for iam_actions in declared().values() for iam_action in iam_actions}
    statements = [{"Sid": sid, "Effect": "Allow", "Action": sorted(a for a in every if is_read(a) == reads),
                   "Resource": "*"} for sid, reads in (("IncidentctlReads", True), ("IncidentctlChanges", False))]
    return {"Version": POLICY_VERSION, "Statement": [s for s in statements if s["Action"]]}


def policy_json() -> str:
    """The policy as deploy/aws/iam-policy.json holds it."""
    return json.dumps(policy(), indent=2) + "\n"
