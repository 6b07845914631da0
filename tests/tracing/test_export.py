"""Traces leave as OTLP over HTTP (protobuf), from each gunicorn worker, as the standard
environment variables say; without them nothing is instrumented at all; a collector that does
not answer costs requests nothing, and the spans it loses are counted."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from app import create_app
from app.tracing import exporter_names
from config import ConfigurationError
from tests.helpers import ROOT, free_port, start_gunicorn

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


class Receiver(ThreadingHTTPServer):
    """A collector's OTLP/HTTP endpoint: every POST to /v1/traces, decoded."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ReceiverHandler)
        self.exports: list[tuple[dict[str, str], ExportTraceServiceRequest]] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def spans(self) -> list:
        return [(resource_spans.resource, scope_spans.scope, span) for _, export in self.exports
                for resource_spans in export.resource_spans for scope_spans in resource_spans.scope_spans
                for span in scope_spans.spans]


class _ReceiverHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/v1/traces":
            headers = {key.lower(): value for key, value in self.headers.items()}
            self.server.exports.append((headers, ExportTraceServiceRequest.FromString(body)))
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200 if self.path == "/v1/traces" else 404)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def attributes(items) -> dict:
    return {item.key: next(value for value in (item.value.string_value, item.value.int_value) if value != "")
            for item in items}


def test_a_gunicorn_worker_sends_otlp_protobuf_as_the_standard_variables_say(database_url, receiver):
    # Ratio 0, parent-based: only the request whose caller sampled its trace is recorded. The
    # batch waits a minute between sends: what arrives was sent when the worker stopped.
    server = start_gunicorn(database_url, workers=1, env={
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_SERVICE_NAME": "posts-under-test",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=ci,service.namespace=tests",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0",
        "OTEL_BSP_SCHEDULE_DELAY": "60000"})
    try:
        assert requests.get(f"{server.url}/api/posts", timeout=10).status_code == 200
        sampled = requests.get(f"{server.url}/api/posts", timeout=10,
                               headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"})
        assert sampled.status_code == 200
    finally:
        server.stop()
    assert receiver.exports, server.output()[-2000:]
    assert {headers["content-type"] for headers, _ in receiver.exports} == {"application/x-protobuf"}
    spans = receiver.spans()
    assert {span.trace_id.hex() for _, _, span in spans} == {TRACE_ID}  # the unsampled request sent nothing
    resource = attributes(spans[0][0].attributes)
    assert resource["service.name"] == "posts-under-test"
    assert (resource["deployment.environment"], resource["service.namespace"]) == ("ci", "tests")
    [request_span] = [span for _, _, span in spans if span.kind == span.SPAN_KIND_SERVER]
    assert request_span.name == "GET /api/posts"
    assert request_span.parent_span_id.hex() == "00f067aa0ba902b7"
    statements = [attributes(span.attributes) for _, scope, span in spans
                  if scope.name == "opentelemetry.instrumentation.sqlalchemy" and span.parent_span_id]
    assert any("db.statement" in each and "app.db.server" in each for each in statements), statements


def test_a_collector_that_does_not_answer_fails_no_request_and_lost_spans_are_counted(database_url):
    token = "t" * 40
    server = start_gunicorn(database_url, workers=1, env={
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "OTEL_EXPORTER_OTLP_TIMEOUT": "1", "OTEL_BSP_MAX_QUEUE_SIZE": "2", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "1",
        "METRICS_TOKEN": token})
    try:
        statuses = [requests.get(f"{server.url}/api/posts", timeout=10).status_code for _ in range(20)]
        assert statuses == [200] * 20
        dropped = 0.0
        deadline = time.monotonic() + 30
        while dropped == 0 and time.monotonic() < deadline:
            time.sleep(1)
            metrics = requests.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {token}"},
                                   timeout=10).text
            dropped = sum(float(value) for value in re.findall(
                r'^app_tracing_spans_dropped_total\{[^}]*stage="queue"[^}]*\} (\S+)$', metrics, re.MULTILINE))
        assert dropped > 0, metrics
    finally:
        server.stop()


@pytest.mark.parametrize("environ", [
    {},
    {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
    {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
], ids=["nothing-set", "exporter-none", "sdk-disabled"])
def test_without_a_destination_nothing_is_instrumented(environ, tmp_path):
    # A process of its own: tracing, once on, stays on in a process (these tests' own is traced).
    script = """
import json
from opentelemetry import trace
from opentelemetry.instrumentation.logging import LoggingInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from app import create_app
from app.tracing import start_tracing
app = create_app({"APP_ENV": "testing", "SQLALCHEMY_DATABASE_URI": "sqlite:///%s"})
print(json.dumps({"started": start_tracing(app), "wrapped": isinstance(app.wsgi_app, OpenTelemetryMiddleware),
                  "sdk": isinstance(trace.get_tracer_provider(), TracerProvider),
                  "instrumented": [each().is_instrumented_by_opentelemetry for each in
                                   (SQLAlchemyInstrumentor, RedisInstrumentor, LoggingInstrumentor)]}))
""" % (tmp_path / "off.db")
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env={**env, **environ}, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {"started": False, "wrapped": False, "sdk": False,
                                                          "instrumented": [False, False, False]}


@pytest.mark.parametrize(("environ", "names"), [
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ["otlp"]),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, ["otlp"]),
    ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
    ({"OTEL_TRACES_EXPORTER": "otlp,console"}, ["otlp", "console"]),
    ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, []),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, []),
])
def test_tracing_turns_on_by_an_endpoint_or_a_named_exporter(environ, names):
    assert exporter_names(environ) == names


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("OTEL_TRACES_EXPORTER", "zipkin", "OTEL_TRACES_EXPORTER names 'zipkin'; use otlp, console or none"),
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "OTEL_EXPORTER_OTLP_PROTOCOL is 'grpc'; this service sends OTLP as "
                                            "http/protobuf"),
])
def test_an_exporter_or_protocol_this_service_cannot_send_with_stops_the_start(monkeypatch, database_url, variable,
                                                                                 value, message):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as raised:
        create_app({"APP_ENV": "testing", "SQLALCHEMY_DATABASE_URI": database_url})
    assert str(raised.value) == message
