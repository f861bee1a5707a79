"""The OCR document: what one record's sealed "ocr" section holds (docs/format.md §9).

Words with their confidence, box, line and source engines (and, from version
3, the recogniser's other likely readings of the word with their
probabilities), per page, and the page's tick-box readings. Only data and its JSON form live here, so the
storage layer can read a record's words without importing any OCR engine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from scanarchive.errors import IntegrityError

OCR_FORMAT = "scanarchive-ocr"
# 2 added each word's source engines, 3 its other readings; versions 1 and 2 are still read
OCR_VERSION = 3
READ_VERSIONS = (1, 2, 3)


@dataclass(frozen=True)
class Word:
    text: str
    conf: float  # 0-100
    box: tuple[int, int, int, int]  # left, top, width, height in OCR pixels
    line: tuple[int, int, int] = (0, 0, 0)  # block, paragraph, line
    source: str = "t"  # engines that read this word: "t" Tesseract, "r" RapidOCR, "tr" both
    # other readings of the word that the recogniser found likely (text, probability 0-1), best first; they
    # are searchable (ranked below first readings) but never shown as the page's text
    alternatives: tuple[tuple[str, float], ...] = ()


@dataclass
class PageText:
    page: int
    status: str  # "ok" | "failed" | "timeout"
    reason: str = ""
    engine: str = ""
    words: list[Word] = field(default_factory=list)
    boxes: dict[str, str] = field(default_factory=dict)  # tick-box key -> ticked | empty | unclear

    @property
    def text(self) -> str:
        """The page's words, one OCR line per text line."""
        lines: list[str] = []
        current: tuple[int, int, int] | None = None
        for word in self.words:
            if word.line != current:
                lines.append(word.text)
                current = word.line
            else:
                lines[-1] += " " + word.text
        return "\n".join(lines)

    @property
    def alternatives(self) -> str:
        """The other readings of the page's words, one word's readings per line (the index's second column)."""
        return "\n".join(" ".join(text for text, _ in w.alternatives) for w in self.words if w.alternatives)


def to_json(pages: list[PageText], engines: list[str]) -> bytes:
    doc = {
        "format": OCR_FORMAT,
        "version": OCR_VERSION,
        "engines": engines,
        "pages": [
            {
                "page": p.page,
                "status": p.status,
                "reason": p.reason,
                "engine": p.engine,
                "words": [
                    [w.text, round(w.conf, 1), *w.box, *w.line, w.source]
                    + ([[[text, round(prob, 4)] for text, prob in w.alternatives]] if w.alternatives else [])
                    for w in p.words
                ],
                **({"boxes": p.boxes} if p.boxes else {}),
            }
            for p in pages
        ],
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def from_json(data: bytes) -> list[PageText]:
    try:
        doc = json.loads(data)
        if doc.get("format") != OCR_FORMAT or doc.get("version") not in READ_VERSIONS:
            raise IntegrityError("a record's OCR section has an unknown format version")
        return [
            PageText(
                page=int(p["page"]),
                status=str(p["status"]),
                reason=str(p.get("reason", "")),
                engine=str(p.get("engine", "")),
                words=[
                    Word(
                        text=str(w[0]),
                        conf=float(w[1]),
                        box=(w[2], w[3], w[4], w[5]),
                        line=(w[6], w[7], w[8]),
                        source=str(w[9]) if len(w) > 9 else "t",
                        alternatives=tuple((str(a[0]), float(a[1])) for a in w[10]) if len(w) > 10 else (),
                    )
                    for w in p["words"]
                ],
                boxes={str(k): str(v) for k, v in p.get("boxes", {}).items()},
            )
            for p in doc["pages"]
        ]
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, OverflowError, RecursionError) as exc:
        raise IntegrityError("a record's OCR section cannot be parsed") from exc
