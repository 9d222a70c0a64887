"""OpenTelemetry tracing: one trace from the receiver's alert POST through the incident workflow to its
activities, collected by the SDK's in-memory span exporter; and tracing stays off unless OTEL_* asks for it."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from incidentctl import tracing
from incidentctl.connection import ConnectionConfigError, connect
from incidentctl.devserver import DevServer
from incidentctl.intake.auth import ReceiverAuth
from incidentctl.intake.runner import start_receiver
from incidentctl.localhttp import serve
from incidentctl.workers import build_worker
from tests.conftest import eventually
from tests.worker_process import WorkerProcess

TOKEN = "trace-token"
TRACED_RUNBOOK = """
name: traced
version: 1
severity: SEV4
trigger: {alertname: TracedAlert}
steps:
  - id: look
    action: util.echo
    params: {message: "${{ alert.labels.host }}"}
"""
# A caller's W3C trace context: the receiver's span continues it.
CALLER_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{CALLER_TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_tracer(provider.get_tracer("test"), provider)
    try:
        yield exporter
    finally:
        tracing.reset()
        provider.shutdown()


def named(finished: tuple[ReadableSpan, ...], prefix: str) -> list[ReadableSpan]:
    return [span for span in finished if span.name.startswith(prefix)]


async def test_one_trace_from_the_alert_post_through_the_workflow_to_the_activity(
        dev_server: DevServer, spans: InMemorySpanExporter, tmp_path: Path, unique: str) -> None:
    (tmp_path / "traced.yaml").write_text(TRACED_RUNBOOK)
    client = await connect(dev_server.address)  # as every incidentctl process connects: traced when tracing is on
    receiver = await start_receiver(client, port=0, auth=ReceiverAuth(token=TOKEN), task_queue=unique,
                                    runbook_paths=[tmp_path])
    try:
        async with build_worker(client, task_queue=unique):
            alert = {"labels": {"alertname": "TracedAlert", "host": f"h-{unique}"}}
            async with aiohttp.ClientSession() as session, session.post(
                    f"{receiver.url}/alerts", json=alert,
                    headers={"Authorization": f"Bearer {TOKEN}", "traceparent": TRACEPARENT}) as response:
                assert response.status == 200, await response.text()
            finished = await eventually(lambda: _finished(spans), lambda found: named(found, "RunActivity:util.echo"),
                                        timeout=60)
    finally:
        await receiver.stop()

    [post] = named(finished, "POST /alerts")
    assert format(post.context.trace_id, "032x") == CALLER_TRACE_ID, "the caller's trace continues"
    assert post.attributes["http.response.status_code"] == 200
    trace_id = post.context.trace_id
    [start] = named(finished, "StartUpdateWithStartWorkflow:IncidentWorkflow")
    assert start.parent is not None and start.parent.span_id == post.context.span_id, "the start is in the POST"
    in_workflow = named(finished, "RunWorkflow:IncidentWorkflow") + named(finished, "StartActivity:util.echo")
    assert in_workflow and all(span.context.trace_id == trace_id for span in in_workflow)
    [activity] = named(finished, "RunActivity:util.echo")
    assert activity.context.trace_id == trace_id, "the activity is in the alert's trace"
    parents = {span.context.span_id: span for span in finished}
    chain = _ancestors(activity, parents)
    assert [span.name for span in chain][-1] == "POST /alerts", [span.name for span in chain]
    assert any(span.name == "StartActivity:util.echo" for span in chain)


async def _finished(exporter: InMemorySpanExporter) -> tuple[ReadableSpan, ...]:
    return exporter.get_finished_spans()


def _ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[ReadableSpan]:
    chain = [span]
    while chain[-1].parent is not None and chain[-1].parent.span_id in by_id:
        chain.append(by_id[chain[-1].parent.span_id])
    return chain


@pytest.mark.parametrize(("env", "on"), [
    ({}, False),
    ({"OTEL_SERVICE_NAME": "x"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
    ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}, False),
])
def test_tracing_is_on_only_when_the_otel_variables_ask(env: dict[str, str], on: bool) -> None:
    assert tracing.tracing_requested(env) is on
    assert (tracing.provider_from_env("incidentctl-test", env) is not None) is on


def test_the_environment_names_the_service_and_the_exporter() -> None:
    provider: Any = tracing.provider_from_env("incidentctl-worker", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h:4318"})
    assert provider.resource.attributes["service.name"] == "incidentctl-worker"
    provider.shutdown()
    with pytest.raises(tracing.TracingConfigError, match="http/protobuf or grpc"):
        tracing.provider_from_env("x", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h:4318",
                                        "OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"})


async def test_a_bad_tracing_setting_is_a_connection_error_with_a_sentence(
        dev_server: DevServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon")
    tracing.reset()
    try:
        with pytest.raises(ConnectionConfigError, match="OTEL_EXPORTER_OTLP_PROTOCOL"):
            await connect(dev_server.address)
    finally:
        tracing.reset()


# ---------------------------------------------------------------- over the wire: OTLP from real processes

class OtlpCollector:
    """A local OTLP/HTTP trace endpoint: keeps every span the processes export."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str, bytes]] = []  # (service name, span name, trace id)

    async def receive(self, request: web.Request) -> web.Response:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        export = ExportTraceServiceRequest.FromString(await request.read())
        for resource_spans in export.resource_spans:
            service = next((a.value.string_value for a in resource_spans.resource.attributes
                            if a.key == "service.name"), "")
            for scope in resource_spans.scope_spans:
                self.spans += [(service, span.name, span.trace_id) for span in scope.spans]
        return web.Response(status=200, content_type="application/x-protobuf")


async def test_the_cli_and_a_worker_process_export_one_trace_over_otlp(
        dev_server: DevServer, tmp_path: Path, unique: str) -> None:
    collector = OtlpCollector()
    app = web.Application()
    app.router.add_post("/v1/traces", collector.receive)
    runner, url = await serve(app)
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    worker = WorkerProcess(tmp_path / "worker.log", "--address", dev_server.address, "--task-queue", unique,
                           env=otel)
    try:
        runbook = tmp_path / "traced.yaml"
        runbook.write_text(TRACED_RUNBOOK.replace("${{ alert.labels.host }}", "from the CLI"))
        cli = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "incidentctl"), "incident", "start", "--runbook", str(runbook),
            "--key", unique, "--wait", env={**os.environ, **otel, "TEMPORAL_ADDRESS": dev_server.address,
                                            "INCIDENTCTL_TASK_QUEUE": unique},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        output, _ = await asyncio.wait_for(cli.communicate(), 120)
        assert cli.returncode == 0, output.decode()
        activity = await eventually(
            lambda: asyncio.sleep(0, [s for s in collector.spans if s[1] == "RunActivity:util.echo"]),
            lambda found: bool(found), timeout=60)
    finally:
        worker.stop()
        await runner.cleanup()
    [(service, _, trace_id)] = activity
    assert service == "incidentctl-worker"
    started = [s for s in collector.spans if s[1] == "StartWorkflow:IncidentWorkflow"]
    assert started and started[0][0] == "incidentctl", "the CLI exported its span before it exited"
    assert started[0][2] == trace_id, "the CLI's start and the worker's activity are one trace"
