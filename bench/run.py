"""The benchmark: seed a fresh PostgreSQL database, serve the app under gunicorn
with the production config, drive it with wrk, compare it with the floor.

    python bench/run.py           # full: 10,000 users, 1,000,000 posts (`make bench`)
    python bench/run.py --quick   # 100,000 posts, shorter runs (`make bench-quick`)
    python bench/run.py --mode 10m --database app_bench_10m   # 100,000 users, 10,000,000 posts
                                  # (`make bench-10m`: kept and reused, seeded once)
    python bench/run.py --baseline REV   # also today against the code of REV (bench/baseline.py)

The database (`app_bench` unless BENCH_DATABASE says otherwise; its name must
contain "bench") is dropped and created afresh: never point it at real data. The 10m
mode's database is seeded once and kept: a run that finds it holding the mode's users
and posts migrates it (`flask db upgrade`) and uses it as it is; `--fresh` seeds it again.
Rate limiting is switched off for the run (RATELIMIT_ENABLED=0) so that limits
measure nothing but themselves. A full run writes bench/results.md; a quick
run writes bench/out/results-quick.md, a 10m run bench/out/results-10m-c<connections>.md.
Each prints the result.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
OUT = BENCH / "out"
LUA = BENCH / "lua"
sys.path.insert(0, str(ROOT))

from bench import authenticated, baseline, conditional, feed, search  # noqa: E402
from bench.sqlcheck import Count, Plan, Probe, count_statements  # noqa: E402
from scripts.live_server import LiveServer, ServerDidNotStart, free_port  # noqa: E402

PAGE = 20
DEEP_PAGES = 5_000
SEED_PASSWORD = "Password123"  # what `flask seed` gives every seeded user


@dataclass(frozen=True)
class Mode:
    name: str
    users: int
    posts: int
    duration: int  # seconds per wrk run
    warmup: int
    rounds: int  # app/floor first-page runs, alternated; the median counts
    login_duration: int


FULL = Mode("full", users=10_000, posts=1_000_000, duration=10, warmup=2, rounds=5, login_duration=10)
QUICK = Mode("quick", users=10_000, posts=100_000, duration=3, warmup=1, rounds=3, login_duration=8)
# Ten million posts (issue 31): seeding takes minutes, so its database is kept between runs.
TEN_MILLION = Mode("10m", users=100_000, posts=10_000_000, duration=10, warmup=2, rounds=3, login_duration=10)
MODES = {mode.name: mode for mode in (FULL, QUICK, TEN_MILLION)}


@dataclass
class Result:
    label: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    cpu_ms: float  # gunicorn workers' + their PostgreSQL backends' CPU time per request
    runs: list[dict] = field(default_factory=list)


TRACING_SECTION = "## Traces (issue 29)"  # bench/tracing.py writes it; a full run keeps it


def tracing_section(results: str) -> str:
    """bench/tracing.py's section of a results file ("" when it has none)."""
    start = results.find(TRACING_SECTION + "\n")
    if start < 0:
        return ""
    end = results.find("\n## ", start + len(TRACING_SECTION))
    return results[start:] if end < 0 else results[start:end + 1]


def with_tracing_section(results: str, section: str) -> str:
    """The results with `section` in place of their tracing section (before "## Set-up" if none)."""
    old = tracing_section(results)
    if old:
        return results.replace(old, section.rstrip("\n") + "\n\n")
    return results.replace("## Set-up\n", section.rstrip("\n") + "\n\n## Set-up\n", 1)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---- set-up ---------------------------------------------------------------------


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if not path:
        sys.exit("wrk is not installed: `make bench` installs it (apt-get install wrk)")
    return path


def bench_database_url(admin_url: str, database: str) -> str:
    """The URL of a benchmark's own database, after the checks every benchmark makes first: its
    name says "bench" (it may be dropped and seeded again), wrk is there, PostgreSQL answers."""
    if "bench" not in database:
        sys.exit(f"refusing to use {database!r}: the benchmark database's name must contain 'bench'")
    OUT.mkdir(exist_ok=True)
    ensure_wrk()
    ensure_postgres(admin_url)
    return f"{admin_url.rsplit('/', 1)[0]}/{database}"


def ensure_postgres(admin_url: str) -> None:
    for _ in range(30):
        try:
            psycopg2.connect(admin_url, connect_timeout=2).close()
            return
        except psycopg2.OperationalError:
            if shutil.which("pg_ctlcluster") and Path("/etc/postgresql").is_dir():
                version = sorted(os.listdir("/etc/postgresql"))[-1]
                subprocess.run(
                    ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                    capture_output=True,
                )
            time.sleep(1)
    sys.exit(f"PostgreSQL does not answer at {admin_url}")


def recreate_database(admin_url: str, name: str, template: str | None = None) -> None:
    """Drop `name` and create it afresh, empty or as a copy of `template`."""
    connection = psycopg2.connect(admin_url)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    connection.close()


def app_environment(database_url: str) -> dict[str, str]:
    """Production config with throwaway secrets; only rate limits are switched off."""
    return {
        **os.environ,
        "APP_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "JWT_SECRET_KEY": secrets.token_urlsafe(48),
        "DATABASE_URL": database_url,
        "RATELIMIT_ENABLED": "0",
        "JWT_ACCESS_TOKEN_SECONDS": "3600",
        "FLASK_APP": "wsgi.py",
        "PUBLIC_BASE_URL": "http://localhost",  # in-process test clients; each server gets its own
        # Production requires one; requests only queue mail, and no worker runs here but bench/mail.py's.
        "MAIL_SERVER": "127.0.0.1",
    }


