"""The benchmark's authenticated rows (issue 15): `GET /api/users/me`, another user's
`GET /api/users/<id>` and `GET /api/posts` with a bearer token, beside the floor of `me`
(bench/floor.py: the same token check and statement with psycopg2 and the standard library).

Called by bench/run.py, which owns the servers, the wrk runner and the statement counter.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.sqlcheck import Count, Probe

ME = "/api/users/me"
PAGE = "/api/posts?limit=20"
CPU_TARGET = 1.3  # me's CPU per request, at most this many times the public GET /api/posts/<id>'s
FLOOR_TARGET = 0.5  # me's requests/s, at least this share of its floor's


def probes(other_user: int) -> list[Probe]:
    """Statement and pre-ping counts, with the run's bearer token."""
    return [
        Probe("auth:me", "GET", ME, auth=True),
        Probe("auth:user", "GET", f"/api/users/{other_user}", auth=True),
        Probe("auth:posts", "GET", PAGE, auth=True),
    ]


@dataclass
class Rows:
    me: Any
    floor: Any
    public_post: Any  # GET /api/posts/<random id>, no token: alternated with `me`, for the CPU ratio
    user: Any
    posts: Any
    floor_check: str


def _get(url: str, token: str) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


def check_floor_matches(app_url: str, floor_url: str, token: str) -> str:
    """The floor must answer `me` with the app's account, or the ratio means nothing."""
    app_body, floor_body = _get(app_url + ME, token), _get(floor_url + ME, token)
    if json.loads(app_body) == json.loads(floor_body):
        return f"the same account ({len(app_body)} bytes from the app, {len(floor_body)} from the floor)"
    return "DIFFERENT from the app's response: the ratio is not comparable"


def measure(app, floor, token: str, user_ids: tuple[int, int], post_ids: tuple[int, int], rounds: int,
            duration: int, warmup: int, connections: int, wrk: Callable[..., dict],
            summarise: Callable[..., Any]) -> Rows:
    """`me`, its floor and a public read of a random post alternated round by round, so that
    noise hits all three alike (both of `me`'s ratios compare runs of the same rounds); then
    the other rows."""
    floor_check = check_floor_matches(app.url, floor.url, token)
    trio = {
        "GET /api/users/me (bearer token)": (app, ME, "with_bearer.lua", (token,)),
        "floor: psycopg2 + stdlib, same token check and SQL": (floor, ME, "with_bearer.lua", (token,)),
        "GET /api/posts/<random id> (no token, alternated with me)":
            (app, "/api/posts/1", "random_post.lua", tuple(str(n) for n in post_ids)),
    }
    runs: dict[str, list[dict]] = {label: [] for label in trio}
    for server, path, script, args in trio.values():
        wrk(server, server.url + path, warmup, connections, script, args)
    for _ in range(rounds):
        for label, (server, path, script, args) in trio.items():
            runs[label].append(wrk(server, server.url + path, duration, connections, script, args))
    me, me_floor, public_post = (summarise(label, found) for label, found in runs.items())

    def once(label: str, path: str, script: str, args: tuple[str, ...]):
        wrk(app, app.url + path, warmup, connections, script, args)
        return summarise(label, [wrk(app, app.url + path, duration, connections, script, args)])

    user = once("GET /api/users/<random id> (bearer token)", "/api/users/1", "random_user.lua",
                (token, str(user_ids[0]), str(user_ids[1])))
    posts = once("GET /api/posts?limit=20 (bearer token)", PAGE, "with_bearer.lua", (token,))
    return Rows(me, me_floor, public_post, user, posts, floor_check)


def render(rows: Rows, counts: dict[str, Count], mark: Callable[[bool], str]) -> list[str]:
    public_post = rows.public_post
    share = rows.me.rps / rows.floor.rps if rows.floor.rps else 0.0
    cpu_ratio = rows.me.cpu_ms / public_post.cpu_ms if public_post.cpu_ms else 0.0
    lines = [
        "## Authenticated requests",
        "",
        "The bearer token of a seeded user; resolving it (session alive, account active) is one statement on "
        "the read pool's autocommit connection (no pre-ping, no BEGIN/ROLLBACK). For `GET /api/users/<id>` "
        "the same statement also reads the other user and whether the caller follows them. `me`, its "
        "floor and a public `GET /api/posts/<random id>` are alternated round by round, so both ratios below "
        "compare runs of the same rounds.",
        "",
        f"- **`me` / its floor: {share:.2f}** ({rows.me.rps:.0f} vs {rows.floor.rps:.0f} req/s); "
        f"target ≥ {FLOOR_TARGET}: {mark(share >= FLOOR_TARGET)}.",
        f"- **`me` CPU per request / public `GET /api/posts/<id>`'s: {cpu_ratio:.2f}** ({rows.me.cpu_ms:.2f} vs "
        f"{public_post.cpu_ms:.2f} ms); target ≤ {CPU_TARGET}: {mark(cpu_ratio <= CPU_TARGET)}.",
        f"- Floor check: {rows.floor_check}.",
        "",
        "| Endpoint | Requests/s | p50 (ms) | p99 (ms) | Errors | SQL statements/request | pre-pings/request "
        "| CPU ms/request |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result, key in ((rows.me, "auth:me"), (rows.user, "auth:user"), (rows.posts, "auth:posts"),
                        (rows.floor, None), (public_post, "post")):
        count = counts.get(key) if key else None
        statements, pings = (f"{count.statements:g}", f"{count.pings:g}") if count else ("1", "0")
        lines.append(f"| {result.label} | {result.rps:,.0f} | {result.p50_ms:.2f} | {result.p99_ms:.2f} | "
                     f"{result.errors} | {statements} | {pings} | {result.cpu_ms:.2f} |")
    return [*lines, ""]
