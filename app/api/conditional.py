"""Conditional requests (RFC 9110 sections 8.8.3 and 13), through flask-smorest's ETag feature.

A view under `@blp.etag` tags what it shows with `blp.set_etag(data)`, where `data` is what the
representation is made of, never the representation itself: a row's `version` (the models'
`version_id_col`, which every ORM write moves) and whatever else that reader sees change (a
post's author name, a user's follow counts, whether the caller follows them). A list page is
tagged with its items' stamps, its next cursor and its URL (`page_etag`), so a write to rows it
does not show leaves its tag alone and a tag tells nothing of other accounts. flask-smorest
hashes `data` into the tag and answers 304 when `If-None-Match` names it; a write checks
`If-Match` with `blp.check_etag`, which the service calls on the row it loaded, after its
permission checks, in the transaction whose `UPDATE ... WHERE version = :v` makes check and
write atomic.

`ConditionalBlueprint` keeps flask-smorest's feature and changes what HTTP needs here:
`If-None-Match` compares weakly and knows Flask-Compress's `:gzip` suffix, and its 304 carries
the tag the client named; `If-Match` is optional unless `REQUIRE_IF_MATCH` (then 428), compares
strongly, and its 412 says why (stale, weak or malformed) and carries the current ETag; the
OpenAPI document shows these headers and answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from copy import deepcopy
from typing import Any

import flask_smorest
from flask import Response, abort, current_app, request
from werkzeug.datastructures import ETags
from werkzeug.http import quote_etag

from app.errors import PROBLEM_MIMETYPE, DomainError, PreconditionFailed, PreconditionRequired
from app.pagination import SortKey, base_url, encode_cursor
from app.schemas import ProblemSchema

# Flask-Compress turns a strong tag "t" into "t:gzip" on the compressed representation;
# a client may send either back.
_ENCODING_SUFFIXES = ("", ":gzip", ":br", ":deflate", ":zstd")
PUBLIC_READ = "no-cache"  # any cache may keep it, but must revalidate (a cheap 304) every time
CONDITIONAL_WRITES = ("PUT", "PATCH", "DELETE")


def page_etag(stamps: Iterable[Any], next_key: SortKey | None) -> tuple[Any, ...]:
    """What a list page is made of: its items' stamps (each what that item's own tag is made of),
    where the next page starts, and the URL it answers (its `Link` is built from it)."""
    cursor = encode_cursor(next_key) if next_key is not None else None
    return base_url(), request.query_string.decode("latin-1"), list(stamps), cursor


def matching(header: ETags, tag: str, *, weak: bool) -> str | None:
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


def _header(description: str, required: bool = False) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": {"type": "string"}}


ETAG_HEADER = {"ETag": _header("Strong validator of this representation: send it back in `If-None-Match` "
                               "(a read) or `If-Match` (a change).", required=True)}
CACHE_HEADERS = {**ETAG_HEADER, "Cache-Control": _header(
    "`no-cache` on public reads (any cache must revalidate), `no-store` on authenticated ones.", required=True)}
IF_NONE_MATCH = {"in": "header", "name": "If-None-Match", "required": False, "schema": {"type": "string"},
                 "description": "ETags of copies you hold (or `*`): when one is current, the answer is 304 "
                                "without a body."}
IF_MATCH = {"in": "header", "name": "If-Match", "required": False, "schema": {"type": "string"},
            "description": "Change only if the resource still has one of these ETags (`*`: if it exists); "
                           "else 412."}
_PROBLEM = {PROBLEM_MIMETYPE: {"schema": ProblemSchema}}
NOT_MODIFIED = {"description": "Not Modified: your copy (`If-None-Match`) is current; no body.",
                "headers": ETAG_HEADER}
PRECONDITION_FAILED = {
    "description": ("`If-Match` names none of the resource's current ETags: it changed since you read it, or "
                    "the header holds only weak tags (`W/\"...\"`, which never match) or is malformed; the "
                    "detail says which. Nothing changed."),
    "content": _PROBLEM, "headers": {"ETag": _header("The current ETag of the resource.")}}
PRECONDITION_REQUIRED = {"description": "`REQUIRE_IF_MATCH` is on and the request has no `If-Match`.",
                         "content": _PROBLEM}


class ConditionalBlueprint(flask_smorest.Blueprint):
    """flask-smorest's blueprint, whose ETag feature follows this API's rules (the base of
    `app.api.Blueprint`)."""

    # flask-smorest answers a PUT, PATCH or DELETE without If-Match with 428 before the view runs,
    # and warns after it when the view did not check one. Here If-Match is optional unless
    # `REQUIRE_IF_MATCH`, and `check_etag` itself says 428, on the row the service loaded once
    # the caller may change it (a 403 stays a 403).
    METHODS_NEEDING_CHECK_ETAG: list[str] = []

    @staticmethod
    def _generate_etag(etag_data: Any, extra_data: Any = None) -> str:
        """flask-smorest's hash (the method its maintainers name for overriding, flask-smorest#393)
        of the data and `API_VERSION`: a release that changes what a representation shows bumps
        it, so no copy an older release made is taken for current."""
        return flask_smorest.Blueprint._generate_etag((current_app.config["API_VERSION"], etag_data), extra_data)

    def check_etag(self, etag_data: Any, etag_schema: Any = None) -> None:
        """The `If-Match` precondition of a write on the row whose tag `etag_data` makes: strong
        comparison; `*` means "if it exists", which the row does. Raises 412 with the current
        ETag, or 428 when `REQUIRE_IF_MATCH` and the request has none."""
        raw = request.headers.get("If-Match", "")
        if not raw.strip():
            if current_app.config["REQUIRE_IF_MATCH"]:
                raise PreconditionRequired()
            return
        if etag_schema is not None:
            etag_data = (etag_schema() if isinstance(etag_schema, type) else etag_schema).dump(etag_data)
        tag = self._generate_etag(etag_data)
        if matching(request.if_match, tag, weak=False) is None:
            raise PreconditionFailed(_why_no_match(raw, request.if_match), headers={"ETag": quote_etag(tag)})

    @contextmanager
    def etag_on_failure(self, current: Callable[[], Any]) -> Iterator[None]:
        """A 412 carries the current ETag (made of `current()`), also when the write lost a race
        at commit and the service knew only that the version had moved."""
        try:
            yield
        except PreconditionFailed as error:
            if "ETag" not in error.headers:
                with suppress(DomainError):
                    error.headers["ETag"] = quote_etag(self._generate_etag(current()))
            raise

    def _check_not_modified(self, etag: str) -> None:
        """A bodiless 304 when `If-None-Match` names `etag` by weak comparison (RFC 9110 13.1.2),
        also as compressed (`:gzip`), with the tag the client named."""
        if request.method in self.METHODS_CHECKING_NOT_MODIFIED:
            matched = matching(request.if_none_match, etag, weak=True)
            if matched is not None:
                response = Response(status=304)
                response.set_etag(matched)
                abort(response)

    def _prepare_etag_doc(self, doc: dict[str, Any], doc_info: dict[str, Any], *, method: str,
                          **kwargs: Any) -> dict[str, Any]:
        """Document `etag` as it behaves here: If-None-Match and 304 on reads, If-Match (optional),
        412 and 428 on changes, and the ETag of what a read shows."""
        if not doc_info.get("etag"):
            return doc
        method, responses = method.upper(), doc.setdefault("responses", {})
        success = [responses[status] for status in doc_info.get("success_status_codes", []) if status in responses]
        if method in self.METHODS_CHECKING_NOT_MODIFIED:
            doc.setdefault("parameters", []).append(IF_NONE_MATCH)
            responses[304] = deepcopy(NOT_MODIFIED)
            for response in success:
                response.setdefault("headers", {}).update(deepcopy(CACHE_HEADERS))
        if method in CONDITIONAL_WRITES:
            doc.setdefault("parameters", []).append(IF_MATCH)
            responses[412], responses[428] = deepcopy(PRECONDITION_FAILED), deepcopy(PRECONDITION_REQUIRED)
        if method in self.METHODS_ALLOWING_SET_ETAG and method not in self.METHODS_CHECKING_NOT_MODIFIED:
            for response in success:
                response.setdefault("headers", {}).update(deepcopy(ETAG_HEADER))
        return doc
