"""The quarantine: scans that cannot be archived, sealed like records, with a note for a person.

A rejected scan is never left readable on the scanner's share and never
deleted: it is sealed to the archive's recipient (section "original") in
ARCHIVE/quarantine/, and a plain-text note in the drop folder's failed/ says
what went wrong and which command recovers it. The note holds no content.
"""

from __future__ import annotations

import io
import logging
import os
import re
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path

from scanarchive.archive.layout import Archive
from scanarchive.archive.sealed import quarantine_context
from scanarchive.archive.store import BlobStore
from scanarchive.clock import now_utc
from scanarchive.crypto import keys, seal
from scanarchive.errors import IntegrityError, RecordNotFound
from scanarchive.fsio import write_atomic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    id: str
    source_name: str
    source_sha256: str
    reason: str
    blob_sha256: str
    blob_size: int
    note_path: str
    created_at: str


def store(archive: Archive) -> BlobStore:
    return BlobStore(archive.root / "quarantine")


def seal_scan(archive: Archive, data: bytes, source_name: str, source_sha256: str, reason: str) -> Entry:
    """Seal the scan's bytes into the quarantine and record why; verified before returning."""
    entry_id = str(uuid.uuid4())
    key = os.urandom(32)
    blob = seal.seal(key, uuid.UUID(entry_id).bytes, {"original": data}, os.urandom(16))
    blobs = store(archive)
    blobs.root.mkdir(mode=0o700, exist_ok=True)
    digest = blobs.put(blob)
    opened = seal.open_section(io.BytesIO(blobs.get(digest)), key, uuid.UUID(entry_id).bytes, "original")
    if opened != data:
        raise IntegrityError("the quarantined copy does not read back correctly")
    wrapped = keys.wrap(key, archive.config.recipient, quarantine_context(entry_id))
    with archive.catalog.transaction() as db:
        db.execute(
            "INSERT INTO quarantine(id, source_name, source_sha256, reason, blob_sha256, blob_size, key_id, wrapped,"
            " created_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                entry_id,
                source_name,
                source_sha256,
                reason,
                digest,
                len(blob),
                archive.config.recipient.key_id,
                wrapped,
                now_utc(),
            ),
        )
    return get(archive, entry_id)


def _entry(r: sqlite3.Row) -> Entry:
    return Entry(
        r["id"],
        r["source_name"],
        r["source_sha256"],
        r["reason"],
        r["blob_sha256"],
        r["blob_size"],
        r["note_path"],
        r["created_at"],
    )


def get(archive: Archive, entry_id: str) -> Entry:
    rows = archive.catalog.db.execute(
        "SELECT * FROM quarantine WHERE id = ? OR (length(?) >= 8 AND id LIKE ? || '%')",
        (entry_id, entry_id, entry_id),
    ).fetchall()
    if len(rows) != 1:
        raise RecordNotFound(
            f"there is no quarantined scan {entry_id!r}", hint="List them with 'scanarchive failed list'."
        )
    return _entry(rows[0])


def entries(archive: Archive) -> list[Entry]:
    return [_entry(r) for r in archive.catalog.db.execute("SELECT * FROM quarantine ORDER BY created_at")]


def by_source(archive: Archive, source_sha256: str) -> Entry | None:
    row = archive.catalog.db.execute(
        "SELECT * FROM quarantine WHERE source_sha256 = ? ORDER BY created_at LIMIT 1", (source_sha256,)
    ).fetchone()
    return None if row is None else _entry(row)


def has_source(archive: Archive, source_sha256: str) -> bool:
    return by_source(archive, source_sha256) is not None


def open_scan(archive: Archive, identity: keys.Identity, entry: Entry) -> bytes:
    row = archive.catalog.db.execute("SELECT wrapped FROM quarantine WHERE id = ?", (entry.id,)).fetchone()
    key = identity.unwrap(bytes(row[0]), quarantine_context(entry.id))
    try:
        data = store(archive).get(entry.blob_sha256)
    except IntegrityError as exc:
        raise IntegrityError(f"quarantined scan {entry.id}: its sealed copy is missing from quarantine/") from exc
    try:
        return seal.open_section(io.BytesIO(data), key, uuid.UUID(entry.id).bytes, "original")
    except IntegrityError as exc:
        raise IntegrityError(f"quarantined scan {entry.id}: {exc.message}", hint=exc.hint) from exc


def remove(archive: Archive, entry: Entry) -> None:
    """Forget a quarantined scan: its wrapped key, row, blob and note (crypto-shredding)."""
    with archive.catalog.transaction() as db:
        db.execute("DELETE FROM quarantine WHERE id = ?", (entry.id,))
    store(archive).delete(entry.blob_sha256)
    if entry.note_path:
        Path(entry.note_path).unlink(missing_ok=True)


_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


def write_note(archive: Archive, drop: Path, entry: Entry) -> Path:
    """failed/<scan name>.txt in the drop folder: the reason and how to recover, nothing of the content."""
    failed = drop / "failed"
    if failed.is_symlink() or (failed.exists() and not failed.is_dir()):
        raise IntegrityError(
            f"{failed} is not a plain folder (a link?); the note was not written there",
            hint="Remove it; the watcher will create failed/ again.",
        )
    failed.mkdir(mode=0o755, exist_ok=True)
    stem = _UNSAFE.sub("_", entry.source_name)[:120] or "scan"
    note = failed / f"{stem}.txt"
    if note.exists():
        note = failed / f"{stem}.{entry.id[:8]}.txt"
    text = (
        f'scanarchive could not archive the scan "{entry.source_name}" ({entry.created_at}).\n'
        f"\n"
        f"Reason: {entry.reason}\n"
        f"\n"
        f"The scan was NOT lost. It was removed from this folder and sealed (encrypted)\n"
        f"in the archive's quarantine as {entry.id}.\n"
        f"\n"
        f"  Look at it:   scanarchive failed show {entry.id} -o {stem}\n"
        f"  Try again:    scanarchive failed retry {entry.id}\n"
        f"  Discard it:   scanarchive failed drop {entry.id}\n"
        f"  All of them:  scanarchive failed list\n"
        f"\n"
        f"This note contains no part of the scan. It is removed when the scan is retried or discarded.\n"
    )
    write_atomic(note, text.encode("utf-8"), mode=0o644)
    with archive.catalog.transaction() as db:
        db.execute("UPDATE quarantine SET note_path = ? WHERE id = ?", (str(note), entry.id))
    log.info("quarantined %s: %s", entry.id, entry.reason)
    return note
