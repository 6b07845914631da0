"""The dashboard's numbers come from the database, and its chart is drawn on the server."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, update

from app.admin.chart import LARGEST_FONT, TICK_GAP, bar_chart, label_width, tick_step
from app.extensions import db
from app.models import DailyCount, Post, Role, User
from app.services import stats
from tests.admin_support import assert_admin_html, signed_in
from tests.helpers import query_plan, statements_run, tables_in_plan

NOW = datetime(2025, 3, 31, 12, 0, tzinfo=UTC)


def _age_user(app, user_id: int, when: datetime) -> None:
    with app.app_context():
        db.session.execute(update(User).where(User.id == user_id).values(created_at=when))
        db.session.commit()


def _stat(html: str, key: str) -> int:
    match = re.search(rf'id="stat-{key}">.*?class="stat-value">([\d,]+)<', html, re.S)
    assert match, key
    return int(match.group(1).replace(",", ""))


def test_dashboard_counts_match_the_database(app, client, make_user, admin, make_post):
    now = datetime.now(UTC)
    old_user = make_user()
    _age_user(app, old_user.id, now - timedelta(days=30))
    make_user(Role.ADMIN, is_active=False)
    make_user(is_active=False)
    make_user()
    make_post(old_user.id, at=now - timedelta(days=10))
    for hours in (1, 2, 50):
        make_post(old_user.id, at=now - timedelta(hours=hours))

    body = assert_admin_html(signed_in(client, admin).get("/admin/"), 200)
    assert _stat(body, "users") == 5
    assert _stat(body, "admins") == 2
    assert _stat(body, "inactive") == 2
    assert _stat(body, "posts") == 4
    assert _stat(body, "new-users") == 4
    assert _stat(body, "new-posts") == 3


def test_new_figures_count_whole_utc_days_from_six_days_ago_to_the_end_of_today(app, make_user, make_post):
    """NOW is 2025-03-31 12:00 UTC: the seven days are 2025-03-25 to 2025-03-31, whole."""
    author = make_user()
    _age_user(app, author.id, datetime(2025, 3, 24, 23, 59, 59, tzinfo=UTC))  # the day before: not new
    first = make_user()
    _age_user(app, first.id, datetime(2025, 3, 25, 0, 0, tzinfo=UTC))  # the first second of the first day
    last = make_user()
    _age_user(app, last.id, datetime(2025, 3, 31, 23, 59, 59, tzinfo=UTC))  # later today than NOW
    for at in (datetime(2025, 3, 24, 23, 59, 59, tzinfo=UTC), datetime(2025, 3, 25, 0, 0, tzinfo=UTC),
               datetime(2025, 3, 25, 11, 0, tzinfo=UTC),  # more than seven times 24 hours before NOW
               datetime(2025, 3, 31, 23, 59, 59, tzinfo=UTC)):
        make_post(author.id, at=at)
    with app.app_context():
        numbers = stats.dashboard(NOW)
    assert (numbers.users, numbers.admins, numbers.inactive_users) == (3, 0, 0)
    assert (numbers.posts, numbers.new_users, numbers.new_posts) == (4, 2, 3)
    assert numbers.recent_since == date(2025, 3, 25)


@pytest.mark.parametrize(("now", "new_posts"), [
    (datetime(2025, 3, 31, 0, 0, tzinfo=UTC), 2),  # the first moment of a day counts the same days ...
    (datetime(2025, 3, 31, 23, 59, 59, 999999, tzinfo=UTC), 2),  # ... as its last
    (datetime(2025, 4, 1, 0, 0, tzinfo=UTC), 1),  # the next day leaves 2025-03-25 out
    (datetime(2025, 3, 30, 23, 59, 59, 999999, tzinfo=UTC), 3),  # the day before takes 2025-03-24 in
])
def test_the_new_figures_move_at_utc_midnight_only(app, make_user, make_post, now, new_posts):
    author = make_user()
    _age_user(app, author.id, datetime(2025, 1, 1, tzinfo=UTC))
    for at in (datetime(2025, 3, 24, 12, 0, tzinfo=UTC), datetime(2025, 3, 25, 12, 0, tzinfo=UTC),
               datetime(2025, 3, 30, 12, 0, tzinfo=UTC)):
        make_post(author.id, at=at)
    with app.app_context():
        assert stats.dashboard(now).new_posts == new_posts


def test_new_posts_are_the_sum_of_the_charts_last_seven_bars(app, make_user, make_post):
    author = make_user()
    for days_ago in (0, 0, 3, 6, 7, 8, 20):
        make_post(author.id, at=NOW - timedelta(days=days_ago))
    with app.app_context():
        numbers = stats.dashboard(NOW)
    bars = [count for _, count in numbers.posts_per_day]
    assert numbers.new_posts == sum(bars[-stats.RECENT_DAYS:]) == 4
    assert numbers.posts_per_day[-stats.RECENT_DAYS][0] == numbers.recent_since


def test_the_page_says_which_days_the_new_figures_count(client, admin):
    body = assert_admin_html(signed_in(client, admin).get("/admin/"), 200)
    first = (datetime.now(UTC).date() - timedelta(days=stats.RECENT_DAYS - 1)).isoformat()
    note = re.search(r'id="recent-days">(.*?)</p>', body, re.S)
    assert note, "no note under the figures"
    assert f"whole UTC days from {first}, today included" in note.group(1)
    assert "the chart's last 7 bars" in note.group(1)


def test_posts_per_day_buckets_by_utc_day_with_zero_days_filled(app, make_user, make_post):
    author = make_user()
    today = NOW.date()
    make_post(author.id, at=datetime(2025, 3, 31, 0, 0, 1, tzinfo=UTC))
    make_post(author.id, at=datetime(2025, 3, 30, 23, 59, 59, tzinfo=UTC))
    make_post(author.id, at=datetime(2025, 3, 30, 12, 0, tzinfo=UTC))
    make_post(author.id, at=datetime(2025, 3, 2, 0, 0, tzinfo=UTC))       # first day of the window
    make_post(author.id, at=datetime(2025, 3, 1, 23, 59, 59, tzinfo=UTC))  # just before it
    with app.app_context():
        series = stats.dashboard(NOW).posts_per_day
    assert len(series) == 30
    assert series[0][0] == date(2025, 3, 2) and series[-1][0] == today
    by_day = dict(series)
    assert by_day[today] == 1
    assert by_day[date(2025, 3, 30)] == 2
    assert by_day[date(2025, 3, 2)] == 1
    assert sum(by_day.values()) == 4


def _add_to_counter(app, subject: str, day: date, n: int) -> None:
    """Make a counter disagree with the rows, to see which of the two a number comes from."""
    with app.app_context():
        db.session.execute(update(DailyCount).where(DailyCount.subject == subject, DailyCount.day == day)
                           .values(count=DailyCount.count + n))
        db.session.commit()


def test_posts_per_day_is_one_statement_on_the_daily_counts_not_the_posts(app, make_user, make_post,
                                                                          sql_statements):
    author = make_user()
    for day in range(10):
        make_post(author.id, at=NOW - timedelta(days=day))
    _add_to_counter(app, "posts", NOW.date(), 10)
    sql_statements.clear()
    with app.app_context():
        series = stats.dashboard(NOW).posts_per_day
    assert len(sql_statements) == 1, sql_statements
    assert dict(series)[NOW.date()] == 11 and sum(count for _, count in series) == 20


def test_every_dashboard_figure_comes_from_the_counters_not_from_rows_of_posts_or_users(
        app, make_user, make_post, sql_statements):
    """Counters made to disagree with the rows, on the first recent day and today: the figures
    are the counters'. One statement, at a cost that does not grow with the tables."""
    author = make_user()
    _age_user(app, author.id, NOW - timedelta(days=30))
    make_post(author.id, at=NOW - timedelta(days=stats.RECENT_DAYS - 1))
    make_post(author.id, at=NOW)
    _add_to_counter(app, "posts", stats.first_recent_day(NOW), 1000)
    _add_to_counter(app, "posts", NOW.date(), 100)
    sql_statements.clear()
    with app.app_context():
        numbers = stats.dashboard(NOW)
    assert len(sql_statements) == 1, sql_statements
    assert (numbers.users, numbers.new_users) == (1, 0)
    assert numbers.posts == numbers.new_posts == 2 + 1000 + 100


