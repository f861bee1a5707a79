"""One scan file -> one or more sealed, verified records. The stages, in order:

    read      once, regular files only; a duplicate (same SHA-256) stops here, never parsed
    check     magic bytes, size, pixel and page limits              (pages.load)       \
    look      each page once: sheet code, quality, blank            (pages.sheets, pages.qc)  | ingest.analyse,
    identify  split where a new sheet starts; sheet > file name > unfiled   (ingest.identify) | in the parser
    ocr       every kept page, in parallel engine processes          (ocr)              | child (Landlock,
    build     each record's PDF, lossless                            (pages.pdf)       /  no network)
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
import shlex
import stat
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scanarchive.archive import sealed
from scanarchive.archive.catalog import RecordRow
from scanarchive.archive.layout import Archive
from scanarchive.archive.sealed import record_context
from scanarchive.clock import now_utc
from scanarchive.crypto import keys
from scanarchive.errors import InputRejected, IntegrityError, TransientError
from scanarchive.fsio import fsync_dir, open_regular, read_fd, stream_fd
from scanarchive.ingest import analyse, identify
from scanarchive.ocr import engine
from scanarchive.pages import qc

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


Announce = Callable[["IngestResult"], None]
Step = analyse.Step
OnStep = analyse.OnStep
#: The stages ingest_file reports (`Step.stage`): "read" (opened, hashed), "duplicate" (found, checked), the
#: analysis's analyse.STEPS, then "seal" (sealed, stored), "catalog" (committed), "verify" (read back),
#: "release" (source deleted or kept). Counts and seconds only, never content.
STAGES = ("read", "duplicate", *analyse.STEPS, "seal", "catalog", "verify", "release")


@dataclass
class _Prepared:
    """One record of the file, sealed and stored but not yet in the catalog."""

    row: RecordRow
    wrapped: bytes  # its key, wrapped to the recipient
    record_key: bytes
    plaintext_sha256: dict[str, bytes]  # of each section, taken while sealing: read back against these
    outcome: identify.RecordOutcome
    page_quality: list[qc.PageQc]


def _open_checked(path: Path, max_bytes: int | None) -> int:
    try:
        st = path.lstat()
    except FileNotFoundError as exc:
        raise InputRejected("the file does not exist", hint="Check the file name.") from exc
    if stat.S_ISDIR(st.st_mode):  # refused, not walked: a folder can hold more than scans (docs/errors.md)
        folder = shlex.quote(str(path))
        raise InputRejected(
            "it is a folder, not a scan file; nothing in it was read",
            hint=f"Give the scan files themselves, for example: scanarchive ingest {folder}/*.pdf "
            f"(or let the watcher take the whole folder: scanarchive watch --drop {folder} --once).",
        )
    if stat.S_ISLNK(st.st_mode):
        raise InputRejected(
            "it is a symbolic link; a link is never followed",
            hint="Give the scan file the link points to.",
        )
    if not stat.S_ISREG(st.st_mode):
        raise InputRejected(
            "it is not a regular file (a device, pipe or socket)",
            hint="Save the scan as a file (PDF, TIFF, PNG or JPEG) and give that file.",
        )
    try:
        fd, _ = open_regular(path, max_bytes)
    except FileNotFoundError as exc:
        raise InputRejected("the file does not exist", hint="Check the file name.") from exc
    return fd


def read_source(path: Path, max_bytes: int | None = None) -> bytes:
    """Read a scan once; refuse anything but a regular file, and one over `max_bytes` before reading.

    Opened once with O_NOFOLLOW|O_NONBLOCK (a link is never followed, a pipe never blocks); the type,
    size and allocated blocks are checked by fstat on that descriptor, and only then is it read."""
    fd = _open_checked(path, max_bytes)
    try:
        return read_fd(fd, max_bytes)
    finally:
        os.close(fd)


def open_source(path: Path, max_bytes: int | None = None) -> analyse.Source:
    """Open a scan as :func:`read_source` does and hash it in blocks, without holding it; the caller closes
    the descriptor. The analysis reads it from that descriptor and hashes it again (analyse.Source)."""
    fd = _open_checked(path, max_bytes)
    try:
        digest, size = stream_fd(fd, limit=max_bytes)
    except BaseException:
        os.close(fd)
        raise
    return analyse.Source(fd, size, digest)


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
    announce: Announce | None = None,
    on_step: OnStep | None = None,
    stop: threading.Event | None = None,
) -> IngestResult:
    """Seal one scan file as one record per session found in it.

    `announce` (the caller's audit entry) is called with the result once every record is sealed,
    stored and verified, and BEFORE the source is deleted: a source is never gone without its
    entry; if `announce` raises, the source stays. The result's `source_removed` then says whether
    removal is about to be attempted; it is updated with what happened.

    `client`/`session_date`/`record_class` (from the command line) apply to pages
    without a sheet code; a sheet code that disagrees with them leaves the record
    unfiled rather than guessing. `retry_if_ocr_timed_out` (the watcher's first
    attempts) turns "OCR timed out on every page" into a TransientError.

    `on_step` hears each stage as it ends (:data:`STAGES`; counts and seconds, never content). Once `stop` is
    set, a file not yet being sealed stops with errors.Interrupted and nothing of it is written; one being
    sealed is finished (sealed, committed, verified, announced, released) first.
    """
    started = time.perf_counter()
    settings = archive.config.ingest
    say = on_step or (lambda _step: None)
    mark = time.perf_counter()

    def lap() -> float:
        nonlocal mark
        now = time.perf_counter()
        seconds, mark = now - mark, now
        return seconds

    if stop is not None and stop.is_set():
        raise analyse.stopped()
    # Never held whole here: hashed in blocks, then streamed to the parser child (and hashed again on the way).
    source = open_source(path, settings.max_file_mb * 1024 * 1024)
    source_sha = source.sha256
    try:
        say(Step("read", lap()))
        existing = archive.catalog.all_by_source(source_sha)
        if existing:
            # Already sealed (all records of a file are committed together): never a second copy.
            for record in existing:
                sealed.check(archive.store, record.blob_sha256, record.id)
            say(Step("duplicate", lap(), len(existing), len(existing)))
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
            return _announce_and_release(
                IngestResult(outcomes, duplicate=True, source_removed=not keep_source),
                path,
                source_sha,
                announce,
                lambda: say(Step("release", lap())),
            )

        name_client, name_date = identify.filename_metadata(
            archive.config.identify.filename_pattern, source_name or path.name
        )  # in this process: the parser child never sees a file name
        request = analyse.Request(
            settings,
            archive.catalog.sheet_key(),
            archive.config.archive8,
            client,
            session_date,
            record_class,
            name_client,
            name_date,
            retry_if_ocr_timed_out,
        )
        # check, look, identify, ocr, build: in the parser child
        found = analyse.run(request, source, recogniser, on_step=on_step, stop=stop)
    finally:
        os.close(source.fd)
    lap()
    if stop is not None and stop.is_set():  # the last moment to stop with nothing written
        raise analyse.stopped()

    prepared: list[_Prepared] = []
    for analysed in found.records:
        outcome = analysed.outcome
        outcome.record_id = str(uuid.uuid4())  # chosen here, never by the child
        record_key = os.urandom(32)  # seal, store
        sections = {"pdf": analysed.pdf, "ocr": analysed.ocr_doc}
        written = sealed.seal_into(archive.store, record_key, outcome.record_id, sections)
        row = RecordRow(
            seq=0,
            id=outcome.record_id,
            client_code=outcome.client_code,
            session_date=outcome.session_date,
            record_class=outcome.record_class,
            page_count=len(outcome.source_pages),
            ocr_failed_pages=tuple(outcome.ocr_failed_pages),
            source_sha256=source_sha,
            source_kind=found.kind,
            blob_sha256=written.digest,
            blob_size=written.size,
            created_at=now_utc(),
            status="sealed",
            source_pages=_format_pages(outcome.source_pages),
            blank_pages=analysed.blank,
            identified_by=outcome.identified_by,
        )
        wrapped = keys.wrap(record_key, archive.sealing_recipient(), record_context(outcome.record_id))
        prepared.append(_Prepared(row, wrapped, record_key, written.plaintext_sha256, outcome, analysed.quality))

    say(Step("seal", lap(), len(prepared), _file_pages(found)))
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

    say(Step("catalog", lap(), len(prepared), _file_pages(found)))
    try:  # verify
        for item in prepared:
            sealed.read_back(archive.store, item.row.blob_sha256, item.record_key, item.row.id, item.plaintext_sha256)
    except IntegrityError:
        with archive.catalog.transaction():
            for item in prepared:
                archive.catalog.db.execute("DELETE FROM records WHERE id = ?", (item.row.id,))
        for item in prepared:
            archive.store.delete(item.row.blob_sha256)
        raise
    say(Step("verify", lap(), len(prepared), _file_pages(found)))
    for item in prepared:
        log.debug("record %s sealed: %d pages", item.outcome.record_id, len(item.outcome.source_pages))
    outcomes = [item.outcome for item in prepared]
    result = IngestResult(
        outcomes,
        False,
        not keep_source,
        time.perf_counter() - started,
        found.ocr_seconds,
        found.blank_pages,
        found.quality,
        found.verdict,
    )
    return _announce_and_release(result, path, source_sha, announce, lambda: say(Step("release", lap())))  # release


def _file_pages(found: analyse.Analysis) -> int:
    """Pages of the scanned file (kept and blank)."""
    return len(found.quality)


def _announce_and_release(
    result: IngestResult, path: Path, source_sha: str, announce: Announce | None, released: Callable[[], None]
) -> IngestResult:
    if announce is not None:
        announce(result)
    if result.source_removed:
        result.source_removed = _release(path, source_sha)
    released()
    return result


def _format_pages(pages: list[int]) -> str:
    return ",".join(str(p) for p in pages)


def _parse_pages(text: str, count: int) -> list[int]:
    return [int(p) for p in text.split(",") if p] or list(range(1, count + 1))


def _release(path: Path, source_sha: str) -> bool:
    """Delete the source, but only if it is still exactly the bytes that were archived (hashed in blocks)."""
    try:
        with path.open("rb") as fp:
            current = hashlib.file_digest(fp, "sha256").hexdigest()
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
