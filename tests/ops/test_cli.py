"""The `flask` commands deployers use."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import AuthSession, Follow, MailStatus, OutboxMessage, Post, Role, User
from tests.helpers import ROOT, assert_problem, queue_mail


def _count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def test_create_admin_creates_an_admin_who_can_log_in(app, client):
    result = app.test_cli_runner().invoke(
        args=["users", "create-admin", "Boss@Example.com", "--password", "Adm1nPassword"])
    assert result.exit_code == 0, result.output
    assert "Created admin boss@example.com" in result.output
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == "boss@example.com"))
        assert user.role == Role.ADMIN
    response = client.post("/api/auth/login", json={"email": "boss@example.com", "password": "Adm1nPassword"})
    assert response.status_code == 200


def test_create_admin_prompts_for_the_password_without_echo(app):
    result = app.test_cli_runner().invoke(args=["users", "create-admin", "prompted@example.com"],
                                          input="Adm1nPassword\nAdm1nPassword\n")
    assert result.exit_code == 0, result.output
    assert "Adm1nPassword" not in result.output


def test_create_admin_refuses_an_existing_account_and_keeps_its_password(app, client, user):
    """Reproduction 4 of issue 10: an account someone else registered is not silently taken over."""
    result = app.test_cli_runner().invoke(
        args=["users", "create-admin", user.email, "--password", "Adm1nPassword"])
    assert result.exit_code == 1
    assert "already exists" in result.output and "flask users promote" in result.output
    assert "Traceback" not in result.output
    with app.app_context():
        assert db.session.get(User, user.id).role == Role.USER
    assert client.post("/api/auth/login", json={"email": user.email, "password": "Adm1nPassword"}).status_code == 401
    assert client.post("/api/auth/login", json={"email": user.email, "password": user.password}).status_code == 200


def test_promote_makes_an_existing_account_admin_keeping_its_password(app, client, user):
    result = app.test_cli_runner().invoke(args=["users", "promote", user.email.upper(), "--mark-verified"])
    assert result.exit_code == 0, result.output
    assert "Promoted" in result.output and "password was kept" in result.output
    with app.app_context():
        assert db.session.get(User, user.id).role == Role.ADMIN
    assert client.get("/api/users/me", headers=user.headers).status_code == 401  # sessions ended
    assert client.post("/api/auth/login", json={"email": user.email, "password": user.password}).status_code == 200


def test_promote_refuses_unknown_deactivated_and_unverified_accounts(app, make_user):
    inactive, unverified = make_user(is_active=False), make_user()
    runner = app.test_cli_runner()
    unknown = runner.invoke(args=["users", "promote", "nobody@example.com"])
    deactivated = runner.invoke(args=["users", "promote", inactive.email])
    not_verified = runner.invoke(args=["users", "promote", unverified.email])
    assert unknown.exit_code == 1 and "No account" in unknown.output
    assert deactivated.exit_code == 1 and "deactivated" in deactivated.output
    assert not_verified.exit_code == 1 and "--mark-verified" in not_verified.output
    with app.app_context():
        assert db.session.get(User, inactive.id).role == Role.USER
        assert db.session.get(User, unverified.id).role == Role.USER


def test_set_password_sets_it_and_ends_every_session(app, client, user):
    result = app.test_cli_runner().invoke(args=["users", "set-password", user.email],
                                          input="N3wPassword\nN3wPassword\n")
    assert result.exit_code == 0, result.output
    assert "N3wPassword" not in result.output and "sessions were ended" in result.output
    assert client.get("/api/users/me", headers=user.headers).status_code == 401
    refresh = client.post("/api/auth/refresh", headers={"Authorization": f"Bearer {user.refresh_token}"})
    assert refresh.status_code == 401
    assert client.post("/api/auth/login", json={"email": user.email, "password": "N3wPassword"}).status_code == 200


def test_set_password_refuses_a_weak_password_and_changes_nothing(app, client, user):
    result = app.test_cli_runner().invoke(args=["users", "set-password", user.email, "--password", "short"])
    assert result.exit_code == 1 and "password" in result.output
    assert client.get("/api/users/me", headers=user.headers).status_code == 200


def test_create_admin_rejects_bad_input_with_a_message_and_no_traceback(app):
    runner = app.test_cli_runner()
    bad_email = runner.invoke(args=["users", "create-admin", "not-an-email", "--password", "Adm1nPassword"])
    weak = runner.invoke(args=["users", "create-admin", "ok@example.com", "--password", "short"])
    for result in (bad_email, weak):
        assert result.exit_code != 0
        assert "Traceback" not in result.output
    assert "email" in bad_email.output
    assert "password" in weak.output
    assert _count(app, User) == 0


def test_seed_fills_the_requested_numbers_of_users_and_posts(app):
    result = app.test_cli_runner().invoke(args=["seed", "--users", "7", "--posts", "250", "--batch", "100"])
    assert result.exit_code == 0, result.output
    assert _count(app, User) == 7
    assert _count(app, Post) == 250


def test_seed_makes_each_new_user_follow_others_and_the_counts_agree(app):
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import Follow

    result = app.test_cli_runner().invoke(args=["seed", "--users", "60", "--posts", "10", "--batch", "500"])
    assert result.exit_code == 0, result.output
    assert "Seeded 60 users and 10 posts." in result.output
    with app.app_context():
        per_user = dict(db.session.execute(
            select(Follow.follower_id, func.count()).group_by(Follow.follower_id)).all())
        counters = dict(db.session.execute(select(User.id, User.following_count)).all())
        followers = dict(db.session.execute(select(User.id, User.followers_count)).all())
        received = dict(db.session.execute(
            select(Follow.followed_id, func.count()).group_by(Follow.followed_id)).all())
    assert len(per_user) == 60 and all(50 <= n <= 59 for n in per_user.values())
    assert max(per_user.values()) == 59  # the first seeded user follows as many as there are
    assert counters == per_user
    assert followers == {user_id: received.get(user_id, 0) for user_id in followers}
    assert f"Seeded {sum(per_user.values())} follows." in result.output


_SCHEMA_OF = text("""
    SELECT 'index', pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = CAST(:table AS regclass)
    UNION ALL SELECT 'constraint ' || conname, pg_get_constraintdef(oid) FROM pg_constraint
    WHERE conrelid = CAST(:table AS regclass) ORDER BY 1, 2