def test_the_dashboards_plans_read_no_posts(app, make_user, make_post):
    """By the database's own plan of the very statements the dashboard runs: no scan of `posts`,
    whatever the number of posts. Counting posts from rows again (for a partial day, say) fails here."""
    author = make_user()
    for days_ago in range(10):
        make_post(author.id, at=NOW - timedelta(days=days_ago, hours=1))
    with app.app_context():
        with statements_run(app) as seen:
            stats.dashboard(NOW)
        read = [tables_in_plan(query_plan(db.session.connection(), *run)) for run in seen]
    assert len(read) == 1
    assert all("posts" not in tables for tables in read), read
    tables = set().union(*read) - {"figures"}  # the statement's own one-row subquery, which SQLite scans by name
    assert {"daily_counts"} <= tables <= {"daily_counts", "users"}


def test_counts_follow_deletes_cascades_and_backdating(app, client, make_user, admin):
    ann, bob = make_user(), make_user()
    written = [client.post("/api/posts", json={"title": f"t{n}", "body": "b"}, headers=person.headers)
               for n, person in enumerate([ann, ann, ann, bob])]
    assert [r.status_code for r in written] == [201] * 4
    assert client.delete(f"/api/posts/{written[0].get_json()['id']}", headers=ann.headers).status_code == 204
    _age_user(app, bob.id, datetime.now(UTC) - timedelta(days=40))
    assert client.delete(f"/api/users/{ann.id}", headers=admin.headers).status_code == 204
    with app.app_context():
        numbers = stats.dashboard()
        assert numbers.posts == db.session.scalar(select(func.count()).select_from(Post)) == 1
        assert numbers.users == db.session.scalar(select(func.count()).select_from(User)) == 2
        assert numbers.new_users == 1  # bob was backdated out of the last seven days
        assert numbers.new_posts == 1


