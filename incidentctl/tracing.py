"""OpenTelemetry tracing across receiver -> workflow -> activity, off unless the standard OTEL_* variables ask
for it.

    OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT   turn tracing on (OTLP over HTTP/protobuf,
                                                                        or gRPC with OTEL_EXPORTER_OTLP_PROTOCOL=grpc)
    OTEL_TRACES_EXPORTER=otlp                                           likewise, with the exporter's default endpoint
    OTEL_TRACES_EXPORTER=none, OTEL_SDK_DISABLED=true                   keep it off
    OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_HEADERS, ...   read by the OpenTelemetry SDK

Every Temporal client made by connection.connect carries the SDK's TracingInterceptor when tracing is on, and a
worker built on such a client gets it too, so a span started by the receiver's HTTP handling (or by a CLI
command) is the parent of the workflow's and its activities' spans. The OpenTelemetry SDK and exporter are the
optional extra `incidentctl[otel]`, imported only when tracing is on.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

ENABLING = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
INSTRUMENTATION = "incidentctl"


class TracingConfigError(ValueError):
    pass


class _Unset:
    pass


_UNSET = _Unset()
# The process's tracer: unset until first asked, then a Tracer or None (off); and the provider to flush.
_tracer: Any = _UNSET
_provider: Any = None


def tracing_requested(env: Mapping[str, str]) -> bool:
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return exporter == "otlp" or any(env.get(name) for name in ENABLING)


def _span_exporter(env: Mapping[str, str]) -> Any:
    protocol = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "http/protobuf").strip().lower()
    try:
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        elif protocol == "http/protobuf":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        else:
            raise TracingConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL must be http/protobuf or grpc, not {protocol!r}")
    except ImportError:
        package = "opentelemetry-exporter-otlp-proto-grpc" if protocol == "grpc" else "incidentctl[otel]"
        raise TracingConfigError(f"tracing is on (OTEL_* variables) but its exporter is not installed: "
                                 f"pip install {package}") from None
    return OTLPSpanExporter()


def provider_from_env(service_name: str, env: Mapping[str, str] | None = None) -> Any:
    """A TracerProvider exporting over OTLP as the OTEL_* variables say, or None when they do not turn tracing
    on."""
    env = os.environ if env is None else env
    if not tracing_requested(env):
        return None
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise TracingConfigError("tracing is on (OTEL_* variables) but the OpenTelemetry SDK is not installed: "
                                 "pip install 'incidentctl[otel]'") from None
    exporter = _span_exporter(env)
    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over the process's own name.
    resource = Resource.create({} if env.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service_name})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def process_tracer() -> Any:
    """The process's tracer (from the environment on first use, named after the program), or None when off."""
    if isinstance(_tracer, _Unset):
        provider = provider_from_env(_program())
        use_tracer(provider.get_tracer(INSTRUMENTATION) if provider else None, provider)
    return _tracer


def use_tracer(tracer: Any, provider: Any = None) -> None:
    """Trace with `tracer` from now on (None: off), instead of the environment's: for tests and embedding.
    `provider`: what `flush` flushes."""
    global _tracer, _provider
    _tracer, _provider = tracer, provider


def reset() -> None:
    """Forget the tracer chosen so far: the next use reads the environment again."""
    use_tracer(_UNSET)


def flush() -> None:
    """Export the spans still buffered: processes that leave with os._exit skip the SDK's own atexit flush."""
    if _provider is not None:
        _provider.force_flush()


def _program() -> str:
    """The service name: incidentctl-worker, incidentctl-receiver, incidentctl-dev, or incidentctl (the CLI)."""
    import sys

    argv = sys.argv or ["incidentctl"]
    name = os.path.splitext(os.path.basename(argv[0]))[0]
    if name == "worker":
        return "incidentctl-worker"
    if len(argv) > 1 and argv[1] in ("receiver", "dev"):
        return f"incidentctl-{argv[1]}"
    return "incidentctl"


def client_interceptors() -> list[Any]:
    """The interceptors every Temporal client gets: the SDK's TracingInterceptor when tracing is on."""
    tracer = process_tracer()
    if tracer is None:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor(tracer)]


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def http_middleware() -> Any:
    """An aiohttp middleware that puts each request in a server span (continuing a caller's `traceparent`), so
    the Temporal calls made while answering it are its children; None when tracing is off."""
    tracer = process_tracer()
    if tracer is None:
        return None
    from opentelemetry import propagate, trace

    @web.middleware
    async def traced(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.resource
        path = route.canonical if route is not None else "unmatched"  # a template, never ids from the URL
        with tracer.start_as_current_span(f"{request.method} {path}", kind=trace.SpanKind.SERVER,
                                          context=propagate.extract(dict(request.headers)),
                                          attributes={"http.request.method": request.method, "http.route": path,
                                                      "url.path": request.path}) as span:
            response = await handler(request)
            span.set_attribute("http.response.status_code", response.status)
            if response.status >= 500:
                span.set_status(trace.Status(trace.StatusCode.ERROR))
            return response

    return traced