def flask(env: dict[str, str], *args: str, log_file: Path) -> float:
    started = time.perf_counter()
    with log_file.open("a") as out:
        subprocess.run(
            [sys.executable, "-m", "flask", *args],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return time.perf_counter() - started


def vacuum_analyze(database_url: str) -> float:
    """VACUUM ANALYZE, then a CHECKPOINT and a sync: the seed's dirty pages are written
    out now rather than by background writers during the measured runs."""
    started = time.perf_counter()
    connection = psycopg2.connect(database_url)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
        cursor.execute("CHECKPOINT")
    connection.close()
    os.sync()
    return time.perf_counter() - started


def seeded(database_url: str) -> tuple[int, int]:
    """How many users and posts the database holds ((0, 0) when it, or its tables, do not exist)."""
    try:
        connection = psycopg2.connect(database_url, connect_timeout=3)
    except psycopg2.OperationalError:
        return 0, 0
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass('posts') IS NOT NULL AND to_regclass('users') IS NOT NULL")
            if not cursor.fetchone()[0]:
                return 0, 0
            cursor.execute("SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM posts)")
            users, posts = cursor.fetchone()
            return users, posts
    finally:
        connection.close()


def reuse_database(database_url: str, env: dict[str, str], mode: Mode) -> dict | None:
    """The timings of a kept database brought up to date (migrated), or None when it does not hold
    the mode's seed. Posts the runs' writes added (a few thousand, newest) stay: no row measured
    depends on their number."""
    users, posts = seeded(database_url)
    if users < mode.users or not mode.posts <= posts < mode.posts * 1.01:
        return None
    log(f"reusing {database_url.rsplit('/', 1)[1]}: {users:,} users, {posts:,} posts (seeded earlier)")
    timings: dict = {"migrate": flask(env, "db", "upgrade", log_file=OUT / "seed.log"), "seed": None}
    timings["vacuum"] = vacuum_analyze(database_url)
    return timings


def forget_writes(database_url: str, last_seeded_post: int) -> None:
    """Delete the posts a run wrote (the write rows come last) from a kept database, so the next
    run's reads see the seed: a search that walks the newest posts would otherwise first walk
    through thousands of posts without the seeded words."""
    connection = psycopg2.connect(database_url)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM posts WHERE id > %s", (last_seeded_post,))
        log(f"deleted the {cursor.rowcount:,} posts this run wrote")
        cursor.execute("VACUUM ANALYZE posts")
    connection.close()


def prepare_database(admin_url: str, name: str, database_url: str, env: dict[str, str], mode: Mode) -> dict:
    """Fresh database, migrations, seed, VACUUM ANALYZE; started over (up to three times)
    when something else on the machine restarts PostgreSQL meanwhile."""
    seed_log = OUT / "seed.log"
    for attempt in range(1, 4):
        log(f"mode {mode.name}: fresh database {name}")
        ensure_postgres(admin_url)
        started = postmaster_started(admin_url)
        seed_log.write_text("")
        try:
            recreate_database(admin_url, name)
            timings = {"migrate": flask(env, "db", "upgrade", log_file=seed_log)}
            log(f"seeding {mode.users:,} users and {mode.posts:,} posts")
            seed = ["seed", "--users", str(mode.users), "--posts", str(mode.posts)]
            timings["seed"] = flask(env, *seed, log_file=seed_log)
            timings["vacuum"] = vacuum_analyze(database_url)
        except (subprocess.CalledProcessError, psycopg2.Error):
            if postmaster_started(admin_url) == started:
                sys.exit(f"set-up failed; see {seed_log.relative_to(ROOT)}")
        if postmaster_started(admin_url) == started:
            log(f"seeded in {timings['seed']:.1f} s")
            return timings
        log(f"PostgreSQL restarted during set-up (attempt {attempt}); starting over")
        RESTARTS.append(f"set-up attempt {attempt}")
        time.sleep(3)
    sys.exit("PostgreSQL kept restarting during set-up; try again on a quieter machine")


def baseline_database(admin_url: str, name: str, env: dict[str, str], revision: str) -> dict[str, str]:
    """The same data in the schema the code of `revision` knows: a copy of the seeded database,
    migrated down (by today's migrations) to that revision's newest one. The baseline server reads
    it, so both servers answer from the same rows, each in its own schema."""
    tree = conditional.baseline_tree(ROOT, OUT, revision)
    head = _newest_migration(tree / "migrations" / "versions")
    copy = f"{name}_baseline"
    recreate_database(admin_url, copy, template=name)
    copy_url = f"{admin_url.rsplit('/', 1)[0]}/{copy}"
    copy_env = {**env, "DATABASE_URL": copy_url}
    flask(copy_env, "db", "downgrade", head, log_file=OUT / "seed.log")
    vacuum_analyze(copy_url)
    log(f"baseline {revision}: a copy of the data at migration {head} ({copy})")
    return copy_env


def _newest_migration(versions: Path) -> str:
    """The head of a tree's Alembic revisions: the one no other revises."""
    found: dict[str, str | None] = {}
    for path in versions.glob("*.py"):
        text = path.read_text()
        revision = re.search(r"^revision = ['\"](\w+)['\"]", text, re.MULTILINE)
        down = re.search(r"^down_revision = ['\"](\w+)['\"]", text, re.MULTILINE)
        if revision:
            found[revision.group(1)] = down.group(1) if down else None
    heads = set(found) - {down for down in found.values() if down}
    if len(heads) != 1:
        sys.exit(f"{versions}: expected one head revision, found {sorted(heads)}")
    return heads.pop()


@dataclass(frozen=True)
class Dataset:
    users: int
    posts: int
    min_post: int
    max_post: int
    min_user: int
    max_user: int
    login_email: str
    author_id: int
    deep_cursor: str
    deep_first_id: int
    deep_pages: int


def describe_dataset(database_url: str, posts: int) -> Dataset:
    """Ids for the Lua scripts and the cursor of the page `deep_pages` pages in.

    The cursor is the sort key of the last row of page `deep_pages`, encoded by
    the app's own `encode_cursor`: the same cursor a client gets by walking
    `deep_pages` next links.
    """
    from app.pagination import encode_cursor

    deep_pages = min(DEEP_PAGES, posts // PAGE // 2)
    connection = psycopg2.connect(database_url)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), min(id), max(id) FROM posts")
        post_count, min_post, max_post = cursor.fetchone()
        cursor.execute("SELECT count(*), min(id), max(id) FROM users")
        user_count, min_user, max_user = cursor.fetchone()
        cursor.execute("SELECT email FROM users ORDER BY id LIMIT 1")
        (email,) = cursor.fetchone()
        cursor.execute("SELECT author_id FROM posts GROUP BY author_id ORDER BY count(*) DESC LIMIT 1")
        (author_id,) = cursor.fetchone()
        cursor.execute(
            "SELECT created_at, id FROM posts ORDER BY created_at DESC, id DESC OFFSET %s LIMIT 2",
            (deep_pages * PAGE - 1,),
        )
        (last_created, last_id), (_, next_id) = cursor.fetchall()
    connection.close()
    return Dataset(
        user_count,
        post_count,
        min_post,
        max_post,
        min_user,
        max_user,
        email,
        author_id,
        encode_cursor((last_created, last_id)),
        next_id,
        deep_pages,
    )


# ---- servers --------------------------------------------------------------------


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int | str) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def postgres_cpu_seconds(database: str) -> float:
    """CPU time of the PostgreSQL backends connected to `database` (named in their titles)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(b"postgres: ") and f" {database} ".encode() in title:
                total += _cpu_seconds(entry.name)
    return total


class Server(LiveServer):
    """A gunicorn of the run (scripts/live_server.py) and what the benchmark measures of it."""

    @property
    def database_url(self) -> str:
        return self.env["DATABASE_URL"]

    @property
    def database(self) -> str:
        return self.database_url.rsplit("/", 1)[1]

    def cpu_seconds(self) -> float:
        """Workers' CPU plus their database backends' CPU: a noise-proof cost per request."""
        return sum(_cpu_seconds(pid) for pid in self.worker_pids()) + postgres_cpu_seconds(self.database)

    def worker_rss_mb(self) -> list[float]:
        sizes = []
        for pid in self.worker_pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        sizes.append(int(line.split()[1]) / 1024)
            except OSError:
                continue
        return sizes


def start_gunicorn(name: str, target: str, env: dict[str, str], probe: str, cwd: Path = ROOT) -> Server:
    """gunicorn with the project's gunicorn.conf.py: worker count and settings as deployed."""
    port = free_port()
    env = {**env, "HOST": "127.0.0.1", "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
    try:
        return Server.start(target, env=env, port=port, probe=probe, timeout=60, cwd=cwd,
                            log_path=OUT / f"{name}-gunicorn.log")
    except ServerDidNotStart as error:
        sys.exit(f"{name}: {error}")


def stop(server: Server) -> None:
    server.stop(timeout=20)


def fetch(url: str) -> tuple[bytes, dict[str, str]]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read(), dict(response.headers)


def check_floor_matches(app: Server, floor: Server) -> str:
    """The floor must return the app's bytes, or the comparison means nothing."""
    app_body, app_headers = fetch(app.url + f"/api/posts?limit={PAGE}")
    floor_body, floor_headers = fetch(floor.url + f"/api/posts?limit={PAGE}")
    same_link = app_headers.get("Link", "").replace(app.url, "") == floor_headers.get("Link", "").replace(floor.url, "")
    if app_body == floor_body and same_link:
        return f"identical body ({len(app_body)} bytes) and Link header"
    return "DIFFERENT from the app's response: the ratio is not comparable"


# ---- load -----------------------------------------------------------------------


RESTARTS: list[str] = []  # runs repeated because PostgreSQL restarted under them


def postmaster_started(database_url: str) -> str:
    """When PostgreSQL last started (empty while it is down)."""
    try:
        connection = psycopg2.connect(database_url, connect_timeout=3)
    except psycopg2.OperationalError:
        return ""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_postmaster_start_time()::text")
        (started,) = cursor.fetchone()
    connection.close()
    return started


def wrk(
    server: Server,
    url: str,
    duration: int,
    connections: int,
    script: str | None = None,
    args: tuple[str, ...] = (),
    timeout: int = 5,
) -> dict:
    body = (LUA / script).read_text() if script else ""
    combined = OUT / f"wrk-{script or 'plain.lua'}"
    combined.write_text(body + "\n" + (LUA / "report.lua").read_text())
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        f"--timeout={timeout}s",
        "-s",
        str(combined),
        url,
    ]
    if args:
        command += ["--", *args]
    for attempt in range(3):
        before = postmaster_started(server.database_url)
        cpu_before = server.cpu_seconds()
        completed = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
        cpu = server.cpu_seconds() - cpu_before
        after = postmaster_started(server.database_url)
        if before and before == after:
            break
        # Something else on the machine restarted PostgreSQL (fault-injection tests do):
        # the run measured an outage, not the app. Wait for the server and run again.
        RESTARTS.append(f"{url} (attempt {attempt + 1})")
        log(f"PostgreSQL restarted during a run of {url}; repeating it")
        for _ in range(60):
            if postmaster_started(server.database_url):
                break
            time.sleep(1)
        time.sleep(2)
    for line in completed.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            data = json.loads(line.removeprefix("BENCH_JSON "))
            data["rps"] = data["requests"] / (data["duration_us"] / 1e6)
            data["cpu_s"] = cpu
            return data
    raise RuntimeError(f"wrk gave no summary: {completed.stdout}\n{completed.stderr}")


