"""Following: PUT/DELETE /api/users/<id>/follow, the followers and following lists, and the
counts and `followed_by_me` on a user, through HTTP on both databases."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import func, select

from app.extensions import db
from app.models import Follow
from tests.helpers import assert_problem, follow, next_url, walk


def profile(client, viewer, user_id: int) -> dict:
    response = client.get(f"/api/users/{user_id}", headers=viewer.headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def follow_rows(app) -> list[tuple[int, int]]:
    with app.app_context():
        return sorted(tuple(row) for row in db.session.execute(select(Follow.follower_id, Follow.followed_id)))


def names(response) -> list[str]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return [user["name"] for user in response.get_json()]


# ---- following and unfollowing -----------------------------------------------------


def test_following_is_204_and_following_twice_keeps_one_row(app, client, make_user):
    ann, bob = make_user(), make_user()
    first, second = follow(client, ann, bob.id), follow(client, ann, bob.id)
    assert (first.status_code, second.status_code) == (204, 204)
    assert first.get_data() == b""
    assert follow_rows(app) == [(ann.id, bob.id)]
    assert profile(client, ann, bob.id)["followers_count"] == 1


def test_unfollowing_is_204_also_when_not_following(app, client, make_user):
    ann, bob = make_user(), make_user()
    assert follow(client, ann, bob.id, "DELETE").status_code == 204
    follow(client, ann, bob.id)
    assert follow(client, ann, bob.id, "DELETE").status_code == 204
    assert follow(client, ann, bob.id, "DELETE").status_code == 204
    assert follow_rows(app) == []
    assert profile(client, ann, bob.id)["followers_count"] == 0
    assert profile(client, ann, ann.id)["following_count"] == 0


def test_following_yourself_is_422(app, client, user):
    body = assert_problem(follow(client, user, user.id), 422)
    assert "yourself" in body["detail"]
    assert follow_rows(app) == []


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_following_an_unknown_user_is_404(client, user, method):
    assert_problem(follow(client, user, 999_999, method), 404)
    assert_problem(follow(client, user, 2**40, method), 404)


def test_following_a_deactivated_user_is_409_while_reading_it_is_200(app, client, make_user):
    ann, gone = make_user(), make_user(is_active=False)
    assert client.get(f"/api/users/{gone.id}", headers=ann.headers).status_code == 200
    assert "deactivated" in assert_problem(follow(client, ann, gone.id), 409)["detail"]
    assert follow_rows(app) == []


def test_a_follow_of_someone_later_deactivated_can_still_be_taken_back(app, client, make_user, admin):
    ann, bob = make_user(), make_user()
    follow(client, ann, bob.id)
    assert client.patch(f"/api/users/{bob.id}", json={"is_active": False}, headers=admin.headers).status_code == 200
    assert follow(client, ann, bob.id, "DELETE").status_code == 204
    assert follow_rows(app) == []


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_following_needs_a_bearer_token(client, user, method):
    assert_problem(client.open(f"/api/users/{user.id}/follow", method=method), 401)


def test_follows_count_against_the_write_limit(make_app, make_user):
    limited = make_app(RATELIMIT_ENABLED=True, RATELIMIT_WRITE="3 per minute",
                       RATELIMIT_STORAGE_URI="memory://")
    client = limited.test_client()
    ann, bob = make_user(), make_user()
    statuses = [follow(client, ann, bob.id, method).status_code for method in ("PUT", "DELETE", "PUT", "DELETE")]
    assert statuses == [204, 204, 204, 429]
    assert_problem(follow(client, ann, bob.id), 429)


# ---- counts and followed_by_me ------------------------------------------------------


def test_a_users_view_shows_both_counts_and_whether_i_follow_them(client, make_user, admin):
    ann, bob, cat = make_user(), make_user(), make_user()
    follow(client, ann, bob.id)
    follow(client, cat, bob.id)
    follow(client, bob, ann.id)

    seen_by_ann = profile(client, ann, bob.id)
    assert (seen_by_ann["followers_count"], seen_by_ann["following_count"]) == (2, 1)
    assert seen_by_ann["followed_by_me"] is True
    assert "email" not in seen_by_ann
    assert profile(client, bob, cat.id)["followed_by_me"] is False
    assert profile(client, admin, bob.id)["followed_by_me"] is False

    own = profile(client, bob, bob.id)
    assert (own["followers_count"], own["following_count"]) == (2, 1)
    assert "followed_by_me" not in own
    me = client.get("/api/users/me", headers=ann.headers).get_json()
    assert (me["followers_count"], me["following_count"]) == (1, 1)


def test_counts_appear_in_the_user_list_too(client, make_user):
    ann, bob = make_user(), make_user()
    follow(client, ann, bob.id)
    listed = {u["id"]: u for u in client.get("/api/users", headers=ann.headers).get_json()}
    assert (listed[bob.id]["followers_count"], listed[bob.id]["following_count"]) == (1, 0)
    assert (listed[ann.id]["followers_count"], listed[ann.id]["following_count"]) == (0, 1)


def test_a_users_view_with_counts_and_followed_by_me_costs_no_statement_beyond_sign_in(
        client, make_user, sql_statements):
    ann, bob = make_user(), make_user()
    follow(client, ann, bob.id)
    client.get("/api/users/me", headers=ann.headers)  # sign-in alone
    sql_statements.clear()
    client.get("/api/users/me", headers=ann.headers)
    sign_in = len(sql_statements)
    sql_statements.clear()
    assert profile(client, ann, bob.id)["followed_by_me"] is True
    assert len(sql_statements) == sign_in == 1


def test_deleting_a_user_removes_their_follows_both_ways_and_fixes_the_counts(app, client, make_user, admin):
    ann, bob, cat = make_user(), make_user(), make_user()
    follow(client, ann, bob.id)
    follow(client, bob, cat.id)
    follow(client, cat, ann.id)
    assert client.delete(f"/api/users/{bob.id}", headers=admin.headers).status_code == 204
    assert follow_rows(app) == [(cat.id, ann.id)]
    ann_now, cat_now = profile(client, ann, ann.id), profile(client, cat, cat.id)
    assert (ann_now["followers_count"], ann_now["following_count"]) == (1, 0)
    assert (cat_now["followers_count"], cat_now["following_count"]) == (0, 1)


# ---- the lists ------------------------------------------------------------------------


def test_followers_and_following_list_public_users_newest_follow_first(client, make_user):
    ann, bob, cat, dan = make_user(name="Ann"), make_user(name="Bob"), make_user(name="Cat"), make_user(name="Dan")
    for fan in (bob, cat, dan):
        follow(client, fan, ann.id)
    follow(client, ann, dan.id)
    follow(client, ann, bob.id)

    followers = client.get(f"/api/users/{ann.id}/followers", headers=bob.headers)
    assert names(followers) == ["Dan", "Cat", "Bob"]
    first = followers.get_json()[0]
    assert set(first) == {"id", "name", "created_at", "followers_count", "following_count"}
    assert (first["followers_count"], first["following_count"]) == (1, 1)
    assert names(client.get(f"/api/users/{ann.id}/following", headers=bob.headers)) == ["Bob", "Dan"]
    assert names(client.get(f"/api/users/{cat.id}/followers", headers=bob.headers)) == []


def test_follow_lists_are_keyset_paged_with_a_link(client, make_user):
    star = make_user()
    fans = [make_user() for _ in range(5)]
    for fan in fans:
        follow(client, fan, star.id)
    pages = walk(client, f"/api/users/{star.id}/followers?limit=2", headers=star.headers)
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [i for page in pages for i in page] == [fan.id for fan in reversed(fans)]
    for fan in fans:
        follow(client, star, fan.id)
    following = walk(client, f"/api/users/{star.id}/following?limit=4", headers=star.headers)
    assert [i for page in following for i in page] == [fan.id for fan in reversed(fans)]


def test_a_follow_list_walk_sees_each_user_once_while_new_follows_arrive(client, make_user):
    star = make_user()
    fans = [make_user() for _ in range(7)]
    for fan in fans[:4]:
        follow(client, fan, star.id)
    response = client.get(f"/api/users/{star.id}/followers?limit=2", headers=star.headers)
    seen = [u["id"] for u in response.get_json()]
    url = next_url(response)
    for fan in fans[4:]:  # newer follows land before the cursor, never on a later page
        follow(client, fan, star.id)
    while url:
        response = client.get(url, headers=star.headers)
        seen += [u["id"] for u in response.get_json()]
        url = next_url(response)
    assert seen == [fan.id for fan in reversed(fans[:4])]


@pytest.mark.parametrize("side", ["followers", "following"])
def test_follow_lists_of_an_unknown_user_are_404(client, user, side):
    assert_problem(client.get(f"/api/users/999999/{side}", headers=user.headers), 404)


@pytest.mark.parametrize("side", ["followers", "following"])
def test_follow_lists_need_a_bearer_token_and_a_valid_cursor(client, user, side):
    assert_problem(client.get(f"/api/users/{user.id}/{side}"), 401)
    body = assert_problem(client.get(f"/api/users/{user.id}/{side}?cursor=nope", headers=user.headers), 422)
    assert "cursor" in body["errors"]
    assert_problem(client.get(f"/api/users/{user.id}/{side}?limit=0", headers=user.headers), 422)


# ---- concurrency ------------------------------------------------------------------------


def test_counts_stay_exact_under_concurrent_follows_and_unfollows(app, live_server, make_user):
    """Many workers follow, refollow and unfollow one user and each other at once."""
    star = make_user()
    fans = [make_user() for _ in range(12)]
    barrier = threading.Barrier(len(fans))

    def churn(fan) -> list[int]:
        headers = {**fan.headers, "Connection": "close"}
        barrier.wait()
        statuses = []
        for method in ("PUT", "PUT", "DELETE", "PUT"):
            statuses.append(requests.request(method, f"{live_server.url}/api/users/{star.id}/follow",
                                             headers=headers, timeout=30).status_code)
        for other in fans:  # everyone follows everyone: pairs following each other at once
            if other.id != fan.id:
                statuses.append(requests.put(f"{live_server.url}/api/users/{other.id}/follow",
                                             headers=headers, timeout=30).status_code)
        return statuses

    with ThreadPoolExecutor(len(fans)) as pool:
        results = list(pool.map(churn, fans))
    assert all(status == 204 for statuses in results for status in statuses), results

    star_view = requests.get(f"{live_server.url}/api/users/{star.id}", headers=star.headers, timeout=30).json()
    assert (star_view["followers_count"], star_view["following_count"]) == (len(fans), 0)
    for fan in fans:
        view = requests.get(f"{live_server.url}/api/users/{fan.id}", headers=fan.headers, timeout=30).json()
        assert (view["followers_count"], view["following_count"]) == (len(fans) - 1, len(fans))
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Follow)) == len(fans) * len(fans)
