"""Building an incidentctl worker: the incident and target workflows and every installed action, on one task
queue."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.catalog import all_activities
from activities.incident_history import IncidentHistory
from incidentctl.identity_policy import IdentityPolicy
from incidentctl.plan_signing import Admission
from incidentctl.target_leases import TargetLeases
from incidentctl.worker_metrics import ActionMetrics
from workflows.incident import IncidentWorkflow
from workflows.model import TASK_QUEUE
from workflows.targets import TargetWorkflow

# The sandbox re-imports a workflow's module for every workflow run (and re-runs `@workflow.defn` on it): for
# IncidentWorkflow that cost more than the incident's own work, halving throughput. Our modules are passed
# through instead, imported once per worker; their determinism is guarded by tests/test_determinism.py (no
# clock, randomness or I/O in workflows/) and by replaying recorded histories (tests/test_replay.py).
WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows", "incidentctl", "activities"))


def build_worker(client: Client, task_queue: str = TASK_QUEUE, max_concurrent_activities: int = 100,
                 identity: IdentityPolicy | None = None, plans_required: bool | None = None,
                 shutdown_grace: timedelta = timedelta()) -> Worker:
    """`identity`: what incidents started here require of people's commands (default: the environment's,
    incidentctl/identity_policy.py); `plans_required`: whether only signed plans run (default: the environment's,
    incidentctl/plan_signing.py); `shutdown_grace`: on shutdown, how long running actions may go on before they
    are cancelled."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[IncidentWorkflow, TargetWorkflow],
        workflow_runner=WORKFLOW_RUNNER,
        activities=[*all_activities(), *IncidentHistory(client).activities(), *TargetLeases(client).activities(),
                    *Admission(identity, plans_required).activities()],
        max_concurrent_activities=max_concurrent_activities,
        graceful_shutdown_timeout=shutdown_grace,
        interceptors=[ActionMetrics()],
    )
