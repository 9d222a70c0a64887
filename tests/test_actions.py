"""Generic actions over real HTTP (a local aiohttp server, no mocks) and the action registry.

Activities are called directly through `ActivityEnvironment`, which provides `activity.info()` (attempt
numbers), heartbeats and cancellation without a Temporal server.
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import importlib
import json
import subprocess
import sys
import traceback
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aiohttp import web
from temporalio.api.failure.v1 import Failure
from temporalio.converter import DataConverter
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import http, util
from activities.base import ActionFn, ActionInput, get_action, params_errors, with_defaults
from activities.catalog import action_catalog, action_modules, all_activities, load_all
from activities.incident_history import PREVIOUS_RUNS, IncidentHistory
from activities.notify.log import log_message
from incidentctl.devserver import free_port
from incidentctl.localhttp import serve

BIG_NEEDLE = "needle-inside-the-bound"
BIG_TAIL = "marker-past-one-mebibyte"


@pytest.fixture(scope="module")
async def service() -> AsyncIterator[str]:
    """A real HTTP service on 127.0.0.1 with one route per behaviour the actions must handle."""

    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="all good")

    async def down(_: web.Request) -> web.Response:
        return web.Response(status=503, text="down")

    async def missing(_: web.Request) -> web.Response:
        return web.Response(status=404, text="no such thing")

    async def throttled(_: web.Request) -> web.Response:
        return web.Response(status=429, text="slow down")

    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    async def echo(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        return web.json_response({"method": request.method, "token": request.headers.get("X-Token"), "json": body})

    async def big(_: web.Request) -> web.StreamResponse:
        # Streamed in many chunks: the needle sits past the first network read, the tail past 1 MiB.
        response = web.StreamResponse()
        await response.prepare(_)
        for index in range(48):  # 48 x 64 KiB = 3 MiB
            chunk = bytearray(b"x" * 65536)
            if index == 8:
                chunk[:len(BIG_NEEDLE)] = BIG_NEEDLE.encode()
            if index == 32:
                chunk[:len(BIG_TAIL)] = BIG_TAIL.encode()
            await response.write(bytes(chunk))
        await response.write_eof()
        return response

    app = web.Application()
    for path, handler in {"/ok": ok, "/down": down, "/missing": missing, "/throttled": throttled,
                          "/echo": echo}.items():
        app.router.add_route("*", path, handler)
    app.router.add_get("/slow", slow)
    app.router.add_get("/big", big)
    # handler_cancellation: a client that times out on /slow must not keep teardown waiting for the handler.
    runner, url = await serve(app, handler_cancellation=True, shutdown_timeout=1)
    yield url
    await runner.cleanup()


def make_env(attempt: int = 1) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=attempt)
    return env


async def run(fn: ActionFn, params: dict[str, Any], *, attempt: int = 1, dry_run: bool = False,
              env: ActivityEnvironment | None = None) -> dict[str, Any]:
    inp = ActionInput(action="x", params=params, incident_id="inc-1", step_id="s1", dry_run=dry_run)
    return await (env or make_env(attempt)).run(fn, inp)


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}/health"  # free now, so nothing listens: connection refused


# --- http.check -------------------------------------------------------------------------------------------


async def test_http_check_ok_and_expected_status(service: str) -> None:
    good = await run(http.check, {"url": f"{service}/ok", "body_contains": "good"})
    assert (good["ok"], good["status"], good["body_excerpt"], good["reason"]) == (True, 200, "all good", None)
    assert good["elapsed_ms"] >= 0
    expected_404 = await run(http.check, {"url": f"{service}/missing", "expected_status": [404, 410]})
    assert expected_404["ok"] is True
    single = await run(http.check, {"url": f"{service}/down", "expected_status": 503})
    assert single["ok"] is True
    head = await run(http.check, {"url": f"{service}/ok", "method": "HEAD"})
    assert (head["ok"], head["body_excerpt"]) == (True, "")


async def test_http_check_mismatch_is_data_not_an_exception(service: str) -> None:
    down = await run(http.check, {"url": f"{service}/down"})
    assert (down["ok"], down["status"], down["reason"], down["body_excerpt"]) == (
        False, 503, "status 503, expected 200", "down")
    wrong_body = await run(http.check, {"url": f"{service}/ok", "body_contains": "bad"})
    assert (wrong_body["ok"], wrong_body["status"]) == (False, 200)
    assert wrong_body["reason"] == "body does not contain 'bad'"
    both = await run(http.check, {"url": f"{service}/missing", "body_contains": "bad"})
    assert both["reason"] == "status 404, expected 200; body does not contain 'bad'"


async def test_http_check_connection_refused_is_status_zero() -> None:
    url = closed_port_url()
    refused = await run(http.check, {"url": url, "timeout": 5})
    assert (refused["ok"], refused["status"], refused["body_excerpt"]) == (False, 0, "")
    assert refused["reason"].startswith(f"GET {url}: no answer (")


async def test_http_check_timeout_is_status_zero(service: str) -> None:
    late = await run(http.check, {"url": f"{service}/slow", "timeout": 0.3})
    assert (late["ok"], late["status"]) == (False, 0)
    assert late["reason"] == f"GET {service}/slow: no answer within 0.3s (timeout)"
    assert late["elapsed_ms"] < 3000


async def test_http_check_reads_whole_body_up_to_one_mebibyte(service: str) -> None:
    # The needle arrives after the first network chunk: a single read() would miss it.
    found = await run(http.check, {"url": f"{service}/big", "body_contains": BIG_NEEDLE})
    assert found["ok"] is True and len(found["body_excerpt"]) == http.EXCERPT_CHARS
    beyond = await run(http.check, {"url": f"{service}/big", "body_contains": BIG_TAIL})
    assert beyond["ok"] is False, "bytes past MAX_BODY_BYTES are never read"


# --- http.request -----------------------------------------------------------------------------------------


async def test_http_request_sends_json_and_headers(service: str) -> None:
    done = await run(http.request, {"url": f"{service}/echo", "method": "PUT", "json": {"a": 1},
                                    "headers": {"X-Token": "t0k"}})
    assert (done["ok"], done["status"]) == (True, 200)
    assert json.loads(done["body_excerpt"]) == {"method": "PUT", "token": "t0k", "json": {"a": 1}}


async def test_http_request_dry_run_sends_nothing(service: str) -> None:
    # A closed port: had it sent anything, it would fail with HTTPUnreachable.
    url = closed_port_url()
    result = await run(http.request, {"url": url, "method": "POST", "json": {"x": 1},
                                      "headers": {"Authorization": "secret"}}, dry_run=True)
    assert result == {"dry_run": True, "would_send": {"method": "POST", "url": url, "json": {"x": 1}}}


@pytest.mark.parametrize(("path", "retryable"), [("/down", True), ("/throttled", True), ("/missing", False)])
async def test_http_request_status_errors_are_retryable_only_for_5xx_and_429(
    service: str, path: str, retryable: bool
) -> None:
    with pytest.raises(ApplicationError) as caught:
        await run(http.request, {"url": f"{service}{path}"})
    assert (caught.value.type, caught.value.non_retryable) == ("HTTPStatus", not retryable)
    assert caught.value.message.startswith(f"POST {service}{path} answered ")
    assert await run(http.request, {"url": f"{service}{path}", "expected_status": [404, 429, 503]})


async def test_http_request_unreachable_is_a_retryable_error() -> None:
    with pytest.raises(ApplicationError) as caught:
        await run(http.request, {"url": closed_port_url(), "timeout": 5})
    assert (caught.value.type, caught.value.non_retryable) == ("HTTPUnreachable", False)


def temporal_failure(error: BaseException) -> Failure:
    """What Temporal records of an exception that ends an activity (the SDK's own converter), stack trace aside."""
    failure = Failure()
    converter = DataConverter.default
    converter.failure_converter.to_failure(error, converter.payload_converter, failure)
    failure.stack_trace = ""
    return failure


async def test_an_action_error_reaches_temporal_as_the_application_error_it_stands_for(service: str) -> None:
    """Actions raise activities.errors.ActionError (no temporalio at import); the wrapper hands Temporal the
    ApplicationError the action used to raise: message, details, type, retryability, and no extra cause."""
    url = f"{service}/missing"
    with pytest.raises(ApplicationError) as caught:
        await run(http.request, {"url": url})
    error = caught.value
    assert (error.message, error.details, error.type, error.non_retryable) == (
        f"POST {url} answered 404: no such thing", ({"status": 404},), "HTTPStatus", True)
    try:  # what activities/http.py raised before ActionError existed
        raise ApplicationError(f"POST {url} answered 404: no such thing", {"status": 404}, type="HTTPStatus",
                               non_retryable=True) from None
    except ApplicationError as before:
        assert temporal_failure(error) == temporal_failure(before)
    assert not temporal_failure(error).HasField("cause")
    # The stack trace Temporal records still leads to the line in the action that failed.
    assert "activities/http.py" in "".join(traceback.format_tb(error.__traceback__))


# --- params validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fn", "params", "expected"), [
    (http.check, {"url": "ftp://example"}, "params.url: 'ftp://example' does not match '^https?://'"),
    (http.check, {}, "params: 'url' is a required property"),
    (http.check, {"url": "http://x", "timeout": 500}, "params.timeout: 500 is greater than the maximum of 120"),
    (http.check, {"url": "http://x", "method": "DELETE"}, "params.method: 'DELETE' is not one of"),
    (http.request, {"url": "http://x", "surprise": 1}, "Additional properties are not allowed"),
    (util.sleep, {"seconds": -1}, "params.seconds: -1 is less than the minimum of 0"),
    (util.fail, {"times": "2"}, "params.times: '2' is not of type 'integer'"),
    (http.check, {"url": "http://x", "headers": {"X-Token": 1}}, "params.headers.X-Token: 1 is not of type 'string'"),
    (log_message, {"message": "hi", "level": "loud"}, "params.level: 'loud' is not one of"),
])
async def test_invalid_params_are_refused_permanently(fn: ActionFn, params: dict[str, Any], expected: str) -> None:
    with pytest.raises(ApplicationError) as caught:
        await run(fn, params)
    assert caught.value.type == "InvalidParams" and caught.value.non_retryable
    assert expected in caught.value.message


