"""Configuration classes, read from the environment (and `.env` when present).

`APP_ENV` picks the class: development (default), testing or production.
Production refuses to start without strong secrets; development generates
a per-instance secret so a first run needs no set-up.
"""

from __future__ import annotations

import math
import os
import re
import secrets
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent
# The project's own .env only: a bare load_dotenv() takes the first .env in any parent folder.
load_dotenv(BASE_DIR / ".env")
MIN_SECRET_LENGTH = 32
MIN_SECRET_BITS = 96  # a random 32-character hex string estimates at 98 or more
GOOD_SECRET_COMMAND = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
# Not the project's own files: local state, tools, and where a deployment keeps its real secrets.
_NOT_COMMITTED = {".git", ".venv", "venv", "instance", "node_modules", "__pycache__", ".pytest_cache",
                  ".ruff_cache", ".hypothesis", ".schemathesis", "test-artifacts", "out", ".env"}


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in ("1", "true", "yes", "on")


def _env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


class ConfigurationError(RuntimeError):
    """The environment does not describe a safe configuration."""


def estimated_entropy_bits(value: str) -> float:
    """A rough, generous estimate of how hard a secret is to guess.

    Length alone passes `"a" * 32` and `"changeme" * 4`: count only the distinct
    three-character runs (a repeated pattern adds none) and price each character
    by the number of distinct characters in use.
    """
    alphabet = len(set(value))
    if alphabet < 2:
        return 0.0
    runs = {value[i:i + 3] for i in range(len(value) - 2)}
    return (len(runs) + 2) * math.log2(alphabet)


def committed_file_containing(value: str, root: Path = BASE_DIR) -> str | None:
    """The project file that contains `value`, if any: a secret in the code (such as the
    testing configuration's) is known to everyone who has read the repository."""
    needle = value.encode()
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [name for name in subfolders if name not in _NOT_COMMITTED]
        for name in files:
            path = Path(folder) / name
            if name in _NOT_COMMITTED:
                continue
            try:
                if path.stat().st_size <= 8 * 1024 * 1024 and needle in path.read_bytes():
                    return str(path.relative_to(root))
            except OSError:
                continue
    return None


def secret_problem(name: str, value: str) -> str | None:
    """Why a production secret is unsafe, with how to make a good one; None when it is fine."""
    make_one = f"make one with: {GOOD_SECRET_COMMAND}"
    if len(value) < MIN_SECRET_LENGTH:
        return f"{name} must be set to a random string of at least {MIN_SECRET_LENGTH} characters ({make_one})"
    bits = estimated_entropy_bits(value)
    if bits < MIN_SECRET_BITS:
        return (f"{name} has too little entropy (about {bits:.0f} bits, at least {MIN_SECRET_BITS} needed: "
                f"repeated or guessable characters; {make_one})")
    found = committed_file_containing(value)
    if found:
        return f"{name} appears in the repository ({found}), so it is no secret ({make_one})"
    return None


