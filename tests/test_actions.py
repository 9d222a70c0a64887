"""Generic actions over real HTTP (a local aiohttp server), the registry, and the dev server lifecycle."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import http, notify, util
from activities.base import ActionInput
from activities.catalog import load_all
from incidentctl.devserver import SEARCH_ATTRIBUTES, DevServer, ensure_search_attributes


@pytest.fixture
async def service() -> AsyncIterator[str]:
    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="all good")

    async def down(_: web.Request) -> web.Response:
        return web.Response(status=503, text="down")

    async def missing(_: web.Request) -> web.Response:
        return web.Response(status=404, text="no such thing")

    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(text="late")

    app = web.Application()
    app.router.add_route("*", "/ok", ok)
    app.router.add_route("*", "/down", down)
    app.router.add_route("*", "/missing", missing)
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def run(fn, params: dict, *, attempt: int = 1, dry_run: bool = False):
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=attempt)
    return env.run(fn, ActionInput(action="x", params=params, incident_id="inc-1", step_id="s1", dry_run=dry_run))


async def test_http_check_reports_ok_and_problems_as_data(service: str) -> None:
    good = await run(http.check, {"url": f"{service}/ok", "body_contains": "good"})
    assert (good["ok"], good["status"], good["body_excerpt"], good["reason"]) == (True, 200, "all good", None)
    down = await run(http.check, {"url": f"{service}/down"})
    assert (down["ok"], down["status"], down["reason"]) == (False, 503, "status 503, expected 200")
    wrong_body = await run(http.check, {"url": f"{service}/ok", "body_contains": "bad"})
    assert wrong_body["reason"] == "body does not contain 'bad'"
    expected_404 = await run(http.check, {"url": f"{service}/missing", "expected_status": [404]})
    assert expected_404["ok"] is True


async def test_http_check_unreachable_and_timeout_are_not_exceptions(service: str) -> None:
    refused = await run(http.check, {"url": "http://127.0.0.1:9/"})
    assert refused["ok"] is False and refused["status"] == 0 and "no answer from" in refused["reason"]
    late = await run(http.check, {"url": f"{service}/slow", "timeout": 0.3})
    assert late["ok"] is False and late["status"] == 0 and "TimeoutError" in late["reason"]


async def test_http_request_retryability_follows_the_status(service: str) -> None:
    done = await run(http.request, {"url": f"{service}/ok", "method": "POST", "json": {"a": 1}})
    assert done["status"] == 200
    with pytest.raises(ApplicationError) as server_error:
        await run(http.request, {"url": f"{service}/down"})
    assert (server_error.value.type, server_error.value.non_retryable) == ("HTTPStatus", False)
    with pytest.raises(ApplicationError) as client_error:
        await run(http.request, {"url": f"{service}/missing"})
    assert (client_error.value.type, client_error.value.non_retryable) == ("HTTPStatus", True)
    assert "answered 404: no such thing" in client_error.value.message


async def test_http_request_dry_run_sends_nothing() -> None:
    result = await run(http.request, {"url": "http://127.0.0.1:9/restart", "method": "POST"}, dry_run=True)
    assert result == {"dry_run": True, "would_send": {"method": "POST", "url": "http://127.0.0.1:9/restart",
                                                      "json": None}}


async def test_invalid_params_are_refused_permanently() -> None:
    with pytest.raises(ApplicationError) as caught:
        await run(http.check, {"url": "ftp://example"})
    assert caught.value.type == "InvalidParams" and caught.value.non_retryable
    assert "params.url: 'ftp://example' does not match '^https?://'" in caught.value.message


async def test_util_fail_fails_the_first_attempts_then_succeeds() -> None:
    for attempt in (1, 2):
        with pytest.raises(ApplicationError) as caught:
            await run(util.fail, {"times": 2, "error_type": "Flaky"}, attempt=attempt)
        assert caught.value.type == "Flaky"
    assert await run(util.fail, {"times": 2}, attempt=3) == {"attempts": 3}
    with pytest.raises(ApplicationError):
        await run(util.fail, {"times": -1}, attempt=50)


async def test_notify_log_records_incident_and_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = tmp_path / "notify.jsonl"
    monkeypatch.setenv("INCIDENTCTL_NOTIFY_LOG", str(sink))
    result = await run(notify.log_message, {"message": "hello", "level": "warning"})
    assert result == {"delivered": True, "channel": "log", "message": "hello"}
    record = json.loads(sink.read_text())
    assert (record["incident_id"], record["step_id"], record["level"]) == ("inc-1", "s1", "warning")


def test_registry_lists_every_action_with_schema_and_mutation_flag() -> None:
    specs = {spec.name: spec for spec in load_all()}
    expected = {"util.echo", "util.fail", "util.sleep", "util.set", "http.check", "http.request", "notify.log"}
    assert expected <= set(specs)
    assert specs["http.request"].mutates and not specs["http.check"].mutates
    assert specs["http.check"].params_schema["required"] == ["url"]
    assert specs["http.check"].describe()["name"] == "http.check"


async def test_dev_server_registers_search_attributes_and_stops_by_pid(tmp_path: Path) -> None:
    # Like a fresh cluster: nothing registered until `incidentctl admin setup` (ensure_search_attributes) runs.
    server = DevServer(headless=True, log_file=tmp_path / "server.log", register_search_attributes=False)
    await asyncio.to_thread(server.start)
    assert server.process is not None
    pid = server.process.pid
    try:
        from temporalio.client import Client

        client = await Client.connect(server.address)
        assert await ensure_search_attributes(client, "default") == sorted(SEARCH_ATTRIBUTES)
        assert await ensure_search_attributes(client, "default") == [], "a second run changes nothing"
    finally:
        server.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert set(SEARCH_ATTRIBUTES) == {"IncidentStatus", "IncidentSeverity", "IncidentRunbook", "IncidentService"}
