"""ETags, If-None-Match (304), If-Match (412/428) and the version check that makes
conditional writes atomic (RFC 9110 sections 8.8.3 and 13)."""

from __future__ import annotations

import threading

import pytest
import requests

from app.errors import PreconditionFailed
from app.extensions import db
from app.models import Post
from app.services import posts as post_service
from tests.helpers import PASSWORD, assert_problem


def etag(response) -> str:
    tag = response.headers["ETag"]
    assert tag.startswith('"') and tag.endswith('"'), "a strong, quoted tag"
    return tag


# ---- conditional reads ----------------------------------------------------------


def test_a_post_has_a_strong_etag_and_a_matching_if_none_match_gets_304_without_body(client, user, make_post):
    post_id = make_post(user)
    first = client.get(f"/api/posts/{post_id}")
    tag = etag(first)
    assert first.headers["Cache-Control"] == "no-cache"
    again = client.get(f"/api/posts/{post_id}", headers={"If-None-Match": tag})
    assert again.status_code == 304
    assert again.get_data() == b""
    assert again.headers["ETag"] == tag
    assert again.headers["Cache-Control"] == "no-cache"


@pytest.mark.parametrize("header", ["W/{tag}", "*", '"other", {tag}', '"a",W/{tag} , "b"'])
def test_if_none_match_uses_weak_comparison_star_and_lists(client, user, header, make_post):
    post_id = make_post(user)
    tag = etag(client.get(f"/api/posts/{post_id}"))
    response = client.get(f"/api/posts/{post_id}", headers={"If-None-Match": header.format(tag=tag)})
    assert response.status_code == 304


def test_a_stale_or_unrelated_tag_gets_the_full_response(client, user, make_post):
    post_id = make_post(user)
    response = client.get(f"/api/posts/{post_id}", headers={"If-None-Match": '"nope", W/"neither"'})
    assert response.status_code == 200 and response.get_json()["id"] == post_id


def test_head_is_get_without_the_body(client, user, make_post):
    post_id = make_post(user)
    get = client.get(f"/api/posts/{post_id}")
    head = client.head(f"/api/posts/{post_id}")
    assert head.status_code == 200 and head.get_data() == b""
    assert head.headers["ETag"] == get.headers["ETag"]
    assert client.head(f"/api/posts/{post_id}", headers={"If-None-Match": etag(get)}).status_code == 304
    assert client.head("/api/posts", headers={"If-None-Match": etag(client.get("/api/posts"))}).status_code == 304


def test_a_posts_etag_changes_with_its_title_body_and_authors_name(client, user, make_post):
    post_id = make_post(user)
    location = f"/api/posts/{post_id}"
    seen = {etag(client.get(location))}
    for changes, path in (({"title": "New title"}, location), ({"body": "New body"}, location),
                          ({"name": "Renamed Author"}, f"/api/users/{user.id}")):
        assert client.patch(path, json=changes, headers=user.headers).status_code == 200
        tag = etag(client.get(location))
        assert tag not in seen
        seen.add(tag)


def test_the_etag_of_a_patch_answer_is_the_etag_a_later_get_shows(client, user, make_post):
    post_id = make_post(user)
    location = f"/api/posts/{post_id}"
    patched = client.patch(location, json={"title": "Changed"}, headers=user.headers)
    assert patched.status_code == 200
    assert etag(patched) == etag(client.get(location))


def test_a_pages_etag_changes_with_any_item_and_with_the_next_cursor(app, client, user, make_post):
    oldest = make_post(user, "Oldest")
    middle = make_post(user, "Middle")
    newest = make_post(user, "Newest")
    page = "/api/posts?limit=2"
    first = client.get(page)
    assert [p["id"] for p in first.get_json()] == [newest, middle] and "Link" in first.headers
    assert client.get(page, headers={"If-None-Match": etag(first)}).status_code == 304

    client.patch(f"/api/posts/{middle}", json={"body": "edited"}, headers=user.headers)
    edited = client.get(page)
    assert etag(edited) != etag(first)

    client.delete(f"/api/posts/{oldest}", headers=user.headers)  # same items, but no next page now
    last = client.get(page)
    assert last.get_json() == edited.get_json() and "Link" not in last.headers
    assert etag(last) != etag(edited)
    assert client.get(page, headers={"If-None-Match": etag(edited)}).status_code == 200


