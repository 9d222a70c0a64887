"""Our own metrics of every action attempt a worker runs: attempts by outcome, their durations, and failures by
error type.

A worker interceptor records them through `activity.metric_meter()`, so they are served by the Temporal SDK's
Prometheus endpoint with its own metrics (worker.py `--metrics-address`). The workflow side (incidents, steps,
approvals) is counted in workflows/metrics.py. Labels: the action (the activity's name) and an outcome or error
type, nothing per incident.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

ACTION_ATTEMPTS = "incidentctl_action_attempts_total"
ACTION_DURATION = "incidentctl_action_duration_seconds"
ACTION_FAILURES = "incidentctl_action_failures_total"
# Seconds: a diagnosis read takes well under one, a rollout wait minutes, a drain up to half an hour.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


def prometheus_runtime(bind_address: str) -> Runtime:
    """An SDK runtime serving `/metrics` on `bind_address` (HOST:PORT): the SDK's metrics (workflow and activity
    counts, latencies, poll results) and ours. Our duration buckets are seconds; the SDK's default ones are
    milliseconds."""
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(
        bind_address=bind_address, histogram_bucket_overrides={ACTION_DURATION: list(DURATION_BUCKETS)})))


def error_type(exc: BaseException) -> str:
    """An ApplicationError's type (what runbooks name in non_retryable_errors), else the exception's class."""
    if isinstance(exc, ApplicationError) and exc.type:
        return exc.type
    return type(exc).__name__


class ActionMetrics(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _MeasuredAttempt(next)


class _MeasuredAttempt(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        began = time.monotonic()
        outcome = "succeeded"
        try:
            return await self.next.execute_activity(input)
        except (asyncio.CancelledError, CancelledError):
            outcome = "cancelled"
            raise
        except BaseException as exc:
            outcome = "failed"
            _record_failure(exc)
            raise
        finally:
            _record_attempt(outcome, time.monotonic() - began)


def _labels(**more: str) -> dict[str, str]:
    return {"action": activity.info().activity_type, **more}


def _record_attempt(outcome: str, seconds: float) -> None:
    meter = activity.metric_meter()
    meter.create_counter(ACTION_ATTEMPTS, "Action attempts, by action and outcome (succeeded, failed, "
                                          "cancelled).").add(1, _labels(outcome=outcome))
    meter.create_histogram_float(ACTION_DURATION, "How long action attempts took, by action and outcome.",
                                 "s").record(seconds, _labels(outcome=outcome))


def _record_failure(exc: BaseException) -> None:
    activity.metric_meter().create_counter(
        ACTION_FAILURES, "Failed action attempts, by action and error type.").add(1, _labels(
            error_type=error_type(exc)))
