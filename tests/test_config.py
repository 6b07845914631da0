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


def _production(**overrides):
    return create_app({"APP_ENV": "production", "SQLALCHEMY_DATABASE_URI": "sqlite://", **overrides})


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
