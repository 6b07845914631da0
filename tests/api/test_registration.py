"""POST /api/users: who can register, with what, and how bad input is refused."""

import json
from datetime import datetime

import pytest

from tests.helpers import PASSWORD, assert_problem

USER_FIELDS = {"id", "email", "name", "age", "role", "is_active", "email_verified", "created_at", "updated_at",
               "followers_count", "following_count"}


def valid(**overrides):
    body = {"email": "ann@example.com", "name": "Ann Example", "password": PASSWORD, "age": 30}
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not ...}


def register(client, **overrides):
    return client.post("/api/users", json=valid(**overrides))


def post_raw(client, raw: bytes, content_type: str = "application/json"):
    return client.post("/api/users", data=raw, content_type=content_type)


def assert_invalid(response, field: str) -> dict:
    body = assert_problem(response, 422)
    assert field in body["errors"], body
    assert isinstance(body["errors"][field], list)
    return body


def test_registration_returns_201_with_the_user_and_location(client, make_user):
    response = register(client)
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == USER_FIELDS
    assert body["email"] == "ann@example.com"
    assert body["name"] == "Ann Example"
    assert body["age"] == 30
    assert body["role"] == "user"
    assert body["is_active"] is True
    assert response.headers["Location"].endswith(f"/api/users/{body['id']}")
    viewer = make_user()
    fetched = client.get(response.headers["Location"], headers=viewer.headers)
    assert fetched.status_code == 200
    assert fetched.get_json()["id"] == body["id"]


def test_registration_timestamps_are_iso_8601_with_timezone(client):
    body = register(client).get_json()
    for key in ("created_at", "updated_at"):
        assert datetime.fromisoformat(body[key]).utcoffset() is not None


def test_registration_never_returns_the_password_or_its_hash(client):
    response = register(client)
    text = response.get_data(as_text=True)
    assert "password" not in text
    assert "$2b$" not in text


def test_age_is_optional(client):
    response = register(client, age=...)
    assert response.status_code == 201
    assert response.get_json()["age"] is None


def test_age_may_be_null(client):
    assert register(client, age=None).status_code == 201