""")


def _schema(app, table: str) -> list[tuple[str, str]]:
    with app.app_context():
        return [tuple(row) for row in db.session.execute(_SCHEMA_OF, {"table": table})]


def test_seed_on_postgresql_builds_every_index_and_foreign_key_again_after_its_load(app, client, database_url):
    """The load drops the secondary indexes and foreign keys and builds them after the COPY: the
    tables end with every one of them, as the migrations made them, and they hold (a search uses
    the search index's contents, a post of an unknown author is refused)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the load without indexes is PostgreSQL's (COPY)")
    before = {table: _schema(app, table) for table in ("posts", "follows")}
    assert any("gin (search_vector)" in definition for _, definition in before["posts"])
    result = app.test_cli_runner().invoke(args=["seed", "--users", "60", "--posts", "300"])
    assert result.exit_code == 0, result.output
    assert {table: _schema(app, table) for table in ("posts", "follows")} == before
    found = client.get("/api/posts?q=quokka&limit=100").get_json()
    assert len(found) == 10
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Post).where(
            text("search_vector @@ to_tsquery('simple', 'kestrel')"))) == sum(
            "kestrel" in body for body in db.session.scalars(select(Post.body)))
        with pytest.raises(IntegrityError, match="foreign key"):
            db.session.execute(text("INSERT INTO posts (author_id, title, body) VALUES (-1, 't', 'b')"))
        db.session.rollback()


