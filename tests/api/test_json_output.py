"""The JSON the API writes: compact UTF-8 from orjson, with the standard library's reach."""

import json
from datetime import UTC, date, datetime

import pytest
from marshmallow import fields

from tests.helpers import assert_problem


@pytest.mark.parametrize("moment", [
    datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC),  # no microseconds: isoformat leaves them out
    datetime(2026, 11, 26, 10, 0, 0, 1, tzinfo=UTC),
    datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=UTC),
])
def test_datetimes_are_written_as_marshmallow_writes_them(app, moment):
    by_marshmallow = fields.AwareDateTime().serialize("at", {"at": moment})
    assert app.json.dumps({"at": moment}) == json.dumps({"at": by_marshmallow}, separators=(",", ":"))


def test_output_is_compact_utf8_and_keeps_field_order(app):
    text = app.json.dumps({"z": "Zoë ✓", "a": [1, None, True]})
    assert text == '{"z":"Zoë ✓","a":[1,null,true]}'


def test_what_orjson_refuses_is_still_written(app):
    assert app.json.dumps({"big": 2**70}) == '{"big":1180591620717411303424}'
    assert json.loads(app.json.dumps({"lone": "a\ud800b"})) == {"lone": "a\ud800b"}
    assert app.json.dumps({"on": date(2026, 11, 26)}) == '{"on":"2026-11-26"}'


def test_error_keys_that_are_list_indexes_are_written_as_strings(app):
    assert app.json.dumps({"errors": {0: ["bad"]}}) == '{"errors":{"0":["bad"]}}'


def test_an_unknown_field_named_with_a_lone_surrogate_is_a_readable_422(client, user):
    raw = b'{"title": "t", "body": "b", "\\ud800": 1}'
    response = client.post("/api/posts", data=raw, content_type="application/json", headers=user.headers)
    assert "\ud800" in assert_problem(response, 422)["errors"]


def test_non_ascii_post_text_round_trips_through_the_api(client, user):
    created = client.post("/api/posts", json={"title": "Grüße 日本", "body": "🙂"}, headers=user.headers)
    assert created.status_code == 201
    listed = client.get("/api/posts")
    assert "Grüße 日本".encode() in listed.get_data()
    assert listed.get_json()[0]["body"] == "🙂"