def test_chart_bars_match_the_posts_per_day(app, client, admin, make_post):
    now = datetime.now(UTC)
    for days_ago, count in ((0, 3), (1, 1), (5, 2), (29, 1), (30, 4)):
        for _ in range(count):
            make_post(admin.id, at=now - timedelta(days=days_ago))
    body = assert_admin_html(signed_in(client, admin).get("/admin/"), 200)
    bars = dict(re.findall(r'<rect class="bar"[^>]*data-day="([\d-]+)" data-count="(\d+)"', body))
    assert len(bars) == 30
    today = now.date()
    assert bars[today.isoformat()] == "3"
    assert bars[(today - timedelta(days=1)).isoformat()] == "1"
    assert bars[(today - timedelta(days=5)).isoformat()] == "2"
    assert bars[(today - timedelta(days=29)).isoformat()] == "1"
    assert (today - timedelta(days=30)).isoformat() not in bars
    assert sum(int(c) for c in bars.values()) == 7


def test_chart_is_inline_svg_with_axis_labels_and_no_script(client, admin):
    body = assert_admin_html(signed_in(client, admin).get("/admin/"), 200)
    svg = body[body.index("<svg"): body.index("</svg>")]
    assert "Day (UTC)" in svg and ">Posts<" in svg
    assert len(re.findall(r'<text class="tick', svg)) >= 5 + 6  # y ticks and date labels
    assert "<script" not in body.lower() and "http://" not in body.replace("http://www.w3.org/2000/svg", "")


@pytest.mark.parametrize(("peak", "step"), [(0, 1), (1, 1), (4, 1), (5, 2), (9, 5), (37, 10), (100, 25),
                                            (101, 50), (999, 250), (12345, 5000)])
def test_axis_steps_are_round_numbers_that_reach_the_peak(peak, step):
    assert tick_step(peak) == step
    assert tick_step(peak) * 4 >= peak


def test_bar_heights_are_proportional_and_fit_the_plot():
    days = [date(2025, 1, 1) + timedelta(days=i) for i in range(30)]
    chart = bar_chart([(day, i % 7) for i, day in enumerate(days)])
    tallest = max(chart.bars, key=lambda bar: bar.count)
    for bar in chart.bars:
        assert bar.y + bar.height == pytest.approx(chart.baseline)
        assert bar.y >= chart.top
        assert bar.height == pytest.approx(tallest.height * bar.count / tallest.count, abs=0.02)
    assert chart.bars[0].x >= chart.left and chart.bars[-1].x + chart.bars[-1].width <= chart.right_edge
    assert [tick.label for tick in chart.y_ticks] == ["0", "2", "4", "6", "8"]


