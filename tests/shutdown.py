"""Stopping the session's fixtures within a bound, and saying what they waited on when they do not.

A run once hung for 20 minutes after its last test, in an async fixture's teardown, with every thread idle: the
event loop's pending tasks are the clue, so they are printed before the session is failed."""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import inspect
import io
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from temporalio.worker import Worker

WORKER_SHUTDOWN_S = 120.0
TEARDOWN_S = 300.0  # longer than the worker's bound: that one says more


def pending_tasks(loop: asyncio.AbstractEventLoop) -> str:
    """The stacks of the loop's unfinished tasks (read from another thread too: a diagnostic, racy by nature)."""
    out = io.StringIO()
    for task in list(asyncio.all_tasks(loop)):
        task.print_stack(limit=12, file=out)
    # A task's stack stops at an async generator (a fixture's body): show where the suspended ones wait.
    for generator in gc.get_objects():
        if inspect.isasyncgen(generator) and generator.ag_await is not None and generator.ag_frame is not None:
            frame = generator.ag_frame
            print(f"async generator {generator.__qualname__} waits at {frame.f_code.co_filename}:{frame.f_lineno}",
                  file=out)
    return out.getvalue()


def _report(what: str, loop: asyncio.AbstractEventLoop | None) -> None:
    print(f"{what}; pending tasks:\n{pending_tasks(loop) if loop else '(no event loop seen)'}",
          file=sys.stderr, flush=True)
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)


async def stop_within(worker: Worker, run: asyncio.Task[None], seconds: float) -> None:
    try:
        async with asyncio.timeout(seconds):
            await worker.shutdown()
            await run
    except TimeoutError:
        _report(f"the test worker did not stop within {seconds:.0f}s", asyncio.get_running_loop())
        raise AssertionError(f"the test worker did not stop within {seconds:.0f}s (tasks printed above)") from None


@contextmanager
def teardown_watch(item: pytest.Item, loop: asyncio.AbstractEventLoop | None,
                   seconds: float = TEARDOWN_S) -> Iterator[None]:
    """Fail the whole run, after printing what the loop waits on, when a teardown takes longer than `seconds`:
    a hung teardown would otherwise hold CI until its time limit, and say nothing."""
    def expired() -> None:
        capture = item.config.pluginmanager.getplugin("capturemanager")
        if capture is not None:
            capture.suspend_global_capture(in_=False)  # or the report would go to pytest's buffer and be lost
        _report(f"the teardown of {item.nodeid} did not end within {seconds:.0f}s", loop)
        os._exit(3)

    timer = threading.Timer(seconds, expired)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
