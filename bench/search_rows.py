"""The benchmark's search rows alone, at several connection counts, on a database kept
between runs: for working on search without the whole `make bench`.

    python bench/search_rows.py                          # 1,000,000 posts, 4 and 16 connections
    python bench/search_rows.py --database app_bench_me  # its own database (the name must contain "bench")
    python bench/search_rows.py --baseline HEAD~1        # beside the same rows served by another revision
    python bench/search_rows.py --quick                  # 100,000 posts, shorter runs
    python bench/search_rows.py --mode 10m --database app_bench_10m   # 10,000,000 posts (`make bench-10m`)

Every row (the first page and each search, of each code served) runs once per round, round
after round, as `bench/run.py` alternates its first-page runs: load from elsewhere on the
machine then hits every row alike, and each row reports its median round.
The database is seeded (and `VACUUM ANALYZE`d) as `bench/run.py` seeds it, only when it does
not already hold the mode's posts; `--fresh` drops and seeds it again. Nothing here writes to
it, so ANALYZE's statistics stay those of the seed. Prints the rows as bench/results.md shows them.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
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
    parser.add_argument("--quick", action="store_true", help="100,000 posts and short runs (--mode quick)")
    parser.add_argument("--mode", choices=run.MODES, default="full", help="as bench/run.py's")
    parser.add_argument("--connections", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE", "app_bench"))
    parser.add_argument("--admin-url",
                        default=os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--baseline", metavar="REV", help="also serve this git revision's code, rows alternated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, help="seconds per run (default: the mode's)")
    parser.add_argument("--fresh", action="store_true", help="drop and seed the database even if it is seeded")
    options = parser.parse_args()
    mode = run.QUICK if options.quick else run.MODES[options.mode]
    database_url = run.bench_database_url(options.admin_url, options.database)
    env = run.app_environment(database_url)
    if mode is run.TEN_MILLION and not options.fresh and run.reuse_database(database_url, env, mode):
        pass  # kept between runs; bench/run.py's writes add a few posts it tolerates
    elif options.fresh or seeded_posts(database_url) != mode.posts:
        run.prepare_database(options.admin_url, options.database, database_url, env, mode)
    else:
        run.log(f"reusing {options.database}: {mode.posts:,} posts")
    os.environ.update(env)  # for the in-process statement count (config.py reads the environment)
    probes = [Probe(f"search:{q}", "GET", search.search_path(q)) for _, q in search.SEARCHES]
    counts = {count.label: count for count in count_statements(probes, None)[0]}
    unknown = SimpleNamespace(statements=float("nan"))  # counted in this process: the working tree's code only

    codes = {"working tree": ROOT}
    if options.baseline:
        codes[options.baseline] = conditional.baseline_tree(ROOT, run.OUT, options.baseline)
    mode = replace(mode, rounds=options.rounds, duration=options.duration or mode.duration)
    servers = {}
    try:
        for name, tree in codes.items():
            servers[name] = run.start_gunicorn(f"search-rows-{len(servers)}", "wsgi:app", env, "/health", cwd=tree)
        paths = [("first page", f"/api/posts?limit={run.PAGE}")]
        paths += [(f"q={q} ({what})", search.search_path(q)) for what, q in search.SEARCHES]
        sections = []
        for connections in options.connections:
            run.log(f"{connections} connections, {mode.rounds} rounds of {mode.duration} s")
            results = run.alternated({f"{name}: {label}": (server, path) for name, server in servers.items()
                                      for label, path in paths}, mode, connections)
            for name in servers:
                first = results.pop(f"{name}: first page")
                rows = [(results[f"{name}: {label}"], counts.get(f"search:{q}", unknown) if name == "working tree"
                         else unknown) for (label, _), (_, q) in zip(paths[1:], search.SEARCHES, strict=True)]
                for result, _ in rows:
                    result.label = result.label.removeprefix(f"{name}: ")
                sections.append((connections, name, search.render_rows(rows, first, run.mark)))
    finally:
        for server in servers.values():
            run.stop(server)
    for connections, name, lines in sections:
        print(f"\n{mode.posts:,} posts, {connections} connections, code of {name}:\n")
        print("\n".join(lines))

if __name__ == "__main__":
    main()
