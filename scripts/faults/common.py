"""Shared parts of the fault scripts: a throwaway database, gunicorn, wrk, a probe, tables.

Everything binds to 127.0.0.1 on free ports, and every run is bounded in time.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from scripts.live_server import LiveServer, ServerDidNotStart, free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PG_BASE = os.environ.get("FAULTS_PG", "postgresql://postgres@127.0.0.1:5432")
OUT_DIR = ROOT / "test-artifacts" / "faults"
PASSWORD = "Faults-Passw0rd"
WRK_LUA = Path(__file__).with_name("wrk_report.lua")


class Failed(AssertionError):
    """An expectation of a fault scenario did not hold."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise Failed(message)


def psql(sql: str) -> None:
    subprocess.run(["psql", f"{PG_BASE}/postgres", "-qc", sql], check=True, capture_output=True)


@contextmanager
def throwaway_database(name: str):
    """A fresh PostgreSQL database with the migrations applied; dropped afterwards."""
    db = f"app_test_hardening_faults_{name}_{os.getpid()}"
    psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    psql(f"CREATE DATABASE {db}")
    url = f"{PG_BASE}/{db}"
    try:
        subprocess.run([str(BIN / "flask"), "db", "upgrade"], cwd=ROOT, check=True, capture_output=True,
                       env={**app_env(url), "FLASK_APP": "wsgi.py"})
        yield url
    finally:
        wait_for_postgres(30)
        psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


_SECRETS = {"SECRET_KEY": secrets.token_urlsafe(48), "JWT_SECRET_KEY": secrets.token_urlsafe(48)}


