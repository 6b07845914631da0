"""Every list: a JSON array, `limit`, opaque keyset `cursor`, `skip`, and `Link: rel="next"`."""

import base64
import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from app.extensions import db
from app.models import Post
from app.pagination import MAX_SKIP
from tests.helpers import assert_problem, next_url, walk


def cursor_of(values) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


LISTS = ["/api/posts", "/api/users", "/api/users/{user_id}/posts"]


# ---- shape and defaults --------------------------------------------------------


@pytest.mark.parametrize("path", LISTS)
def test_every_list_is_a_json_array(client, user, path, make_post):
    make_post(user, "Post 0", "b")
    response = client.get(path.format(user_id=user.id), headers=user.headers)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert isinstance(json.loads(response.get_data()), list)


def test_default_limit_is_20(client, user, make_post):
    created = [make_post(user, f"Post {i}", "b") for i in range(21)]
    response = client.get("/api/posts")
    assert [p["id"] for p in response.get_json()] == list(reversed(created))[:20]
    assert next_url(response) is not None


def test_no_link_when_the_page_holds_the_last_item(client, user, make_post):
    for i in range(20):
        make_post(user, f"Post {i}", "b")
    response = client.get("/api/posts")
    assert len(response.get_json()) == 20
    assert "Link" not in response.headers


def test_no_link_on_an_empty_list(client):
    response = client.get("/api/posts")
    assert response.get_json() == []
    assert "Link" not in response.headers


def test_link_when_more_items_exist(client, user, make_post):
    for i in range(3):
        make_post(user, f"Post {i}", "b")
    response = client.get("/api/posts?limit=2")
    assert len(response.get_json()) == 2
    url = next_url(response)
    assert url is not None and "cursor=" in url and "limit=2" in url


@pytest.mark.parametrize("limit", [1, 100])
def test_limit_bounds_are_accepted(client, user, limit, make_post):
    for i in range(2):
        make_post(user, f"Post {i}", "b")
    response = client.get(f"/api/posts?limit={limit}")
    assert len(response.get_json()) == min(limit, 2)


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1.5", "", "1e2"])
def test_out_of_range_or_malformed_limit_is_422(client, user, path, limit):
    response = client.get(path.format(user_id=user.id) + f"?limit={limit}", headers=user.headers)
    assert "limit" in assert_problem(response, 422)["errors"]


# ---- walking the pages ----------------------------------------------------------


def test_walking_next_links_visits_every_post_once_in_order(client, user, make_post):
    created = [make_post(user, f"Post {i}", "b") for i in range(45)]
    pages = walk(client, "/api/posts?limit=10")
    assert [len(page) for page in pages] == [10, 10, 10, 10, 5]
    assert [post_id for page in pages for post_id in page] == list(reversed(created))


def test_walking_users_visits_every_user_once_in_id_order(client, admin, make_user):
    everyone = [admin.id] + [make_user().id for _ in range(15)]
    pages = walk(client, "/api/users?limit=7", headers=admin.headers)
    assert [len(page) for page in pages] == [7, 7, 2]
    assert [user_id for page in pages for user_id in page] == everyone


def test_walking_one_authors_posts(client, make_user, make_post):
    ann, bob = make_user(), make_user()
    ann_posts = [make_post(ann, f"Post {i}", "b") for i in range(12)]
    for i in range(5):
        make_post(bob, f"Post {i}", "b")
    pages = walk(client, f"/api/users/{ann.id}/posts?limit=5")
    assert [post_id for page in pages for post_id in page] == list(reversed(ann_posts))


def test_next_links_keep_the_filters(client, make_user, make_post):
    ann, bob = make_user(), make_user()
    wanted = [make_post(ann, f"Match {i}", "b") for i in range(7)]
    for i in range(4):
        make_post(ann, f"Other {i}", "b")
    for i in range(4):
        make_post(bob, f"Match {i}", "b")
    pages = walk(client, f"/api/posts?author_id={ann.id}&q=match&limit=3")
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [post_id for page in pages for post_id in page] == list(reversed(wanted))


def test_walk_is_not_disturbed_by_posts_created_meanwhile(client, user, make_post):
    created = [make_post(user, f"Post {i}", "b") for i in range(25)]
    first = client.get("/api/posts?limit=10")
    seen = [p["id"] for p in first.get_json()]
    for i in range(5):
        make_post(user, f"Late {i}", "b")
    pages = walk(client, next_url(first))
    seen += [post_id for page in pages for post_id in page]
    assert seen == list(reversed(created))


def test_walk_is_not_disturbed_by_posts_deleted_meanwhile(client, user, make_post):
    created = [make_post(user, f"Post {i}", "b") for i in range(12)]
    first = client.get("/api/posts?limit=5")
    seen = [p["id"] for p in first.get_json()]
    for post_id in seen:
        assert client.delete(f"/api/posts/{post_id}", headers=user.headers).status_code == 204
    pages = walk(client, next_url(first))
    seen += [post_id for page in pages for post_id in page]
    assert seen == list(reversed(created))


def test_walk_handles_posts_with_identical_timestamps(app, client, user, make_post):
    created = [make_post(user, f"Post {i}", "b") for i in range(13)]
    same_instant = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    with app.app_context():
        db.session.execute(update(Post).values(created_at=same_instant))
        db.session.commit()
    pages = walk(client, "/api/posts?limit=4")
    assert [post_id for page in pages for post_id in page] == sorted(created, reverse=True)


