"""Every way a bearer token can be wrong gives a 401 problem with `WWW-Authenticate: Bearer`.

flask-jwt-extended's own answers (`{"msg": ...}`, 422 for bad tokens) must never leak.
"""

import time
import uuid
from datetime import timedelta

import jwt as pyjwt
import pytest
from flask import current_app
from flask_jwt_extended import create_access_token, create_refresh_token

from app.extensions import jwt
from tests.helpers import assert_problem, bearer

PROTECTED = [
    ("GET", "/api/users/me"),
    ("GET", "/api/users"),
    ("GET", "/api/users/1"),
    ("PATCH", "/api/users/1"),
    ("DELETE", "/api/users/1"),
    ("POST", "/api/posts"),
    ("PATCH", "/api/posts/1"),
    ("DELETE", "/api/posts/1"),
    ("POST", "/api/auth/logout"),
]


def sid_of(person) -> str:
    """The session id the person's tokens carry."""
    return pyjwt.decode(person.access_token, options={"verify_signature": False})["sid"]


def claims_for(user_id: int, sid: str = "0" * 32, **overrides) -> dict:
    now = int(time.time())
    claims = {
        "sub": str(user_id),
        "sid": sid,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": str(uuid.uuid4()),
        "type": "access",
        "fresh": False,
    }
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not ...}


def sign(app, claims: dict, key: str | None = None, algorithm: str = "HS256") -> str:
    return pyjwt.encode(claims, key or app.config["JWT_SECRET_KEY"], algorithm=algorithm)


def call(client, method: str, path: str, headers: dict[str, str]):
    return client.open(path, method=method, headers=headers, json={} if method != "GET" else None)


def assert_token_refused(response) -> dict:
    body = assert_problem(response, 401)
    assert "msg" not in body
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    return body



@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_missing_token_is_401_everywhere(client, method, path):
    assert_token_refused(call(client, method, path, {}))


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Bearer not-a-token",
        "Bearer a.b.c",
        "Bearer a.b",
        "Basic dXNlcjpwYXNz",
        "Token abc",
        "bearer",
        "Bearer \u00e9\u00e9",
    ],
)
def test_malformed_authorization_header_is_401(client, header):
    assert_token_refused(client.get("/api/users/me", headers={"Authorization": header}))


def test_token_signed_with_another_key_is_401(app, client, user):
    forged = sign(app, claims_for(user.id, sid_of(user)), key="another-key-that-is-long-enough-for-hs256!")
    assert_token_refused(client.get("/api/users/me", headers=bearer(forged)))


def test_token_with_alg_none_is_401(app, client, user):
    forged = pyjwt.encode(claims_for(user.id, sid_of(user)), None, algorithm="none")
    assert_token_refused(client.get("/api/users/me", headers=bearer(forged)))


def test_correctly_signed_token_is_accepted(app, client, user):
    """The forging helper itself makes tokens the app accepts, so the refusals above mean something."""
    token = sign(app, claims_for(user.id, sid_of(user)))
    assert client.get("/api/users/me", headers=bearer(token)).status_code == 200


def test_expired_token_is_401(app, client, user):
    with app.app_context():
        expired = create_access_token(identity=str(user.id), expires_delta=timedelta(seconds=-1))
    body = assert_token_refused(client.get("/api/users/me", headers=bearer(expired)))
    assert "expired" in body["detail"].lower()


def test_expired_refresh_token_is_401(app, client, user):
    with app.app_context():
        expired = create_refresh_token(identity=str(user.id), expires_delta=timedelta(seconds=-1))
    assert_token_refused(client.post("/api/auth/refresh", headers=bearer(expired)))


def test_token_without_exp_is_401(app, client, user):
    with app.app_context():
        eternal = create_access_token(identity=str(user.id), expires_delta=False)
    assert "exp" not in pyjwt.decode(eternal, options={"verify_signature": False})
    assert_token_refused(client.get("/api/users/me", headers=bearer(eternal)))
    no_expiry = sign(app, claims_for(user.id, sid_of(user), exp=...))
    assert_token_refused(client.get("/api/users/me", headers=bearer(no_expiry)))


def test_revoked_token_is_401(client, user):
    assert client.get("/api/users/me", headers=user.headers).status_code == 200  # verified once already
    assert client.post("/api/auth/logout", headers=user.headers).status_code == 204
    body = assert_token_refused(client.get("/api/users/me", headers=user.headers))
    assert "ended" in body["detail"].lower()


