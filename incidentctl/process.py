"""Process plumbing shared by the long-running commands and the worker."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import NoReturn


def stop_on_signals() -> asyncio.Event:
    """An event set by Ctrl-C or SIGTERM; call it inside the running loop, before starting anything."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def exit_without_finalizing(code: int) -> NoReturn:
    """Flush and leave without interpreter finalization.

    The Temporal SDK's Rust runtime keeps threads that can race CPython's shutdown and crash a process after
    its work is done (temporalio/sdk-python#300); skipping finalization avoids it.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
