"""/api/posts and /api/users/<id>/posts: writing, reading, filtering, changing, deleting."""

from datetime import datetime

import pytest

from tests.helpers import assert_problem, ids

POST_FIELDS = {"id", "title", "body", "author", "created_at", "updated_at"}


# ---- creating ------------------------------------------------------------------


def test_create_post_returns_201_with_author_and_location(client, make_user):
    author = make_user(name="Ann Author")
    response = client.post(
        "/api/posts", json={"title": "First", "body": "Line one\nLine two\ttabbed"}, headers=author.headers
    )
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == POST_FIELDS
    assert body["title"] == "First"
    assert body["body"] == "Line one\nLine two\ttabbed"
    assert body["author"] == {"id": author.id, "name": "Ann Author"}
    for key in ("created_at", "updated_at"):
        assert datetime.fromisoformat(body[key]).utcoffset() is not None
    assert response.headers["Location"].endswith(f"/api/posts/{body['id']}")
    assert client.get(response.headers["Location"]).get_json() == body


def test_create_post_needs_a_token(client):
    assert_problem(client.post("/api/posts", json={"title": "t", "body": "b"}), 401)
    assert client.get("/api/posts").get_json() == []


def test_title_and_body_at_their_maximum_lengths_are_accepted(client, user):
    response = client.post("/api/posts", json={"title": "t" * 200, "body": "b" * 50_000}, headers=user.headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    post = response.get_json()
    assert len(post["title"]) == 200 and len(post["body"]) == 50_000


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", ""),
        ("title", "t" * 201),
        ("title", None),
        ("title", 42),
        ("title", "two\nlines"),
        ("title", "nul\u0000byte"),
        ("body", ""),
        ("body", "b" * 50_001),
        ("body", ["b"]),
        ("body", "nul\u0000byte"),
        ("body", "escape\u001b[0m"),
    ],
)
def test_invalid_post_is_422_naming_the_field(client, user, field, value):
    fields = {"title": "Fine", "body": "Fine", field: value}
    response = client.post("/api/posts", json=fields, headers=user.headers)
    assert field in assert_problem(response, 422)["errors"]


@pytest.mark.parametrize("field", ["title", "body"])
def test_missing_post_field_is_422(client, user, field):
    fields = {"title": "Fine", "body": "Fine"}
    del fields[field]
    response = client.post("/api/posts", json=fields, headers=user.headers)
    assert field in assert_problem(response, 422)["errors"]


@pytest.mark.parametrize(("field", "value"), [("author_id", 1), ("id", 7), ("created_at", "2020-01-01")])
def test_unknown_post_fields_are_422(client, user, field, value):
    response = client.post("/api/posts", json={"title": "t", "body": "b", field: value}, headers=user.headers)
    assert field in assert_problem(response, 422)["errors"]


@pytest.mark.parametrize("field", ["title", "body"])
def test_lone_surrogate_in_post_is_422(client, user, field):
    raw = {"title": b'"ok"', "body": b'"ok"'}
    raw[field] = b'"bad \\ud800 text"'
    data = b'{"title": %s, "body": %s}' % (raw["title"], raw["body"])
    response = client.post("/api/posts", data=data, content_type="application/json", headers=user.headers)
    assert field in assert_problem(response, 422)["errors"]


def test_nan_title_is_422(client, user):
    response = client.post(
        "/api/posts", data=b'{"title": NaN, "body": "b"}', content_type="application/json", headers=user.headers
    )
    assert "title" in assert_problem(response, 422)["errors"]


def test_post_with_malformed_or_non_json_body(client, user):
    assert_problem(
        client.post("/api/posts", data=b'{"title": ', content_type="application/json", headers=user.headers), 400
    )
    assert_problem(client.post("/api/posts", data=b"title=x", content_type="text/plain", headers=user.headers), 415)


# ---- reading -------------------------------------------------------------------


def test_list_is_public_and_newest_first(client, user, make_post):
    created = [make_post(user, title=f"Post {i}") for i in range(5)]
    assert ids(client.get("/api/posts")) == list(reversed(created))


def test_list_embeds_each_author(client, make_user, make_post):
    ann, bob = make_user(name="Ann"), make_user(name="Bob")
    make_post(ann)
    make_post(bob)
    authors = [post["author"] for post in client.get("/api/posts").get_json()]
    assert authors == [{"id": bob.id, "name": "Bob"}, {"id": ann.id, "name": "Ann"}]


def test_author_name_follows_the_user(client, user, make_post):
    post_id = make_post(user)
    client.patch(f"/api/users/{user.id}", json={"name": "Renamed"}, headers=user.headers)
    assert client.get(f"/api/posts/{post_id}").get_json()["author"]["name"] == "Renamed"


def test_listing_posts_costs_the_same_queries_for_many_authors(client, make_user, sql_statements, make_post):
    """Authors come with a join, not one query per post."""
    authors = [make_user() for _ in range(12)]
    make_post(authors[0])
    sql_statements.clear()
    assert len(client.get("/api/posts").get_json()) == 1
    few = len(sql_statements)
    for author in authors[1:]:
        make_post(author)
    sql_statements.clear()
    assert len(client.get("/api/posts").get_json()) == 12
    assert len(sql_statements) == few