def test_refresh_token_where_access_token_is_expected_is_401(client, user):
    for method, path in PROTECTED:
        assert_token_refused(call(client, method, path, bearer(user.refresh_token)))


def test_access_token_where_refresh_token_is_expected_is_401(client, user):
    assert_token_refused(client.post("/api/auth/refresh", headers=user.headers))


def test_token_of_a_deleted_user_is_401(client, admin, user):
    assert client.delete(f"/api/users/{user.id}", headers=admin.headers).status_code == 204
    assert_token_refused(client.get("/api/users/me", headers=user.headers))
    assert_token_refused(client.post("/api/auth/refresh", headers=bearer(user.refresh_token)))


@pytest.mark.parametrize("user_id", [999_999, 2**31, 10**18 - 1])
def test_token_of_a_user_that_never_existed_is_401(app, client, user, user_id):
    assert_token_refused(client.get("/api/users/me", headers=bearer(sign(app, claims_for(user_id)))))


def test_token_of_a_deactivated_user_is_401(client, make_user):
    inactive = make_user(is_active=False)
    assert_token_refused(client.get("/api/users/me", headers=inactive.headers))


@pytest.mark.parametrize("sub", [..., 5, "abc", "", "-1", "1.0", " 1", "\u00b2", "\u0661", "9" * 19, None, ["1"]])
def test_token_with_a_bad_subject_is_401(app, client, user, sub):
    token = sign(app, claims_for(user.id, sid_of(user), sub=sub))
    assert_token_refused(client.get("/api/users/me", headers=bearer(token)))
    assert_token_refused(client.post("/api/auth/logout", headers=bearer(token)))


@pytest.mark.parametrize("jti", [..., "", 42, None, "x" * 65])
def test_token_with_a_bad_jti_is_401(app, client, user, jti):
    token = sign(app, claims_for(user.id, sid_of(user), jti=jti))
    assert_token_refused(client.get("/api/users/me", headers=bearer(token)))
    assert_token_refused(client.post("/api/auth/logout", headers=bearer(token)))


@pytest.mark.parametrize("kind", ["weird", None, 5, "refresh"])
def test_token_with_a_wrong_type_claim_is_401(app, client, user, kind):
    token = sign(app, claims_for(user.id, sid_of(user), type=kind))
    assert_token_refused(client.get("/api/users/me", headers=bearer(token)))


@pytest.mark.parametrize("kind", [..., "weird", None, 5, "access"])
def test_refresh_with_a_wrong_type_claim_is_401(app, client, user, kind):
    token = sign(app, claims_for(user.id, sid_of(user), type=kind))
    assert_token_refused(client.post("/api/auth/refresh", headers=bearer(token)))


@pytest.mark.parametrize("sid", [..., "", 42, None, "x" * 33, "0" * 32, "é" * 32])
def test_token_with_a_missing_bad_or_unknown_session_is_401(app, client, user, sid):
    token = sign(app, claims_for(user.id, sid))
    assert_token_refused(client.get("/api/users/me", headers=bearer(token)))
    assert_token_refused(client.post("/api/auth/logout", headers=bearer(token)))


def test_token_naming_another_users_session_is_401(app, client, make_user):
    user, other = make_user(), make_user()
    token = sign(app, claims_for(user.id, sid_of(other)))
    assert_token_refused(client.get("/api/users/me", headers=bearer(token)))
    assert client.get("/api/users/me", headers=other.headers).status_code == 200


def test_token_not_yet_valid_is_401(app, client, user):
    future = int(time.time()) + 3600
    token = sign(app, claims_for(user.id, sid_of(user), nbf=future, iat=future))
    assert_token_refused(client.get("/api/users/me", headers=bearer(token)))


def test_token_in_query_string_or_cookie_is_ignored(client, user):
    assert_token_refused(client.get(f"/api/users/me?jwt={user.access_token}"))
    client.set_cookie("access_token_cookie", user.access_token)
    assert_token_refused(client.get("/api/users/me"))


def test_a_token_accepted_before_is_refused_once_it_expires(app, client, user):
    """A worker keeps what it verified of a token; the expiry still counts on every request."""
    expires = int(time.time()) + 2
    token = sign(app, claims_for(user.id, sid_of(user), exp=expires))
    assert client.get("/api/users/me", headers=bearer(token)).status_code == 200
    assert client.get("/api/users/me", headers=bearer(token)).status_code == 200
    time.sleep(max(0.0, expires - time.time()) + 0.05)
    body = assert_token_refused(client.get("/api/users/me", headers=bearer(token)))
    assert "expired" in body["detail"].lower()