class Config:
    ENV_NAME = "base"
    SECRET_KEY = os.environ.get("SECRET_KEY")
    JWT_SECRET_KEY = os.environ.get("JWT_SECRET_KEY")

    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL", "")
    SQLALCHEMY_ENGINE_OPTIONS_POOL = {
        "pool_size": _env_int("DB_POOL_SIZE", 5),
        "max_overflow": _env_int("DB_MAX_OVERFLOW", 5),
        "pool_timeout": _env_int("DB_POOL_TIMEOUT", 5),
        "pool_recycle": _env_int("DB_POOL_RECYCLE", 1800),
    }
    DB_CONNECT_TIMEOUT = _env_int("DB_CONNECT_TIMEOUT", 3)
    DB_STATEMENT_TIMEOUT_MS = _env_int("DB_STATEMENT_TIMEOUT_MS", 15000)
    DB_READ_TIMEOUT_MS = _env_int("DB_READ_TIMEOUT_MS", 2000)  # the API's reads: a slower one is a 503
    # One-row reads kept prepared on each read connection (app/database.py); off behind a pooler
    # in transaction mode, which would run an EXECUTE on a connection that never saw its PREPARE.
    DB_PREPARED_STATEMENTS = _env_bool("DB_PREPARED_STATEMENTS", True)
    # Hot standbys for the reads of posts (app/database.py: ReplicaRouter); writes stay on DATABASE_URL.
    DATABASE_REPLICA_URLS = _env_list("DATABASE_REPLICA_URLS")
    REPLICA_MAX_LAG_SECONDS = float(os.environ.get("REPLICA_MAX_LAG_SECONDS", 5))
    REPLICA_CHECK_SECONDS = float(os.environ.get("REPLICA_CHECK_SECONDS", 1))  # per worker and replica
    DB_APPLICATION_NAME = os.environ.get("DB_APPLICATION_NAME", "users-posts")  # + ":reads", ":replica1"...

    JWT_ACCESS_TOKEN_EXPIRES = timedelta(seconds=_env_int("JWT_ACCESS_TOKEN_SECONDS", 900))
    JWT_REFRESH_TOKEN_EXPIRES = timedelta(seconds=_env_int("JWT_REFRESH_TOKEN_SECONDS", 30 * 86400))
    JWT_TOKEN_LOCATION = ["headers"]  # POST /api/auth/refresh alone also reads its body (`jwt_required(locations=)`)
    JWT_REFRESH_JSON_KEY = "refresh_token"  # as in login's answer and logout's body
    JWT_COOKIE_CSRF_PROTECT = False  # bearer headers only: no cookie, no CSRF claim
    JWT_DECODE_LEEWAY = 0
    BCRYPT_ROUNDS = _env_int("BCRYPT_ROUNDS", 12)

    MAX_CONTENT_LENGTH = _env_int("MAX_CONTENT_LENGTH", 1024 * 1024)
    # Absolute links (the `Link` header) start with this instead of the request's Host.
    PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "")
    # Flask/werkzeug refuse any other Host (400). Production defaults it to PUBLIC_BASE_URL's host.
    TRUSTED_HOSTS = _env_list("TRUSTED_HOSTS") or None
    CORS_ORIGINS = _env_list("CORS_ORIGINS")
    PROXY_FIX_HOPS = _env_int("PROXY_FIX_HOPS", 0)
    COMPRESS_MIN_SIZE = 1000
    COMPRESS_ALGORITHM = ["gzip"]
    COMPRESS_MIMETYPES = ["application/json", "application/problem+json", "text/html", "text/css",
                          "application/javascript", "text/javascript"]

    # Rate limits (Flask-Limiter syntax). Storage is Redis when REDIS_URL is set.
    REDIS_URL = os.environ.get("REDIS_URL", "")
    RATELIMIT_ENABLED = os.environ.get("RATELIMIT_ENABLED", "1") not in ("0", "false", "False")
    RATELIMIT_STORAGE_URI = REDIS_URL or "memory://"
    RATELIMIT_HEADERS_ENABLED = True  # X-RateLimit-* on limited routes, Retry-After on 429
    RATELIMIT_KEY_PREFIX = os.environ.get("RATELIMIT_KEY_PREFIX", "users-posts")
    RATELIMIT_STRATEGY = os.environ.get("RATELIMIT_STRATEGY", "fixed-window")
    # A slow or lost Redis must not stall or fail requests: short timeouts, then
    # per-process counting until Redis answers again.
    RATELIMIT_STORAGE_OPTIONS = {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    RATELIMIT_LOGIN = os.environ.get("RATELIMIT_LOGIN", "10/minute")
    RATELIMIT_REGISTER = os.environ.get("RATELIMIT_REGISTER", "20/hour")
    RATELIMIT_WRITE = os.environ.get("RATELIMIT_WRITE", "120/minute")
    # Reads: anonymous clients per IP, signed-in ones per user; searches on top of that.
    RATELIMIT_READ = os.environ.get("RATELIMIT_READ", "300/minute")
    RATELIMIT_READ_USER = os.environ.get("RATELIMIT_READ_USER", "1200/minute")
    RATELIMIT_SEARCH = os.environ.get("RATELIMIT_SEARCH", "30/minute")
    # Wrong passwords (login, admin login, current_password), counted only when they fail.
    LOGIN_FAILURES_PER_EMAIL_IP = os.environ.get("LOGIN_FAILURES_PER_EMAIL_IP", "5 per 15 minutes")
    LOGIN_FAILURES_PER_EMAIL = os.environ.get("LOGIN_FAILURES_PER_EMAIL", "20 per hour")
    LOGIN_FAILURES_PER_DEVICE = os.environ.get("LOGIN_FAILURES_PER_DEVICE", "10 per 15 minutes")
    # One cap over all of an account's devices: kept device tokens add no guesses beyond it.
    LOGIN_FAILURES_PER_ACCOUNT_DEVICES = os.environ.get("LOGIN_FAILURES_PER_ACCOUNT_DEVICES", "20 per hour")
    DEVICE_TOKEN_DAYS = _env_int("DEVICE_TOKEN_DAYS", 365)

    # Conditional writes: with 1, a PATCH or DELETE without If-Match is a 428 (off: today's clients work).
    REQUIRE_IF_MATCH = os.environ.get("REQUIRE_IF_MATCH", "0") in ("1", "true", "True")
    IDEMPOTENCY_TTL_HOURS = _env_int("IDEMPOTENCY_TTL_HOURS", 24)

    ADMIN_SESSION_HOURS = _env_int("ADMIN_SESSION_HOURS", 8)  # idle: the cookie lapses
    ADMIN_SESSION_MAX_HOURS = _env_int("ADMIN_SESSION_MAX_HOURS", 12)  # absolute: the server ends it
    PERMANENT_SESSION_LIFETIME = timedelta(hours=ADMIN_SESSION_HOURS)
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
    METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
    METRICS_ENABLED = os.environ.get("METRICS_ENABLED", "1") not in ("0", "false", "False")

    LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
    LOG_FORMAT = os.environ.get("LOG_FORMAT", "text")  # or json: one object per line

    # The service's public address: links in emails (and absolute URLs) are built from it,
    # never from the request's Host header.
    PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "").rstrip("/")

    # Mail (Flask-Mailman). Without MAIL_SERVER, development and tests write messages to the log.
    MAIL_SERVER = os.environ.get("MAIL_SERVER", "")
    MAIL_PORT = _env_int("MAIL_PORT", 587)
    MAIL_USERNAME = os.environ.get("MAIL_USERNAME") or None
    MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD") or None
    MAIL_USE_TLS = _env_bool("MAIL_USE_TLS", False)
    MAIL_USE_SSL = _env_bool("MAIL_USE_SSL", False)
    MAIL_DEFAULT_SENDER = os.environ.get("MAIL_DEFAULT_SENDER", "Users & Posts <no-reply@localhost>")
    MAIL_TIMEOUT = _env_int("MAIL_TIMEOUT", 10)
    MAIL_BACKEND = os.environ.get("MAIL_BACKEND", "")  # "log": write messages to the log (test harnesses)

    # Accounts: password reset and email verification by mail.
    PASSWORD_RESET_MINUTES = _env_int("PASSWORD_RESET_MINUTES", 30)
    EMAIL_VERIFICATION_HOURS = _env_int("EMAIL_VERIFICATION_HOURS", 72)
    REQUIRE_VERIFIED_EMAIL = _env_bool("REQUIRE_VERIFIED_EMAIL", False)
    RATELIMIT_ACCOUNT_MAIL = os.environ.get("RATELIMIT_ACCOUNT_MAIL", "5/hour")

    @classmethod
    def validate(cls, config: dict) -> None:
        """Refuse settings that cannot work anywhere; subclasses add their own rules."""
        check_public_urls(config)