def test_empty_chart_draws_flat_bars():
    chart = bar_chart([(date(2025, 1, 1) + timedelta(days=i), 0) for i in range(30)])
    assert all(bar.height == 0 for bar in chart.bars)
    assert chart.total == 0


def test_counts_are_shown_with_thousands_separators(app, client, user, admin):
    now = datetime.now(UTC)
    with app.app_context():
        db.session.execute(insert(Post), [{"author_id": user.id, "title": f"Post {i}", "body": "b",
                                           "created_at": now, "updated_at": now} for i in range(1234)])
        db.session.commit()
    body = assert_admin_html(signed_in(client, admin).get("/admin/"), 200)
    assert re.search(r'id="stat-posts">.*?class="stat-value">1,234<', body, re.S)
    assert re.search(r'id="stat-new-posts">.*?class="stat-value">1,234<', body, re.S)
    assert "1,234 posts from" in body  # the caption and the chart's description
    assert '<td class="num">1,234</td>' in body  # the table of numbers
    assert re.search(r'<text class="tick y"[^>]*>1,500</text>', body)
    user_page = assert_admin_html(client.get(f"/admin/users/{user.id}"), 200)
    assert "<dd>1,234</dd>" in user_page and "All 1,234 posts by this user" in user_page


@pytest.mark.parametrize("peak", [7, 950, 12_345, 480_000])
def test_the_y_axis_leaves_room_for_its_widest_label_and_the_axis_title(peak):
    days = [date(2025, 3, 1) + timedelta(days=i) for i in range(30)]
    chart = bar_chart([(day, peak if i == 3 else 0) for i, day in enumerate(days)])
    labels = [tick.label for tick in chart.y_ticks]
    assert labels[-1] == f"{tick_step(peak) * 4:,}"
    widest = max(label_width(label) for label in labels)  # at the phone's font size
    label_left = chart.left - TICK_GAP - widest
    assert label_left >= chart.axis_title_x + LARGEST_FONT * 0.6, "the rotated title would touch the labels"
    assert chart.axis_title_x - LARGEST_FONT * 0.6 >= 0, "the title would be clipped"


@pytest.mark.parametrize("days", [1, 2, 7, 30, 31])
def test_the_first_and_last_date_labels_stay_inside_the_plot(days):
    chart = bar_chart([(date(2025, 3, 1) + timedelta(days=i), 1) for i in range(days)])
    first, last = chart.x_ticks[0], chart.x_ticks[-1]
    assert (last.anchor, last.position + last.label_offset) == ("end", chart.right_edge)
    if first is not last:
        start = first.position + first.label_offset
        assert start - (label_width(first.label) / 2 if first.anchor == "middle" else 0) >= chart.left


def test_the_date_labels_are_evenly_spaced_every_five_days_up_to_the_newest(client, admin):
    """Labelled from the oldest day, 30 days left a nine-day gap before the newest (Nov 28, Dec 7)."""
    body = assert_admin_html(signed_in(client, admin).get("/admin/"), 200)
    days = [date.fromisoformat(day) for day in re.findall(r'data-day="([\d-]+)"', body)]
    ticks = [(float(x), label) for x, label in re.findall(
        r'<line class="axis tick-mark" x1="([\d.]+)" x2="[\d.]+" y1="[\d.]+" y2="[\d.]+"></line>\s*'
        r'<text class="tick x"[^>]*>([^<]+)</text>', body)]
    assert len(days) == 30
    assert [label for _, label in ticks] == [f"{day:%b} {day.day}" for day in days[::-5][::-1]]
    assert len({round(b[0] - a[0], 1) for a, b in itertools.pairwise(ticks)}) == 1  # tick marks evenly spaced


def test_the_dashboard_page_is_the_admins_session_and_one_statement(app, client, admin, make_user, make_post,
                                                                   sql_statements):
    author = make_user()
    for days_ago in range(3):
        make_post(author.id, at=datetime.now(UTC) - timedelta(days=days_ago))
    signed_in(client, admin)
    sql_statements.clear()
    body = assert_admin_html(client.get("/admin/"), 200)
    assert _stat(body, "posts") == 3
    assert len(sql_statements) == 2, sql_statements  # who is signed in; every figure and the chart's days
