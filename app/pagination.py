"""Keyset pagination: opaque cursors and the `Link: <...>; rel="next"` header.

A cursor is the sort key of the last item on a page, base64url-encoded JSON.
Walking `next` links visits every item once, in order, even while new items
arrive, because each page starts strictly after the previous page's last key.
The admin pages also go back: the page before a key is read in reverse order
from it, then turned around (`PageRequest.before`; the API takes no such cursor).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote, urlencode

from flask import current_app, request

from app.errors import ValidationFailed
from app.urls import PATH_SAFE

T = TypeVar("T")
SortKey = tuple[Any, ...]

# The deepest offset a list takes: the database reads and drops every skipped row, so a deep
# `skip` costs as much as reading the whole list up to there; a cursor starts where it points.
MAX_SKIP = 10_000
SKIP_TOO_DEEP = (f"skip goes up to {MAX_SKIP}. Page deeper with the cursor of each page's "
                 '`Link: rel="next"` header (its `cursor` parameter), which costs the same at any depth.')


@dataclass(frozen=True)
class Page(Generic[T]):
    """Items in the list's order; `next_key` reads the page after them (`after`), and
    `previous_key` the page before them (`before`), when there is one."""

    items: Sequence[T]
    next_key: SortKey | None
    previous_key: SortKey | None = None


@dataclass(frozen=True)
class PageRequest:
    """What a client asked for: a page size and either a keyset position or an offset.

    `before` asks for the page that ends just before a key: the services read it in
    reverse order from there, nearest item first, and `page_of` turns it around.
    """

    limit: int = 20
    after: SortKey | None = None
    skip: int | None = None
    before: SortKey | None = None


def page_of(items: Sequence[T], page: PageRequest, sort_key: Callable[[T], SortKey]) -> Page[T]:
    """A page from `limit + 1` fetched items: the extra one says a page lies beyond them
    (after them, or before them when `page.before` read them backwards)."""
    more = len(items) > page.limit
    items = items[:page.limit]
    if page.before is None:
        started_later = page.after is not None or bool(page.skip)
        return Page(items, sort_key(items[-1]) if more else None,
                    sort_key(items[0]) if started_later and items else None)
    items = items[::-1]
    if not items:
        return Page(items, None)
    # The page after this one is the page the `before` key came from.
    return Page(items, sort_key(items[-1]), sort_key(items[0]) if more else None)


def encode_cursor(key: SortKey) -> str:
    values = [v.isoformat() if isinstance(v, datetime) else v for v in key]
    raw = json.dumps(values, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, kinds: Sequence[type]) -> SortKey:
    """Turn a cursor back into a sort key of the given types, or a 422 naming `cursor`."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        if not isinstance(values, list) or len(values) != len(kinds):
            raise ValueError
        key = []
        for kind, value in zip(kinds, values, strict=True):
            if kind is datetime:
                parsed = datetime.fromisoformat(value)
                if parsed.tzinfo is None:
                    raise ValueError
                # In UTC: PostgreSQL refuses offsets past ±15:59, and year 1 at +01:00
                # does not exist in UTC at all (OverflowError).
                key.append(parsed.astimezone(UTC))
            elif kind is int:
                if type(value) is not int or not 0 <= value < 2**63:
                    raise ValueError
                key.append(value)
            else:
                raise ValueError
        return tuple(key)
    except (ValueError, TypeError, OverflowError, UnicodeError, binascii.Error, RecursionError):
        raise ValidationFailed(errors={"cursor": ["Not a valid cursor."]}) from None


def page_request(args: dict[str, Any], kinds: Sequence[type]) -> PageRequest:
    """The page the list arguments ask for; a `skip` past `MAX_SKIP` is a 422 pointing at cursors."""
    skip = args.get("skip")
    if skip is not None and skip > MAX_SKIP:
        raise ValidationFailed(SKIP_TOO_DEEP, errors={"skip": [f"Must be at most {MAX_SKIP}: use cursor instead."]})
    after = decode_cursor(args["cursor"], kinds) if "cursor" in args else None
    return PageRequest(limit=args["limit"], after=after, skip=skip)


def next_link(next_key: SortKey | None) -> dict[str, str]:
    """The `Link` header for the page after this one, if there is one."""
    if next_key is None:
        return {}
    params = [(k, v) for k, v in request.args.items(multi=True) if k not in ("cursor", "skip")]
    params.append(("cursor", encode_cursor(next_key)))
    return {"Link": f'<{base_url()}?{urlencode(params)}>; rel="next"'}


def base_url() -> str:
    """This request's URL without its query: `PUBLIC_BASE_URL` and the path when it is set,
    so a forged Host never reaches a link. Built by hand rather than by `request.base_url`,
    whose round trip through an IRI showed in the profile of every list request, which sends
    this link."""
    public = current_app.config.get("PUBLIC_BASE_URL")
    if public:
        return public + quote(request.path, safe=PATH_SAFE)
    path = quote(f"{request.root_path.rstrip('/')}/{request.path.lstrip('/')}", safe=PATH_SAFE)
    return f"{request.scheme}://{request.host}{path}"

