"""What a search matched in a post's body, as a short excerpt for the admin's post list.

The database says which posts match, not where; this finds the first word of the body that
a wanted term names, the way the search compares words (case and accents ignored, the last
word of the query also as a prefix). The template escapes every part and marks the match.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from app.search import SearchQuery

_WORD = re.compile(r"[^\W_]+")  # a word as the search reads one: letters and digits
AROUND = 70  # characters of context on each side of the match


@dataclass(frozen=True)
class Excerpt:
    before: str
    match: str
    after: str


def _folded(word: str) -> str:
    if word.isascii():  # most words: NFKD leaves ASCII as it is, and it has no combining marks
        return word.lower()
    return "".join(ch for ch in unicodedata.normalize("NFKD", word) if not unicodedata.combining(ch)).casefold()


def _wanted(query: SearchQuery) -> tuple[set[str], tuple[str, ...]]:
    """The words a match may be, and the prefixes (the last word, typed so far)."""
    words: set[str] = set()
    prefixes: list[str] = []
    for term in query.wanted:
        for index, word in enumerate(term.words):
            if term.prefix and index == len(term.words) - 1:
                prefixes.append(_folded(word))
            else:
                words.add(_folded(word))
    return words, tuple(prefixes)


def excerpt(body: str, query: SearchQuery) -> Excerpt:
    """About `AROUND` characters either side of the first matched word of `body`, cut at
    spaces and marked with "…" where cut; the body's start when only the title matched."""
    words, prefixes = _wanted(query)
    for found in _WORD.finditer(body):
        folded = _folded(found.group())
        if folded in words or folded.startswith(prefixes):
            start, end = found.span()
            return Excerpt(_left_context(body, start), found.group(), _right_context(body, end))
    return Excerpt("", "", _right_context(body, 0, AROUND * 2))


def _left_context(body: str, start: int) -> str:
    if start <= AROUND:
        return body[:start]
    cut = body.find(" ", start - AROUND, start)
    return "…" + body[(cut + 1 if cut != -1 else start - AROUND):start]


def _right_context(body: str, end: int, size: int = AROUND) -> str:
    if len(body) - end <= size:
        return body[end:]
    cut = body.rfind(" ", end, end + size)
    return body[end:(cut if cut > end else end + size)] + "…"
