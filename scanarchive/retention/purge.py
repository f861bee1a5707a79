"""Destroying records: crypto-shredding, a tombstone, and a certificate without clinical content.

Runs unattended, without the passphrase. A purge is planned, then executed
(restic's prune has the same shape):

    with purge.one_at_a_time(archive):      # or simply: purge.run(archive, today)
        p = purge.plan(archive, today)      # every record: (destroy now?, why)
        destroyed = purge.execute(archive, p)

The plan of a destroying purge is made under the lock, never before it: a plan
made earlier could name records another purge has destroyed meanwhile, so
`execute` refuses it. A dry run needs no lock: `execute(archive, p, dry_run=True)`
destroys nothing and writes only the summary audit entry.

Destroying a record, in this order:

  1. one catalog transaction: a tombstone row (what was destroyed, under which
     rule, approved by whom) replaces the record's row, its wrapped key, its
     approval and its page-quality rows (SQLite secure_delete overwrites them);
  2. the blob is deleted from objects/ — and since its key is gone, every
     backup copy of the blob is noise from now on;
  3. the certificate (certificates/<id>.json and .txt) is written from the tombstone;
  4. after all records: the WAL is checkpointed and truncated, and index.db is
     deleted (it is derived data, and purge holds no key to open it, so no
     destroyed word may wait in it for the next search); the catalog notes
     that the index rebuilt at the next unlock must be re-keyed.

A crash between 1 and 3 is repaired by the next purge, which writes any
missing certificate from its tombstone. Purges that destroy run one at a time
(purge.lock), so two never plan the same records.

Audit: a `purge` entry for each record BEFORE it is destroyed (a crash
afterwards still leaves the entry), then one summary `purge` entry (records,
count, dry_run, automatic), for a dry run too.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from scanarchive.archive import checkpoint, sync
from scanarchive.archive.layout import Archive
from scanarchive.clock import now_utc
from scanarchive.errors import ConfigError
from scanarchive.fsio import write_atomic
from scanarchive.retention import review
from scanarchive.retention.review import Review

log = logging.getLogger(__name__)

PURGE_LOCK = "purge.lock"
METHOD = "cryptographic erase (record key deleted) and deletion of the sealed copy"


@dataclass(frozen=True)
class Destroyed:
    record_id: str
    certificate: Path


@dataclass(frozen=True)
class Verdict:
    """One record in a plan: destroy it now (go), and why, in plain words."""

    review: Review
    go: bool
    why: str


@dataclass(frozen=True)
class PurgePlan:
    today: date
    approval: str  # "required" or "automatic", as the plan was made under
    verdicts: tuple[Verdict, ...]  # every record, in catalog order
    lock: object | None  # the purge.lock hold it was made under (None: made without the lock)
    refused: tuple[str, ...] = ()  # due records kept because a decision behind them does not verify

    @property
    def automatic(self) -> bool:
        return self.approval == "automatic"

    @property
    def to_destroy(self) -> list[Review]:
        return [v.review for v in self.verdicts if v.go]


@dataclass(frozen=True)
class Purged:
    """What `run` did: the plan (every record, with its reason) and the records destroyed."""

    plan: PurgePlan
    destroyed: list[Destroyed]
    dry_run: bool


class _Held(threading.local):
    """purge.lock holds of this thread: archive root -> a token unique to that hold."""

    def __init__(self) -> None:
        self.by_root: dict[str, object] = {}


_held = _Held()


def _key(archive: Archive) -> str:
    return str(Path(archive.root).resolve())


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
        _held.by_root[_key(archive)] = token = object()
        try:
            yield
        finally:
            if _held.by_root.get(_key(archive)) is token:
                del _held.by_root[_key(archive)]
    finally:
        os.close(fd)  # closing releases the lock


def require_presets(archive: Archive) -> None:
    """Purge refuses to run when no retention rules are in force (nothing can be judged due)."""
    if not archive.config.retention.presets:
        raise ConfigError(
            "no retention rules are in force, so nothing can be judged due; purge refuses to run",
            hint="Choose the rules that bind the practice: scanarchive retention use PRESET…",
        )


def plan(archive: Archive, today: date, *, approval: str | None = None) -> PurgePlan:
    """Review every record as of `today`: destroy it now or keep it, and why. Changes nothing.

    approval: "required" or "automatic"; by default the archive's retention.approval. For a
    destroying purge, call it under `one_at_a_time(archive)` (see `run`)."""
    require_presets(archive)
    approval = archive.config.retention.approval if approval is None else approval
    reviews = review.review_all(archive, today, review.presets_in_force(archive))
    verdicts = [Verdict(r, *r.verdict(approval)) for r in reviews]
    # Every decision a destruction depends on must be as the owner signed it (docs/format.md §15.5).
    trust = checkpoint.load(archive)
    now = checkpoint.live(archive) if trust.upgraded else None
    refused = []
    for n, v in enumerate(verdicts):
        doubts = (
            []
            if now is None or not v.go
            else checkpoint.doubts(trust, now, v.review.record, approval_needed=approval == "required")
        )
        if doubts:
            refused.append(v.review.record.id)
            why = f"Due since after {v.review.decision.destroy_after}, but {'; '.join(doubts)}: kept."
            verdicts[n] = Verdict(v.review, False, why)
            log.warning("record %s: %s", v.review.record.id, why)
    return PurgePlan(today, approval, tuple(verdicts), _held.by_root.get(_key(archive)), tuple(refused))


def execute(archive: Archive, plan: PurgePlan, *, dry_run: bool = False) -> list[Destroyed]:
    """Carry out a plan: repair certificates, destroy each record it says to (audited `purge`, each
    entry before its record goes), then write the summary `purge` entry. With dry_run, destroy
    nothing and write only the summary.

    A destroying plan must have been made under the purge.lock this thread holds now, so the lock
    covers planning and every destruction; any other plan is refused (a programming error)."""
    destroyed: list[Destroyed] = []
    if not dry_run:
        if plan.lock is None or _held.by_root.get(_key(archive)) is not plan.lock:
            raise RuntimeError("a purge plan is executed only under the purge.lock it was made under (purge.run)")
        repair_certificates(archive)
        for r in plan.to_destroy:
            # logged before the record goes: a crash afterwards still leaves the entry
            archive.audit(
                "purge",
                record=r.record.id,
                preset=r.decision.controlling.id if r.decision.controlling else "-",
                **({"client": r.record.client_code} if r.record.client_code else {}),
            )
            destroyed.append(destroy(archive, r, plan.approval))
        finish(archive, len(destroyed))
    archive.audit(
        "purge",
        records=[d.record_id for d in destroyed],
        count=len(destroyed),
        dry_run=dry_run,
        automatic=plan.automatic,
        **({"refused": list(plan.refused)} if plan.refused else {}),
    )
    return destroyed


def run(archive: Archive, today: date, *, dry_run: bool = False) -> Purged:
    """Plan and execute a purge: a destroying one plans and destroys under one purge.lock hold."""
    require_presets(archive)  # before waiting on another purge's lock, as the refusal needs none
    with contextlib.nullcontext() if dry_run else one_at_a_time(archive):
        planned = plan(archive, today)
        destroyed = execute(archive, planned, dry_run=dry_run)
    return Purged(planned, destroyed, dry_run)


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


def finish(archive: Archive, destroyed: int) -> None:
    """After a purge: no deleted row may linger in the write-ahead log, nor a destroyed word in the index."""
    archive.catalog.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    if destroyed:
        sync.drop_index(archive)


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
