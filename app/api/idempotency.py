"""`Idempotency-Key` on creates (IETF draft "The Idempotency-Key HTTP Header Field").

The view runs inside one transaction with the key's row (app/services/idempotency.py):
its service's commit only flushes, the response is stored, then both commit together.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar

from flask import Response, current_app, request
from sqlalchemy.exc import IntegrityError

from app.api import IDEMPOTENCY_KEY, _document_header
from app.database import one_transaction
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
            with one_transaction(db.session):
                stored = idempotency.claim(keyed)
                if stored is not None:
                    db.session.rollback()
                    return Response(stored.body, status=stored.status, headers=stored.headers)
                response: Response = view(*args, **kwargs)
                idempotency.record(keyed, _storable(response),
                                   timedelta(hours=current_app.config["IDEMPOTENCY_TTL_HOURS"]))
            try:
                db.session.commit()
            except IntegrityError:  # SQLite: a concurrent first run committed the key before us
                db.session.rollback()
                raise RequestInProgress(headers={"Retry-After": idempotency.RETRY_AFTER}) from None
            return response

        return _document_header(wrapper, IDEMPOTENCY_KEY)  # type: ignore[return-value]

    return decorator


def _storable(response: Response) -> StoredResponse:
    headers = {name: response.headers[name] for name in KEPT_HEADERS if name in response.headers}
    return StoredResponse(response.status_code, headers, response.get_data())
