"""Traces, seen by an in-memory exporter: the app of each test is traced as a gunicorn worker
traces it (`app.tracing.start_tracing`), with every finished span kept for the test to read.

Tracing is per process and stays on once started: this layer runs last (pytest's order of the
folders), and the app of every other layer is made untraced (nothing calls `start_tracing` there).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from werkzeug.test import TestResponse

from app.tracing import start_tracing


@pytest.fixture(scope="session")
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture(scope="session")
def processor(exporter: InMemorySpanExporter) -> SimpleSpanProcessor:
    return SimpleSpanProcessor(exporter)


@pytest.fixture
def traced(make_app, redis_keys, processor, exporter) -> Iterator[Flask]:
    """An app with rate limits and login throttles in a real Redis (its own keys), traced."""
    app = make_app(RATELIMIT_ENABLED=True, REDIS_URL=redis_keys.url, RATELIMIT_STORAGE_URI=redis_keys.url,
                   RATELIMIT_KEY_PREFIX=redis_keys.prefix)
    assert start_tracing(app, processor)
    exporter.clear()
    yield app
    exporter.clear()


def server_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.kind == SpanKind.SERVER]


def children_of(exporter: InMemorySpanExporter, parent: ReadableSpan) -> list[ReadableSpan]:
    """Every span below `parent`, at any depth."""
    spans = exporter.get_finished_spans()
    below, ids = [], {parent.context.span_id}
    for _ in range(5):
        for span in spans:
            if span.parent is not None and span.parent.span_id in ids and span not in below:
                below.append(span)
                ids.add(span.context.span_id)
    return below


def call(app: Flask, method: str, url: str, **kwargs) -> TestResponse:
    """A request through the test client, its response read and closed, as a server closes it:
    the server span ends when the body has been sent."""
    response = app.test_client().open(url, method=method, **kwargs)
    response.get_data()
    response.close()
    return response
