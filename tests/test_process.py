"""Process plumbing through real processes: Ctrl-C handling of the CLI's async commands."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# A command whose stop does not come after Ctrl-C (as a call waiting out its deadline would).
STUCK = """
import asyncio, sys
from incidentctl.process import until_interrupted

async def stuck() -> int:
    print("ready", flush=True)  # from here on, until_interrupted's handler has Ctrl-C
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            print("cancelled, carrying on", flush=True)

async def main() -> int:
    return await until_interrupted(stuck())

sys.exit(asyncio.run(main()))
"""


def test_a_second_ctrl_c_leaves_when_the_first_ones_stop_is_stuck() -> None:
    process = subprocess.Popen([sys.executable, "-c", STUCK], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
        process.send_signal(signal.SIGINT)
        assert process.stdout.readline() == "cancelled, carrying on\n"
        assert process.poll() is None, "the first Ctrl-C asked the command to stop; it did not"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 130
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
