"""Links to many rows of one kind on a page (each post's page, its author's), built by the router once.

`url_for` runs Flask's and Werkzeug's whole URL building each time; a list page of n rows asked
it 3n times for three URLs that differ only in their id. `id_urls` asks it once, with a stand-in
id, and puts each id in its place: the same URL as `url_for` builds, since an `int` URL converter
writes an id as its decimal digits. A template reads them by id (`post_urls[post.id]`): an item
lookup, which Jinja makes directly, where a call goes through its checks for every row.
"""

from __future__ import annotations

from flask import url_for

from app.admin.blueprint import bp
from app.models import MAX_ID

_STAND_IN = str(MAX_ID)


class IdUrls:
    """`url_for(endpoint, **{name: id})` by id: `urls[id]`."""

    def __init__(self, endpoint: str, name: str) -> None:
        self.endpoint, self.name = endpoint, name
        built = url_for(endpoint, **{name: MAX_ID})
        # Split around the stand-in, unless it also appears elsewhere (in the script root, say).
        self.parts = built.split(_STAND_IN) if built.count(_STAND_IN) == 1 else None

    def __getitem__(self, value: int) -> str:
        if self.parts is None:
            return url_for(self.endpoint, **{self.name: value})
        prefix, suffix = self.parts
        return f"{prefix}{int(value)}{suffix}"


@bp.app_template_global("id_urls")
def id_urls(endpoint: str, name: str) -> IdUrls:
    """The URLs of `endpoint` by the id its `name` argument takes, for every row of a page."""
    return IdUrls(endpoint, name)
