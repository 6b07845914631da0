"""The posts pages: search, author filter, pages, the full post, and deletion through the service."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from app.extensions import db
from app.models import Post
from tests.admin_support import assert_admin_html, page_token, pager_link, signed_in, submit, text_of

XSS = "<script>alert(1)</script>"


@pytest.fixture
def admin_client(client, admin):
    return signed_in(client, admin)


def _ids_in(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'data-post-id="(\d+)"', html)]


def _next_link(html: str) -> str | None:
    match = re.search(r'rel="next" href="([^"]+)"', html)
    return match.group(1).replace("&amp;", "&") if match else None


def test_posts_page_lists_newest_first_with_authors(app, admin_client, make_user, make_post):
    ann = make_user(name="Ann Author")
    old = make_post(ann, "Old one", at=datetime.now(UTC) - timedelta(days=2))
    new = make_post(ann, "New one")
    body = assert_admin_html(admin_client.get("/admin/posts"), 200)
    assert _ids_in(body) == [new, old]
    assert "Ann Author" in body and f'href="/admin/users/{ann.id}"' in body
    assert f'href="/admin/posts/{new}/delete"' in body


def test_xss_title_is_shown_as_text_everywhere(app, admin_client, user, make_post):
    post_id = make_post(user, XSS, body=f"body {XSS}")
    for path in ["/admin/posts", f"/admin/posts/{post_id}", f"/admin/posts/{post_id}/delete",
                 f"/admin/users/{user.id}", "/admin/posts?q=script"]:
        body = assert_admin_html(admin_client.get(path), 200)
        assert XSS not in body, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body, path
        assert "<script" not in body.lower(), path


@pytest.mark.parametrize(("query", "expected"), [
    ("flask", ["flask_tips", "more_flask"]),
    ("FLASK TIPS", ["flask_tips"]),
    ("snake case", ["underscore"]),  # words are runs of letters and digits
    ("nothing", []),
])
def test_search_by_title(app, admin_client, user, query, expected, make_post):
    ids = {
        "flask_tips": make_post(user, "Flask tips", at=datetime.now(UTC) - timedelta(hours=3)),
        "more_flask": make_post(user, "More about flask", at=datetime.now(UTC) - timedelta(hours=2)),
        "underscore": make_post(user, "snake_case names", at=datetime.now(UTC) - timedelta(hours=1)),
    }
    body = assert_admin_html(admin_client.get("/admin/posts", query_string={"q": query}), 200)
    assert _ids_in(body) == sorted((ids[k] for k in expected), reverse=True)
    if not expected:
        assert "No posts match." in body


@pytest.mark.parametrize("by", ["id", "email", "EMAIL"])
def test_filter_by_author_id_or_email(app, admin_client, make_user, by, make_post):
    ann, bob = make_user(name="Ann"), make_user(name="Bob")
    now = datetime.now(UTC)
    anns = [make_post(ann, "A1", at=now - timedelta(hours=2)), make_post(ann, "A2", at=now - timedelta(hours=1))]
    make_post(bob, "B1")
    value = {"id": str(ann.id), "email": ann.email, "EMAIL": ann.email.upper()}[by]
    body = assert_admin_html(admin_client.get("/admin/posts", query_string={"author": value}), 200)
    assert _ids_in(body) == anns[::-1]
    assert "Posts by Ann" in body


@pytest.mark.parametrize("author", ["999999", "nobody@example.com", "99999999999999999999", "not an id", "0"])
def test_unknown_author_is_a_readable_400(admin_client, author):
    body = assert_admin_html(admin_client.get("/admin/posts", query_string={"author": author}), 400)
    assert "No user with this id or email." in body


def test_bad_title_search_is_a_readable_400(admin_client):
    body = assert_admin_html(admin_client.get("/admin/posts", query_string={"q": "a\x00"}), 400)
    assert "Must not contain control characters." in body


def test_next_links_walk_every_post_once(app, admin_client, user, monkeypatch, make_post):
    monkeypatch.setitem(app.config, "ADMIN_PAGE_SIZE", 2)
    ids = [make_post(user, f"Post {i}", at=datetime.now(UTC) - timedelta(minutes=10 - i)) for i in range(5)]
    seen, path = [], "/admin/posts"
    while path:
        body = assert_admin_html(admin_client.get(path), 200)
        seen += _ids_in(body)
        path = _next_link(body)
    assert seen == ids[::-1]


PREVIOUS, NEXT = "prev", "next"  # the pager links' rel


@pytest.mark.parametrize("search", [None, "flask"])
def test_previous_leads_back_to_exactly_the_page_before_keeping_the_filters(app, admin_client, make_user,
                                                                             make_post, monkeypatch, search):
    """Three pages of one author's posts, among others' posts and, for a search, among the
    author's posts it does not match: Previous from each page shows the page before it."""
    monkeypatch.setitem(app.config, "ADMIN_PAGE_SIZE", 2)
    author, other = make_user(name="Author"), make_user(name="Other")
    listed = []
    for i in range(6):  # oldest first, the others in between
        at = datetime.now(UTC) - timedelta(minutes=60 - 3 * i)
        listed.insert(0, make_post(author, f"Flask post {i}", at=at))
        make_post(other, f"Flask post by another {i}", at=datetime.now(UTC) - timedelta(minutes=59 - 3 * i))
        if search:
            make_post(author, f"Django post {i}", at=datetime.now(UTC) - timedelta(minutes=58 - 3 * i))
    query = {"author": author.email, **({"q": search} if search else {})}
    first = assert_admin_html(admin_client.get("/admin/posts", query_string=query), 200)
    assert pager_link(first, PREVIOUS) is None
    second = assert_admin_html(admin_client.get(pager_link(first, NEXT)), 200)
    third = assert_admin_html(admin_client.get(pager_link(second, NEXT)), 200)
    assert [_ids_in(first), _ids_in(second), _ids_in(third)] == [listed[0:2], listed[2:4], listed[4:6]]
    for page in (second, third):
        kept = parse_qs(urlsplit(pager_link(page, PREVIOUS)).query)
        assert kept.pop("before") and kept == {name: [value] for name, value in query.items()}

    back_to_second = assert_admin_html(admin_client.get(pager_link(third, PREVIOUS)), 200)
    assert _ids_in(back_to_second) == listed[2:4]
    back_to_first = assert_admin_html(admin_client.get(pager_link(back_to_second, PREVIOUS)), 200)
    assert _ids_in(back_to_first) == listed[0:2]
    assert pager_link(back_to_first, PREVIOUS) is None


