"""The floor the interpreter is measured against: a hand-written workflow calling three no-op activities.

Its own module so the workflow sandbox can import it without the benchmark's heavy imports.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="bench.noop")
async def noop(message: str) -> str:
    return message


@workflow.defn(name="BenchBaseline")
class Baseline:
    @workflow.run
    async def run(self, message: str) -> str:
        for _ in range(3):
            message = await workflow.execute_activity(noop, message, start_to_close_timeout=timedelta(seconds=30))
        return message
