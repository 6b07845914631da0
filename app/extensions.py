"""Extension objects, created unbound here and bound to the app in `create_app`."""

from flask_compress import Compress
from flask_cors import CORS
from flask_jwt_extended import JWTManager
from flask_limiter import Limiter
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy.orm import DeclarativeBase

from app.ratelimit import write_limit_exempt, write_limit_key


class Base(DeclarativeBase):
    pass


# Request-scoped sessions: objects stay usable after commit without a reload per attribute.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
migrate = Migrate()
jwt = JWTManager()
compress = Compress()
cors = CORS()
csrf = CSRFProtect()
limiter = Limiter(
    key_func=write_limit_key,
    default_limits_exempt_when=write_limit_exempt,
)
