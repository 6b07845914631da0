"""The application factory."""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app import account, admin, database, extensions, mail, metrics, requestlog, search, tracing, transaction
from app.api import auth, feed, health, index, posts, users
from app.auth import register_jwt_callbacks
from app.cli import register_commands
from app.errors import register_error_handlers
from app.extensions import csrf
from app.jsonprovider import JSONProvider
from app.metrics import OutboxCollector
from app.openapi import api
from app.security import register_security_headers
from app.services import outbox
from app.sessions import SessionInterface
from config import Config, get_config

_is_coroutine_function = lru_cache(maxsize=1024)(inspect.iscoroutinefunction)


class App(Flask):
    """Flask, remembering which functions are coroutines: `ensure_sync`, the documented
    override point, is asked about every hook and view of every request, and
    `inspect.iscoroutinefunction` is not free."""

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        return self.async_to_sync(func) if _is_coroutine_function(func) else func


def create_app(config: str | type[Config] | Mapping[str, Any] | None = None) -> Flask:
    """Build the app: config → extensions → blueprints → error handlers → CLI.

    `config` is a config name (`development`, `testing`, `production`), a config
    class, or a mapping of overrides on top of the class `APP_ENV` selects.
    """
    app = App(__name__, instance_relative_config=True)
    app.json = JSONProvider(app)
    app.session_interface = SessionInterface()
    config_class = _configure(app, config)
    config_class.validate(app.config)
    tracing.check_environment()  # started later, in the process that serves (app/tracing.py)

    database.configure_engine(app)
    extensions.db.init_app(app)
    extensions.reads.init_app(app)
    extensions.migrate.init_app(app, extensions.db, include_object=search.include_object)
    extensions.jwt.init_app(app)
    extensions.compress.init_app(app)
    extensions.csrf.init_app(app)
    extensions.limiter.init_app(app)
    mail.init_app(app)
    extensions.cors.init_app(
        app,
        resources={r"/api/*": {"origins": exact_origins(app.config["CORS_ORIGINS"])}},
        expose_headers=["ETag", "Link", "Location", "Retry-After", "X-Request-ID", "X-RateLimit-Limit",
                        "X-RateLimit-Remaining", "X-RateLimit-Reset"],
        supports_credentials=False,
    )
    api.init_app(app)
    _register_api(app)
    _register_admin(app)

    register_error_handlers(app)
    register_jwt_callbacks(app)
    register_security_headers(app)
    requestlog.init_app(app)
    metrics.init_app(app, database.named_engines(app), scraped=(OutboxCollector(outbox.state),))
    transaction.init_app(app)  # last: its commit runs before the other hooks report
    _install_proxy_fix(app)

    register_commands(app)
    return app


def exact_origins(origins: list[str]) -> list[re.Pattern[str]]:
    """Anchored patterns, one per configured origin: flask-cors would take an entry with
    regex characters (an IPv6 host's brackets) as an unanchored regex."""
    return [re.compile(re.escape(origin) + r"\Z", re.IGNORECASE) for origin in origins]


def _configure(app: Flask, config: str | type[Config] | Mapping[str, Any] | None) -> type[Config]:
    """The environment is read now, not when `config` was imported: each app sees it as it is."""
    if isinstance(config, Mapping):
        config_class, overrides = get_config(config.get("APP_ENV")), config
    else:
        config_class, overrides = (config if isinstance(config, type) else get_config(config)), {}
    app.config.from_mapping(config_class.load(os.environ, overrides))
    app.config["ENV_NAME"] = config_class.ENV_NAME
    return config_class


def _register_api(app: Flask) -> None:
    for module in (index, health, auth, users, posts, feed):
        csrf.exempt(module.blp)  # API clients authenticate with bearer tokens, not cookies
        api.register_blueprint(module.blp)


def _register_admin(app: Flask) -> None:
    admin.init_app(app)
    account.init_app(app)


def _install_proxy_fix(app: Flask) -> None:
    hops = app.config["PROXY_FIX_HOPS"]
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
