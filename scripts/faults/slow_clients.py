"""Fault 4: slow clients (partial requests) against bare gunicorn, then behind nginx.

A sync worker reads a request itself: a client that sends its headers or body
a byte at a time holds that worker. A handful of such clients starve bare
gunicorn; behind nginx (deploy/nginx.conf.template), which buffers whole requests, the
same workers keep serving everyone else.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import requests

from scripts.faults.common import (
    ROOT,
    Failed,
    Probe,
    expect,
    free_port,
    gunicorn,
    percentile,
    run_scenario,
    run_wrk,
    scratch_dir,
    status_summary,
    table,
    throwaway_database,
    wait_until,
)

WORKERS = 2
SLOW_CLIENTS = int(os.environ.get("FAULTS_SLOW_CLIENTS", 8))
LOAD_SECONDS = int(os.environ.get("FAULTS_SECONDS", 8))


class SlowClients:
    """Sockets that send a request's start and then one byte a second: half stall in
    the headers, half in a declared body."""

    def __init__(self, port: int, count: int) -> None:
        self.port, self.count = port, count
        self.sockets: list[socket.socket] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._dribble, daemon=True)

    def __enter__(self) -> SlowClients:
        for n in range(self.count):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            if n % 2:
                sock.sendall(b"POST /api/posts HTTP/1.1\r\nHost: localhost\r\n")
            else:
                sock.sendall(b"POST /api/auth/login HTTP/1.1\r\nHost: localhost\r\n"
                             b"Content-Type: application/json\r\nContent-Length: 4096\r\n\r\n{")
            self.sockets.append(sock)
        self._thread.start()
        time.sleep(0.5)  # let the server take them in
        return self

    def _dribble(self) -> None:
        while not self._done.wait(1.0):
            for n, sock in enumerate(self.sockets):
                with contextlib.suppress(OSError):  # dropped by the server: its defence working
                    sock.sendall(b"X" if n % 2 else b" ")

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()
        for sock in self.sockets:
            sock.close()


def nginx_config(upstream_ports: int | list[int], listen_port: int, prefix: Path, *,
                 access_log: bool = False) -> Path:
    """deploy/nginx.conf.template rendered by deploy/render-nginx.sh (as operators render it) for
    loopback ports and a private prefix; with `access_log`, requests are logged in the shipped
    format to `prefix/logs/access.log`."""
    ports = [upstream_ports] if isinstance(upstream_ports, int) else upstream_ports
    env = {**os.environ, "NGINX_LISTEN": f"127.0.0.1:{listen_port}", "NGINX_SERVER_NAME": "127.0.0.1",
           "NGINX_UPSTREAMS": " ".join(f"127.0.0.1:{port}" for port in ports),
           "NGINX_ACCESS_LOG": f"{prefix}/logs/access.log" if access_log else "off",
           "NGINX_ERROR_LOG": f"{prefix}/logs/error.log", "NGINX_WORKER_PROCESSES": "1"}
    rendered = subprocess.run([str(ROOT / "deploy" / "render-nginx.sh")], env=env, capture_output=True, text=True)
    if rendered.returncode != 0:
        raise Failed(f"deploy/render-nginx.sh failed: {rendered.stderr}")
    path = prefix / "nginx.conf"
    path.write_text(rendered.stdout)
    return path


def start_nginx(upstream_ports: int | list[int], *, access_log: bool = False) -> tuple[subprocess.Popen, int, Path]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        raise Failed("nginx is not installed (`make faults` installs it: apt-get install -y nginx)")
    prefix = scratch_dir("faults-nginx-")
    for sub in ("logs", "tmp"):
        (prefix / sub).mkdir()
    prefix.chmod(0o755)
    port = free_port()
    conf = nginx_config(upstream_ports, port, prefix, access_log=access_log)
    globals_ = (f"daemon off; master_process on; pid {prefix}/nginx.pid; "
                f"user {'root' if os.geteuid() == 0 else os.environ.get('USER', 'nobody')};")
    http_temp = (f"client_body_temp_path {prefix}/tmp/body; proxy_temp_path {prefix}/tmp/proxy; "
                 f"fastcgi_temp_path {prefix}/tmp/fastcgi; uwsgi_temp_path {prefix}/tmp/uwsgi; "
                 f"scgi_temp_path {prefix}/tmp/scgi;")
    conf.write_text(conf.read_text().replace("http {", "http {\n    " + http_temp, 1))
    process = subprocess.Popen([nginx, "-p", str(prefix), "-c", str(conf), "-g", globals_],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def listening() -> bool:
        if process.poll() is not None:
            raise Failed("nginx exited: " + process.stderr.read().decode()[-2000:])
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    wait_until(listening, 10, "nginx did not start")
    return process, port, prefix


def measure(label: str, url: str, slow_port: int) -> list[object]:
    """wrk for throughput; a probe with a 2 s timeout counts the requests nobody answered
    (wrk does not report a request that never gets a byte back)."""
    with SlowClients(slow_port, SLOW_CLIENTS):
        probe = Probe(url + "/health", interval=0.2, timeout=2.0)
        probe.start()
        result = run_wrk(url, seconds=LOAD_SECONDS, connections=4, threads=2, timeout="2s",
                         paths=["/health", "/api/posts?limit=5"])
        samples = probe.stop()
    ok = sum(n for status, n in result.statuses.items() if status < 400)
    unanswered = sum(1 for sample in samples if sample.status == 0)
    answered = [sample.seconds for sample in samples if sample.status]
    latency = (f"{percentile(answered, 50) * 1000:.0f} / {percentile(answered, 99) * 1000:.0f} ms"
               if answered else "n/a")
    return [label, result.requests, ok, status_summary(result.statuses, result.socket_errors),
            f"{result.p50_ms:.1f} / {result.p99_ms:.1f} ms" if result.requests else "n/a",
            f"{len(samples) - unanswered} / {unanswered}", latency, (result, unanswered)]


def main() -> None:
    with throwaway_database("slow") as database_url:
        with gunicorn(database_url, workers=WORKERS) as server:
            port = int(server.url.rsplit(":", 1)[1])
            bare = measure("bare gunicorn", server.url, port)
            wait_until(lambda: _serves(server.url), 40, "gunicorn did not recover after the slow clients")
        with gunicorn(database_url, workers=WORKERS, PROXY_FIX_HOPS="1") as server:
            upstream = int(server.url.rsplit(":", 1)[1])
            nginx, nginx_port, prefix = start_nginx(upstream)
            try:
                proxied = measure("nginx → gunicorn", f"http://127.0.0.1:{nginx_port}", nginx_port)
                too_large = requests.post(f"http://127.0.0.1:{nginx_port}/api/posts", timeout=10,
                                          data=b"x" * (2 * 1024 * 1024),
                                          headers={"Content-Type": "application/json"})
            finally:
                nginx.terminate()
                nginx.wait(timeout=10)
                shutil.rmtree(prefix, ignore_errors=True)

    (bare_result, bare_unanswered), (proxied_result, proxied_unanswered) = bare.pop(), proxied.pop()
    table("slow-clients", "4. Slow clients: bare gunicorn vs nginx in front",
          ["setup", "wrk requests answered", "2xx", "wrk errors by status / socket", "wrk p50 / p99",
           "probe answered / timed out (2 s)", "probe p50 / p99"],
          [bare, proxied],
          [f"{SLOW_CLIENTS} slow clients each send a partial request (half stop in the headers, half in "
           "a declared 4 KiB body) and then one byte a second; meanwhile wrk (4 connections, "
           f"{LOAD_SECONDS} s, 2 s timeout) asks for /health and /api/posts. {WORKERS} sync workers.",
           "Bare, the slow clients hold every worker and the others time out; nginx buffers them "
           "(and drops them after client_header_timeout/client_body_timeout), so the workers stay free.",
           f"Behind nginx, a 2 MiB body is refused by nginx itself: {too_large.status_code} "
           f"{too_large.headers.get('Content-Type')}."])

    expect(too_large.status_code == 413 and too_large.headers["Content-Type"] == "application/problem+json",
           f"nginx answered a 2 MiB body with {too_large.status_code} {too_large.headers.get('Content-Type')}")
    expect(proxied_result.errors == 0 and proxied_unanswered == 0, "behind nginx there were errors: "
           f"{status_summary(proxied_result.statuses, proxied_result.socket_errors)}")
    expect(proxied_result.requests > 50, "behind nginx too few requests were answered")
    expect(bare_result.requests * 5 < proxied_result.requests and bare_unanswered > 0,
           "bare gunicorn was not starved by slow clients: the comparison shows nothing")


def _serves(url: str) -> bool:
    try:
        return requests.get(url + "/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


if __name__ == "__main__":
    run_scenario(main, "slow clients")
