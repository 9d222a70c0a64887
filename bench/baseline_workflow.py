"""The floor the interpreter is measured against: a hand-written workflow doing the same work as an incident of
the benchmark's runbook: the admission every incident gets (a local activity checking a plan signature and
reading the worker's people file, as incidentctl/plan_signing.py does), then three no-op activities.

Its own module so the workflow sandbox can import it without the benchmark's heavy imports.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="bench.noop")
async def noop(message: str) -> str:
    return message


@activity.defn(name="bench.admit")
async def admit(plan_hash: str) -> dict:
    # Imported here: the workflow sandbox imports this module, and must not import ours.
    from incidentctl.people import load_groups
    from incidentctl.plan_signing import verify_plan
    from workflows.plan_check import PlanCheck

    return {"plan": verify_plan(PlanCheck(plan_hash=plan_hash, signature="")), "groups": load_groups()}


@workflow.defn(name="BenchBaseline")
class Baseline:
    @workflow.run
    async def run(self, message: str) -> str:
        await workflow.execute_local_activity(admit, "0" * 64, start_to_close_timeout=timedelta(seconds=30))
        for _ in range(3):
            message = await workflow.execute_activity(noop, message, start_to_close_timeout=timedelta(seconds=30))
        return message
