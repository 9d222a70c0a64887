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
from pathlib import Path
from typing import Any, NoReturn


def stop_on_signals() -> asyncio.Event:
    """An event set by Ctrl-C or SIGTERM; call it inside the running loop, before starting anything."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


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
