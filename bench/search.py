"""The benchmark's search rows: searches of every selectivity, a search flood beside
an ordinary reader (limits on, as in production), and the admin dashboard.

Called by bench/run.py, which owns the servers and the wrk runner; the seed
(`flask seed`) puts words of known rarity in the posts for these rows.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg2
import requests

LUA = Path(__file__).resolve().parent / "lua"

# (what the row shows, q): the seed makes each word as common as the row says.
SEARCHES = [
    ("a word in most posts", "flask"),
    ("a word in about 1% of posts", "kestrel"),
    ("a word in 10 posts", "quokka"),
    ("a word in no post", "zzzz"),
    ("two words", "flask postgres"),
    ("a prefix (of a word in most posts)", "pyth"),
    ("a prefix (of a word in 1% of posts)", "kestr"),
    ("a phrase and an exclusion", '"flask python" -kestrel'),
]


def search_path(q: str, limit: int = 20) -> str:
    return f"/api/posts?limit={limit}&q={quote(q)}"


@dataclass
class FloodResult:
    reader_p50_ms: float
    reader_p99_ms: float
    reader_requests: int
    reader_errors: int
    flood_requests: int
    flood_limited: int  # answered 429 (or another non-2xx)
    duration: int


def flood_with_reader(server_url: str, out: Path, duration: int, flood_connections: int = 8) -> FloodResult:
    """`flood_connections` connections search as fast as they can, spread over eight client
    addresses (X-Forwarded-For through ProxyFix); meanwhile one ordinary client
    reads the first page four times a second. The reader's latency is the figure. The
    server is warmed first (`warm_up`), from other addresses."""
    report = (LUA / "report.lua").read_text()
    flood_script = out / "wrk-search-flood.lua"
    flood_script.write_text((LUA / "search_flood.lua").read_text() + "\n" + report)
    reader_script = out / "wrk-paced-reader.lua"
    reader_script.write_text((LUA / "paced_reader.lua").read_text() + "\n" + report)
    warm_up(server_url, out, flood_script, flood_connections)
    flood = subprocess.Popen(
        ["wrk", "-t1", f"-c{flood_connections}", f"-d{duration + 2}s", "--timeout=10s",
         "-s", str(flood_script), server_url + "/api/posts"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    reader = subprocess.run(
        ["wrk", "-t1", "-c1", f"-d{duration}s", "--timeout=10s", "-s", str(reader_script),
         server_url + "/api/posts?limit=20"],
        capture_output=True, text=True, timeout=duration + 60,
    )
    flood_out, _ = flood.communicate(timeout=duration + 60)
    reader_data, flood_data = _summary(reader.stdout), _summary(flood_out)
    return FloodResult(
        reader_data["p50_us"] / 1000,
        reader_data["p99_us"] / 1000,
        reader_data["requests"],
        reader_data["errors_status"] + reader_data["errors_socket"],
        flood_data["requests"],
        flood_data["errors_status"],
        duration,
    )


WARM_UP_ADDRESSES = "192.0.2."  # documentation range, neither the flood's nor the reader's


def warm_up(server_url: str, out: Path, flood_script: Path, connections: int) -> None:
    """A second of the flood's searches and one of first pages from addresses of their own, so
    that every worker has its connections open and its statements compiled, as in every other
    row: otherwise the reader's first requests wait behind cold workers (tens of ms), and with
    ~77 requests its p99 is its slowest. The flood's and the reader's budgets stay whole."""
    headers_script = out / "wrk-warm-up-headers.lua"
    headers_script.write_text((LUA / "headers.lua").read_text())
    for script, path, args in [
        (flood_script, "/api/posts", [WARM_UP_ADDRESSES]),
        (headers_script, "/api/posts?limit=20", ["X-Forwarded-For", WARM_UP_ADDRESSES + "100"]),
    ]:
        subprocess.run(["wrk", "-t1", f"-c{connections}", "-d1s", "--timeout=10s", "-s", str(script),
                        server_url + path, "--", *args], capture_output=True, text=True, timeout=60, check=True)


def _summary(output: str) -> dict[str, Any]:
    for line in output.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line.removeprefix("BENCH_JSON "))
    raise RuntimeError(f"wrk gave no summary: {output}")


def admin_cookie(server_url: str, database_url: str) -> str:
    """Make the first seeded user an admin (the benchmark owns this database) and sign
    in through the login form, as a browser does; the session cookie for wrk."""
    connection = psycopg2.connect(database_url)
    with connection, connection.cursor() as cursor:
        cursor.execute("UPDATE users SET role = 'admin' WHERE id = (SELECT min(id) FROM users) RETURNING email")
        (email,) = cursor.fetchone()
    connection.close()
    # Production cookies are `Secure`, which a client keeps to HTTPS; carried by hand over loopback.
    page = requests.get(server_url + "/admin/login", timeout=30)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', page.text)
    if token is None:
        raise RuntimeError("no CSRF token on the admin login page")
    signed_in = requests.post(
        server_url + "/admin/login", timeout=30, allow_redirects=False,
        data={"email": email, "password": "Password123", "csrf_token": token.group(1)},
        headers={"Cookie": _cookie_header(page)},
    )
    if signed_in.status_code != 302:
        raise RuntimeError(f"admin sign-in failed: {signed_in.status_code}")
    return _cookie_header(signed_in)


def _cookie_header(response: requests.Response) -> str:
    return "; ".join(f"{name}={value}" for name, value in response.cookies.items())


def limited_environment(env: dict[str, str], redis_url: str) -> dict[str, str]:
    """The production limits, counted in Redis under a key prefix of this run's own."""
    return {
        **env,
        "RATELIMIT_ENABLED": "1",
        "REDIS_URL": redis_url,
        "RATELIMIT_KEY_PREFIX": f"bench-{secrets.token_hex(4)}",
        "PROXY_FIX_HOPS": "1",
    }


def render_rows(rows: list[tuple[Any, Any]], first: Any, mark: Callable[[bool], str]) -> list[str]:
    """Markdown rows: each search beside the first page, with the targets."""
    lines = [
        "| Search | Requests/s | p50 (ms) | p99 (ms) | p50 / first page p50 | Errors | SQL statements/request "
        "| CPU ms/request | target (p50 ≤ 3x first page, p99 < 50 ms) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        f"| first page, no search (for comparison) | {first.rps:,.0f} | {first.p50_ms:.2f} | {first.p99_ms:.2f} "
        f"| 1.00 | {first.errors} | 1 | {first.cpu_ms:.2f} | |",
    ]
    for result, count in rows:
        ratio = result.p50_ms / first.p50_ms if first.p50_ms else 0.0
        ok = ratio <= 3 and result.p99_ms < 50
        lines.append(
            f"| {result.label} | {result.rps:,.0f} | {result.p50_ms:.2f} | {result.p99_ms:.2f} | {ratio:.2f} "
            f"| {result.errors} | {count.statements:g} | {result.cpu_ms:.2f} | {mark(ok)} |"
        )
    return lines