def app_env(database_url: str, **extra: str) -> dict[str, str]:
    """Production settings on loopback; limits high enough not to be the thing measured."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "TEST_DATABASE_URL")}
    env.update(_SECRETS)
    env.update({
        "APP_ENV": "production", "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING",
        "PUBLIC_BASE_URL": "http://127.0.0.1", "TRUSTED_HOSTS": "127.0.0.1,localhost",
        "BCRYPT_ROUNDS": "4", "RATELIMIT_LOGIN": "100000/minute", "RATELIMIT_REGISTER": "100000/minute",
        "RATELIMIT_WRITE": "100000/minute", "RATELIMIT_READ": "1000000/minute",
        "RATELIMIT_READ_USER": "1000000/minute", "RATELIMIT_SEARCH": "1000000/minute",
        "DB_POOL_SIZE": "2", "DB_MAX_OVERFLOW": "2",
        "LOGIN_FAILURES_PER_EMAIL_IP": "100000/minute", "LOGIN_FAILURES_PER_EMAIL": "100000/minute",
        "RATELIMIT_ACCOUNT_MAIL": "100000/minute",
        # Production requires a mail server; requests only queue mail, and these scenarios run no worker.
        "MAIL_SERVER": "127.0.0.1",
    })
    env.update(extra)
    return env


@contextmanager
def gunicorn(database_url: str, *, workers: int = 4, port: int | None = None, **env: str) -> Iterator[LiveServer]:
    """The app under gunicorn (scripts/live_server.py), its stdout and stderr in OUT_DIR."""
    port = port or free_port()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    try:
        server = LiveServer.start(env=app_env(database_url, WEB_CONCURRENCY=str(workers), **env), port=port,
                                  workers=workers, log_path=OUT_DIR / f"gunicorn-{port}.log", stdout_to_log=True)
    except ServerDidNotStart as error:
        raise Failed(str(error)) from error
    try:
        yield server
    finally:
        server.stop(timeout=25)


def wait_until(condition, seconds: float, message: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise Failed(message)


def wait_for_postgres(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-q"]).returncode == 0:
            return
        time.sleep(0.2)
    raise Failed("PostgreSQL did not come back")


def postgres_version() -> str:
    return os.environ.get("FAULTS_PG_VERSION") or sorted(os.listdir("/etc/postgresql"))[-1]


def sign_up(base_url: str, email: str) -> dict[str, str]:
    created = requests.post(f"{base_url}/api/users", json={"email": email, "name": "Fault Tester",
                                                           "password": PASSWORD}, timeout=10)
    expect(created.status_code == 201, f"registration failed: {created.status_code} {created.text}")
    login = requests.post(f"{base_url}/api/auth/login", json={"email": email, "password": PASSWORD},
                          timeout=10)
    expect(login.status_code == 200, f"login failed: {login.status_code} {login.text}")
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


# ---- load: wrk ------------------------------------------------------------------------------


@dataclass
class WrkResult:
    requests: int
    statuses: Counter
    socket_errors: dict[str, int]
    p50_ms: float
    p99_ms: float
    per_second: list[tuple[int, Counter]]  # (unix second, statuses)

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 400) + sum(
            self.socket_errors.values())


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise Failed("wrk is not installed (`make faults` installs it: apt-get install -y wrk)")
    return path


def run_wrk(url: str, *, seconds: int, connections: int = 8, threads: int = 2, timeout: str = "5s",
            headers: dict[str, str] | None = None, paths: list[str] | None = None) -> WrkResult:
    """Drive `url` with wrk; `paths` rotates over several paths of the same host."""
    command = [ensure_wrk(), f"-t{threads}", f"-c{connections}", f"-d{seconds}s", f"--timeout={timeout}",
               "-s", str(WRK_LUA), url]
    for name, value in (headers or {}).items():
        command[1:1] = ["-H", f"{name}: {value}"]
    env = {**os.environ, "WRK_PATHS": ",".join(paths or [])}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=seconds + 60)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if line is None:
        raise Failed(f"wrk gave no report:\n{done.stdout}\n{done.stderr}")
    data = json.loads(line.removeprefix("WRK_JSON "))
    buckets: dict[int, Counter] = {}
    for slot, n in (data["seconds"] or {}).items():
        second, status = slot.split(":")
        buckets.setdefault(int(second), Counter())[int(status)] += n
    per_second = sorted(buckets.items())
    return WrkResult(
        requests=data["requests"],
        statuses=Counter({int(k): v for k, v in (data["statuses"] or {}).items()}),
        socket_errors={k: v for k, v in data["errors"].items() if v},
        p50_ms=data["p50_us"] / 1000, p99_ms=data["p99_us"] / 1000, per_second=per_second,
    )


class Background(threading.Thread):
    """Run `run_wrk` in a thread so the scenario can break things meanwhile."""

    def __init__(self, **kwargs) -> None:
        super().__init__(daemon=True)
        self.kwargs = kwargs
        self.result: WrkResult | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = run_wrk(**self.kwargs)
        except BaseException as error:  # reported by the scenario
            self.error = error

    def wait(self) -> WrkResult:
        self.join()
        if self.error:
            raise self.error
        assert self.result is not None
        return self.result


# ---- a probe: one request at a time, timed ----------------------------------------------------


@dataclass
class Sample:
    at: float
    status: int  # 0: no HTTP response (refused, reset, timed out)
    seconds: float
    problem_json: bool


class Probe(threading.Thread):
    """Sequential requests every `interval` seconds, each timed, for the timeline."""

    def __init__(self, url: str, headers: dict[str, str] | None = None, interval: float = 0.05,
                 timeout: float = 10.0) -> None:
        super().__init__(daemon=True)
        self.url, self.headers, self.interval, self.timeout = url, headers or {}, interval, timeout
        self.samples: list[Sample] = []
        self._done = threading.Event()

    def run(self) -> None:
        session = requests.Session()
        while not self._done.is_set():
            started = time.monotonic()
            try:
                response = session.get(self.url, headers=self.headers, timeout=self.timeout)
                status = response.status_code
                problem = response.headers.get("Content-Type", "").startswith("application/problem+json")
            except requests.RequestException:
                status, problem = 0, False
                session = requests.Session()
            self.samples.append(Sample(time.time(), status, time.monotonic() - started, problem))
            self._done.wait(self.interval)

    def stop(self) -> list[Sample]:
        self._done.set()
        self.join()
        return self.samples


# ---- reporting ------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def status_summary(statuses: Counter, socket_errors: dict[str, int] | None = None) -> str:
    parts = [f"{status}: {n}" for status, n in sorted(statuses.items()) if status >= 400 or status == 0]
    parts += [f"{kind}: {n}" for kind, n in sorted((socket_errors or {}).items())]
    return ", ".join(parts) or "none"


def table(slug: str, title: str, headers: list[str], rows: list[list[object]], notes: list[str] = ()) -> str:
    lines = [f"### {title}", "", "| " + " | ".join(headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    if notes:
        lines.append("")
        lines += [f"- {note}" for note in notes]
    text = "\n".join(lines) + "\n"
    print("\n" + text, flush=True)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / f"{slug}.md").write_text(text)
    return text


def scratch_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


def psql_count(database_url: str, sql: str) -> int:
    out = subprocess.run(["psql", database_url, "-tAc", sql], check=True, capture_output=True, text=True)
    return int(out.stdout.strip())


def run_scenario(main: Callable[[], None], name: str) -> None:
    """A fault scenario's entry point: PASSED or FAILED with the broken expectation, and the exit status."""
    try:
        main()
    except AssertionError as error:
        print(f"FAILED: {error}", file=sys.stderr)
        sys.exit(1)
    print(f"PASSED: {name}")
