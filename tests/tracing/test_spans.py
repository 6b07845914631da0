"""What a traced request records: its server span, the SQL, Redis and bcrypt below it, the
caller's trace continued, the trace ids in the logs and in a 5xx problem, its exception."""

from __future__ import annotations

import json
import logging

import pytest
from opentelemetry.trace import StatusCode

from app.logformat import JsonFormatter, TextFormatter
from app.tracing import start_tracing
from tests.helpers import PASSWORD, assert_problem
from tests.tracing.conftest import call, children_of, server_spans


def sql_spans(spans: list) -> list:
    return [span for span in spans if span.instrumentation_scope.name == "opentelemetry.instrumentation.sqlalchemy"
            and "db.statement" in span.attributes]


TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"


def test_a_request_span_is_named_by_method_and_route_template_with_http_attributes(traced, exporter, make_user,
                                                                                   make_post):
    post_id = make_post(make_user(), title="Traced")
    response = call(traced, "GET", f"/api/posts/{post_id}")
    assert response.status_code == 200
    [span] = server_spans(exporter)
    assert span.name == "GET /api/posts/{post_id}"
    assert str(post_id) not in span.name
    assert span.attributes["http.route"] == "/api/posts/{post_id}"
    assert span.attributes["http.method"] == "GET"
    assert span.attributes["http.status_code"] == 200


def test_a_request_no_route_matched_is_named_by_its_method_alone(traced, exporter):
    assert call(traced, "GET", "/no/such/path/12345").status_code == 404
    assert call(traced, "BREW", "/no/such/path/12345").status_code == 404
    assert [span.name for span in server_spans(exporter)] == ["GET", "OTHER"]


def test_every_sql_statement_is_a_child_span_with_its_system_statement_and_server(traced, exporter, make_user,
                                                                                   make_post):
    post_id = make_post(make_user(), title="Secret title 8731")
    assert call(traced, "GET", f"/api/posts/{post_id}").status_code == 200
    [request_span] = server_spans(exporter)
    statements = sql_spans(children_of(exporter, request_span))
    assert statements, [span.name for span in exporter.get_finished_spans()]
    postgresql = traced.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql")
    for span in statements:
        assert span.attributes["db.system"] == ("postgresql" if postgresql else "sqlite")
        assert str(post_id) not in span.attributes["db.statement"]  # values travel apart from the text
        assert "8731" not in span.attributes["db.statement"]
        # A GET reads on the read engine of the primary (PostgreSQL); SQLite has one engine.
        assert span.attributes["db.client.connection.pool.name"] == ("reads" if postgresql else "primary")
        assert span.attributes["app.db.server"] == "primary"


def test_a_write_runs_its_sql_on_the_primary_engine(traced, exporter, make_user):
    author = make_user()
    response = call(traced, "POST", "/api/posts", json={"title": "t", "body": "b"}, headers=author.headers)
    assert response.status_code == 201
    [request_span] = server_spans(exporter)
    statements = sql_spans(children_of(exporter, request_span))
    assert {span.attributes["db.client.connection.pool.name"] for span in statements} == {"primary"}


def test_a_login_shows_its_redis_calls_and_its_bcrypt_check(traced, exporter, make_user):
    person = make_user()
    response = call(traced, "POST", "/api/auth/login", json={"email": person.email, "password": PASSWORD})
    assert response.status_code == 200
    [request_span] = server_spans(exporter)
    assert request_span.name == "POST /api/auth/login"
    below = children_of(exporter, request_span)
    redis_spans = [span for span in below if span.attributes.get("db.system") == "redis"]
    assert redis_spans, [span.name for span in below]
    assert [span.name for span in below if span.name.startswith("bcrypt")] == ["bcrypt check"]


def test_a_registration_shows_its_bcrypt_hash(traced, exporter):
    response = call(traced, "POST", "/api/users", json={"email": "new-traced@example.com", "name": "New",
                                                             "password": PASSWORD})
    assert response.status_code == 201
    [request_span] = server_spans(exporter)
    hashes = [span for span in children_of(exporter, request_span) if span.name == "bcrypt hash"]
    assert len(hashes) == 1
    assert hashes[0].attributes["bcrypt.rounds"] == traced.config["BCRYPT_ROUNDS"]


def test_an_incoming_traceparent_continues_the_callers_trace_and_passes_tracestate(traced, exporter):
    headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01", "tracestate": "vendor=opaque-value"}
    assert call(traced, "GET", "/api/posts", headers=headers).status_code == 200
    [span] = server_spans(exporter)
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert format(span.parent.span_id, "016x") == PARENT_ID
    assert span.parent.is_remote
    assert span.context.trace_state.get("vendor") == "opaque-value"


def test_a_caller_that_did_not_sample_its_trace_gets_no_spans_recorded(traced, exporter):
    headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-00"}
    assert call(traced, "GET", "/api/posts", headers=headers).status_code == 200
    assert exporter.get_finished_spans() == ()