def measure(
    label: str,
    server: Server,
    path: str,
    mode: Mode,
    connections: int,
    *,
    script: str | None = None,
    args: tuple[str, ...] = (),
    duration: int | None = None,
    rounds: int = 1,
    timeout: int = 5,
) -> Result:
    url = server.url + path
    wrk(server, url, mode.warmup, connections, script, args, timeout)
    runs = [wrk(server, url, duration or mode.duration, connections, script, args, timeout) for _ in range(rounds)]
    return summarise(label, runs)


def summarise(label: str, runs: list[dict]) -> Result:
    middle = sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]
    result = Result(
        label,
        middle["rps"],
        middle["p50_us"] / 1000,
        middle["p99_us"] / 1000,
        sum(r["errors_status"] + r["errors_socket"] for r in runs),
        sum(r["requests"] for r in runs),
        sum(r["cpu_s"] for r in runs) * 1000 / max(sum(r["requests"] for r in runs), 1),
        runs,
    )
    rounds = ", ".join(f"{r['rps']:.0f}" for r in runs)
    log(
        f"{label}: {result.rps:.0f} req/s (rounds: {rounds}), "
        f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, errors {result.errors}, "
        f"CPU {result.cpu_ms:.2f} ms/request"
    )
    return result


def alternated(runs: dict[str, tuple[Server, str]], mode: Mode, connections: int) -> dict[str, Result]:
    """Round-robin the runs (app first page, floor, deep page) so that noise from other
    load on the machine hits all of them alike; each reports its median round."""
    for server, path in runs.values():
        wrk(server, server.url + path, mode.warmup, connections)
    results: dict[str, list[dict]] = {label: [] for label in runs}
    for _ in range(mode.rounds):
        for label, (server, path) in runs.items():
            results[label].append(wrk(server, server.url + path, mode.duration, connections))
    return {label: summarise(label, found) for label, found in results.items()}


