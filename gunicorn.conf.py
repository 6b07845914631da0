"""Gunicorn settings; each can be overridden from the environment.

Nothing of gunicorn is patched: what it answers itself (its `Server` header, its error pages
for requests it cannot parse) nginx hides or answers first (deploy/nginx.conf.template).
"""

import gc
import logging
import multiprocessing
import os
import sys

from config import Config, ConfigurationError, Duration, boolean, environment_value, integer, text

worker_class = "sync"  # one request at a time per worker; nginx in front buffers slow clients for it
try:  # each variable read as the app reads its own (config.py): one not understood stops the start
    bind = environment_value("GUNICORN_BIND", text) or (
        f"{environment_value('HOST', text, '127.0.0.1')}:{environment_value('PORT', integer, 8000)}")
    workers = environment_value("WEB_CONCURRENCY", integer, multiprocessing.cpu_count() * 2)
    # The app is loaded once, in the master, and every worker is forked from it: the workers share
    # its memory instead of each importing and building it, and a replaced worker is ready at once.
    # A code change then needs a restart (a HUP reloads the configuration, not the code). Each
    # worker opens its own database connections (app/database.py forgets the inherited ones).
    preload_app = environment_value("GUNICORN_PRELOAD", boolean, True)
    timeout = environment_value("GUNICORN_TIMEOUT", Duration("s"), 30)
    max_requests = environment_value("GUNICORN_MAX_REQUESTS", integer, 0)
    loglevel = environment_value("LOG_LEVEL", text, Config.LOG_LEVEL.default).lower()
    _log_format = environment_value("LOG_FORMAT", text, Config.LOG_FORMAT.default)
    forwarded_allow_ips = environment_value("FORWARDED_ALLOW_IPS", text, "127.0.0.1")
    # Room for a URL with every list filter at its longest (percent-encoded); 8190 is gunicorn's maximum.
    limit_request_line = environment_value("GUNICORN_LIMIT_REQUEST_LINE", integer, 8190)
    # After SIGTERM, how long the workers have to finish the requests in flight before they are
    # killed. The image sets it lower, so that SHUTDOWN_DELAY plus this fits docker stop's 10 s.
    graceful_timeout = environment_value("GUNICORN_GRACEFUL_TIMEOUT", Duration("s"), 20)
except ConfigurationError as error:
    sys.exit(f"error: {error}")
keepalive = 5
max_requests_jitter = max_requests // 10
accesslog = None  # the app logs one line per request itself
errorlog = "-"
# Every request writes a log line; these record fields cost their share of each line and no
# format here shows them: the thread and the multiprocessing name (documented switches of the
# logging module, which the logging HOWTO's "Optimization" section names). The process id stays:
# gunicorn's own format shows it (`[%(process)d]`).
logging.logThreads = False
logging.logMultiprocessing = False
if _log_format == "json":
    # gunicorn's own lines (boot, worker timeouts) as JSON too, all on stderr with the app's.
    _level = loglevel.upper()
    logconfig_dict = {
        "root": {"level": _level, "handlers": ["error_console"]},
        "loggers": {"gunicorn.error": {"level": _level, "handlers": ["error_console"], "propagate": False,
                                       "qualname": "gunicorn.error"}},
        "formatters": {"generic": {"()": "app.logformat.JsonFormatter"}},
    }
# gunicorn 27's control socket is one fixed path per user; several instances on a host would share it.
control_socket_disable = True

# Metrics (app/metrics.py): every worker writes its samples to PROMETHEUS_MULTIPROC_DIR and a scrape
# adds them up. Set before the app imports prometheus_client; emptied at each start, since files
# left by an earlier run would be counted again.
_own_metrics_dir = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _own_metrics_dir:
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="users-posts-metrics-")
os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)


def on_starting(server) -> None:
    """Files of earlier runs go; the master's own stay: the preloaded app has opened them, and
    the master counts worker restarts in them."""
    import glob

    own = f"_{os.getpid()}.db"
    for path in glob.glob(os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], "*.db")):
        if not path.endswith(own):
            os.remove(path)


def pre_fork(server, worker) -> None:
    """Move everything the master holds (the loaded app) out of the collector's reach, so a
    worker's collections neither walk nor write to the pages it shares with the master
    (the `gc.freeze` documentation's advice for a process that forks without exec)."""
    gc.freeze()


def post_fork(server, worker) -> None:
    """Traces (app/tracing.py), when the environment turns them on: the SDK and its batch
    processor's thread start in each worker, never in the master (a thread does not survive a fork)."""
    from app.tracing import start_tracing

    start_tracing(worker.app.wsgi())


def worker_exit(server, worker) -> None:
    """Send the spans still queued before the worker goes."""
    from app.tracing import stop_tracing

    stop_tracing()


def child_exit(server, worker) -> None:
    """A worker is gone: its live gauges (pool connections) stop counting, and its exit is counted
    unless the whole server is stopping (gunicorn has closed its listeners by then)."""
    from prometheus_client import multiprocess

    from app.metrics import WORKER_RESTARTS

    multiprocess.mark_process_dead(worker.pid)
    if server.LISTENERS:
        WORKER_RESTARTS.inc()


def on_exit(server) -> None:
    if _own_metrics_dir:
        import shutil

        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
