"""OpenTelemetry traces: off unless the environment names a destination, and then per process.

`start_tracing(app)` turns tracing on in the process that calls it (a gunicorn worker after the
fork, `flask worker` at its start), and does nothing at all when tracing is off: no span
processor, no instrumentation, nothing wrapped. It is on when `OTEL_TRACES_EXPORTER` names an
exporter (`otlp`, `console`; `none` turns it off), or, that unset, when `OTEL_EXPORTER_OTLP_ENDPOINT`
or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set; `OTEL_SDK_DISABLED=true` turns it off. Everything
else the OpenTelemetry SDK and its instrumentations read themselves, as the specification defines
it (docs/configuration.md lists them): the sampler (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`,
`parentbased_always_on` when unset), the resource (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`),
the exporter's `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`,
`OTEL_EXPORTER_OTLP_COMPRESSION` and `OTEL_EXPORTER_OTLP_CERTIFICATE`, the batch processor's
`OTEL_BSP_MAX_QUEUE_SIZE` and `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, the propagators (`OTEL_PROPAGATORS`,
W3C Trace Context and Baggage when unset) and the attribute names (`OTEL_SEMCONV_STABILITY_OPT_IN`).

What is traced, by the maintained instrumentations: each request (the WSGI instrumentation's
server span, renamed to `METHOD /route/{template}` once Flask has matched the route: the Flask
instrumentation has no release for this version of the API), every SQL statement of every engine
(with the engine it ran on: `primary`, `reads` or `replica<n>`), every Redis command, and the
trace ids on every log record. bcrypt has a span of its own (`app.security`).
"""

from __future__ import annotations

import contextvars
import os
import re
import threading
import weakref
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from flask import Flask, has_request_context, request
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.logging import LoggingInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.sdk.metrics import Counter as MetricCounter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from sqlalchemy import Engine, event

from app.database import PRIMARY, named_engines
from app.metrics import TRACE_SPANS_DROPPED, method_label
from config import ConfigurationError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

DEFAULT_SERVICE_NAME = "users-posts"
EXPORTERS = ("otlp", "console")
OTLP_PROTOCOL = "http/protobuf"  # the one OTLP transport installed (opentelemetry-exporter-otlp-proto-http)
# Span attributes of a SQL statement's span: the engine's pool, and the server that answered it.
POOL_ATTRIBUTE = "db.client.connection.pool.name"
SERVER_ATTRIBUTE = "app.db.server"
_SQLALCHEMY_SCOPE = "opentelemetry.instrumentation.sqlalchemy"
# The processor's and the exporter's own counters (semantic conventions for the SDK's telemetry):
# a span they counted with an `error.type` never reached the collector.
_SDK_SPAN_COUNTERS = {"otel.sdk.processor.span.processed": "queue", "otel.sdk.exporter.span.exported": "export"}
_DROP_COUNT_INTERVAL_MS = 5000
SDK_INTERNAL_METRICS = "OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED"

_lock = threading.Lock()
_process: dict[str, Any] = {}  # this process's provider and meter provider, once started
_traced_engines: weakref.WeakSet[Engine] = weakref.WeakSet()
_engine_name: contextvars.ContextVar[str | None] = contextvars.ContextVar("engine_name", default=None)


