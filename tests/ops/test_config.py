"""Secrets come from the environment; production refuses to start without them."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from app import create_app, database
from config import CONFIGS, ConfigurationError, Duration, TestingConfig
from tests.helpers import ROOT, production_settings


def _production(**overrides):
    return create_app({**production_settings(SQLALCHEMY_DATABASE_URI="sqlite://"), **overrides})


@pytest.mark.parametrize("missing", ["SECRET_KEY", "JWT_SECRET_KEY"])
def test_production_refuses_to_start_without_a_secret(missing):
    with pytest.raises(ConfigurationError, match=missing):
        _production(**{missing: None})


def test_production_refuses_shared_secrets():
    same = secrets.token_urlsafe(32)
    with pytest.raises(ConfigurationError, match="differ"):
        _production(SECRET_KEY=same, JWT_SECRET_KEY=same)


MAKE_ONE = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


@pytest.mark.parametrize("weak", [
    "thisismysupersecretkeyforjwt2024", "my-super-secret-flask-key-2026!!", "short",
    "a" * 32, "changeme" * 4, "0123456789" * 4, "ab" * 20, "Password1" * 4,
    TestingConfig.SECRET_KEY, TestingConfig.JWT_SECRET_KEY,  # committed, so known to every reader
])
@pytest.mark.parametrize("name", ["SECRET_KEY", "JWT_SECRET_KEY", "METRICS_TOKEN"])
def test_production_refuses_guessable_secrets_and_says_how_to_make_one(name, weak):
    with pytest.raises(ConfigurationError) as refused:
        _production(**{name: weak})
    message = str(refused.value)
    assert f"{name} is guessable" in message
    assert MAKE_ONE in message
    assert weak not in message  # the error never repeats the secret


def test_production_starts_with_secrets_made_as_the_refusal_says():
    for _ in range(20):
        app = _production(SECRET_KEY=secrets.token_urlsafe(32), JWT_SECRET_KEY=secrets.token_urlsafe(32),
                          METRICS_TOKEN=secrets.token_urlsafe(32))
        assert app.config["SESSION_COOKIE_SECURE"] is True


@pytest.mark.parametrize(("missing", "message"), [("MAIL_SERVER", "MAIL_SERVER must be set"),
                                                  ("PUBLIC_BASE_URL", "PUBLIC_BASE_URL must be set")])
def test_production_refuses_to_start_without_mail_or_its_public_address(missing, message):
    with pytest.raises(ConfigurationError, match=message):
        _production(**{missing: ""})


def test_mail_goes_to_smtp_when_a_server_is_set_and_to_files_in_the_instance_folder_otherwise():
    assert _production().config["MAIL_BACKEND"] == "smtp"
    development = create_app({"APP_ENV": "development", "SQLALCHEMY_DATABASE_URI": "sqlite://", "MAIL_SERVER": ""})
    assert development.config["MAIL_BACKEND"] == "file"
    assert development.config["MAIL_FILE_PATH"] == os.path.join(development.instance_path, "mail")
    assert _production(MAIL_BACKEND="log").config["MAIL_BACKEND"] == "file"  # harnesses' earlier setting
    with pytest.raises(ConfigurationError, match="MAIL_BACKEND"):
        _production(MAIL_BACKEND="carrier-pigeon")


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


# ---- settings mean what they say ------------------------------------------------------------

METRICS = "metrics-token-for-the-tests-0123456789abcdef"
OFF, ON = ["off", "OFF", "no", "0", "False"], ["on", "Yes", "1", "TRUE", "true"]


@pytest.mark.parametrize("value", OFF + ON)
def test_ratelimit_enabled_is_read_as_a_boolean(make_app, monkeypatch, value):
    monkeypatch.setenv("RATELIMIT_ENABLED", value)
    client = make_app(**production_settings(RATELIMIT_STORAGE_URI="memory://", RATELIMIT_READ="1/minute")).test_client()
    statuses = [client.get("/api/posts").status_code for _ in range(2)]
    assert statuses == ([200, 429] if value in ON else [200, 200])


@pytest.mark.parametrize("value", OFF + ON)
def test_metrics_enabled_is_read_as_a_boolean(make_app, monkeypatch, value):
    monkeypatch.setenv("METRICS_ENABLED", value)
    client = make_app(METRICS_TOKEN=METRICS).test_client()
    response = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS}"})
    assert response.status_code == (200 if value in ON else 404)


@pytest.mark.parametrize("value", OFF + ON)
def test_require_if_match_is_read_as_a_boolean(make_app, monkeypatch, user, value):
    monkeypatch.setenv("REQUIRE_IF_MATCH", value)
    client = make_app().test_client()
    created = client.post("/api/posts", json={"title": "Hello", "body": "Text"}, headers=user.headers)
    response = client.patch(created.headers["Location"], json={"title": "Changed"}, headers=user.headers)
    assert response.status_code == (428 if value in ON else 200)


@pytest.mark.parametrize(("variable", "value", "line"), [
    ("RATELIMIT_ENABLED", "maybe",
     "RATELIMIT_ENABLED: expected a boolean (1/0, true/false, yes/no, on/off), got 'maybe'"),
    ("DB_POOL_SIZE", "-1", "DB_POOL_SIZE: expected a whole number (0, 1, 2, ...), got '-1'"),
    ("ADMIN_SESSION_HOURS", "90m", "ADMIN_SESSION_HOURS: expected a duration in whole hours (a number of hours, "
                                   "or one with its unit: 90s, 15m, 1h, 30d), got '90m'"),
    ("JWT_ACCESS_TOKEN_SECONDS", "soon", "JWT_ACCESS_TOKEN_SECONDS: expected a duration in whole seconds (a number "
                                         "of seconds, or one with its unit: 90s, 15m, 1h, 30d), got 'soon'"),
    ("RATELIMIT_WRITE", "lots", "RATELIMIT_WRITE: expected a rate limit (10/minute, 5 per 15 minutes, "
                                "100/hour;1000/day), got 'lots'"),
    ("LOGIN_FAILURES_PER_EMAIL", "5 per fortnight", "LOGIN_FAILURES_PER_EMAIL: expected one rate limit (10/minute, "
                                                    "5 per 15 minutes), got '5 per fortnight'"),
    ("LOGIN_FAILURES_PER_DEVICE", "5/minute;50/day", "LOGIN_FAILURES_PER_DEVICE: expected one rate limit "
                                                     "(10/minute, 5 per 15 minutes), got '5/minute;50/day'"),
    ("DB_POOLER", "statement", "DB_POOLER: expected one of none, transaction, got 'statement'"),
    ("ADMIN_PAGE_SIZE", "0", "ADMIN_PAGE_SIZE: expected a whole number from 1 to 500, got '0'"),
    ("ADMIN_PAGE_SIZE", "all", "ADMIN_PAGE_SIZE: expected a whole number from 1 to 500, got 'all'"),
])
def test_a_value_that_is_not_understood_stops_the_start_naming_the_variable(monkeypatch, variable, value, line):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as refused:
        create_app({"APP_ENV": "testing", "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    assert str(refused.value) == line


def test_the_start_refuses_every_value_not_understood_one_line_each():
    env = {**os.environ, "APP_ENV": "development", "DATABASE_URL": "sqlite://", "RATELIMIT_ENABLED": "maybe",
           "DB_POOL_SIZE": "five"}
    result = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "error: DB_POOL_SIZE: expected a whole number (0, 1, 2, ...), got 'five'",
        "RATELIMIT_ENABLED: expected a boolean (1/0, true/false, yes/no, on/off), got 'maybe'"]


@pytest.mark.parametrize(("value", "rows"), [(None, 20), ("50", 50), (" 500 ", 500)])
def test_admin_lists_show_the_rows_the_environment_asks_for(monkeypatch, value, rows):
    if value is None:
        monkeypatch.delenv("ADMIN_PAGE_SIZE", raising=False)
    else:
        monkeypatch.setenv("ADMIN_PAGE_SIZE", value)
    assert create_app({"APP_ENV": "testing", "SQLALCHEMY_DATABASE_URI": "sqlite://"}).config["ADMIN_PAGE_SIZE"] == rows


@pytest.mark.parametrize(("value", "expires_in"), [("3600", 3600), ("15m", 900), ("1h", 3600), ("90s", 90)])
def test_token_lifetimes_take_seconds_or_a_unit(make_app, monkeypatch, user, value, expires_in):
    monkeypatch.setenv("JWT_ACCESS_TOKEN_SECONDS", value)
    client = make_app().test_client()
    response = client.post("/api/auth/login", json={"email": user.email, "password": user.password})
    assert response.get_json()["expires_in"] == expires_in


@pytest.mark.parametrize(("parse", "raw", "value"), [
    (Duration("ms"), "15s", 15000), (Duration("ms"), "2000", 2000), (Duration("m"), "1h", 60),
    (Duration("h"), "2d", 48), (Duration("d"), "365", 365), (Duration("s", whole=False), "0.5", 0.5),
    (Duration("s", whole=False), "500ms", 0.5), (Duration("h"), "0.5d", 12),
])
def test_durations_are_numbers_in_the_variables_unit_or_carry_their_own(parse, raw, value):
    assert parse(raw) == value


def test_create_app_overrides_reach_the_engines_pools(monkeypatch):
    """On PostgreSQL every pool (writes, reads) is sized from the final configuration. No
    server is needed: an engine connects on first use only."""
    nowhere = "postgresql://postgres@127.0.0.1:9/app_test_nowhere"
    monkeypatch.setenv("DB_POOL_SIZE", "4")
    for overrides, size in (({}, 4), ({"DB_POOL_SIZE": 3}, 3), ({"DB_POOL_SIZE": "2"}, 2)):
        app = create_app({"APP_ENV": "testing", "SQLALCHEMY_DATABASE_URI": nowhere, **overrides})
        try:
            with app.app_context():
                assert [engine.pool.size() for engine in database.engines(app)] == [size, size]
        finally:
            for engine in database.engines(app):
                engine.dispose()


def test_create_app_overrides_reach_the_settings_made_from_them():
    app = create_app({"APP_ENV": "testing", "SQLALCHEMY_DATABASE_URI": "sqlite://", "ADMIN_SESSION_HOURS": 2,
                      "REDIS_URL": "redis://127.0.0.1:1/0", "TRUSTED_HOSTS": "a.example, b.example"})
    assert app.config["PERMANENT_SESSION_LIFETIME"] == timedelta(hours=2)
    assert app.config["RATELIMIT_STORAGE_URI"] == "redis://127.0.0.1:1/0"
    assert app.config["TRUSTED_HOSTS"] == ["a.example", "b.example"]


def test_development_multiplies_only_the_rate_limits_nobody_set(make_app, monkeypatch):
    monkeypatch.setenv("RATELIMIT_SEARCH", "7/minute")
    development = make_app(APP_ENV="development", RATELIMIT_LOGIN="3/minute").config
    assert (development["RATELIMIT_LOGIN"], development["RATELIMIT_SEARCH"], development["RATELIMIT_WRITE"]) == (
        "3/minute", "7/minute", "12000/minute")


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_each_variable_is_read_once(name):
    variables = [setting.env or key for key, setting in CONFIGS[name].settings().items()]
    assert len(variables) == len(set(variables))


def gunicorn_config(**env: str) -> subprocess.CompletedProcess:
    """What gunicorn makes of gunicorn.conf.py in this environment (`--print-config` starts nothing)."""
    return subprocess.run([str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py", "--print-config",
                           "wsgi:app"], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize(("value", "preloaded"), [("off", "False"), ("no", "False"), ("on", "True"), ("1", "True")])
def test_gunicorn_reads_its_variables_as_the_app_does(value, preloaded):
    result = gunicorn_config(GUNICORN_PRELOAD=value, GUNICORN_TIMEOUT="1m")
    assert result.returncode == 0, result.stderr
    settings = dict(re.fullmatch(r"(\w+)\s+= (.*)", line).groups() for line in result.stdout.splitlines()
                    if re.fullmatch(r"\w+\s+= .*", line))
    assert (settings["preload_app"], settings["timeout"]) == (preloaded, "60")


def test_gunicorn_refuses_a_value_it_does_not_understand_in_one_line():
    result = gunicorn_config(GUNICORN_PRELOAD="maybe")
    assert result.returncode != 0
    assert result.stderr.strip() == ("error: GUNICORN_PRELOAD: expected a boolean (1/0, true/false, yes/no, on/off), "
                                     "got 'maybe'")
