"""PostSchema's hand-written dump (the hot path of every list) writes exactly what marshmallow
makes of the fields it documents."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from marshmallow import Schema

from app.schemas import PostSchema
from app.services import posts


def _next_path(response) -> str | None:
    link = response.headers.get("Link")
    if link is None:
        return None
    assert link.startswith("<http://localhost/") and link.endswith('>; rel="next"')
    return link[len("<http://localhost") : link.index(">")]


def test_list_items_are_byte_for_byte_what_marshmallow_dumps_from_post_schema(app, client, make_user, make_post):
    ann, bob = make_user(name="Ann Author"), make_user(name="Bob Writer")
    for n in range(2):
        make_post(ann, f"Post {n}", f"Body {n}\nline two")
    for n in range(2):
        make_post(bob, f"Post {n}", f"Body {n}\nline two")

    response = client.get("/api/posts")

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    with app.app_context():
        by_marshmallow = [Schema.dump(PostSchema(), posts.load_post(item["id"])) for item in response.get_json()]
        assert response.get_data() == app.json.response(by_marshmallow).get_data()
    assert [list(item) for item in response.get_json()] == [
        ["id", "title", "body", "author", "created_at", "updated_at"]
    ] * 4
    assert {item["author"]["name"] for item in response.get_json()} == {"Ann Author", "Bob Writer"}


def test_one_post_reads_the_same_as_its_list_item(app, client, user, make_post):
    post_id = make_post(user, "Post 0", "Body 0\nline two")

    single = client.get(f"/api/posts/{post_id}")

    assert single.status_code == 200
    assert single.get_json() == client.get("/api/posts").get_json()[0]
    with app.app_context():
        assert single.get_data() == app.json.response(client.get("/api/posts").get_json()[0]).get_data()


def test_list_timestamps_are_iso_8601_in_utc(client, user, make_post):
    make_post(user, "Post 0", "Body 0\nline two")

    item = client.get(f"/api/users/{user.id}/posts").get_json()[0]

    for field in ("created_at", "updated_at"):
        stamp = datetime.fromisoformat(item[field])
        assert stamp.utcoffset() == timedelta(0)
        assert item[field].endswith("+00:00")


@pytest.mark.parametrize("path", ["/api/posts?limit=3", "/api/users/{id}/posts?limit=3"])
def test_next_links_walk_every_post_once_newest_first(client, user, path, make_post):
    written = [make_post(user, f"Post {n}", f"Body {n}\nline two") for n in range(7)]
    seen, pages, next_path = [], 0, path.format(id=user.id)

    while next_path:
        response = client.get(next_path)
        assert response.status_code == 200
        seen += [item["id"] for item in response.get_json()]
        pages += 1
        next_path = _next_path(response)

    assert seen == sorted(written, reverse=True)
    assert pages == 3


def test_the_next_link_keeps_the_filters_and_drops_skip(client, user, make_post):
    for n in range(3):
        make_post(user, f"Post {n}", f"Body {n}\nline two")

    response = client.get(f"/api/posts?limit=1&author_id={user.id}&skip=1")

    next_path = _next_path(response)
    assert next_path.startswith(f"/api/posts?limit=1&author_id={user.id}&cursor=")
    assert "skip" not in next_path


@pytest.mark.parametrize("limit", [1, 20, 100])
def test_list_endpoints_send_at_most_two_statements_whatever_the_page_size(client, make_user, make_post, sql_statements,
                                                                          limit):
    authors = [make_user() for _ in range(3)]
    for author in authors:
        for n in range(4):
            make_post(author, f"Post {n}", f"Body {n}\nline two")

    totals = {
        f"/api/posts?limit={limit}": 12,
        f"/api/users/{authors[0].id}/posts?limit={limit}": 4,
        f"/api/posts?limit={limit}&author_id={authors[1].id}&q=post": 4,
    }

    for path, total in totals.items():
        client.get(path)  # a search's first request in a worker also reads the word statistics
        sql_statements.clear()
        response = client.get(path)
        assert response.status_code == 200
        assert len(response.get_json()) == min(limit, total)
        assert len(sql_statements) <= 2, sql_statements
