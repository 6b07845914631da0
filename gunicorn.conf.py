"""Gunicorn settings; each can be overridden from the environment."""

import multiprocessing
import os

from gunicorn.http import wsgi as _wsgi

_default_headers = _wsgi.Response.default_headers


def _without_server_banner(response) -> list[str]:
    """gunicorn always writes `Server: gunicorn`; telling every client the server helps nobody."""
    return [line for line in _default_headers(response) if not line.startswith("Server:")]


_wsgi.Response.default_headers = _without_server_banner

bind = os.environ.get("GUNICORN_BIND", f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2))
# gunicorn's sync worker, with its own errors (400, 414, 431, ...) as problem JSON.
worker_class = "app.gunicorn_worker.ProblemJsonSyncWorker"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 30))
graceful_timeout = 20
keepalive = 5
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 0))
max_requests_jitter = max_requests // 10
accesslog = None  # the app logs one line per request itself
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
if os.environ.get("LOG_FORMAT") == "json":
    # gunicorn's own lines (boot, worker timeouts) as JSON too, all on stderr with the app's.
    _level = loglevel.upper()
    logconfig_dict = {
        "root": {"level": _level, "handlers": ["error_console"]},
        "loggers": {"gunicorn.error": {"level": _level, "handlers": ["error_console"], "propagate": False,
                                       "qualname": "gunicorn.error"}},
        "formatters": {"generic": {"()": "app.logformat.JsonFormatter"}},
    }
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# gunicorn 27's control socket is one fixed path per user; several instances on a host would share it.
control_socket_disable = True
# Room for a URL with every list filter at its longest (percent-encoded); 8190 is gunicorn's maximum.
limit_request_line = int(os.environ.get("GUNICORN_LIMIT_REQUEST_LINE", 8190))
