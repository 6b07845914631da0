"""The admin pages: thin views that read a form, call a service, then flash and redirect.

Every rule (who may change whom, the last admin, what deleting does) lives in
`app.services`, the same functions the API calls; a `DomainError` they raise
becomes a flash message here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from flask import abort, current_app, flash, g, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from app.admin.blueprint import bp
from app.admin.chart import bar_chart
from app.admin.forms import ActionForm, ActiveForm, LoginForm, PostFilterForm, RoleForm, UserFilterForm
from app.admin.session import SESSION_KEY, safe_next, sign_in, sign_out, signed_in_admin
from app.database import read_for
from app.errors import AuthenticationFailed, DomainError, ValidationFailed
from app.extensions import db, limiter
from app.models import MAX_ID, Role, User, is_possible_id
from app.pagination import Page, PageRequest, decode_cursor, encode_cursor
from app.ratelimit import client_ip, login_limit
from app.search import parse_search
from app.services import Precondition, expect_version, follows, outbox, posts, sessions, stats, throttle, users
from app.services.throttle import Client

RECENT_POSTS = 10
RECENT_FOLLOWS = 10
ID = f"int(max={MAX_ID})"  # larger ids cannot exist; PostgreSQL would reject them
PUBLIC_ENDPOINTS = frozenset({"admin.login", "admin.static"})
INVALID_CREDENTIALS = "Invalid credentials."
BAD_CURSOR = "This page link is invalid or out of date. Start again from the first page."


@bp.before_request
def require_admin() -> Response | None:
    if request.endpoint == "admin.static":
        return None
    had_session = SESSION_KEY in session
    g.admin = signed_in_admin()
    if g.admin is not None:
        read_for(g.admin.id)  # with replicas, the admin's reads see what they wrote
    g.admin_name = g.admin.name if g.admin else None  # a plain string: error pages must not query
    if g.admin is None and request.endpoint not in PUBLIC_ENDPOINTS:
        if had_session:
            flash("Your admin session has ended. Please sign in again.", "error")
        target = request.full_path.rstrip("?") if request.method == "GET" else None
        return redirect(url_for("admin.login", next=target))
    return None


DEVICE_COOKIE = "admin_device"


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(login_limit, key_func=client_ip, scope="admin-login-ip", methods=["POST"])
def login() -> Response | str:
    if g.admin is not None:
        return redirect(url_for("admin.dashboard"))
    form = LoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
    error = None
    if form.validate_on_submit():
        user = _admin_with_credentials(form.email.data, form.password.data)
        if user is None:
            error = INVALID_CREDENTIALS
        else:
            sign_in(user)
            flash(f"Signed in as {user.email}.", "success")
            response = redirect(safe_next(form.next.data, url_for("admin.dashboard")))
            _remember_device(response, user)
            return response
    return render_template("admin/login.html", form=form, error=error)


def _admin_with_credentials(email: str, password: str) -> User | None:
    """One answer for a wrong password, an unknown, inactive or non-admin account.
    The guessing budgets are the API login's: one budget per account, whichever face is used."""
    client = Client(ip=client_ip(), device_token=request.cookies.get(DEVICE_COOKIE))
    try:
        user = users.authenticate(email, password, client)
    except AuthenticationFailed:
        return None
    return user if user.is_admin else None


def _remember_device(response: Response, user: User) -> None:
    """The browser's device token (see `app.services.throttle`), kept for the admin pages only."""
    response.set_cookie(
        DEVICE_COOKIE, throttle.issue_device_token(user), max_age=current_app.config["DEVICE_TOKEN_DAYS"] * 86400,
        path="/admin", httponly=True, samesite="Lax", secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")),
    )


@bp.post("/logout")
def logout() -> Response:
    sign_out()
    flash("You have been signed out.", "success")
    return redirect(url_for("admin.login"))


@bp.get("/", strict_slashes=False)
def dashboard() -> str:
    numbers = stats.dashboard()
    return render_template(
        "admin/dashboard.html", nav="dashboard", stats=numbers, chart=bar_chart(numbers.posts_per_day)
    )


# ---- users ----------------------------------------------------------------------


@bp.get("/users")
def user_list() -> tuple[str, int] | str:
    form = UserFilterForm(request.args)
    if not form.validate():
        return render_template("admin/users.html", nav="users", form=form, users=[], page_links=NO_PAGER), 400
    filters = {"q": form.q.data, "role": form.role.data, "active": form.active.data}
    page = users.list_users(
        _page_request(form.cursor.data, form.before.data, users.SORT_KEY),
        search=form.q.data or None,
        role=Role(form.role.data) if form.role.data else None,
        is_active={"1": True, "0": False}.get(form.active.data),
    )
    return render_template(
        "admin/users.html",
        nav="users",
        form=form,
        users=page.items,
        page_links=_pager("admin.user_list", filters, page, form.cursor.data or form.before.data),
        filtered=any(filters.values()),
    )


