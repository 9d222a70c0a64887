"""Building an incidentctl worker: the incident workflow and every installed action, on one task queue."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.worker import Worker

from activities.catalog import all_activities
from activities.incident_history import IncidentHistory
from workflows.incident import IncidentWorkflow
from workflows.model import TASK_QUEUE


def build_worker(client: Client, task_queue: str = TASK_QUEUE, max_concurrent_activities: int = 100) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[IncidentWorkflow],
        activities=[*all_activities(), *IncidentHistory(client).activities()],
        max_concurrent_activities=max_concurrent_activities,
    )
