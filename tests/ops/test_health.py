from app import create_app
from tests.helpers import assert_problem, free_port


def test_health_says_healthy(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "healthy"}


def test_ready_when_database_answers(client):
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ready"


def test_ready_does_not_depend_on_the_mail_server(make_app):
    without_mail_server = make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=free_port(), MAIL_TIMEOUT=30)
    response = without_mail_server.test_client().get("/health/ready")
    assert response.status_code == 200  # the worker waits the outage out; serving requests does not need it


def test_not_ready_is_503_problem_when_database_does_not_answer(tmp_path):
    unreachable = f"sqlite:///{tmp_path / 'missing-dir' / 'app.db'}"
    app = create_app({"APP_ENV": "testing", "SQLALCHEMY_DATABASE_URI": unreachable})
    response = app.test_client().get("/health/ready")
    body = assert_problem(response, 503)
    assert "Retry-After" in response.headers
    assert "sqlite" not in body["detail"].lower()


def test_liveness_does_not_need_the_database(tmp_path):
    unreachable = f"sqlite:///{tmp_path / 'missing-dir' / 'app.db'}"
    app = create_app({"APP_ENV": "testing", "SQLALCHEMY_DATABASE_URI": unreachable})
    assert app.test_client().get("/health").status_code == 200


def test_unknown_health_route_is_problem_json(client):
    assert_problem(client.get("/health/nope"), 404)


def test_wrong_method_on_health_is_405_with_allow(client):
    response = client.post("/health")
    assert_problem(response, 405)
    assert "GET" in response.headers["Allow"]


def test_ready_is_503_problem_while_the_instance_drains_and_liveness_stays_200(make_app, tmp_path):
    drain_file = tmp_path / "draining"
    client = make_app(DRAIN_FILE=str(drain_file)).test_client()
    assert client.get("/health/ready").status_code == 200
    drain_file.touch()  # what serve.py does on SIGTERM
    response = client.get("/health/ready")
    body = assert_problem(response, 503)
    assert "shutting down" in body["detail"]
    assert "Retry-After" in response.headers
    assert client.get("/health").status_code == 200
    assert client.get("/api/posts").status_code == 200  # still serving: only the probe says it is going
    drain_file.unlink()
    assert client.get("/health/ready").status_code == 200
