"""GET /api/feed: posts by the people the caller follows, newest first, keyset-paged,
searchable with `q` as /api/posts is, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import assert_problem, follow, ids, next_url, walk


def feed(client, reader, **params):
    return client.get("/api/feed", query_string=params, headers=reader.headers)


@pytest.fixture
def circle(client, make_user, make_follow):
    """A reader who follows two authors; a third author they do not follow."""
    reader, ann, bob, stranger = make_user(), make_user(name="Ann"), make_user(name="Bob"), make_user()
    make_follow(reader, ann)
    make_follow(reader, bob)
    return reader, ann, bob, stranger


def test_the_feed_has_the_followed_authors_posts_newest_first(client, circle, make_post):
    reader, ann, bob, stranger = circle
    a1 = make_post(ann, "Ann one")
    make_post(stranger, "Not followed")
    b1 = make_post(bob, "Bob one")
    make_post(reader, "My own")
    a2 = make_post(ann, "Ann two")
    response = feed(client, reader)
    assert ids(response) == [a2, b1, a1]
    assert response.get_json()[0]["author"] == {"id": ann.id, "name": "Ann"}
    assert "Link" not in response.headers


def test_the_feed_is_empty_when_following_nobody(client, user, make_user, make_post):
    make_post(make_user())
    assert ids(feed(client, user)) == []


def test_the_feed_needs_a_bearer_token(client):
    assert_problem(client.get("/api/feed"), 401)


def test_a_bad_cursor_limit_or_q_is_422(client, user):
    assert "cursor" in assert_problem(feed(client, user, cursor="x"), 422)["errors"]
    assert "limit" in assert_problem(feed(client, user, limit=101), 422)["errors"]
    assert "q" in assert_problem(feed(client, user, q="the"), 422)["errors"]


@pytest.mark.parametrize("limit", [1, 3, 7])
def test_walking_the_feed_visits_every_post_once_in_order(app, client, circle, limit, make_post):
    reader, ann, bob, stranger = circle
    start = datetime(2026, 1, 1, tzinfo=UTC)
    expected = []
    for i in range(12):
        at = start + timedelta(minutes=i // 2)  # pairs share a timestamp: the id breaks the tie
        author = (ann, bob, stranger)[i % 3]
        post_id = make_post(author, f"P{i}", at=at)
        if author is not stranger:
            expected.append((at, post_id))
    expected_ids = [post_id for _, post_id in sorted(expected, reverse=True)]
    pages = walk(client, f"/api/feed?limit={limit}", headers=reader.headers)
    assert [i for page in pages for i in page] == expected_ids
    assert all(len(page) == limit for page in pages[:-1])


def test_a_walk_sees_every_post_once_while_new_posts_appear(client, circle, make_post):
    reader, ann, bob, _ = circle
    old = [make_post((ann, bob)[i % 2], f"Old {i}") for i in range(9)]
    response = feed(client, reader, limit=4)
    seen = ids(response)
    url = next_url(response)
    while url:
        make_post(ann, "Newer")  # lands before the cursor, never on a later page
        response = client.get(url, headers=reader.headers)
        seen += ids(response)
        url = next_url(response)
    assert seen == list(reversed(old))


def test_an_unfollowed_author_leaves_the_feed_at_once(client, circle, make_post):
    reader, ann, bob, _ = circle
    make_post(ann, "Ann's")
    bobs = make_post(bob, "Bob's")
    follow(client, reader, ann.id, "DELETE")
    assert ids(feed(client, reader)) == [bobs]


def test_a_deactivated_author_leaves_the_feed_at_once_and_returns_when_reactivated(client, circle, admin, make_post):
    reader, ann, bob, _ = circle
    anns = make_post(ann, "Ann's")
    bobs = make_post(bob, "Bob's")
    client.patch(f"/api/users/{ann.id}", json={"is_active": False}, headers=admin.headers)
    assert ids(feed(client, reader)) == [bobs]
    client.patch(f"/api/users/{ann.id}", json={"is_active": True}, headers=admin.headers)
    assert ids(feed(client, reader)) == [bobs, anns]


def test_a_deleted_author_leaves_the_feed(client, circle, admin, make_post):
    reader, ann, bob, _ = circle
    make_post(ann, "Ann's")
    bobs = make_post(bob, "Bob's")
    assert client.delete(f"/api/users/{ann.id}", headers=admin.headers).status_code == 204
    assert ids(feed(client, reader)) == [bobs]


def test_skip_pages_the_feed_by_offset_too(client, circle, make_post):
    reader, ann, bob, stranger = circle
    posted = [make_post((ann, bob, stranger)[i % 3], f"P{i}") for i in range(9)]
    followed = [p for i, p in enumerate(posted) if i % 3 != 2]
    assert ids(feed(client, reader, limit=2, skip=3)) == list(reversed(followed))[3:5]


# ---- q: searching the feed, as on /api/posts ---------------------------------------


def test_q_searches_only_the_feed(client, circle, make_post):
    reader, ann, bob, stranger = circle
    hit = make_post(ann, "Zeppelin notes", "about a zeppelin")
    make_post(stranger, "Zeppelin elsewhere", "another zeppelin")
    make_post(bob, "Nothing here", "balloons")
    older = make_post(bob, "Café zeppelins", "Zeppelin, accented")
    assert ids(feed(client, reader, q="zeppelin")) == [older, hit]
    assert ids(feed(client, reader, q="zepp")) == [older, hit]  # the last word is a prefix
    assert ids(feed(client, reader, q="cafe")) == [older]
    assert ids(feed(client, reader, q="zeppelin -accented")) == [hit]


def test_q_matches_the_same_posts_as_on_the_post_list(client, circle, make_post):
    reader, ann, bob, _ = circle
    for i in range(12):
        make_post((ann, bob)[i % 2], f"Note {i}", "kestrel" if i % 3 else "sparrow")
    for q in ("kestrel", "sparrow", '"note" -kestrel', "kes"):
        everywhere = [i for page in walk(client, f"/api/posts?limit=5&q={q}") for i in page]
        in_feed = [i for page in walk(client, f"/api/feed?limit=5&q={q}", headers=reader.headers) for i in page]
        assert in_feed == everywhere, q


def test_a_feed_page_is_at_most_two_statements_with_sign_in(client, circle, sql_statements, make_post):
    reader, ann, bob, _ = circle
    for i in range(5):
        make_post((ann, bob)[i % 2], f"P{i}")
    first = feed(client, reader, limit=2)
    sql_statements.clear()
    feed(client, reader, limit=2)
    assert len(sql_statements) <= 2, sql_statements
    sql_statements.clear()
    assert len(ids(client.get(next_url(first), headers=reader.headers))) == 2
    assert len(sql_statements) <= 2, sql_statements


@pytest.mark.parametrize("window", [1, 3, 50])
def test_the_feed_is_the_same_however_few_newest_posts_the_first_step_reads(client, circle, make_post, monkeypatch,
                                                                             window):
    """PostgreSQL first looks among the newest posts, then reads each followed author's own
    newest posts when that window holds less than a page: both give the same pages."""
    from app.services import posts

    reader, ann, bob, stranger = circle
    followed = [make_post((ann, bob)[i % 2], f"Old {i}") for i in range(8)]
    for i in range(6):
        make_post(stranger, f"Newer, not followed {i}")
    followed.append(make_post(bob, "Newest"))
    monkeypatch.setattr(posts, "FEED_WINDOW", window)
    pages = walk(client, "/api/feed?limit=3", headers=reader.headers)
    assert [i for page in pages for i in page] == list(reversed(followed))


def test_a_deactivated_or_unfollowed_author_leaves_even_a_page_found_among_the_newest_posts(client, circle, admin,
                                                                                             make_post):
    """A small page that the newest posts fill at once (PostgreSQL's first step) leaves them out too."""
    reader, ann, bob, _ = circle
    bobs = [make_post(bob, f"Bob {i}") for i in range(3)]
    make_post(ann, "Ann, newest")
    client.patch(f"/api/users/{ann.id}", json={"is_active": False}, headers=admin.headers)
    assert ids(feed(client, reader, limit=1)) == [bobs[-1]]
    client.patch(f"/api/users/{ann.id}", json={"is_active": True}, headers=admin.headers)
    follow(client, reader, ann.id, "DELETE")
    assert ids(feed(client, reader, limit=1)) == [bobs[-1]]
    assert [i for page in walk(client, "/api/feed?limit=1", headers=reader.headers) for i in page] == bobs[::-1]
