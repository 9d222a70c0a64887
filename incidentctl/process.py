"""Process plumbing shared by the long-running commands and the worker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, NoReturn

INTERRUPTED = 130  # the shell's exit code for a command ended by Ctrl-C


def stop_on_signals() -> asyncio.Event:
    """An event set by Ctrl-C or SIGTERM; call it inside the running loop, before starting anything."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def until_interrupted(work: Awaitable[int]) -> int:
    """Await a command's work; Ctrl-C ends it with INTERRUPTED, whatever SIGINT disposition the process inherited.

    asyncio.run turns Ctrl-C into KeyboardInterrupt only where SIGINT has Python's default handler, and a process
    started in the background by a non-interactive shell (`cmd &` in a script, nohup) inherits SIGINT ignored: a
    `list -w` or `watch` then ran on after Ctrl-C (seen in CI). A handler on the loop also wakes the loop at
    once when the signal lands on one of the SDK's threads. A second Ctrl-C leaves at once, without waiting for
    the first one's stop. Commands with their own shutdown (dev, receiver) replace this handler with
    `stop_on_signals`.
    """
    task = asyncio.current_task()
    assert task is not None
    interrupted = False

    def interrupt() -> None:
        nonlocal interrupted
        if interrupted:  # a second Ctrl-C: the first one's stop is stuck (a call waiting out its deadline)
            exit_without_finalizing(INTERRUPTED)
        interrupted = True
        task.cancel()

    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, interrupt)
    try:
        return await work
    except asyncio.CancelledError:
        if interrupted:
            return INTERRUPTED
        raise


def log_tail(log_file: Path, lines: int = 20) -> str:
    """The last lines a child process wrote to its log, for an error that says why it failed."""
    try:
        return "\n".join(log_file.read_text(errors="replace").splitlines()[-lines:]) or "(empty log)"
    except OSError:
        return "(no log)"


def exit_without_finalizing(code: int) -> NoReturn:
    """Flush and leave without interpreter finalization.

    The Temporal SDK's Rust runtime keeps threads that can race CPython's shutdown and crash a process after
    its work is done (temporalio/sdk-python#300); skipping finalization avoids it.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def stop_process(process: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """SIGTERM by PID, SIGKILL after `grace_s`; reaped, so nothing holds its PID or port afterwards."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
    process.wait()


def start_with_ready_file(command: list[str], ready: Path, log_path: Path, what: str,
                          startup_s: float = 30.0) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start a simulator's process and wait for the ready file it writes once serving (whole, by
    `localhttp.write_ready_file`); returns the process and what the file says. On any failure the process is
    stopped, never left serving behind an error."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log, cwd=Path(__file__).resolve().parents[1])
    try:
        deadline = time.monotonic() + startup_s
        while not ready.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start; its log ({log_path}) ends with:\n"
                                   f"{log_path.read_text()[-2000:]}")
            time.sleep(0.05)
        return process, json.loads(ready.read_text())
    except BaseException:
        stop_process(process)
        raise