def test_a_token_accepted_by_one_key_is_refused_by_an_app_with_another(app, client, user, make_app):
    token = sign(app, claims_for(user.id, sid_of(user)))
    assert client.get("/api/users/me", headers=bearer(token)).status_code == 200
    other = make_app(JWT_SECRET_KEY="another key, another deployment: " + uuid.uuid4().hex)
    body = assert_token_refused(other.test_client().get("/api/users/me", headers=bearer(token)))
    assert "signature" in body["detail"].lower()
    assert other.test_client().get("/api/users/me", headers=bearer(sign(other, claims_for(user.id, sid_of(user))))
                                   ).status_code == 200


def test_the_configured_leeway_counts_for_a_token_seen_before(client, user, make_app):
    """`JWT_DECODE_LEEWAY` may be seconds or a timedelta; either way a token expired within it
    is still accepted, the first time and every time after."""
    lenient = make_app(JWT_DECODE_LEEWAY=timedelta(seconds=60))
    token = sign(lenient, claims_for(user.id, sid_of(user), exp=int(time.time()) - 10))
    for _ in range(2):
        assert lenient.test_client().get("/api/users/me", headers=bearer(token)).status_code == 200
    assert_token_refused(client.get("/api/users/me", headers=bearer(token)))


def test_a_decode_key_loader_decides_the_key_on_every_route(client, user, app):
    """flask-jwt-extended is used through its public API only, so a `decode_key_loader` (key
    rotation) is honoured: before, a private override verified every token with the one key."""
    rotated = "rotated key: " + uuid.uuid4().hex
    token = sign(app, claims_for(user.id, sid_of(user)), key=rotated)
    assert_token_refused(client.get("/api/users/me", headers=bearer(token)))
    jwt.decode_key_loader(lambda _header, _claims: rotated)
    try:
        assert client.get("/api/users/me", headers=bearer(token)).status_code == 200
        assert client.post("/api/posts", json={"title": "t", "body": "b"}, headers=bearer(token)).status_code == 201
    finally:
        jwt.decode_key_loader(lambda _header, _claims: current_app.config["JWT_SECRET_KEY"])


# ---- what each refusal says: the service's words, and what to send instead ------------

LIBRARY_WORDS = ["invalid header", "codec", "padding", "non-refresh", "only refresh", "not enough segments",
                 "signature verification failed", "missing claim", "bad authorization header", "missing jwt",
                 "missing 'bearer' type", "<jwt>", "subject must be", "alg value"]


def detail_of(response) -> str:
    body = assert_token_refused(response)
    lowered = body["detail"].lower()
    assert not [words for words in LIBRARY_WORDS if words in lowered], body["detail"]
    return body["detail"]


def test_a_token_that_is_no_jwt_is_told_so_and_what_to_send(client):
    detail = detail_of(client.get("/api/users/me", headers={"Authorization": "Bearer abc.def.ghi"}))
    assert "not a valid JWT" in detail
    assert "access_token from POST /api/auth/login" in detail
    assert "`Authorization: Bearer <access_token>`" in detail


def test_a_quoted_token_is_told_to_drop_the_quotes(client, user):
    response = client.get("/api/users/me", headers={"Authorization": f'Bearer "{user.access_token}"'})
    detail = detail_of(response)
    assert "in quotes" in detail
    assert "`Authorization: Bearer <access_token>`" in detail
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_a_refresh_token_where_an_access_token_belongs_is_told_where_it_belongs(client, user, method, path):
    detail = detail_of(call(client, method, path, bearer(user.refresh_token)))
    assert detail == ("This is a refresh token: send it only to POST /api/auth/refresh; "
                      "use the access token here.")


def test_an_access_token_sent_to_refresh_is_told_to_send_the_refresh_token(client, user):
    for response in (client.post("/api/auth/refresh", headers=user.headers),
                     client.post("/api/auth/refresh", json={"refresh_token": user.access_token})):
        detail = detail_of(response)
        assert detail.startswith("This is not a refresh token: POST /api/auth/refresh takes the refresh_token")


