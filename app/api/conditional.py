"""HTTP caching and conditional requests (RFC 9110 sections 8.8.3 and 13).

A post, a user or an account is tagged with a hash of the bytes its response shows,
computed in one place, `entity_tag`, from the response the view's schema made. A list
page is tagged with the content version its rows were read at (app/services/content.py)
and the request that asked for it (`content_tag`): the same version and request give
the same page, and any change to what a page may show moves the version. So a `304`
for a current page reads that version alone, not the page (`cached_page`). Reads
answer 304 when `If-None-Match` names the current tag; writes check `If-Match` through
the services' precondition, inside the transaction whose `UPDATE ... WHERE version = :v`
makes check and write atomic.

flask-smorest's `Blueprint.etag` is not used: it hashes the dumped data rather than
the response (so not the `Link` of a page, nor views that choose their schema per caller),
answers every PATCH/DELETE without If-Match with 428 (here that is `REQUIRE_IF_MATCH`,
off by default), raises a bare 412 without the current ETag, compares tags strongly
for If-None-Match and knows nothing of Flask-Compress's `:gzip` suffix.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from functools import cache, wraps
from pathlib import Path
from typing import Any, TypeVar

from flask import Response, current_app, request
from werkzeug.datastructures import ETags
from werkzeug.http import quote_etag

from app.errors import DomainError, PreconditionFailed, PreconditionRequired
from app.pagination import Page, base_url, next_link
from app.services import Precondition, content

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


@cache
def _code_digest() -> bytes:
    """The app's source: a page tag of one release never validates another's pages, which
    its code may shape differently."""
    digest = hashlib.blake2b(digest_size=16)
    for path in sorted(Path(__file__).resolve().parent.parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.digest()


def content_tag(version: int) -> str:
    """The strong validator of a list page read at content `version`: with the URL it answers
    (path, query and the base its links are made of) and the credentials it was asked with
    (a feed is the caller's), it names one response exactly."""
    digest = hashlib.blake2b(_code_digest(), digest_size=16)
    digest.update(f"{version}\0{base_url()}\0{request.headers.get('Authorization', '')}\0".encode())
    digest.update(request.query_string)
    return digest.hexdigest()


def page_headers(page: Page[Any]) -> dict[str, str]:
    """A list page's headers: the link to the next page, and its content tag when its rows
    carried their version (an empty page has none, and is tagged by its bytes)."""
    headers = next_link(page.next_key)
    if page.version is not None:
        headers["ETag"] = quote_etag(content_tag(page.version))
    return headers


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
    if not header:
        return None
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
    tag = response.get_etag()[0] or entity_tag(response)
    not_modified = _not_modified(tag)
    if not_modified is not None:
        return not_modified
    response.set_etag(tag)
    response.headers["Cache-Control"] = PUBLIC_READ
    return response


def cached(view: F) -> F:
    """Answer a read conditionally: the view returns its data, this tags what was made of it."""

    @wraps(view)
    def conditional_view(*args: Any, **kwargs: Any) -> Response:
        return revalidate(current_app.make_response(view(*args, **kwargs)))

    return conditional_view  # type: ignore[return-value]


def _not_modified(tag: str) -> Response | None:
    matched = _matching(request.if_none_match, tag, weak=True)
    if matched is None:
        return None
    response = Response(status=304)
    response.set_etag(matched)
    response.headers["Cache-Control"] = PUBLIC_READ
    return response


def cached_page(view: F) -> F:
    """Answer a list page conditionally: when `If-None-Match` names the page's tag at the
    current content version, a 304 without reading the page; else as `cached`."""
    tagged = cached(view)

    @wraps(view)
    def conditional_page(*args: Any, **kwargs: Any) -> Response:
        if request.if_none_match and not request.if_none_match.star_tag:  # `*`: if the page exists
            not_modified = _not_modified(content_tag(content.current()))
            if not_modified is not None:
                return not_modified
        return tagged(*args, **kwargs)

    return conditional_page  # type: ignore[return-value]


def if_match(tag_for: Callable[[Any], str]) -> Precondition:
    """The `If-Match` precondition of a PATCH or DELETE, checked by the service on the row it
    loaded, after its permission checks (a 403 stays a 403). Strong comparison; `*` means
    "if it exists", which the row does."""

    def check(row: Any) -> None:
        header, raw = request.if_match, request.headers.get("If-Match", "")
        if not raw.strip():
            if current_app.config["REQUIRE_IF_MATCH"]:
                raise PreconditionRequired()
            return
        tag = tag_for(row)
        if _matching(header, tag, weak=False) is None:
            raise PreconditionFailed(_why_no_match(raw, header), headers={"ETag": quote_etag(tag)})

    return check


# RFC 9110's `If-Match`: `*`, or a comma-separated list of entity tags, each a quoted string
# with an optional `W/` before it.
_ENTITY_TAG = re.compile(r'\s*(W/)?"[^"]*"\s*')


def _why_no_match(raw: str, header: ETags) -> str | None:
    """What to tell a client whose `If-Match` named none of the current tags, when it is not
    simply that the resource changed (`PreconditionFailed`'s own detail): a header that is
    no list of entity tags (werkzeug reads what it can of it, possibly nothing, and a header
    that says nothing must not let the write through), or one of weak tags only, which the
    strong comparison of a write never matches."""
    tags = [part for part in raw.split(",") if part.strip()]
    if raw.strip() != "*" and not (tags and all(_ENTITY_TAG.fullmatch(part) for part in tags)):
        return ("The If-Match header is malformed: it must be `*` or entity tags in double quotes, "
                "such as the ETag header of a read, sent back as it came. Nothing was changed.")
    if header.as_set(include_weak=True) and not header.as_set():
        return ("If-Match holds only weak entity tags (`W/\"...\"`), and a change compares tags strongly: "
                "a weak tag never matches. Send the ETag of a read as it came (when a proxy that "
                "compresses responses weakened it, the same quoted value without `W/` is the strong tag). "
                "Nothing was changed.")
    return None


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
