"""What a search matched in a post's body, as a short excerpt for the admin's post list.

The database says which posts match, not where; this finds the first word of the body that
a wanted term names, the way the search compares words (case and accents ignored, the last
word of the query also as a prefix). The template escapes every part and marks the match.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from app.search import SearchQuery

_WORD = re.compile(r"[^\W_]+")  # a word as the search reads one: letters and digits
_NOT_BEFORE_A_LETTER = r"(?![^\W_])"  # where it ends
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


class Finder:
    """The first word of a body that a query wants, found the same way for every post of a page.

    An ASCII body (nearly every post) folds by `lower()` alone, which keeps every character in
    its place, so one regular expression over the lowered body finds the word that the walk
    over its words would: a wanted word whole, or a word that starts with a wanted prefix. Any
    other body is read word by word, each word folded as the search folds it.
    """

    def __init__(self, query: SearchQuery) -> None:
        words: set[str] = set()
        prefixes: list[str] = []
        for term in query.wanted:
            for index, word in enumerate(term.words):
                if term.prefix and index == len(term.words) - 1:
                    prefixes.append(_folded(word))
                else:
                    words.add(_folded(word))
        self.words, self.prefixes = words, tuple(prefixes)
        wanted = []
        if words:
            wanted.append("(?:" + "|".join(map(re.escape, sorted(words))) + ")" + _NOT_BEFORE_A_LETTER)
        if prefixes:
            wanted.append("(?:" + "|".join(map(re.escape, prefixes)) + r")[^\W_]*")
        # The words come first, so the expression looks for their letters; where a match starts is
        # checked after (a look-behind first would be tried at every character of the body).
        self.in_ascii = re.compile("|".join(wanted)) if wanted else None

    def span(self, body: str) -> tuple[int, int] | None:
        """Where the first wanted word of `body` is, if any."""
        if body.isascii():
            lowered = body.lower()
            for found in self.in_ascii.finditer(lowered) if self.in_ascii is not None else ():
                start = found.start()
                if start == 0 or not lowered[start - 1].isalnum():  # an ASCII letter or digit: `[^\W_]`
                    return found.span()
            return None
        for word in _WORD.finditer(body):
            folded = _folded(word.group())
            if folded in self.words or folded.startswith(self.prefixes):
                return word.span()
        return None


@lru_cache(maxsize=64)
def finder(query: SearchQuery) -> Finder:
    """One `Finder` per query, shared by every row of its page (a query is immutable)."""
    return Finder(query)


def excerpt(body: str, query: SearchQuery) -> Excerpt:
    """About `AROUND` characters either side of the first matched word of `body`, cut at
    spaces and marked with "…" where cut; the body's start when only the title matched."""
    span = finder(query).span(body)
    if span is None:
        return Excerpt("", "", _right_context(body, 0, AROUND * 2))
    start, end = span
    return Excerpt(_left_context(body, start), body[start:end], _right_context(body, end))


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