def against_baseline(before: Server, now: Server, revision: str, first_before: Result, first_now: Result,
                     deep_path: str, data: Dataset, reader: feed.FeedReader, mode: Mode,
                     connections: int) -> list[baseline.Row]:
    """Issue 27's rows on the server of `revision` and today's, alternated (bench/baseline.py);
    the first page's runs were already made beside the floor's. Each server signs its own
    users in and tags its own list page."""
    page = f"/api/posts?limit={PAGE}"
    _, first_check = baseline.check(before.url, baseline.Request(page), now.url, baseline.Request(page))
    tokens = {server.url: (bearer_token(server, data.login_email), bearer_token(server, reader.email))
              for server in (before, now)}
    specs: dict[str, list[baseline.Request]] = {}
    for server in (before, now):
        # Tags after every sign-in: a sign-in is a write, which may move an old list tag.
        rows = baseline.requests_for(deep_path, data.deep_pages, (data.min_post, data.max_post),
                                     search.search_path("kestrel"), feed.first_path(), *tokens[server.url],
                                     conditional.etag(server.url + page, {}))
        for label, request in rows.items():
            specs.setdefault(label, []).append(request)
    rows = baseline.measure(before, now, {label: tuple(pair) for label, pair in specs.items()}, revision,
                            mode.rounds, mode.duration, mode.warmup, connections, wrk, summarise)
    return [baseline.Row(f"GET {page} (first page)", first_before, first_now, first_check), *rows]


