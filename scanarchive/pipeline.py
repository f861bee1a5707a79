"""One scan file -> one sealed, verified record. The stages, in order:

    check   magic bytes, size, pixel and page limits          (pages.load)
    build   the record's PDF, lossless                        (pages.pdf)
    ocr     every page, in parallel engine processes           (ocr)
    seal    one random key per record, STREAM AEAD             (crypto.seal)
    store   blob temp -> fsync -> rename; catalog transaction  (archive)
    verify  re-read the blob from disk and decrypt it
    release only now delete the source (unless kept)

Needs only the archive's public recipient: never the passphrase.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from scanarchive.archive.catalog import RecordRow, now_utc
from scanarchive.archive.layout import Archive, record_context
from scanarchive.archive.store import fsync_dir
from scanarchive.config import IngestSettings
from scanarchive.crypto import keys, seal
from scanarchive.errors import InputRejected, IntegrityError, TransientError
from scanarchive.ocr import engine, tesseract
from scanarchive.pages import load, pdf, poppler
from scanarchive.tempdir import private_tempdir

log = logging.getLogger(__name__)


@dataclass
class IngestResult:
    record_id: str
    page_count: int
    ocr_failed_pages: list[int] = field(default_factory=list)
    duplicate: bool = False
    source_removed: bool = False
    seconds: float = 0.0
    ocr_seconds: float = 0.0


def read_source(path: Path) -> bytes:
    """Read a scan once; refuse anything but a regular file."""
    try:
        st = path.lstat()
    except FileNotFoundError as exc:
        raise InputRejected("the file does not exist", hint="Check the file name.") from exc
    if not stat.S_ISREG(st.st_mode):
        raise InputRejected("it is not a regular file (a folder, link or device)")
    try:
        return path.read_bytes()
    except PermissionError as exc:
        raise InputRejected("the file cannot be read (permission denied)") from exc


def recognise_with_tesseract(settings: IngestSettings, tmpdir: Path) -> engine.PageRecogniser:
    name = tesseract.version()  # also fails early, with EngineMissing, if Tesseract is not installed

    def recognise(number: int, source: engine.PageSource) -> engine.PageText:
        try:
            png = source(str(tmpdir))
            words = tesseract.recognise(
                png, languages=settings.ocr_languages, timeout=settings.ocr_timeout_seconds, tmpdir=str(tmpdir)
            )
        except engine.OcrFailed as exc:
            log.warning("page %d: OCR failed (%s); the page is archived and flagged", number, exc.message)
            return engine.PageText(number, "timeout" if exc.timed_out else "failed", exc.message, name)
        except poppler.PageRenderError as exc:
            log.warning("page %d: %s; the page is archived and flagged", number, exc.message)
            return engine.PageText(number, "failed", exc.message, name)
        return engine.PageText(number, "ok", "", name, words)

    return recognise


def ingest_file(
    archive: Archive,
    path: Path,
    *,
    client: str | None = None,
    session_date: str | None = None,
    record_class: str = "progress",
    keep_source: bool = False,
    recogniser: engine.PageRecogniser | None = None,
    retry_if_ocr_timed_out: bool = False,
) -> IngestResult:
    """Seal one scan file as one record. `retry_if_ocr_timed_out` (the watcher's
    first attempts) turns "OCR timed out on every page" into a TransientError,
    so an overloaded machine does not archive a whole scan as unsearchable."""
    started = time.perf_counter()
    settings = archive.config.ingest
    data = read_source(path)
    source_sha = hashlib.sha256(data).hexdigest()

    existing = archive.catalog.by_source(source_sha)
    if existing is not None:
        # Already sealed and verified once: never a second record for the same scan.
        verify_stored(archive, existing)
        removed = _release(path, source_sha, keep_source)
        log.info("already archived as record %s; no second record made", existing.id)
        return IngestResult(existing.id, existing.page_count, list(existing.ocr_failed_pages), True, removed)

    scan = load.check(data, settings)  # check
    if scan.kind == "pdf":
        poppler.executable()  # a missing engine is a setup problem: stop before anything is written
    record_pdf = pdf.build_pdf(scan, settings)  # build
    ocr_started = time.perf_counter()
    with private_tempdir() as tmpdir:  # ocr
        pages = engine.run_pages(
            load.iter_ocr_pages(scan, settings, settings.ocr_timeout_seconds),
            recogniser or recognise_with_tesseract(settings, tmpdir),
            settings.effective_jobs,
        )
    ocr_seconds = time.perf_counter() - ocr_started
    if retry_if_ocr_timed_out and pages and all(p.status == "timeout" for p in pages):
        raise TransientError("OCR timed out on every page; the scan will be tried again later")
    failed = [p.page for p in pages if p.status != "ok"]
    ocr_doc = engine.to_json(pages, sorted({p.engine for p in pages if p.engine}))

    record_id = str(uuid.uuid4())  # seal
    record_key = os.urandom(32)
    blob = seal.seal(record_key, uuid.UUID(record_id).bytes, {"pdf": record_pdf, "ocr": ocr_doc}, os.urandom(16))
    wrapped = keys.wrap(record_key, archive.config.recipient, record_context(record_id))
    digest = archive.store.put(blob)  # store
    row = RecordRow(
        seq=0,
        id=record_id,
        client_code=client,
        session_date=session_date,
        record_class=record_class,
        page_count=scan.page_count,
        ocr_failed_pages=tuple(failed),
        source_sha256=source_sha,
        source_kind=scan.kind,
        blob_sha256=digest,
        blob_size=len(blob),
        created_at=now_utc(),
        status="sealed",
    )
    with archive.catalog.transaction():
        archive.catalog.add_record(row, archive.config.recipient.key_id, wrapped)

    try:  # verify
        _verify_fresh(archive, digest, record_key, record_id, record_pdf, ocr_doc)
    except IntegrityError:
        with archive.catalog.transaction():
            archive.catalog.db.execute("DELETE FROM records WHERE id = ?", (record_id,))
        archive.store.delete(digest)
        raise
    removed = _release(path, source_sha, keep_source)  # release
    seconds = time.perf_counter() - started
    log.debug("record %s sealed: %d pages, %.1f s", record_id, scan.page_count, seconds)
    return IngestResult(record_id, scan.page_count, failed, False, removed, seconds, ocr_seconds)


def _verify_fresh(
    archive: Archive, digest: str, record_key: bytes, record_id: str, record_pdf: bytes, ocr_doc: bytes
) -> None:
    """Re-read the blob from disk; it must hash to its name and decrypt to what was sealed."""
    if archive.store.hash_of(digest) != digest:
        raise IntegrityError(f"record {record_id}: the stored blob does not match what was written")
    sections = seal.open_blob(archive.store.get(digest), record_key, uuid.UUID(record_id).bytes)
    if sections.get("pdf") != record_pdf or sections.get("ocr") != ocr_doc:
        raise IntegrityError(f"record {record_id}: the stored blob does not decrypt to what was sealed")


def verify_stored(archive: Archive, record: RecordRow) -> None:
    """Without the key: the blob exists and hashes to the name the catalog gives it."""
    try:
        actual = archive.store.hash_of(record.blob_sha256)
    except FileNotFoundError as exc:
        raise IntegrityError(f"record {record.id}: its blob is missing from objects/") from exc
    if actual != record.blob_sha256:
        raise IntegrityError(f"record {record.id}: its blob is damaged (hash mismatch)")


def _release(path: Path, source_sha: str, keep_source: bool) -> bool:
    """Delete the source, but only if it is still exactly the bytes that were archived."""
    if keep_source:
        return False
    try:
        current = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return False
    if current != source_sha:
        log.warning("the source changed while it was being archived; it was left in place")
        return False
    try:
        path.unlink()
        fsync_dir(path.parent)
    except OSError as exc:
        raise TransientError(f"the record is archived, but {path} could not be removed ({exc.strerror})") from exc
    return True
