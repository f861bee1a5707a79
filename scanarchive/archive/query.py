"""Search queries: words, `prefix*`, "quoted phrases", and fuzzy expansion against the index vocabulary.

Handwriting OCR misreads letters, so by default a plain word also matches the
words in the index within an edit distance scaled to its length (a swap of
two letters counts as one edit), found with rapidfuzz over the index's
`terms` table:

- up to 4 letters: none (exact only); 5–8 letters: 1 edit; 9 or more: 2.
- A short word (5 letters) is 1 edit from many other real words, so it
  expands only when it is nowhere in the index itself (it was never read
  right), never to a dictionary word, and to one word at most: the one on
  the most pages.
- A longer word that is in the OCR language's dictionary expands only to
  index words that are not (misreadings), so other real words near it are
  never mixed in; a longer query that is not a word (a typo) expands to all.
- A word stands for at most MAX_EXPANSIONS other words: the ones on the
  most pages (then the closest, then alphabetical).

Pages matching the words exactly rank first (archive/index.py). Every term
reaches FTS5 quoted, so user input can never inject FTS5 syntax.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass

from rapidfuzz import process
from rapidfuzz.distance import OSA

from scanarchive.errors import UsageError

_PHRASE = re.compile(r'"([^"]*)"')
_TOKEN = re.compile(r"[^\W_]+\*?", re.UNICODE)
MAX_EXPANSIONS = 12
# Measured on the 'tune' half of bench/recall_real.py's real pages (the 'held' half is reported, never
# tuned on): with every word of >= 4 letters expanding by 1 edit to up to 12 words, fuzzy search gave
# recall 0.384 at precision 0.712 (exact words alone: 0.164 at 0.901); a 4- or 5-letter word's 1-edit
# neighbours were mostly other words or others' misreadings (81 wrong pages to 45 right for 4 letters,
# 64 to 65 for 5; from 6 letters on 8 to 41 and fewer). These rules gave 0.334 at 0.859, and kept
# bench/recall.py (synthetic, English) as it was: 0.954 at 0.979 on its seen fonts (before: 0.955 at 0.979).
FUZZY_FROM = 5  # letters: shorter words are matched exactly
SHORT_UPTO = 5  # letters: a word this short expands only if it is not in the index, and to one word
SHORT_EXPANSIONS = 1
TWO_EDITS_FROM = 9  # letters; 10 raised precision on the tune pages (0.869) but lowered synthetic recall
# The vocabulary is read (and searched) in tiers of words on at least this many pages, most
# frequent first: most words of an OCR index are misreadings found on one or two pages, and a
# word's MAX_EXPANSIONS most frequent neighbours are usually all in the first tiers.
TIER_FLOORS = (64, 16, 4, 2, 1)
NO_WORDS_HINT = (
    "Search for a word from the note, e.g. 'insomnia'; or list notes without words: a client's with "
    "--client CODE, a date range's with --since DATE / --until DATE, ticked boxes with --has BOX."
)

# (floor, ceiling) -> the index words on floor <= pages < ceiling (ceiling None: no upper bound)
TierLoader = Callable[[int, int | None], Iterable[str]]
# index words -> on how many pages each is
PageCounter = Callable[[list[str]], Mapping[str, int]]


@dataclass(frozen=True)
class Term:
    text: str  # lower case; a phrase is several words
    prefix: bool = False
    phrase: bool = False


class Vocabulary:
    """The index's words, read lazily one frequency tier at a time (most frequent first), each
    tier kept grouped by length: a word within distance d of another is within d of its length."""

    def __init__(self, load: TierLoader, count: PageCounter, known: Callable[[], Container[str]] | None = None) -> None:
        self._load = load
        self._count = count
        self._tiers: dict[int, dict[int, list[str]]] = {}
        self._known = known
        self._known_words: Container[str] | None = None

    def known(self) -> Container[str]:
        """The language's dictionary words (lower case), loaded on first use; empty if none is given."""
        if self._known_words is None:
            self._known_words = self._known() if self._known is not None else frozenset()
        return self._known_words

    @classmethod
    def of(cls, words: Mapping[str, int] | Iterable[str], known: Container[str] = frozenset()) -> Vocabulary:
        """An in-memory vocabulary (words given without counts are on one page each)."""
        counts = dict(words) if isinstance(words, Mapping) else dict.fromkeys(words, 1)
        return cls(
            lambda lo, hi: [w for w, n in counts.items() if n >= lo and (hi is None or n < hi)],
            lambda found: {w: counts[w] for w in found if w in counts},
            lambda: known,
        )

    def _tier(self, number: int) -> dict[int, list[str]]:
        if number not in self._tiers:
            by_length: dict[int, list[str]] = {}
            for word in self._load(TIER_FLOORS[number], TIER_FLOORS[number - 1] if number else None):
                by_length.setdefault(len(word), []).append(word)
            self._tiers[number] = by_length
        return self._tiers[number]

    def pages(self, word: str) -> int:
        """On how many pages `word` itself is (0: it is not in the index)."""
        return self._count([word]).get(word, 0)

    def near(self, word: str, distance: int, enough: int) -> list[tuple[str, int, int]]:
        """(index word, edit distance, pages) within `distance` of `word` (not `word` itself),
        tier by tier until at least `enough` are found."""
        found: dict[str, int] = {}
        for number in range(len(TIER_FLOORS)):
            tier = self._tier(number)
            for length in range(len(word) - distance, len(word) + distance + 1):
                choices = tier.get(length)
                if not choices:
                    continue
                for other, score, _ in process.extract(
                    word, choices, scorer=OSA.distance, score_cutoff=distance, limit=None
                ):
                    if other != word:
                        found[str(other)] = int(score)
            if len(found) >= enough:  # later tiers hold only words on fewer pages
                break
        pages = self._count(sorted(found))
        return [(other, score, pages.get(other, 0)) for other, score in found.items()]


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
    """Edits (optimal string alignment: a swap of two letters is one edit) a word may be off by:
    none below FUZZY_FROM letters, 1 below TWO_EDITS_FROM, 2 from there.

    Measured with bench/recall.py: 2 edits for words of 4–8 letters mixed in so many other
    words' misreadings that precision fell to 0.81; 1 edit up to 8 letters and 2 from 9 kept
    recall and raised precision (on 40 pages: recall 0.976 → 0.965, precision 0.949 → 0.990).
    On real handwriting (bench/recall_real.py, tune pages) a 4-letter word's neighbours brought
    more wrong pages than right ones, dictionary word or not: OCR of real hands leaves so many
    non-words in the index that most 4-letter strings have one 1 edit away.
    """
    return 0 if len(word) < FUZZY_FROM else 1 if len(word) < TWO_EDITS_FROM else 2


