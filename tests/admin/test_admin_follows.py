"""The admin user page shows both follow counts and both lists, paged, from the follows service."""

from __future__ import annotations

import re

import pytest

from tests.admin_support import assert_admin_html, pager_link, signed_in
from tests.helpers import follow


@pytest.fixture
def admin_client(client, admin):
    return signed_in(client, admin)


def _ids_in(html: str, section: str | None = None) -> list[int]:
    if section is not None:
        html = re.search(rf'<section class="card" id="{section}">(.*?)</section>', html, re.S).group(1)
        return [int(i) for i in re.findall(r'href="/admin/users/(\d+)"', html)]
    return [int(i) for i in re.findall(r'data-user-id="(\d+)"', html)]


def test_the_user_page_shows_both_counts_and_both_lists(admin_client, client, make_user, make_follow):
    star, ann, bob, cat = make_user(), make_user(name="Ann Fan"), make_user(name="Bob Fan"), make_user()
    make_follow(ann, star)
    make_follow(bob, star)
    make_follow(star, cat)
    body = assert_admin_html(admin_client.get(f"/admin/users/{star.id}"), 200)
    assert re.search(r'id="followers-count">2<', body) and re.search(r'id="following-count">1<', body)
    assert _ids_in(body, "followers") == [bob.id, ann.id]
    assert _ids_in(body, "following") == [cat.id]
    lonely = assert_admin_html(admin_client.get(f"/admin/users/{ann.id}"), 200)
    assert "No followers yet." in lonely


def test_the_full_lists_are_paged_newest_follow_first(make_app, make_user, admin, make_follow):
    app = make_app(ADMIN_PAGE_SIZE=2)
    client = app.test_client()
    star = make_user()
    fans = [make_user() for _ in range(5)]
    for fan in fans:
        make_follow(fan, star)
        make_follow(star, fan)
    signed_in(client, admin)
    for side in ("followers", "following"):
        seen, url = [], f"/admin/users/{star.id}/{side}"
        while url:
            body = assert_admin_html(client.get(url), 200)
            seen += _ids_in(body)
            match = re.search(r'rel="next" href="([^"]+)"', body)
            url = match.group(1).replace("&amp;", "&") if match else None
        assert seen == [fan.id for fan in reversed(fans)], side


def test_previous_on_a_follow_list_leads_back_to_exactly_the_page_before(make_app, make_user, admin):
    app = make_app(ADMIN_PAGE_SIZE=2)
    client = app.test_client()
    star, fans = make_user(), [make_user() for _ in range(6)]
    for fan in fans:
        follow(client, fan, star.id)
        follow(client, star, fan.id)
    newest_first = [fan.id for fan in reversed(fans)]
    signed_in(client, admin)
    for side in ("followers", "following"):
        first = assert_admin_html(client.get(f"/admin/users/{star.id}/{side}"), 200)
        assert pager_link(first, "prev") is None
        second = assert_admin_html(client.get(pager_link(first, "next")), 200)
        third = assert_admin_html(client.get(pager_link(second, "next")), 200)
        assert _ids_in(third) == newest_first[4:6], side
        assert pager_link(third, "prev").startswith(f"/admin/users/{star.id}/{side}?before=")
        back_to_second = assert_admin_html(client.get(pager_link(third, "prev")), 200)
        assert _ids_in(back_to_second) == newest_first[2:4], side
        back_to_first = assert_admin_html(client.get(pager_link(back_to_second, "prev")), 200)
        assert _ids_in(back_to_first) == _ids_in(first) == newest_first[0:2], side
        assert pager_link(back_to_first, "prev") is None


def test_a_bad_cursor_on_a_follow_list_is_a_readable_422(admin_client, user):
    response = admin_client.get(f"/admin/users/{user.id}/followers?cursor=nope")
    assert response.status_code == 422  # as the API answers a bad cursor
    assert "invalid or out of date" in response.get_data(as_text=True)


def test_follow_lists_of_an_unknown_user_are_404(admin_client):
    assert admin_client.get("/admin/users/999999/following").status_code == 404