def test_broken_page_link_is_a_readable_422(admin_client):
    assert "page link is invalid" in assert_admin_html(admin_client.get("/admin/posts?cursor=WzFd"), 422)


def test_post_detail_shows_the_full_post(app, admin_client, user, make_post):
    body_text = "Line one\nLine two " + "long " * 2000
    post_id = make_post(user, "Full post", body=body_text)
    body = assert_admin_html(admin_client.get(f"/admin/posts/{post_id}"), 200)
    assert "Full post" in body and body_text in body
    assert f'href="/admin/users/{user.id}"' in body


def test_delete_post_asks_first_then_deletes_and_the_api_agrees(app, admin_client, client, user, make_post):
    post_id = make_post(user, "Doomed post")
    confirm = assert_admin_html(admin_client.get(f"/admin/posts/{post_id}/delete"), 200)
    assert "Delete this post?" in confirm and "Doomed post" in confirm
    assert client.get(f"/api/posts/{post_id}").status_code == 200

    response = submit(admin_client, f"/admin/posts/{post_id}/delete")
    assert response.status_code == 302 and response.headers["Location"] == "/admin/posts"
    assert f"Post #{post_id} was deleted." in text_of(admin_client.get("/admin/posts"))
    assert client.get(f"/api/posts/{post_id}").status_code == 404
    assert post_id not in [p["id"] for p in client.get("/api/posts").get_json()]
    with app.app_context():
        assert db.session.get(Post, post_id) is None


