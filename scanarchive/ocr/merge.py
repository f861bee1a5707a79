"""Merging two engines' readings of one page into one list of words.

Tesseract's words come first, in its reading order. A RapidOCR word that lies
on a Tesseract word and reads the same (ignoring case and surrounding
punctuation) confirms it: the word is marked as read by both and its
confidence combined (1 − (1 − a)(1 − b)). Every RapidOCR line that adds a word
Tesseract did not read is then appended whole, as a line of its own, so a
quoted phrase matches either engine's reading and the words in between are not
scrambled. Positions are in the page's own pixels.

Other readings: RapidOCR gives, for each word of a line, the other readings its
recogniser found likely (rapid_worker.word_readings). The ones worth searching
(:func:`worth_keeping`) go with the word: with the RapidOCR word of an appended
line, or with the Tesseract word that it confirms. They are indexed apart from
the first readings and ranked below them (archive/index.py).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence

from scanarchive.ocr.document import Word
from scanarchive.ocr.rapidocr import Line

#: Block numbers of appended second-engine lines start here (Tesseract's are small).
EXTRA_BLOCK = 10_000

_EDGE = re.compile(r"^\W+|\W+$")
#: RapidOCR's model also reads Chinese; on Latin-script notes such a "word" is a misreading of a scribble.
_CJK = re.compile("[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")

Box = tuple[int, int, int, int]  # left, top, width, height
Reading = tuple[str, float]

#: Other readings kept for a word: at least this probability (share of the word's beam, rapid_worker) ...
ALTERNATIVE_FLOOR = 0.05
#: ... at least this many letters ...
ALTERNATIVE_LETTERS = 3
#: ... and at most this many a word, the likeliest. Chosen on the real handwriting set `poilus`
#: (bench/recall_real.py), never on the set reported as held out (`peraire`).
ALTERNATIVES = 3


def norm(text: str) -> str:
    return _EDGE.sub("", text).casefold()


def fold(text: str) -> str:
    """Case and accents set aside, as the search index compares words (FTS5 `remove_diacritics 2`)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def search_form(text: str) -> str:
    """A reading as the search index sees it: without surrounding punctuation, case or accents."""
    return fold(_EDGE.sub("", text))


def worth_keeping(first: str, readings: Sequence[Reading]) -> tuple[Reading, ...]:
    """The other readings of a word worth indexing: likely enough (:data:`ALTERNATIVE_FLOOR`), with
    :data:`ALTERNATIVE_LETTERS` letters or more, not the first reading nor one another once case, accents and
    surrounding punctuation are set aside (their probabilities then add up), not Chinese; at most
    :data:`ALTERNATIVES`, likeliest first."""
    seen = {search_form(first)}
    kept: dict[str, tuple[str, float]] = {}
    for text, prob in readings:
        key = search_form(text)
        if key in seen or sum(c.isalpha() for c in key) < ALTERNATIVE_LETTERS or _CJK.search(text):
            if key in kept:
                kept[key] = (kept[key][0], kept[key][1] + prob)
            continue
        seen.add(key)
        kept[key] = (text, prob)
    ranked = sorted(kept.values(), key=lambda r: r[1], reverse=True)
    return tuple((text, round(prob, 4)) for text, prob in ranked if prob >= ALTERNATIVE_FLOOR)[:ALTERNATIVES]


def split_line(line: Line) -> list[tuple[str, tuple[float, float, float, float]]]:
    """A line's words with boxes (x, y, w, h) spread over the line by character position."""
    x0, y0, x1, y1 = line.box
    text = line.text
    total = max(1, len(text))
    out = []
    for match in re.finditer(r"\S+", text):
        left = x0 + (x1 - x0) * match.start() / total
        right = x0 + (x1 - x0) * match.end() / total
        out.append((match.group(), (left, y0, right - left, y1 - y0)))
    return out


def _overlap(a: Box, b: Box) -> float:
    """Share of the smaller box covered by the other."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    return (w * h) / max(1, min(a[2] * a[3], b[2] * b[3]))


def combine(a: float, b: float) -> float:
    """Two independent confidences (0-100) that agree."""
    return 100.0 - (100.0 - a) * (100.0 - b) / 100.0


def merge(
    tesseract: Sequence[Word],
    rapid: Sequence[Line],
    to_page: Callable[[tuple[float, float, float, float]], Box],
) -> list[Word]:
    """Tesseract words (already in page pixels) + RapidOCR lines (in OCR pixels)."""
    words = list(tesseract)
    extra: list[Word] = []
    for number, line in enumerate(sorted(rapid, key=lambda ln: (ln.box[1], ln.box[0]))):
        line_words = []
        adds_something = False
        parts = split_line(line)
        others = line.alternatives if len(line.alternatives) == len(parts) else ((),) * len(parts)
        for (text, ocr_box), readings in zip(parts, others, strict=True):
            if _CJK.search(text):
                continue
            alternatives = worth_keeping(text, readings)
            box = to_page(ocr_box)
            key = norm(text)
            match = None
            if key:
                for i, word in enumerate(words):
                    if norm(word.text) == key and _overlap(word.box, box) > 0.3:
                        match = i
                        break
            if match is not None:
                word = words[match]
                if "r" not in word.source:
                    words[match] = Word(
                        word.text,
                        combine(word.conf, line.score * 100),
                        word.box,
                        word.line,
                        word.source + "r",
                        word.alternatives or alternatives,
                    )
            elif key:
                adds_something = True
            line_words.append(Word(text, line.score * 100, box, (EXTRA_BLOCK + number, 1, 1), "r", alternatives))
        if adds_something:
            extra.extend(line_words)
    return words + extra
