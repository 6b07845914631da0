"""Flask-WTF forms: every state change carries a CSRF token; filters are plain GET forms."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import HiddenField, IntegerField, PasswordField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, ValidationError
from wtforms.widgets import HiddenInput

from app.models import Role
from app.schemas import UNSTORABLE
from app.search import InvalidSearch, parse_search


def plain_text(_form: FlaskForm, field: Any) -> None:
    """PostgreSQL rejects NUL in text; no control character belongs in these fields."""
    if field.data and UNSTORABLE.search(field.data):
        raise ValidationError("Must not contain control characters.")


def _strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


class LoginForm(FlaskForm):
    email = StringField(
        "Email",
        validators=[DataRequired(), Length(max=254), plain_text],
        filters=[_strip],
        render_kw={"autocomplete": "username", "type": "email"},
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired(), Length(max=1024)],
        render_kw={"autocomplete": "current-password"},
    )
    next = HiddenField()


class ActionForm(FlaskForm):
    """A button that changes something: the CSRF token, where to go back to, and the version
    of the row the page showed (absent on older pages: then the change is not checked)."""

    next = HiddenField()
    version = IntegerField(widget=HiddenInput(), validators=[Optional(), NumberRange(min=1, max=2**31 - 1)])


class RoleForm(ActionForm):
    role = SelectField("Role", choices=[SelectChoice(r.value) for r in Role], validators=[InputRequired()])


class ActiveForm(ActionForm):
    active = SelectField(
        "Active", choices=[SelectChoice("1", "active"), SelectChoice("0", "inactive")], validators=[InputRequired()]
    )


class _FilterForm(FlaskForm):
    class Meta:
        csrf = False  # GET searches change nothing

    cursor = HiddenField(validators=[Length(max=200), plain_text])  # the page after this key
    before = HiddenField(validators=[Length(max=200), plain_text])  # the page before this key


class UserFilterForm(_FilterForm):
    q = StringField(
        "Search",
        validators=[Length(max=254), plain_text],
        filters=[_strip],
        render_kw={"placeholder": "Email or name", "type": "search"},
    )
    role = SelectField(
        "Role",
        choices=[SelectChoice("", "Any role"), *[SelectChoice(r.value, r.value.title()) for r in Role]],
        default="",
    )
    active = SelectField(
        "Status",
        choices=[SelectChoice("", "Any status"), SelectChoice("1", "Active"), SelectChoice("0", "Inactive")],
        default="",
    )


def searchable(_form: FlaskForm, field: Any) -> None:
    """The same rule as the API's `q`: a search must have something to look for."""
    if field.data:
        try:
            parse_search(field.data)
        except InvalidSearch as error:
            raise ValidationError(str(error)) from None


class PostFilterForm(_FilterForm):
    q = StringField(
        "Search",
        validators=[Length(max=200), plain_text, searchable],
        filters=[_strip],
        render_kw={"type": "search"},
    )
    author = StringField(
        "Author",
        validators=[Length(max=254), plain_text],
        filters=[_strip],
        render_kw={"placeholder": "User id or email"},
    )
