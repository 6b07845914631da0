"""Login, refresh-token rotation and logout."""

from datetime import timedelta

import pytest
from flask_jwt_extended import create_refresh_token

from tests.helpers import PASSWORD, assert_problem, bearer


def login(client, email, password=PASSWORD):
    return client.post("/api/auth/login", json={"email": email, "password": password})



def refresh(client, token: str):
    return client.post("/api/auth/refresh", headers=bearer(token))


def me(client, token: str):
    return client.get("/api/users/me", headers=bearer(token))


# ---- login -------------------------------------------------------------------


def test_login_returns_a_bearer_token_pair(app, client, user):
    response = login(client, user.email)
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in", "device_token"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == int(app.config["JWT_ACCESS_TOKEN_EXPIRES"].total_seconds())
    assert body["access_token"] != body["refresh_token"]
    assert me(client, body["access_token"]).get_json()["id"] == user.id


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "bEaReR"])
def test_the_bearer_scheme_is_accepted_in_any_case(client, user, scheme):
    """RFC 9110 §11.1: login says `"token_type": "bearer"`, so `bearer <token>` must work."""
    pair = login(client, user.email).get_json()
    access = {"Authorization": f"{pair['token_type'] if scheme == 'bearer' else scheme} {pair['access_token']}"}
    assert client.get("/api/users/me", headers=access).get_json()["id"] == user.id
    assert client.post("/api/posts", json={"title": "t", "body": "b"}, headers=access).status_code == 201
    refreshed = client.post("/api/auth/refresh", headers={"Authorization": f"{scheme} {pair['refresh_token']}"})
    assert refreshed.status_code == 200
    assert client.post("/api/auth/logout", headers=access).status_code == 204
    assert_problem(client.get("/api/users/me", headers=access), 401)


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "bearer", "bearer a b", "Bearertoken"])
def test_other_authorization_headers_stay_401(client, user, header):
    assert_problem(client.get("/api/users/me", headers={"Authorization": header}), 401)


def test_login_email_is_case_insensitive(client, user):
    assert login(client, "  " + user.email.upper()).status_code == 200


def test_wrong_password_unknown_email_and_deactivated_account_get_the_same_401(client, make_user):
    active = make_user()
    inactive = make_user(is_active=False)
    wrong_password = login(client, active.email, "Wr0ngPassword")
    unknown_email = login(client, "nobody@example.com")
    deactivated = login(client, inactive.email)
    bodies = [assert_problem(r, 401) for r in (wrong_password, unknown_email, deactivated)]
    assert bodies[0] == bodies[1] == bodies[2]
    assert len({r.headers["WWW-Authenticate"] for r in (wrong_password, unknown_email, deactivated)}) == 1


def test_the_login_operation_documents_that_a_deactivated_account_gets_the_wrong_password_answer(client):
    login_operation = client.get("/openapi.json").get_json()["paths"]["/api/auth/login"]["post"]
    assert "deactivated" in login_operation["responses"]["401"]["description"]
    assert "deactivated account cannot sign in" in login_operation["description"]


@pytest.mark.parametrize("size", [73, 100, 1000])
def test_overlong_password_at_login_is_401_not_500(client, user, size):
    assert_problem(login(client, user.email, "A1" + "x" * (size - 2)), 401)


def test_overlong_multibyte_password_at_login_is_401(client, user):
    assert_problem(login(client, user.email, "€" * 34), 401)


def test_login_with_missing_fields_is_422(client):
    body = assert_problem(client.post("/api/auth/login", json={}), 422)
    assert {"email", "password"} <= body["errors"].keys()


def test_login_with_unknown_field_is_422(client, user):
    response = client.post("/api/auth/login", json={"email": user.email, "password": PASSWORD, "remember": True})
    assert "remember" in assert_problem(response, 422)["errors"]


def test_login_with_lone_surrogate_is_422(client, user):
    raw = b'{"email": "%s", "password": "Sup3r\\ud800Secret"}' % user.email.encode()
    response = client.post("/api/auth/login", data=raw, content_type="application/json")
    assert "password" in assert_problem(response, 422)["errors"]


@pytest.mark.parametrize("email", [b'"ann\\u0000@example.com"', b'"ann\\udc00@example.com"', b"5", b"NaN"])
def test_login_with_unstorable_or_wrong_type_email_is_422(client, email):
    raw = b'{"email": %s, "password": "Sup3rSecret"}' % email
    response = client.post("/api/auth/login", data=raw, content_type="application/json")
    assert "email" in assert_problem(response, 422)["errors"]


def test_login_with_non_json_body_is_415(client):
    assert_problem(client.post("/api/auth/login", data="email=a", content_type="text/plain"), 415)


def test_login_with_malformed_json_is_400(client):
    assert_problem(client.post("/api/auth/login", data="{", content_type="application/json"), 400)


# ---- refresh -----------------------------------------------------------------


def test_refresh_returns_a_new_pair(client, user):
    response = refresh(client, user.refresh_token)
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["access_token"] != user.access_token
    assert body["refresh_token"] != user.refresh_token
    assert me(client, body["access_token"]).status_code == 200
    assert refresh(client, body["refresh_token"]).status_code == 200


def test_used_refresh_token_is_refused(client, user):
    assert refresh(client, user.refresh_token).status_code == 200
    assert_problem(refresh(client, user.refresh_token), 401)


