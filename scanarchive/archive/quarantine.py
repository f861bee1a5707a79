"""The quarantine in the archive: scans that could not be archived, sealed like records.

A rejected scan is never left readable on the scanner's share and never
deleted: it is sealed to the archive's recipient (section "original") in
ARCHIVE/quarantine/ with a row in the catalog saying why. The note a person
finds in the drop folder's failed/ is written by scanarchive.intake.quarantine.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from contextlib import suppress
from dataclasses import dataclass, replace

from scanarchive.archive import sealed
from scanarchive.archive.layout import Archive
from scanarchive.archive.sealed import quarantine_context, quarantine_name_context
from scanarchive.archive.store import BlobStore
from scanarchive.clock import now_utc
from scanarchive.crypto import keys
from scanarchive.errors import RecordNotFound
from scanarchive.fsio import make_dir


@dataclass(frozen=True)
class Entry:
    """A quarantined scan. `source_name` and `note_path` are as stored: sealed to the recipient
    (file names may name a client) unless written before they were sealed; `name()` and
    `note()` open them."""

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
    blobs = store(archive)
    with suppress(FileExistsError):
        make_dir(blobs.root, 0o700)
    digest, size = sealed.put(blobs, key, entry_id, {"original": data}, owner="quarantine")
    recipient = archive.sealing_recipient()
    wrapped = keys.wrap(key, recipient, quarantine_context(entry_id))
    with archive.catalog.transaction() as db:
        db.execute(
            "INSERT INTO quarantine(id, source_name, source_sha256, reason, blob_sha256, blob_size, key_id, wrapped,"
            " created_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                entry_id,
                sealed.seal_text(recipient, quarantine_name_context(entry_id), source_name),
                source_sha256,
                reason,
                digest,
                size,
                archive.config.recipient.key_id,
                wrapped,
                now_utc(),
            ),
        )
    return replace(get(archive, entry_id), source_name=source_name)  # the caller knows the name


def name(entry: Entry, identity: keys.Identity | None) -> str:
    """The scan's original file name; without the identity, a sealed one reads "(name sealed)"."""
    if identity is None:
        return "(name sealed)" if sealed.is_sealed_text(entry.source_name) else entry.source_name
    return sealed.open_text(identity, quarantine_name_context(entry.id), entry.source_name)


def note(entry: Entry, identity: keys.Identity) -> str:
    """Where its note for a person was written (a path in the drop folder's failed/), or ""."""
    return sealed.open_text(identity, _note_context(entry.id), entry.note_path) if entry.note_path else ""


def _note_context(entry_id: str) -> bytes:
    return b"quarantine-note:" + uuid.UUID(entry_id).bytes


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
    """The scan's bytes, decrypted in memory; its sealed copy is hash-checked first (format.md invariant 6)."""
    row = archive.catalog.db.execute("SELECT wrapped FROM quarantine WHERE id = ?", (entry.id,)).fetchone()
    key = identity.unwrap(bytes(row[0]), quarantine_context(entry.id))
    return sealed.open_section(store(archive), entry.blob_sha256, key, entry.id, "original", owner="quarantine")


def check(archive: Archive, entry: Entry) -> None:
    """Without the key: the sealed copy exists and hashes to its name."""
    sealed.check(store(archive), entry.blob_sha256, entry.id, owner="quarantine")


def show(archive: Archive, identity: keys.Identity, entry: Entry) -> bytes:
    """The scan's bytes for a person to look at (`failed show`); audited like reading a record."""
    data = open_scan(archive, identity, entry)
    archive.audit("failed", item=entry.id, command="show")
    return data


def forget(archive: Archive, entry: Entry) -> None:
    """Forget a quarantined scan: its wrapped key and row, then its blob (crypto-shredding)."""
    with archive.catalog.transaction() as db:
        db.execute("DELETE FROM quarantine WHERE id = ?", (entry.id,))
    store(archive).delete(entry.blob_sha256)


def set_note(archive: Archive, entry: Entry, note_path: str) -> None:
    """Where the entry's note for a person was written (sealed: the note's name is the scan's)."""
    stored = sealed.seal_text(archive.sealing_recipient(), _note_context(entry.id), note_path)
    with archive.catalog.transaction() as db:
        db.execute("UPDATE quarantine SET note_path = ? WHERE id = ?", (stored, entry.id))
