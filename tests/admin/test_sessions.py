"""Signed-cookie sessions (the admin sign-in; the cookie path is /admin) with a serializer kept across requests."""

from flask import session


def _app_with_session_routes(make_app):
    app = make_app()

    @app.get("/admin/test-session/set")
    def set_value():
        session["who"] = "ann"
        return {}

    @app.get("/admin/test-session/get")
    def get_value():
        return {"who": session.get("who")}

    return app


def test_a_session_set_in_one_request_is_read_in_the_next(make_app):
    client = _app_with_session_routes(make_app).test_client()
    client.get("/admin/test-session/set")
    assert client.get("/admin/test-session/get").get_json() == {"who": "ann"}


def test_a_new_secret_key_invalidates_old_cookies_at_once(make_app):
    app = _app_with_session_routes(make_app)
    client = app.test_client()
    client.get("/admin/test-session/set")
    app.secret_key = "rotated-" + "k" * 40
    assert client.get("/admin/test-session/get").get_json() == {"who": None}


def test_an_old_key_in_the_fallbacks_keeps_old_cookies_valid(make_app):
    app = _app_with_session_routes(make_app)
    client = app.test_client()
    client.get("/admin/test-session/set")
    assert client.get("/admin/test-session/get").get_json() == {"who": "ann"}  # serializer built and kept
    old = app.secret_key
    app.secret_key = "rotated-" + "k" * 40
    app.config["SECRET_KEY_FALLBACKS"] = [old]
    assert client.get("/admin/test-session/get").get_json() == {"who": "ann"}
