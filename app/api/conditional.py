"""HTTP caching and conditional requests (RFC 9110 sections 8.8.3 and 13).

A strong ETag is a hash of the bytes a response shows (and of its next-page link,
which the body leaves out but a client's copy depends on), computed in one place,
`entity_tag`, from the response the view's schema made. Reads answer 304 when
`If-None-Match` names the current tag; writes check `If-Match` through the services'
precondition, inside the transaction whose `UPDATE ... WHERE version = :v` makes
check and write atomic.

flask-smorest's `Blueprint.etag` is not used: it hashes the dumped data rather than
the response (so not the `Link` of a page, nor views that choose their schema per caller),
answers every PATCH/DELETE without If-Match with 428 (here that is `REQUIRE_IF_MATCH`,
off by default), raises a bare 412 without the current ETag, compares tags strongly
for If-None-Match and knows nothing of Flask-Compress's `:gzip` suffix.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from functools import wraps
from typing import Any, TypeVar

from flask import Response, current_app, request
from werkzeug.datastructures import ETags
from werkzeug.http import quote_etag

from app.errors import DomainError, PreconditionFailed, PreconditionRequired
from app.services import Precondition

# Flask-Compress turns a strong tag "t" into "t:gzip" on the compressed representation;
# a client may send either back.
_ENCODING_SUFFIXES = ("", ":gzip", ":br", ":deflate", ":zstd")
F = TypeVar("F", bound=Callable[..., Any])
PUBLIC_READ = "no-cache"  # any cache may keep it, but must revalidate (a cheap 304) every time


def entity_tag(response: Response) -> str:
    """The strong validator of a representation: its bytes and its next-page link."""
    digest = hashlib.blake2b(response.get_data(), digest_size=16)
    link = response.headers.get("Link")
    if link:
        digest.update(b"\0" + link.encode())
    return digest.hexdigest()


def tag_of(data: Any) -> str:
    """The ETag of a read that shows `data`: what `If-Match` is compared with."""
    return entity_tag(current_app.json.response(data))


def etag_header(tag: str) -> dict[str, str]:
    """A successful write's answer carries the tag of what a later read will show."""
    return {"ETag": quote_etag(tag)}


def _matching(header: ETags, tag: str, *, weak: bool) -> str | None:
    """The variant of `tag` the header names, if any (`*` names the plain tag)."""
    if header.star_tag:
        return tag
    contains = header.contains_weak if weak else header.contains
    for suffix in _ENCODING_SUFFIXES:
        if contains(tag + suffix):
            return tag + suffix
    return None


def revalidate(response: Response) -> Response:
    """A read's response with its ETag and `Cache-Control: no-cache`, or a bodiless 304
    when `If-None-Match` (weak comparison, `*` or a list) names the current tag.
    Authenticated answers get `no-store` on the way out (app/api/__init__.py)."""
    if response.status_code != 200:
        return response
    tag = entity_tag(response)
    matched = _matching(request.if_none_match, tag, weak=True)
    if matched is not None:
        response = Response(status=304)
        response.set_etag(matched)
    else:
        response.set_etag(tag)
    response.headers["Cache-Control"] = PUBLIC_READ
    return response


def cached(view: F) -> F:
    """Answer a read conditionally: the view returns its data, this tags what was made of it."""

    @wraps(view)
    def conditional_view(*args: Any, **kwargs: Any) -> Response:
        return revalidate(current_app.make_response(view(*args, **kwargs)))

    return conditional_view  # type: ignore[return-value]


def if_match(tag_for: Callable[[Any], str]) -> Precondition:
    """The `If-Match` precondition of a PATCH or DELETE, checked by the service on the row it
    loaded, after its permission checks (a 403 stays a 403). Strong comparison; `*` means
    "if it exists", which the row does."""

    def check(row: Any) -> None:
        header = request.if_match
        if not header:
            if current_app.config["REQUIRE_IF_MATCH"]:
                raise PreconditionRequired()
            return
        tag = tag_for(row)
        if _matching(header, tag, weak=False) is None:
            raise PreconditionFailed(headers={"ETag": quote_etag(tag)})

    return check


@contextmanager
def current_tag_on_failure(current_tag: Callable[[], str]) -> Iterator[None]:
    """A 412 carries the current ETag, also when the write lost a race at commit
    (the service then knew only that the version had moved)."""
    try:
        yield
    except PreconditionFailed as error:
        if "ETag" not in error.headers:
            with suppress(DomainError):
                error.headers["ETag"] = quote_etag(current_tag())
        raise
