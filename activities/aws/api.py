"""Calling AWS with boto3: which credentials and endpoint, one call with retries, dry runs, and waits.

Credentials come from boto3's standard chain (environment, shared files, container or instance role); a step's
`role_arn` is assumed through STS first and its temporary credentials reused until shortly before they expire.
INCIDENTCTL_AWS_ENDPOINT_URL, when set, sends every call there instead of AWS (tests point it at moto).

Throttling and AWS-side failures are retried here with exponential backoff (botocore's own retries are off, so
there is one policy, this one); what is left becomes an ActionError that says what it means (faults.py).
boto3 is imported by the functions that call AWS, not at import: building the action catalog must not load it.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from activities import heartbeats
from activities.aws import faults, iam
from activities.aws.schemas import MAX_WAIT_S
from activities.base import ActionFn, action
from activities.errors import ActionError
from incidentctl.dsl.durations import parse_duration

if TYPE_CHECKING:
    from botocore.client import BaseClient

ENDPOINT_ENV = "INCIDENTCTL_AWS_ENDPOINT_URL"
ATTEMPTS = 4
FIRST_BACKOFF_S = 0.5
CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 60
# Assumed-role credentials are renewed this long before they expire, so no call starts with a dying token.
RENEW_BEFORE_S = 300
ROLE_SESSION_NAME = "incidentctl"
# CloudWatch signs as "monitoring" but IAM calls it "cloudwatch".
_IAM_PREFIX_OF_SIGNING_NAME = {"monitoring": "cloudwatch"}
WAITER_FAILED = "VerificationFailed"


def aws_action(name: str, *, iam_actions: tuple[str, ...], **registration: Any) -> Callable[[ActionFn], ActionFn]:
    """`@action`, plus the IAM actions it calls (for the least-privilege policy, activities/aws/iam.py)."""
    iam.declare(name, iam_actions)
    return action(name, **registration)


@dataclass
class _Clients:
    lock: threading.Lock = field(default_factory=threading.Lock)
    clients: dict[tuple[str, ...], Any] = field(default_factory=dict)
    # role_arn + endpoint -> (credentials, expiry epoch seconds)
    roles: dict[tuple[str, str], tuple[dict[str, str], float]] = field(default_factory=dict)


_CACHE = _Clients()


def endpoint_url() -> str | None:
    return os.environ.get(ENDPOINT_ENV) or None


def _config() -> Any:
    from botocore.config import Config

    return Config(retries={"total_max_attempts": 1}, connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S)


def _role_credentials(role_arn: str, region: str, endpoint: str | None) -> tuple[dict[str, str], float]:
    import boto3

    key = (role_arn, endpoint or "")
    cached = _CACHE.roles.get(key)
    if cached and cached[1] - time.time() > RENEW_BEFORE_S:
        return cached
    sts = boto3.Session().client("sts", region_name=region, endpoint_url=endpoint, config=_config())
    granted = sts.assume_role(RoleArn=role_arn, RoleSessionName=ROLE_SESSION_NAME)["Credentials"]
    credentials = {"aws_access_key_id": granted["AccessKeyId"], "aws_secret_access_key": granted["SecretAccessKey"],
                   "aws_session_token": granted["SessionToken"]}
    _CACHE.roles[key] = (credentials, granted["Expiration"].timestamp())
    return _CACHE.roles[key]


def client(params: dict[str, Any], service: str) -> BaseClient:
    """A boto3 client for `service` in the step's region, as the step's role when it names one (cached)."""
    import boto3

    region, role_arn, endpoint = params["region"], params.get("role_arn"), endpoint_url()
    with _CACHE.lock:  # boto3 sessions are not thread-safe; clients are
        credentials, expiry = _role_credentials(role_arn, region, endpoint) if role_arn else ({}, 0.0)
        key = (service, region, role_arn or "", endpoint or "", str(expiry))
        if key not in _CACHE.clients:
            session = boto3.Session(region_name=region, **credentials)
            _CACHE.clients[key] = session.client(service, endpoint_url=endpoint, config=_config())
        return _CACHE.clients[key]


def iam_prefix(api: BaseClient) -> str:
    signing = api.meta.service_model.signing_name
    return _IAM_PREFIX_OF_SIGNING_NAME.get(signing, signing)


def aws_call_of(api: BaseClient, method: str) -> faults.AwsCall:
    return faults.AwsCall(iam_prefix(api), api.meta.method_to_api_mapping[method])


def as_action_error(exc: Exception, call: faults.AwsCall, subject: str) -> ActionError | None:
    """The ActionError a botocore exception stands for; None for one that is not botocore's."""
    from botocore import exceptions as boto

    if isinstance(exc, boto.ClientError):
        error, meta = exc.response.get("Error", {}), exc.response.get("ResponseMetadata", {})
        return faults.client_error(call, str(error.get("Code", "")), str(error.get("Message", "")),
                                   int(meta.get("HTTPStatusCode") or 0), subject)
    if isinstance(exc, boto.NoCredentialsError | boto.PartialCredentialsError | boto.NoRegionError):
        return faults.no_credentials(call, str(exc))
    if isinstance(exc, boto.ParamValidationError):
        return ActionError(f"{call.iam_action}: {exc}", type="InvalidParams", non_retryable=True)
    if isinstance(exc, boto.EndpointConnectionError | boto.ConnectionClosedError | boto.ConnectTimeoutError
                  | boto.ReadTimeoutError):
        return faults.unreachable(call, str(exc))
    return None


