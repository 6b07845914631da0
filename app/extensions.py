"""Extension objects, created unbound here and bound to the app in `create_app`."""

from flask_compress import Compress
from flask_cors import CORS
from flask_jwt_extended import JWTManager
from flask_limiter import ApplicationLimit, Limit
from flask_mailman import Mail
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy.orm import DeclarativeBase

from app.database import ReadEngine, Session
from app.ratelimit import (
    Limiter,
    limits_disabled,
    not_a_search,
    read_limit,
    read_limit_exempt,
    search_limit,
    write_limit,
    write_limit_exempt,
    write_limit_key,
)


class Base(DeclarativeBase):
    pass


# Request-scoped sessions: objects stay usable after commit without a reload per attribute.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False, "class_": Session})
reads = ReadEngine()
migrate = Migrate()
jwt = JWTManager()
compress = Compress()
cors = CORS()
csrf = CSRFProtect()
mail = Mail()
limiter = Limiter(
    key_func=write_limit_key,
    # One budget for all of a client's writes, not one per route.
    default_limits=[Limit(write_limit, scope="writes", shared=True, exempt_when=write_limit_exempt)],
    # Checked once per request, before the view: the search budget is one of them rather than a
    # route decorator, which Flask-Limiter would evaluate a second time on every list request.
    application_limits=[
        ApplicationLimit(read_limit, exempt_when=read_limit_exempt),
        ApplicationLimit(search_limit, scope="search", key_function=write_limit_key, exempt_when=not_a_search),
    ],
)
limiter.request_filter(limits_disabled)
