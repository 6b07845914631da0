"""`EXPLAIN (ANALYZE, BUFFERS)` of every statement the benchmark's read rows run, on a kept
database: the first page, a deep page, each search row, the feed (first page and 1,000 pages
deep), the admin dashboard, the admin post search and the admin users lists. Plans are what
growth shows first; they need no quiet machine (buffers and row counts do not move with the load).

    python bench/plans.py --database app_bench_10m           # every row, markdown on stdout
    python bench/plans.py --database app_bench_10m --only q=  # rows whose label contains "q="

The statements are captured from the app itself (Flask test client, production config, the
engines' `before_cursor_execute` event), then explained on the main engine's connection, which
runs with the same per-connection settings as the request's (app/database.py `REQUEST_SETTINGS`).
Nothing here writes but the admin's role and its sign-in (as `make bench` does).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

import psycopg2
from sqlalchemy import event

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import create_app, database  # noqa: E402
from bench import feed, run, search  # noqa: E402
from bench.sqlcheck import explain  # noqa: E402

# The admin's user lists: every user, the two partial indexes' filters, a search of names and emails.
ADMIN_USER_LISTS = [("", ""), (", inactive", "?active=0"), (", admins", "?role=admin"), (", q=user4242", "?q=user4242")]
HTTPS = "https://localhost"  # production cookies are `Secure`: the test client sends them over https only


def _admin_email(database_url: str) -> str:
    connection = psycopg2.connect(database_url)
    with connection, connection.cursor() as cursor:
        cursor.execute("UPDATE users SET role = 'admin' WHERE id = (SELECT min(id) FROM users) RETURNING email")
        (email,) = cursor.fetchone()
    connection.close()
    return email


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", required=True)
    parser.add_argument("--admin-url",
                        default=os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--only", help="only the rows whose label contains this text")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for the EXPLAIN's transaction (SET LOCAL), e.g. the server's default "
                             "max_parallel_workers_per_gather=2 to see a plan as it was before REQUEST_SETTINGS")
    options = parser.parse_args()
    database_url = f"{options.admin_url.rsplit('/', 1)[0]}/{options.database}"
    os.environ.update(run.app_environment(database_url))
    data = run.describe_dataset(database_url, run.TEN_MILLION.posts)
    admin = _admin_email(database_url)
    app = create_app()
    logging.getLogger("app.request").setLevel(logging.WARNING)
    client = app.test_client()
    page = client.get("/admin/login", base_url=HTTPS).get_data(as_text=True)
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', page)
    signed_in = client.post("/admin/login", base_url=HTTPS, headers={"Referer": f"{HTTPS}/admin/login"}, data={
        "email": admin, "password": run.SEED_PASSWORD, "csrf_token": csrf.group(1) if csrf else ""})
    if signed_in.status_code != 302:
        sys.exit(f"admin sign-in failed: {signed_in.status_code} {signed_in.get_data(as_text=True)[:2000]}")

    rows: list[tuple[str, str, dict[str, str], str | None]] = [
        ("first page", f"/api/posts?limit={run.PAGE}", {}, None),
        (f"deep page ({data.deep_pages:,} pages)", f"/api/posts?limit={run.PAGE}&cursor={data.deep_cursor}", {},
         None),
        *[(f"q={q} ({what})", search.search_path(q), {}, None) for what, q in search.SEARCHES],
        ("admin dashboard", "/admin/", {}, HTTPS),
        ("admin post search q=kestrel", "/admin/posts?q=kestrel", {}, HTTPS),
        *[(f"admin users list{what}", f"/admin/users{query}", {}, HTTPS) for what, query in ADMIN_USER_LISTS],
    ]
    if not options.only or "feed" in options.only:
        reader = feed.busiest_follower(database_url)
        login = client.post("/api/auth/login", json={"email": reader.email, "password": run.SEED_PASSWORD})
        bearer = {"Authorization": f"Bearer {login.get_json()['access_token']}"}
        rows[-2:-2] = [(f"feed, first page ({reader.following} authors)", feed.first_path(), bearer, None),
                       (f"feed, {reader.deep_pages:,} pages deep", feed.deep_path(reader), bearer, None)]
    seen: list[tuple[str, Any]] = []

    def on_execute(_conn, _cursor, statement, parameters, _context, _many) -> None:
        seen.append((statement, parameters))

    engines = database.engines(app)
    for engine in engines:
        event.listen(engine, "before_cursor_execute", on_execute)
    out = []
    try:
        for label, path, headers, base_url in rows:
            if options.only and options.only not in label:
                continue
            for _ in range(2):  # the second run's statements: warm caches, word statistics read
                seen.clear()
                response = client.get(path, headers=headers, base_url=base_url or "http://localhost")
                if response.status_code != 200:
                    sys.exit(f"{label}: {path} gave {response.status_code}")
            captured = [(s, p) for s, p in seen if _explained(label, s)]
            for statement, parameters in captured:
                out.append(_explain(engines[0], label, statement, parameters, options.set))
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", on_execute)
    print("\n".join(out))


def _explained(label: str, statement: str) -> bool:
    """The statements of a row that read what the row is about: posts and the daily counters, or
    the users of a users list (not the admin's own session, read on every admin page)."""
    if label.startswith("admin users list"):
        return "FROM users" in statement and "sessions" not in statement
    return "posts" in statement or "daily_counts" in statement


def _explain(engine: Any, label: str, statement: str, parameters: Any, settings: list[str]) -> str:
    shown, plan = explain(engine, statement, parameters, settings)
    with_settings = f" (with {', '.join(settings)})" if settings else ""
    return f"#### {label}{with_settings}\n\n```\n{shown}\n\n{plan}\n```\n"


if __name__ == "__main__":
    main()
