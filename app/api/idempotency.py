"""`Idempotency-Key` on creates (IETF draft "The Idempotency-Key HTTP Header Field").

The view runs in the request's one transaction with the key's row (app/services/idempotency.py):
the create and its stored response commit together, at the request's boundary, or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar

from flask import Response, current_app, g, request
from sqlalchemy.exc import IntegrityError

from app.api import IDEMPOTENCY_KEY, document_header
from app.errors import RequestInProgress
from app.extensions import db
from app.services import idempotency
from app.services.idempotency import KeyedRequest, StoredResponse

F = TypeVar("F", bound=Callable[..., Any])
KEPT_HEADERS = ("Content-Type", "Location")  # what a replay must repeat; the rest is per request
HEADER = "Idempotency-Key"


def idempotent(scope: Callable[[], str]) -> Callable[[F], F]:
    """Make a create safe to retry with an `Idempotency-Key`, per `scope()` (who asks),
    method and path. Requests without the header run as before."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            key = request.headers.get(HEADER)
            if key is None:
                return view(*args, **kwargs)
            keyed = KeyedRequest.of(scope(), request.method, request.path, key, request.get_data(cache=True))
            with _busy_means_retry_after():
                response: Response | None = None
                stored = idempotency.claim(keyed)
                if stored is None:
                    response = view(*args, **kwargs)
                    stored = _storable(response)
                    idempotency.record(keyed, stored, timedelta(hours=current_app.config["IDEMPOTENCY_TTL_HOURS"]))
                try:  # the create and its key go to the database together, and commit with the request
                    db.session.flush()
                except IntegrityError:  # SQLite: a concurrent first run committed the key before us
                    db.session.rollback()
                    raise RequestInProgress(headers={"Retry-After": idempotency.RETRY_AFTER}) from None
            if response is None:
                return Response(stored.body, status=stored.status, headers=stored.headers)
            return response

        return document_header(wrapper, IDEMPOTENCY_KEY)  # type: ignore[return-value]

    return decorator


@contextmanager
def _busy_means_retry_after() -> Iterator[None]:
    """Keep the 409's Retry-After past the hook that drops Flask-Limiter's (app/ratelimit.py)."""
    try:
        yield
    except RequestInProgress:
        g.retry_after = idempotency.RETRY_AFTER
        raise


def _storable(response: Response) -> StoredResponse:
    headers = {name: response.headers[name] for name in KEPT_HEADERS if name in response.headers}
    return StoredResponse(response.status_code, headers, response.get_data())
