"""Configuration classes; the values come from the environment (and `.env` when present).

`APP_ENV` picks the class: development (default), testing or production. Each variable is
declared once, as a `Setting` of `Config` with its parser and its default, and read when an app
is made (`Config.load`, called by `create_app`), never at import. One parser per kind of value:
booleans (`1/0`, `true/false`, `yes/no`, `on/off`, any case), whole numbers, comma-separated
lists, durations (a number in the unit the variable's name gives, or `90s`, `15m`, `1h`,
`30d`) and rate limits (Flask-Limiter's `10/minute`). An empty value counts as unset. A value
the parser does not recognise stops the start with one line naming the variable and what it
accepts.

Production refuses to start without strong secrets; development generates a per-instance
secret so a first run needs no set-up.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv import load_dotenv
from limits import parse_many
from zxcvbn import zxcvbn

BASE_DIR = Path(__file__).resolve().parent
# The project's own .env only: a bare load_dotenv() takes the first .env in any parent folder.
load_dotenv(BASE_DIR / ".env")

# A signing key is attacked offline at the speed of hardware, so the bar is far above a
# password's: zxcvbn's estimate of the guesses a smart attacker needs must reach 10^36 (about
# 120 bits). 32 random bytes (`token_urlsafe(32)`) always do; human phrases such as
# "my-super-secret-flask-key-2026!!" do not, and neither do shorter random strings (a UUID).
MIN_SECRET_GUESSES_LOG10 = 36
GOOD_SECRET_COMMAND = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


class ConfigurationError(RuntimeError):
    """The environment does not describe a safe configuration."""


# ---- parsers: each takes the variable's text, or raises ValueError saying what it accepts ----

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
_MS_PER_UNIT = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_UNIT_NAMES = {"ms": "milliseconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)?")


def text(raw: str) -> str:
    return raw


def boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("a boolean (1/0, true/false, yes/no, on/off)")


def integer(raw: str) -> int:
    if not re.fullmatch(r"[0-9]+", raw.strip()):
        raise ValueError("a whole number (0, 1, 2, ...)")
    return int(raw)


@dataclass(frozen=True)
class Between:
    """A whole number from `low` to `high` (`ADMIN_PAGE_SIZE=50`)."""

    low: int
    high: int

    def __call__(self, raw: str) -> int:
        refusal = ValueError(f"a whole number from {self.low} to {self.high}")
        try:
            value = integer(raw)
        except ValueError:
            raise refusal from None
        if not self.low <= value <= self.high:
            raise refusal
        return value


def mail_backend(raw: str) -> str:
    """`smtp` or `file` (the development mailbox); `log`, this setting's earlier value for test
    harnesses without a mail server, means `file`."""
    value = raw.strip().lower()
    if value not in ("smtp", "file", "log"):
        raise ValueError("smtp or file")
    return "file" if value == "log" else value


def items(raw: str) -> list[str]:
    """A comma-separated list; blanks around and between the commas are dropped."""
    return [item.strip() for item in raw.split(",") if item.strip()]


@dataclass(frozen=True)
class OneOf:
    """One word of a fixed few, in any case (`DB_POOLER=transaction`)."""

    choices: tuple[str, ...]

    def __call__(self, raw: str) -> str:
        value = raw.strip().lower()
        if value not in self.choices:
            raise ValueError(f"one of {', '.join(self.choices)}")
        return value


def rate_limits(raw: str) -> str:
    """Flask-Limiter's notation, one limit or several separated by `;`: checked now, since the
    limiter would first read it at a request, and answer that request with a 500. Empty (only
    from `create_app`'s overrides: in the environment it means unset) is no limit."""
    if not raw.strip():
        return ""
    try:
        parse_many(raw)
    except ValueError:
        raise ValueError("a rate limit (10/minute, 5 per 15 minutes, 100/hour;1000/day)") from None
    return raw.strip()


def rate_limit(raw: str) -> str:
    """One limit in Flask-Limiter's notation (a guessing budget counts against exactly one)."""
    try:
        (_one,) = parse_many(raw)
    except ValueError:
        raise ValueError("one rate limit (10/minute, 5 per 15 minutes)") from None
    return raw.strip()


@dataclass(frozen=True)
class Duration:
    """A length of time, kept as a number of `unit`s (the unit the variable's name gives): a
    bare number is in that unit, `90s`, `15m`, `1h`, `30d` (or `500ms`) say their own. With
    `whole`, the result must be a whole number of `unit`s."""

    unit: str
    whole: bool = True

    def __call__(self, raw: str) -> int | float:
        match = _DURATION.fullmatch(raw.strip().lower())
        if match:
            number, unit = match.groups()
            value = Fraction(number) * _MS_PER_UNIT[unit or self.unit] / _MS_PER_UNIT[self.unit]
            if not self.whole:
                return float(value)
            if value.denominator == 1:
                return int(value)
        name = _UNIT_NAMES[self.unit]
        raise ValueError(f"a duration in {'whole ' if self.whole else ''}{name} (a number of {name}, or one "
                         f"with its unit: 90s, 15m, 1h, 30d)")


def seconds(raw: str) -> timedelta:
    """A duration (see `Duration`) as a timedelta, a bare number counting seconds."""
    return timedelta(seconds=Duration("s")(raw))


@dataclass(frozen=True)
class Setting:
    """A value read from the environment variable `env` (by default the key's own name)."""

    parse: Callable[[str], Any]
    default: Any = None
    env: str | None = None

    def read(self, environ: Mapping[str, str], key: str | None = None) -> Any:
        """The value `environ` gives, or the default when the variable is unset or empty."""
        variable = self.env or key or ""
        raw = environ.get(variable, "")
        if not raw.strip():
            return self.default
        try:
            return self.parse(raw)
        except ValueError as error:
            raise ConfigurationError(_problem(variable, raw, error)) from None


def environment_value(variable: str, parse: Callable[[str], Any], default: Any = None) -> Any:
    """A variable outside the app's configuration (gunicorn.conf.py's), read as the app reads its own."""
    return Setting(parse, default, variable).read(os.environ)


def _problem(variable: str, raw: str, error: ValueError) -> str:
    return f"{variable}: expected {error}, got {raw!r}"


def secret_problem(name: str, value: str) -> str | None:
    """Why a production secret is unsafe, with how to make a good one; None when it is fine.
    The secret itself is never repeated."""
    make_one = f"make one with: {GOOD_SECRET_COMMAND}"
    if not value:
        return f"{name} must be set to a random string ({make_one})"
    judged = value[:256]  # the estimator's time grows with the square of the length
    guesses = zxcvbn(judged, max_length=max(len(judged), 72))["guesses_log10"]
    if guesses < MIN_SECRET_GUESSES_LOG10:
        return (f"{name} is guessable: a password-strength estimator (zxcvbn) puts it at about "
                f"10^{guesses:.0f} guesses, at least 10^{MIN_SECRET_GUESSES_LOG10} are needed ({make_one})")
    return None


class Config:
    ENV_NAME = "base"
    SECRET_KEY = Setting(text)
    JWT_SECRET_KEY = Setting(text)

    SQLALCHEMY_DATABASE_URI = Setting(text, "", env="DATABASE_URL")
    # Each of a worker's pools (writes; reads; one per replica): app/database.py builds the
    # engines' options from these when the app is made.
    DB_POOL_SIZE = Setting(integer, 5)
    DB_MAX_OVERFLOW = Setting(integer, 5)
    DB_POOL_TIMEOUT = Setting(Duration("s"), 5)
    DB_POOL_RECYCLE = Setting(Duration("s"), 1800)
    DB_CONNECT_TIMEOUT = Setting(Duration("s"), 3)
    DB_STATEMENT_TIMEOUT_MS = Setting(Duration("ms"), 15000)
    DB_READ_TIMEOUT_MS = Setting(Duration("ms"), 2000)  # the API's reads: a slower one is a 503
    # Hot standbys for the reads of posts (app/database.py: ReplicaRouter); writes stay on DATABASE_URL.
    DATABASE_REPLICA_URLS = Setting(items, [])
    REPLICA_MAX_LAG_SECONDS = Setting(Duration("s", whole=False), 5.0)
    REPLICA_CHECK_SECONDS = Setting(Duration("s", whole=False), 1.0)  # per worker and replica
    DB_APPLICATION_NAME = Setting(text, "users-posts")  # + ":reads", ":replica1"...
    # What sits between the app and PostgreSQL: `none` (a direct connection, or a pooler that keeps
    # a server connection per client) or `transaction` (PgBouncer's pool_mode = transaction): then
    # the per-connection settings go to the server in each transaction (app/database.py).
    DB_POOLER = Setting(OneOf(("none", "transaction")), "none")

    JWT_ACCESS_TOKEN_EXPIRES = Setting(seconds, timedelta(seconds=900), env="JWT_ACCESS_TOKEN_SECONDS")
    JWT_REFRESH_TOKEN_EXPIRES = Setting(seconds, timedelta(days=30), env="JWT_REFRESH_TOKEN_SECONDS")
    # Refreshing moves a session's end on by the refresh lifetime, but never past this age:
    # a stolen refresh token kept in use is not good forever.
    SESSION_MAX_DAYS = Setting(Duration("d"), 90)
    JWT_TOKEN_LOCATION = ["headers"]  # POST /api/auth/refresh alone also reads its body (app/identity.py)
    JWT_REFRESH_JSON_KEY = "refresh_token"  # as in login's answer and logout's body
    JWT_COOKIE_CSRF_PROTECT = False  # bearer headers only: no cookie, no CSRF claim
    JWT_DECODE_LEEWAY = 0
    BCRYPT_ROUNDS = Setting(integer, 12)

    MAX_CONTENT_LENGTH = Setting(integer, 1024 * 1024)
    # The service's public address: absolute links (`Link`, mailed links, the OpenAPI `servers`)
    # start with it, never with the request's Host header. Production requires it; unset
    # (development), links follow the address each request came to (app/urls.py).
    PUBLIC_BASE_URL = Setting(text, "")
    # Where `make run` serves (gunicorn.conf.py binds it): links made outside any request
    # (`flask openapi write`) point there when PUBLIC_BASE_URL is unset (`LOCAL_BASE_URL`).
    PORT = Setting(integer, 8000)
    # Flask/werkzeug refuse any other Host (400). Production defaults it to PUBLIC_BASE_URL's host.
    TRUSTED_HOSTS = Setting(items)
    CORS_ORIGINS = Setting(items, [])
    PROXY_FIX_HOPS = Setting(integer, 0)
    COMPRESS_MIN_SIZE = 1000
    COMPRESS_ALGORITHM = ["gzip"]
    COMPRESS_MIMETYPES = ["application/json", "application/problem+json", "text/html", "text/css",
                          "application/javascript", "text/javascript"]

    # Rate limits (Flask-Limiter syntax). Storage is Redis when REDIS_URL is set (`load`).
    REDIS_URL = Setting(text, "")
    RATELIMIT_ENABLED = Setting(boolean, True)
    RATELIMIT_HEADERS_ENABLED = True  # X-RateLimit-* on limited routes, Retry-After on 429
    RATELIMIT_KEY_PREFIX = Setting(text, "users-posts")
    RATELIMIT_STRATEGY = Setting(text, "fixed-window")
    # A slow or lost Redis must not stall or fail requests: short timeouts, then
    # per-process counting until Redis answers again.
    RATELIMIT_STORAGE_OPTIONS = {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    RATELIMIT_LOGIN = Setting(rate_limits, "10/minute")
    RATELIMIT_REGISTER = Setting(rate_limits, "20/hour")
    RATELIMIT_WRITE = Setting(rate_limits, "120/minute")
    # Reads: anonymous clients per IP, signed-in ones per user; searches on top of that.
    RATELIMIT_READ = Setting(rate_limits, "300/minute")
    RATELIMIT_READ_USER = Setting(rate_limits, "1200/minute")
    RATELIMIT_SEARCH = Setting(rate_limits, "30/minute")
    # Wrong passwords (login, admin login, current_password), counted only when they fail.
    LOGIN_FAILURES_PER_EMAIL_IP = Setting(rate_limit, "5 per 15 minutes")
    LOGIN_FAILURES_PER_EMAIL = Setting(rate_limit, "20 per hour")
    LOGIN_FAILURES_PER_DEVICE = Setting(rate_limit, "10 per 15 minutes")
    # One cap over all of an account's devices: kept device tokens add no guesses beyond it.
    LOGIN_FAILURES_PER_ACCOUNT_DEVICES = Setting(rate_limit, "20 per hour")
    DEVICE_TOKEN_DAYS = Setting(Duration("d"), 365)

    # Conditional writes: on, a PATCH or DELETE without If-Match is a 428 (off: today's clients work).
    REQUIRE_IF_MATCH = Setting(boolean, False)
    IDEMPOTENCY_TTL_HOURS = Setting(Duration("h"), 24)

    ADMIN_SESSION_HOURS = Setting(Duration("h"), 8)  # idle: the cookie lapses
    ADMIN_SESSION_MAX_HOURS = Setting(Duration("h"), 12)  # absolute: the server ends it
    ADMIN_PAGE_SIZE = Setting(Between(1, 500), 20)  # rows on each admin list page, as Flask-Admin shows
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_NAME = "admin_session"
    SESSION_COOKIE_PATH = "/admin"  # browsers never send the admin session to /api
    WTF_CSRF_TIME_LIMIT = None

    API_TITLE = "Users & Posts API"
    API_VERSION = "1.0.0"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/"
    OPENAPI_JSON_PATH = "openapi.json"
    OPENAPI_SWAGGER_UI_PATH = "/docs"
    OPENAPI_SWAGGER_UI_URL = "/static/vendor/swagger-ui/"
    OPENAPI_SWAGGER_UI_CONFIG = {"validatorUrl": None}  # offline: no badge from validator.swagger.io
    OPENAPI_REDOC_PATH = "/redoc"
    OPENAPI_REDOC_URL = "/static/vendor/redoc/redoc.standalone.js"

    # GET /metrics answers this bearer token only; unset, there is no /metrics (app/metrics.py).
    METRICS_TOKEN = Setting(text, "")
    METRICS_ENABLED = Setting(boolean, True)

    LOG_LEVEL = Setting(text, "INFO")
    LOG_FORMAT = Setting(text, "text")  # or json: one object per line

    # Mail (Flask-Mailman), sent by `flask worker` from the outbox (app/worker.py). Without
    # MAIL_SERVER the worker writes each message to a file under MAIL_FILE_PATH instead.
    MAIL_SERVER = Setting(text, "")
    MAIL_PORT = Setting(integer, 587)
    MAIL_USERNAME = Setting(text)
    MAIL_PASSWORD = Setting(text)
    MAIL_USE_TLS = Setting(boolean, False)
    MAIL_USE_SSL = Setting(boolean, False)
    MAIL_DEFAULT_SENDER = Setting(text, "Users & Posts <no-reply@localhost>")
    MAIL_TIMEOUT = Setting(Duration("s"), 10)
    MAIL_BACKEND = Setting(mail_backend, "")  # "file": the development mailbox even with a server set
    MAIL_FILE_PATH = Setting(text, "")  # the development mailbox; by default instance/mail
    MAIL_MAX_ATTEMPTS = Setting(integer, 15)  # the first within a minute, the last about a day later
    MAIL_RETRY_DELAY = Setting(Duration("s", whole=False), 10)  # before the first retry; doubles each time
    MAIL_LEASE = Setting(Duration("s"), 120)  # a worker silent this long is presumed dead: its message goes again
    MAIL_KEEP_SENT_DAYS = Setting(Duration("d"), 7)  # sent messages' rows are pruned after this
    WORKER_POLL_INTERVAL = Setting(Duration("s", whole=False), 1)  # how often an idle worker looks for mail
    UPKEEP_INTERVAL = Setting(Duration("s"), 3600)  # how often each upkeep job runs (one worker at a time)
    WORKER_METRICS_BIND = Setting(text, "")  # host:port for the worker's own counters; unset: not served

    # Stopping (serve.py, the image's command): on SIGTERM the instance first creates DRAIN_FILE,
    # so /health/ready answers 503 and load balancers take it out, and keeps serving for
    # SHUTDOWN_DELAY seconds; only then does gunicorn get its own SIGTERM. serve.py picks a fresh
    # DRAIN_FILE under the temp dir when it is unset; the file's presence is what every worker reads.
    SHUTDOWN_DELAY = Setting(Duration("s", whole=False), 0)
    DRAIN_FILE = Setting(text, "")

    # Accounts: password reset and email verification by mail.
    PASSWORD_RESET_MINUTES = Setting(Duration("m"), 30)
    EMAIL_VERIFICATION_HOURS = Setting(Duration("h"), 72)
    REQUIRE_VERIFIED_EMAIL = Setting(boolean, False)
    RATELIMIT_ACCOUNT_MAIL = Setting(rate_limits, "5/hour")

    @classmethod
    def settings(cls) -> dict[str, Setting]:
        """The keys read from the environment, with how."""
        return {name: value for name in dir(cls) if name.isupper()
                and isinstance(value := getattr(cls, name), Setting)}

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Every key as it is when neither the environment nor `create_app`'s caller sets it."""
        return {name: value.default if isinstance(value, Setting) else value
                for name in dir(cls) if name.isupper() for value in (getattr(cls, name),)}

    @classmethod
    def load(cls, environ: Mapping[str, str], overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The configuration: defaults, then the environment, then `overrides` (a string for a key
        that is not text is parsed as the environment's would be), then what follows from them."""
        config = cls.defaults()
        settings = cls.settings()
        problems = []
        for key, setting in settings.items():
            if environ.get(setting.env or key, "").strip():  # else the class's default stays
                try:
                    config[key] = setting.read(environ, key)
                except ConfigurationError as error:
                    problems.append(str(error))
        for key, value in (overrides or {}).items():
            setting = settings.get(key)
            if isinstance(value, str) and setting is not None and setting.parse is not text:
                try:
                    value = setting.parse(value)
                except ValueError as error:
                    problems.append(_problem(key, value, error))
            config[key] = value
        if problems:
            raise ConfigurationError("\n".join(problems))  # one problem a line
        config.setdefault("PERMANENT_SESSION_LIFETIME", timedelta(hours=config["ADMIN_SESSION_HOURS"]))
        config.setdefault("LOCAL_BASE_URL", f"http://127.0.0.1:{config['PORT']}")
        if not config.get("RATELIMIT_STORAGE_URI"):
            config["RATELIMIT_STORAGE_URI"] = config["REDIS_URL"] or "memory://"
        return config

    @classmethod
    def validate(cls, config: dict) -> None:
        """Refuse settings that cannot work anywhere; subclasses add their own rules."""
        check_public_urls(config)


def check_public_urls(config: dict) -> None:
    """`PUBLIC_BASE_URL` is an absolute http(s) URL (kept without a trailing slash);
    `TRUSTED_HOSTS` is a list of host names, or None (any host)."""
    base = config.get("PUBLIC_BASE_URL") or ""
    if base:
        parts = urlsplit(base)
        if (parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment
                or "@" in parts.netloc):
            raise ConfigurationError(f"PUBLIC_BASE_URL must be an absolute http(s) URL such as "
                                     f"https://api.example.com (no query, fragment or user), not {base!r}")
    config["PUBLIC_BASE_URL"] = base.rstrip("/")
    if config["LOG_FORMAT"] not in ("text", "json"):
        raise ConfigurationError(f"LOG_FORMAT must be text or json, not {config['LOG_FORMAT']!r}")
    check_cors_origins(config)
    check_replicas(config)
    config["TRUSTED_HOSTS"] = config.get("TRUSTED_HOSTS") or None


def check_replicas(config: dict) -> None:
    """Replicas need Redis, where each client's last write position is kept for read-your-writes
    across workers and hosts."""
    replicas = config["DATABASE_REPLICA_URLS"] = config.get("DATABASE_REPLICA_URLS") or []
    if replicas and not config.get("REDIS_URL"):
        raise ConfigurationError("DATABASE_REPLICA_URLS needs REDIS_URL: each client's last write position "
                                 "is kept there, so that its own reads see its writes")
    if float(config.get("REPLICA_MAX_LAG_SECONDS", 5)) <= 0:
        raise ConfigurationError("REPLICA_MAX_LAG_SECONDS must be a positive number of seconds")


def check_cors_origins(config: dict) -> None:
    """Each `CORS_ORIGINS` entry is one exact origin (`https://app.example.com`, a port may
    follow). flask-cors takes any entry with `*`, `?`, `[`... as an unanchored regex, so
    `https://*.example.org` would allow `https://example.org.evil.io`: such entries are refused."""
    exact = []
    for origin in config.get("CORS_ORIGINS") or []:
        candidate = origin.removesuffix("/")
        parts = urlsplit(candidate)
        if (parts.scheme not in ("http", "https") or not _ORIGIN_HOST.fullmatch(parts.netloc)
                or parts.path or parts.query or parts.fragment):
            raise ConfigurationError(
                f"CORS_ORIGINS entries are exact origins such as https://app.example.com (scheme, host, "
                f"optional port; no wildcard, pattern or path), not {origin!r}")
        exact.append(candidate.lower())
    config["CORS_ORIGINS"] = exact


# A host name or an IPv6 literal, and an optional port: nothing a pattern could hide in.
_ORIGIN_HOST = re.compile(r"([a-z0-9-]+(\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])(:[0-9]{1,5})?", re.IGNORECASE)


RATE_LIMITS = ("RATELIMIT_LOGIN", "RATELIMIT_REGISTER", "RATELIMIT_WRITE", "RATELIMIT_READ",
               "RATELIMIT_READ_USER", "RATELIMIT_SEARCH", "RATELIMIT_ACCOUNT_MAIL",
               "LOGIN_FAILURES_PER_EMAIL_IP", "LOGIN_FAILURES_PER_EMAIL", "LOGIN_FAILURES_PER_DEVICE",
               "LOGIN_FAILURES_PER_ACCOUNT_DEVICES")


class DevelopmentConfig(Config):
    ENV_NAME = "development"

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """The rate limits nobody set are 100 times production's, so that someone trying the
        API, or a generated client's test run, never meets them (without Redis each worker
        counts on its own)."""
        values = super().defaults()
        for name in RATE_LIMITS:
            count, window = re.fullmatch(r"(\d+)(.*)", values[name]).groups()
            values[name] = f"{int(count) * 100}{window}"
        return values

    @classmethod
    def validate(cls, config: dict) -> None:
        """A first run needs no set-up: missing secrets are generated once, in instance/."""
        super().validate(config)
        for name in ("SECRET_KEY", "JWT_SECRET_KEY"):
            if not config.get(name):
                config[name] = instance_secret(name)


def instance_secret(name: str, folder: Path = BASE_DIR / "instance") -> str:
    """A random secret kept in the instance folder.

    Every gunicorn worker (and every restart) of a development server must sign
    with the same key, or a session, CSRF token or JWT from one worker fails on
    the next. The first writer wins: the file appears atomically via a hard link.
    """
    path = folder / f".{name.lower()}"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        draft = folder / f".{name.lower()}.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()


class TestingConfig(Config):
    """The suite's: plain values here are fixed, whatever the environment says."""

    ENV_NAME = "testing"
    TESTING = True
    SECRET_KEY = "testing-secret-key-that-is-long-enough-0123456789"
    JWT_SECRET_KEY = "testing-jwt-secret-key-that-is-long-enough-012345"
    SQLALCHEMY_DATABASE_URI = Setting(text, "sqlite://", env="TEST_DATABASE_URL")
    BCRYPT_ROUNDS = 4
    MAIL_SERVER = ""  # the worker writes files unless a test starts its own SMTP server
    WTF_CSRF_ENABLED = True

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Links lead back to the test client's own address (a live server sets its own), and
        rate limits are off unless asked for (RATELIMIT_ENABLED=1): tests that prove the limits
        build their own app; a gunicorn started by a test may turn them on with REDIS_URL."""
        return {**super().defaults(), "PUBLIC_BASE_URL": "http://localhost", "RATELIMIT_ENABLED": False}


class ProductionConfig(Config):
    ENV_NAME = "production"
    SESSION_COOKIE_SECURE = True

    @classmethod
    def validate(cls, config: dict) -> None:
        super().validate(config)
        problems = []
        for name in ("SECRET_KEY", "JWT_SECRET_KEY"):
            problem = secret_problem(name, config.get(name) or "")
            if problem:
                problems.append(problem)
        if config.get("METRICS_TOKEN"):
            problem = secret_problem("METRICS_TOKEN", config["METRICS_TOKEN"])
            if problem:
                problems.append(problem)
        if config.get("SECRET_KEY") and config.get("SECRET_KEY") == config.get("JWT_SECRET_KEY"):
            problems.append("SECRET_KEY and JWT_SECRET_KEY must differ")
        if not config.get("SQLALCHEMY_DATABASE_URI"):
            problems.append("DATABASE_URL must be set")
        if not config.get("MAIL_SERVER"):
            problems.append("MAIL_SERVER must be set: password resets and email verification send mail")
        if not str(config.get("PUBLIC_BASE_URL") or "").startswith(("https://", "http://")):
            problems.append("PUBLIC_BASE_URL must be set to the URL clients use, e.g. https://api.example.com "
                            "(absolute links and the links in emails are built from it, never from the request's Host)")
        elif config.get("TRUSTED_HOSTS") is None:
            config["TRUSTED_HOSTS"] = [urlsplit(config["PUBLIC_BASE_URL"]).hostname]
        if problems:
            # One problem a line: several at once (say, both secrets and the mail server) stay readable.
            raise ConfigurationError("Refusing to start in production:" + "".join(f"\n  - {p}" for p in problems))


CONFIGS: dict[str, type[Config]] = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def get_config(name: str | None = None) -> type[Config]:
    name = name or os.environ.get("APP_ENV", "development")
    try:
        return CONFIGS[name]
    except KeyError:
        raise ConfigurationError(f"APP_ENV must be one of {', '.join(CONFIGS)}, not {name!r}") from None