@bp.get(f"/users/<{ID}:user_id>")
def user_detail(user_id: int) -> str:
    user = users.get_user(user_id)
    recent = posts.list_posts(PageRequest(limit=RECENT_POSTS), author_id=user.id).items
    newest = PageRequest(limit=RECENT_FOLLOWS)
    return render_template(
        "admin/user.html", nav="users", user=user, posts=recent, post_count=stats.count_posts_by(user.id),
        live_sessions=sessions.count_alive(user.id),
        followers=follows.list_followers(user.id, newest).items,
        following=follows.list_following(user.id, newest).items,
    )


@bp.get(f"/users/<{ID}:user_id>/<any(followers, following):side>")
def follow_list(user_id: int, side: str) -> str:
    """Everyone who follows the user, or whom they follow, newest follow first."""
    user = users.get_user(user_id)
    cursor, before = request.args.get("cursor"), request.args.get("before")
    listed = follows.list_followers if side == "followers" else follows.list_following
    page = listed(user.id, _page_request(cursor, before, follows.SORT_KEY))
    page_links = _pager("admin.follow_list", {"user_id": user.id, "side": side}, page, cursor or before)
    return render_template("admin/follows.html", nav="users", user=user, side=side, people=page.items,
                           page_links=page_links)


@bp.post(f"/users/<{ID}:user_id>/role")
def change_role(user_id: int) -> Response:
    user = users.get_user(user_id)
    form = RoleForm()
    if form.validate():
        role = Role(form.role.data)
        label = f"{user.email} is now {'an admin' if role is Role.ADMIN else 'a user'}."
        _apply(lambda: users.set_role(g.admin, user, role, _as_shown(form, STALE_USER)), label)
    else:
        flash("Choose a valid role.", "error")
    return _back(form, "admin.user_detail", user_id=user_id)


@bp.post(f"/users/<{ID}:user_id>/active")
def change_active(user_id: int) -> Response:
    user = users.get_user(user_id)
    form = ActiveForm()
    if form.validate():
        active = form.active.data == "1"
        label = f"{user.email} is now {'active' if active else 'deactivated'}."
        _apply(lambda: users.set_active(g.admin, user, active, _as_shown(form, STALE_USER)), label)
    else:
        flash("Choose a valid status.", "error")
    return _back(form, "admin.user_detail", user_id=user_id)


@bp.post(f"/users/<{ID}:user_id>/sessions/end")
def end_sessions(user_id: int) -> Response:
    """End every session of the user (API tokens and admin pages), as their own logout-all would."""
    user = users.get_user(user_id)
    form = ActionForm()
    if form.validate():
        _apply(lambda: users.end_sessions(g.admin, user), f"All sessions of {user.email} were ended.")
    else:
        flash("The form expired; try again.", "error")
    return _back(form, "admin.user_detail", user_id=user_id)


@bp.get(f"/users/<{ID}:user_id>/delete")
def confirm_delete_user(user_id: int) -> str:
    user = users.get_user(user_id)
    return render_template(
        "admin/confirm_delete_user.html",
        nav="users",
        user=user,
        form=ActionForm(),
        post_count=stats.count_posts_by(user.id),
    )


@bp.post(f"/users/<{ID}:user_id>/delete")
def delete_user(user_id: int) -> Response:
    user = users.get_user(user_id)
    email = user.email
    check = _as_shown(ActionForm(), STALE_USER)
    if _apply(lambda: users.delete_user(g.admin, user, check), f"User {email} and their posts were deleted."):
        return redirect(url_for("admin.user_list"))
    return redirect(url_for("admin.user_detail", user_id=user_id))


# ---- posts ----------------------------------------------------------------------


@bp.get("/posts")
def post_list() -> tuple[str, int] | str:
    form = PostFilterForm(request.args)
    author = _author_filter(form) if form.validate() else None
    if form.errors:
        return render_template(
            "admin/posts.html", nav="posts", form=form, posts=[], page_links=NO_PAGER, author=None
        ), 400
    filters = {"q": form.q.data, "author": form.author.data}
    search = parse_search(form.q.data) if form.q.data else None
    page = posts.list_posts(
        _page_request(form.cursor.data, form.before.data, posts.SORT_KEY),
        author_id=author.id if author else None,
        search=search,
    )
    return render_template(
        "admin/posts.html",
        nav="posts",
        form=form,
        posts=page.items,
        search=search,
        author=author,
        page_links=_pager("admin.post_list", filters, page, form.cursor.data or form.before.data),
        filtered=any(filters.values()),
    )


