"""Prometheus metrics, and `GET /metrics` for the operators who hold `METRICS_TOKEN`.

Under gunicorn every worker is a process of its own: `gunicorn.conf.py` points
`PROMETHEUS_MULTIPROC_DIR` at a folder emptied at start, each worker writes its
samples there (memory-mapped files), and a scrape, whichever worker answers it,
adds up every worker's files. Without that variable (the Flask test client, the
CLI) the counts are this process's own.

`/metrics` exists only when `METRICS_TOKEN` is set, and answers only that bearer
token: unset, it is a 404 like any unknown path, so it is never public by accident.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import NamedTuple

from flask import Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    start_http_server,
)
from prometheus_client import multiprocess as _multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, event
from sqlalchemy.exc import SQLAlchemyError

from app.bearer import bearer_token

disable_created_metrics()  # no `_created` twin of every series: half the output, nothing lost
UNMATCHED = "<unmatched>"  # no route rule: the raw path would let clients invent label values
# Any token is a valid HTTP method, so a client could mint a new series per request with made-up
# ones: only the standard methods keep their name, every other one counts as OTHER.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
OTHER_METHOD = "OTHER"

REQUESTS = Counter("app_http_requests", "HTTP requests answered, by route rule, method and status.",
                   ["endpoint", "method", "status"])
LATENCY = Histogram("app_http_request_duration_seconds", "Time the app spent on a request, by route rule.",
                    ["endpoint", "method"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
RATE_LIMITED = Counter("app_rate_limit_rejections", "Requests refused with 429 by a rate limit.", ["endpoint"])
BCRYPT = Counter("app_bcrypt_operations", "bcrypt computations (hash: a new password; check: a login).",
                 ["operation"])
POOL_CHECKED_OUT = Gauge("app_db_pool_checked_out_connections", "Database connections in use, by engine.",
                         ["engine"], multiprocess_mode="livesum")
READS = Counter("app_db_reads", "GET requests, by the server that answered their reads and why it was chosen.",
                ["server", "reason"])
REPLICA_LAG = Gauge("app_db_replica_lag_seconds", "Replay lag of each replica at its last check "
                    "(-1: it did not answer).", ["replica"], multiprocess_mode="livemostrecent")
TRACE_SPANS_DROPPED = Counter("app_tracing_spans_dropped", "Spans that never reached the trace collector, by "
                              "where they were lost (queue: the batch queue was full or shut down; export: the "
                              "collector did not take them) and the SDK's error type.", ["stage", "error"])
WORKER_RESTARTS = Counter("app_gunicorn_worker_exits", "gunicorn workers that exited (killed, timed out, "
                          "max_requests reached) while the server ran; the master replaces each one.")

# Counted by `flask worker` (app/worker.py), served on its own port (WORKER_METRICS_BIND).
MAIL_SENT = Counter("app_mail_sent", "Messages the mail worker handed to the mail server.")
MAIL_RETRIED = Counter("app_mail_retried", "Sends that failed and will be tried again later.")
MAIL_FAILED = Counter("app_mail_failed", "Messages given up on: refused for good (5xx) or out of attempts.")


class OutboxState(NamedTuple):
    waiting: int
    oldest_age_seconds: float
    failed: int


class OutboxCollector(Collector):
    """The outbox as the database has it, read at each scrape: every worker and host gives the
    same figures. A database that does not answer leaves them out rather than failing the scrape."""

    def __init__(self, read: Callable[[], OutboxState]) -> None:
        self.read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            state = self.read()
        except SQLAlchemyError:
            return
        yield GaugeMetricFamily("app_mail_waiting_messages", "Messages in the outbox waiting to be sent.",
                                value=state.waiting)
        yield GaugeMetricFamily("app_mail_oldest_waiting_age_seconds",
                                "Age of the oldest message waiting to be sent (0: none waits).",
                                value=state.oldest_age_seconds)
        yield GaugeMetricFamily("app_mail_failed_messages", "Messages given up on, kept for an operator to send "
                                "again (the admin's Mail page).", value=state.failed)


class _Series(NamedTuple):
    requests: Counter
    latency: Histogram
    rate_limited: Counter | None


@lru_cache(maxsize=4096)
def _series(endpoint: str, method: str, status: int) -> _Series:
    """The time series one kind of request counts into, looked up once per worker: `labels()`
    checks and locks on every call. Its keys are bounded: route rules (or `UNMATCHED`), the
    methods of `method_label` and the statuses the app answers with, never a raw request value."""
    return _Series(REQUESTS.labels(endpoint, method, str(status)), LATENCY.labels(endpoint, method),
                   RATE_LIMITED.labels(endpoint) if status == 429 else None)


def method_label(method: str) -> str:
    """The `method` label of a request: its method when standard, else `OTHER`."""
    return method if method in KNOWN_METHODS else OTHER_METHOD


def multiprocess_mode() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def init_app(app: Flask, engines: dict[str, Engine], scraped: tuple[Collector, ...] = ()) -> None:
    """Count every request and the connections in use of each engine (by name), and serve
    /metrics when a token is set, adding what the `scraped` collectors read at each scrape
    (the outbox's state). `METRICS_ENABLED=0` leaves
    requests and pools uncounted (the benchmark's baseline for the metrics' cost)."""
    if not app.config["METRICS_ENABLED"]:
        return

    @app.after_request
    def count_request(response: Response) -> Response:
        rule = request.url_rule
        counted = _series(rule.rule if rule is not None else UNMATCHED, method_label(request.method),
                          response.status_code)
        counted.requests.inc()
        started = g.get("request_started")
        if started is not None:
            counted.latency.observe(time.perf_counter() - started)
        if counted.rate_limited is not None:
            counted.rate_limited.inc()
        return response

    for name, engine in engines.items():
        watch_pool(engine, name)
    app.extensions["scraped_collectors"] = scraped
    if app.config.get("METRICS_TOKEN"):
        app.add_url_rule("/metrics", "metrics", serve_metrics, methods=["GET"])


def serve_metrics() -> Response:
    token = bearer_token(request.headers.get("Authorization")) or ""
    expected = current_app.config["METRICS_TOKEN"]
    if not hmac.compare_digest(token.encode(), expected.encode()):
        return Response("metrics need the METRICS_TOKEN bearer token\n", 401, mimetype="text/plain",
                        headers={"WWW-Authenticate": 'Bearer realm="metrics"', "Cache-Control": "no-store"})
    return Response(exposition(), mimetype=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


def exposition() -> bytes:
    scraped = CollectorRegistry()
    for collector in current_app.extensions.get("scraped_collectors", ()):
        scraped.register(collector)
    return generate_latest(_process_registry()) + generate_latest(scraped)


def _process_registry() -> CollectorRegistry:
    if multiprocess_mode():
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def serve_worker_metrics(bind: str) -> None:
    """Serve this process's counters (the mail worker's) at `host:port`, in a thread of its own."""
    host, _, port = bind.rpartition(":")
    start_http_server(int(port), addr=host or "127.0.0.1", registry=_process_registry())


def watch_pool(engine: Engine, name: str) -> None:
    """Keep `POOL_CHECKED_OUT` for this engine: +1 when a connection is handed out, -1 back."""
    gauge = POOL_CHECKED_OUT.labels(name)
    event.listen(engine, "checkout", lambda *_: gauge.inc())
    event.listen(engine, "checkin", lambda *_: gauge.dec())