# ---- cursors and skip ----------------------------------------------------------


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "!!!!",
        "x" * 201,
        cursor_of("not a list"),
        cursor_of([1]),
        cursor_of(["2024-01-01T00:00:00+00:00", "7"]),
        cursor_of(["2024-01-01T00:00:00", 7]),
        cursor_of(["yesterday", 7]),
        cursor_of(["2024-01-01T00:00:00+00:00", 2**70]),
        cursor_of(["2024-01-01T00:00:00+00:00", -1]),
        cursor_of(["2024-01-01T00:00:00+00:00", 7, 8]),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        "",
    ],
)
def test_malformed_post_cursor_is_422(client, cursor):
    response = client.get("/api/posts", query_string={"cursor": cursor})
    assert "cursor" in assert_problem(response, 422)["errors"]


@pytest.mark.parametrize("cursor", ["garbage", cursor_of(["2024-01-01T00:00:00+00:00", 7]), cursor_of([True])])
def test_malformed_user_cursor_is_422(client, user, cursor):
    response = client.get("/api/users", query_string={"cursor": cursor}, headers=user.headers)
    assert "cursor" in assert_problem(response, 422)["errors"]


def test_cursor_of_another_list_is_422(client, user, make_user):
    for _ in range(3):
        make_user()
    users_cursor = next_url(client.get("/api/users?limit=1", headers=user.headers)).split("cursor=")[1]
    assert "cursor" in assert_problem(client.get(f"/api/posts?cursor={users_cursor}"), 422)["errors"]


def test_skip_is_an_offset(client, user, make_post):
    created = list(reversed([make_post(user, f"Post {i}", "b") for i in range(12)]))
    response = client.get("/api/posts?skip=5&limit=4")
    assert [p["id"] for p in response.get_json()] == created[5:9]
    rest = walk(client, next_url(response))
    assert [post_id for page in rest for post_id in page] == created[9:]


def test_skip_past_the_end_is_empty(client, user, make_post):
    for i in range(3):
        make_post(user, f"Post {i}", "b")
    response = client.get("/api/posts?skip=3")
    assert response.get_json() == []
    assert "Link" not in response.headers


def test_skip_on_users(client, admin, make_user):
    everyone = [admin.id] + [make_user().id for _ in range(4)]
    response = client.get("/api/users?skip=2&limit=2", headers=admin.headers)
    assert [u["id"] for u in response.get_json()] == everyone[2:4]


@pytest.mark.parametrize("skip", ["-1", "abc", "1.5", ""])
def test_malformed_skip_is_422(client, skip):
    assert "skip" in assert_problem(client.get(f"/api/posts?skip={skip}"), 422)["errors"]


# Every list that takes `skip` (the OpenAPI document must list no other).
SKIP_LISTS = ["/api/posts", "/api/posts?q=post", "/api/users", "/api/users/{user_id}/posts",
              "/api/users/{user_id}/posts?q=post", "/api/users/{user_id}/followers",
              "/api/users/{user_id}/following", "/api/feed", "/api/feed?q=post"]


def with_skip(path: str, user_id: int, skip: int) -> str:
    url = path.format(user_id=user_id)
    return f"{url}{'&' if '?' in url else '?'}skip={skip}&limit=100"


@pytest.mark.parametrize("path", SKIP_LISTS)
def test_skip_past_its_bound_is_422_pointing_at_cursors(client, user, path, make_post):
    for i in range(2):
        make_post(user, f"Post {i}", "b")
    for skip in (MAX_SKIP + 1, 1_000_000):
        response = client.get(with_skip(path, user.id, skip), headers=user.headers)
        body = assert_problem(response, 422)
        assert 'Link: rel="next"' in body["detail"] and "cursor" in body["detail"], body
        assert "cursor" in body["errors"]["skip"][0]


@pytest.mark.parametrize("path", SKIP_LISTS)
def test_skip_up_to_its_bound_is_accepted(client, user, path, make_post):
    for i in range(2):
        make_post(user, f"Post {i}", "b")
    response = client.get(with_skip(path, user.id, MAX_SKIP), headers=user.headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == []


def test_every_list_that_takes_skip_documents_its_bound(client):
    spec = client.get("/openapi.json").get_json()
    documented = {}
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            for parameter in operation.get("parameters", []) if isinstance(operation, dict) else []:
                if parameter["name"] == "skip":
                    documented[path] = parameter
    assert set(documented) == {path.split("?")[0] for path in SKIP_LISTS}
    for parameter in documented.values():
        assert (parameter["schema"]["minimum"], parameter["schema"]["maximum"]) == (0, MAX_SKIP)
        assert "cursor" in parameter["description"]


@pytest.mark.parametrize("path", LISTS)
def test_cursor_and_skip_together_is_422(client, user, path, make_post):
    for i in range(3):
        make_post(user, f"Post {i}", "b")
    cursor = next_url(client.get("/api/posts?limit=1")).split("cursor=")[1]
    if path == "/api/users":
        cursor = cursor_of([user.id])
    response = client.get(path.format(user_id=user.id) + f"?cursor={cursor}&skip=1", headers=user.headers)
    assert_problem(response, 422)
