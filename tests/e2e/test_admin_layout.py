"""The admin pages' layout with awkward data, at desktop and phone width: big counts,
a title of 100 combining marks, an author called "User 1806", an error under a filter.

Geometry is measured in the browser; the screenshots (test-artifacts/layout-*.png)
are for a person to look at.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import insert

from app.extensions import db
from app.models import Post
from tests.e2e.conftest import sign_in

ZALGO = "Z" + "\u0301\u0316" * 50  # one letter and 100 combining marks
VIEWPORTS = {"desktop": {"width": 1280, "height": 860}, "phone": {"width": 390, "height": 844}}
BUSY_DAY_POSTS = 12_345


@pytest.fixture
def crowded(app, make_user):
    """Thousands of posts (one very busy day), an author called "User 1806", a zalgo title."""
    author = make_user(name="User 1806")
    now = datetime.now(UTC)
    rows = [{"author_id": author.id, "title": f"Busy {i}", "body": "b", "created_at": now - timedelta(days=3),
             "updated_at": now - timedelta(days=3)} for i in range(BUSY_DAY_POSTS)]
    rows += [{"author_id": author.id, "title": f"Later {i}", "body": "b", "created_at": now - timedelta(days=i % 20),
              "updated_at": now - timedelta(days=i % 20)} for i in range(60)]
    long_title = "A title long enough to squeeze the other columns of the table, " * 3
    rows += [{"author_id": author.id, "title": f"{long_title}{i}", "body": "b",
              "created_at": now - timedelta(minutes=i), "updated_at": now - timedelta(minutes=i)} for i in range(1, 6)]
    rows.append({"author_id": author.id, "title": ZALGO, "body": "b", "created_at": now, "updated_at": now})
    with app.app_context():
        db.session.execute(insert(Post), rows)
        db.session.commit()
    return author


def boxes(page, selector: str) -> list[dict]:
    return page.locator(selector).evaluate_all(
        "elements => elements.map(e => { const r = e.getBoundingClientRect();"
        " return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, text: e.textContent}; })")


def overlap(a: dict, b: dict) -> bool:
    return a["left"] < b["right"] and b["left"] < a["right"] and a["top"] < b["bottom"] and b["top"] < a["bottom"]


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_chart_labels_neither_overlap_nor_get_clipped(page, crowded, admin, artifacts, viewport):
    page.set_viewport_size(VIEWPORTS[viewport])
    sign_in(page, admin)
    page.goto("/admin/")
    svg = boxes(page, "svg.bar-chart")[0]
    ticks = boxes(page, "svg.bar-chart text.tick")
    title = boxes(page, "svg.bar-chart text.axis-title")
    y_labels = [t["text"] for t in boxes(page, "svg.bar-chart text.tick.y")]
    assert "12,500" in y_labels or "15,000" in y_labels, y_labels  # five digits, with a separator
    for label in ticks + title:
        inside = (label["left"] >= svg["left"] - 0.5 and label["right"] <= svg["right"] + 0.5
                  and label["top"] >= svg["top"] - 0.5 and label["bottom"] <= svg["bottom"] + 0.5)
        assert inside, f"{label['text']!r} is clipped at {viewport} width"
    labels = ticks + title
    for i, label in enumerate(labels):
        for other in labels[i + 1:]:
            assert not overlap(label, other), f"{label['text']!r} overlaps {other['text']!r} at {viewport} width"
    page.locator("section.card").first.screenshot(path=str(artifacts / f"layout-chart-{viewport}.png"))
    page.screenshot(path=str(artifacts / f"layout-dashboard-{viewport}.png"), full_page=True)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_zalgo_title_stays_in_its_row_and_the_author_on_one_line(page, crowded, admin, artifacts, viewport):
    page.set_viewport_size(VIEWPORTS[viewport])
    sign_in(page, admin)
    page.goto("/admin/posts")
    authors = page.locator("#posts-table tbody td:nth-child(3) a").all()
    assert len(authors) >= 6
    for author in authors[:6]:
        assert author.evaluate("a => a.getClientRects().length") == 1, f"{author.text_content()!r} wraps"
    row = page.locator("#posts-table tbody tr").first
    expect(row.locator("td.title")).to_contain_text("Z")
    # The marks are drawn, but clipped to their own cell: nothing paints over the next rows.
    clip = row.locator("td.title .clip").evaluate("e => getComputedStyle(e).overflow")
    assert clip == "hidden"
    title, cell = boxes(page, "#posts-table tbody tr:first-child td.title .clip")[0], \
        boxes(page, "#posts-table tbody tr:first-child td.title")[0]
    assert cell["top"] <= title["top"] and title["bottom"] <= cell["bottom"]
    page.screenshot(path=str(artifacts / f"layout-posts-{viewport}.png"))


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_an_error_under_the_author_filter_keeps_the_fields_in_line(page, crowded, admin, artifacts, viewport):
    page.set_viewport_size(VIEWPORTS[viewport])
    sign_in(page, admin)
    page.goto("/admin/posts?q=Busy&author=nobody-at-all%40example.com")
    expect(page.locator(".filters .field-error")).to_have_count(1)
    title_input, author_input = boxes(page, "#q")[0], boxes(page, "#author")[0]
    button = boxes(page, ".filters button[type=submit]")[0]
    if viewport == "desktop":  # one row: inputs and button share a top edge
        assert abs(title_input["top"] - author_input["top"]) < 1
        assert abs(button["top"] - author_input["top"]) < 1
    else:  # stacked: each field below the last, the button below the error
        error = boxes(page, ".filters .field-error")[0]
        assert title_input["bottom"] < author_input["top"] < error["top"] < button["top"]
    page.locator("form.filters").screenshot(path=str(artifacts / f"layout-filter-error-{viewport}.png"))


# ---- one line per row, values in line, nothing that always fails ------------------------------

# The vertical spread of the centres of everything drawn in each element (its text's line boxes and
# its children's boxes): a few pixels when it is all on one line, a line's height or more when not.
SPREAD = """elements => elements.map(element => {
  const range = document.createRange(); range.selectNodeContents(element);
  const centres = [...range.getClientRects()].filter(r => r.width > 0 && r.height > 0)
    .map(r => r.top + r.height / 2);
  return Math.max(...centres) - Math.min(...centres);
})"""
# Where the content of each element starts (its leftmost box).
CONTENT_LEFT = """elements => elements.map(element => {
  const range = document.createRange(); range.selectNodeContents(element);
  return Math.min(...[...range.getClientRects()].filter(r => r.width > 0).map(r => r.left));
})"""
ONE_LINE = 8  # px: centres of things on one line differ by less; a second line is about 20 further


@pytest.fixture
def crowd(app, client, make_user, admin, make_post, make_follow):
    """Users with long addresses who follow the admin and write about Flask."""
    people = [make_user(name=f"Someone with a name {i}", email=f"someone.with.a.long.address.{i}@example.com")
              for i in range(4)]
    for person in people:
        make_follow(person, admin)
        make_post(person, "A post about the framework",
                   "Lorem ipsum dolor sit amet, consectetur adipiscing elit. Flask is a microframework, sed do "
                   "eiusmod tempor incididunt ut labore et dolore magna aliqua.")
    return people


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_users_table_keeps_each_row_and_its_buttons_on_one_line(page, crowd, admin, artifacts, viewport):
    page.set_viewport_size(VIEWPORTS[viewport])
    sign_in(page, admin)
    page.goto("/admin/users")
    # The admin's own row offers nothing the rules refuse; the others offer all three.
    own = page.locator(f'#users-table tr[data-user-id="{admin.id}"]')
    expect(own.locator("button, a.button")).to_have_count(0)
    expect(own.locator(".own-account")).to_be_visible()
    expect(page.locator(f'#users-table tr[data-user-id="{crowd[0].id}"] .actions > *')).to_have_count(3)
    actions = page.locator("#users-table tbody td.actions-cell .actions")
    assert max(actions.evaluate_all(SPREAD)) < ONE_LINE, f"the buttons wrap at {viewport} width"
    wrap = page.locator(".table-wrap").evaluate("e => e.scrollWidth - e.clientWidth")
    assert wrap <= 0, f"the table is {wrap}px wider than the page at {viewport} width"
    if viewport == "desktop":
        spreads = page.locator("#users-table tbody tr").evaluate_all(SPREAD)
        assert max(spreads) < ONE_LINE, f"a row takes more than one line: {spreads}"
    else:  # one card per row: every value starts in the same column, right of its label
        for row in page.locator("#users-table tbody tr").all():
            lefts = row.locator("td:not(.actions-cell)").evaluate_all(CONTENT_LEFT)
            assert max(lefts) - min(lefts) < 1, lefts
        assert max(page.locator("#users-table .badge").evaluate_all(SPREAD)) < ONE_LINE, "a badge wraps"
    page.screenshot(path=str(artifacts / f"layout-users-{viewport}.png"), full_page=True)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_follower_counts_stay_in_line_with_the_other_values(page, crowd, admin, artifacts, viewport):
    page.set_viewport_size(VIEWPORTS[viewport])
    sign_in(page, admin)
    page.goto(f"/admin/users/{admin.id}/followers")
    rows = page.locator("#follows-table tbody tr")
    expect(rows).to_have_count(len(crowd))
    if viewport == "desktop":
        assert max(rows.evaluate_all(SPREAD)) < ONE_LINE
    else:
        for row in rows.all():
            lefts = row.locator("td").evaluate_all(CONTENT_LEFT)
            assert max(lefts) - min(lefts) < 1, f"a value is pushed out of line by its label: {lefts}"
    page.screenshot(path=str(artifacts / f"layout-followers-{viewport}.png"), full_page=True)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_dashboard_numbers_sit_level_and_the_date_ticks_evenly(page, crowd, admin, artifacts, viewport):
    page.set_viewport_size(VIEWPORTS[viewport])
    sign_in(page, admin)
    page.goto("/admin/")
    labels = page.locator(".stat .stat-label")
    assert max(labels.evaluate_all(SPREAD)) < ONE_LINE, "a card's label wraps"
    cards, values = boxes(page, ".stat"), boxes(page, ".stat .stat-value")
    rows: dict[float, list[float]] = {}
    for card, value in zip(cards, values, strict=True):
        rows.setdefault(round(card["top"]), []).append(value["top"])
    assert len(rows) == (1 if viewport == "desktop" else 3)
    for tops in rows.values():
        assert max(tops) - min(tops) < 1, f"numbers of one row of cards at different heights: {tops}"
    marks = [mark["left"] for mark in boxes(page, "svg.bar-chart line.tick-mark")]
    gaps = [b - a for a, b in itertools.pairwise(marks)]
    assert len(marks) >= 5 and max(gaps) - min(gaps) < 1, f"date ticks unevenly spaced: {gaps}"
    page.screenshot(path=str(artifacts / f"layout-dashboard-cards-{viewport}.png"), full_page=True)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_post_search_shows_the_matched_words_under_the_title(page, crowd, admin, artifacts, viewport):
    page.set_viewport_size(VIEWPORTS[viewport])
    sign_in(page, admin)
    page.goto("/admin/posts?q=flask")
    snippets = page.locator("#posts-table td.title .snippet")
    expect(snippets).to_have_count(len(crowd))
    expect(snippets.first.locator("mark")).to_have_text("Flask")
    title, snippet = boxes(page, "#posts-table tbody tr:first-child td.title .clip")[0], \
        boxes(page, "#posts-table tbody tr:first-child td.title .snippet")[0]
    assert snippet["top"] >= title["bottom"] - 0.5 and abs(snippet["left"] - title["left"]) < 1
    page.screenshot(path=str(artifacts / f"layout-search-{viewport}.png"), full_page=True)


def _post_ids(page) -> list[str]:
    return page.locator("#posts-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.postId)")


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_pager_stays_on_one_line_and_previous_walks_back(page, crowded, admin, artifacts, viewport):
    page.set_viewport_size(VIEWPORTS[viewport])
    sign_in(page, admin)
    page.goto("/admin/posts")
    shown = [_post_ids(page)]
    for _ in range(2):
        page.locator('.pager a[rel="next"]').click()
        page.wait_for_load_state()
        shown.append(_post_ids(page))
    expect(page.locator(".pager a")).to_have_text(["« First page", "\u2039 Previous", "Next page »"])
    assert max(page.locator(".pager").evaluate_all(SPREAD)) < ONE_LINE, f"the pager wraps at {viewport} width"
    first, previous, after = boxes(page, ".pager a")
    assert previous["left"] - first["right"] >= 10, "First and Previous run together"
    assert after["right"] <= VIEWPORTS[viewport]["width"], "Next is pushed off the page"
    page.locator(".pager").screenshot(path=str(artifacts / f"layout-pager-{viewport}.png"))
    for expected in (shown[1], shown[0]):
        page.locator('.pager a[rel="prev"]').click()
        page.wait_for_load_state()
        assert _post_ids(page) == expected
    expect(page.locator('.pager a[rel="prev"]')).to_have_count(0)