def test_seed_refuses_posts_without_users(app):
    result = app.test_cli_runner().invoke(args=["seed", "--users", "0", "--posts", "5"])
    assert result.exit_code != 0
    assert "no users" in result.output
    assert "Traceback" not in result.output


def test_seed_leaves_real_accounts_alone_and_its_users_sign_in_with_the_documented_password(
        app, client, make_user):
    real = make_user(email="newcomer@example.org")
    runner = app.test_cli_runner()
    assert "Password123" in runner.invoke(args=["seed", "--help"]).output
    result = runner.invoke(args=["seed", "--users", "60", "--posts", "300", "--batch", "100"])
    assert result.exit_code == 0, result.output
    again = runner.invoke(args=["seed", "--users", "0", "--posts", "50"])  # posts for the seeded users only
    assert again.exit_code == 0, again.output
    assert client.get(f"/api/users/{real.id}/posts").get_json() == []
    me = client.get("/api/users/me", headers=real.headers).get_json()
    assert (me["followers_count"], me["following_count"]) == (0, 0)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Follow).where(
            (Follow.follower_id == real.id) | (Follow.followed_id == real.id))) == 0
        seeded = db.session.scalar(select(func.count()).select_from(User).where(User.email.like("%@seed.example")))
    assert seeded == 60
    email = re.search(r"Sign in as a seeded user, e\.g\. (\S+), with the password (\S+)\.", result.output)
    assert email and email.group(2) == "Password123", result.output
    login = client.post("/api/auth/login", json={"email": email.group(1), "password": "Password123"})
    assert login.status_code == 200, login.get_data(as_text=True)


def test_seed_rejects_a_negative_count(app):
    result = app.test_cli_runner().invoke(args=["seed", "--users", "-1"])
    assert result.exit_code == 2
    assert "Invalid value" in result.output


def test_tokens_prune_removes_only_ended_or_expired_sessions(app, client, make_user):
    user, other, ended = make_user(), make_user(), make_user()
    assert client.post("/api/auth/logout", headers=ended.headers).status_code == 204
    with app.app_context():
        db.session.execute(update(AuthSession).where(AuthSession.user_id == other.id)
                           .values(expires_at=datetime.now(UTC) - timedelta(hours=1)))
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["tokens", "prune"])
    assert result.exit_code == 0, result.output
    assert "Removed 2" in result.output
    with app.app_context():
        assert list(db.session.scalars(select(AuthSession.user_id))) == [user.id]
    assert client.get("/api/users/me", headers=user.headers).status_code == 200


def test_commands_report_an_unreachable_database_without_a_traceback(tmp_path):
    from app import create_app

    unreachable = create_app({"APP_ENV": "testing",
                              "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/missing/dir/app.db"})
    result = unreachable.test_cli_runner().invoke(args=["tokens", "prune"])
    assert result.exit_code == 1
    assert "database error" in result.output
    assert "Traceback" not in result.output


# ---- users list, demote, deactivate (issue 26, item 21) -----------------------------------


def test_users_list_prints_one_aligned_row_per_account(app, make_user):
    admin = make_user(Role.ADMIN, name="Ada Admin")
    plain = make_user(name="Bo")
    gone = make_user(is_active=False, name="Gone Person")
    result = app.test_cli_runner().invoke(args=["users", "list"])
    assert result.exit_code == 0, result.output
    header, *rows, total = result.output.splitlines()
    assert header.split() == ["id", "email", "name", "role", "active", "verified"]
    assert total == "3 accounts."
    assert [row.split()[:2] for row in rows] == [[str(p.id), p.email] for p in (admin, plain, gone)]
    assert rows[0].split()[-3:] == ["admin", "yes", "no"] and "Ada Admin" in rows[0]
    assert rows[2].split()[-3:] == ["user", "no", "no"]
    assert len({row.index(" admin" if i == 0 else " user") for i, row in enumerate(rows)}) == 1  # columns line up