def test_filter_by_author(client, make_user, make_post):
    ann, bob = make_user(), make_user()
    ann_posts = [make_post(ann) for _ in range(3)]
    make_post(bob)
    assert ids(client.get(f"/api/posts?author_id={ann.id}")) == list(reversed(ann_posts))
    assert ids(client.get("/api/posts?author_id=999999")) == []


@pytest.mark.parametrize("value", ["abc", "0", "-1", "1.5", "", "99999999999999999999"])
def test_bad_author_id_filter_is_422(client, value):
    assert "author_id" in assert_problem(client.get(f"/api/posts?author_id={value}"), 422)["errors"]


def test_q_and_author_filters_combine(client, make_user, make_post):
    ann, bob = make_user(), make_user()
    mine = make_post(ann, title="Flask by Ann")
    make_post(bob, title="Flask by Bob")
    make_post(ann, title="Other by Ann")
    assert ids(client.get(f"/api/posts?author_id={ann.id}&q=flask")) == [mine]


@pytest.mark.parametrize("q", ["x" * 201, "nul\u0000"])
def test_bad_q_is_422(client, q):
    assert "q" in assert_problem(client.get("/api/posts", query_string={"q": q}), 422)["errors"]


def test_user_posts_lists_one_author_newest_first(client, make_user, make_post):
    ann, bob = make_user(), make_user()
    ann_posts = [make_post(ann) for _ in range(3)]
    make_post(bob)
    assert ids(client.get(f"/api/users/{ann.id}/posts")) == list(reversed(ann_posts))


def test_user_posts_of_a_user_without_posts_is_empty(client, user):
    assert ids(client.get(f"/api/users/{user.id}/posts")) == []


def test_user_posts_of_unknown_user_is_404(client):
    assert_problem(client.get("/api/users/999999/posts"), 404)


def test_get_post(client, user):
    created = client.post("/api/posts", json={"title": "Hello", "body": "Some text"}, headers=user.headers)
    assert created.status_code == 201
    post = created.get_json()
    response = client.get(f"/api/posts/{post['id']}")
    assert response.status_code == 200
    assert response.get_json() == post


def test_get_unknown_post_is_404(client):
    assert_problem(client.get("/api/posts/999999"), 404)
    assert_problem(client.get("/api/posts/not-a-number"), 404)


# ---- changing and deleting -----------------------------------------------------


def test_author_patches_their_post(client, user, make_post):
    post_id = make_post(user, title="Before", body="Body stays")
    response = client.patch(f"/api/posts/{post_id}", json={"title": "After"}, headers=user.headers)
    assert response.status_code == 200
    body = response.get_json()
    assert (body["title"], body["body"]) == ("After", "Body stays")
    assert client.get(f"/api/posts/{post_id}").get_json()["title"] == "After"


def test_admin_patches_any_post(client, admin, user, make_post):
    post_id = make_post(user)
    response = client.patch(f"/api/posts/{post_id}", json={"body": "Moderated"}, headers=admin.headers)
    assert response.status_code == 200
    assert response.get_json()["body"] == "Moderated"
    assert response.get_json()["author"]["id"] == user.id


def test_other_user_cannot_patch_a_post(client, make_user, make_post):
    author, other = make_user(), make_user()
    post_id = make_post(author, title="Mine")
    assert_problem(client.patch(f"/api/posts/{post_id}", json={"title": "Theirs"}, headers=other.headers), 403)
    assert client.get(f"/api/posts/{post_id}").get_json()["title"] == "Mine"


def test_anonymous_cannot_patch_a_post(client, user, make_post):
    post_id = make_post(user)
    assert_problem(client.patch(f"/api/posts/{post_id}", json={"title": "x"}), 401)


def test_patch_unknown_post_is_404(client, user):
    assert_problem(client.patch("/api/posts/999999", json={"title": "x"}, headers=user.headers), 404)


@pytest.mark.parametrize(("field", "value"), [("title", ""), ("body", ""), ("author_id", 2), ("title", 5)])
def test_invalid_post_patch_is_422(client, user, field, value, make_post):
    post_id = make_post(user)
    response = client.patch(f"/api/posts/{post_id}", json={field: value}, headers=user.headers)
    assert field in assert_problem(response, 422)["errors"]


def test_author_deletes_their_post(client, user, make_post):
    post_id = make_post(user)
    response = client.delete(f"/api/posts/{post_id}", headers=user.headers)
    assert response.status_code == 204
    assert response.get_data() == b""
    assert_problem(client.get(f"/api/posts/{post_id}"), 404)


def test_admin_deletes_any_post(client, admin, user, make_post):
    post_id = make_post(user)
    assert client.delete(f"/api/posts/{post_id}", headers=admin.headers).status_code == 204
    assert_problem(client.get(f"/api/posts/{post_id}"), 404)


def test_other_user_cannot_delete_a_post(client, make_user, make_post):
    author, other = make_user(), make_user()
    post_id = make_post(author)
    assert_problem(client.delete(f"/api/posts/{post_id}", headers=other.headers), 403)
    assert client.get(f"/api/posts/{post_id}").status_code == 200


def test_anonymous_cannot_delete_a_post(client, user, make_post):
    post_id = make_post(user)
    assert_problem(client.delete(f"/api/posts/{post_id}"), 401)
    assert client.get(f"/api/posts/{post_id}").status_code == 200


def test_delete_unknown_post_is_404(client, user):
    assert_problem(client.delete("/api/posts/999999", headers=user.headers), 404)
