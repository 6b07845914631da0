"""The `flask` commands deployers use."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from app.extensions import db
from app.models import AuthSession, Follow, Post, Role, User


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
