"""`start --wait`'s narration (incidentctl/watch.py), with its reads stubbed: what happens on Ctrl-C.
The views through the real server and CLI are in test_cli_views.py."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from incidentctl import watch


class CountedFollower:
    """Counts reads instead of asking Temporal."""

    ticks = 0

    def __init__(self, *args: object) -> None:
        pass

    async def tick(self) -> bool:
        CountedFollower.ticks += 1
        return True


async def test_ctrl_c_during_start_wait_reads_nothing_more(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch, "Follower", CountedFollower)
    CountedFollower.ticks = 0
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    waiting = asyncio.create_task(watch.narrate_while(None, "incident-x", never, print, 60,  # type: ignore[arg-type]
                                                      timedelta(seconds=5)))
    while CountedFollower.ticks < 1:  # the first read; the next is a minute away
        await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert CountedFollower.ticks == 1 and never.cancelled(), "no last read after Ctrl-C, and the wait ended"


async def test_the_last_steps_are_read_once_more_when_the_wait_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch, "Follower", CountedFollower)
    CountedFollower.ticks = 0
    done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    done.set_result("resolved")
    assert await watch.narrate_while(None, "incident-x", done, print, 10, timedelta(seconds=5)) == "resolved"  # type: ignore[arg-type]
    assert CountedFollower.ticks >= 1, "the steps done before the result are told"
