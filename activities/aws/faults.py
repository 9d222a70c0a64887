"""What an AWS error means for a step: retry it, or fail it in one sentence that says what to fix. Pure.

AWS names its errors by code (`ThrottlingException`, `UnauthorizedOperation`, `InvalidInstanceID.NotFound`, ...),
differently per service; the families below are told apart by those codes and the HTTP status.
"""

from __future__ import annotations

from dataclasses import dataclass

from activities.errors import ActionError

THROTTLED = "AwsThrottled"
UNAVAILABLE = "AwsUnavailable"
ACCESS_DENIED = "AwsAccessDenied"
NOT_FOUND = "AwsNotFound"
NO_CREDENTIALS = "AwsNoCredentials"
REJECTED = "AwsRequestRejected"

_THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled", "RequestThrottledException",
    "TooManyRequestsException", "RequestLimitExceeded", "SlowDown", "PriorRequestNotComplete",
    "ProvisionedThroughputExceededException", "BandwidthLimitExceeded", "EC2ThrottledException",
})
_UNAVAILABLE_CODES = frozenset({"InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable",
                                "InternalServerError", "ServerException", "RequestTimeout", "RequestTimeoutException"})
# EC2 says UnauthorizedOperation, most services AccessDenied(Exception), SNS AuthorizationError.
_DENIED_CODES = frozenset({"UnauthorizedOperation", "AuthorizationError", "Forbidden"})


@dataclass(frozen=True)
class AwsCall:
    """One API call, as IAM and people name it."""

    iam_prefix: str  # ec2, autoscaling, cloudwatch (the service's signing name)
    operation: str  # RebootInstances

    @property
    def iam_action(self) -> str:
        return f"{self.iam_prefix}:{self.operation}"


def is_throttling(code: str) -> bool:
    return code in _THROTTLING_CODES or code.startswith("Throttling")


def is_transient(code: str, status: int) -> bool:
    """Worth another try after a pause: throttling, or AWS failing on its side."""
    return is_throttling(code) or code in _UNAVAILABLE_CODES or status >= 500


def is_access_denied(code: str) -> bool:
    return code in _DENIED_CODES or code.startswith("AccessDenied")


def is_not_found(code: str, status: int) -> bool:
    return ("NotFound" in code or code.startswith("NoSuch") or code.endswith("NotFoundException")
            or (status == 404 and not code))


def client_error(call: AwsCall, code: str, message: str, status: int, subject: str) -> ActionError:
    """The ActionError for an error AWS answered `call` with, about `subject` (e.g. "instance i-0abc")."""
    said = f"{code}: {message}" if message else code
    if is_throttling(code):
        return ActionError(f"AWS throttled {call.iam_action} on {subject} ({said}); retried with backoff",
                           type=THROTTLED)
    if is_transient(code, status):
        return ActionError(f"AWS failed {call.iam_action} on {subject} ({said}); retried", type=UNAVAILABLE)
    if is_access_denied(code):
        return ActionError(f"AWS denied {call.iam_action} on {subject} ({said}): give the worker's role (or the "
                           f"step's role_arn) the IAM action {call.iam_action}", type=ACCESS_DENIED,
                           non_retryable=True)
    if is_not_found(code, status):
        return ActionError(f"{subject} not found ({call.iam_action} answered {said})", type=NOT_FOUND,
                           non_retryable=True)
    return ActionError(f"AWS refused {call.iam_action} on {subject} ({said})", type=REJECTED, non_retryable=True)


def no_credentials(call: AwsCall, detail: str) -> ActionError:
    return ActionError(f"no AWS credentials for {call.iam_action}: {detail} (the worker reads the standard chain: "
                       "environment, shared config and credentials files, container or instance role)",
                       type=NO_CREDENTIALS, non_retryable=True)


def unreachable(call: AwsCall, detail: str) -> ActionError:
    return ActionError(f"could not reach AWS for {call.iam_action}: {detail}", type=UNAVAILABLE)
