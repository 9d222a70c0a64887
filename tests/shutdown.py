"""Stopping the session's worker within a bound, and saying what it waited on when it does not.

A run once hung for 20 minutes after its last test, in the worker's shutdown: the tasks still pending are the
clue, so they are printed before the session fails."""

from __future__ import annotations

import asyncio
import faulthandler
import io
import sys

from temporalio.worker import Worker

WORKER_SHUTDOWN_S = 120.0


def pending_tasks() -> str:
    out = io.StringIO()
    for task in asyncio.all_tasks():
        if task is not asyncio.current_task():
            task.print_stack(limit=12, file=out)
    return out.getvalue()


async def stop_within(worker: Worker, run: asyncio.Task[None], seconds: float) -> None:
    try:
        async with asyncio.timeout(seconds):
            await worker.shutdown()
            await run
    except TimeoutError:
        print(f"the test worker did not stop within {seconds:.0f}s; pending tasks:\n{pending_tasks()}",
              file=sys.stderr, flush=True)
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        raise AssertionError(f"the test worker did not stop within {seconds:.0f}s (tasks printed above)") from None