def test_a_current_page_is_answered_304_from_its_posts_stamps_without_their_titles_and_bodies(
        app, client, user, sql_statements, make_post):
    make_post(user, "One", "a long body " * 500)
    make_post(user, "Two", "a long body " * 500)
    page = "/api/posts?limit=1"
    tag = etag(client.get(page))
    sql_statements.clear()
    again = client.get(page, headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.headers["ETag"] == tag
    assert len(sql_statements) == 1, sql_statements


def test_a_write_outside_the_app_changes_the_pages_tag_when_it_moves_the_version(app, client, user, make_post):
    """Tags follow the rows' `version`, which every ORM write moves; plain SQL (an operator's)
    that changes what a post shows moves it too, as the ORM would."""
    post_id = make_post(user, "Before")
    page = "/api/posts"
    tag = etag(client.get(page))
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(db.text("UPDATE posts SET title = 'After', version = version + 1 WHERE id = :id"),
                           {"id": post_id})
    changed = client.get(page, headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.get_json()[0]["title"] == "After"
    assert etag(changed) != tag


def test_a_renamed_author_changes_the_pages_tag_and_a_new_follower_does_not(client, make_user, make_post):
    """The page shows its authors' names, not their followers."""
    author, reader = make_user(), make_user()
    make_post(author)
    page = f"/api/users/{author.id}/posts"
    tag = etag(client.get(page))
    client.patch(f"/api/users/{author.id}", json={"name": "Renamed"}, headers=author.headers)
    renamed = client.get(page, headers={"If-None-Match": tag})
    assert renamed.status_code == 200 and renamed.get_json()[0]["author"]["name"] == "Renamed"
    assert client.put(f"/api/users/{author.id}/follow", headers=reader.headers).status_code == 204
    assert client.get(page, headers={"If-None-Match": etag(renamed)}).status_code == 304


def test_another_users_password_change_leaves_every_page_tag_alone(client, make_user, make_post):
    """An anonymous client cannot watch private activity through 304 and 200."""
    author, stranger = make_user(), make_user()
    make_post(author)
    pages = ["/api/posts", f"/api/users/{author.id}/posts"]
    tags = {page: etag(client.get(page)) for page in pages}
    changed = client.patch(f"/api/users/{stranger.id}", json={"password": "N3wPassword", "current_password": PASSWORD},
                           headers=stranger.headers)
    assert changed.status_code == 200
    for page in pages:
        assert client.get(page, headers={"If-None-Match": tags[page]}).status_code == 304, page


def test_a_post_not_on_the_page_leaves_its_tag_alone(app, client, make_user, make_post):
    author, other = make_user(), make_user()
    older = make_post(author, "Older")
    make_post(author, "Newer")
    pages = [f"/api/users/{author.id}/posts", f"/api/users/{author.id}/posts?limit=1"]
    tags = {page: etag(client.get(page)) for page in pages}
    make_post(other, title="Someone else's")  # on /api/posts, not on the author's pages
    assert client.get(pages[0], headers={"If-None-Match": tags[pages[0]]}).status_code == 304
    client.patch(f"/api/posts/{older}", json={"body": "edited"}, headers=author.headers)  # not on ?limit=1
    assert client.get(pages[1], headers={"If-None-Match": tags[pages[1]]}).status_code == 304
    assert client.get(pages[0], headers={"If-None-Match": tags[pages[0]]}).status_code == 200


def test_a_posts_tag_changes_with_its_version_alone(app, client, user, make_post):
    """The item tag is made of the row's version, not of the bytes of the response."""
    post_id = make_post(user)
    location = f"/api/posts/{post_id}"
    first = client.get(location)
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(db.text("UPDATE posts SET version = version + 1 WHERE id = :id"), {"id": post_id})
    again = client.get(location, headers={"If-None-Match": etag(first)})
    assert again.status_code == 200 and again.get_data() == first.get_data()
    assert etag(again) != etag(first)


def test_a_users_tag_follows_their_version_for_the_account_and_their_profile_for_others(app, client, make_user):
    """Their owner's tag moves with any change to the account; a stranger's only with what a
    stranger sees, so a new password stays private."""
    owner, stranger = make_user(), make_user()
    path = f"/api/users/{owner.id}"
    own, seen = etag(client.get(path, headers=owner.headers)), etag(client.get(path, headers=stranger.headers))
    changed = client.patch(path, json={"password": "N3wPassword", "current_password": PASSWORD},
                           headers=owner.headers)
    owner.headers = {"Authorization": f"Bearer {changed.get_json()['tokens']['access_token']}"}
    assert client.get(path, headers={**owner.headers, "If-None-Match": own}).status_code == 200
    assert client.get(path, headers={**stranger.headers, "If-None-Match": seen}).status_code == 304
    client.patch(path, json={"name": "Renamed"}, headers=owner.headers)
    assert client.get(path, headers={**stranger.headers, "If-None-Match": seen}).status_code == 200


def test_following_a_user_changes_the_tag_of_the_followers_view_of_them(client, make_user):
    """`followed_by_me` and the counts are part of what a read of a user shows."""
    star, fan = make_user(), make_user()
    path = f"/api/users/{star.id}"
    before = etag(client.get(path, headers=fan.headers))
    assert client.put(f"{path}/follow", headers=fan.headers).status_code == 204
    after = client.get(path, headers={**fan.headers, "If-None-Match": before})
    assert after.status_code == 200 and after.get_json()["followed_by_me"] is True
    assert client.delete(f"{path}/follow", headers=fan.headers).status_code == 204
    assert client.get(path, headers={**fan.headers, "If-None-Match": etag(after)}).status_code == 200


def test_pages_of_other_urls_have_other_tags(app, client, user, make_post):
    make_post(user, "One")
    make_post(user, "Two")
    tags = {etag(client.get(path)) for path in ("/api/posts", "/api/posts?limit=1", "/api/posts?limit=2",
                                                f"/api/users/{user.id}/posts")}
    assert len(tags) == 4
    assert etag(client.get("/api/posts?limit=1")) == etag(client.get("/api/posts?limit=1"))


def test_an_empty_page_revalidates(client):
    empty = client.get("/api/posts?q=nothing")
    assert empty.get_json() == []
    assert client.get("/api/posts?q=nothing", headers={"If-None-Match": etag(empty)}).status_code == 304


def test_if_none_match_star_on_a_missing_authors_posts_is_404_not_304(client):
    response = client.get("/api/users/999999/posts", headers={"If-None-Match": "*"})
    assert_problem(response, 404)


def test_a_feed_page_is_its_readers_and_changes_when_they_follow_someone(client, make_user, make_post):
    reader, stranger, author, other_author = make_user(), make_user(), make_user(), make_user()
    make_post(author)
    make_post(other_author)
    assert client.put(f"/api/users/{author.id}/follow", headers=reader.headers).status_code == 204
    first = client.get("/api/feed", headers=reader.headers)
    assert len(first.get_json()) == 1 and first.headers["Cache-Control"] == "no-store"
    current = {**reader.headers, "If-None-Match": etag(first)}
    assert client.get("/api/feed", headers=current).status_code == 304
    assert client.get("/api/feed", headers={**stranger.headers, "If-None-Match": etag(first)}).status_code == 200
    assert client.put(f"/api/users/{other_author.id}/follow", headers=reader.headers).status_code == 204
    followed_more = client.get("/api/feed", headers=current)
    assert followed_more.status_code == 200 and len(followed_more.get_json()) == 2


def test_follower_lists_revalidate_and_change_with_a_new_follower(client, make_user):
    star, fan, late_fan = make_user(), make_user(), make_user()
    assert client.put(f"/api/users/{star.id}/follow", headers=fan.headers).status_code == 204
    path = f"/api/users/{star.id}/followers"
    first = client.get(path, headers=star.headers)
    assert [u["id"] for u in first.get_json()] == [fan.id]
    current = {**star.headers, "If-None-Match": etag(first)}
    assert client.get(path, headers=current).status_code == 304
    assert client.put(f"/api/users/{star.id}/follow", headers=late_fan.headers).status_code == 204
    assert client.get(path, headers=current).status_code == 200


def test_an_authors_post_list_revalidates_too(client, user, make_post):
    make_post(user)
    path = f"/api/users/{user.id}/posts"
    assert client.get(path, headers={"If-None-Match": etag(client.get(path))}).status_code == 304


@pytest.mark.parametrize("path", ["/api/users/me", "/api/users/{id}", "/api/users"])
def test_user_reads_revalidate_and_stay_out_of_shared_caches(client, user, path):
    path = path.format(id=user.id)
    first = client.get(path, headers=user.headers)
    assert first.status_code == 200
    assert first.headers["Cache-Control"] == "no-store"
    again = client.get(path, headers={**user.headers, "If-None-Match": etag(first)})
    assert again.status_code == 304 and again.get_data() == b""
    assert again.headers["Cache-Control"] == "no-store"
    client.patch(f"/api/users/{user.id}", json={"name": "Someone Else"}, headers=user.headers)
    assert client.get(path, headers={**user.headers, "If-None-Match": etag(first)}).status_code == 200


def test_a_user_seen_by_others_has_another_tag_than_their_own_account(client, make_user):
    owner, other = make_user(), make_user()
    own = client.get(f"/api/users/{owner.id}", headers=owner.headers)
    public = client.get(f"/api/users/{owner.id}", headers=other.headers)
    assert etag(own) != etag(public)


def test_a_compressed_representations_tag_revalidates_as_well(app, client, user, make_post):
    for n in range(10):
        make_post(user, f"Post {n}", "long enough to compress " * 20)
    gzip = {"Accept-Encoding": "gzip"}
    first = client.get("/api/posts", headers=gzip)
    assert first.headers["Content-Encoding"] == "gzip"
    tag = etag(first)
    assert tag.endswith(':gzip"')
    again = client.get("/api/posts", headers={**gzip, "If-None-Match": tag})
    assert again.status_code == 304 and again.headers["ETag"] == tag


# ---- conditional writes ---------------------------------------------------------


def test_patch_with_the_current_tag_succeeds_and_returns_the_new_tag(client, user, make_post):
    post_id = make_post(user)
    location = f"/api/posts/{post_id}"
    tag = etag(client.get(location))
    response = client.patch(location, json={"title": "Mine"}, headers={**user.headers, "If-Match": tag})
    assert response.status_code == 200 and response.get_json()["title"] == "Mine"
    assert etag(response) != tag


def test_patch_with_a_stale_tag_is_412_with_the_current_tag_and_changes_nothing(client, user, make_post):
    post_id = make_post(user, title="Original")
    location = f"/api/posts/{post_id}"
    stale = etag(client.get(location))
    client.patch(location, json={"title": "Someone else's"}, headers=user.headers)
    current = client.get(location)
    response = client.patch(location, json={"title": "Lost update"}, headers={**user.headers, "If-Match": stale})
    assert_problem(response, 412)
    assert response.headers["ETag"] == etag(current)
    assert client.get(location).get_json()["title"] == "Someone else's"


def test_if_match_star_means_if_it_exists(client, user, make_post):
    post_id = make_post(user)
    location = f"/api/posts/{post_id}"
    star = {**user.headers, "If-Match": "*"}
    assert client.patch(location, json={"title": "Any"}, headers=star).status_code == 200
    assert client.delete(location, headers=star).status_code == 204
    assert_problem(client.delete(location, headers=star), 404)


def test_if_match_is_a_strong_comparison(client, user, make_post):
    post_id = make_post(user)
    location = f"/api/posts/{post_id}"
    weak = "W/" + etag(client.get(location))
    assert_problem(client.patch(location, json={"title": "x"}, headers={**user.headers, "If-Match": weak}), 412)


def test_a_weak_if_match_is_412_saying_a_weak_tag_never_matches(client, user, make_post):
    post_id = make_post(user)
    location = f"/api/posts/{post_id}"
    weak = "W/" + etag(client.get(location))
    body = assert_problem(client.patch(location, json={"title": "x"}, headers={**user.headers, "If-Match": weak}),
                          412)
    assert "weak" in body["detail"] and "never matches" in body["detail"]
    assert "changed since you read it" not in body["detail"]
    assert client.get(location).get_json()["title"] == "Hello"


@pytest.mark.parametrize("header", ['"unterminated', "not-quoted", 'W/"a" "b"', ","])
def test_a_malformed_if_match_is_412_saying_so_and_changes_nothing(client, user, header, make_post):
    post_id = make_post(user)
    location = f"/api/posts/{post_id}"
    body = assert_problem(client.patch(location, json={"title": "x"}, headers={**user.headers, "If-Match": header}),
                          412)
    assert "malformed" in body["detail"] and "double quotes" in body["detail"]
    assert client.get(location).get_json()["title"] == "Hello"


def test_a_stale_if_match_still_says_the_resource_changed(client, user, make_post):
    post_id = make_post(user)
    location = f"/api/posts/{post_id}"
    body = assert_problem(client.patch(location, json={"title": "x"},
                                       headers={**user.headers, "If-Match": '"stale", W/"older"'}), 412)
    assert "changed since you read it" in body["detail"]


def test_delete_with_a_stale_tag_is_412_and_the_post_stays(client, user, make_post):
    post_id = make_post(user)
    location = f"/api/posts/{post_id}"
    stale = etag(client.get(location))
    client.patch(location, json={"body": "changed"}, headers=user.headers)
    assert_problem(client.delete(location, headers={**user.headers, "If-Match": stale}), 412)
    assert client.get(location).status_code == 200
    current = etag(client.get(location))
    assert client.delete(location, headers={**user.headers, "If-Match": current}).status_code == 204


def test_someone_elses_post_is_403_whatever_if_match_says(client, make_user, make_post):
    author, stranger = make_user(), make_user()
    post_id = make_post(author)
    location = f"/api/posts/{post_id}"
    response = client.patch(location, json={"title": "x"}, headers={**stranger.headers, "If-Match": '"stale"'})
    assert_problem(response, 403)


def test_user_patch_and_delete_check_if_match(client, user, admin):
    path = f"/api/users/{user.id}"
    stale = etag(client.get(path, headers=admin.headers))
    assert client.patch(path, json={"name": "Changed"}, headers=user.headers).status_code == 200
    response = client.patch(path, json={"age": 40}, headers={**admin.headers, "If-Match": stale})
    assert_problem(response, 412)
    assert response.headers["ETag"] == etag(client.get(path, headers=admin.headers))
    assert client.get(path, headers=admin.headers).get_json()["age"] is None
    assert_problem(client.delete(path, headers={**admin.headers, "If-Match": stale}), 412)
    current = etag(client.get(path, headers=admin.headers))
    assert client.delete(path, headers={**admin.headers, "If-Match": current}).status_code == 204


def test_own_account_patch_with_the_tag_of_me_succeeds(client, user):
    tag = etag(client.get("/api/users/me", headers=user.headers))
    response = client.patch(f"/api/users/{user.id}", json={"name": "Me Again"},
                            headers={**user.headers, "If-Match": tag})
    assert response.status_code == 200
    assert etag(response) == etag(client.get("/api/users/me", headers=user.headers))


def test_without_if_match_writes_work_unless_required(make_app, user, make_post):
    strict = make_app(REQUIRE_IF_MATCH=True).test_client()
    relaxed = make_app().test_client()
    post_id = make_post(user)
    location = f"/api/posts/{post_id}"
    assert relaxed.patch(location, json={"title": "ok"}, headers=user.headers).status_code == 200
    assert_problem(strict.patch(location, json={"title": "no"}, headers=user.headers), 428)
    assert_problem(strict.delete(location, headers=user.headers), 428)
    assert_problem(strict.patch(f"/api/users/{user.id}", json={"name": "Nina"}, headers=user.headers), 428)
    tag = etag(strict.get(location))
    assert strict.patch(location, json={"title": "yes"}, headers={**user.headers, "If-Match": tag}).status_code == 200


def test_two_writers_that_read_the_same_version_cannot_both_write(app, user, make_post):
    """The version is checked in the UPDATE itself: the second commit changes nothing."""
    post_id = make_post(user, "Original")
    with app.app_context():
        first = post_service.load_post(post_id)
        with app.app_context():  # another request, its own session and transaction
            second = post_service.load_post(post_id)
            actor = second.author
            post_service.update_post(actor, second, {"title": "Second"})
            db.session.commit()  # that request's boundary
        with pytest.raises(PreconditionFailed):
            post_service.update_post(first.author, first, {"title": "First"})
        db.session.remove()
        assert db.session.get(Post, post_id).title == "Second"


def test_concurrent_patches_with_the_same_if_match_give_one_200_and_one_412(live_server, app, user, make_post):
    """Against gunicorn with several workers: each round, two PATCHes with the same tag race."""
    post_id = make_post(user, "Race")
    url = f"{live_server.url}/api/posts/{post_id}"
    for round_ in range(5):
        tag = requests.get(url, timeout=10).headers["ETag"]
        barrier = threading.Barrier(2)
        answers: list[requests.Response] = []

        def patch(title: str, tag: str = tag, barrier: threading.Barrier = barrier,
                  answers: list[requests.Response] = answers) -> None:
            barrier.wait()
            answers.append(requests.patch(url, json={"title": title}, timeout=30,
                                          headers={**user.headers, "If-Match": tag}))

        threads = [threading.Thread(target=patch, args=(f"Round {round_} writer {n}",)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        won, lost = sorted(answers, key=lambda response: response.status_code)
        assert (won.status_code, lost.status_code) == (200, 412), [a.text for a in answers]
        assert lost.headers["Content-Type"] == "application/problem+json"
        assert lost.headers["ETag"] == won.headers["ETag"] == requests.get(url, timeout=10).headers["ETag"]


# ---- the OpenAPI document -------------------------------------------------------


def test_the_openapi_document_shows_the_headers_and_answers_of_caching_and_retries(client):
    paths = client.get("/openapi.json").get_json()["paths"]

    def operation(path: str, method: str) -> tuple[set[str], dict]:
        op = paths[path][method]
        return {p["name"] for p in op.get("parameters", []) if p["in"] == "header"}, op["responses"]

    for path in ("/api/posts", "/api/posts/{post_id}", "/api/users", "/api/users/me", "/api/users/{user_id}",
                 "/api/users/{user_id}/posts"):
        headers, responses = operation(path, "get")
        assert "If-None-Match" in headers and "304" in responses, path
        assert "ETag" in responses["304"]["headers"] and "ETag" in responses["200"]["headers"], path
    for path, method in (("/api/posts/{post_id}", "patch"), ("/api/posts/{post_id}", "delete"),
                         ("/api/users/{user_id}", "patch"), ("/api/users/{user_id}", "delete")):
        headers, responses = operation(path, method)
        assert "If-Match" in headers and {"412", "428"} <= responses.keys(), (path, method)
    for path in ("/api/posts", "/api/users"):
        headers, responses = operation(path, "post")
        assert "Idempotency-Key" in headers and {"400", "409", "422"} <= responses.keys(), path