def test_a_request_the_caller_did_not_sample_still_logs_the_callers_trace_id(traced, exporter, caplog):
    """Its statements and Redis commands are not traced (the instrumentations are suppressed for
    a request nobody samples), but the request keeps its trace context."""
    headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-00"}
    with caplog.at_level(logging.INFO, logger="app.request"):
        assert call(traced, "GET", "/api/posts", headers=headers).status_code == 200
    [record] = [record for record in caplog.records if record.name == "app.request"]
    assert TextFormatter().format(record).split(" trace_id=")[1].startswith(f"{TRACE_ID} span_id=")
    assert json.loads(JsonFormatter().format(record))["trace_id"] == TRACE_ID
    assert exporter.get_finished_spans() == ()


def test_every_log_line_of_a_traced_request_carries_its_trace_and_span_ids(traced, exporter, caplog):
    headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}
    with caplog.at_level(logging.INFO, logger="app.request"):
        assert call(traced, "GET", "/api/posts", headers=headers).status_code == 200
    [record] = [record for record in caplog.records if record.name == "app.request"]
    [span] = server_spans(exporter)
    span_id = format(span.context.span_id, "016x")
    assert TextFormatter().format(record).endswith(f" trace_id={TRACE_ID} span_id={span_id}")
    entry = json.loads(JsonFormatter().format(record))
    assert (entry["trace_id"], entry["span_id"]) == (TRACE_ID, span_id)


def test_a_log_line_outside_a_request_has_no_trace_ids(traced):
    record = logging.getLogger("app.test").makeRecord("app.test", logging.INFO, __file__, 1, "idle", (), None)
    assert "trace_id" not in TextFormatter().format(record)
    assert "trace_id" not in json.loads(JsonFormatter().format(record))


@pytest.fixture
def failing(traced):
    def boom():
        raise RuntimeError("the unexpected")

    traced.add_url_rule("/api/boom", "boom", boom)
    return traced


def test_a_500_problem_carries_the_trace_id_and_the_exception_is_recorded_on_the_span(failing, exporter):
    headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}
    body = assert_problem(call(failing, "GET", "/api/boom", headers=headers), 500)
    assert body["trace_id"] == TRACE_ID
    [span] = server_spans(exporter)
    assert span.name == "GET /api/boom"
    assert span.status.status_code == StatusCode.ERROR
    [event] = [event for event in span.events if event.name == "exception"]
    assert event.attributes["exception.type"] == "RuntimeError"
    assert event.attributes["exception.message"] == "the unexpected"


def test_a_503_problem_carries_the_trace_id(traced, exporter, make_user):
    def unavailable():
        from sqlalchemy.exc import OperationalError

        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    traced.add_url_rule("/api/unavailable", "unavailable", unavailable)
    body = assert_problem(call(traced, "GET", "/api/unavailable"), 503)
    [span] = server_spans(exporter)
    assert body["trace_id"] == format(span.context.trace_id, "032x")


def test_a_4xx_problem_has_no_trace_id(traced):
    body = assert_problem(call(traced, "GET", "/api/posts/999999"), 404)
    assert "trace_id" not in body


def test_a_read_a_replica_answered_names_that_replica(make_app, redis_keys, processor, exporter, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas are PostgreSQL's")
    # The test database stands in for a hot standby: it answers the lag check as fully caught up.
    app = make_app(DATABASE_REPLICA_URLS=[database_url], REDIS_URL=redis_keys.url,
                   RATELIMIT_KEY_PREFIX=redis_keys.prefix, REPLICA_CHECK_SECONDS=0.1)
    router = app.extensions["read_router"]
    try:
        assert router.start_checks(wait=5)
        start_tracing(app, processor)
        exporter.clear()
        assert call(app, "GET", "/api/posts").status_code == 200
        [request_span] = server_spans(exporter)
        statements = sql_spans(children_of(exporter, request_span))
        assert statements
        assert {(span.attributes["db.client.connection.pool.name"], span.attributes["app.db.server"])
                for span in statements} == {("replica1", "replica1")}
    finally:
        router.stop_checks()


def test_starting_tracing_again_changes_nothing(traced, processor, exporter):
    wrapped = traced.wsgi_app
    assert start_tracing(traced, processor)
    assert traced.wsgi_app is wrapped
    assert call(traced, "GET", "/api/posts").status_code == 200
    assert len(server_spans(exporter)) == 1
    assert len(exporter.get_finished_spans()) == len({span.context.span_id for span in exporter.get_finished_spans()})


def test_a_queued_messages_delivery_joins_the_trace_of_the_request_that_queued_it(
        make_app, smtp_server, processor, exporter):
    port, box = smtp_server
    app = make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=port)
    box.apps.append(app)
    assert start_tracing(app, processor)
    exporter.clear()
    response = call(app, "POST", "/api/users", json={"email": "queued-traced@example.com", "name": "Queued",
                                                     "password": PASSWORD})
    assert response.status_code == 201
    [request_span] = server_spans(exporter)
    assert box.to("queued-traced@example.com")  # delivered by the worker's own function

    [delivery] = [span for span in exporter.get_finished_spans() if span.name == "mail.deliver"]
    assert delivery.context.trace_id == request_span.context.trace_id
    assert delivery in children_of(exporter, request_span)
    [smtp] = [span for span in exporter.get_finished_spans() if span.name == "smtp.send"]
    assert smtp.parent.span_id == delivery.context.span_id
    exporter.clear()
