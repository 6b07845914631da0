"""One transaction per request: the services add and flush, the request commits once.

A response below 400 commits the request's unit of work at its boundary; an error response
commits nothing (Flask-SQLAlchemy rolls the session back when the request ends). Whatever must
happen with a change (an idempotency record, a session that ends, the guessing budgets' epoch)
joins the same transaction, so it commits or rolls back with it. A face that turns a refusal
into a page of its own (the admin's flash messages) rolls back where it catches it.
"""

from __future__ import annotations

from flask import Flask, Response
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from app.database import connection_lost, wrote
from app.errors import handle_database_unavailable, handle_unexpected_error
from app.extensions import db


def init_app(app: Flask) -> None:
    """Register the commit; call it after every other `after_request` hook, so that it runs
    before them (Flask runs them in reverse): what they report is what was committed."""
    app.after_request(commit_the_request)


def commit_the_request(response: Response) -> Response:
    if response.status_code >= 400 or not wrote(db.session()):
        return response  # a request that only read has nothing to commit: its end rolls back
    try:
        db.session.commit()
    except SQLAlchemyError as error:
        db.session.rollback()
        if isinstance(error, DBAPIError) and connection_lost(error):
            return handle_database_unavailable(error)
        return handle_unexpected_error(error)
    return response