def _backoff(attempt: int) -> float:
    return FIRST_BACKOFF_S * 2 ** attempt * (1 + random.random() / 2)  # jitter: retries of many steps spread out


async def call(params: dict[str, Any], service: str, method: str, subject: str, /,
               **kwargs: Any) -> dict[str, Any]:
    """`client.<method>(**kwargs)` in a thread; throttling and AWS-side failures retried with backoff, anything
    else (or what is left after ATTEMPTS) raised as the ActionError it means. `subject` names the object."""
    api = await asyncio.to_thread(client, params, service)
    aws = aws_call_of(api, method)
    for attempt in range(ATTEMPTS):
        try:
            return await asyncio.to_thread(getattr(api, method), **kwargs)
        except Exception as exc:
            mapped = as_action_error(exc, aws, subject)
            if mapped is None:
                raise
            if mapped.non_retryable or attempt == ATTEMPTS - 1:
                raise mapped from exc
        await asyncio.sleep(_backoff(attempt))
    raise AssertionError("unreachable")  # the loop returns or raises


async def ec2_dry_run(params: dict[str, Any], method: str, subject: str, would: str, /,
                      **kwargs: Any) -> dict[str, Any]:
    """EC2's own dry run: AWS checks the request and our permission to make it, and changes nothing."""
    try:
        await call(params, "ec2", method, subject, DryRun=True, **kwargs)
    except ActionError as exc:
        if "DryRunOperation" not in exc.message:
            raise
        return {"dry_run": True, "would": would, "checked_by_aws": True}
    raise ActionError(f"EC2 ran {method} with DryRun set and did not say DryRunOperation", type=faults.REJECTED,
                      non_retryable=True)


def duration_param(params: dict[str, Any], name: str) -> float:
    try:
        return parse_duration(params[name])
    except ValueError as exc:
        raise ActionError(f"{name}: {exc}", type="InvalidParams", non_retryable=True) from None


class Progress:
    """A step's progress and deadline, carried in heartbeat details so a retry (after a worker crash) continues
    where the previous attempt was instead of starting over: its phase and the first attempt's start."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.timeout = min(duration_param(params, "timeout"), MAX_WAIT_S)
        self.interval = max(duration_param(params, "interval"), 0.2)
        previous = heartbeats.previous_details()
        self.state: dict[str, Any] = dict(previous[0]) if previous and isinstance(previous[0], dict) else {}
        self.state.setdefault("started", time.time())

    @property
    def resumed(self) -> bool:
        return "phase" in self.state

    def reached(self, phase: str) -> bool:
        return phase in self.state.get("phases", [])

    def mark(self, phase: str, **seen: Any) -> None:
        if not self.reached(phase):
            self.state["phases"] = [*self.state.get("phases", []), phase]
        self.state.update(phase=phase, **seen)
        heartbeats.heartbeat(self.state)

    def elapsed(self) -> float:
        return time.time() - float(self.state["started"])

    def expired(self) -> bool:
        return self.elapsed() >= self.timeout


async def wait_for(params: dict[str, Any], service: str, waiter: str, subject: str, progress: Progress, /,
                   **kwargs: Any) -> None:
    """Wait with boto3's waiter `waiter` (AWS's own definition of done and of failed), one poll at a time, so
    the step heartbeats, can be cancelled, and keeps one deadline across retries."""
    from botocore.exceptions import WaiterError

    api = await asyncio.to_thread(client, params, service)
    poll = api.get_waiter(waiter)
    while True:
        try:
            await asyncio.to_thread(poll.wait, **kwargs, WaiterConfig={"Delay": 1, "MaxAttempts": 1})
            return
        except WaiterError as exc:
            reason, last = str(exc.kwargs.get("reason", "")), exc.last_response or {}
            if "terminal failure" in reason:
                raise ActionError(f"{subject}: {waiter} can no longer succeed ({reason})", type=WAITER_FAILED,
                                  non_retryable=True) from exc
            # An error the waiter's definition does not expect (one it does, such as a NotFound just after a
            # launch, only means "not yet"): transient ones are polled past, others fail the step.
            if reason.startswith("An error occurred") and "Error" in last:
                code = str(last["Error"].get("Code", ""))
                status = int(last.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
                if not faults.is_transient(code, status):
                    aws = faults.AwsCall(iam_prefix(api), poll.config.operation)
                    raise faults.client_error(aws, code, str(last["Error"].get("Message", "")), status,
                                              subject) from exc
        except Exception as exc:  # not an answer: no credentials, AWS unreachable, ...
            mapped = as_action_error(exc, faults.AwsCall(iam_prefix(api), poll.config.operation), subject)
            if mapped is None:
                raise
            if mapped.non_retryable:
                raise mapped from exc
        if progress.expired():
            raise ActionError(f"{subject}: {waiter} not reached after {progress.timeout:.0f}s", type=WAITER_FAILED,
                              non_retryable=True)
        heartbeats.heartbeat(progress.state)
        await asyncio.sleep(progress.interval)
