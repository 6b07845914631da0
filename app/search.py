"""Full-text search over posts: what a `q` means, and how each database answers it.

The syntax is a web search's: words in any order, all of which must match;
`"quoted words"` must appear together in that order; `-word` or `-"some words"`
excludes; the last word also matches as a prefix, so a query typed so far
already finds ("pyth" finds "Python"). Case and accents are ignored. A word is a
run of letters and digits; a common English word on its own ("the", "and") is
not searched for. One parser serves both databases, so a query means the same
on PostgreSQL (a `tsvector` with a GIN index) and SQLite (FTS5).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, bindparam, column, func, literal_column, text
from sqlalchemy.exc import DBAPIError

MAX_TERMS = 16

# PostgreSQL's English stop words (snowball); they are in almost every post.
STOP_WORDS = frozenset({
    "a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any", "are",
    "as", "at", "be", "because", "been", "before", "being", "below", "between", "both", "but", "by",
    "can", "did", "do", "does", "doing", "don", "down", "during", "each", "few", "for", "from",
    "further", "had", "has", "have", "having", "he", "her", "here", "hers", "herself", "him",
    "himself", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just", "me",
    "more", "most", "my", "myself", "no", "nor", "not", "now", "of", "off", "on", "once", "only",
    "or", "other", "our", "ours", "ourselves", "out", "over", "own", "s", "same", "she", "should",
    "so", "some", "such", "t", "than", "that", "the", "their", "theirs", "them", "themselves",
    "then", "there", "these", "they", "this", "those", "through", "to", "too", "under", "until",
    "up", "very", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom",
    "why", "will", "with", "you", "your", "yours", "yourself", "yourselves",
})

_TOKEN = re.compile(r'(-?)(?:"([^"]*)"?|([^\s"]+))')
_WORD = re.compile(r"[^\W_]+")
# Letters that PostgreSQL's `unaccent` (which folds the query as it folded the posts) turns
# into punctuation: an apostrophe or colon inside a quoted tsquery word ends the word early
# and breaks the query ("flask" and U+02BC become "flask'"). The posts' words split there, so
# these split the query's words too; NFKD has already split the rest (fractions, "⑴" ...).
_UNACCENTED_TO_PUNCTUATION = str.maketrans(dict.fromkeys(
    "\u02b9\u02ba\u02bb\u02bc\u02bd\u02c6\u02c8\u02cb\u02d0", " "))


class InvalidSearch(ValueError):
    """The text has nothing that a search could look for."""


@dataclass(frozen=True)
class Term:
    """Words that must appear together, in order (one word is the common case)."""

    words: tuple[str, ...]
    exclude: bool = False
    prefix: bool = False


@dataclass(frozen=True)
class SearchQuery:
    terms: tuple[Term, ...]

    @property
    def wanted(self) -> tuple[Term, ...]:
        return tuple(term for term in self.terms if not term.exclude)

    @property
    def excluded(self) -> tuple[Term, ...]:
        return tuple(term for term in self.terms if term.exclude)


# Syntax of other search engines that would otherwise quietly mean something else here: `OR`
# and `NOT` are common words (not searched for), and `title:flask` the phrase "title flask".
_OPERATORS = {
    "OR": "`OR` is not supported: every word must match. To find posts with either word, search for each.",
    "NOT": "`NOT` is not supported: put `-` before a word to exclude it (`flask -django`).",
}
_FIELD = re.compile(r"(title|body|author|author_id|user|name|tag|created_at|updated_at):[^\s:]", re.IGNORECASE)


def check_syntax(text_: str) -> None:
    """`InvalidSearch` for another engine's syntax (a bare `OR` or `NOT`, a field such as
    `title:`), which would quietly match something else than asked for."""
    for match in _TOKEN.finditer(text_):
        bare = match.group(3)
        if bare is None:
            continue
        if bare in _OPERATORS and not match.group(1):
            raise InvalidSearch(_OPERATORS[bare])
        field = _FIELD.match(bare)
        if field:
            raise InvalidSearch(f"`{field.group(1)}:` is not supported: words are looked for in the title and "
                                "the body alike, and fields cannot be named. Leave the field out, or put the "
                                "text in quotes to find it as written.")


def parse_search(text_: str) -> SearchQuery:
    """The terms of a query, or `InvalidSearch` saying why there are none worth running."""
    check_syntax(text_)
    matches = list(_TOKEN.finditer(text_))
    terms: list[Term] = []
    for index, match in enumerate(matches):
        exclude, quoted, bare = match.group(1) == "-", match.group(2), match.group(3)
        words = tuple(word.lower() for word in _WORD.findall(fold(quoted if quoted is not None else bare)))
        if not words or all(word in STOP_WORDS for word in words):
            continue
        prefix = index == len(matches) - 1 and quoted is None and not exclude
        terms.append(Term(words, exclude=exclude, prefix=prefix))
    if not any(not term.exclude for term in terms):
        if terms:
            raise InvalidSearch("Add at least one word to find: a search of only -exclusions would read every post.")
        raise InvalidSearch("Nothing to search for: use words of letters or digits, "
                            "not only punctuation or common words such as 'the'.")
    if len(terms) > MAX_TERMS:
        raise InvalidSearch(f"Use at most {MAX_TERMS} search terms.")
    return SearchQuery(tuple(terms))


def _tsquery(query: SearchQuery) -> str:
    """PostgreSQL `to_tsquery` syntax; words are letters and digits, safe inside quotes."""

    def term_text(term: Term) -> str:
        words = [f"'{word}'" for word in term.words]
        if term.prefix:
            words[-1] += ":*"
        phrase = " <-> ".join(words)
        return f"!({phrase})" if term.exclude else f"({phrase})"

    return " & ".join(term_text(term) for term in query.terms)


def _fts5_match(query: SearchQuery) -> str:
    """SQLite FTS5 syntax: `NOT` is binary there, so exclusions follow the wanted terms."""

    def term_text(term: Term) -> str:
        return '"' + " ".join(term.words) + '"' + ("*" if term.prefix else "")

    wanted = " AND ".join(term_text(term) for term in query.wanted)
    return "(" + wanted + ")" + "".join(f" NOT {term_text(term)}" for term in query.excluded)


SEARCH_VECTOR = literal_column("posts.search_vector")  # PostgreSQL only; migration 0005 keeps it


def search_condition(dialect: str, *, search_vector: ColumnElement[Any], post_id: ColumnElement[int]
                     ) -> ColumnElement[bool]:
    """That a post matches the bound parameter `search` (see `search_parameter`).

    The statement depends only on the database, so it can be built once and reused.
    """
    if dialect == "postgresql":
        tsquery = func.to_tsquery(literal_column("'simple'::regconfig"), func.immutable_unaccent(bindparam("search")))
        return search_vector.bool_op("@@")(tsquery)
    matching = text("SELECT rowid FROM posts_fts WHERE posts_fts MATCH :search").columns(column("rowid"))
    return post_id.in_(matching)


def search_parameter(query: SearchQuery, dialect: str) -> str:
    """The value of `search` for `search_condition`: the query in that database's syntax."""
    return _tsquery(query) if dialect == "postgresql" else _fts5_match(query)


