"""A database that is down, missing or of an unsupported kind: one clear line and a non-zero exit.

`flask db upgrade` is the first thing `make run` does, and `make test` the first
thing a newcomer runs; both go through the real command line here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import psycopg2
import pytest
from sqlalchemy.engine import make_url

from tests.helpers import ROOT, free_port

SERVER = make_url(os.environ.get("TEST_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres")


def run(*command: str, env: dict[str, str]) -> tuple[int, list[str]]:
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("APP_ENV", "DATABASE_URL", "TEST_DATABASE_URL", "PYTEST_ADDOPTS")}
    result = subprocess.run(command, cwd=ROOT, env={**environment, "FLASK_APP": "wsgi.py", **env},
                            capture_output=True, text=True, timeout=120)
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    return result.returncode, lines


def flask_db_upgrade(database_url: str) -> tuple[int, list[str]]:
    return run(sys.executable, "-m", "flask", "db", "upgrade", env={"DATABASE_URL": database_url})


def missing_postgresql_database() -> str:
    try:
        psycopg2.connect(host=SERVER.host, port=SERVER.port or 5432, user=SERVER.username,
                         password=SERVER.password, dbname="postgres", connect_timeout=3).close()
    except psycopg2.OperationalError as error:
        pytest.skip(f"no PostgreSQL answers at {SERVER.host}:{SERVER.port or 5432}: {error}")
    return SERVER.set(database=f"app_test_missing_{uuid.uuid4().hex[:8]}").render_as_string(hide_password=False)


def assert_one_clear_line(status: int, lines: list[str], *expected: str) -> None:
    assert status != 0
    assert len(lines) == 1, "\n".join(lines)
    assert "Traceback" not in lines[0]
    for text in expected:
        assert text in lines[0]


@pytest.mark.parametrize(("url", "expected"), [
    ("mysql://someone@127.0.0.1/app", "unsupported database 'mysql'"),
    ("postgresql+asyncpg://someone@127.0.0.1/app", "unsupported database 'postgresql+asyncpg'"),
    ("not a url at all", "DATABASE_URL is not a database URL"),
])
def test_flask_db_upgrade_with_an_unsupported_database_url_says_so_in_one_line(url, expected):
    assert_one_clear_line(*flask_db_upgrade(url), expected, "use postgresql://")


def test_flask_db_upgrade_with_postgresql_down_says_so_in_one_line():
    status, lines = flask_db_upgrade(f"postgresql://someone:s3cret@127.0.0.1:{free_port()}/app")
    assert_one_clear_line(status, lines, "cannot connect to the database", "Connection refused")
    assert "s3cret" not in lines[0]


def test_flask_db_upgrade_on_a_missing_postgresql_database_says_so_in_one_line():
    url = missing_postgresql_database()
    name = make_url(url).database
    assert_one_clear_line(*flask_db_upgrade(url), f'database "{name}" does not exist', "createdb")


def test_flask_db_upgrade_on_an_sqlite_file_in_a_missing_folder_says_so_in_one_line(tmp_path):
    assert_one_clear_line(*flask_db_upgrade(f"sqlite:///{tmp_path}/no/such/folder/app.db"),
                          "cannot connect to the database", "unable to open database file")


def pytest_with(test_database_url: str) -> tuple[int, list[str]]:
    return run(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests/ops/test_health.py",
               env={"TEST_DATABASE_URL": test_database_url})


def test_a_missing_test_database_stops_the_suite_with_one_line():
    url = missing_postgresql_database()
    status, lines = pytest_with(url)
    assert status == pytest.ExitCode.USAGE_ERROR, "\n".join(lines)
    problems = [line for line in lines if "TEST_DATABASE_URL" in line]
    assert len(problems) == 1 and f'"{make_url(url).database}" does not exist' in problems[0], "\n".join(lines)
    assert len(lines) <= 3 and "Traceback" not in "\n".join(lines), "\n".join(lines)


def test_a_test_database_that_does_not_answer_stops_the_suite_with_one_line():
    status, lines = pytest_with(f"postgresql://postgres@127.0.0.1:{free_port()}/app_test")
    assert status == pytest.ExitCode.USAGE_ERROR, "\n".join(lines)
    assert len(lines) <= 3 and "Traceback" not in "\n".join(lines), "\n".join(lines)
    assert any("TEST_DATABASE_URL: cannot connect" in line and "Connection refused" in line for line in lines)
