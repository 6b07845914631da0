"""Secrets come from the environment; production refuses to start without them."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

from app import create_app
from config import ConfigurationError, TestingConfig, committed_file_containing
from tests.helpers import ROOT, production_settings


def _production(**overrides):
    return create_app({**production_settings(SQLALCHEMY_DATABASE_URI="sqlite://"), **overrides})


@pytest.mark.parametrize("missing", ["SECRET_KEY", "JWT_SECRET_KEY"])
def test_production_refuses_to_start_without_a_secret(missing):
    with pytest.raises(ConfigurationError, match=missing):
        _production(**{missing: None})


def test_production_refuses_short_or_shared_secrets():
    with pytest.raises(ConfigurationError, match="at least 32"):
        _production(SECRET_KEY="short")
    same = secrets.token_urlsafe(48)
    with pytest.raises(ConfigurationError, match="differ"):
        _production(SECRET_KEY=same, JWT_SECRET_KEY=same)


@pytest.mark.parametrize("weak", ["a" * 32, "changeme" * 4, "0123456789" * 4, "ab" * 20, "Password1" * 4])
@pytest.mark.parametrize("name", ["SECRET_KEY", "JWT_SECRET_KEY"])
def test_production_refuses_low_entropy_secrets_and_says_how_to_make_one(name, weak):
    with pytest.raises(ConfigurationError) as refused:
        _production(**{name: weak})
    message = str(refused.value)
    assert f"{name} has too little entropy" in message
    assert "python -c 'import secrets; print(secrets.token_urlsafe(48))'" in message
    assert weak not in message  # the error never repeats the secret


@pytest.mark.parametrize("name", ["SECRET_KEY", "JWT_SECRET_KEY"])
def test_production_refuses_the_testing_configurations_committed_secrets(name):
    for committed in (TestingConfig.SECRET_KEY, TestingConfig.JWT_SECRET_KEY):
        with pytest.raises(ConfigurationError, match=rf"{name} appears in the repository \(config.py\)"):
            _production(**{name: committed})


def test_production_refuses_a_secret_found_in_any_committed_file(tmp_path):
    value = secrets.token_urlsafe(48)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "example.md").write_text(f"SECRET_KEY={value}\n")
    (tmp_path / ".env").write_text("SECRET_KEY=the-real-one-lives-here\n")  # never committed: not read
    assert committed_file_containing(value, tmp_path) == "docs/example.md"
    assert committed_file_containing("the-real-one-lives-here", tmp_path) is None


def test_production_starts_with_strong_secrets():
    app = _production()
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert len(secrets.token_hex(16)) == 32
    _production(SECRET_KEY=secrets.token_hex(16))  # 32 random hex characters are enough


@pytest.mark.parametrize(("missing", "message"), [("MAIL_SERVER", "MAIL_SERVER must be set"),
                                                  ("PUBLIC_BASE_URL", "PUBLIC_BASE_URL must be set")])
def test_production_refuses_to_start_without_mail_or_its_public_address(missing, message):
    with pytest.raises(ConfigurationError, match=message):
        _production(**{missing: ""})


def test_mail_goes_to_smtp_when_a_server_is_set_and_to_the_log_otherwise():
    assert _production().config["MAIL_BACKEND"] == "smtp"
    development = create_app({"APP_ENV": "development", "SQLALCHEMY_DATABASE_URI": "sqlite://", "MAIL_SERVER": ""})
    assert development.config["MAIL_BACKEND"] == "app.mail.LogEmailBackend"


def test_production_without_secrets_exits_non_zero_with_a_clear_message():
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "JWT_SECRET_KEY")}
    env.update(APP_ENV="production", DATABASE_URL="sqlite://", PUBLIC_BASE_URL="https://api.example.com")
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


def test_only_the_projects_own_env_file_is_read(tmp_path):
    """A `.env` in a folder above the project (someone else's) is none of its business."""
    project = tmp_path / "home" / "project"
    project.mkdir(parents=True)
    (project / "config.py").write_text((ROOT / "config.py").read_text())
    (tmp_path / ".env").write_text("FOREIGN_SETTING=from-a-parent-folder\n")
    (tmp_path / "home" / ".env").write_text("FOREIGN_SETTING=from-the-home-folder\n")
    code = "import os, config; print(os.environ.get('FOREIGN_SETTING'), os.environ.get('OWN_SETTING'))"

    def settings_seen() -> str:
        env = {k: v for k, v in os.environ.items() if k not in ("FOREIGN_SETTING", "OWN_SETTING")}
        result = subprocess.run([sys.executable, "-c", code], cwd=project, env=env, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert settings_seen() == "None None"
    (project / ".env").write_text("OWN_SETTING=mine\n")
    assert settings_seen() == "None mine"


def test_the_development_sqlite_file_is_readable_by_its_owner_only(tmp_path):
    """What `make run` does first: `flask db upgrade` creates the file, under a umask of 022."""
    database = tmp_path / "dev.db"
    env = {**os.environ, "APP_ENV": "development", "DATABASE_URL": f"sqlite:///{database}", "FLASK_APP": "wsgi.py",
           "FLASK_SKIP_DOTENV": "1"}
    result = subprocess.run(["sh", "-c", f"umask 022 && exec {sys.executable} -m flask db upgrade"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert database.stat().st_mode & 0o777 == 0o600
