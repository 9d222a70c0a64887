"""The compiled plan: what the compiler produces and the interpreter runs, with every default written once.

On the wire (the workflow's input, `runbook plan -o json`, the sha256) a plan is plain JSON in the documented
shape (docs/design.md, "Compiled plan"): every step carries every key. These dataclasses are that shape with
types; `to_json`/`from_json` convert, and a key missing from an older plan takes the default given here, so
incidents recorded with an earlier format still replay.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

PLAN_FORMAT = 1
STEP_KINDS = ("action", "check", "wait_until", "approval", "sleep", "notify", "branch", "parallel", "foreach")
# The keys each kind brings besides the common ones (id, name, when, timeout, retry, on_failure, outputs, next,
# end); schemas/runbook.schema.json refuses a key of another kind, and a test checks the two agree.
KIND_KEYS: dict[str, tuple[str, ...]] = {
    "action": ("action", "params"), "check": ("check", "params", "assert", "message"),
    "wait_until": ("wait_until", "params", "until", "interval"), "approval": ("approval",), "sleep": ("sleep",),
    "notify": ("notify",), "branch": ("branch",), "parallel": ("parallel", "fail_fast"),
    "foreach": ("foreach", "as", "concurrency", "steps"),
}
# Step kinds that call an action (an activity named after it).
ACTION_KINDS = ("action", "check", "wait_until", "notify")

# Defaults the compiler fills in and the interpreter relies on; nothing else restates them.
DEFAULT_TIMEOUT_S = 300.0
DEFAULT_WAIT_INTERVAL_S = 10.0
DEFAULT_WAIT_DEADLINE_S = 600.0
DEFAULT_SEND_TIMEOUT_S = 30.0
# Every action heartbeats while it runs (activities/heartbeats.py): a worker that dies mid-action is noticed
# after this long, not after the step's whole timeout. An action's own `heartbeat_timeout` wins.
DEFAULT_HEARTBEAT_S = 30.0
# A remediation is retried (after a worker crash, a transient error) only when repeating it is safe: its action
# declares itself idempotent under retry (`@action(idempotent=True)`), or the runbook's `retry` says so.
MUTATING_MAX_ATTEMPTS = 3
NON_IDEMPOTENT_MAX_ATTEMPTS = 1
# Status updates to stakeholders, per severity (None: none).
DEFAULT_CADENCE_S: dict[str, float | None] = {"SEV1": 900.0, "SEV2": 1800.0, "SEV3": 3600.0, "SEV4": None}
# How long every alert must stay resolved before the incident is, per severity (docs/lifecycle.md).
DEFAULT_QUIET_S: dict[str, float] = {"SEV1": 1800.0, "SEV2": 900.0, "SEV3": 600.0, "SEV4": 300.0}
DEFAULT_REOPEN_WINDOW_S = 3600.0
# Severities whose incidents are closed only after their review (or with an explicit --no-review).
REVIEW_REQUIRED = ("SEV1", "SEV2")


def _json_name(name: str) -> dict[str, str]:
    """Field metadata for a JSON key that is a Python keyword (`assert`, `as`)."""
    return {"json": name}


@dataclass
class Retry:
    max_attempts: int = 3
    initial_interval_s: float = 1.0
    backoff: float = 2.0
    max_interval_s: float = 30.0
    non_retryable_errors: list[str] = field(default_factory=list)


@dataclass
class OnFailure:
    mode: str = "abort"  # abort | continue | rollback | goto
    target: str | None = None


@dataclass
class EscalationStage:
    approvers: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    timeout_s: float | None = None


@dataclass
class Approval:
    message: str | None = None
    approvers: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    required: int = 1
    timeout_s: float | None = None  # None: wait until someone decides
    on_timeout: str = "reject"  # reject | approve
    allow_self_approval: bool = False
    escalation: list[EscalationStage] = field(default_factory=list)


@dataclass
class Case:
    when: str
    steps: list[Step] = field(default_factory=list)


@dataclass
class Branch:
    name: str
    steps: list[Step] = field(default_factory=list)


@dataclass
class Step:
    id: str
    kind: str
    name: str = ""
    line: int | None = None
    when: str | None = None
    timeout_s: float | None = None  # per attempt; DEFAULT_TIMEOUT_S for action kinds
    retry: Retry | None = None  # action kinds only
    on_failure: OnFailure = field(default_factory=OnFailure)
    next: str | None = None
    end: bool = False
    end_outcome: str | None = None  # with `end`: "needs_attention" hands the incident to people
    outputs: Any = None
    # action, check, wait_until, notify
    action: str | None = None
    mutates: bool = False
    lease: str | None = None  # mutating actions: the object changed, a template over params (`leases` below)
    params: Any = None
    heartbeat_s: float | None = None  # DEFAULT_HEARTBEAT_S for action kinds; None (older plans): none
    # check
    assert_: str | None = field(default=None, metadata=_json_name("assert"))
    message: Any = None
    # wait_until
    until: str | None = None
    interval_s: float | None = None
    deadline_s: float | None = None
    # sleep
    duration_s: float | None = None
    approval: Approval | None = None
    # branch
    cases: list[Case] | None = None
    default: list[Step] | None = None
    # parallel
    branches: list[Branch] | None = None
    fail_fast: bool = False
    # foreach
    items: str | None = None
    as_: str | None = field(default=None, metadata=_json_name("as"))
    steps: list[Step] | None = None
    concurrency: int = 1

    def children(self) -> Iterator[list[Step]]:
        """Every nested step list (branch cases and default, parallel branches, foreach body)."""
        for case in self.cases or []:
            yield case.steps
        if self.default is not None:
            yield self.default
        for branch in self.branches or []:
            yield branch.steps
        if self.steps is not None:
            yield self.steps


@dataclass
class Parameter:
    type: str = "string"
    required: bool = False
    default: Any = None
    description: str | None = None
    enum: list[Any] | None = None


@dataclass
class RunbookInfo:
    name: str
    version: str
    description: str | None = None
    owner: str | None = None
    team: str | None = None
    severity: str = "SEV3"
    service: Any = None  # a template rendered when the incident starts


@dataclass
class AlertPolicy:
    """`on_alert_resolved`: what the incident does once every alert has resolved."""

    mode: str = "continue"  # continue | finish | goto
    target: str | None = None


@dataclass
class Resolve:
    """When an incident counts as resolved, and what a re-fire does afterwards."""

    requires: str | None = None  # alerts | runbook | person; None: alerts when the incident has some, else runbook
    quiet_for_s: float | None = None  # None: DEFAULT_QUIET_S of the incident's severity
    reopen_window_s: float = DEFAULT_REOPEN_WINDOW_S
    on_refire: str = "notify"  # rerun | notify

    def quiet_s(self, severity: str) -> float:
        return self.quiet_for_s if self.quiet_for_s is not None else DEFAULT_QUIET_S.get(severity, 600.0)


@dataclass
class Leases:
    """How a mutating step waits for its object's lease, and when an earlier change by another incident needs
    a fresh approval (docs/lifecycle.md, "One incident per broken thing")."""

    wait_s: float = 600.0  # give up (the step fails with LeaseBusy) after waiting this long
    recent_changes_s: float = 1800.0  # another incident's change this recent needs a fresh approval
    approval_timeout_s: float = 1800.0  # the fresh approval is refused when nobody decides by then
    approvers: list[str] = field(default_factory=list)  # who gives it; none named: the runbook's approvers
    groups: list[str] = field(default_factory=list)

    def people(self, plan: Plan) -> tuple[list[str], list[str]]:
        """Who may give a fresh approval: those named here, else everyone the runbook's approvals name, else
        the runbook's team as a group."""
        if self.approvers or self.groups:
            return list(self.approvers), list(self.groups)
        approvers: list[str] = []
        groups: list[str] = []
        for step in plan.walk():
            if step.approval:
                for stage in (step.approval, *step.approval.escalation):
                    approvers += [a for a in stage.approvers if a not in approvers]
                    groups += [g for g in stage.groups if g not in groups]
        if not (approvers or groups) and plan.runbook.team:
            groups = [plan.runbook.team]
        return approvers, groups