def test_users_list_filters_by_role_and_by_deactivated(app, make_user):
    admin, plain, gone = make_user(Role.ADMIN), make_user(), make_user(is_active=False)
    runner = app.test_cli_runner()
    admins = runner.invoke(args=["users", "list", "--role", "admin"])
    inactive = runner.invoke(args=["users", "list", "--inactive"])
    assert admin.email in admins.output and plain.email not in admins.output and gone.email not in admins.output
    assert gone.email in inactive.output and admin.email not in inactive.output and "1 account." in inactive.output
    none = runner.invoke(args=["users", "list", "--role", "admin", "--inactive"])
    assert none.exit_code == 0 and none.output.strip() == "No accounts match."


def test_demote_makes_an_admin_a_regular_user_and_ends_its_sessions(app, client, make_user):
    keeper, demoted = make_user(Role.ADMIN), make_user(Role.ADMIN)
    result = app.test_cli_runner().invoke(args=["users", "demote", demoted.email.upper()])
    assert result.exit_code == 0, result.output
    assert "Demoted" in result.output
    with app.app_context():
        assert db.session.get(User, demoted.id).role == Role.USER
        assert db.session.get(User, keeper.id).role == Role.ADMIN
    assert_problem(client.get("/api/users/me", headers=demoted.headers), 401)
    assert client.get("/api/users/me", headers=keeper.headers).status_code == 200


def test_deactivate_ends_the_sessions_and_the_account_cannot_sign_in(app, client, user):
    result = app.test_cli_runner().invoke(args=["users", "deactivate", user.email])
    assert result.exit_code == 0, result.output
    assert "Deactivated" in result.output
    assert_problem(client.get("/api/users/me", headers=user.headers), 401)
    login = client.post("/api/auth/login", json={"email": user.email, "password": user.password})
    assert_problem(login, 401)


@pytest.mark.parametrize("command", ["demote", "deactivate"])
def test_the_last_active_admin_is_refused_in_one_line_and_kept(app, client, make_user, command):
    last = make_user(Role.ADMIN)
    make_user(Role.ADMIN, is_active=False)  # a deactivated admin does not count
    result = app.test_cli_runner().invoke(args=["users", command, last.email])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "last active admin" in result.output and "Nothing was changed" in result.output
    with app.app_context():
        kept = db.session.get(User, last.id)
        assert kept.role == Role.ADMIN and kept.is_active
    assert client.get("/api/users/me", headers=last.headers).status_code == 200


def test_demote_and_deactivate_refuse_an_unknown_account_and_say_when_nothing_is_to_do(app, make_user):
    runner = app.test_cli_runner()
    for command in ("demote", "deactivate"):
        unknown = runner.invoke(args=["users", command, "nobody@example.com"])
        assert unknown.exit_code == 1 and "No account" in unknown.output
    plain, gone = make_user(), make_user(is_active=False)
    assert "not an admin" in runner.invoke(args=["users", "demote", plain.email]).output
    assert "already deactivated" in runner.invoke(args=["users", "deactivate", gone.email]).output