def test_delete_post_without_csrf_changes_nothing(app, admin_client, user, make_post):
    post_id = make_post(user, "Safe post")
    token = page_token(admin_client, "/admin/")
    for data in ({}, {"csrf_token": token[::-1]}, {"csrf_token": token + "x"}):
        assert_admin_html(admin_client.post(f"/admin/posts/{post_id}/delete", data=data), 400)
    with app.app_context():
        assert db.session.get(Post, post_id) is not None


@pytest.mark.parametrize("path", ["/admin/posts/424242", "/admin/posts/424242/delete", "/admin/posts/1x"])
def test_unknown_post_is_a_404_page(admin_client, path):
    assert_admin_html(admin_client.get(path), 404)


def test_deleting_an_unknown_post_is_a_404_page(admin_client):
    assert_admin_html(submit(admin_client, "/admin/posts/424242/delete"), 404)


def test_titles_are_clipped_to_their_cell_and_author_names_kept_on_one_line(app, admin_client, make_user, make_post):
    """A title of combining marks is drawn inside its own box (`.clip`: overflow hidden), and
    the author cell does not wrap (`td.author`); tests/e2e/test_admin_layout.py measures both."""
    author = make_user(name="User 1806")
    zalgo = "Z" + "\u0301" * 100
    post_id = make_post(author, zalgo)
    body = assert_admin_html(admin_client.get("/admin/posts"), 200)
    assert re.search(rf'<td data-label="Title" class="title"><div class="title-text">'
                     rf'<a class="clip" href="/admin/posts/{post_id}">{zalgo}</a>', body)
    assert re.search(r'<td data-label="Author" class="author"><a [^>]*title="User 1806">User 1806</a>', body)
    assert '<a class="clip"' in assert_admin_html(admin_client.get(f"/admin/users/{author.id}"), 200)
    css = admin_client.get("/admin/static/admin.css").get_data(as_text=True)
    assert re.search(r"\.clip \{[^}]*overflow: hidden", css)
    assert re.search(r"td\.author, td\.person \{[^}]*white-space: nowrap", css)


def test_filter_fields_line_up_by_their_tops_so_an_error_moves_nothing(admin_client):
    body = assert_admin_html(admin_client.get("/admin/posts?author=nobody%40example.com"), 400)
    assert body.count('class="field-error"') == 1
    css = admin_client.get("/admin/static/admin.css").get_data(as_text=True)
    assert re.search(r"\.filters \{[^}]*align-items: flex-start", css)


def test_a_search_shows_what_it_matched_in_the_body_escaped_and_marked(app, admin_client, user, make_post):
    words = " ".join(f"filler{i}" for i in range(40))
    make_post(user, "Deploying", f"{words} then <b>Gunicorn</b> serves the app {words}")
    make_post(user, "Gunicorn in the title", "Nothing about it here.")
    body = assert_admin_html(admin_client.get("/admin/posts?q=gunic"), 200)
    snippets = re.findall(r'<span class="snippet">(.*?)</span>', body, re.S)
    assert len(snippets) == 2
    only_title, in_body = snippets
    assert only_title == "Nothing about it here."  # the body's start when only the title matched
    assert "&lt;b&gt;<mark>Gunicorn</mark>&lt;/b&gt; serves the app" in in_body
    assert in_body.startswith("…") and in_body.endswith("…") and len(in_body) < 260
    assert "filler20 " not in in_body  # cut to the words around the match, on both sides
    plain = assert_admin_html(admin_client.get("/admin/posts"), 200)
    assert 'class="snippet"' not in plain


def test_a_snippet_finds_the_word_whatever_its_case_and_accents(app, admin_client, user, make_post):
    make_post(user, "Coffee", "We met at the CAFÉ downtown.")
    body = assert_admin_html(admin_client.get("/admin/posts?q=cafe+coffee"), 200)
    assert "<mark>CAFÉ</mark> downtown." in body