def check_public_urls(config: dict) -> None:
    """`PUBLIC_BASE_URL` is an absolute http(s) URL (kept without a trailing slash);
    `TRUSTED_HOSTS` is a list of host names (a comma-separated string is split)."""
    base = config.get("PUBLIC_BASE_URL") or ""
    if base:
        parts = urlsplit(base)
        if (parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment
                or "@" in parts.netloc):
            raise ConfigurationError(f"PUBLIC_BASE_URL must be an absolute http(s) URL such as "
                                     f"https://api.example.com (no query, fragment or user), not {base!r}")
    config["PUBLIC_BASE_URL"] = base.rstrip("/")
    if config.get("LOG_FORMAT", "text") not in ("text", "json"):
        raise ConfigurationError(f"LOG_FORMAT must be text or json, not {config['LOG_FORMAT']!r}")
    check_cors_origins(config)
    check_replicas(config)
    hosts = config.get("TRUSTED_HOSTS")
    if isinstance(hosts, str):
        config["TRUSTED_HOSTS"] = [h.strip() for h in hosts.split(",") if h.strip()] or None


def check_replicas(config: dict) -> None:
    """Replicas need Redis, where each client's last write position is kept for read-your-writes
    across workers and hosts; a comma-separated string is split."""
    replicas = config.get("DATABASE_REPLICA_URLS") or []
    if isinstance(replicas, str):
        replicas = [item.strip() for item in replicas.split(",") if item.strip()]
    config["DATABASE_REPLICA_URLS"] = replicas
    if replicas and not config.get("REDIS_URL"):
        raise ConfigurationError("DATABASE_REPLICA_URLS needs REDIS_URL: each client's last write position "
                                 "is kept there, so that its own reads see its writes")
    if float(config.get("REPLICA_MAX_LAG_SECONDS", 5)) <= 0:
        raise ConfigurationError("REPLICA_MAX_LAG_SECONDS must be a positive number of seconds")


