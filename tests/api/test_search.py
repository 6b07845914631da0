"""Full-text search (`q`) on the post lists and the admin posts page, on both databases."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from app.errors import UnreadableSearch, handle_domain_error
from app.pagination import PageRequest
from app.search import InvalidSearch, SearchQuery, Term, WordStatistics, parse_search
from app.services import posts
from tests.admin_support import signed_in
from tests.helpers import assert_problem, ids, walk


def titles(response) -> list[str]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return [post["title"] for post in response.get_json()]


def search(client, q: str, path: str = "/api/posts", **params) -> list[str]:
    return titles(client.get(path, query_string={"q": q, **params}))


@pytest.fixture
def library(client, user, make_post):
    """A few posts whose titles say what they contain."""
    for title, body in [
        ("Flask tips", "How to structure a Flask application"),
        ("Body only", "Deploying python services with gunicorn"),
        ("Café culture", "Espresso and croissants"),
        ("Exact phrase", "the quick brown fox jumps"),
        ("Scrambled phrase", "the brown quick fox jumps"),
        ("Python intro", "Variables and loops"),
        ("Pythagoras", "Triangles everywhere"),
    ]:
        make_post(user, title=title, body=body)
    return user


def test_a_word_only_in_the_body_is_found(client, library):
    assert search(client, "gunicorn") == ["Body only"]


def test_case_does_not_matter(client, library):
    assert search(client, "GUNICORN") == search(client, "gunicorn") == ["Body only"]


def test_accents_do_not_matter_either_way(client, library):
    assert search(client, "cafe culture") == ["Café culture"]
    assert search(client, "croissánts") == ["Café culture"]


def test_every_word_must_match_in_any_order(client, library):
    assert search(client, "fox quick exact") == ["Exact phrase"]
    assert search(client, "flask gunicorn") == []


def test_the_last_word_matches_as_a_prefix(client, library):
    assert search(client, "pyth") == ["Pythagoras", "Python intro", "Body only"]
    assert search(client, "pytho intro") == []  # only the last word is a prefix
    assert search(client, "intro pytho") == ["Python intro"]


def test_a_quoted_phrase_must_appear_in_that_order(client, library):
    assert search(client, '"quick brown fox"') == ["Exact phrase"]
    assert search(client, "quick brown fox") == ["Scrambled phrase", "Exact phrase"]


def test_a_quoted_last_word_is_not_a_prefix(client, library):
    assert search(client, '"pyth"') == []


def test_minus_excludes_a_word_or_a_phrase(client, library):
    assert search(client, "fox jumps -scrambled") == ["Exact phrase"]
    assert search(client, 'fox -"quick brown"') == ["Scrambled phrase"]


def test_no_match_is_an_empty_page(client, library):
    assert search(client, "zzzz") == []


def test_common_words_alone_are_not_searched_for(client, library):
    assert search(client, "the gunicorn") == ["Body only"]


@pytest.mark.parametrize("q", ["!!!", "...", "the", "the and of", '""', "-flask", "-flask -python", "_"])
def test_nothing_searchable_is_422_saying_why(client, library, q):
    body = assert_problem(client.get("/api/posts", query_string={"q": q}), 422)
    assert body["errors"]["q"]


@pytest.mark.parametrize(("q", "said"), [
    ("flask OR django", "`OR` is not supported"),
    ("OR", "`OR` is not supported"),
    ("flask NOT django", "put `-` before a word"),
    ("title:flask", "`title:` is not supported"),
    ("Body:gunicorn", "`Body:` is not supported"),
    ("flask -author:me", "`author:` is not supported"),
])
def test_another_engines_syntax_is_422_saying_what_is_supported(client, library, q, said):
    for path in ("/api/posts", f"/api/users/{library.id}/posts"):
        body = assert_problem(client.get(path, query_string={"q": q}), 422)
        assert said in body["errors"]["q"][0]


@pytest.mark.parametrize(("q", "found"), [
    ("flask or tips", ["Flask tips"]),  # a lowercase `or` is a common word, as ever
    ("10:30 flask", []),
    ('"title:flask"', []),
    ("Flask: tips", ["Flask tips"]),
    ("std::vector", []),
    ("flask:*", ["Flask tips"]),
    ("-OR flask", ["Flask tips"]),
])
def test_words_with_colons_and_a_lowercase_or_are_still_searched(client, library, q, found):
    assert search(client, q) == found


def test_the_q_parameter_documents_what_the_syntax_supports(client):
    spec = client.get("/openapi.json").get_json()
    q = next(p for p in spec["paths"]["/api/posts"]["get"]["parameters"] if p["name"] == "q")
    assert "no `OR`, `NOT` or `field:` syntax" in q["description"]


def test_the_admin_posts_search_refuses_or_saying_why(admin, client):
    signed_in(client, admin)
    page = client.get("/admin/posts?q=flask+OR+django")
    assert page.status_code == 400
    assert "is not supported" in page.get_data(as_text=True)


@pytest.mark.parametrize("q", ["x" * 201, "nul\u0000", ""])
def test_bad_q_is_422(client, q):
    assert "q" in assert_problem(client.get("/api/posts", query_string={"q": q}), 422)["errors"]


def test_search_text_with_query_syntax_characters_is_safe(client, library):
    """Characters meaningful to tsquery or FTS5 are separators here, never syntax."""
    for q in ["flask:*", "flask & !gunicorn", "flask | (", "NEAR(flask)", "flask' OR 1=1 --", 'a"b', "*"]:
        response = client.get("/api/posts", query_string={"q": q})
        assert response.status_code in (200, 422), (q, response.get_data(as_text=True))
        if response.status_code == 422:
            assert_problem(response, 422)
    assert search(client, "flask:*") == ["Flask tips"]


# Letters that PostgreSQL's accent folding turns into an apostrophe, a quote, a caret, a
# backquote or a colon: tsquery syntax once inside a quoted word.
FOLDED_INTO_PUNCTUATION = "\u02b9\u02ba\u02bb\u02bc\u02bd\u02c6\u02c8\u02cb\u02d0"


@pytest.mark.parametrize("letter", FOLDED_INTO_PUNCTUATION)
def test_letters_that_fold_into_punctuation_separate_words(client, library, letter):
    assert search(client, f"flask{letter}") == ["Flask tips"]
    assert search(client, f"{letter}flask{letter}{letter}") == ["Flask tips"]
    assert search(client, f"flask{letter}tips") == ["Flask tips"]
    assert search(client, f'"flask{letter}application"') == ["Flask tips"]


def test_a_folded_letter_never_turns_an_exclusion_into_a_wanted_phrase(client, library):
    assert search(client, "python -intro") == ["Body only"]
    assert search(client, "python\u02bc -\u02bcintro") == ["Body only"]
    assert search(client, "intro\u02bc -\u02bcpython") == []


def test_a_search_the_database_cannot_read_is_a_422_on_the_field(app, client, library, database_url):
    """Whatever a future accent folding turns into syntax: the words below are what the parser
    let through before it folded first."""
    word = "flask\u02bc" if database_url.startswith("postgresql") else 'flask"tips'
    with app.test_request_context("/api/posts"):
        with pytest.raises(UnreadableSearch) as refused:
            posts.list_posts(PageRequest(limit=10), search=SearchQuery((Term((word,), prefix=True),)))
        body = assert_problem(handle_domain_error(refused.value), 422)
    assert body["errors"] == {"q": ["The search could not be read: use words of letters and digits."]}
    assert search(client, "flask") == ["Flask tips"]  # the connection that saw the error still serves


def test_a_users_posts_can_be_searched(client, make_user, make_post):
    ann, bob = make_user(), make_user()
    make_post(ann, title="Ann on flask")
    make_post(bob, title="Bob on flask")
    make_post(ann, title="Ann on django")
    assert search(client, "flask", f"/api/users/{ann.id}/posts") == ["Ann on flask"]
    assert_problem(client.get(f"/api/users/{ann.id}/posts", query_string={"q": "!!"}), 422)


def test_search_combines_with_the_author_filter(client, make_user, make_post):
    ann, bob = make_user(), make_user()
    mine = make_post(ann, title="Flask by Ann")
    make_post(bob, title="Flask by Bob")
    assert ids(client.get(f"/api/posts?author_id={ann.id}&q=flask")) == [mine]


def test_paging_a_search_visits_every_match_once_while_posts_arrive(client, user, make_post):
    matching = [make_post(user, title=f"needle {n}") for n in range(7)]
    for n in range(5):
        make_post(user, title=f"hay {n}")
    pages, url = [], "/api/posts?q=needle&limit=3"
    while url:
        response = client.get(url)
        pages.append([post["id"] for post in response.get_json()])
        make_post(user, title="needle arriving late")  # newer than every cursor
        link = response.headers.get("Link")
        url = link[link.index("<") + 1:link.index(">")].split("localhost", 1)[-1] if link else None
    seen = [post_id for page in pages for post_id in page]
    assert seen == sorted(matching, reverse=True)
    assert [len(page) for page in pages] == [3, 3, 1]


def test_the_next_link_keeps_the_search(client, user, make_post):
    needles = [make_post(user, title=f"needle {n}") for n in range(4)]
    make_post(user, title="hay")
    pages = walk(client, "/api/posts?q=needle&limit=2")
    assert pages == [needles[:1:-1], needles[1::-1]]


def test_editing_or_deleting_a_post_changes_what_search_finds_at_once(client, user, make_post):
    post_id = make_post(user, title="Original words", body="nothing")
    assert search(client, "original") == ["Original words"]
    response = client.patch(f"/api/posts/{post_id}", json={"body": "now mentions zeppelin"}, headers=user.headers)
    assert response.status_code == 200
    assert search(client, "zeppelin") == ["Original words"]
    client.patch(f"/api/posts/{post_id}", json={"title": "Renamed"}, headers=user.headers)
    assert search(client, "original") == []
    assert client.delete(f"/api/posts/{post_id}", headers=user.headers).status_code == 204
    assert search(client, "zeppelin") == []


def test_search_while_posts_are_written_concurrently_stays_consistent(app, client, user):
    """Writers on other threads; every search answer lists only matching posts, newest first."""
    errors: list[str] = []

    def write() -> None:
        writer = app.test_client()
        for n in range(10):
            status = writer.post("/api/posts", json={"title": f"needle {n}", "body": "x"},
                                 headers=user.headers).status_code
            if status != 201:
                errors.append(str(status))

    thread = threading.Thread(target=write)
    thread.start()
    while thread.is_alive():
        found = client.get("/api/posts?q=needle").get_json()
        assert all(post["title"].startswith("needle") for post in found)
        assert [p["id"] for p in found] == sorted((p["id"] for p in found), reverse=True)
    thread.join()
    assert errors == []
    assert len(search(client, "needle", limit=100)) == 10


def test_admin_posts_page_searches_title_and_body(app, admin, client, make_user, make_post):
    writer = make_user()
    make_post(writer, title="About caching", body="with redis")
    make_post(writer, title="About queues", body="with rabbitmq")
    signed_in(client, admin)
    page = client.get("/admin/posts?q=redis")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "About caching" in html and "About queues" not in html
    bad = client.get("/admin/posts?q=%21%21")
    assert bad.status_code == 400
    assert "Nothing to search for" in bad.get_data(as_text=True)


# ---- the parser, on its own ----------------------------------------------------


def test_parser_marks_only_the_last_bare_word_as_prefix():
    query = parse_search('"exact words" -nope tail')
    assert [(t.words, t.exclude, t.prefix) for t in query.terms] == [
        (("exact", "words"), False, False), (("nope",), True, False), (("tail",), False, True)]


def test_parser_splits_words_on_anything_but_letters_and_digits():
    assert [t.words for t in parse_search("e-mail C++ 3.14 snake_case").terms] == [
        ("e", "mail"), ("c",), ("3", "14"), ("snake", "case")]


@pytest.mark.parametrize("q", ["", "   ", "-a -b", "of the", "()"])
def test_parser_refuses_queries_without_a_wanted_word(q):
    with pytest.raises(InvalidSearch):
        parse_search(q)


@pytest.mark.parametrize("window", [1, 3, 4, 5000])
def test_search_pages_are_the_same_whatever_the_newest_posts_window(client, user, monkeypatch, window, make_post):
    """A search looks among the newest posts first, then asks the index: the pages must not
    depend on where that switch happens."""
    from app.services import posts

    monkeypatch.setattr(posts, "SEARCH_WINDOW", window)
    wanted = []
    for n in range(12):
        post_id = make_post(user, title=f"{'needle' if n % 3 else 'hay'} {n}")
        if n % 3:
            wanted.append(post_id)
    pages = walk(client, "/api/posts?q=needle&limit=2")
    assert [post_id for page in pages for post_id in page] == wanted[::-1]
    assert all(len(page) == 2 for page in pages)


# ---- how a search finds its page (PostgreSQL) ---------------------------------------------


def test_word_statistics_walk_the_newest_posts_for_common_words_and_ask_the_index_for_rare_ones():
    statistics = WordStatistics({"flask": 0.9, "kestrel": 0.01, "cafe": 0.001}, posts=1_000_000)
    assert statistics.best_walked(parse_search("flask"))  # a walk reads ~23 posts, the index 900,000
    assert statistics.best_walked(parse_search("kestrel"))  # ~2,100 against 10,000
    assert not statistics.best_walked(parse_search("café"))  # ~21,000 against 1,000 (accents ignored)
    assert not statistics.best_walked(parse_search("quokka"))  # not listed: rare, or in no post at all
    assert not statistics.best_walked(parse_search("zzz"))  # a prefix of no listed word
    assert statistics.best_walked(parse_search("fla"))  # a prefix is as common as the words it starts
    assert not statistics.best_walked(parse_search("flask quokka"))  # as rare as its rarest word
    assert not statistics.best_walked(parse_search('"flask quokka"'))
    assert statistics.best_walked(parse_search("flask -kestrel"))  # exclusions do not narrow the estimate


def test_a_match_found_by_the_index_weighs_more_than_a_walked_post():
    # Walking reads ~2,100 posts for a page of a 1% word, the index 1,000 matches at 100,000 posts:
    # fewer rows, but each match costs a visit to its row and a place in a sort.
    statistics = WordStatistics({"kestrel": 0.01, "cafe": 0.001}, posts=100_000)
    assert statistics.best_walked(parse_search("kestrel"))
    assert not statistics.best_walked(parse_search("café"))  # ~21,000 posts against 100 matches


def test_on_a_small_table_a_word_in_few_posts_is_read_through_the_index():
    statistics = WordStatistics({"flask": 0.2}, posts=100)
    assert not statistics.best_walked(parse_search("flask"))  # 20 matches: fewer than one page


def test_a_common_word_missing_from_the_newest_posts_is_found_by_one_walk(app, client, user, database_url,
                                                                         sql_statements, monkeypatch, make_post):
    """ANALYZE says `needle` is common: the search walks the newest posts until its page is full,
    past a run of newer posts without it, in one statement (the index would read every match)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("word statistics are PostgreSQL's (SQLite's FTS5 has no planner to outwit)")
    from app.extensions import db
    from app.services import posts

    older = [make_post(user, f"needle {n}") for n in range(30)]
    for n in range(10):
        make_post(user, f"hay {n}")
    monkeypatch.setattr(posts, "SEARCH_WINDOW", 5)  # the newest five posts hold no needle
    with app.app_context():
        db.session.execute(text("ANALYZE posts"))
        db.session.commit()
    posts._word_statistics.clear()
    client.get("/api/posts?q=needle")  # reads the statistics
    sql_statements.clear()

    response = client.get("/api/posts", query_string={"q": "needle", "limit": 21})

    assert [post["id"] for post in response.get_json()] == older[::-1][:21]
    assert len(sql_statements) == 1, sql_statements
    sql_statements.clear()
    assert client.get("/api/posts?q=zzzz").get_json() == []
    assert len(sql_statements) == 1  # a word in no post: the index alone, no look at the newest posts


