"""One scan file -> one or more sealed, verified records. The stages, in order:

    check     magic bytes, size, pixel and page limits              (pages.load)
    look      each page once: sheet code, quality, blank            (pages.sheets, pages.qc)
    identify  split where a new sheet starts; sheet > file name > unfiled
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
import re
import stat
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from PIL import Image

from scanarchive.archive.catalog import CLIENT_CODE, RecordRow, now_utc
from scanarchive.archive.layout import Archive, record_context
from scanarchive.archive.store import fsync_dir
from scanarchive.crypto import keys, seal
from scanarchive.errors import InputRejected, IntegrityError, ScanarchiveError, TransientError
from scanarchive.ocr import engine, ensemble
from scanarchive.pages import load, pdf, poppler, qc, sheets, templates
from scanarchive.tempdir import private_tempdir

log = logging.getLogger(__name__)


@dataclass
class PageLook:
    number: int  # in the scanned file, from 1
    code: sheets.PageCode
    quality: qc.PageQc
    boxes: dict[str, str] = field(default_factory=dict)  # tick boxes of a template sheet (clinical content)


@dataclass
class RecordOutcome:
    record_id: str
    source_pages: list[int]
    client_code: str | None
    session_date: str | None
    record_class: str
    identified_by: str  # "sheet" | "filename" | "command line" | "" (unfiled)
    ocr_failed_pages: list[int] = field(default_factory=list)  # record-relative
    note: str = ""  # why it is unfiled, if it is

    @property
    def filed(self) -> bool:
        return self.client_code is not None and self.session_date is not None


@dataclass
class IngestResult:
    records: list[RecordOutcome]
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


# --- look and identify ------------------------------------------------------------


def look_at_pages(archive: Archive, scan: load.Scan) -> list[PageLook]:
    settings = archive.config.ingest
    key = archive.catalog.sheet_key()
    archive8 = archive.config.archive_id.replace("-", "")[:8]
    looks = []
    for number, image, dpi in load.iter_analysis_pages(scan, settings, settings.ocr_timeout_seconds):
        if image is None:
            quality = qc.PageQc(number, dpi, problems=["could not be rendered for checking"])
            looks.append(PageLook(number, sheets.PageCode(sheets.QrStatus.NONE), quality))
            continue
        code = sheets.read_page_code(image, key, archive8)
        orientation = code.orientation if code.status is sheets.QrStatus.VALID else None
        if dpi is not None and dpi < qc.MIN_DPI:
            # Cameras and some apps write 72 dpi whatever the pixels: trust the pixels when they show
            # at least a letter-width page at that resolution (a true 100 dpi page scan stays refused).
            dpi = max(dpi, round(image.width / 8.5))
        look = PageLook(number, code, qc.check_page(image, number, dpi, orientation))
        if code.status is sheets.QrStatus.VALID and code.sheet is not None and code.sheet.template:
            look.boxes = _read_boxes(image, code, look.quality)
        looks.append(look)
        image.close()
    too_coarse = [look for look in looks if look.quality.dpi is not None and look.quality.dpi < qc.MIN_DPI]
    if too_coarse:
        pages = ", ".join(str(look.number) for look in too_coarse)
        raise InputRejected(
            f"scanned at {too_coarse[0].quality.dpi} dpi (page {pages}); at least {qc.MIN_DPI} dpi is needed "
            "to read a handwritten note reliably",
            hint="Scan the note again at 300 dpi; the file was not archived.",
        )
    return looks


def _read_boxes(image: Image.Image, code: sheets.PageCode, quality: qc.PageQc) -> dict[str, str]:
    """Tick boxes by the template and version the code names; unclear ones are reported, never guessed."""
    assert code.sheet is not None and code.sheet.template is not None
    template = templates.load_all().get(code.sheet.template)
    if template is None or len(code.corners) != 3:
        quality.warnings.append("its tick-box template is unknown here, so the boxes were not read")
        return {}
    x, y, side = sheets.qr_geometry(code.text)
    frame = templates.Frame((x, y), side, *code.corners)
    readings = templates.read_boxes(image, template, frame, sheets.content_top(code.text), sheets.MARGIN)
    unclear = sum(1 for r in readings if r.state == templates.UNCLEAR)
    if unclear:  # a count only: which boxes is clinical content
        quality.warnings.append(f"{unclear} tick box(es) unclear — check them on the paper (not guessed)")
    return {r.key: r.state for r in readings}


@dataclass
class _Group:
    pages: list[int]
    sheet: sheets.SheetInfo | None = None
    note: str = ""
    blank: int = 0  # blank pages (duplex backs) that followed this record's pages


def group_pages(looks: list[PageLook]) -> list[_Group]:
    """Split a stack where a new sheet starts; pages without a code continue the record before them.

    A page whose code is damaged or from another archive starts an *unfiled* record: it is
    clearly the start of some sheet, and appending it to the previous client's note would
    be a misfiling, the worst outcome here.
    """
    groups: list[_Group] = []
    current: _Group | None = None
    leading_blank = 0
    for look in looks:
        if look.quality.blank:
            if current is None:
                leading_blank += 1
            else:
                current.blank += 1
            continue
        code = look.code
        if code.status is sheets.QrStatus.VALID and code.sheet is not None:
            same = current is not None and current.sheet is not None and _same_session(current.sheet, code.sheet)
            if current is None or code.sheet.sheet == 1 or not same:
                current = _Group([], code.sheet)
                groups.append(current)
        elif code.status in (sheets.QrStatus.FOREIGN, sheets.QrStatus.INVALID):
            current = _Group([], None, f"page {look.number}: {code.status.value}")
            groups.append(current)
        elif current is None:
            current = _Group([])
            groups.append(current)
        current.pages.append(look.number)
    if groups:
        groups[0].blank += leading_blank
    return groups


def _same_session(a: sheets.SheetInfo, b: sheets.SheetInfo) -> bool:
    return (a.client_code, a.session_date, a.record_class) == (b.client_code, b.session_date, b.record_class)


def filename_metadata(pattern: str, name: str) -> tuple[str | None, str | None]:
    """(client, date) from a configured file-name pattern with named groups, or (None, None)."""
    if not pattern:
        return None, None
    match = re.search(pattern, name)
    if match is None:
        return None, None
    found = match.groupdict()
    client, day = found.get("client"), found.get("date")
    if client is not None and not CLIENT_CODE.fullmatch(client):
        client = None  # not a valid code: never file under it
    iso = None
    if day:
        digits = re.sub(r"\D", "", day)
        if len(digits) == 8:
            try:
                iso = date(int(digits[:4]), int(digits[4:6]), int(digits[6:])).isoformat()
            except ValueError:
                iso = None
    return client or None, iso


# --- the whole file ---------------------------------------------------------------


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
    data = read_source(path)
    source_sha = hashlib.sha256(data).hexdigest()

    existing = archive.catalog.all_by_source(source_sha)
    if existing:
        # Already sealed (all records of a file are committed together): never a second copy.
        for record in existing:
            verify_stored(archive, record)
        removed = _release(path, source_sha, keep_source)
        log.info("already archived as record %s; no second record made", existing[0].id)
        outcomes = [
            RecordOutcome(
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
    looks = look_at_pages(archive, scan)  # look
    groups = group_pages(looks)  # identify
    if not groups:
        raise InputRejected("every page of the scan is blank", hint="Check the scanner fed the written side.")
    blank = [look.number for look in looks if look.quality.blank]
    name_client, name_date = filename_metadata(archive.config.identify.filename_pattern, source_name or path.name)

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

    prepared = []  # (row, wrapped, key, pdf bytes, ocr bytes, outcome, qc of pages)
    quality = {look.number: look.quality for look in looks}
    whole_file = len(groups) == 1 and not blank
    for group in groups:
        outcome = _metadata(group, client, session_date, record_class, name_client, name_date)
        record_pdf = pdf.build_pdf(scan, settings, None if whole_file else group.pages)  # build
        texts = []
        for position, number in enumerate(group.pages, start=1):
            text = by_page[number]
            texts.append(engine.PageText(position, text.status, text.reason, text.engine, text.words, text.boxes))
        outcome.ocr_failed_pages = [t.page for t in texts if t.status != "ok"]
        ocr_doc = engine.to_json(texts, sorted({t.engine for t in texts if t.engine}))
        record_key = os.urandom(32)  # seal
        sealed = seal.seal(
            record_key, uuid.UUID(outcome.record_id).bytes, {"pdf": record_pdf, "ocr": ocr_doc}, os.urandom(16)
        )
        digest = archive.store.put(sealed)  # store
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
            blob_size=len(sealed),
            created_at=now_utc(),
            status="sealed",
            source_pages=_format_pages(group.pages),
            blank_pages=group.blank,
            identified_by=outcome.identified_by,
        )
        wrapped = keys.wrap(record_key, archive.config.recipient, record_context(outcome.record_id))
        prepared.append((row, wrapped, record_key, record_pdf, ocr_doc, outcome, [quality[n] for n in group.pages]))

    with archive.catalog.transaction():  # one transaction: the whole stack or nothing
        for row, wrapped, _, _, _, _, page_quality in prepared:
            archive.catalog.add_record(row, archive.config.recipient.key_id, wrapped)
            for position, page_qc in enumerate(page_quality, start=1):
                archive.catalog.add_page_qc(
                    row.id,
                    position,
                    page_qc.page,
                    page_qc.dpi,
                    page_qc.contrast,
                    page_qc.skew,
                    page_qc.problems,
                    page_qc.warnings,
                )

    try:  # verify
        for row, _, record_key, record_pdf, ocr_doc, _, _ in prepared:
            _verify_fresh(archive, row.blob_sha256, record_key, row.id, record_pdf, ocr_doc)
    except IntegrityError:
        with archive.catalog.transaction():
            for row, *_ in prepared:
                archive.catalog.db.execute("DELETE FROM records WHERE id = ?", (row.id,))
        for row, *_ in prepared:
            archive.store.delete(row.blob_sha256)
        raise
    removed = _release(path, source_sha, keep_source)  # release
    seconds = time.perf_counter() - started
    all_quality = [look.quality for look in looks]
    verdict = qc.summary(all_quality, len(kept))
    for _, _, _, _, _, outcome, _ in prepared:
        log.debug("record %s sealed: %d pages", outcome.record_id, len(outcome.source_pages))
    return IngestResult([p[5] for p in prepared], False, removed, seconds, ocr_seconds, blank, all_quality, verdict)


def ingest_files(
    root: Path, paths: list[Path], jobs: int, **options: object
) -> list[tuple[Path, IngestResult | ScanarchiveError]]:
    """Several scan files at once (one thread and one catalog connection per file in flight),
    results in input order. OCR runs in engine processes, so threads overlap the waiting.
    Files with the same bytes go one after another, so the later ones find the first's
    record instead of racing it into a duplicate."""

    def one(path: Path) -> IngestResult | ScanarchiveError:
        with Archive(root) as archive:
            try:
                return ingest_file(archive, path, **options)  # type: ignore[arg-type]
            except ScanarchiveError as exc:
                return exc

    if jobs <= 1 or len(paths) <= 1:
        return [(path, one(path)) for path in paths]
    keys = {path: _content_key(path) for path in paths}  # each file hashed once, only when files run at once
    locks = {key: threading.Lock() for key in keys.values()}

    def locked(path: Path) -> IngestResult | ScanarchiveError:
        with locks[keys[path]]:
            return one(path)

    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="ingest") as pool:
        return list(zip(paths, pool.map(locked, paths), strict=True))


def _content_key(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return f"unreadable:{path}"


def _metadata(
    group: _Group,
    client: str | None,
    session_date: str | None,
    record_class: str | None,
    name_client: str | None,
    name_date: str | None,
) -> RecordOutcome:
    record_id = str(uuid.uuid4())
    if group.sheet is not None:
        info = group.sheet
        given = (client, session_date, record_class)
        printed = (info.client_code, info.session_date, info.record_class)
        # only what the sheet states can conflict; an undated sheet takes --date
        conflict = any(v is not None and w is not None and v != w for v, w in zip(given, printed, strict=True))
        if conflict:
            return RecordOutcome(
                record_id,
                group.pages,
                None,
                None,
                info.record_class,
                "",
                note="the sheet code disagrees with --client/--date/--class; left unfiled",
            )
        day = info.session_date or session_date  # an undated sheet takes --date
        return RecordOutcome(
            record_id,
            group.pages,
            info.client_code,
            day,
            info.record_class,
            "sheet",
            note="" if day else "the sheet was undated",
        )
    if group.note:  # a damaged or foreign sheet code: never filed by a guess
        return RecordOutcome(record_id, group.pages, None, None, record_class or "progress", "", note=group.note)
    if client is not None or session_date is not None:
        return RecordOutcome(record_id, group.pages, client, session_date, record_class or "progress", "command line")
    if name_client is not None or name_date is not None:
        return RecordOutcome(record_id, group.pages, name_client, name_date, record_class or "progress", "filename")
    return RecordOutcome(
        record_id,
        group.pages,
        None,
        None,
        record_class or "progress",
        "",
        note="no sheet code and no client on the command line",
    )


def _format_pages(pages: list[int]) -> str:
    return ",".join(str(p) for p in pages)


def _parse_pages(text: str, count: int) -> list[int]:
    return [int(p) for p in text.split(",") if p] or list(range(1, count + 1))


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
