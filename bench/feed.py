"""The benchmark's feed rows: `GET /api/feed`, first page and a page 1,000 pages deep, for
a user following 500 authors, beside the public first page; and the same first page for
a user following every other user (about 10,000 authors), the approach's worst case.

Called by bench/run.py, which owns the servers and the wrk runner; `flask seed` makes the
first seeded user follow 500 others, and `everyone_follower` adds the one who follows all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg2

PAGE = 20
DEEP_PAGES = 1_000
EVERYONE_EMAIL = "follows-everyone@bench.example.com"
_FEED_KEYS = """
    SELECT p.created_at, p.id FROM posts p
    WHERE p.author_id IN (SELECT f.followed_id FROM follows f JOIN users u ON u.id = f.followed_id
                          WHERE f.follower_id = %s AND u.is_active)
    ORDER BY p.created_at DESC, p.id DESC OFFSET %s LIMIT 2
"""


@dataclass(frozen=True)
class FeedReader:
    email: str
    following: int
    feed_posts: int
    deep_cursor: str
    deep_first_id: int
    deep_pages: int


def first_path() -> str:
    return f"/api/feed?limit={PAGE}"


def deep_path(reader: FeedReader) -> str:
    return f"/api/feed?limit={PAGE}&cursor={reader.deep_cursor}"


def busiest_follower(database_url: str) -> FeedReader:
    """The seeded user who follows the most (500), and the cursor of their feed's page
    `DEEP_PAGES` (fewer when their feed is shorter, as in quick mode), computed from the
    database and encoded by the app's `encode_cursor`."""
    from app.pagination import encode_cursor

    connection = psycopg2.connect(database_url)
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, email, following_count FROM users WHERE email <> %s "
                       "ORDER BY following_count DESC, id LIMIT 1", (EVERYONE_EMAIL,))
        user_id, email, following = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM posts WHERE author_id IN "
                       "(SELECT followed_id FROM follows WHERE follower_id = %s)", (user_id,))
        (feed_posts,) = cursor.fetchone()
        deep_pages = min(DEEP_PAGES, feed_posts // PAGE // 2)
        cursor.execute(_FEED_KEYS, (user_id, deep_pages * PAGE - 1))
        (last_created, last_id), (_, next_id) = cursor.fetchall()
    connection.close()
    return FeedReader(email, following, feed_posts, encode_cursor((last_created, last_id)), next_id,
                      deep_pages)


def everyone_follower(database_url: str) -> tuple[str, int]:
    """Add a user (with the seed's password) who follows every other user: the feed's
    worst case for reading each followed author's newest posts. Its email and follow count."""
    connection = psycopg2.connect(database_url)
    with connection, connection.cursor() as cursor:
        cursor.execute("SELECT id FROM users WHERE email = %s", (EVERYONE_EMAIL,))
        found = cursor.fetchone()  # a kept database (bench/run.py --mode 10m) has them from an earlier run
        if found is None:
            cursor.execute(
                "INSERT INTO users (email, name, password_hash) SELECT %s, 'Follows everyone', password_hash "
                "FROM users ORDER BY id LIMIT 1 RETURNING id", (EVERYONE_EMAIL,))
            found = cursor.fetchone()
        (user_id,) = found
        cursor.execute("INSERT INTO follows (follower_id, followed_id) SELECT %s, id FROM users WHERE id <> %s "
                       "ON CONFLICT DO NOTHING", (user_id, user_id))
        cursor.execute("SELECT following_count FROM users WHERE id = %s", (user_id,))
        (following,) = cursor.fetchone()
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE follows")
        cursor.execute("VACUUM ANALYZE users")
    connection.close()
    return EVERYONE_EMAIL, following


def render_rows(rows: list[tuple[Any, Any]], first: Any, reader: FeedReader, everyone: int,
                mark: Callable[[bool], str], plans: list[Any]) -> list[str]:
    """Markdown: the feed rows beside the public first page, with the targets, and their plans."""
    lines = [
        "## Feed",
        "",
        f"`GET /api/feed?limit={PAGE}` (bearer token) for the seeded user following {reader.following} authors "
        f"({reader.feed_posts:,} posts in their feed), first page and {reader.deep_pages:,} pages deep; and the first "
        f"page for a user following all {everyone:,} other users. Same wrk settings as above, limits off. "
        "One statement in two steps (app/services/posts.py, `_feed_statement`): the followed authors' posts "
        "among the newest after the cursor (up to 20,000, until a page is found), read through the `created_at` "
        "index; only when those are "
        "fewer than a page, each followed author's newest posts through the `(author_id, created_at, id)` "
        "index (`LATERAL ... LIMIT`), merged, whose cost grows with the number of authors followed.",
        "",
        "| Feed | Requests/s | p50 (ms) | p99 (ms) | p50 / first page p50 | Errors | SQL statements/request "
        "| CPU ms/request | target (p50 ≤ 3x first page, p99 < 50 ms, ≤ 2 statements) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        f"| public first page (for comparison) | {first.rps:,.0f} | {first.p50_ms:.2f} | {first.p99_ms:.2f} "
        f"| 1.00 | {first.errors} | 1 | {first.cpu_ms:.2f} | |",
    ]
    for result, count, targeted in rows:
        ratio = result.p50_ms / first.p50_ms if first.p50_ms else 0.0
        ok = ratio <= 3 and result.p99_ms < 50 and count.statements <= 2
        verdict = mark(ok) if targeted else "(no target)"
        lines.append(
            f"| {result.label} | {result.rps:,.0f} | {result.p50_ms:.2f} | {result.p99_ms:.2f} | {ratio:.2f} "
            f"| {result.errors} | {count.statements:g} | {result.cpu_ms:.2f} | {verdict} |"
        )
    lines += ["", "### Feed query plans (`EXPLAIN (ANALYZE, BUFFERS)`)", ""]
    for plan in plans:
        lines += [f"#### {plan.label}", "", "```", plan.text, "```", ""]
    return lines


def check_deep(server_url: str, token: str, reader: FeedReader) -> str:
    """Whether the deep feed page starts at the row the database says it should."""
    import requests

    items = requests.get(server_url + deep_path(reader), headers={"Authorization": f"Bearer {token}"},
                         timeout=30).json()
    if items and items[0]["id"] == reader.deep_first_id:
        return "its first item is the expected row"
    return "UNEXPECTED first item: check the cursor"