# --- util -------------------------------------------------------------------------------------------------


async def test_util_fail_fails_the_first_attempts_then_succeeds() -> None:
    for attempt in (1, 2):
        with pytest.raises(ApplicationError) as caught:
            await run(util.fail, {"times": 2, "error_type": "Flaky", "message": "transient"}, attempt=attempt)
        assert (caught.value.type, caught.value.message, caught.value.non_retryable) == ("Flaky", "transient", False)
    assert await run(util.fail, {"times": 2}, attempt=3) == {"attempts": 3}
    assert await run(util.fail, {"times": 0}) == {"attempts": 1}


async def test_util_fail_defaults_to_always_and_can_be_non_retryable() -> None:
    with pytest.raises(ApplicationError) as always:
        await run(util.fail, {}, attempt=50)
    assert (always.value.type, always.value.non_retryable) == ("ActionFailed", False)
    assert "attempt 50" in always.value.message
    with pytest.raises(ApplicationError) as permanent:
        await run(util.fail, {"times": -1, "non_retryable": True})
    assert permanent.value.non_retryable


async def test_util_echo_and_set() -> None:
    assert await run(util.echo, {"message": [1, "two"], "data": {"k": 3}}) == {"message": [1, "two"],
                                                                                "data": {"k": 3}}
    assert await run(util.echo, {}) == {"message": None, "data": None}
    assert await run(util.set_values, {"values": {"count": 4, "names": ["a"]}}) == {"count": 4, "names": ["a"]}


