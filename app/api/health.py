"""Liveness and readiness probes for load balancers."""

from __future__ import annotations

import os

from flask import current_app
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.api import PUBLIC, UNTRUSTED_HOST, Blueprint
from app.errors import OUTAGE_RETRY_AFTER, problem
from app.extensions import db
from app.schemas import HealthSchema

blp = Blueprint("health", __name__, url_prefix="/health", description="Health probes")


@blp.route("")
@blp.response(200, HealthSchema)
@blp.problems(400, **UNTRUSTED_HOST)
@blp.doc(operationId="getHealth", security=PUBLIC)
def health():
    """The process is up.

    For liveness probes: the answer does not touch the database."""
    return {"status": "healthy"}


@blp.route("/ready")
@blp.response(200, HealthSchema)
@blp.problems(400, 503, d503="The instance is shutting down, or the database does not answer.", **UNTRUSTED_HOST)
@blp.doc(operationId="getReadiness", security=PUBLIC)
def ready():
    """The process can reach its database, and is not shutting down.

    For readiness probes: 503, with `Retry-After`, while the database does not answer, and from
    the moment the instance is told to stop (its lame-duck period: it still serves every request
    that comes, but a load balancer should send no more)."""
    drain_file = current_app.config["DRAIN_FILE"]
    if drain_file and os.path.exists(drain_file):  # serve.py made it on SIGTERM: any worker sees it
        return problem(503, "This instance is shutting down; send requests to another one.",
                       headers={"Retry-After": OUTAGE_RETRY_AFTER})
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        db.session.rollback()
        return problem(503, "The database does not answer.", headers={"Retry-After": OUTAGE_RETRY_AFTER})
    return {"status": "ready"}