def test_a_snippet_finds_a_plain_word_for_an_accented_query(app, admin_client, user, make_post):
    make_post(user, "Coffee", "We met at the Cafe downtown.")
    body = assert_admin_html(admin_client.get("/admin/posts?q=CAFÉ+coffee"), 200)
    assert "<mark>Cafe</mark> downtown." in body


def test_a_snippet_marks_a_whole_word_or_a_word_the_last_term_starts(app, admin_client, user, make_post):
    """`kestrel` must be a whole word (not the end of `akestrel`, not `kestrels`); the last term,
    `flask`, also matches as the start of a word. Underscores split words, as the search splits them."""
    make_post(user, "Birds", "akestrel kestrels snake_kestrelx kept in flasks_ then a kestrel")
    body = assert_admin_html(admin_client.get("/admin/posts", query_string={"q": "kestrel flask"}), 200)
    assert "snake_kestrelx kept in <mark>flasks</mark>_ then a kestrel" in body
    body = assert_admin_html(admin_client.get("/admin/posts", query_string={"q": "kestrel flasks"}), 200)
    assert "snake_kestrelx kept in <mark>flasks</mark>_ then a kestrel" in body  # a whole word is a prefix too
    make_post(user, "Birds again", "akestrel kestrels foo_kestrel_bar, and a flask")
    body = assert_admin_html(admin_client.get("/admin/posts", query_string={"q": "flask kestrel"}), 200)
    assert "akestrel <mark>kestrels</mark> foo_kestrel_bar, and a flask" in body  # `kestrel` is the prefix now


def test_a_snippet_is_found_the_same_way_in_a_body_that_is_not_ascii(app, admin_client, user, make_post):
    make_post(user, "Birds", "Akestrel kestrels über der Straße, ein kestrel.")
    body = assert_admin_html(admin_client.get("/admin/posts", query_string={"q": "über kestrel"}), 200)
    assert "Akestrel <mark>kestrels</mark> über der Straße" in body
    body = assert_admin_html(admin_client.get("/admin/posts", query_string={"q": "kestrel über"}), 200)
    assert "Akestrel kestrels <mark>über</mark> der Straße" in body  # accents ignored, as the search ignores them


def test_a_search_page_runs_no_statement_per_row(app, admin_client, make_user, make_post, sql_statements,
                                                monkeypatch):
    """The admin's session, then the page's posts with their authors: the excerpts and the links
    of fifty rows by many authors need no statement of their own."""
    monkeypatch.setitem(app.config, "ADMIN_PAGE_SIZE", 50)
    authors = [make_user() for _ in range(5)]
    make_post(authors[0], "A kestrel", "One kestrel.")
    admin_client.get("/admin/posts?q=kestrel")  # the word statistics are read once in a while (PostgreSQL)
    sql_statements.clear()
    assert _ids_in(assert_admin_html(admin_client.get("/admin/posts?q=kestrel"), 200))
    one_row = len(sql_statements)
    for n in range(60):
        make_post(authors[n % 5], f"Kestrel {n}", f"Seen a kestrel, number {n}.")
    sql_statements.clear()
    body = assert_admin_html(admin_client.get("/admin/posts?q=kestrel"), 200)
    assert len(_ids_in(body)) == 50 and body.count("<mark>kestrel</mark>") == 50
    assert len(sql_statements) <= one_row <= 3, sql_statements


def test_row_links_are_the_urls_url_for_builds_also_under_a_script_root(app, user):
    """`id_urls` builds one URL with the router and puts each id in its place: the same URL as
    `url_for`, also when the app is mounted under a path (even one that holds the stand-in id)."""
    from flask import url_for

    from app.admin.links import id_urls

    for root in ("", "/mounted", "/2147483647"):
        with app.test_request_context("/admin/posts", environ_base={"SCRIPT_NAME": root}):
            for endpoint, name in [("admin.post_detail", "post_id"), ("admin.confirm_delete_post", "post_id"),
                                   ("admin.user_detail", "user_id")]:
                urls = id_urls(endpoint, name)
                for value in (1, 42, 2147483647):
                    assert urls[value] == url_for(endpoint, **{name: value}), (root, endpoint, value)