def test_access_token_is_refused_where_a_refresh_token_is_expected(client, user):
    assert_problem(refresh(client, user.access_token), 401)


def test_refresh_token_is_refused_as_an_access_token(client, user):
    assert_problem(me(client, user.refresh_token), 401)
    assert_problem(client.post("/api/posts", json={"title": "t", "body": "b"}, headers=bearer(user.refresh_token)), 401)


def test_refresh_without_token_is_401(client):
    assert_problem(client.post("/api/auth/refresh"), 401)


def test_deactivated_user_cannot_refresh(client, admin, user):
    deactivate = client.patch(f"/api/users/{user.id}", json={"is_active": False}, headers=admin.headers)
    assert deactivate.status_code == 200
    assert_problem(refresh(client, user.refresh_token), 401)


# ---- logout ------------------------------------------------------------------


def test_logout_is_204_and_revokes_the_access_token(client, user):
    assert me(client, user.access_token).status_code == 200
    response = client.post("/api/auth/logout", headers=user.headers)
    assert response.status_code == 204
    assert response.get_data() == b""
    assert_problem(me(client, user.access_token), 401)


def test_logout_without_a_body_ends_the_sessions_refresh_token_too(client, user):
    """Reproduction 3 of issue 10: a body-less logout used to leave the refresh token usable."""
    assert client.post("/api/auth/logout", headers=user.headers).status_code == 204
    assert_problem(refresh(client, user.refresh_token), 401)


def test_logout_revokes_the_refresh_token_sent_in_the_body(client, user):
    response = client.post("/api/auth/logout", json={"refresh_token": user.refresh_token}, headers=user.headers)
    assert response.status_code == 204
    assert_problem(refresh(client, user.refresh_token), 401)
    assert_problem(me(client, user.access_token), 401)


def test_logout_twice_is_401_the_second_time(client, user):
    assert client.post("/api/auth/logout", headers=user.headers).status_code == 204
    assert_problem(client.post("/api/auth/logout", headers=user.headers), 401)


def test_logout_needs_an_access_token(client, user):
    assert_problem(client.post("/api/auth/logout"), 401)
    assert_problem(client.post("/api/auth/logout", headers=bearer(user.refresh_token)), 401)


def expired_refresh_token(app, person) -> str:
    with app.app_context():
        return create_refresh_token(identity=str(person.id), additional_claims={"sid": "gone", "jti": "spent"},
                                    expires_delta=timedelta(seconds=-60))


@pytest.mark.parametrize("kind", ["garbage", "access-token", "someone-elses", "expired", "empty", "number"])
def test_logout_with_a_bad_refresh_token_ends_the_callers_session_and_says_it_ended_no_other(
        app, client, make_user, kind):
    """Issue 26, item 10: a logout always logs the caller out; the 422 says the token ended nothing more."""
    user, other = make_user(), make_user()
    token = {
        "garbage": "not.a.jwt",
        "access-token": user.access_token,
        "someone-elses": other.refresh_token,
        "expired": expired_refresh_token(app, user),
        "empty": "",
        "number": 12,
    }[kind]
    response = client.post("/api/auth/logout", json={"refresh_token": token}, headers=user.headers)
    assert "refresh_token" in assert_problem(response, 422)["errors"]
    assert_problem(me(client, user.access_token), 401)
    assert_problem(refresh(client, user.refresh_token), 401)
    assert refresh(client, other.refresh_token).status_code == 200


def test_logout_with_a_bad_refresh_token_says_the_callers_session_ended(client, make_user):
    user, other = make_user(), make_user()
    response = client.post("/api/auth/logout", json={"refresh_token": other.refresh_token}, headers=user.headers)
    assert "Your session has ended" in assert_problem(response, 422)["detail"]


@pytest.mark.parametrize("body", [{"json": {"everywhere": True}}, {"data": "x", "content_type": "text/plain"},
                                  {"data": "{", "content_type": "application/json"}])
def test_logout_with_any_bad_body_still_ends_the_callers_session(client, user, body):
    response = client.post("/api/auth/logout", headers=user.headers, **body)
    assert response.status_code in (400, 415, 422)
    assert_problem(me(client, user.access_token), 401)


def test_logout_with_unknown_field_is_422(client, user):
    response = client.post("/api/auth/logout", json={"everywhere": True}, headers=user.headers)
    assert "everywhere" in assert_problem(response, 422)["errors"]


def test_logout_with_another_refresh_token_of_the_caller_ends_both_sessions(client, user):
    second = login(client, user.email).get_json()
    response = client.post("/api/auth/logout", json={"refresh_token": second["refresh_token"]}, headers=user.headers)
    assert response.status_code == 204
    assert_problem(me(client, user.access_token), 401)
    assert_problem(me(client, second["access_token"]), 401)
    assert_problem(refresh(client, second["refresh_token"]), 401)


def test_revocation_is_shared_through_the_database(client, user, make_app):
    """A second app (as another worker or host would be) refuses a token the first one revoked."""
    other_client = make_app().test_client()
    assert me(other_client, user.access_token).status_code == 200
    assert client.post("/api/auth/logout", headers=user.headers).status_code == 204
    assert_problem(me(other_client, user.access_token), 401)