_SYNTAX_ERROR = "42601"  # PostgreSQL's SQLSTATE for "syntax error in tsquery" (the statement itself is fixed)


def refused_search(error: DBAPIError) -> bool:
    """Whether the database refused the search text of a statement (`search_parameter`'s value) as
    bad query syntax: a character that its accent folding turns into syntax, which `fold` does not
    know of yet. That is the query's fault, never the server's."""
    if getattr(error.orig, "pgcode", None) == _SYNTAX_ERROR:
        return True
    message = str(error.orig)  # FTS5's parser: a quote inside a quoted word ends it early
    return message.startswith("fts5: syntax error") or message == "unterminated string"


def is_search_index(name: str | None, type_: str) -> bool:
    """Whether a schema object is one of the search indexes that only migration 0005 describes
    (they differ per database, so the models leave them out; Alembic must not drop them)."""
    if type_ == "table":
        return bool(name and name.startswith("posts_fts"))
    if type_ == "column":
        return name == "search_vector"
    return type_ == "index" and name == "ix_posts_search_vector"


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Alembic's `include_object` hook: compare everything but the search indexes."""
    return not is_search_index(name, type_)


# ---- how common a query is (PostgreSQL) -----------------------------------------------------

# Statistics ANALYZE keeps of the search vector: its commonest words and the share of posts
# holding each (the last two frequencies are the least and the greatest of those shares).
_WORD_STATISTICS = text("""
    SELECT s.most_common_elems::text::text[] AS words, s.most_common_elem_freqs AS shares, c.reltuples AS posts
    FROM pg_stats s JOIN pg_class c ON c.relname = s.tablename AND c.relnamespace = to_regnamespace(s.schemaname)
    WHERE s.schemaname = current_schema() AND s.tablename = 'posts' AND s.attname = 'search_vector'
""")
PAGE_OF_MATCHES = 21  # a page and one more (the cursor's look-ahead)
# A match the index finds costs more than a post a walk reads: a visit to its row for its date,
# then a sort of all the matches; a walked post is the next entry of the date index, checked in
# place. `EXPLAIN ANALYZE` of both on 100,000 posts put one match at about three walked posts.
MATCH_COST_IN_WALKED_POSTS = 3


@dataclass(frozen=True)
class WordStatistics:
    """How common the words of the posts are, to choose how to find a query's newest matches:
    walking the posts newest first reads about `page / share` posts, the search index reads
    every match (`share * posts`, each match costing `MATCH_COST_IN_WALKED_POSTS` walked posts);
    whichever costs less wins. A word ANALYZE did not list
    counts as rare: the index reads only its few matches, while a walk could read every post
    (a word in no post at all)."""

    shares: dict[str, float]
    posts: float

    @classmethod
    def read(cls, connection: Connection) -> WordStatistics | None:
        """None until ANALYZE has looked at the search vector (then every query counts as rare)."""
        row = connection.execute(_WORD_STATISTICS).first()
        if row is None or not row.words or not row.shares:
            return None
        return cls(dict(zip(row.words, row.shares, strict=False)), max(float(row.posts), 0.0))

    def share(self, query: SearchQuery) -> float:
        """At most the share of posts holding every wanted term (a term is as rare as its rarest word)."""
        return min(min(self._word_share(word, prefix=term.prefix and index == len(term.words) - 1)
                       for index, word in enumerate(term.words)) for term in query.wanted)

    def best_walked(self, query: SearchQuery) -> bool:
        """Whether walking the newest posts finds a page of matches at less cost than the index."""
        share = self.share(query)
        return MATCH_COST_IN_WALKED_POSTS * share * share * self.posts >= PAGE_OF_MATCHES

    def _word_share(self, word: str, *, prefix: bool) -> float:
        word = fold(word)
        if prefix:
            return min(sum(share for listed, share in self.shares.items() if listed.startswith(word)), 1.0)
        return self.shares.get(word, 0.0)


def fold(text_: str) -> str:
    """`text_` without its accents, as the search indexes store words: split into words only
    after this, so that no word changes into something else (punctuation) in the database."""
    decomposed = unicodedata.normalize("NFKD", text_).translate(_UNACCENTED_TO_PUNCTUATION)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))