async def test_util_sleep_heartbeats_and_is_cancellable() -> None:
    env = make_env()
    beats: list[Any] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    assert await run(util.sleep, {"seconds": 0.6}, env=env) == {"slept": 0.6}
    assert len(beats) >= 3, "one heartbeat before sleeping and one per slice"

    env = make_env()
    sleeping = asyncio.create_task(run(util.sleep, {"seconds": 60}, env=env))
    await asyncio.sleep(0.1)
    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(sleeping, timeout=2)


# --- notify -----------------------------------------------------------------------------------------------


async def test_notify_log_writes_log_line_and_json_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    sink = tmp_path / "sub" / "notify.jsonl"
    monkeypatch.setenv("INCIDENTCTL_NOTIFY_LOG", str(sink))
    with caplog.at_level("INFO", logger="incidentctl.notify"):
        first = await run(log_message, {"message": "hello", "level": "warning"})
        second = await run(log_message, {"message": "bye", "channel": "oncall"}, attempt=2)
    assert first == {"delivered": True, "channel": "log", "message": "hello"}
    assert second == {"delivered": True, "channel": "oncall", "message": "bye"}
    records = [json.loads(line) for line in sink.read_text().splitlines()]
    assert [(r["incident_id"], r["step_id"], r["attempt"], r["channel"], r["level"], r["message"])
            for r in records] == [("inc-1", "s1", 1, "log", "warning", "hello"),
                                  ("inc-1", "s1", 2, "oncall", "info", "bye")]
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "[log] inc-1/s1: hello"), ("INFO", "[oncall] inc-1/s1: bye")]
    assert caplog.records[0].notify["step_id"] == "s1"  # type: ignore[attr-defined]


async def test_notify_log_without_file_only_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INCIDENTCTL_NOTIFY_LOG", raising=False)
    # channel and level come from the schema's defaults, filled in by the action wrapper.
    assert await run(log_message, {"message": "m"}) == {"delivered": True, "channel": "log", "message": "m"}


