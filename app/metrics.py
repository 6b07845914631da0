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
)
from prometheus_client import multiprocess as _multiprocess
from sqlalchemy import Engine, event

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


def init_app(app: Flask, engines: dict[str, Engine]) -> None:
    """Count every request and the connections in use of each engine (by name), and serve
    /metrics when a token is set. `METRICS_ENABLED=0` leaves
    requests and pools uncounted (the benchmark's baseline for the metrics' cost)."""
    if not app.config.get("METRICS_ENABLED", True):
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
    if multiprocess_mode():
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def watch_pool(engine: Engine, name: str) -> None:
    """Keep `POOL_CHECKED_OUT` for this engine: +1 when a connection is handed out, -1 back."""
    gauge = POOL_CHECKED_OUT.labels(name)
    event.listen(engine, "checkout", lambda *_: gauge.inc())
    event.listen(engine, "checkin", lambda *_: gauge.dec())
