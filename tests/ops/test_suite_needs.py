"""What `make test` needs from the machine, and what it leaves alone.

Tests that need Redis share whatever Redis answers at `TEST_REDIS_URL` with
its other users: they touch only keys under a prefix of their own, and are
skipped, saying why, when no Redis answers. Proven by running them in a
separate pytest (on its own SQLite file, so this session's database is untouched).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid

import redis

from tests.helpers import REDIS_TEST_URL, ROOT, free_port


def run_pytest(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("TEST_DATABASE_URL", "PYTEST_ADDOPTS")}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=",
                           "-q", "-rs", *args],
                          cwd=ROOT, env={**environment, **env}, capture_output=True, text=True, timeout=300)


def test_redis_tests_touch_only_their_own_keys(redis_connection: redis.Redis):
    someone_elses = f"someone-else:{uuid.uuid4().hex}"
    run_prefix = f"suite-{uuid.uuid4().hex}"
    redis_connection.set(someone_elses, "keep me", ex=600)
    try:
        result = run_pytest("-m", "redis", "tests/api/test_rate_limits.py", "tests/ops/test_scale_out.py",
                            env={"TEST_REDIS_URL": REDIS_TEST_URL, "TEST_REDIS_KEY_PREFIX": run_prefix})
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert re.search(r"\b5 passed", result.stdout) and "skipped" not in result.stdout, result.stdout[-2000:]
        assert redis_connection.get(someone_elses) == b"keep me"
        assert not list(redis_connection.scan_iter(match=f"*{run_prefix}*")), "keys left behind"
    finally:
        redis_connection.delete(someone_elses)


def test_without_redis_the_redis_tests_are_skipped_saying_why():
    nobody_listens = f"redis://127.0.0.1:{free_port()}/0"
    result = run_pytest("-m", "redis", "tests/api/test_rate_limits.py", env={"TEST_REDIS_URL": nobody_listens})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert not re.search(r"\d+ error", result.stdout), result.stdout[-3000:]
    assert "skipped" in result.stdout
    assert f"no Redis answers at {nobody_listens}" in result.stdout
