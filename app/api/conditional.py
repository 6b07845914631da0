"""HTTP caching and conditional requests (RFC 9110 sections 8.8.3 and 13).

A strong ETag is a hash of the bytes a response shows (plus what the body leaves out
but a client's copy depends on: the row's version, the next-page link), computed in
one place, `entity_tag`. Reads answer 304 when `If-None-Match` names the current tag;
writes check `If-Match` through the services' precondition, inside the transaction
whose `UPDATE ... WHERE version = :v` makes check and write atomic.

flask-smorest's `Blueprint.etag` is not used: it serialises the data a second time to
hash it (these views already hand-serialise, and return `Response`s, which it skips),
answers every PATCH/DELETE without If-Match with 428 (here that is `REQUIRE_IF_MATCH`,
off by default), raises a bare 412 without the current ETag, compares tags strongly
for If-None-Match and knows nothing of Flask-Compress's `:gzip` suffix.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from flask import Response, current_app, request
from werkzeug.datastructures import ETags
from werkzeug.http import quote_etag

from app.errors import DomainError, PreconditionFailed, PreconditionRequired
from app.services import Precondition

# Flask-Compress turns a strong tag "t" into "t:gzip" on the compressed representation;
# a client may send either back.
_ENCODING_SUFFIXES = ("", ":gzip", ":br", ":deflate", ":zstd")
PUBLIC_READ = "no-cache"  # any cache may keep it, but must revalidate (a cheap 304) every time


def entity_tag(body: bytes, *extra: str) -> str:
    """The strong validator of a representation: its bytes and `extra` (unquoted)."""
    digest = hashlib.blake2b(body, digest_size=16)
    for part in extra:
        digest.update(b"\0" + part.encode())
    return digest.hexdigest()


def _matching(header: ETags, tag: str, *, weak: bool) -> str | None:
    """The variant of `tag` the header names, if any (`*` names the plain tag)."""
    if header.star_tag:
        return tag
    contains = header.contains_weak if weak else header.contains
    for suffix in _ENCODING_SUFFIXES:
        if contains(tag + suffix):
            return tag + suffix
    return None


def tagged(response: Response, *extra: str) -> Response:
    """Give a response its ETag (a successful write's answer)."""
    response.set_etag(entity_tag(response.get_data(), *extra))
    return response


def revalidated(response: Response, *extra: str) -> Response:
    """A read's response with its ETag and `Cache-Control: no-cache`, or a bodiless 304
    when `If-None-Match` (weak comparison, `*` or a list) names the current tag.
    Authenticated answers get `no-store` on the way out (app/security.py)."""
    tag = entity_tag(response.get_data(), *extra)
    matched = _matching(request.if_none_match, tag, weak=True)
    if matched is not None:
        response = Response(status=304)
        response.set_etag(matched)
    else:
        response.set_etag(tag)
    response.headers["Cache-Control"] = PUBLIC_READ
    return response


def if_match(tag_of: Callable[[Any], str]) -> Precondition:
    """The `If-Match` precondition of a PATCH or DELETE, checked by the service on the row it
    loaded, after its permission checks (a 403 stays a 403). Strong comparison; `*` means
    "if it exists", which the row does."""

    def check(row: Any) -> None:
        header = request.if_match
        if not header:
            if current_app.config["REQUIRE_IF_MATCH"]:
                raise PreconditionRequired()
            return
        tag = tag_of(row)
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
