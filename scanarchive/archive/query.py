"""Search queries: words, `prefix*`, "quoted phrases", and fuzzy expansion against the index vocabulary.

Handwriting OCR misreads letters, so by default each plain word also matches
the words in the index within an edit distance scaled to its length (none up
to 3 letters, 1 up to 5, 2 beyond), found with rapidfuzz over the FTS5
vocabulary. Exact matches rank first. Every term reaches FTS5 quoted, so user
input can never inject FTS5 syntax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from scanarchive.errors import UsageError

_PHRASE = re.compile(r'"([^"]*)"')
_TOKEN = re.compile(r"[^\W_]+\*?", re.UNICODE)
MAX_EXPANSIONS = 12


@dataclass(frozen=True)
class Term:
    text: str  # lower case; a phrase is several words
    prefix: bool = False
    phrase: bool = False


def parse(query: str) -> list[Term]:
    terms = []
    for phrase in _PHRASE.findall(query):
        words = [w.lower() for w in _TOKEN.findall(phrase) if not w.endswith("*")]
        if words:
            terms.append(Term(" ".join(words), phrase=len(words) > 1))
    for token in _TOKEN.findall(_PHRASE.sub(" ", query)):
        word = token.rstrip("*").lower()
        if word:
            terms.append(Term(word, prefix=token.endswith("*")))
    return terms


def max_distance(word: str) -> int:
    return 0 if len(word) <= 3 else 1 if len(word) <= 5 else 2


def expand(term: Term, vocabulary: list[str]) -> list[str]:
    """The index words a plain term may stand for (itself first)."""
    if term.prefix or term.phrase or max_distance(term.text) == 0:
        return [term.text]
    close = process.extract(
        term.text,
        vocabulary,
        scorer=Levenshtein.distance,
        score_cutoff=max_distance(term.text),
        limit=MAX_EXPANSIONS,
    )
    words = [term.text] + [str(word) for word, _, _ in sorted(close, key=lambda c: (c[1], c[0])) if word != term.text]
    return words[: MAX_EXPANSIONS + 1]


def _quoted(text: str) -> str:
    return '"' + text.replace('"', "") + '"'


def to_match(terms: list[Term], vocabulary: list[str] | None) -> str:
    """An FTS5 MATCH expression; vocabulary=None means exact (no expansion)."""
    if not terms:
        raise UsageError("the search has no words in it", hint="Search for one or more words from the note.")
    parts = []
    for term in terms:
        if term.prefix:
            parts.append(_quoted(term.text) + "*")
        elif vocabulary is None:
            parts.append(_quoted(term.text))
        else:
            options = expand(term, vocabulary)
            parts.append(
                "(" + " OR ".join(_quoted(o) for o in options) + ")" if len(options) > 1 else _quoted(term.text)
            )
    return " AND ".join(parts)
