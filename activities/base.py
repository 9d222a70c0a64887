"""The action registry: name -> Temporal activity + parameter schema + whether it mutates.

An action is an async function taking one `ActionInput` and returning a JSON-able dict. The `@action`
decorator registers it and wraps it; the worker gets the wrapper (`ActionSpec.temporal_activity()`) as a Temporal
activity whose activity type is the action's name, so histories and the Temporal UI read `k8s.rollout_undo`, not
a generic dispatcher.

Each action declares its params once, as a JSON Schema whose top-level properties carry their `default`s; the
wrapper validates the params and fills those defaults in before the action runs, so action code reads
`params["tail_lines"]` and never restates a default.

Registering imports no temporalio (slow to import; the compiler and the CLI build the catalog and never run
an action): the wrapper is made a Temporal activity only when the worker asks, and an `ActionError` escaping an
action becomes temporalio's `ApplicationError` only when it is raised.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import jsonschema

from activities.change_guard import refuse_outside_changes
from activities.errors import ActionError
from activities.heartbeats import keep_alive
from incidentctl.dsl.errors import json_path
from incidentctl.dsl.plan import Changes


@dataclass
class ActionInput:
    action: str
    params: dict[str, Any] = field(default_factory=dict)
    incident_id: str = ""
    step_id: str = ""
    dry_run: bool = False
    # Mutating steps: where the runbook may change things (None: it declares nothing; protected namespaces hold).
    changes: Changes | None = None

    def retry_key(self) -> str:
        """Names this execution of the step, the same for each of its attempts: what an idempotent action marks
        the objects it changes with, so a retry recognises its own change. Inside Temporal the activity's id and
        workflow run are added: a runbook run again (`on_refire: rerun`) executes the same step anew."""
        from temporalio import activity  # here, not at module import: building the action catalog must not load it

        key = f"{self.incident_id}/{self.step_id}"
        if activity.in_activity():
            info = activity.info()
            key += f"@{info.workflow_run_id}/{info.activity_id}"
        return key


ActionFn = Callable[[ActionInput], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class KubeAccess:
    """A Kubernetes RBAC rule an action needs: `verbs` on `resource` (`pods`, `pods/log`, `deployments.apps`,
    `pods.metrics.k8s.io`), in the step's namespace, in a fixed `namespace` (node events live in `default`), or in
    every namespace when `cluster_wide` (cluster-scoped resources such as nodes, and namespaced ones an action
    must reach wherever they are, like a drain's pods).
    deploy/kubernetes/rbac.yaml is generated from these (incidentctl/rbac.py)."""

    verbs: tuple[str, ...]
    resource: str
    cluster_wide: bool = False
    namespace: str = ""  # "": the step's


@dataclass(frozen=True)
class ActionSpec:
    name: str
    description: str
    params_schema: dict[str, Any]
    mutates: bool
    activity: ActionFn
    heartbeat_timeout_s: float | None = None
    lease: str | None = None
    idempotent: bool = False
    kube_access: tuple[KubeAccess, ...] = ()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "mutates": self.mutates,
            "params": self.params_schema,
        }

    def temporal_activity(self) -> ActionFn:
        """`activity`, defined as the Temporal activity named after the action (for the worker)."""
        return _defined_as_activity(self.activity, self.name)


_REGISTRY: dict[str, ActionSpec] = {}


class UnknownAction(KeyError):
    pass


# Validators by schema identity: an action's schema is one object for the life of the process, and building a
# validator for every call cost more than the validation.
_VALIDATORS: dict[int, tuple[dict[str, Any], jsonschema.Draft202012Validator]] = {}


def _validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    cached = _VALIDATORS.get(id(schema))
    if cached is None or cached[0] is not schema:
        cached = _VALIDATORS[id(schema)] = (schema, jsonschema.Draft202012Validator(schema))
    return cached[1]


def params_errors(schema: dict[str, Any], params: Any) -> list[str]:
    """Plain-sentence errors of `params` against an action's schema, with the JSON path of each."""
    errors = sorted(_validator(schema).iter_errors(params), key=lambda e: list(e.absolute_path))
    return [f"{json_path(error.absolute_path, root='params')}: {error.message}" for error in errors]


def with_defaults(schema: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """`params` plus the `default` of every top-level property it leaves out (copied: actions may mutate them)."""
    defaults = {name: copy.deepcopy(prop["default"]) for name, prop in schema.get("properties", {}).items()
                if isinstance(prop, dict) and "default" in prop and name not in params}
    return {**params, **defaults}


def _first_line(doc: str | None) -> str:
    # A blank or whitespace-only docstring has no first line; "" rather than an IndexError at import.
    lines = (doc or "").strip().splitlines()
    return lines[0] if lines else ""


@functools.cache
def _defined_as_activity(fn: ActionFn, name: str) -> ActionFn:
    # Cached: temporalio refuses to define one function twice, and every worker built in a process asks again.
    from temporalio import activity

    return activity.defn(name=name)(fn)


def _as_application_error(error: ActionError) -> Exception:
    """The `ApplicationError` the action would have raised itself: same message, details, type, retryability,
    cause and traceback, so the failure Temporal records is the one it always recorded."""
    from temporalio.exceptions import ApplicationError

    converted = ApplicationError(error.message, *error.details, type=error.type, non_retryable=error.non_retryable)
    converted.__cause__ = error.__cause__
    converted.__context__ = error.__context__
    converted.__suppress_context__ = error.__suppress_context__
    return converted.with_traceback(error.__traceback__)


def action(
    name: str,
    *,
    params: dict[str, Any],
    mutates: bool = False,
    description: str = "",
    heartbeat_timeout: float | None = None,
    lease: str | None = None,
    idempotent: bool = False,
    kube_access: tuple[KubeAccess, ...] = (),
) -> Callable[[ActionFn], ActionFn]:
    """Register `fn` as the action `name` with a JSON Schema (2020-12) for its params.

    Every action heartbeats while it runs (activities/heartbeats.py); `heartbeat_timeout` (seconds) replaces the
    plan's default (DEFAULT_HEARTBEAT_S) for the time a dead worker takes to be noticed.
    `idempotent` (mutating actions): an attempt repeated after a worker crash or a transient error changes
    nothing the first attempt already changed (keyed by `incident_id`/`step_id`, absolute values, heartbeat
    details), so the step is retried by default; docs/kubernetes.md says why for each.
    `lease` (mutating actions) names the object changed, a template over the params such as
    "k8s/{context}/{namespace}/deployments/{deployment}": a step holds that object's lease while it runs.
    `kube_access` (k8s actions): every RBAC rule the action's API calls need (tests/test_rbac.py checks them
    against the calls it makes).
    The schema is checked against the metaschema by tests/test_actions.py, not here: at import, every
    `incidentctl` command paid for it.
    """

    def register(fn: ActionFn) -> ActionFn:
        if name in _REGISTRY:
            raise ValueError(f"action {name!r} is registered twice")

        async def run(inp: ActionInput) -> dict[str, Any]:
            try:
                # Defence in depth: the compiler checks literal params, but templated ones are only known now.
                errors = params_errors(params, inp.params)
                if errors:
                    raise ActionError(
                        f"{name}: invalid params: " + "; ".join(errors), type="InvalidParams", non_retryable=True
                    )
                filled = with_defaults(params, inp.params)
                if mutates and lease:
                    await refuse_outside_changes(lease, inp.changes, filled)
                # Heartbeats while it runs, so a dead worker is noticed after the step's heartbeat timeout.
                async with keep_alive():
                    return await fn(replace(inp, params=filled))
            except ActionError as exc:
                failure = exc
            # Raised outside the `except`, so the ActionError does not become the new error's context (a cause
            # Temporal would record).
            raise _as_application_error(failure)

        # The action's own identity, so tracebacks, the Temporal UI and the module-naming test see the action.
        run.__name__ = fn.__name__
        run.__qualname__ = fn.__qualname__
        run.__module__ = fn.__module__
        run.__doc__ = fn.__doc__
        _REGISTRY[name] = ActionSpec(
            name=name,
            description=description or _first_line(fn.__doc__),
            params_schema=params,
            mutates=mutates,
            activity=run,
            heartbeat_timeout_s=heartbeat_timeout,
            lease=lease,
            idempotent=idempotent,
            kube_access=tuple(kube_access),
        )
        return run

    return register


def get_action(name: str) -> ActionSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownAction(name) from None


def registered_actions() -> list[ActionSpec]:
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]