def bearer_token(server: Server, email: str) -> str:
    request = urllib.request.Request(
        server.url + "/api/auth/login",
        method="POST",
        data=json.dumps({"email": email, "password": SEED_PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["access_token"]


# ---- the report -----------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal:")
    )
    return {
        "CPU": cpu,
        "Cores": str(os.cpu_count()),
        "RAM": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "Kernel": platform.release(),
        "Python": platform.python_version(),
    }


def pg_version(database_url: str) -> str:
    connection = psycopg2.connect(database_url)
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        (version,) = cursor.fetchone()
        cursor.execute("SHOW shared_buffers")
        (buffers,) = cursor.fetchone()
    connection.close()
    return f"PostgreSQL {version} (shared_buffers {buffers})"


def server_errors(server: Server) -> int:
    text = server.log_path.read_text(errors="replace")
    return text.count("Traceback") + text.count("[CRITICAL] WORKER TIMEOUT")


def mark(ok: bool) -> str:
    return "met" if ok else "NOT met"


def render(
    mode: Mode,
    *,
    results: list[Result],
    floor: Result,
    unmetered: Result,
    counts: dict[str, Count],
    plans: list[Plan],
    page_size_counts: list[Count],
    timings: dict[str, float],
    data: Dataset,
    facts: dict[str, str],
    rss: list[float],
    floor_rss: list[float],
    log_errors: int,
    login: Result,
    started: datetime,
    elapsed: float,
    search_section: list[str],
    baseline_section: list[str],
) -> str:
    first = results[1]
    deep = results[2]
    list_counts = [counts[k].statements for k in ("first", "deep", "user_posts")]
    headline = first.rps / floor.rps if floor.rps else 0.0
    deep_ratio = deep.p50_ms / first.p50_ms if first.p50_ms else 0.0
    all_errors = sum(r.errors for r in [*results, floor, unmetered, login]) + log_errors
    metrics_cost = 1 - first.rps / unmetered.rps if unmetered.rps else 0.0
    lines = [
        "# Benchmark results",
        "",
        f"Mode **{mode.name}**: {data.users:,} users, {data.posts:,} posts; run started "
        f"{started:%Y-%m-%d %H:%M} UTC, took {elapsed / 60:.1f} min. Generated by `bench/run.py` "
        f"(`make bench{'' if mode is FULL else '-' + mode.name}`).",
        "",
        "> Load on the machine is noise: the load averages below (1, 5, 15 minutes) say how quiet "
        "it was; the app and floor first-page runs are alternated so noise hits both alike. "
        f"Load average at start / end: {facts['load_start']} / {facts['load_end']}.",
        "",
        "## Headline",
        "",
        f"- **App / floor, first page: {headline:.2f}** ({first.rps:.0f} vs {floor.rps:.0f} req/s); "
        f"target ≥ 0.55: {mark(headline >= 0.55)}.",
        f"- **Deep page p50 / first page p50: {deep_ratio:.2f}** ({deep.p50_ms:.2f} ms vs "
        f"{first.p50_ms:.2f} ms, {data.deep_pages:,} pages deep); target ≤ 1.3: {mark(deep_ratio <= 1.3)}.",
        f"- **SQL statements per request, list endpoints: {max(list_counts):g}** at most "
        f"(first page {counts['first'].statements:g}, deep page {counts['deep'].statements:g}, "
        f"author page {counts['user_posts'].statements:g}); target ≤ 2: {mark(max(list_counts) <= 2)}.",
        f"- **Cost of the metrics, first page: {metrics_cost:.1%} of throughput** ({first.rps:.0f} req/s "
        f"with them, {unmetered.rps:.0f} with `METRICS_ENABLED=0`, alternated runs); target < 5%: "
        f"{mark(metrics_cost < 0.05)}.",
        f"- **Errors: {all_errors}** (wrk non-2xx + socket errors over every run, plus tracebacks and "
        f"worker timeouts in the gunicorn logs); target 0: {mark(all_errors == 0)}.",
        f"- **Worker RSS after the run: max {max(rss, default=0):.0f} MB** "
        f"({', '.join(f'{x:.0f}' for x in rss)} MB); target < 150 MB: {mark(max(rss, default=0) < 150)}.",
        "",
        *baseline_section,
        "## Throughput and latency",
        "",
        f"wrk 1 thread, {facts['connections']} connections, {mode.duration} s per run after a "
        f"{mode.warmup} s warm-up; first page, floor and deep page: median of {mode.rounds} "
        "round-robin runs. "
        "No `Accept-Encoding` is sent, so neither side compresses. "
        '"vs floor" is requests/s divided by the floor\'s first-page requests/s (the floor serves only '
        "that query, so it is the headline only for the list rows).",
        "",
        "| Endpoint | Requests/s | p50 (ms) | p99 (ms) | Errors | SQL statements/request | vs floor "
        "| CPU ms/request | floor CPU / CPU |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    keys = ["health", "first", "deep", "post", "user_posts", "create"]
    for key, result in zip(keys, results, strict=True):
        count = counts[key]
        lines.append(
            f"| {result.label} | {result.rps:,.0f} | {result.p50_ms:.2f} | {result.p99_ms:.2f} | "
            f"{result.errors} | {count.statements:g} | {result.rps / floor.rps:.2f} | "
            f"{result.cpu_ms:.2f} | {floor.cpu_ms / result.cpu_ms:.2f} |"
        )
    lines.append(
        f"| {floor.label} | {floor.rps:,.0f} | {floor.p50_ms:.2f} | {floor.p99_ms:.2f} | "
        f"{floor.errors} | 1 | 1.00 | {floor.cpu_ms:.2f} | 1.00 |"
    )
    lines += [
        "",
        "Login is bcrypt-bound by design (cost 12 in production), so it is reported apart:",
        "",
        "| Endpoint | Requests/s | p50 (ms) | p99 (ms) | Errors | SQL statements/request |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| {login.label} | {login.rps:,.1f} | {login.p50_ms:.0f} | {login.p99_ms:.0f} | {login.errors} | "
        f"{counts['login'].statements:g} |",
        "",
        "Statement counts exclude the pool's pre-ping, the `SELECT 1` SQLAlchemy's `pool_pre_ping` sends when "
        "a request checks a connection out of the main pool (writes, sign-in); the reads' own pool "
        "(app/database.py) is in autocommit and sends none, so a read is one round trip "
        f"({', '.join(f'{k}: {c.pings:g}' for k, c in counts.items())} pings per request; an authenticated "
        "request resolves its token on the read pool too). "
        "The floor keeps one connection per worker and sends no ping.",
        "",
        "Statements per request whatever the page size (first page): "
        + ", ".join(f"`limit={c.label}`: {c.statements:g}" for c in page_size_counts)
        + ".",
        "",
        *search_section,
        "## Set-up",
        "",
        f"- Seed (`flask seed --users {mode.users} --posts {mode.posts}`, COPY on PostgreSQL): "
        + (f"**{timings['seed']:.1f} s**" if timings["seed"] is not None else "a database seeded by an earlier run, "
           "reused (kept between runs)")
        + f"; migrations {timings['migrate']:.1f} s; "
        f"`VACUUM ANALYZE`, `CHECKPOINT` and sync {timings['vacuum']:.1f} s.",
        f"- gunicorn with the project's `gunicorn.conf.py` (sync workers, {len(rss)} workers = 2 x cores), "
        "`APP_ENV=production`, generated `SECRET_KEY`/`JWT_SECRET_KEY`, `RATELIMIT_ENABLED=0` (rate limits "
        "off so they do not turn load into 429s), request logging on at INFO as in production (to a file). "
        "The floor (`bench/floor.py`) runs under the same gunicorn settings.",
        f"- Floor check: {facts['floor_check']}.",
        f"- Deep page: cursor of row {data.deep_pages * PAGE:,} (page {data.deep_pages:,}), computed "
        f"from the database with `app.pagination.encode_cursor`; {facts['deep_check']}.",
        f"- Random `GET /api/posts/<id>` over ids {data.min_post}-{data.max_post} and "
        f"`GET /api/users/<id>/posts` over ids {data.min_user}-{data.max_user} (Lua in bench/lua/).",
        f"- Floor worker RSS after the run: {', '.join(f'{x:.0f}' for x in floor_rss)} MB.",
        f"- Runs repeated because PostgreSQL was restarted under them by another job: {len(RESTARTS)}"
        + (f" ({'; '.join(RESTARTS)})" if RESTARTS else "")
        + ". Errors a repeated run saw (the database was down) are not counted.",
        "",
        "## Machine",
        "",
        *[f"- {k}: {v}" for k, v in facts.items() if k in ("CPU", "Cores", "RAM", "Kernel", "Python", "PostgreSQL")],
        "",
        "## Query plans (`EXPLAIN (ANALYZE, BUFFERS)`, the exact statements the app ran)",
        "",
    ]
    for plan in plans:
        lines += [f"### {plan.label}", "", plan.verdict(), "", "```", plan.text, "```", ""]
    notes = BENCH / "where-the-time-goes.md"
    if notes.exists():
        lines += [notes.read_text().strip(), ""]
    return "\n".join(lines) + "\n"


def render_search(
    searches: list[tuple[Result, Count]],
    first: Result,
    flood: search.FloodResult,
    dashboard: Result,
    admin_search: Result,
    plans: list[Plan],
) -> list[str]:
    flood_ok = flood.reader_p99_ms < 50 and flood.reader_errors == 0
    lines = [
        "## Search",
        "",
        "`GET /api/posts?limit=20&q=…` with words of known rarity (the seed puts `kestrel` in about 1% of "
        "posts and `quokka` in 10); same wrk settings as above, limits off.",
        "",
        *search.render_rows(searches, first, mark),
        "",
        f"**Search flood** (limits on, as in production, counted in Redis; the server warmed first from other "
        f"addresses): 8 connections searching as fast "
        f"as they can from eight client addresses for {flood.duration} s — {flood.flood_requests:,} searches, "
        f"{flood.flood_limited:,} of them refused with 429 — while one ordinary client reads the first page "
        f"four times a second: its **p50 {flood.reader_p50_ms:.2f} ms, p99 {flood.reader_p99_ms:.2f} ms** "
        f"over {flood.reader_requests} requests, {flood.reader_errors} errors; target p99 < 50 ms: "
        f"{mark(flood_ok)}.",
        "",
        "| Admin page | Requests/s | p50 (ms) | p99 (ms) | Errors | target |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
        f"| {dashboard.label} | {dashboard.rps:,.0f} | {dashboard.p50_ms:.2f} | {dashboard.p99_ms:.2f} | "
        f"{dashboard.errors} | p50 < 50 ms: {mark(dashboard.p50_ms < 50)} |",
        f"| {admin_search.label} | {admin_search.rps:,.0f} | {admin_search.p50_ms:.2f} | "
        f"{admin_search.p99_ms:.2f} | {admin_search.errors} | |",
        "",
        "### Search query plans (`EXPLAIN (ANALYZE, BUFFERS)`)",
        "",
    ]
    for plan in plans:
        lines += [f"#### {plan.label}", "", "```", plan.text, "```", ""]
    return lines


# ---- main -----------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100,000 posts and short runs (--mode quick)")
    parser.add_argument("--mode", choices=MODES, default="full",
                        help="full: 1,000,000 posts; quick: 100,000; 10m: 10,000,000 (its database is kept)")
    parser.add_argument("--fresh", action="store_true", help="10m: seed the kept database again")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE", "app_bench"))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
                        help="for the search-flood row's rate limits (keys under a prefix of the run's own)")
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--baseline", metavar="REV",
                        help="also serve the code of this git revision on the same database and run the first "
                             "page, a deep page, a post, me, a list 304, a search and the feed against both, "
                             "alternated (issue 27: e.g. 40420a2, the commit before it); `make bench "
                             "BENCH_ARGS=\"--baseline REV\"`")
    options = parser.parse_args()
    mode = QUICK if options.quick else MODES[options.mode]
    started_at, started = datetime.now(UTC), time.perf_counter()
    database_url = bench_database_url(options.admin_url, options.database)
    facts = {
        **machine(),
        "connections": str(options.connections),
        "load_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    env = app_environment(database_url)
    os.environ.update(env)  # for the in-process debug run (config.py reads the environment)

    timings = None if mode is not TEN_MILLION or options.fresh else reuse_database(database_url, env, mode)
    timings = timings or prepare_database(options.admin_url, options.database, database_url, env, mode)
    facts["PostgreSQL"] = pg_version(database_url)
    data = describe_dataset(database_url, mode.posts)
    reader = feed.busiest_follower(database_url)
    everyone_email, everyone = feed.everyone_follower(database_url)
    baseline_env = env
    if options.baseline:
        baseline_env = baseline_database(options.admin_url, options.database, env, options.baseline)

    servers: list[Server] = []
    before: Server | None = None  # the code of --baseline REV
    baseline_section: list[str] = []
    try:
        app = start_gunicorn("app", "wsgi:app", env, "/health")
        servers.append(app)
        floor = start_gunicorn("floor", "bench.floor:app", env, "/api/posts?limit=1")
        servers.append(floor)
        unmetered = start_gunicorn("unmetered", "wsgi:app", {**env, "METRICS_ENABLED": "0"}, "/health")
        servers.append(unmetered)
        facts["floor_check"] = check_floor_matches(app, floor)
        log(f"floor check: {facts['floor_check']}")
        deep_path = f"/api/posts?limit={PAGE}&cursor={data.deep_cursor}"
        deep_items = json.loads(fetch(app.url + deep_path)[0])
        facts["deep_check"] = (
            "its first item is the expected row"
            if deep_items and deep_items[0]["id"] == data.deep_first_id
            else "UNEXPECTED first item: check the cursor"
        )
        token = bearer_token(app, data.login_email)

        log("counting SQL statements per request (debug run, Flask test client)")
        probes = [
            Probe("health", "GET", "/health"),
            Probe("first", "GET", f"/api/posts?limit={PAGE}", explain=True),
            Probe("deep", "GET", f"/api/posts?limit={PAGE}&cursor={data.deep_cursor}", explain=True),
            Probe("post", "GET", f"/api/posts/{data.max_post // 2}"),
            Probe("user_posts", "GET", f"/api/users/{data.author_id}/posts?limit={PAGE}", explain=True),
            Probe(
                "create",
                "POST",
                "/api/posts",
                json={"title": "Counted", "body": "Counting statements."},
                auth=True,
                expect=201,
            ),
            Probe(
                "login",
                "POST",
                "/api/auth/login",
                json={"email": data.login_email, "password": SEED_PASSWORD},
                runs=2,
            ),
        ]
        probes += [Probe(f"search:{q}", "GET", search.search_path(q), explain=True) for _, q in search.SEARCHES]
        probes += authenticated.probes(data.max_user)
        count_list, plans = count_statements(probes, token)
        counts = {c.label: c for c in count_list}
        size_probes = [Probe(str(n), "GET", f"/api/posts?limit={n}", runs=2) for n in (1, 20, 100)]
        page_size_counts, _ = count_statements(size_probes, None)
        plan_titles = {
            "first": "First page: `GET /api/posts?limit=20`",
            "deep": f"Deep page: `GET /api/posts?limit=20&cursor=...` ({data.deep_pages:,} pages in)",
            "user_posts": f"Author page: `GET /api/users/{data.author_id}/posts?limit=20`",
        }
        plan_titles.update({f"search:{q}": f"Search ({what}): `GET {search.search_path(q)}`"
                            for what, q in search.SEARCHES})
        for plan in plans:
            plan.label = plan_titles[plan.label]

        feed_token, everyone_token = bearer_token(app, reader.email), bearer_token(app, everyone_email)
        facts["feed_deep_check"] = feed.check_deep(app.url, feed_token, reader)
        feed_counts, feed_plans = count_statements([
            Probe("Feed, first page", "GET", feed.first_path(), auth=True, explain=True),
            Probe(f"Feed, {reader.deep_pages:,} pages deep", "GET", feed.deep_path(reader), auth=True, explain=True),
        ], feed_token)
        everyone_counts, everyone_plans = count_statements([
            Probe(f"Feed, first page, following {everyone:,} authors", "GET", feed.first_path(), auth=True,
                  explain=True),
        ], everyone_token)

        c = options.connections
        log("load: wrk")
        health = measure("GET /health", app, "/health", mode, c)
        first_label = "GET /api/posts?limit=20 (first page)"
        floor_label = "floor: psycopg2 + stdlib, same SQL and JSON"
        deep_label = f"GET /api/posts?limit=20&cursor=… ({data.deep_pages:,} pages deep)"
        unmetered_label = "first page, metrics off (METRICS_ENABLED=0)"
        runs = {
            first_label: (app, f"/api/posts?limit={PAGE}"),
            floor_label: (floor, f"/api/posts?limit={PAGE}"),
            deep_label: (app, deep_path),
            unmetered_label: (unmetered, f"/api/posts?limit={PAGE}"),
        }
        if options.baseline:
            before = start_gunicorn("baseline", "wsgi:app", baseline_env, "/health",
                                    cwd=conditional.baseline_tree(ROOT, OUT, options.baseline))
            servers.append(before)
            runs[f"{first_label} at {options.baseline}"] = (before, f"/api/posts?limit={PAGE}")
        trio = alternated(runs, mode, c)
        first, floor_result, deep = trio[first_label], trio[floor_label], trio[deep_label]
        stop(unmetered)
        against: list[baseline.Row] = []
        if before is not None:
            log(f"against {options.baseline}: each row on both servers, alternated")
            against = against_baseline(before, app, options.baseline, trio[f"{first_label} at {options.baseline}"],
                                       first, deep_path, data, reader, mode, c)
            stop(before)
            baseline_section = baseline.render(against, options.baseline, first, floor_result,
                                               server_errors(before), mark)
            print("\n".join(baseline_section), flush=True)
        conditional_pairs = conditional.measure_pairs(wrk, summarise, app, f"/api/posts?limit={PAGE}", mode, c)
        post = measure(
            "GET /api/posts/<random id>",
            app,
            "/api/posts/1",
            mode,
            c,
            script="random_post.lua",
            args=(str(data.min_post), str(data.max_post)),
        )
        user_posts = measure(
            "GET /api/users/<random id>/posts?limit=20",
            app,
            "/api/users/1/posts",
            mode,
            c,
            script="user_posts.lua",
            args=(str(data.min_user), str(data.max_user)),
        )
        searches = [
            (measure(f"q={q} ({what})", app, search.search_path(q), mode, c), counts[f"search:{q}"])
            for what, q in search.SEARCHES
        ]
        feed_paths = [feed.first_path(), feed.deep_path(reader), feed.first_path()]
        feed_labels = [f"GET /api/feed (first page, {reader.following} authors followed)",
                       f"GET /api/feed (cursor {reader.deep_pages:,} pages deep, {reader.following} authors)",
                       f"GET /api/feed (first page, {everyone:,} authors followed)"]
        feed_tokens = [feed_token, feed_token, everyone_token]
        feed_rows = [
            (measure(label, app, path, mode, c, script="with_bearer.lua", args=(bearer,)), count, targeted)
            for label, path, bearer, count, targeted in zip(
                feed_labels, feed_paths, feed_tokens, [*feed_counts, *everyone_counts], [True, True, False],
                strict=True)
        ]
        cookie = search.admin_cookie(app.url, database_url)
        dashboard = measure("GET /admin/ (dashboard)", app, "/admin/", mode, c, script="with_cookie.lua",
                            args=(cookie,))
        admin_search = measure("GET /admin/posts?q=kestrel", app, "/admin/posts?q=kestrel", mode, c,
                               script="with_cookie.lua", args=(cookie,))
        log("authenticated rows: me beside its floor, another user, the list")
        auth_rows = authenticated.measure(app, floor, token, (data.min_user, data.max_user),
                                          (data.min_post, data.max_post), mode.rounds, mode.duration,
                                          mode.warmup, c, wrk, summarise)
        # Writes go last: every read above measures the seeded posts, not the ones wrk wrote
        # (thousands of new posts without the seeded words would change what a search or feed reads).
        create = measure(
            "POST /api/posts (bearer token)",
            app,
            "/api/posts",
            mode,
            c,
            script="create_post.lua",
            args=(token,),
        )
        workers = len(app.worker_pids())
        login = measure(
            "POST /api/auth/login (bcrypt cost 12)",
            app,
            "/api/auth/login",
            mode,
            workers,
            script="login.lua",
            args=(data.login_email, SEED_PASSWORD),
            duration=mode.login_duration,
            timeout=30,
        )
        rss, floor_rss = app.worker_rss_mb(), floor.worker_rss_mb()
        stop(floor)
        log("search flood beside a reader, production limits on (Redis)")
        limited = start_gunicorn("limited", "wsgi:app", search.limited_environment(env, options.redis_url), "/health")
        servers.append(limited)
        flood = search.flood_with_reader(limited.url, OUT, mode.duration * 2)
        log(f"flood: reader p50 {flood.reader_p50_ms:.2f} ms, p99 {flood.reader_p99_ms:.2f} ms; "
            f"{flood.flood_requests} searches, {flood.flood_limited} limited")
    finally:
        for server in servers:
            stop(server)
        if mode is TEN_MILLION:
            forget_writes(database_url, data.max_post)
    log_errors = sum(server_errors(s) for s in servers if s is not before)  # its own are in its section
    facts["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    conditional_baseline = ((options.baseline, against[0].before, against[0].now) if against else None)
    search_section = conditional.render_rows(conditional_pairs, mark, conditional_baseline) + render_search(
        searches, first, flood, dashboard, admin_search, [plan for plan in plans if plan.label.startswith("Search")])
    plans = [plan for plan in plans if not plan.label.startswith("Search")]
    feed_section = feed.render_rows(feed_rows, first, reader, everyone, mark, [*feed_plans, *everyone_plans])
    feed_section += [f"Deep feed page: {facts['feed_deep_check']}.", ""]
    report = render(
        mode,
        baseline_section=baseline_section,
        search_section=[*authenticated.render(auth_rows, counts, mark), *search_section, *feed_section],
        results=[health, first, deep, post, user_posts, create],
        floor=floor_result,
        unmetered=trio[unmetered_label],
        counts=counts,
        plans=plans,
        page_size_counts=page_size_counts,
        timings=timings,
        data=data,
        facts=facts,
        rss=rss,
        floor_rss=floor_rss,
        log_errors=log_errors,
        login=login,
        started=started_at,
        elapsed=time.perf_counter() - started,
    )
    target = {FULL: BENCH / "results.md", QUICK: OUT / "results-quick.md"}.get(
        mode, OUT / f"results-{mode.name}-c{options.connections}.md")
    if mode is FULL and target.exists():  # bench/tracing.py's figures stay until it runs again
        report = with_tracing_section(report, tracing_section(target.read_text())) \
            if tracing_section(target.read_text()) else report
    target.write_text(report)
    print(report)
    log(f"written to {target.relative_to(ROOT)} in {(time.perf_counter() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