# --- registry ---------------------------------------------------------------------------------------------


def test_registry_lists_every_action_with_schema_and_mutation_flag() -> None:
    specs = {spec.name: spec for spec in load_all()}
    assert load_all() == list(specs.values()), "idempotent and sorted by name"
    mutating = {"http.request"}
    generic = {"util.echo", "util.fail", "util.sleep", "util.set", "http.check", "http.request", "notify.log"}
    assert generic <= set(specs)
    for name in generic:
        spec = specs[name]
        jsonschema.Draft202012Validator.check_schema(spec.params_schema)
        assert spec.params_schema["type"] == "object" and spec.description
        assert spec.mutates == (name in mutating)
        assert spec.describe() == {"name": name, "description": spec.description, "mutates": spec.mutates,
                                   "params": spec.params_schema}
        assert get_action(name) is spec
    assert specs["http.check"].params_schema["required"] == ["url"]
    # The worker registers each under its action name, so histories show e.g. `http.check`.
    names = {fn.__temporal_activity_definition.name for fn in all_activities()}  # type: ignore[attr-defined]
    assert generic <= names


def test_every_params_schema_is_a_valid_json_schema() -> None:
    """Checked here rather than by `@action` at import, where every `incidentctl` command paid for it."""
    invalid = {}
    for spec in load_all():
        try:
            jsonschema.Draft202012Validator.check_schema(spec.params_schema)
        except jsonschema.SchemaError as exc:
            invalid[spec.name] = f"{exc.json_path}: {exc.message}"
    assert invalid == {}
    with pytest.raises(jsonschema.SchemaError):  # the check this relies on does catch a malformed schema
        jsonschema.Draft202012Validator.check_schema({"type": "object", "properties": {"n": {"minimum": "1"}}})


def test_worker_activities_are_defined_once_however_many_workers_a_process_builds() -> None:
    """Defined lazily, on the worker's first request; temporalio refuses to define a function twice."""
    first, second = all_activities(), all_activities()
    assert [a is b for a, b in zip(first, second, strict=True)] == [True] * len(PUBLISHED_ACTIONS)
    assert [fn.__temporal_activity_definition.name for fn in first] == [  # type: ignore[attr-defined]
        spec.name for spec in load_all()]
    assert [spec.activity for spec in load_all()] == first, "the callable tests and the worker call is one"
    history = IncidentHistory(None)  # type: ignore[arg-type]  # no call is made
    for defined in (history.activities(), IncidentHistory(None).activities()):  # type: ignore[arg-type]
        assert [fn.__temporal_activity_definition.name for fn in defined] == [PREVIOUS_RUNS]  # type: ignore[attr-defined]


# --- where actions live, and what loading them costs ------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
# Runbooks name these: discovery must find every one, and no move may drop or rename any.
PUBLISHED_ACTIONS = {
    "util.echo", "util.set", "util.fail", "util.sleep", "http.check", "http.request",
    "notify.log", "notify.webhook", "notify.slack", "notify.github",
    "k8s.workload_of", "k8s.deployment_status", "k8s.unhealthy_pods", "k8s.pod_logs", "k8s.events",
    "k8s.node_conditions", "k8s.top_pods", "k8s.what_changed", "k8s.wait_rollout", "k8s.wait_pods_ready",
    "k8s.wait_stable", "k8s.rollout_restart", "k8s.rollout_undo", "k8s.scale", "k8s.set_resources",
    "k8s.delete_pods", "k8s.cordon", "k8s.uncordon", "k8s.drain", "k8s.isolate", "k8s.remove_isolation",
    "aws.ec2_instance_status", "aws.asg_status", "aws.cloudwatch_alarm", "aws.cloudwatch_metric",
    "aws.ec2_reboot", "aws.ec2_stop_start", "aws.asg_set_capacity", "aws.ecs_force_deploy", "aws.rds_reboot",
    "aws.ssm_run_command", "aws.call", "aws.change", "aws.wait", "aws.ecs_service_status", "aws.rds_instance_status",
    "gke.cluster_status", "gke.node_pool_status", "gke.operation_status", "gke.resize_node_pool",
    "gke.set_node_pool_autoscaling", "gke.rollback_node_pool_upgrade",
    "prometheus.configured", "prometheus.query", "prometheus.wait",
}


def modules_named_by(action: str) -> set[str]:
    """Where the naming rule (docs/design.md) lets `family.verb_rest` live: activities/family.py, or
    activities/family/<w>.py with <w> the verb or its leading words (`k8s.wait_stable`: k8s/wait.py)."""
    family, verb = action.split(".")
    words = verb.split("_")
    return {f"activities.{family}"} | {f"activities.{family}." + "_".join(words[:n]) for n in range(1, len(words) + 1)}


