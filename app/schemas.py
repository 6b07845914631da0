"""Marshmallow schemas: strict on what comes in, no secrets in what goes out.

The same classes validate requests and feed the OpenAPI document.
"""

from __future__ import annotations

import re
from typing import Any

from flask import g
from flask_jwt_extended import current_user
from marshmallow import Schema, ValidationError, fields, missing, validate, validates_schema

from app.emails import normalise_email
from app.models import MAX_ID, Role
from app.pagination import MAX_SKIP
from app.search import InvalidSearch, SearchQuery, parse_search
from app.services.users import can_see_account

# C0 controls, DEL and the C1 range; surrogates cannot be encoded to UTF-8 at all.
# What no text field may hold: PostgreSQL refuses NUL, the rest is invisible mischief.
UNSTORABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_EXCEPT_WHITESPACE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_QUERY_INTEGER = re.compile(r"-?[0-9]{1,20}")
# The same rules as JSON Schema (ECMA-262) patterns for the OpenAPI document.
_DOC_SINGLE_LINE = r"^[^\u0000-\u001f\u007f-\u009f]*$"
_DOC_MULTILINE = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"

EMAIL_MAX_LENGTH = 254
PASSWORD_MIN_BYTES = 8
PASSWORD_MAX_BYTES = 72  # bcrypt ignores (5.x: rejects) anything longer


