"""Test the production image as operators run it (`scripts/image/test.sh` builds it first).

Against the machine's PostgreSQL (a database of its own, created and dropped here) and Redis (a
key prefix of its own), on the host network:

1. `flask db upgrade` runs as a one-shot container: migrations are a separate step;
2. the app container (`--read-only`, a tmpfs on /tmp, no capabilities) becomes healthy by its own
   HEALTHCHECK, runs as a non-root user and cannot write its root filesystem;
3. smoke checks through it: register, sign in, post, list, /health/ready, /metrics; `flask worker`
   from the same image stops on docker stop by itself (not through serve.py), exit status 0;
4. `docker stop` (SIGTERM, docker's default 10 s before SIGKILL) under load: during the lame-duck
   period (serve.py's SHUTDOWN_DELAY) /health/ready is 503 while requests on new connections are
   still answered; clients that stop sending once a health check sees the 503, as a load
   balancer's do, lose nothing (no reset, no refused, no 5xx); requests held in flight by a lock
   until gunicorn itself has had SIGTERM are answered; the container exits 0. Clients that ignore
   readiness get no 5xx and no timeout, and a registration of theirs that was reset never reached
   the database.

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
LOAD_THREADS = 3  # clients behind a load balancer's health check
NAIVE_THREADS = 2  # clients that ignore readiness and send until the end


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
    """Requests one after another until told to stop; each outcome classified. Once gunicorn
    stops, it closes its listening socket: a new connection is then refused, and one the kernel
    had queued but no worker had taken yet is reset. Neither reached the app (the POSTs' users are
    looked up afterwards to prove it); "lost" is a 5xx, a timeout, or any other failure.

    With `out_of_rotation`, the client behaves like a load balancer's traffic: once the event is
    set (its health check saw /health/ready fail) it sends nothing new; for it, a refused or reset
    connection counts as lost too."""

    def __init__(self, base: str, headers: dict[str, str], out_of_rotation: threading.Event | None = None) -> None:
        super().__init__(daemon=True)
        self.base, self.headers, self.out_of_rotation = base, headers, out_of_rotation
        self.outcomes: Counter = Counter()
        self.problems: list[str] = []
        self.reset_posts: list[str] = []  # emails of registrations whose connection was reset
        self.stop = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            if self.out_of_rotation is not None and self.out_of_rotation.is_set():
                time.sleep(0.05)
                continue
            n += 1
            email = f"load-{uuid.uuid4().hex[:10]}@example.com"
            try:  # requests without a session: a new connection each, as a balancer's would mostly be
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


class HealthCheck(threading.Thread):
    """A load balancer's health check: GET /health/ready every `interval` seconds; the first
    answer that is not 200 takes the instance out of rotation (`out_of_rotation` is set)."""

    def __init__(self, base: str, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.base, self.interval = base, interval
        self.out_of_rotation = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set() and not self.out_of_rotation.is_set():
            try:
                if requests.get(f"{self.base}/health/ready", timeout=5).status_code != 200:
                    self.out_of_rotation.set()
            except requests.RequestException:
                self.out_of_rotation.set()
            self.stop.wait(self.interval)


def held_request(base: str, results: list) -> None:
    try:
        results.append(requests.get(f"{base}/api/posts?limit=1", timeout=30).status_code)
    except requests.RequestException as error:
        results.append(repr(error))


def docker_stop(name: str, done: dict) -> None:
    """`docker stop` with docker's default timeout (10 s, then SIGKILL): the image must fit in it."""
    started = time.monotonic()
    done["returncode"] = docker("stop", name, check_rc=False, timeout=60).returncode
    done["seconds"] = time.monotonic() - started


def env_value(name: str, variable: str) -> str:
    """A variable of the container's environment, as the image and the env file set it."""
    for item in docker("inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}", name).stdout.splitlines():
        key, _, value = item.partition("=")
        if key == variable:
            return value
    raise Failed(f"the container has no {variable}")


