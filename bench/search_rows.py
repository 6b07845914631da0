"""The benchmark's search rows alone, at several connection counts, on a database kept
between runs: for working on search without the whole `make bench`.

    python bench/search_rows.py                          # 1,000,000 posts, 4 and 16 connections
    python bench/search_rows.py --database app_bench_me  # its own database (the name must contain "bench")
    python bench/search_rows.py --revision HEAD~1        # the same rows served by another revision's code
    python bench/search_rows.py --quick                  # 100,000 posts, shorter runs

The database is seeded (and `VACUUM ANALYZE`d) as `bench/run.py` seeds it, only when it does
not already hold the mode's posts; `--fresh` drops and seeds it again. Nothing here writes to
it, so ANALYZE's statistics stay those of the seed. Prints the rows as bench/results.md shows them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import conditional, run, search  # noqa: E402
from bench.sqlcheck import Probe, count_statements  # noqa: E402


def seeded_posts(database_url: str) -> int:
    """How many posts the database holds (0 when it, or its tables, do not exist)."""
    try:
        connection = psycopg2.connect(database_url, connect_timeout=3)
    except psycopg2.OperationalError:
        return 0
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass('posts') IS NOT NULL")
            if not cursor.fetchone()[0]:
                return 0
            cursor.execute("SELECT count(*) FROM posts")
            return cursor.fetchone()[0]
    finally:
        connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100,000 posts and short runs")
    parser.add_argument("--connections", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE", "app_bench"))
    parser.add_argument("--admin-url",
                        default=os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--revision", help="serve this git revision's code instead of the working tree's")
    parser.add_argument("--fresh", action="store_true", help="drop and seed the database even if it is seeded")
    options = parser.parse_args()
    mode = run.QUICK if options.quick else run.FULL
    if "bench" not in options.database:
        sys.exit(f"refusing to use {options.database!r}: the benchmark database's name must contain 'bench'")

    run.OUT.mkdir(exist_ok=True)
    run.ensure_wrk()
    run.ensure_postgres(options.admin_url)
    database_url = f"{options.admin_url.rsplit('/', 1)[0]}/{options.database}"
    env = run.app_environment(database_url)
    if options.fresh or seeded_posts(database_url) != mode.posts:
        run.prepare_database(options.admin_url, options.database, database_url, env, mode)
    else:
        run.log(f"reusing {options.database}: {mode.posts:,} posts")
    counts = {}
    if not options.revision:  # counted in this process, so only for the working tree's code
        os.environ.update(env)  # config.py reads the environment
        probes = [Probe(f"search:{q}", "GET", search.search_path(q)) for _, q in search.SEARCHES]
        counts = {count.label: count for count in count_statements(probes, None)[0]}

    code = conditional.baseline_tree(ROOT, run.OUT, options.revision) if options.revision else ROOT
    app = run.start_gunicorn("search-rows", "wsgi:app", env, "/health", cwd=code)
    sections = []
    try:
        for connections in options.connections:
            run.log(f"{connections} connections")
            first = run.measure("first page", app, f"/api/posts?limit={run.PAGE}", mode, connections, rounds=3)
            rows = [(run.measure(f"q={q} ({what})", app, search.search_path(q), mode, connections),
                     counts.get(f"search:{q}", SimpleNamespace(statements=float("nan"))))
                    for what, q in search.SEARCHES]
            sections.append((connections, search.render_rows(rows, first, run.mark)))
    finally:
        run.stop(app)
    served = options.revision or "the working tree"
    for connections, lines in sections:
        print(f"\n{mode.posts:,} posts, {connections} connections, code of {served}:\n")
        print("\n".join(lines))


if __name__ == "__main__":
    main()