def exporter_names(environ: os._Environ[str] | dict[str, str] = os.environ) -> list[str]:
    """The exporters the environment asks for: [] when tracing is off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    named = [name.strip().lower() for name in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if name.strip()]
    if named:
        return [] if "none" in named else named
    endpoints = (environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"), environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    return ["otlp"] if any(endpoint and endpoint.strip() for endpoint in endpoints) else []


def enabled() -> bool:
    return bool(exporter_names())


def check_environment() -> None:
    """Refuse, in one line, an exporter or an OTLP protocol this service cannot send with
    (`create_app` calls it, so that a mistake stops the start, not each worker after its fork)."""
    for name in exporter_names():
        if name not in EXPORTERS:
            raise ConfigurationError(f"OTEL_TRACES_EXPORTER names {name!r}; use otlp, console or none")
    for variable in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        protocol = os.environ.get(variable, "").strip()
        if protocol:
            if protocol != OTLP_PROTOCOL:
                raise ConfigurationError(f"{variable} is {protocol!r}; this service sends OTLP as {OTLP_PROTOCOL}")
            return


def _exporter(name: str, meter_provider: MeterProvider) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    # Endpoint, headers, timeout, compression: the exporter reads OTEL_EXPORTER_OTLP_* itself.
    return OTLPSpanExporter(meter_provider=meter_provider)


def _resource() -> Resource:
    """The SDK's resource (OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME), named after this
    service when neither names it (the SDK would say `unknown_service`)."""
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return resource


class _DroppedSpanCounter(MetricExporter):
    """Turns the SDK's own span counters into `app_tracing_spans_dropped`, the Prometheus
    counter every worker writes (app/metrics.py): spans the batch queue refused (full, or shut
    down) and spans the exporter could not deliver."""

    def __init__(self) -> None:
        super().__init__(preferred_temporality={MetricCounter: AggregationTemporality.DELTA})

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        for resource_metrics in metrics_data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    stage = _SDK_SPAN_COUNTERS.get(metric.name)
                    if stage is None:
                        continue
                    for point in metric.data.data_points:
                        error = (point.attributes or {}).get("error.type")
                        if error and point.value:
                            TRACE_SPANS_DROPPED.labels(stage, str(error)).inc(point.value)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        return None


class _EngineNameProcessor(SpanProcessor):
    """Names, on each SQL statement's span, the engine the statement ran on: the SQLAlchemy
    instrumentation starts that span in its `before_cursor_execute` listener, which runs after
    the one of `_watch_engine` (inserted ahead of it) has noted the engine in this context."""

    def on_start(self, span: Span, parent_context: Any = None) -> None:
        name = _engine_name.get()
        if name is not None and span.instrumentation_scope is not None \
                and span.instrumentation_scope.name == _SQLALCHEMY_SCOPE:
            span.set_attribute(POOL_ATTRIBUTE, name)
            span.set_attribute(SERVER_ATTRIBUTE, name if name.startswith("replica") else PRIMARY)

    def on_end(self, span: ReadableSpan) -> None:
        return None


def start_tracing(app: Flask, processor: SpanProcessor | None = None) -> bool:
    """Trace this process and `app`, when the environment turns tracing on (or a span processor
    is given: the tests' in-memory exporter); False, having touched nothing, when it is off.

    Call it in the process that serves or works: after gunicorn's fork (the batch processor's
    thread does not survive one), at the start of `flask worker`. Calling it again is harmless."""
    names = [] if processor is not None else exporter_names()
    if processor is None and not names:
        return False
    check_environment()
    with _lock:
        if not _process:
            _start_process()
        given = processor or _process.get("exporting") or _batch_processor(names)
        if given not in _process["processors"]:
            _process["processors"].append(given)
            _process["provider"].add_span_processor(given)
        if "tracing" not in app.extensions:
            app.extensions["tracing"] = True
            _trace_app(app)
    return True


def _batch_processor(names: list[str]) -> SpanProcessor:
    """One batch processor per exporter: spans leave from a thread of their own, and a queue
    that is full (a collector that does not answer) drops spans and counts them, never waits."""
    meter_provider = MeterProvider(metric_readers=[PeriodicExportingMetricReader(
        _DroppedSpanCounter(), export_interval_millis=_DROP_COUNT_INTERVAL_MS)])
    _process["meter_provider"] = meter_provider
    # The SDK counts what its processor and exporter drop only when its switch is on as they are
    # built: on for them unless the operator turned it off, since those counts tell that a
    # collector is failing. Unset again after, so that the tracers built later do not count every
    # span they start (nothing reports those counts, and each span would pay for them).
    unset = SDK_INTERNAL_METRICS not in os.environ
    os.environ.setdefault(SDK_INTERNAL_METRICS, "true")
    try:
        processors = [BatchSpanProcessor(_exporter(name, meter_provider), meter_provider=meter_provider)
                      for name in names]
    finally:
        if unset:
            del os.environ[SDK_INTERNAL_METRICS]
    _process["exporting"] = processors[0] if len(processors) == 1 else _Processors(processors)
    return _process["exporting"]


class _Processors(SpanProcessor):
    """Several exporters (`OTEL_TRACES_EXPORTER=otlp,console`): each span to each one's processor."""

    def __init__(self, processors: list[SpanProcessor]) -> None:
        self.processors = processors

    def on_start(self, span: Span, parent_context: Any = None) -> None:
        for each in self.processors:
            each.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        for each in self.processors:
            each.on_end(span)

    def shutdown(self) -> None:
        for each in self.processors:
            each.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all(each.force_flush(timeout_millis) for each in self.processors)


