"""`ActionError`: how an action fails, without importing temporalio.

Every module of activities/ is imported to build the action catalog (the compiler, `incidentctl runbook validate`,
`incidentctl actions list`), and `temporalio` is slow to import (its package imports all its protobufs). So
actions raise this instead of temporalio's `ApplicationError`, with the same arguments, and the activity wrapper
(activities.base) turns one that escapes an action into that `ApplicationError`: Temporal, the workflow and the
retry policy see exactly what they would have seen.
"""

from __future__ import annotations

from typing import Any


class ActionError(Exception):
    """A failure of an action: `ApplicationError`'s message, details, type and retryability, in its argument order.

    `type` is what a runbook's `retry.non_retryable_errors` matches (`InvalidParams`, `KubeNotFound`, ...);
    `non_retryable` says that retrying the same params cannot succeed.
    """

    def __init__(self, message: str, *details: Any, type: str | None = None, non_retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.type = type
        self.non_retryable = non_retryable
