"""The OCR ensemble: every configured engine reads each page; their words are merged.

Per page: render → prepare (on a note sheet, whiten what it printed; crop to the
writing, scale; the archived image is untouched) → Tesseract → RapidOCR (if configured and installed) → merge. A page
is "ok" when at least one engine read it (an engine that failed is named in the
page's reason); "timeout" or "failed" only when every engine did.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from scanarchive.config import IngestSettings
from scanarchive.ocr import document, engine, mask, merge, prepare, rapidocr, tesseract
from scanarchive.pages import poppler

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineStatus:
    configured: tuple[str, ...]
    running: tuple[str, ...]  # configured and installed
    missing: tuple[str, ...]  # configured but not installed

    @property
    def recall_reduced(self) -> bool:
        return bool(self.missing)

    def describe(self) -> str:
        if not self.missing:
            return ", ".join(self.running)
        return (
            f"{', '.join(self.running)} ({', '.join(self.missing)} is configured but not installed: "
            "fewer handwritten words will be found)"
        )


def engine_status(settings: IngestSettings) -> EngineStatus:
    missing = tuple(e for e in settings.ocr_engines if e == rapidocr.NAME and not rapidocr.available())
    running = tuple(e for e in settings.ocr_engines if e not in missing)
    return EngineStatus(settings.ocr_engines, running, missing)


@functools.lru_cache(maxsize=8)
def _warn_missing(missing: tuple[str, ...]) -> None:
    log.warning(
        "OCR engine %s is configured but not installed; notes are archived and indexed by Tesseract alone, "
        "so fewer handwritten words will be found",
        ", ".join(missing),
    )


def warn_if_missing(settings: IngestSettings) -> EngineStatus:
    """Say once per process (logged) when a configured engine is not installed. The ingest's own
    process calls it: the parser child's log goes nowhere."""
    status = engine_status(settings)
    if status.missing:
        _warn_missing(status.missing)
    return status


def recogniser(
    settings: IngestSettings, tmpdir: Path, printed: Mapping[int, Sequence[mask.Region]] | None = None
) -> engine.PageRecogniser:
    """The page reader for one ingest (fails early, with EngineMissing, if Tesseract is not installed).
    `printed`: per page number, where its note sheet printed text (ingest.identify): never read as a note."""
    tesseract_name = tesseract.version()
    status = warn_if_missing(settings)
    # One RapidOCR worker per two OCR jobs: a worker holds ~300 MB of models and buffers, and on two cores
    # one worker (about 1.1 s of CPU a page) keeps pace with Tesseract and the rest of the pipeline on the other.
    workers = max(1, settings.effective_jobs // 2)
    rapid = rapidocr.pool(workers) if rapidocr.NAME in status.running else None
    timeout = settings.ocr_timeout_seconds

    def recognise(number: int, source: engine.PageSource) -> document.PageText:
        try:
            regions = (printed or {}).get(number, ())
            prepared = prepare.for_ocr(source(str(tmpdir)), printed=regions)
        except poppler.PageRenderError as exc:
            log.warning("page %d: %s; the page is archived and flagged", number, exc.message)
            return document.PageText(number, "failed", exc.message, tesseract_name)
        names = [tesseract_name] + ([rapidocr.version()] if rapid else [])
        if prepared.empty:
            return document.PageText(number, "ok", "", " + ".join(names))
        failures: list[tuple[str, engine.OcrFailed]] = []
        read_by: list[str] = []
        words: list[document.Word] = []
        try:
            found = tesseract.recognise(
                prepared.png, languages=settings.ocr_languages, timeout=timeout, tmpdir=str(tmpdir)
            )
            words = [document.Word(w.text, w.conf, prepared.to_page(w.box), w.line, "t") for w in found]
            read_by.append(tesseract_name)
        except engine.OcrFailed as exc:
            failures.append(("Tesseract", exc))
        if rapid is not None:
            try:
                lines = rapid.recognise(prepared.png, timeout)
                words = _without_joined(merge.merge(words, lines, prepared.to_page))
                read_by.append(rapidocr.version())
            except engine.OcrFailed as exc:
                failures.append(("RapidOCR", exc))
        reason = "; ".join(f"{who}: {exc.message}" for who, exc in failures)
        if failures and read_by:
            log.warning("page %d: %s; the other engine's reading is indexed", number, reason)
        elif failures:
            log.warning("page %d: OCR failed (%s); the page is archived and flagged", number, reason)
        if not read_by:
            timed_out = all(exc.timed_out for _, exc in failures)
            return document.PageText(number, "timeout" if timed_out else "failed", reason, " + ".join(names))
        return document.PageText(number, "ok", reason, " + ".join(read_by), mask.outside(words, regions, prepared.size))

    return recognise


def _without_joined(words: list[document.Word]) -> list[document.Word]:
    """Drop a second-engine line that adds only words Tesseract read apart: RapidOCR often reads a written line
    without its spaces ("BROTHERHOLIDAY" over Tesseract's "BROTHER" "HOLIDAY"), and such a run-together word
    would only clutter snippets. A line with any word new to Tesseract is kept whole (merge.py says why)."""
    first = [w for w in words if w.line[0] < merge.EXTRA_BLOCK]
    lines: dict[tuple[int, int, int], list[document.Word]] = {}
    for word in words:
        if word.line[0] >= merge.EXTRA_BLOCK:
            lines.setdefault(word.line, []).append(word)
    joined = {line for line, found in lines.items() if all(_read_apart(w, first) for w in found)}
    return [w for w in words if w.line not in joined]


def _read_apart(word: document.Word, first: list[document.Word]) -> bool:
    """Whether Tesseract read this word, alone or as the words that make it up (left to right)."""
    key = merge.norm(word.text)
    if not key:
        return True
    under = sorted((w for w in first if _covered(w.box, word.box)), key=lambda w: w.box[0])
    return any(merge.norm(w.text) == key for w in under) or "".join(merge.norm(w.text) for w in under) == key


def _covered(inner: tuple[int, int, int, int], outer: tuple[int, int, int, int]) -> bool:
    """Most of `inner` lies within `outer`."""
    w = min(inner[0] + inner[2], outer[0] + outer[2]) - max(inner[0], outer[0])
    h = min(inner[1] + inner[3], outer[1] + outer[3]) - max(inner[1], outer[1])
    return w > 0 and h > 0 and w * h >= 0.5 * max(1, inner[2] * inner[3])
