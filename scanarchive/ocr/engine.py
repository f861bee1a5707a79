"""OCR for the search index only: page results, the per-page worker pool, and
the sealed OCR document (JSON inside the record's encrypted 'ocr' section).

A page whose OCR fails or times out is kept with a status and a reason; the
record is archived all the same and flagged.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from scanarchive.errors import IntegrityError, ScanarchiveError

OCR_FORMAT = "scanarchive-ocr"
OCR_VERSION = 2  # 2 added each word's source engines; version 1 sections are still read


class OcrFailed(ScanarchiveError):
    """OCR of one page failed; the page is flagged, the record still archived."""

    def __init__(self, message: str, *, hint: str | None = None, timed_out: bool = False) -> None:
        super().__init__(message, hint=hint)
        self.timed_out = timed_out


@dataclass(frozen=True)
class Word:
    text: str
    conf: float  # 0-100
    box: tuple[int, int, int, int]  # left, top, width, height in OCR pixels
    line: tuple[int, int, int] = (0, 0, 0)  # block, paragraph, line
    source: str = "t"  # engines that read this word: "t" Tesseract, "r" RapidOCR, "tr" both


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


PageSource = Callable[[str], bytes]  # (private temp dir) -> PNG bytes of one page
PageRecogniser = Callable[[int, PageSource], PageText]


def run_pages(pages: Iterable[tuple[int, PageSource]], recognise_page: PageRecogniser, jobs: int) -> list[PageText]:
    """OCR pages in parallel (threads that each wait on one engine process).

    At most 2×jobs pages are in flight, so a 500-page scan does not hold 500
    page images in memory at once.
    """
    results: dict[int, PageText] = {}
    in_flight: list[tuple[int, Future[PageText]]] = []
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="ocr") as pool:
        for number, source in pages:
            in_flight.append((number, pool.submit(recognise_page, number, source)))
            while len(in_flight) >= 2 * max(1, jobs):
                done_number, future = in_flight.pop(0)
                results[done_number] = future.result()
        for done_number, future in in_flight:
            results[done_number] = future.result()
    return [results[n] for n in sorted(results)]


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
                "words": [[w.text, round(w.conf, 1), *w.box, *w.line, w.source] for w in p.words],
                **({"boxes": p.boxes} if p.boxes else {}),
            }
            for p in pages
        ],
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def from_json(data: bytes) -> list[PageText]:
    try:
        doc = json.loads(data)
        if doc.get("format") != OCR_FORMAT or doc.get("version") not in (1, OCR_VERSION):
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
                    )
                    for w in p["words"]
                ],
                boxes={str(k): str(v) for k, v in p.get("boxes", {}).items()},
            )
            for p in doc["pages"]
        ]
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, OverflowError, RecursionError) as exc:
        raise IntegrityError("a record's OCR section cannot be parsed") from exc