def test_registered_user_can_log_in(client):
    register(client)
    response = client.post("/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD})
    assert response.status_code == 200


def test_email_is_stored_normalised(client):
    response = register(client, email="  Ann@Example.COM ")
    assert response.status_code == 201
    assert response.get_json()["email"] == "ann@example.com"


def test_duplicate_email_is_409(client):
    assert register(client).status_code == 201
    assert_problem(register(client, name="Someone Else"), 409)


def test_duplicate_email_differing_only_in_case_is_409(client):
    assert register(client, email="ann@x.io").status_code == 201
    assert_problem(register(client, email="Ann@X.io"), 409)


@pytest.mark.parametrize(
    ("field", "value"), [("role", "admin"), ("id", 1), ("is_active", True), ("password_hash", "x")]
)
def test_unknown_fields_are_422_naming_the_field(client, field, value):
    response = register(client, **{field: value})
    assert_invalid(response, field)


def test_nobody_registers_themself_as_admin(client):
    register(client, role="admin")
    response = client.post("/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD})
    assert_problem(response, 401)  # the account was not created at all


@pytest.mark.parametrize("field", ["email", "name", "password"])
def test_missing_required_field_is_422_naming_it(client, field):
    assert_invalid(register(client, **{field: ...}), field)


def test_empty_json_body_names_every_required_field(client):
    body = assert_problem(post_raw(client, b""), 422)
    assert {"email", "name", "password"} <= body["errors"].keys()


def test_json_array_instead_of_object_is_422(client):
    assert_problem(client.post("/api/users", json=[valid()]), 422)


# ---- password ------------------------------------------------------------------


@pytest.mark.parametrize(
    "password",
    ["Short1A", "alllowercase1", "NoDigitsHere", "A1" + "a" * 71, "A1" + "é" * 36],
    ids=["7-bytes", "no-uppercase", "no-digit", "73-ascii-bytes", "74-utf8-bytes-in-38-chars"],
)
def test_bad_password_is_422(client, password):
    assert_invalid(register(client, password=password), "password")


def test_password_over_72_bytes_of_multibyte_characters_is_422_not_truncated(client):
    password = "A1" + "€" * 24  # 26 characters, 2 + 72 = 74 bytes
    assert len(password) < 72 < len(password.encode())
    assert_invalid(register(client, password=password), "password")


def test_password_of_exactly_8_bytes_is_accepted(client):
    assert register(client, password="Abcdefg1").status_code == 201


def test_password_of_exactly_72_bytes_is_accepted_and_works(client):
    password = "A1" + "é" * 35  # 72 bytes
    assert len(password.encode()) == 72
    assert register(client, password=password).status_code == 201
    login = client.post("/api/auth/login", json={"email": "ann@example.com", "password": password})
    assert login.status_code == 200
    wrong = client.post("/api/auth/login", json={"email": "ann@example.com", "password": password[:-1]})
    assert_problem(wrong, 401)


def test_password_counts_bytes_not_characters_for_the_minimum(client):
    password = "Ä1ééé"  # 5 characters, 9 bytes
    assert len(password) < 8 <= len(password.encode())
    assert register(client, password=password).status_code == 201


def test_password_of_wrong_type_is_422(client):
    assert_invalid(register(client, password=12345678), "password")


# ---- name and age ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["A", "x" * 101, "", "   ", " A "])
def test_name_outside_2_to_100_characters_is_422(client, name):
    assert_invalid(register(client, name=name), "name")


@pytest.mark.parametrize("name", ["Al", "x" * 100])
def test_name_at_the_bounds_is_accepted(client, name):
    assert register(client, name=name).status_code == 201


def test_name_is_trimmed(client):
    assert register(client, name="  Ann  ").get_json()["name"] == "Ann"


@pytest.mark.parametrize("name", [123, None, ["Ann"], {"n": "Ann"}, True])
def test_name_of_wrong_type_is_422(client, name):
    assert_invalid(register(client, name=name), "name")


@pytest.mark.parametrize("age", [17, 121, -1, 0, 2**40])
def test_age_outside_18_to_120_is_422(client, age):
    assert_invalid(register(client, age=age), "age")


@pytest.mark.parametrize("age", [18, 120])
def test_age_at_the_bounds_is_accepted(client, age):
    assert register(client, age=age).status_code == 201


@pytest.mark.parametrize("age", ["30", 30.5, 30.0, True, [30], {"years": 30}])
def test_age_of_wrong_type_is_422(client, age):
    assert_invalid(register(client, age=age), "age")


def email_of_length(size: int) -> str:
    domain = "b" * 63 + "." + "c" * 63 + "." + "d" * (size - 64 - 1 - 63 - 1 - 63 - 1 - 4) + ".com"
    email = "a" * 64 + "@" + domain
    assert len(email) == size
    return email


def test_email_of_254_characters_is_accepted(client):
    response = register(client, email=email_of_length(254))
    assert response.status_code == 201
    assert len(response.get_json()["email"]) == 254


def test_email_longer_than_254_characters_is_422_not_500(client):
    assert_invalid(register(client, email=email_of_length(255)), "email")


@pytest.mark.parametrize("email", ["not-an-email", "ann@", "@example.com", "", 42, None])
def test_invalid_email_is_422(client, email):
    assert_invalid(register(client, email=email), "email")


# ---- hostile JSON ----------------------------------------------------------------


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_number_is_422_naming_the_field(client, constant):
    raw = b'{"email": "ann@example.com", "name": "Ann", "password": "Sup3rSecret", "age": ' + constant + b"}"
    assert_invalid(post_raw(client, raw), "age")


def test_nan_in_a_string_field_is_422_naming_the_field(client):
    raw = b'{"email": "ann@example.com", "name": NaN, "password": "Sup3rSecret"}'
    assert_invalid(post_raw(client, raw), "name")


@pytest.mark.parametrize("field", ["name", "email", "password"])
def test_nul_byte_is_422_naming_the_field(client, field):
    value = {"name": "An\u0000n", "email": "an\u0000n@example.com", "password": "Sup3r\u0000Secret"}[field]
    assert_invalid(register(client, **{field: value}), field)


@pytest.mark.parametrize("field", ["name", "email", "password"])
def test_lone_surrogate_is_422_naming_the_field(client, field):
    fields = valid(**{field: "SURROGATE"})
    raw = json.dumps(fields).replace("SURROGATE", "Ab1\\ud800cdefgh").encode()
    assert b"\\ud800" in raw
    assert_invalid(post_raw(client, raw), field)


def test_name_with_control_characters_is_422(client):
    assert_invalid(register(client, name="Ann\x1b[31m"), "name")


def test_deeply_nested_json_is_400_not_500(client):
    assert_problem(post_raw(client, b"[" * 100_000), 400)


def test_deeply_nested_object_is_400_not_500(client):
    assert_problem(post_raw(client, b'{"a":' * 100_000), 400)


@pytest.mark.parametrize("raw", [b"{", b'{"email": }', b"{'email': 'a@b.io'}", b'{"a": 1,}', b"\xff\xfe"])
def test_malformed_json_is_400(client, raw):
    assert_problem(post_raw(client, raw), 400)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_non_json_body_is_415(client, content_type):
    response = post_raw(client, b"email=ann@example.com&name=Ann", content_type)
    assert_problem(response, 415)


def test_json_with_charset_parameter_is_accepted(client):
    raw = json.dumps(valid()).encode()
    assert post_raw(client, raw, "application/json; charset=utf-8").status_code == 201
