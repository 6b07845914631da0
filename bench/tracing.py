"""The cost of traces: the first page with tracing off, on at `parentbased_traceidratio` 0.01
(the rate a busy service would run), and always on, alternated round by round in one run, each
exporting OTLP/HTTP to a sink started here (so the spans really leave the workers).

    python bench/tracing.py --database app_bench_<name>            # seeds the quick dataset first
    python bench/tracing.py --database app_bench_<name> --reuse    # on a database seeded already

It writes its section of bench/results.md (replacing the previous one; `make bench` keeps it).

Target (issue 29): at ratio 0.01, at least 0.9 of the throughput with tracing off.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402

from bench.run import (  # noqa: E402
    BENCH,
    OUT,
    PAGE,
    QUICK,
    TRACING_SECTION,
    alternated,
    app_environment,
    bench_database_url,
    prepare_database,
    start_gunicorn,
    stop,
    with_tracing_section,
)


class Sink(ThreadingHTTPServer):
    """An OTLP/HTTP endpoint that counts the spans it is sent and keeps nothing."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SinkHandler)
        self.spans = self.exports = 0
        self.lock = threading.Lock()
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class _SinkHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        export = ExportTraceServiceRequest.FromString(self.rfile.read(int(self.headers["Content-Length"])))
        count = sum(len(scope.spans) for resource in export.resource_spans for scope in resource.scope_spans)
        with self.server.lock:
            self.server.exports += 1
            self.server.spans += count
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE", "app_bench"))
    parser.add_argument("--admin-url", default=os.environ.get("BENCH_ADMIN_URL",
                                                              "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--reuse", action="store_true", help="the database is seeded already")
    options = parser.parse_args()
    mode = replace(QUICK, rounds=options.rounds, duration=options.duration)
    database_url = bench_database_url(options.admin_url, options.database)
    env = app_environment(database_url)
    if not options.reuse:
        prepare_database(options.admin_url, options.database, database_url, env, mode)
    sink = Sink()
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    traced = {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": sink.url, "OTEL_SERVICE_NAME": "users-posts-bench"}
    settings = {
        "tracing off": env,
        "tracing on, parentbased_traceidratio 0.01": {**traced, "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                                                      "OTEL_TRACES_SAMPLER_ARG": "0.01"},
        "tracing on, always on": {**traced, "OTEL_TRACES_SAMPLER": "parentbased_always_on"},
    }
    load_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    servers = {label: start_gunicorn(f"tracing-{n}", "wsgi:app", each, "/health")
               for n, (label, each) in enumerate(settings.items())}
    try:
        results = alternated({label: (server, f"/api/posts?limit={PAGE}") for label, server in servers.items()},
                             mode, options.connections)
    finally:
        for server in servers.values():
            stop(server)  # a graceful stop: each worker sends what it still holds
    load_end = " ".join(f"{x:.2f}" for x in os.getloadavg())
    text = render(results, sink, mode, options.connections, load_start, load_end)
    sink.shutdown()
    (OUT / "tracing.md").write_text(text)
    results_md = BENCH / "results.md"
    results_md.write_text(with_tracing_section(results_md.read_text(), text))
    print(text, flush=True)


def render(results: dict, sink: Sink, mode, connections: int, load_start: str, load_end: str) -> str:
    off = results["tracing off"]
    ratio = results["tracing on, parentbased_traceidratio 0.01"]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    share, cpu_share = ratio.rps / off.rps, off.cpu_ms / ratio.cpu_ms
    lines = [
        TRACING_SECTION, "",
        f"`python bench/tracing.py` (quick dataset: 10,000 users, 100,000 posts), run of "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC on commit {commit}: three gunicorn servers as `make bench` "
        "starts them, tracing off, on at `parentbased_traceidratio` 0.01, and always on, each exporting "
        "OTLP/HTTP to a sink the script runs (so the spans really leave the workers); the first page, "
        f"`GET /api/posts?limit={PAGE}`, {connections} connections, {mode.rounds} rounds of {mode.duration} s "
        "alternated round by round, median round. CPU per request counts the workers and their PostgreSQL "
        "backends: the steadier figure on a busy machine.",
        "",
        f"Load average (1, 5, 15 min) at the start: {load_start}; at the end: {load_end} ({os.cpu_count()} "
        "cores; the machine may be shared with other work, which the alternation spreads over every setting "
        "alike).",
        "",
        "| setting | req/s | / off | p50 ms | p99 ms | CPU ms/request | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, result in results.items():
        lines.append(f"| {label} | {result.rps:,.0f} | {result.rps / off.rps:.2f} | {result.p50_ms:.2f} | "
                     f"{result.p99_ms:.2f} | {result.cpu_ms:.2f} | {result.errors} |")
    lines += [
        "",
        f"- **Tracing at ratio 0.01 / off: {share:.2f}** of the throughput (by CPU per request: {cpu_share:.2f}); "
        f"target >= 0.9: {'met' if share >= 0.9 else 'NOT met'}.",
        f"- The sink received {sink.spans:,} spans in {sink.exports:,} OTLP/HTTP requests.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