def test_the_production_refusal_prints_one_problem_per_line():
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "JWT_SECRET_KEY", "MAIL_SERVER")}
    env.update(APP_ENV="production", DATABASE_URL="sqlite://", PUBLIC_BASE_URL="https://api.example.com",
               FLASK_SKIP_DOTENV="1", FLASK_APP="wsgi.py")
    result = subprocess.run([sys.executable, "-m", "flask", "users", "list"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].endswith("Refusing to start in production:")
    problems = [line.strip() for line in lines[1:]]
    assert [p.split()[1] for p in problems] == ["SECRET_KEY", "JWT_SECRET_KEY", "MAIL_SERVER"]
    assert all(p.startswith("- ") and ";" not in p.split("(")[0] for p in problems)


# ---- the project's own entry to `flask` reads no .env above it (issue 26, item 12) -----------


def _project_below_a_foreign_env(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the project in a folder whose parent holds someone else's `.env`, with this
    suite's virtualenv, and an environment that sets none of what that `.env` sets."""
    if shutil.which("make") is None or not (Path(sys.prefix) / "bin" / "flask").exists():
        pytest.skip("needs make and a virtualenv with the flask command")
    (tmp_path / ".env").write_text("APP_ENV=set-by-a-foreign-dotenv\n")
    project = tmp_path / "project"
    shutil.copytree(ROOT / "app", project / "app", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "migrations", project / "migrations", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("Makefile", ".flaskenv", "config.py", "wsgi.py", *(p.name for p in ROOT.glob("requirements*.txt"))):
        shutil.copy2(ROOT / name, project / name)
    (project / ".venv").symlink_to(sys.prefix)
    unset = ("APP_ENV", "DATABASE_URL", "FLASK_SKIP_DOTENV", "FLASK_APP", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")
    return project, {k: v for k, v in os.environ.items() if k not in unset}


def _make(project: Path, env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    # -o: the copy's requirement files are no newer than this virtualenv; never install anything here.
    return subprocess.run(["make", "-o", ".venv/.installed-runtime", *args], cwd=project, env=env, input=stdin,
                          capture_output=True, text=True, timeout=120)


def test_make_flask_reads_no_env_file_above_the_project(tmp_path):
    project, env = _project_below_a_foreign_env(tmp_path)
    bare = subprocess.run([str(project / ".venv" / "bin" / "flask"), "routes"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=120)
    assert "set-by-a-foreign-dotenv" in bare.stderr  # what the bare command does: the danger is real
    result = _make(project, env, "flask", "ARGS=routes")
    assert result.returncode == 0, result.stderr
    assert "/api/users" in result.stdout and "foreign" not in result.stdout + result.stderr


def test_the_readmes_first_admin_recipe_reads_no_env_file_above_the_project(tmp_path):
    project, env = _project_below_a_foreign_env(tmp_path)
    result = _make(project, env, "admin", "EMAIL=boss@example.com", stdin="Adm1nPassword\nAdm1nPassword\n")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Created admin boss@example.com" in result.stdout
    assert "Adm1nPassword" not in result.stdout
    listed = _make(project, env, "flask", "ARGS=users list --role admin")
    assert "boss@example.com" in listed.stdout and "1 account." in listed.stdout


def test_make_admin_without_an_email_says_how_to_call_it():
    result = subprocess.run(["make", "-o", ".venv/.installed-runtime", "admin"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, env={k: v for k, v in os.environ.items() if k != "EMAIL"})
    assert result.returncode != 0 and "make admin EMAIL=" in result.stdout


# ---- the mail outbox ------------------------------------------------------------------


def test_mail_status_prints_the_counts_and_each_waiting_or_failed_message_masked(app):
    queue_mail(app, "waiting.person@example.com")
    failed = queue_mail(app, "failed.person@example.com")
    with app.app_context():
        db.session.execute(update(OutboxMessage).where(OutboxMessage.id == failed)
                           .values(status=MailStatus.FAILED, attempts=3, last_error="550 5.1.1 No such mailbox"))
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["mail", "status"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("1 waiting")
    assert "1 failed" in result.output
    assert "w***@example.com" in result.output and "f***@example.com" in result.output
    assert "person@" not in result.output.replace("***@", "")
    assert "550 5.1.1 No such mailbox" in result.output

    again = app.test_cli_runner().invoke(args=["mail", "retry", str(failed)])
    assert again.exit_code == 0 and "queued again" in again.output
    assert "0 failed" in app.test_cli_runner().invoke(args=["mail", "status"]).output


def test_mail_retry_of_a_message_that_did_not_fail_is_one_line_and_non_zero(app):
    result = app.test_cli_runner().invoke(args=["mail", "retry", "12345"])
    assert result.exit_code != 0
    assert result.output.strip().splitlines() == ["Error: No failed message with this id: it may have been sent "
                                                  "again already."]
