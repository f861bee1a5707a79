"""The OCR ensemble: every configured engine reads each page; their words are merged.

Per page: render → prepare (crop to the writing, scale; the archived image is
untouched) → Tesseract → RapidOCR (if configured and installed) → merge. A page
is "ok" when at least one engine read it (an engine that failed is named in the
page's reason); "timeout" or "failed" only when every engine did.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

from scanarchive.config import IngestSettings
from scanarchive.ocr import document, engine, merge, prepare, rapidocr, tesseract
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


def recogniser(settings: IngestSettings, tmpdir: Path) -> engine.PageRecogniser:
    """The page reader for one ingest (fails early, with EngineMissing, if Tesseract is not installed)."""
    tesseract_name = tesseract.version()
    status = warn_if_missing(settings)
    # One RapidOCR worker per two OCR jobs: a worker holds ~300 MB of models and buffers, and on two cores
    # one worker (about 1.1 s of CPU a page) keeps pace with Tesseract and the rest of the pipeline on the other.
    workers = max(1, settings.effective_jobs // 2)
    rapid = rapidocr.pool(workers) if rapidocr.NAME in status.running else None
    timeout = settings.ocr_timeout_seconds

    def recognise(number: int, source: engine.PageSource) -> document.PageText:
        try:
            prepared = prepare.for_ocr(source(str(tmpdir)))
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
                words = merge.merge(words, lines, prepared.to_page)
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
        return document.PageText(number, "ok", reason, " + ".join(read_by), words)

    return recognise
