from tests.conftest import assert_problem


def test_health_says_healthy(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "healthy"}


def test_ready_when_database_answers(client):
    assert client.get("/health/ready").status_code == 200


def test_unknown_health_route_is_problem_json(client):
    assert_problem(client.get("/health/nope"), 404)
