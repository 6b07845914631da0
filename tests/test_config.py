"""Secrets come from the environment; production refuses to start without them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from app import create_app
from config import ConfigurationError
from tests.conftest import ROOT

STRONG = "x" * 40


MAIL = {"MAIL_SERVER": "smtp.example.org", "PUBLIC_BASE_URL": "https://api.example.org"}


def _production(**overrides):
    return create_app({"APP_ENV": "production", "SQLALCHEMY_DATABASE_URI": "sqlite://", **MAIL, **overrides})


@pytest.mark.parametrize("missing", ["SECRET_KEY", "JWT_SECRET_KEY"])
def test_production_refuses_to_start_without_a_secret(missing):
    secrets = {"SECRET_KEY": STRONG, "JWT_SECRET_KEY": "y" * 40, missing: None}
    with pytest.raises(ConfigurationError, match=missing):
        _production(**secrets)


def test_production_refuses_weak_or_shared_secrets():
    with pytest.raises(ConfigurationError, match="at least 32"):
        _production(SECRET_KEY="short", JWT_SECRET_KEY=STRONG)
    with pytest.raises(ConfigurationError, match="differ"):
        _production(SECRET_KEY=STRONG, JWT_SECRET_KEY=STRONG)


def test_production_starts_with_strong_secrets():
    app = _production(SECRET_KEY=STRONG, JWT_SECRET_KEY="y" * 40)
    assert app.config["SESSION_COOKIE_SECURE"] is True


@pytest.mark.parametrize(("missing", "message"), [("MAIL_SERVER", "MAIL_SERVER must be set"),
                                                  ("PUBLIC_BASE_URL", "PUBLIC_BASE_URL must be set")])
def test_production_refuses_to_start_without_mail_or_its_public_address(missing, message):
    with pytest.raises(ConfigurationError, match=message):
        _production(SECRET_KEY=STRONG, JWT_SECRET_KEY="y" * 40, **{missing: ""})


def test_mail_goes_to_smtp_when_a_server_is_set_and_to_the_log_otherwise():
    assert _production(SECRET_KEY=STRONG, JWT_SECRET_KEY="y" * 40).config["MAIL_BACKEND"] == "smtp"
    development = create_app({"APP_ENV": "development", "SQLALCHEMY_DATABASE_URI": "sqlite://", "MAIL_SERVER": ""})
    assert development.config["MAIL_BACKEND"] == "app.mail.LogEmailBackend"


def test_production_without_secrets_exits_non_zero_with_a_clear_message():
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "JWT_SECRET_KEY")}
    env.update(APP_ENV="production", DATABASE_URL="sqlite://")
    result = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "Refusing to start in production" in result.stderr
    assert "Traceback" not in result.stderr


def test_development_generates_secrets_so_a_first_run_needs_no_setup():
    app = create_app({"APP_ENV": "development", "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    assert len(app.config["SECRET_KEY"]) >= 32
    assert app.config["JWT_SECRET_KEY"] != app.config["SECRET_KEY"]


def test_development_workers_share_one_generated_secret(monkeypatch):
    """Several gunicorn workers of `make run`: a session or token from one must work on another."""
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("JWT_SECRET_KEY", raising=False)
    code = ("from app import create_app; a = create_app('development'); "
            "print('keys', a.config['SECRET_KEY'], a.config['JWT_SECRET_KEY'])")

    def keys_seen_by_a_new_worker() -> list[str]:
        result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                                timeout=60, env={**os.environ, "APP_ENV": "development"})
        line = next(line for line in result.stdout.splitlines() if line.startswith("keys "))
        return line.split()[1:]

    first, second = keys_seen_by_a_new_worker(), keys_seen_by_a_new_worker()
    assert first == second
    assert len(first) == 2 and first[0] != first[1]


def test_instance_secret_is_written_once_even_when_workers_race(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from config import instance_secret

    with ThreadPoolExecutor(8) as pool:
        values = set(pool.map(lambda _: instance_secret("SECRET_KEY", tmp_path), range(32)))
    assert len(values) == 1 and len(values.pop()) >= 32
    assert [p.name for p in tmp_path.iterdir()] == [".secret_key"]
    assert (tmp_path / ".secret_key").stat().st_mode & 0o077 == 0  # readable by its owner only