@pytest.mark.parametrize("header", ["{token}", "Basic dXNlcjpwYXNz", "Token {token}", "JWT {token}"])
def test_a_token_without_the_bearer_scheme_is_told_to_add_it(client, user, header):
    response = client.get("/api/users/me", headers={"Authorization": header.format(token=user.access_token)})
    detail = detail_of(response)
    assert detail.startswith("The Authorization header has no `Bearer` scheme: ")
    assert detail.endswith("as `Authorization: Bearer <access_token>`.")
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_no_token_at_all_is_told_what_to_send(client):
    response = client.get("/api/users/me")
    assert detail_of(response).startswith("No bearer token: send the access_token from POST /api/auth/login")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    detail = detail_of(client.post("/api/auth/refresh"))
    assert "`Authorization: Bearer <refresh_token>`" in detail
    assert '`{"refresh_token": "<refresh_token>"}`' in detail


@pytest.mark.parametrize(("header", "says"), [
    ("Bearer", "has the `Bearer` scheme but no token"),
    ("bearer ", "has the `Bearer` scheme but no token"),
    ("Bearer {token} {token}", "exactly one token"),
    ("Bearer {token}, Bearer {token}", "exactly one token"),
    ("Bearer a.b", "not a valid JWT"),
    ("Bearer \u00e9\u00e9", "not a valid JWT"),
    ("Bearer {token}x", "signature does not verify"),
])
def test_each_malformed_header_is_told_what_is_wrong(client, user, header, says):
    detail = detail_of(client.get("/api/users/me", headers={"Authorization": header.format(token=user.access_token)}))
    assert says in detail


@pytest.mark.parametrize(("overrides", "says"), [
    ({"sub": ...}, "lacks a claim"),
    ({"sub": 5}, "lacks a claim"),
    ({"iat": "yesterday"}, "lacks a claim"),
    ({"nbf": 2**31}, "not valid yet"),
])
def test_a_token_with_bad_registered_claims_is_told_so_in_the_services_words(app, client, user, overrides, says):
    token = sign(app, claims_for(user.id, sid_of(user), **overrides))
    assert says in detail_of(client.get("/api/users/me", headers=bearer(token)))


def test_a_token_of_another_algorithm_is_told_its_signature_does_not_verify(app, client, user):
    token = pyjwt.encode(claims_for(user.id, sid_of(user)), "k" * 64, algorithm="HS512")
    assert "signature does not verify" in detail_of(client.get("/api/users/me", headers=bearer(token)))


# ---- refresh takes its token as logout takes one: in the body, or as the bearer token ---


def test_refresh_takes_the_refresh_token_in_the_body_as_logout_does(client, user):
    response = client.post("/api/auth/refresh", json={"refresh_token": user.refresh_token})
    assert response.status_code == 200, response.get_json()
    pair = response.get_json()
    assert client.get("/api/users/me", headers=bearer(pair["access_token"])).status_code == 200
    again = client.post("/api/auth/refresh", headers=bearer(pair["refresh_token"]))
    assert again.status_code == 200, again.get_json()


def test_a_refresh_token_spent_through_the_body_is_spent_for_the_header_too(client, user):
    assert client.post("/api/auth/refresh", json={"refresh_token": user.refresh_token}).status_code == 200
    assert_token_refused(client.post("/api/auth/refresh", headers=bearer(user.refresh_token)))


def test_the_bearer_token_wins_over_the_body(client, make_user):
    owner, other = make_user(), make_user()
    response = client.post("/api/auth/refresh", headers=bearer(owner.refresh_token),
                           json={"refresh_token": other.refresh_token})
    assert response.status_code == 200
    access = response.get_json()["access_token"]
    assert client.get("/api/users/me", headers=bearer(access)).get_json()["id"] == owner.id


@pytest.mark.parametrize("body", [[1], "token", {"refresh_token": 5}, {"refresh_token": None}, {"other": "x"}])
def test_a_refresh_body_of_the_wrong_shape_is_422(client, body):
    assert_problem(client.post("/api/auth/refresh", json=body), 422)


def test_a_malformed_refresh_token_in_the_body_is_told_so(client):
    detail = detail_of(client.post("/api/auth/refresh", json={"refresh_token": "abc.def.ghi"}))
    assert "not a valid JWT" in detail
    assert '`{"refresh_token": "<refresh_token>"}`' in detail


def test_only_refresh_takes_a_token_from_the_body(client, user):
    assert_token_refused(client.post("/api/posts", json={"access_token": user.access_token, "title": "t",
                                                         "body": "b"}))
    assert_token_refused(client.post("/api/auth/logout", json={"refresh_token": user.refresh_token}))
    assert client.get("/api/users/me", headers=user.headers).status_code == 200