class SafeString(fields.String):
    """A string that PostgreSQL and UTF-8 can store: no NUL, controls or lone surrogates.

    `multiline=True` keeps tab, newline and carriage return (for post bodies).
    `strip=True` trims surrounding whitespace before the length check.
    """

    def __init__(self, *args: Any, multiline: bool = False, strip: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.multiline = multiline
        self.strip = strip
        # Tell clients (and the OpenAPI document) which characters are refused.
        self.metadata = {"pattern": _DOC_MULTILINE if multiline else _DOC_SINGLE_LINE, **self.metadata}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if _SURROGATE.search(text):
            raise ValidationError("Must be valid Unicode text (no lone surrogates).")
        pattern = _CONTROL_EXCEPT_WHITESPACE if self.multiline else _CONTROL
        if pattern.search(text):
            raise ValidationError("Must not contain NUL or other control characters.")
        return text.strip() if self.strip else text


class EmailAddress(fields.Email):
    """An email address, stored lower-cased so `Ann@X.io` and `ann@x.io` are one account."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.validators.append(validate.Length(max=EMAIL_MAX_LENGTH))  # the column's size

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, str) and UNSTORABLE.search(value):
            raise ValidationError("Not a valid email address.")
        text = super()._deserialize(value.strip() if isinstance(value, str) else value,
                                    attr, data, **kwargs)
        return normalise_email(text)


PASSWORD_RULES = (f"{PASSWORD_MIN_BYTES} to {PASSWORD_MAX_BYTES} bytes long in UTF-8 (bytes, not characters: "
                  "`é` counts 2, most emoji 4), with at least one uppercase letter and at least one digit; "
                  "no NUL characters.")


class Password(fields.String):
    """8 to 72 bytes of UTF-8 with an uppercase letter and a digit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Character bounds that follow from the byte bounds (a character is 1 to 4 bytes).
        self.metadata = {"description": PASSWORD_RULES, "minLength": PASSWORD_MIN_BYTES // 4,
                         "maxLength": PASSWORD_MAX_BYTES, **self.metadata}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if _SURROGATE.search(text) or "\x00" in text:
            raise ValidationError("Must be valid Unicode text without NUL characters.")
        size = len(text.encode())
        if size < PASSWORD_MIN_BYTES or size > PASSWORD_MAX_BYTES:
            raise ValidationError(
                f"Must be {PASSWORD_MIN_BYTES} to {PASSWORD_MAX_BYTES} bytes long in UTF-8."
            )
        if not any(ch.isupper() for ch in text) or not any(ch.isdigit() for ch in text):
            raise ValidationError("Must contain at least one uppercase letter and one digit.")
        return text


class StrictBoolean(fields.Boolean):
    """Only JSON `true` or `false`: marshmallow's Boolean also takes 0, 1 and "yes"."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class LoginPassword(fields.String):
    """Any string: a wrong password is a 401, not a validation error."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if _SURROGATE.search(text):
            raise ValidationError("Must be valid Unicode text (no lone surrogates).")
        return text


def _name(**kwargs: Any) -> SafeString:
    return SafeString(strip=True, validate=validate.Length(min=2, max=100), **kwargs)


def _age(**kwargs: Any) -> fields.Integer:
    return fields.Integer(strict=True, validate=validate.Range(min=18, max=120), **kwargs)


# ---- users -----------------------------------------------------------------


class UserCreateSchema(Schema):
    email = EmailAddress(required=True)
    name = _name(required=True)
    password = Password(required=True, load_only=True)
    age = _age(allow_none=True)


class UserUpdateSchema(Schema):
    email = EmailAddress()
    name = _name()
    age = _age(allow_none=True)
    password = Password(load_only=True)
    current_password = LoginPassword(load_only=True)
    role = fields.Enum(Role, by_value=True)
    is_active = StrictBoolean()

    @validates_schema
    def _current_password_goes_with_a_change_it_guards(self, data: dict, **kwargs: Any) -> None:
        if "current_password" in data and "password" not in data and "email" not in data:
            raise ValidationError("Only needed to change the password or email.", "current_password")


FOLLOWED_BY_ME = "Whether the caller follows this user: only in `GET /api/users/{user_id}` of another user."
NEW_SESSION = "new_session"  # on `flask.g`: the token pair of a session the request started, shown as `tokens`


class _UserOutput(Schema):
    """What both shapes of a user leave out: `followed_by_me` where it was not read (it is read
    only to show a user to someone else, app/services/follows.py), and `tokens` unless the
    request started a session (a change of one's own password)."""

    def get_attribute(self, obj: Any, attr: str, default: Any) -> Any:
        if attr == "tokens":
            return g.get(NEW_SESSION, missing)
        value = super().get_attribute(obj, attr, default)
        return missing if attr == "followed_by_me" and value is None else value


class PublicUserSchema(_UserOutput):
    """A user as every other signed-in user sees them."""

    id = fields.Integer(dump_only=True, required=True)
    name = fields.String(dump_only=True, required=True)
    created_at = fields.AwareDateTime(dump_only=True, required=True)
    followers_count = fields.Integer(dump_only=True, required=True)
    following_count = fields.Integer(dump_only=True, required=True)
    followed_by_me = fields.Boolean(dump_only=True, metadata={"description": FOLLOWED_BY_ME})

    class Meta:
        ordered = True


class UserSchema(_UserOutput):
    """A user as they themself and admins see them: the whole account, no secrets."""

    id = fields.Integer(dump_only=True, required=True)
    email = fields.String(dump_only=True, required=True)
    name = fields.String(dump_only=True, required=True)
    age = fields.Integer(dump_only=True, required=True, allow_none=True)
    role = fields.Enum(Role, by_value=True, dump_only=True, required=True)
    is_active = fields.Boolean(dump_only=True, required=True)
    email_verified = fields.Boolean(dump_only=True, required=True, metadata={
        "description": "Whether the owner followed the link mailed to `email`."})
    created_at = fields.AwareDateTime(dump_only=True, required=True)
    updated_at = fields.AwareDateTime(dump_only=True, required=True)
    followers_count = fields.Integer(dump_only=True, required=True)
    following_count = fields.Integer(dump_only=True, required=True)
    followed_by_me = fields.Boolean(dump_only=True, metadata={"description": FOLLOWED_BY_ME})
    tokens = fields.Nested(lambda: TokenSchema(), dump_only=True, metadata={
        "description": "Only in the answer to a change of one's own password: the first token pair of the "
                       "caller's new session (every earlier session has ended)."})

    class Meta:
        ordered = True


class SeenUserSchema(UserSchema):
    """A user as the caller may see them: the whole account (`User`) for the user themself and
    admins, the public profile (`PublicUser`) for everyone else, decided per user, so one list
    holds both. Documented as either (app/api/users.py), never as a schema of its own."""

    PUBLIC = frozenset(PublicUserSchema().fields)

    def get_attribute(self, obj: Any, attr: str, default: Any) -> Any:
        if attr not in self.PUBLIC and not can_see_account(current_user, obj):
            return missing
        return super().get_attribute(obj, attr, default)


# ---- auth ------------------------------------------------------------------


class LoginSchema(Schema):
    email = SafeString(required=True, strip=True, validate=validate.Length(max=320))
    password = LoginPassword(required=True, load_only=True, validate=validate.Length(max=1024))
    device_token = SafeString(load_only=True, validate=validate.Length(max=512), metadata={
        "description": "The `device_token` an earlier successful login to this account returned. "
                       "Optional; with it, this device is not locked out by other clients' failed guesses."})


class LogoutSchema(Schema):
    refresh_token = SafeString(validate=validate.Length(max=4096))


class RefreshSchema(Schema):
    refresh_token = SafeString(validate=validate.Length(max=4096), metadata={
        "description": "The refresh token, when it is not sent as the bearer token (which wins when both are)."})


class TokenSchema(Schema):
    access_token = fields.String(required=True)
    refresh_token = fields.String(required=True)
    token_type = fields.String(required=True, metadata={"example": "bearer"})
    expires_in = fields.Integer(required=True, metadata={"description": "Seconds until the access token expires."})

    class Meta:
        ordered = True


class PasswordResetRequestSchema(Schema):
    email = SafeString(required=True, strip=True, validate=validate.Length(max=320))


class PasswordResetConfirmSchema(Schema):
    token = SafeString(required=True, validate=validate.Length(min=1, max=1024), metadata={
        "description": "The `token` query parameter of the link in the reset email."})
    password = Password(required=True, load_only=True)


class VerifyEmailSchema(Schema):
    token = SafeString(required=True, validate=validate.Length(min=1, max=1024), metadata={
        "description": "The `token` query parameter of the link in the verification email."})


class AcceptedSchema(Schema):
    status = fields.String(required=True, metadata={"example": "accepted"})
    detail = fields.String(required=True)

    class Meta:
        ordered = True


class LoginResultSchema(TokenSchema):
    device_token = fields.String(required=True, metadata={
        "description": "Send it with later logins to this account (see the login request's `device_token`)."})


# ---- posts -----------------------------------------------------------------


class PostCreateSchema(Schema):
    title = SafeString(required=True, validate=validate.Length(min=1, max=200))
    body = SafeString(required=True, multiline=True, validate=validate.Length(min=1, max=50_000))


class PostUpdateSchema(Schema):
    title = SafeString(validate=validate.Length(min=1, max=200))
    body = SafeString(multiline=True, validate=validate.Length(min=1, max=50_000))


class AuthorSchema(Schema):
    id = fields.Integer()
    name = fields.String()

    class Meta:
        ordered = True


class PostSchema(Schema):
    """A post with its author: the one serializer of posts, everywhere.

    `dump` is written by hand because marshmallow's per-field dump was the largest cost
    of a list request in the profile; the fields below document the
    shape, and a test holds `dump` to what marshmallow makes of them. Timestamps stay
    datetimes: the JSON provider writes them as marshmallow does.
    """

    id = fields.Integer(dump_only=True)
    title = fields.String(dump_only=True)
    body = fields.String(dump_only=True)
    author = fields.Nested(AuthorSchema, dump_only=True)
    created_at = fields.AwareDateTime(dump_only=True)
    updated_at = fields.AwareDateTime(dump_only=True)

    class Meta:
        ordered = True

    def dump(self, obj: Any, *, many: bool | None = None) -> Any:
        if self.many if many is None else many:
            return [_post_fields(post) for post in obj]
        return _post_fields(obj)


def _post_fields(post: Any) -> dict[str, Any]:
    return {
        "id": post.id,
        "title": post.title,
        "body": post.body,
        "author": {"id": post.author.id, "name": post.author.name},
        "created_at": post.created_at,
        "updated_at": post.updated_at,
    }


# ---- lists -----------------------------------------------------------------


class QueryInteger(fields.Integer):
    """An integer from a query string: ASCII digits only. Python's `int()` would also
    take `" 2"`, `"\r2"`, `"1_0"` and other scripts' digits."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, str) and not _QUERY_INTEGER.fullmatch(value):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class PageArgsSchema(Schema):
    limit = QueryInteger(load_default=20, validate=validate.Range(min=1, max=100))
    cursor = SafeString(validate=validate.Length(min=1, max=200))
    # Bounded by `page_request`, whose 422 says to page with cursors instead.
    skip = QueryInteger(validate=validate.Range(min=0), metadata={
        "maximum": MAX_SKIP,
        "description": f"Items to skip (an offset), at most {MAX_SKIP:,}. Deeper pages: follow "
                       '`Link: rel="next"` (its `cursor`), which costs the same at any depth.'})

    @validates_schema
    def _cursor_or_skip(self, data: dict, **kwargs: Any) -> None:
        if "cursor" in data and "skip" in data:
            raise ValidationError("Use either cursor or skip, not both.", "skip")


class SearchText(SafeString):
    """Search text, parsed here: a `q` with nothing to search for is a 422 like any bad field."""

    MAX_LENGTH = 200

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metadata = {"minLength": 1, "maxLength": self.MAX_LENGTH, **self.metadata}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> SearchQuery:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not 1 <= len(text) <= self.MAX_LENGTH:
            raise ValidationError(f"Length must be between 1 and {self.MAX_LENGTH}.")
        try:
            return parse_search(text)
        except InvalidSearch as error:
            raise ValidationError(str(error)) from None


SEARCH_DESCRIPTION = (
    "Full-text search over title and body, as in a web search: every word must match, in any "
    "order; `\"quoted words\"` must appear together in that order; `-word` or `-\"some words\"` "
    "excludes; the last word also matches as a prefix (`pyth` finds `Python`). Case and accents "
    "are ignored (`cafe` finds `Café`). A word is a run of letters and digits; common English "
    "words on their own (`the`, `and`) are not searched for; there is no stemming. A `q` with nothing "
    "to search for, or with only exclusions, is a 422. There is no `OR`, `NOT` or `field:` syntax: a bare "
    "`OR` or `NOT`, or a field such as `title:flask`, is a 422 saying what to write instead (all words "
    "must match; `-word` excludes; title and body are searched alike). Results stay newest first and page "
    "with `cursor`. "
    "PostgreSQL also folds ligatures and letters such as `ß` (→ `ss`) and `ø` (→ `o`); the embedded "
    "SQLite database keeps those as they are."
)


class SearchArgsSchema(PageArgsSchema):
    q = SearchText(metadata={"description": SEARCH_DESCRIPTION})


class PostListArgsSchema(SearchArgsSchema):
    author_id = QueryInteger(validate=validate.Range(min=1, max=MAX_ID))


class IndexSchema(Schema):
    name = fields.String(required=True)
    version = fields.String(required=True)
    links = fields.Dict(keys=fields.String(), values=fields.String(), required=True,
                        metadata={"description": "Paths of the API's entry points, by name: `docs`, `redoc`, "
                                  "`openapi`, `health`, `ready`, `register`, `login`, `users`, `me`, `posts`, "
                                  "`feed`, `admin`."})


class HealthSchema(Schema):
    status = fields.String(required=True)


class ProblemSchema(Schema):
    """RFC 9457 problem details: the body of every error response."""

    type = fields.String(required=True, metadata={"example": "about:blank"})
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    errors = fields.Dict(keys=fields.String(), metadata={"description": "Messages per field; only on 422 responses."})

    class Meta:
        ordered = True
