"""Heartbeats and retry keys without a Temporal server (`ActivityEnvironment` gives info, heartbeats and
cancellation); the crash itself is in tests/test_k8s_crash.py, through the real wire."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from temporalio.testing import ActivityEnvironment

from activities import http
from activities.base import ActionInput
from activities.heartbeats import BEATS_PER_TIMEOUT, heartbeat, keep_alive, previous_details
from activities.k8s.delete_pods import older_than, still_there, victims_of
from incidentctl.localhttp import serve

FAST_S = 0.02


def _env(details: list[Any] | None = None, attempt: int = 1) -> tuple[ActivityEnvironment, list[tuple[Any, ...]]]:
    env = ActivityEnvironment()
    # The keep-alive beats BEATS_PER_TIMEOUT times per heartbeat timeout: every FAST_S here.
    env.info = dataclasses.replace(env.info, attempt=attempt, heartbeat_details=details or [],
                                   heartbeat_timeout=timedelta(seconds=FAST_S * BEATS_PER_TIMEOUT))
    beats: list[tuple[Any, ...]] = []
    env.on_heartbeat = lambda *d: beats.append(d)
    return env, beats


async def test_keep_alive_beats_while_the_action_runs_and_stops_after() -> None:
    env, beats = _env()

    async def silent() -> None:
        async with keep_alive():
            await asyncio.sleep(FAST_S * 10)

    await env.run(silent)
    during = len(beats)
    await asyncio.sleep(FAST_S * 5)
    assert during >= 3 and len(beats) == during, beats
    assert set(beats) == {()}, "nothing to repeat yet: empty details"


async def test_the_background_beat_repeats_the_actions_own_details_never_none() -> None:
    env, beats = _env()

    async def reporting() -> None:
        async with keep_alive():
            heartbeat({"victims": ["a"]})
            await asyncio.sleep(FAST_S * 10)

    await env.run(reporting)
    first = next(i for i, d in enumerate(beats) if d == ({"victims": ["a"]},))
    assert len(beats) - first >= 3 and all(d == ({"victims": ["a"]},) for d in beats[first:]), beats


async def test_a_retry_keeps_the_previous_attempts_details_until_it_sends_its_own() -> None:
    env, beats = _env(details=[{"started": 5.0}], attempt=2)

    async def retried() -> tuple[Any, ...]:
        async with keep_alive():
            await asyncio.sleep(FAST_S * 5)
            return tuple(previous_details())

    assert await env.run(retried) == ({"started": 5.0},)
    assert beats and all(d == ({"started": 5.0},) for d in beats), beats


async def test_outside_temporal_nothing_beats_and_nothing_fails() -> None:
    async with keep_alive():
        heartbeat({"ignored": True})
        await asyncio.sleep(FAST_S * 3)
    assert previous_details() == ()


async def test_every_action_heartbeats_through_its_wrapper() -> None:
    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(FAST_S * 10)
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/slow", slow)
    runner, url = await serve(app)
    env, beats = _env()
    try:
        # http.check sends no heartbeat itself: the wrapper's background beat is what Temporal sees.
        result = await env.run(http.check, ActionInput(action="http.check", params={"url": f"{url}/slow"}))
    finally:
        await runner.cleanup()
    assert result["ok"] is True
    assert len(beats) >= 3 and set(beats) == {()}, beats


async def test_retry_key_names_the_step_execution_the_same_for_each_attempt() -> None:
    inp = ActionInput(action="x", incident_id="inc-1", step_id="fix")
    assert inp.retry_key() == "inc-1/fix"
    first, _ = _env()
    second, _ = _env(attempt=2)

    async def key() -> str:
        return inp.retry_key()

    assert await first.run(key) == await second.run(key) == f"inc-1/fix@{first.info.workflow_run_id}/" \
                                                             f"{first.info.activity_id}"
    rerun = ActivityEnvironment()
    rerun.info = dataclasses.replace(rerun.info, activity_id="7")
    assert await rerun.run(key) != await first.run(key), "a re-run of the runbook executes the step anew"


def _pod(name: str, uid: str, created: str, terminating: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": uid, "creationTimestamp": created}
    if terminating:
        meta["deletionTimestamp"] = created
    return {"metadata": meta}


def test_delete_pods_retry_deletes_only_the_victims_the_first_attempt_chose() -> None:
    details = [{"victims": [{"name": "cart-a", "uid": "u1"}, {"name": "cart-b", "uid": "u2"}]}]
    victims = victims_of(details)
    assert victims is not None and [v["name"] for v in victims] == ["cart-a", "cart-b"]
    pods = [_pod("cart-a", "u1", "2024-01-01T00:00:00Z"),  # still there: delete
            _pod("cart-b", "u9", "2024-01-01T00:05:00Z"),  # a namesake (StatefulSet) replaced it: keep
            _pod("cart-c", "u3", "2024-01-01T00:05:00Z")]  # a replacement: keep
    assert [p["metadata"]["name"] for p in still_there(pods, victims)] == ["cart-a"]
    assert still_there([_pod("cart-a", "u1", "2024-01-01T00:00:00Z", terminating=True)], victims) == []
    assert victims_of([]) is None and victims_of([{"started": 1}]) is None and victims_of(["text"]) is None


def test_delete_pods_retry_without_victims_picks_only_pods_older_than_the_step() -> None:
    scheduled = datetime(2024, 1, 1, 0, 1, tzinfo=UTC)
    pods = [_pod("old", "u1", "2024-01-01T00:00:00Z"), _pod("new", "u2", "2024-01-01T00:02:00Z"),
            {"metadata": {"name": "unknown", "uid": "u3"}}]
    assert [p["metadata"]["name"] for p in older_than(pods, scheduled)] == ["old"]
