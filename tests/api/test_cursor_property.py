"""Whatever a cursor holds, a bad one is a 422 on the API (a readable 400 page in the admin), never a 500.

Hypothesis feeds the decoder arbitrary JSON values and timestamps with any offset
and any year, through HTTP on the real database.
"""

from __future__ import annotations

import base64
import json
import string
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.admin_support import signed_in

PROPERTY = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def cursor_of(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=6,
)
# Every offset Python can parse (up to ±23:59:59.999999), and every year.
offsets = st.timedeltas(min_value=timedelta(hours=-23, minutes=-59, seconds=-59),
                        max_value=timedelta(hours=23, minutes=59, seconds=59)).map(timezone)
timestamps = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59),
                          timezones=st.none() | offsets | st.just(UTC)).map(datetime.isoformat)
ids = st.integers() | st.integers(min_value=0, max_value=2**63) | st.floats() | st.text(max_size=5)
sort_keys = st.tuples(timestamps, ids).map(list) | st.tuples(ids).map(list)
cursors = (json_values.map(cursor_of) | sort_keys.map(cursor_of)
           | st.text(alphabet=string.ascii_letters + string.digits + "-_=", min_size=1, max_size=60))

KNOWN_500S = [
    cursor_of(["2026-01-01T00:00:00+16:00", 1]),  # PostgreSQL refuses offsets past 15:59
    cursor_of(["0001-01-01T00:00:00+01:00", 1]),  # before year 1 in UTC
    cursor_of(["9999-12-31T23:30:00-01:00", 1]),  # after year 9999 in UTC
]
OUT_OF_RANGE = KNOWN_500S[1:]


def _assert_rejected_or_served(response, cursor: str) -> None:
    assert response.status_code in (200, 422), (cursor, response.status_code, response.get_data(as_text=True))
    if response.status_code == 422:
        assert response.mimetype == "application/problem+json"
        assert "cursor" in response.get_json()["errors"]


def test_any_offset_is_read_as_the_same_instant_in_utc(client, user):
    """+16:00 is a valid RFC 3339 offset that PostgreSQL cannot take: the cursor is normalized to UTC."""
    response = client.get("/api/posts", query_string={"cursor": KNOWN_500S[0]})
    assert response.status_code == 200, response.get_data(as_text=True)


@pytest.mark.parametrize("cursor", OUT_OF_RANGE)
def test_out_of_range_timestamp_cursor_is_422(client, cursor):
    response = client.get("/api/posts", query_string={"cursor": cursor})
    assert response.status_code == 422, response.get_data(as_text=True)
    assert "cursor" in response.get_json()["errors"]


@PROPERTY
@given(cursor=cursors)
@example(cursor=KNOWN_500S[0])
def test_any_post_cursor_is_served_or_422(client, user, cursor):
    for path in ("/api/posts", f"/api/users/{user.id}/posts"):
        _assert_rejected_or_served(client.get(path, query_string={"cursor": cursor}), cursor)


@PROPERTY
@given(cursor=cursors)
def test_any_user_cursor_is_served_or_422(client, user, cursor):
    _assert_rejected_or_served(client.get("/api/users", query_string={"cursor": cursor}, headers=user.headers),
                               cursor)


@pytest.fixture
def admin_client(client, admin):
    return signed_in(client, admin)


@settings(PROPERTY, max_examples=60)
@given(cursor=cursors)
@example(cursor=KNOWN_500S[0])
@example(cursor=KNOWN_500S[1])
def test_any_admin_cursor_is_a_page_or_a_readable_error(admin_client, cursor):
    """A cursor that decodes to no position is the admin's own 422 page, as the API's 422; one the
    filter form refuses outright (too long, control characters) its 400, as any bad filter."""
    for path in ("/admin/posts", "/admin/users"):
        response = admin_client.get(path, query_string={"cursor": cursor})
        assert response.status_code in (200, 400, 422), (cursor, response.status_code)
        assert response.mimetype == "text/html"