def expand(term: Term, vocabulary: Vocabulary) -> list[str]:
    """The index words a plain term may stand for: itself first, then up to MAX_EXPANSIONS others
    (SHORT_EXPANSIONS for a short word), those on the most pages first."""
    if term.prefix or term.phrase or max_distance(term.text) == 0:
        return [term.text]
    short = len(term.text) <= SHORT_UPTO
    if short and vocabulary.pages(term.text):
        # Read right somewhere: its 1-edit neighbours are as likely other words ("terre" and "verre",
        # names, words no dictionary lists) or other misreadings as misreadings of it.
        return [term.text]
    close = vocabulary.near(term.text, max_distance(term.text), MAX_EXPANSIONS)
    known = vocabulary.known()
    if short or term.text in known:
        # A dictionary word asked for: another dictionary word near it ("planning" for "blanking") was
        # most likely written, not misread; OCR misreadings are mostly not words ("benavicral").
        # A longer query that is not a word (a typo, "anxeity") still reaches the real words near it;
        # a short one does not: too many real words are 1 edit from it.
        close = [c for c in close if c[0] not in known]
    close.sort(key=lambda c: (-c[2], c[1], c[0]))
    return [term.text] + [word for word, _, _ in close[: SHORT_EXPANSIONS if short else MAX_EXPANSIONS]]