def check_cors_origins(config: dict) -> None:
    """Each `CORS_ORIGINS` entry is one exact origin (`https://app.example.com`, a port may
    follow). flask-cors takes any entry with `*`, `?`, `[`... as an unanchored regex, so
    `https://*.example.org` would allow `https://example.org.evil.io`: such entries are refused."""
    origins = config.get("CORS_ORIGINS") or []
    if isinstance(origins, str):
        origins = [item.strip() for item in origins.split(",") if item.strip()]
    exact = []
    for origin in origins:
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
    PUBLIC_BASE_URL = Config.PUBLIC_BASE_URL or "http://127.0.0.1:8000"

    @classmethod
    def validate(cls, config: dict) -> None:
        """A first run needs no set-up: missing secrets are generated once, in instance/,
        and the rate limits nobody set are 100 times production's, so that someone trying
        the API, or a generated client's test run, never meets them (without Redis each
        worker counts on its own)."""
        super().validate(config)
        for name in ("SECRET_KEY", "JWT_SECRET_KEY"):
            if not config.get(name):
                config[name] = instance_secret(name)
        for name in RATE_LIMITS:
            if name not in os.environ and config.get(name):
                count, window = re.fullmatch(r"(\d+)(.*)", config[name]).groups()
                config[name] = f"{int(count) * 100}{window}"


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
    ENV_NAME = "testing"
    TESTING = True
    SECRET_KEY = "testing-secret-key-that-is-long-enough-0123456789"
    JWT_SECRET_KEY = "testing-jwt-secret-key-that-is-long-enough-012345"
    SQLALCHEMY_DATABASE_URI = os.environ.get("TEST_DATABASE_URL", "sqlite://")
    BCRYPT_ROUNDS = 4
    # The test client's own address, so links and mailed links lead back to it; a live server sets its own.
    PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://localhost")
    MAIL_SERVER = ""  # messages go to the log unless a test starts its own SMTP server
    # Off unless asked for (RATELIMIT_ENABLED=1): tests that prove the limits build
    # their own app; a gunicorn started by a test may turn them on with REDIS_URL.
    RATELIMIT_ENABLED = os.environ.get("RATELIMIT_ENABLED", "0") in ("1", "true", "True")
    WTF_CSRF_ENABLED = True


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
