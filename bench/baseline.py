"""The benchmark against an earlier revision (`--baseline REV`): issue 27's speed rule.

The code of REV (unpacked by `conditional.baseline_tree`) is served beside today's, on the
same seeded database, which today's migrations made: the old code runs on the newer schema,
which holds while migrations only add columns and tables. Each row is one request shape run
against both servers, alternated round by round (before, now, then now, before, ...) so that
the machine's drift hits both alike; each side reports its median round, as the first page
and the floor do. The first page itself comes from bench/run.py's alternated first-page runs,
where the floor is measured in the same rounds.

Before a row is measured, one request goes to each server: a status other than the row's
(a 500 from the old code on the new schema, say) marks the row and skips its runs.

Called by bench/run.py, which owns the servers, the wrk runner and the tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

TARGET = 0.85  # today's requests/s, at least this share of the revision's, on every row
FLOOR_TARGET = 0.45  # today's first page, at least this share of its floor's requests/s


@dataclass(frozen=True)
class Request:
    """One row's request as one server gets it (tokens and ETags are each server's own)."""

    path: str  # what wrk is pointed at
    script: str | None = None  # bench/lua/ script, and its arguments
    args: tuple[str, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)  # what the script sends, for the check
    status: int = 200  # what every response must be
    check_path: str | None = None  # for the check, when the script draws the path (random ids)


@dataclass
class Row:
    label: str
    before: Any | None  # run.Result; None when the row was not run
    now: Any | None
    check: str  # what the requests around the runs showed

    @property
    def ratio(self) -> float | None:
        if self.before is None or self.now is None or not self.before.rps:
            return None
        return self.now.rps / self.before.rps

    @property
    def ok(self) -> bool:
        ratio = self.ratio
        return ratio is not None and ratio >= TARGET and self.before.errors == 0 and self.now.errors == 0


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def requests_for(deep_path: str, deep_pages: int, post_ids: tuple[int, int], search_path: str, feed_path: str,
                 me_token: str, feed_token: str, list_etag: str) -> dict[str, Request]:
    """The rows after the first page, as one server gets them: `me_token`, `feed_token` and
    `list_etag` must come from that server (old code issues and tags in its own way)."""
    low, high = post_ids
    return {
        f"GET /api/posts?limit=20&cursor=… ({deep_pages:,} pages deep)": Request(deep_path),
        "GET /api/posts/<random id>": Request("/api/posts/1", "random_post.lua", (str(low), str(high)),
                                              check_path=f"/api/posts/{(low + high) // 2}"),
        "GET /api/users/me (bearer token)": Request("/api/users/me", "with_bearer.lua", (me_token,),
                                                    bearer(me_token)),
        "GET /api/posts?limit=20 + If-None-Match: 304": Request(
            "/api/posts?limit=20", "headers.lua", ("If-None-Match", list_etag), {"If-None-Match": list_etag},
            status=304),
        f"GET {search_path} (search)": Request(search_path),
        "GET /api/feed?limit=20 (first page, bearer token)": Request(feed_path, "with_bearer.lua", (feed_token,),
                                                                      bearer(feed_token)),
    }


def probe(url: str, request: Request) -> tuple[int, str]:
    """Status and body (the server's own address taken out) of one request of the row."""
    response = requests.get(url + (request.check_path or request.path), headers=request.headers, timeout=30)
    return response.status_code, response.text.replace(url, "")


def check(before_url: str, before: Request, now_url: str, now: Request) -> tuple[bool, str]:
    """Whether both servers answer the row as it expects, and what they answered."""
    (before_status, before_body), (now_status, now_body) = probe(before_url, before), probe(now_url, now)
    wrong = [f"{side} answered {status}, not {request.status}"
             for side, status, request in (("before", before_status, before), ("now", now_status, now))
             if status != request.status]
    if wrong:
        return False, "; ".join(wrong)
    if now.status == 304:
        return True, "304 from both"
    if before_body == now_body:
        return True, f"{now.status} from both, same body"
    return True, f"{now.status} from both, bodies differ ({len(before_body)} vs {len(now_body)} characters)"


def measure(before_server: Any, now_server: Any, specs: dict[str, tuple[Request, Request]], revision: str,
            rounds: int, duration: int, warmup: int, connections: int, wrk: Callable[..., dict],
            summarise: Callable[..., Any]) -> list[Row]:
    """Each row against both servers, alternated: a warm-up of each, then `rounds` rounds whose
    order flips every round; the check is repeated after the runs (a 304 must still be one)."""
    rows = []
    for label, (before, now) in specs.items():
        fine, seen = check(before_server.url, before, now_server.url, now)
        if not fine:
            rows.append(Row(label, None, None, f"not measured: {seen}"))
            continue
        sides = [(before_server, before), (now_server, now)]
        for server, request in sides:
            wrk(server, server.url + request.path, warmup, connections, request.script, request.args)
        runs: list[list[dict]] = [[], []]
        for round_ in range(rounds):
            order = (0, 1) if round_ % 2 == 0 else (1, 0)
            for side in order:
                server, request = sides[side]
                runs[side].append(wrk(server, server.url + request.path, duration, connections, request.script,
                                      request.args))
        still_fine, seen_after = check(before_server.url, before, now_server.url, now)
        rows.append(Row(label, summarise(f"{label} at {revision}", runs[0]), summarise(f"{label} now", runs[1]),
                        seen if still_fine else f"{seen}; after the runs: {seen_after}"))
    return rows


def render(rows: list[Row], revision: str, first_now: Any, floor: Any, baseline_errors: int,
           mark: Callable[[bool], str]) -> list[str]:
    """Markdown: the before/now table, the first page against its floor, and the verdicts."""
    share = first_now.rps / floor.rps if floor.rps else 0.0
    lines = [
        f"## Against `{revision}`",
        "",
        f"The code of `{revision}` (`--baseline`) served beside today's under the same gunicorn settings, on the "
        "same seeded data (a copy, migrated down to that revision's schema, for the old code). "
        "Each row alternates the two servers round by round "
        "and shows each side's median round; the first page is alternated with the floor and the other "
        "first-page runs above. Tokens and ETags are each server's own. CPU counts the gunicorn workers and "
        "their PostgreSQL backends, the noise-proof figure on a shared machine.",
        "",
        f"| Row | before (`{revision}`) req/s | now req/s | now/before | target | ok? | CPU ms/request before → now "
        "| check |",
        "| --- | ---: | ---: | ---: | --- | --- | ---: | --- |",
    ]
    for row in rows:
        if row.before is None or row.now is None:
            lines.append(f"| {row.label} | n/a | n/a | n/a | ≥ {TARGET} | NOT measured | n/a | {row.check} |")
            continue
        errors = row.before.errors + row.now.errors
        check = row.check + (f"; wrk errors: {row.before.errors} before, {row.now.errors} now" if errors else "")
        lines.append(f"| {row.label} | {row.before.rps:,.0f} | {row.now.rps:,.0f} | {row.ratio:.2f} | ≥ {TARGET} "
                     f"| {mark(row.ok)} | {row.before.cpu_ms:.2f} → {row.now.cpu_ms:.2f} | {check} |")
    failed = [row.label for row in rows if not row.ok]
    lines += [
        "",
        f"- **Every row keeps ≥ {TARGET} of its throughput at `{revision}`: {mark(not failed)}**"
        + (f" (not: {'; '.join(failed)})." if failed else "."),
        f"- **First page / floor: {share:.2f}** ({first_now.rps:,.0f} vs {floor.rps:,.0f} req/s, alternated); "
        f"target ≥ {FLOOR_TARGET}: {mark(share >= FLOOR_TARGET)}.",
        f"- Tracebacks and worker timeouts in the `{revision}` server's log: {baseline_errors}.",
        "",
    ]
    return lines