def _quoted(text: str) -> str:
    return '"' + text.replace('"', "") + '"'


def to_match(terms: list[Term], vocabulary: Vocabulary | None) -> str:
    """An FTS5 MATCH expression; vocabulary=None means exact (no expansion)."""
    if not terms:
        raise UsageError("the search has no words in it", hint=NO_WORDS_HINT)
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


# --- tick boxes -------------------------------------------------------------------


@dataclass(frozen=True)
class Box:
    """One tick box of a sheet template, as `--has` may name it."""

    key: str  # e.g. "risk.si_denied": what the index stores
    label: str  # e.g. "SI denied": what the sheet prints
    sheet: str  # the template that has it, e.g. "progress@1"


class Boxes:
    """Every tick box of the installed sheet templates: `--has` names one by its key or by its printed
    label, and a name that is neither is an error listing the boxes it is close to, never 'no notes match'.

    The command line builds it from the templates (the storage layer does not read page code)."""

    def __init__(self, boxes: Iterable[Box]) -> None:
        self.boxes = sorted(set(boxes), key=lambda b: (b.key, b.sheet))
        self._labels: dict[str, list[Box]] = {}
        for box in self.boxes:
            self._labels.setdefault(box.label.casefold(), []).append(box)

    @property
    def keys(self) -> list[str]:
        return sorted({b.key for b in self.boxes})

    def labels(self, key: str) -> list[str]:
        """The labels a key is printed with (templates may word it differently), in sheet order."""
        found: list[str] = []
        for box in self.boxes:
            if box.key == key and box.label not in found:
                found.append(box.label)
        return found

    def label(self, key: str) -> str:
        """How a hit names a ticked box: its first printed label (the key itself if no template has it)."""
        labels = self.labels(key)
        return labels[0] if labels else key

    def listing(self) -> list[tuple[str, str, str]]:
        """(key, labels, sheets) for every key, sorted by key: what `sheets keys` prints."""
        rows = []
        for key in self.keys:
            sheets = sorted({b.sheet for b in self.boxes if b.key == key})
            rows.append((key, " / ".join(self.labels(key)), ", ".join(sheets)))
        return rows

    def resolve(self, name: str) -> str:
        """The key `name` stands for: a key as it is, or a box's printed label (any case)."""
        text = name.strip()
        if text in self.keys:
            return text
        by_label = self._labels.get(text.casefold(), [])
        keys = sorted({b.key for b in by_label})
        if len(keys) == 1:
            return keys[0]
        if keys:
            choices = "; ".join(f"{k} ({', '.join(sorted({b.sheet for b in by_label if b.key == k}))})" for k in keys)
            raise UsageError(
                f"the tick-box label {text!r} is on more than one box: {choices}",
                hint=f"Give the key instead, e.g. --has {keys[0]}.",
            )
        raise UsageError(f"there is no tick box {text!r} on any note sheet", hint=self._close_hint(text))

    def resolve_all(self, names: Iterable[str]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.resolve(n) for n in names))

    def _close_hint(self, text: str) -> str:
        folded = text.casefold()
        candidates = {key.casefold(): key for key in self.keys}
        candidates.update({box.label.casefold(): box.key for box in self.boxes})
        near = difflib.get_close_matches(folded, list(candidates), n=6, cutoff=0.6)
        keys = list(dict.fromkeys(candidates[n] for n in near))
        if not keys and "." in text:  # the same group, e.g. every 'risk.' box
            group = folded.split(".", 1)[0] + "."
            keys = [k for k in self.keys if k.casefold().startswith(group)]
        listed = "'scanarchive sheets keys' lists every box with its label."
        if not keys:
            return (
                f"Give a box's key, like --has {self.keys[0] if self.keys else 'topic.sleep'}, or its label. {listed}"
            )
        shown = ", ".join(f"{k} ({self.label(k)})" for k in keys[:6])
        return f"Did you mean: {shown}? {listed}"