def stop_under_load(name: str, base: str, database: str, headers: dict[str, str]) -> dict:
    """`docker stop` under load, the image's lame-duck period (serve.py) included."""
    delay = float(env_value(name, "SHUTDOWN_DELAY"))
    health_check = HealthCheck(base)
    balanced = [Load(base, headers, health_check.out_of_rotation) for _ in range(LOAD_THREADS)]
    naive = [Load(base, headers) for _ in range(NAIVE_THREADS)]
    for thread in (health_check, *balanced, *naive):
        thread.start()
    time.sleep(2)
    locker = psycopg2.connect(f"{PG}/{database}")
    held: list = []
    stopped: dict = {}
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
        stopper = threading.Thread(target=docker_stop, args=(name, stopped))
        stopper.start()
        # While it drains: not ready, yet every request, each on a new connection, answered as before.
        ready = None
        while time.monotonic() - term_at < delay:
            ready = requests.get(f"{base}/health/ready", timeout=5)
            if ready.status_code == 503:
                break
            time.sleep(0.05)
        check(ready is not None and ready.status_code == 503 and "shutting down" in ready.json()["detail"]
              and ready.headers["Content-Type"] == "application/problem+json",
              f"draining: /health/ready is 503 problem JSON {time.monotonic() - term_at:.1f} s after docker stop")
        try:  # not /api/posts: the lock holds every read of posts until the end of the delay
            during = [requests.get(f"{base}{path}", headers=headers, timeout=5).status_code
                      for _ in range(3) for path in ("/api/users/me", "/health")]
        except requests.RequestException as error:
            raise Failed(f"draining: a request on a new connection failed: {error!r}"[:500]) from None
        check(during == [200] * len(during) and time.monotonic() - term_at < delay,
              f"draining: requests on new connections still answered ({during}), within SHUTDOWN_DELAY ({delay:g} s)")
        check(health_check.out_of_rotation.is_set(), "the balancer's health check took the instance out of rotation")
        # The held requests are let go only after gunicorn itself has had SIGTERM: its graceful stop
        # answers them.
        time.sleep(max(0.0, delay + 1 - (time.monotonic() - term_at)))
        locker.rollback()
    finally:
        locker.close()
    for waiter in waiters:
        waiter.join(timeout=30)
    stopper.join(timeout=60)
    exit_code = docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()
    time.sleep(0.5)
    for thread in (health_check, *balanced, *naive):
        thread.stop.set()
    for thread in (health_check, *balanced, *naive):
        thread.join(timeout=40)
    balanced_outcomes = sum((load.outcomes for load in balanced), Counter())
    naive_outcomes = sum((load.outcomes for load in naive), Counter())
    problems = [problem for load in (*balanced, *naive) for problem in load.problems]
    reset_posts = [email for load in naive for email in load.reset_posts]
    if reset_posts:
        emails = ", ".join(f"'{email}'" for email in reset_posts)
        processed = sql(database, f"SELECT email FROM users WHERE email IN ({emails})")
        check(not processed, f"the {len(reset_posts)} reset registration(s) of the naive clients never reached "
                             "the app: no such user in the database")
    check(held == [200] * IN_FLIGHT, f"the requests in flight at gunicorn's SIGTERM were answered: {held}")
    check(stopped.get("returncode") == 0 and exit_code == "0",
          f"docker stop (default timeout, 10 s) returned after {stopped.get('seconds', 0):.1f} s; "
          f"the container exited {exit_code}")
    check(balanced_outcomes["answered"] > 0 and set(balanced_outcomes) == {"answered"},
          f"clients behind the health check lost nothing: {dict(balanced_outcomes)} {problems[:3]}")
    check(naive_outcomes["answered"] > 0 and naive_outcomes["lost"] == 0,
          f"clients that ignore readiness: no 5xx, no timeout: {dict(naive_outcomes)} {problems[:3]}")
    return {"balanced": dict(balanced_outcomes), "naive": dict(naive_outcomes),
            "stopped_after": stopped.get("seconds", 0)}


def worker_stops(name: str, hardened: list[str]) -> None:
    """`flask worker` from the same image, as its command: it does not go through serve.py, and
    stops on docker stop's SIGTERM by itself, exit status 0."""
    try:
        docker("run", "-d", "--name", name, *hardened, "-e", "LOG_LEVEL=INFO", IMAGE, "flask", "worker")
        deadline = time.monotonic() + 30
        while "upkeep" not in docker("logs", name, check_rc=False).stderr and time.monotonic() < deadline:
            time.sleep(0.2)
        docker("stop", name, timeout=60)
        exit_code = docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()
        logs = docker("logs", name, check_rc=False).stderr
        check(exit_code == "0" and "SIGTERM received" in logs and "[serve]" not in logs,
              f"flask worker, the same image's other command, stops on docker stop by itself (exit {exit_code})")
    finally:
        docker("rm", "-f", name, check_rc=False)


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
        docker("run", "-d", "--name", name, *hardened, "--health-interval", "1s", IMAGE)
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
        worker_stops(f"{name}-worker", hardened)
        figures = stop_under_load(name, base, database, headers)
        print(f"\nimage test passed in {time.monotonic() - started:.0f} s; docker stop under load: behind a "
              f"health check {figures['balanced']}, ignoring it {figures['naive']}; stopped "
              f"{figures['stopped_after']:.1f} s after the signal", flush=True)
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
