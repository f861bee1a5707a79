"""One scan file -> one or more sealed, verified records. The stages, in order:

    check     magic bytes, size, pixel and page limits              (pages.load)
    look      each page once: sheet code, quality, blank            (pages.sheets, pages.qc)
    identify  split where a new sheet starts; sheet > file name > unfiled   (ingest.identify)
    ocr       every kept page, in parallel engine processes          (ocr)
    build     each record's PDF, lossless                            (pages.pdf)
    seal      one random key per record, STREAM AEAD                 (crypto.seal)
    store     blobs temp -> fsync -> rename; ONE catalog transaction for all records of the file
    verify    re-read every blob from disk and decrypt it
    release   only now delete the source (unless kept)

Needs only the archive's public recipient: never the passphrase. All records
of one file are committed together, so a crash can never leave half a stack
archived and the rest forgotten (re-ingest finds the file by its SHA-256).
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from scanarchive.archive import sealed
from scanarchive.archive.catalog import RecordRow
from scanarchive.archive.layout import Archive
from scanarchive.archive.sealed import record_context
from scanarchive.clock import now_utc
from scanarchive.crypto import keys
from scanarchive.errors import InputRejected, IntegrityError, TransientError
from scanarchive.fsio import fsync_dir, open_regular, read_fd
from scanarchive.ingest import identify
from scanarchive.ocr import document, engine, ensemble
from scanarchive.pages import load, pdf, poppler, qc, sheets
from scanarchive.tempdir import private_tempdir

log = logging.getLogger(__name__)


@dataclass
class IngestResult:
    records: list[identify.RecordOutcome]
    duplicate: bool = False
    source_removed: bool = False
    seconds: float = 0.0
    ocr_seconds: float = 0.0
    blank_pages: list[int] = field(default_factory=list)
    quality: list[qc.PageQc] = field(default_factory=list)
    verdict: str = ""

    @property
    def record_id(self) -> str:
        return self.records[0].record_id

    @property
    def page_count(self) -> int:
        return sum(len(r.source_pages) for r in self.records)

    @property
    def ocr_failed_pages(self) -> list[int]:
        return [p for r in self.records for p in r.ocr_failed_pages]

    def audit_fields(self) -> dict[str, object]:
        """What the audit log keeps of one ingest (ids, codes, counts; never content or file names)."""
        return {
            "records": [r.record_id for r in self.records],
            "clients": sorted({r.client_code for r in self.records if r.client_code}),
            "pages": self.page_count,
            "duplicate": self.duplicate,
        }


@dataclass
class _Prepared:
    """One record of the file, sealed and stored but not yet in the catalog."""

    row: RecordRow
    wrapped: bytes  # its key, wrapped to the recipient
    record_key: bytes
    record_pdf: bytes
    ocr_doc: bytes
    outcome: identify.RecordOutcome
    page_quality: list[qc.PageQc]


def read_source(path: Path, max_bytes: int | None = None) -> bytes:
    """Read a scan once; refuse anything but a regular file, and one over `max_bytes` before reading.

    Opened once with O_NOFOLLOW|O_NONBLOCK (a link is never followed, a pipe never blocks); the type,
    size and allocated blocks are checked by fstat on that descriptor, and only then is it read."""
    try:
        st = path.lstat()
    except FileNotFoundError as exc:
        raise InputRejected("the file does not exist", hint="Check the file name.") from exc
    if not stat.S_ISREG(st.st_mode):
        raise InputRejected("it is not a regular file (a folder, link or device)")
    try:
        fd, _ = open_regular(path, max_bytes)
    except FileNotFoundError as exc:
        raise InputRejected("the file does not exist", hint="Check the file name.") from exc
    try:
        return read_fd(fd, max_bytes)
    finally:
        os.close(fd)


def ingest_file(
    archive: Archive,
    path: Path,
    *,
    client: str | None = None,
    session_date: str | None = None,
    record_class: str | None = None,
    keep_source: bool = False,
    recogniser: engine.PageRecogniser | None = None,
    retry_if_ocr_timed_out: bool = False,
    source_name: str | None = None,
) -> IngestResult:
    """Seal one scan file as one record per session found in it.

    `client`/`session_date`/`record_class` (from the command line) apply to pages
    without a sheet code; a sheet code that disagrees with them leaves the record
    unfiled rather than guessing. `retry_if_ocr_timed_out` (the watcher's first
    attempts) turns "OCR timed out on every page" into a TransientError.
    """
    started = time.perf_counter()
    settings = archive.config.ingest
    data = read_source(path, settings.max_file_mb * 1024 * 1024)
    source_sha = hashlib.sha256(data).hexdigest()

    existing = archive.catalog.all_by_source(source_sha)
    if existing:
        # Already sealed (all records of a file are committed together): never a second copy.
        for record in existing:
            sealed.check(archive.store, record.blob_sha256, record.id)
        removed = _release(path, source_sha, keep_source)
        log.info("already archived as record %s; no second record made", existing[0].id)
        outcomes = [
            identify.RecordOutcome(
                r.id,
                _parse_pages(r.source_pages, r.page_count),
                r.client_code,
                r.session_date,
                r.record_class,
                r.identified_by,
                list(r.ocr_failed_pages),
            )
            for r in existing
        ]
        return IngestResult(outcomes, duplicate=True, source_removed=removed)

    scan = load.check(data, settings)  # check
    if scan.kind == "pdf":
        poppler.executable()  # a missing engine is a setup problem: stop before anything is written
    looks = identify.look_at_pages(archive, scan)  # look
    groups = identify.group_pages(looks)  # identify
    if not groups:
        raise InputRejected("every page of the scan is blank", hint="Check the scanner fed the written side.")
    blank = [look.number for look in looks if look.quality.blank]
    name_client, name_date = identify.filename_metadata(
        archive.config.identify.filename_pattern, source_name or path.name
    )

    kept = [n for g in groups for n in g.pages]
    orientation = {look.number: look.code.orientation for look in looks if look.code.status is sheets.QrStatus.VALID}
    ocr_started = time.perf_counter()
    with private_tempdir() as tmpdir:  # ocr
        page_texts = engine.run_pages(
            load.iter_ocr_pages(scan, settings, settings.ocr_timeout_seconds, only=set(kept), turn=orientation),
            recogniser or ensemble.recogniser(settings, tmpdir),
            settings.effective_jobs,
        )
    ocr_seconds = time.perf_counter() - ocr_started
    if retry_if_ocr_timed_out and page_texts and all(p.status == "timeout" for p in page_texts):
        raise TransientError("OCR timed out on every page; the scan will be tried again later")
    by_page = {p.page: p for p in page_texts}
    for look in looks:
        if look.boxes and look.number in by_page:
            by_page[look.number].boxes = look.boxes

    prepared: list[_Prepared] = []
    quality = {look.number: look.quality for look in looks}
    whole_file = len(groups) == 1 and not blank
    for group in groups:
        outcome = identify.metadata(group, client, session_date, record_class, name_client, name_date)
        record_pdf = pdf.build_pdf(scan, settings, None if whole_file else group.pages)  # build
        texts = []
        for position, number in enumerate(group.pages, start=1):
            text = by_page[number]
            texts.append(document.PageText(position, text.status, text.reason, text.engine, text.words, text.boxes))
        outcome.ocr_failed_pages = [t.page for t in texts if t.status != "ok"]
        ocr_doc = document.to_json(texts, sorted({t.engine for t in texts if t.engine}))
        record_key = os.urandom(32)  # seal, store
        digest, size = sealed.write(archive.store, record_key, outcome.record_id, {"pdf": record_pdf, "ocr": ocr_doc})
        row = RecordRow(
            seq=0,
            id=outcome.record_id,
            client_code=outcome.client_code,
            session_date=outcome.session_date,
            record_class=outcome.record_class,
            page_count=len(group.pages),
            ocr_failed_pages=tuple(outcome.ocr_failed_pages),
            source_sha256=source_sha,
            source_kind=scan.kind,
            blob_sha256=digest,
            blob_size=size,
            created_at=now_utc(),
            status="sealed",
            source_pages=_format_pages(group.pages),
            blank_pages=group.blank,
            identified_by=outcome.identified_by,
        )
        wrapped = keys.wrap(record_key, archive.config.recipient, record_context(outcome.record_id))
        prepared.append(
            _Prepared(row, wrapped, record_key, record_pdf, ocr_doc, outcome, [quality[n] for n in group.pages])
        )

    with archive.catalog.transaction():  # one transaction: the whole stack or nothing
        for item in prepared:
            archive.catalog.add_record(item.row, archive.config.recipient.key_id, item.wrapped)
            for position, page_qc in enumerate(item.page_quality, start=1):
                archive.catalog.add_page_qc(
                    item.row.id,
                    position,
                    page_qc.page,
                    page_qc.dpi,
                    page_qc.contrast,
                    page_qc.skew,
                    page_qc.problems,
                    page_qc.warnings,
                )

    try:  # verify
        for item in prepared:
            sections = {"pdf": item.record_pdf, "ocr": item.ocr_doc}
            sealed.read_back(archive.store, item.row.blob_sha256, item.record_key, item.row.id, sections)
    except IntegrityError:
        with archive.catalog.transaction():
            for item in prepared:
                archive.catalog.db.execute("DELETE FROM records WHERE id = ?", (item.row.id,))
        for item in prepared:
            archive.store.delete(item.row.blob_sha256)
        raise
    removed = _release(path, source_sha, keep_source)  # release
    seconds = time.perf_counter() - started
    all_quality = [look.quality for look in looks]
    verdict = qc.summary(all_quality, len(kept))
    for item in prepared:
        log.debug("record %s sealed: %d pages", item.outcome.record_id, len(item.outcome.source_pages))
    outcomes = [item.outcome for item in prepared]
    return IngestResult(outcomes, False, removed, seconds, ocr_seconds, blank, all_quality, verdict)


def _format_pages(pages: list[int]) -> str:
    return ",".join(str(p) for p in pages)


def _parse_pages(text: str, count: int) -> list[int]:
    return [int(p) for p in text.split(",") if p] or list(range(1, count + 1))


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
