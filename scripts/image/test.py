"""Test the production image as operators run it (`scripts/image/test.sh` builds it first).

Against the machine's PostgreSQL (a database of its own, created and dropped here) and Redis (a
key prefix of its own), on the host network:

1. `flask db upgrade` runs as a one-shot container: migrations are a separate step;
2. the app container (`--read-only`, a tmpfs on /tmp, no capabilities) becomes healthy by its own
   HEALTHCHECK, runs as a non-root user and cannot write its root filesystem;
3. smoke checks through it: register, sign in, post, list, /health/ready, /metrics;
4. `SIGTERM` under load: requests in flight when it arrives (held by a lock) are answered, no
   request gets a 5xx, a timeout or a reset, and the container exits 0.

Prints one line per check and a summary; exits 1 on the first failure.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import psycopg2
import redis
import requests

from scripts.live_server import free_port

IMAGE = os.environ.get("IMAGE", "users-posts:latest")
DOCKER = os.environ.get("DOCKER", "docker")
PG = os.environ.get("IMAGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS = os.environ.get("IMAGE_TEST_REDIS", "redis://127.0.0.1:6379/0")
PASSWORD = "Image-Passw0rd"
WORKERS = 4
IN_FLIGHT = 2  # requests held by a lock when SIGTERM arrives
LOAD_THREADS = 3


class Failed(AssertionError):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Failed(message)
    print(f"ok  {message}", flush=True)


def docker(*args: str, check_rc: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    done = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout)
    if check_rc and done.returncode != 0:
        raise Failed(f"docker {' '.join(args[:3])} ...: {done.stderr.strip()[-1500:]}")
    return done


def sql(database: str, statement: str) -> list[tuple]:
    connection = psycopg2.connect(f"{PG}/{database}")
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
            return cursor.fetchall() if cursor.description else []
    finally:
        connection.close()


def env_file(folder: Path, database: str, port: int, prefix: str, metrics_token: str) -> Path:
    """The container's whole configuration, as an operator's env file (secrets made now)."""
    values = {
        "APP_ENV": "production", "DATABASE_URL": f"{PG}/{database}", "REDIS_URL": REDIS,
        "RATELIMIT_KEY_PREFIX": prefix, "SECRET_KEY": secrets.token_urlsafe(48),
        "JWT_SECRET_KEY": secrets.token_urlsafe(48), "METRICS_TOKEN": metrics_token,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "HOST": "127.0.0.1", "PORT": str(port),
        "WEB_CONCURRENCY": str(WORKERS), "MAIL_SERVER": "127.0.0.1", "MAIL_BACKEND": "log",
        "LOG_LEVEL": "WARNING", "DB_READ_TIMEOUT_MS": "20000",
        # limits high enough not to be what is measured
        "RATELIMIT_REGISTER": "100000/minute", "RATELIMIT_LOGIN": "100000/minute",
        "RATELIMIT_WRITE": "100000/minute", "RATELIMIT_READ": "1000000/minute",
        "RATELIMIT_READ_USER": "1000000/minute",
    }
    path = folder / "app.env"
    path.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    return path


def container_state(name: str) -> tuple[str, str]:
    out = docker("inspect", "-f", "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}", name)
    status, _, health = out.stdout.strip().partition(" ")
    return status, health


def wait_healthy(name: str, seconds: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        status, health = container_state(name)
        if status != "running":
            raise Failed(f"the container stopped: {docker('logs', name, check_rc=False).stderr[-2000:]}")
        if health == "healthy":
            return time.monotonic() - started
        time.sleep(0.5)
    raise Failed(f"not healthy after {seconds:g} s: {docker('logs', name, check_rc=False).stderr[-2000:]}")


def sign_up(base: str, http: requests.Session) -> dict[str, str]:
    email = f"image-{uuid.uuid4().hex[:10]}@example.com"
    created = http.post(f"{base}/api/users", json={"email": email, "name": "Image Tester", "password": PASSWORD},
                        timeout=10)
    check(created.status_code == 201, f"POST /api/users: 201 ({created.status_code})")
    login = http.post(f"{base}/api/auth/login", json={"email": email, "password": PASSWORD}, timeout=10)
    check(login.status_code == 200, f"POST /api/auth/login: 200 ({login.status_code})")
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def smoke(base: str, metrics_token: str) -> dict[str, str]:
    http = requests.Session()
    ready = http.get(f"{base}/health/ready", timeout=10)
    check(ready.status_code == 200, f"GET /health/ready: 200 ({ready.status_code})")
    headers = sign_up(base, http)
    me = http.get(f"{base}/api/users/me", headers=headers, timeout=10)
    check(me.status_code == 200, f"GET /api/users/me: 200 ({me.status_code})")
    for n in range(3):
        posted = http.post(f"{base}/api/posts", headers=headers, json={"title": f"From the image {n}", "body": "b"},
                           timeout=10)
        check(posted.status_code == 201, f"POST /api/posts: 201 ({posted.status_code})")
    page = http.get(f"{base}/api/posts?limit=2", timeout=10)
    check(page.status_code == 200 and [p["title"] for p in page.json()] == ["From the image 2", "From the image 1"]
          and "next" in page.links, "GET /api/posts?limit=2: the two newest and a next link")
    metrics = http.get(f"{base}/metrics", headers={"Authorization": f"Bearer {metrics_token}"}, timeout=10)
    check(metrics.status_code == 200 and "app_http_requests_total" in metrics.text,
          "GET /metrics with the token: 200, the request counters (multiprocess files on the tmpfs)")
    check(http.get(f"{base}/metrics", timeout=10).status_code == 401, "GET /metrics without the token: 401")
    return headers


class Load(threading.Thread):
    """Requests one after another until told to stop; each outcome classified. A stopping gunicorn
    closes its listening socket: a new connection is then refused, and one the kernel had queued
    but no worker had taken yet is reset. Neither reached the app (the POSTs' users are looked up
    afterwards to prove it); "lost" is a 5xx, a timeout, or a reset request that did reach it."""

    def __init__(self, base: str, headers: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.base, self.headers = base, headers
        self.outcomes: Counter = Counter()
        self.problems: list[str] = []
        self.reset_posts: list[str] = []  # emails of registrations whose connection was reset
        self.stop = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            email = f"load-{uuid.uuid4().hex[:10]}@example.com"
            try:
                if n % 3:
                    response = requests.get(f"{self.base}/api/users/me", headers=self.headers, timeout=30)
                else:
                    response = requests.post(f"{self.base}/api/users", timeout=30, json={
                        "email": email, "name": "Load", "password": PASSWORD})
            except requests.ConnectionError as error:
                if "refused" in str(error).lower():
                    self.outcomes["refused"] += 1
                elif "reset" in str(error).lower():
                    self.outcomes["reset before the app read it"] += 1
                    if n % 3 == 0:
                        self.reset_posts.append(email)
                else:
                    self.outcomes["lost"] += 1
                    self.problems.append(repr(error)[:300])
                time.sleep(0.05)
                continue
            except requests.RequestException as error:
                self.outcomes["lost"] += 1
                self.problems.append(repr(error)[:300])
                continue
            kind = "answered" if response.status_code < 500 else "lost"
            self.outcomes[kind] += 1
            if kind == "lost":
                self.problems.append(f"{response.status_code} {response.text[:200]}")


def held_request(base: str, results: list) -> None:
    try:
        results.append(requests.get(f"{base}/api/posts?limit=1", timeout=30).status_code)
    except requests.RequestException as error:
        results.append(repr(error))


def stop_under_load(name: str, base: str, database: str, headers: dict[str, str]) -> dict:
    loads = [Load(base, headers) for _ in range(LOAD_THREADS)]
    for load in loads:
        load.start()
    time.sleep(2)
    locker = psycopg2.connect(f"{PG}/{database}")
    held: list = []
    try:
        with locker.cursor() as cursor:
            cursor.execute("LOCK TABLE posts IN ACCESS EXCLUSIVE MODE")
        waiters = [threading.Thread(target=held_request, args=(base, held)) for _ in range(IN_FLIGHT)]
        for waiter in waiters:
            waiter.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # both are in a worker, waiting for the lock
            waiting = sql(database, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                    f"AND datname = '{database}'")[0][0]
            if waiting >= IN_FLIGHT:
                break
            time.sleep(0.05)
        check(waiting >= IN_FLIGHT, f"{IN_FLIGHT} requests in flight, held by a lock")
        term_at = time.monotonic()
        docker("kill", "--signal", "TERM", name)
        time.sleep(1.5)
        locker.rollback()  # the held requests may now finish
    finally:
        locker.close()
    for waiter in waiters:
        waiter.join(timeout=30)
    exit_code = docker("wait", name, timeout=60).stdout.strip()
    stopped_after = time.monotonic() - term_at
    time.sleep(0.5)
    for load in loads:
        load.stop.set()
    for load in loads:
        load.join(timeout=40)
    outcomes = sum((load.outcomes for load in loads), Counter())
    problems = [problem for load in loads for problem in load.problems]
    reset_posts = [email for load in loads for email in load.reset_posts]
    if reset_posts:
        emails = ", ".join(f"'{email}'" for email in reset_posts)
        processed = sql(database, f"SELECT email FROM users WHERE email IN ({emails})")
        check(not processed, f"the {len(reset_posts)} reset registration(s) never reached the app: "
                             "no such user in the database")
    check(held == [200] * IN_FLIGHT, f"the requests in flight at SIGTERM were answered: {held}")
    check(exit_code == "0", f"the container exited 0 after SIGTERM ({exit_code}), {stopped_after:.1f} s later")
    check(outcomes["answered"] > 0 and outcomes["lost"] == 0,
          f"no request lost under load: {dict(outcomes)} {problems[:3]}")
    return {"outcomes": dict(outcomes), "stopped_after": stopped_after}


def main() -> None:
    started = time.monotonic()
    run_id = f"{os.getpid()}"
    database, name = f"app_test_image_{run_id}", f"users-posts-image-test-{run_id}"
    port, metrics_token = free_port(), secrets.token_urlsafe(32)
    folder = Path(tempfile.mkdtemp(prefix="image-test-"))
    sql("postgres", f"CREATE DATABASE {database}")
    try:
        env = env_file(folder, database, port, f"image-test-{run_id}", metrics_token)
        hardened = ["--network", "host", "--env-file", str(env), "--read-only",
                    "--tmpfs", "/tmp:rw,nosuid,nodev,size=64m", "--cap-drop", "ALL",
                    "--security-opt", "no-new-privileges"]
        migrated = docker("run", "--rm", *hardened, IMAGE, "flask", "db", "upgrade")
        tables = {row[0] for row in sql(database, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        check(migrated.returncode == 0 and {"users", "posts", "alembic_version"} <= tables,
              "flask db upgrade, a one-shot container, migrated the database")
        docker("run", "-d", "--name", name, *hardened, "--health-interval", "1s", "--stop-timeout", "30",
               IMAGE)
        became_healthy = wait_healthy(name, 90)
        check(True, f"the container's HEALTHCHECK says healthy ({became_healthy:.1f} s after start)")
        uid = docker("exec", name, "id", "-u").stdout.strip()
        check(uid not in ("", "0"), f"it runs as a non-root user (uid {uid})")
        read_only = docker("inspect", "-f", "{{.HostConfig.ReadonlyRootfs}}", name).stdout.strip()
        write = docker("exec", name, "python", "-c", "open('/app/probe', 'w')", check_rc=False)
        check(read_only == "true" and "Read-only file system" in write.stderr,
              "its root filesystem is read-only (a write to /app fails)")
        base = f"http://127.0.0.1:{port}"
        headers = smoke(base, metrics_token)
        figures = stop_under_load(name, base, database, headers)
        print(f"\nimage test passed in {time.monotonic() - started:.0f} s; SIGTERM under load: "
              f"{figures['outcomes']}, exited {figures['stopped_after']:.1f} s after the signal", flush=True)
    finally:
        docker("rm", "-f", name, check_rc=False)
        sql("postgres", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        redis_prefix_cleanup(f"image-test-{run_id}")
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()


def redis_prefix_cleanup(prefix: str) -> None:
    """Delete this run's keys only (never a flush: the Redis is shared)."""
    connection = redis.Redis.from_url(REDIS)
    for key in connection.scan_iter(match=f"*{prefix}*", count=500):
        connection.delete(key)
    connection.close()


if __name__ == "__main__":
    try:
        main()
    except Failed as error:
        print(f"FAILED: {error}", file=sys.stderr)
        sys.exit(1)