def module_tree(module: str) -> ast.Module:
    return ast.parse(Path(importlib.import_module(module).__file__ or "").read_text(encoding="utf-8"))


def test_the_catalog_holds_exactly_the_published_actions() -> None:
    catalog = action_catalog()
    assert set(catalog) == PUBLISHED_ACTIONS
    for spec in load_all():
        info = catalog[spec.name]
        assert (info.params_schema, info.mutates, info.description, info.heartbeat_timeout_s) == (
            spec.params_schema, spec.mutates, spec.description, spec.heartbeat_timeout_s)


def test_every_action_lives_in_the_module_its_name_points_to() -> None:
    misplaced = {spec.name: spec.activity.__module__ for spec in load_all()
                 if spec.activity.__module__ not in modules_named_by(spec.name)}
    assert misplaced == {}
    assert modules_named_by("k8s.wait_pods_ready") == {
        "activities.k8s", "activities.k8s.wait", "activities.k8s.wait_pods", "activities.k8s.wait_pods_ready"}


def test_action_modules_share_code_through_helpers_not_each_other() -> None:
    """So a module can be moved or renamed with its action, and helpers are where shared code is found."""
    action_homes = {spec.activity.__module__ for spec in load_all()}
    crossings = [f"{home} imports {node.module}" for home in action_homes for node in ast.walk(module_tree(home))
                 if isinstance(node, ast.ImportFrom) and node.module in action_homes - {home}]
    assert crossings == []


def test_action_code_reads_schema_defaults_instead_of_restating_them() -> None:
    """`params.get("limit", 50)` beside a schema saying 50 is two places to change; the wrapper fills defaults in."""
    defaulted: dict[str, set[str]] = {}
    for spec in load_all():
        defaulted.setdefault(spec.activity.__module__, set()).update(
            name for name, prop in spec.params_schema["properties"].items() if "default" in prop)
    restated = [f"{module}:{node.lineno}: {ast.unparse(node)}"
                for module, names in defaulted.items() for node in ast.walk(module_tree(module))
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                and len(node.args) == 2 and isinstance(node.args[0], ast.Constant) and node.args[0].value in names]
    assert restated == []


def test_defaults_are_filled_in_as_copies_and_never_override_given_params() -> None:
    schema = get_action("k8s.events").params_schema
    filled = with_defaults(schema, {"namespace": "shop", "limit": 5})
    assert filled == {"namespace": "shop", "limit": 5, "types": ["Normal", "Warning"], "since": "1h",
                      "api_timeout": 15.0}
    filled["types"].append("Bogus")
    assert schema["properties"]["types"]["default"] == ["Normal", "Warning"], "an action cannot change its schema"


async def test_invalid_params_name_the_json_path_of_list_items() -> None:
    expected = "params.types[1]: 'Bogus' is not one of ['Normal', 'Warning']"
    assert params_errors(get_action("k8s.events").params_schema, {"namespace": "shop", "types": ["Normal", "Bogus"]}
                         ) == [expected]
    with pytest.raises(ApplicationError) as caught:  # refused before any cluster is asked
        await run(get_action("k8s.events").activity, {"namespace": "shop", "types": ["Normal", "Bogus"]})
    assert caught.value.type == "InvalidParams" and expected in caught.value.message


def test_actions_import_nothing_above_the_language_layer() -> None:
    """activities/ sits on incidentctl.dsl; the engine (workflows/), the service and the CLI sit on it."""
    upward = []
    for module in action_modules():
        for node in ast.walk(module_tree(module)):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                targets = [node.module or ""]
            else:
                continue
            upward += [f"{module}: {target}" for target in targets
                       if target.split(".")[0] in ("incidentctl", "workflows", "worker")
                       and not (target == "incidentctl.dsl" or target.startswith("incidentctl.dsl."))]
    assert upward == []


# Imported by an action when it runs, never when it is catalogued. temporalio is slow to import (all its protobufs).
HEAVY_LIBRARIES = ("temporalio", "kubernetes", "aiohttp", "boto3", "google.cloud")


def test_building_the_catalog_loads_no_client_library() -> None:
    """The compiler and `incidentctl actions list` build the catalog in a fresh process: the SDKs an action talks
    through, and Temporal's, are imported when it runs, not when it is catalogued."""
    code = ("import sys; from activities.catalog import action_catalog; catalog = action_catalog(); "
            f"print(len(catalog), *[m for m in {HEAVY_LIBRARIES!r} if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(len(PUBLISHED_ACTIONS))]
