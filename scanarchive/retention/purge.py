"""Destroying records: crypto-shredding, a tombstone, and a certificate without clinical content.

Runs unattended, without the passphrase. Destroying a record, in this order:

  1. one catalog transaction: a tombstone row (what was destroyed, under which
     rule, approved by whom) replaces the record's row, its wrapped key, its
     approval and its page-quality rows (SQLite secure_delete overwrites them);
  2. the blob is deleted from objects/ — and since its key is gone, every
     backup copy of the blob is noise from now on;
  3. the certificate (certificates/<id>.json and .txt) is written from the tombstone;
  4. after all records: the WAL is checkpointed and truncated, and the catalog
     notes that the search index must drop those records and be re-keyed at
     its next unlock (purge holds no key to open it).

A crash between 1 and 3 is repaired by the next purge, which writes any
missing certificate from its tombstone. Purges that destroy run one at a time
(purge.lock), so two never plan the same records.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from scanarchive.archive.layout import Archive
from scanarchive.clock import now_utc
from scanarchive.fsio import write_atomic
from scanarchive.retention.review import Review

log = logging.getLogger(__name__)

PURGE_LOCK = "purge.lock"
METHOD = "cryptographic erase (record key deleted) and deletion of the sealed copy"


@dataclass(frozen=True)
class Destroyed:
    record_id: str
    certificate: Path


@contextlib.contextmanager
def one_at_a_time(archive: Archive) -> Iterator[None]:
    """One destroying purge per archive: an flock on ARCHIVE/purge.lock, held from planning to the
    last destruction. A second purge waits, then plans afresh (and finds those records gone)."""
    fd = os.open(archive.root / PURGE_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("another purge is running for this archive; waiting for it to finish")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def destroy(archive: Archive, review: Review, approval: str) -> Destroyed:
    record, decision = review.record, review.decision
    controlling = decision.controlling
    assert controlling is not None and decision.destroy_after is not None
    approved_by = review.approved_by or "automatic disposal (retention.approval = automatic)"
    approved_at = review.approved_at or now_utc()
    with archive.catalog.transaction() as db:
        db.execute(
            "INSERT INTO tombstones(record_id, client_code, record_class, session_date, page_count, blob_sha256,"
            " destroy_after, preset_id, preset_name, citation, mandate, approved_by, approved_at, destroyed_at, method)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                record.id,
                record.client_code,
                record.record_class,
                record.session_date,
                record.page_count,
                record.blob_sha256,
                decision.destroy_after.isoformat(),
                controlling.id,
                controlling.name,
                controlling.citation,
                controlling.mandate,
                approved_by,
                approved_at,
                now_utc(),
                METHOD,
            ),
        )
        db.execute("DELETE FROM record_keys WHERE record_id = ?", (record.id,))
        db.execute("DELETE FROM page_qc WHERE record_id = ?", (record.id,))
        db.execute("DELETE FROM approvals WHERE record_id = ?", (record.id,))
        db.execute("DELETE FROM changes WHERE record_id = ?", (record.id,))
        db.execute("DELETE FROM records WHERE id = ?", (record.id,))
        purges = int(archive.catalog.get_meta("purge_seq") or 0) + 1
        archive.catalog.set_meta("purge_seq", str(purges))
    if not any(r.blob_sha256 == record.blob_sha256 for r in archive.catalog.records()):
        archive.store.delete(record.blob_sha256)
    return Destroyed(record.id, write_certificate(archive, record.id))


def finish(archive: Archive) -> None:
    """After a purge: no deleted row may linger in the write-ahead log."""
    archive.catalog.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def repair_certificates(archive: Archive) -> list[Path]:
    """Write the certificate of any tombstone whose certificate is missing (a crash mid-purge)."""
    written = []
    for (record_id,) in archive.catalog.db.execute("SELECT record_id FROM tombstones").fetchall():
        if not (archive.root / "certificates" / f"{record_id}.json").exists():
            written.append(write_certificate(archive, record_id))
    return written


def tombstone(archive: Archive, record_id: str) -> dict[str, object] | None:
    row = archive.catalog.db.execute(
        "SELECT * FROM tombstones WHERE record_id = ? OR (length(?) >= 8 AND record_id LIKE ? || '%')",
        (record_id, record_id, record_id),
    ).fetchone()
    return None if row is None else dict(zip(row.keys(), row, strict=True))


def write_certificate(archive: Archive, record_id: str) -> Path:
    """certificates/<record id>.json and .txt: identifies the record and the rule, holds no clinical content."""
    stone = tombstone(archive, record_id)
    assert stone is not None
    folder = archive.root / "certificates"
    folder.mkdir(mode=0o700, exist_ok=True)
    doc = {
        "certificate": "scanarchive destruction certificate",
        "version": 1,
        "archive_id": archive.config.archive_id,
        "record_id": stone["record_id"],
        "client_code": stone["client_code"],
        "record_class": stone["record_class"],
        "session_date": stone["session_date"],
        "pages": stone["page_count"],
        "blob_sha256": stone["blob_sha256"],
        "retention_rule": {
            "preset": stone["preset_id"],
            "name": stone["preset_name"],
            "citation": stone["citation"],
            "mandate": stone["mandate"],
        },
        "kept_until": stone["destroy_after"],
        "approved_by": stone["approved_by"],
        "approved_at": stone["approved_at"],
        "destroyed_at": stone["destroyed_at"],
        "method": stone["method"],
    }
    path = folder / f"{stone['record_id']}.json"
    write_atomic(path, (json.dumps(doc, indent=2) + "\n").encode())
    text = (
        "CERTIFICATE OF DESTRUCTION\n\n"
        f"Record            {doc['record_id']}\n"
        f"Client code       {doc['client_code']}\n"
        f"Class             {doc['record_class']}\n"
        f"Session date      {doc['session_date']}\n"
        f"Pages             {doc['pages']}\n"
        f"Retention rule    {stone['preset_name']} ({stone['citation']})\n"
        f"Rule              {stone['mandate']}\n"
        f"Kept until        {doc['kept_until']}\n"
        f"Approved by       {doc['approved_by']} at {doc['approved_at']}\n"
        f"Destroyed at      {doc['destroyed_at']}\n"
        f"Method            {doc['method']}\n"
        f"Sealed copy       SHA-256 {doc['blob_sha256']}\n\n"
        "This certificate contains no clinical content. The record's key was deleted, so\n"
        "copies of its sealed blob cannot be decrypted once backups of the catalog made\n"
        "before this date are gone as well (backups mirror purges: see docs/retention.md).\n"
    )
    write_atomic(folder / f"{stone['record_id']}.txt", text.encode())
    return path