@dataclass
class AwsChanges:
    """`changes.aws`: the regions and resources (globs over `service/id-or-name`, e.g. `ec2/i-*`) the runbook's
    AWS steps may change."""

    regions: list[str] = field(default_factory=list)
    resources: list[str] = field(default_factory=lambda: ["*"])
    operations: list[str] = field(default_factory=list)  # aws.change's allow-list: "ec2:ModifyInstanceAttribute"


@dataclass
class Changes:
    """`changes`: where the runbook's mutating steps may change things (incidentctl.dsl.allowed_changes). Patterns
    are globs; a protected namespace counts only when listed by its exact name."""

    clusters: list[str] = field(default_factory=list)  # kubeconfig contexts
    namespaces: list[str] = field(default_factory=list)
    cluster_resources: list[str] = field(default_factory=list)  # objects in no namespace, by resource (nodes)
    names: list[str] = field(default_factory=lambda: ["*"])  # the changed objects' names
    aws: AwsChanges | None = None  # None: the runbook changes nothing in AWS
    gke: GkeChanges | None = None  # None: no GKE node pool may be changed


@dataclass
class GkeChanges:
    """`changes.gke`: the GKE node pools the runbook's gke steps may change (globs)."""

    clusters: list[str] = field(default_factory=list)  # project/location/cluster
    node_pools: list[str] = field(default_factory=lambda: ["*"])