def _start_process() -> None:
    # The sampler is the SDK's choice from OTEL_TRACES_SAMPLER(_ARG); no atexit hook: the
    # process that started tracing ends it (`stop_tracing`), within its own time limit.
    provider = TracerProvider(resource=_resource(), shutdown_on_exit=False)
    provider.add_span_processor(_EngineNameProcessor())
    trace.set_tracer_provider(provider)
    _process.update(provider=provider, processors=[])
    LoggingInstrumentor().instrument(tracer_provider=provider, inject_trace_context=True,
                                     enable_log_auto_instrumentation=False)
    RedisInstrumentor().instrument(tracer_provider=provider)


def _trace_app(app: Flask) -> None:
    provider = _process["provider"]
    engines = named_engines(app)
    for name, engine in engines.items():
        _watch_engine(engine, name)
    _traced_engines.update(engines.values())
    # The instrumentation is one per process: for a second app (tests), it starts again with
    # every traced app's engines (they existed before it did: gunicorn forks after building the app).
    instrumentor = SQLAlchemyInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    # skip_dep_check: its declared range stops below SQLAlchemy 2.1, whose engine events it uses are unchanged.
    instrumentor.instrument(tracer_provider=provider, engines=list(_traced_engines), skip_dep_check=True)
    app.wsgi_app = OpenTelemetryMiddleware(  # type: ignore[method-assign]
        _quiet_when_unsampled(app.wsgi_app), request_hook=_name_by_method, response_hook=_name_by_route,
        tracer_provider=provider)


def _quiet_when_unsampled(wsgi_app: WSGIApplication) -> WSGIApplication:
    """Run a request whose server span is not sampled with the instrumentations suppressed
    (`suppress_instrumentation`, their documented switch): under every sampler the SDK offers,
    the spans of such a request's statements and Redis commands would not be sampled either
    (the parent-based ones follow the request; the trace-id ratio gives the same answer for the
    same trace), so building them is work for nothing. The request keeps its trace context: log
    lines still carry its ids, and mail it queues still carries its `traceparent`."""

    def call(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if trace.get_current_span().is_recording():
            return wsgi_app(environ, start_response)
        with suppress_instrumentation():
            return wsgi_app(environ, start_response)

    return call


def _watch_engine(engine: Engine, name: str) -> None:
    """Note the engine of each statement for `_EngineNameProcessor`, before the instrumentation's
    own listener starts the statement's span (hence `insert`)."""

    def note(*_: Any) -> None:
        _engine_name.set(name)

    def forget(*_: Any) -> None:  # returns None: a `handle_error` listener's value replaces the error
        _engine_name.set(None)

    event.listen(engine, "before_cursor_execute", note, insert=True)
    event.listen(engine, "after_cursor_execute", forget)
    event.listen(engine, "handle_error", forget)


_FLASK_VARIABLE = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


@lru_cache(maxsize=1024)
def route_template(rule: str) -> str:
    """A Flask rule as a URL template: `/api/posts/<int:post_id>` is `/api/posts/{post_id}`."""
    return _FLASK_VARIABLE.sub(r"{\1}", rule)


def _name_by_method(span: trace.Span, environ: dict[str, Any]) -> None:
    """Until a route matches, the server span is named by the method alone (the WSGI
    instrumentation would name it by the path, which clients choose); any method outside the
    standard ones as `OTHER`, as the metrics count it."""
    if span.is_recording():
        span.update_name(method_label(environ.get("REQUEST_METHOD", "")))


def _name_by_route(span: trace.Span, environ: dict[str, Any], status: str, headers: list[tuple[str, str]]) -> None:
    """The server span's name and `http.route`: the matched route's template, never the path
    (a request that matched no route keeps `_name_by_method`'s). The WSGI instrumentation calls
    this from the `start_response` it wraps, which Flask calls inside the request's context, once
    the route is known; an unsampled span returns at once."""
    if not span.is_recording() or not has_request_context():
        return
    rule = request.url_rule
    if rule is not None:
        route = route_template(rule.rule)
        span.update_name(f"{method_label(request.method)} {route}")
        span.set_attribute("http.route", route)


def stop_tracing() -> None:
    """Send what is queued, then stop (a gunicorn worker on its way out). A collector that does
    not answer holds the exit for at most the exporter's timeout per batch (`OTEL_EXPORTER_OTLP_TIMEOUT`),
    and gunicorn's `graceful_timeout` bounds the whole."""
    with _lock:
        provider = _process.get("provider")
        if provider is None:
            return
        provider.shutdown()  # the batch processor sends everything it holds, then stops
        meter_provider = _process.get("meter_provider")
        if meter_provider is not None:
            meter_provider.shutdown()  # its last count of lost spans reaches the Prometheus counter