def step_for(statistics: WordStatistics, q: str) -> str:
    """How a search finds its page by these statistics: a walk of the newest posts, or the index."""
    return "walk" if statistics.best_walked(parse_search(q)) else "index"


def test_a_word_the_statistics_do_not_list_is_rare_and_every_query_finds_exactly_its_posts(
        app, client, user, database_url, sql_statements, make_post):
    """ANALYZE lists the posts' common words. A query they call common walks the newest posts;
    any other, a word added since the last ANALYZE or in no post at all included, is rare and
    gets its matches from the search index, in one statement with no look at the newest posts
    first. Whichever way, each kind of query finds exactly its posts, newest first."""
    if not database_url.startswith("postgresql"):
        pytest.skip("word statistics are PostgreSQL's (SQLite's FTS5 has no planner to outwit)")
    from app.extensions import db
    from app.services import posts

    written = []
    for n in range(60):
        title = f"python flask {n}" if n % 5 == 0 else f"flask python {n}"
        body = "a kestrel overhead" if n % 4 == 0 else "nothing to see"
        written.append((make_post(user, title, body), f"{title} {body}"))
    with app.app_context():
        db.session.execute(text("ANALYZE posts"))
        db.session.commit()
    posts._word_statistics.clear()
    client.get("/api/posts?q=flask")  # reads the statistics
    with app.app_context():
        statistics = WordStatistics.read(db.session)
    written.append((make_post(user, "An ocelot", "first seen after the statistics were made"),
                    "An ocelot first seen after the statistics were made"))

    def expected(keep) -> list[int]:
        return [post_id for post_id, words in reversed(written) if keep(words.lower())]

    cases = [
        ("flask", "walk", lambda w: "flask" in w),  # in every post but one
        ("pyth", "walk", lambda w: "python" in w),  # a prefix of a common word
        ('"flask python" -kestrel', "walk", lambda w: "flask python" in w and "kestrel" not in w),
        ("kestrel", "index", lambda w: "kestrel" in w),  # listed, in one post in four: rare
        ("kest", "index", lambda w: "kestrel" in w),  # a prefix of it
        ("flask kestrel", "index", lambda w: "flask" in w and "kestrel" in w),  # as rare as its rarest word
        ("ocelot", "index", lambda w: "ocelot" in w),  # added after ANALYZE: not listed, rare
        ("zzzz", "index", lambda w: False),  # in no post
    ]
    for q, step, keep in cases:
        sql_statements.clear()
        response = client.get("/api/posts", query_string={"q": q, "limit": 100})
        assert response.status_code == 200, response.get_data(as_text=True)
        assert [post["id"] for post in response.get_json()] == expected(keep), q
        assert len(sql_statements) == 1, (q, sql_statements)
        assert step_for(statistics, q) == step, q