@dataclass
class Channel:
    action: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Communication:
    channels: list[Channel] = field(default_factory=list)
    cadence_s: dict[str, float | None] = field(default_factory=lambda: dict(DEFAULT_CADENCE_S))
    impact: Any = None
    send_timeout_s: float = DEFAULT_SEND_TIMEOUT_S
    root_cause: Any = None
    approve_url: str | None = None


@dataclass
class Source:
    path: str = ""


@dataclass
class Plan:
    runbook: RunbookInfo
    format: int = PLAN_FORMAT
    source: Source = field(default_factory=Source)
    trigger: dict[str, Any] | None = None
    parameters: dict[str, Parameter] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    rollback: list[Step] = field(default_factory=list)
    on_cancel: list[Step] = field(default_factory=list)
    on_alert_resolved: AlertPolicy = field(default_factory=AlertPolicy)
    resolve: Resolve = field(default_factory=Resolve)
    leases: Leases = field(default_factory=Leases)
    communication: Communication | None = None
    changes: Changes | None = None  # None: it changes no Kubernetes object or node pool (or predates the block)
    # An approval may approve itself on timeout before a mutating step only when the runbook says so.
    auto_approve_mutations: bool = False
    hash: str = ""

    def to_json(self) -> dict[str, Any]:
        return to_json(self)

    @functools.cached_property
    def wire_json(self) -> dict[str, Any]:
        """`to_json()` made once per plan: what every incident started from this plan carries (do not mutate)."""
        return self.to_json()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        return from_json(cls, data)

    def with_hash(self) -> Plan:
        wire = self.to_json()
        plan = dataclasses.replace(self, hash=plan_hash(wire))
        plan.__dict__["wire_json"] = {**wire, "hash": plan.hash}  # the cached_property, filled while at hand
        return plan

    def walk(self) -> Iterator[Step]:
        """Every step, nested ones included, main steps before the rollback and on_cancel sections."""
        yield from walk_steps(self.steps)
        yield from walk_steps(self.rollback)
        yield from walk_steps(self.on_cancel)


def walk_steps(steps: list[Step]) -> Iterator[Step]:
    for step in steps:
        yield step
        for nested in step.children():
            yield from walk_steps(nested)


def plan_hash(plan_json: dict[str, Any]) -> str:
    body = {k: v for k, v in plan_json.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# ------------------------------------------------------------------ JSON <-> dataclasses

T = TypeVar("T")


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, str, Any, bool], ...]:
    """(python name, JSON key, type, has a default) of each field of a plan dataclass."""
    hints = typing.get_type_hints(cls)
    return tuple((f.name, f.metadata.get("json", f.name), hints[f.name],
                  f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING)
                 for f in dataclasses.fields(cls))


def to_json(value: Any) -> Any:
    kind = type(value)
    if kind is list:
        return [to_json(v) for v in value]
    if kind is dict:
        return {k: to_json(v) for k, v in value.items()}
    if hasattr(kind, "__dataclass_fields__"):
        return {key: to_json(getattr(value, name)) for name, key, _, _ in _fields(kind)}
    return value


def from_json(cls: type[T], data: dict[str, Any]) -> T:
    kwargs = {}
    for name, key, hint, has_default in _fields(cls):
        if key in data:
            kwargs[name] = _convert(hint, data[key])
        elif not has_default:
            raise ValueError(f"{cls.__name__}: missing {key!r}")
    return cls(**kwargs)


def _convert(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _convert(inner[0], value) if len(inner) == 1 else value
    if dataclasses.is_dataclass(hint):
        return from_json(hint, value)
    if origin is list:
        (item,) = typing.get_args(hint)
        return [_convert(item, v) for v in value]
    if origin is dict:
        _, item = typing.get_args(hint)
        return {k: _convert(item, v) for k, v in value.items()}
    return value