def _author_filter(form: PostFilterForm) -> User | None:
    """The author named by id or email; an unknown one is a form error."""
    value = form.author.data
    if not value:
        return None
    author = None
    if value.isdecimal() and is_possible_id(int(value)):
        author = _user_or_none(int(value))
    elif "@" in value:
        author = users.find_by_email(value)
    if author is None:
        form.author.errors = [*form.author.errors, "No user with this id or email."]
    return author


def _user_or_none(user_id: int) -> User | None:
    try:
        return users.get_user(user_id)
    except DomainError:
        return None


@bp.get(f"/posts/<{ID}:post_id>")
def post_detail(post_id: int) -> str:
    return render_template("admin/post.html", nav="posts", post=posts.read_post(post_id), form=ActionForm())


@bp.get(f"/posts/<{ID}:post_id>/delete")
def confirm_delete_post(post_id: int) -> str:
    return render_template(
        "admin/confirm_delete_post.html", nav="posts", post=posts.read_post(post_id), form=ActionForm()
    )


@bp.post(f"/posts/<{ID}:post_id>/delete")
def delete_post(post_id: int) -> Response:
    post = posts.load_post(post_id)
    check = _as_shown(ActionForm(), STALE_POST)
    if _apply(lambda: posts.delete_post(g.admin, post, check), f"Post #{post_id} was deleted."):
        return redirect(url_for("admin.post_list"))
    return redirect(url_for("admin.post_detail", post_id=post_id))


# ---- mail --------------------------------------------------------------------------


@bp.get("/mail")
def mail_list() -> str:
    """The outbox: messages waiting and failed (recipients masked), with "send again" for the failed."""
    return render_template("admin/mail.html", nav="mail", state=outbox.state(), messages=outbox.unsent(),
                           mask=outbox.mask)


@bp.post(f"/mail/<{ID}:message_id>/send-again")
def send_mail_again(message_id: int) -> Response:
    form = ActionForm()
    if form.validate():
        _apply(lambda: outbox.send_again(message_id), f"Message {message_id} is queued again.")
    else:
        flash("The form expired; try again.", "error")
    return _back(form, "admin.mail_list")


# ---- helpers --------------------------------------------------------------------

STALE_USER = ("This user was changed by someone else after this page was loaded, so nothing was done. "
              "Review the user as they are now and try again.")
STALE_POST = ("This post was changed by someone else after this page was loaded, so it was not deleted. "
              "Review the post as it is now and try again.")


def _as_shown(form: ActionForm, detail: str) -> Precondition:
    """The same check as the API's If-Match: the row must still be the version the page showed."""
    version = form.version.data if form.validate() else None
    return expect_version(version, detail)



def _apply(change: Callable[[], Any], success: str) -> bool:
    """Run a service call; its refusal becomes the flash message."""
    try:
        change()
    except DomainError as error:
        db.session.rollback()  # the page answers 302: nothing of the refused change may commit
        flash(error.detail, "error")
        return False
    flash(success, "success")
    return True


def _back(form: ActionForm, endpoint: str, **values: Any) -> Response:
    return redirect(safe_next(form.next.data, url_for(endpoint, **values)))


def _page_request(cursor: str | None, before: str | None, kinds: Sequence[type]) -> PageRequest:
    """The page after `cursor` (Next), the page before `before` (Previous), or the first page."""
    limit = current_app.config["ADMIN_PAGE_SIZE"]
    if cursor and before:
        abort(422, BAD_CURSOR)  # no link of these pages carries both
    try:
        if cursor:
            return PageRequest(limit=limit, after=decode_cursor(cursor, kinds))
        if before:
            return PageRequest(limit=limit, before=decode_cursor(before, kinds))
    except ValidationFailed:
        abort(422, BAD_CURSOR)  # as the API answers a bad cursor
    return PageRequest(limit=limit)


@dataclass(frozen=True)
class Pager:
    """The links under a list, each keeping its filters: the first page, the page before this one
    and the page after it, where there is one."""

    first: str | None = None
    previous: str | None = None
    next: str | None = None


NO_PAGER = Pager()


def _pager(endpoint: str, values: dict[str, Any], page: Page[Any], paged: str | None) -> Pager:
    """`values`: the list's URL values (its filters; empty ones are left out). `paged`: the
    cursor that led here, if any: without one this is the first page."""
    kept = {name: value for name, value in values.items() if value}
    before, after = page.previous_key, page.next_key
    return Pager(
        first=url_for(endpoint, **kept) if paged else None,
        previous=url_for(endpoint, **kept, before=encode_cursor(before)) if before is not None else None,
        next=url_for(endpoint, **kept, cursor=encode_cursor(after)) if after is not None else None,
    )
