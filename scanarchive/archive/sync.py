"""The search index's life: open it (creating or rebuilding it), add what was sealed since
the last sync, and re-key it after a purge. Needs the identity: only interactive commands
come here. The index is derived data — whatever goes wrong with index.db, it is rebuilt
from the sealed records.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import sqlcipher3

from scanarchive.archive import checkpoint
from scanarchive.archive.index import SearchIndex
from scanarchive.archive.layout import INDEX, Archive
from scanarchive.archive.sealed import index_context
from scanarchive.crypto import keys
from scanarchive.errors import IntegrityError, RolledBack

log = logging.getLogger(__name__)

SYNC_BATCH = 200  # records per index transaction during a sync
SYNC_BATCH_SECONDS = 2.0
T = TypeVar("T")


@dataclass
class SyncReport:
    added: int
    skipped: list[str]  # records that could not be opened (named by id)
    warnings: list[str] = field(default_factory=list)  # sealed to another key, rolled back, forged checkpoint


def open_index(
    archive: Archive, identity: keys.Identity, known_words: Callable[[], Container[str]] | None = None
) -> SearchIndex:
    """Open index.db with its unwrapped key, creating key and index on first use.

    If the index cannot be opened with the current key (lost, damaged, or
    re-keyed), it is derived data: it is deleted and rebuilt.
    """
    current = archive.catalog.index_key()
    path = archive.root / INDEX
    if current is None:
        generation, key = 1, os.urandom(32)
        with archive.catalog.transaction():
            archive.catalog.add_index_key(
                generation, archive.config.recipient.key_id, keys.wrap(key, archive.config.recipient, index_context(1))
            )
        _remove_index(path)
    else:
        generation, wrapped = current
        key = identity.unwrap(wrapped, index_context(generation))
    try:
        index = _open_index_file(path, key)
    except IntegrityError:
        log.warning("search index could not be opened; rebuilding it from the sealed records")
        _remove_index(path)
        index = _open_index_file(path, key)
    index.known_words = known_words  # tells misreadings from other words (the OCR engines' dictionary)
    return index


def searched(
    archive: Archive,
    identity: keys.Identity,
    ask: Callable[[SearchIndex], T],
    known_words: Callable[[], Container[str]] | None = None,
) -> tuple[SyncReport, T]:
    """Open and sync the index, then ask it. A page of index.db that fails SQLCipher's HMAC
    check (damage, tampering) turns up only when read: the index is then rebuilt, once,
    from the sealed records — it is derived data — and the question asked again."""
    for attempt in (1, 2):
        index = open_index(archive, identity, known_words)
        try:
            report = sync_index(archive, identity, index)
            return report, ask(index)
        except sqlcipher3.DatabaseError:
            if attempt == 2:
                raise IntegrityError("the search index is damaged and could not be rebuilt") from None
            log.warning("the search index is damaged; rebuilding it from the sealed records")
        finally:
            index.close()
        _remove_index(archive.root / INDEX)
    raise AssertionError("unreachable")


def sync_index(archive: Archive, identity: keys.Identity, index: SearchIndex) -> SyncReport:
    """Add every record sealed since the last sync, in transactions of up to SYNC_BATCH records
    (or SYNC_BATCH_SECONDS): each commit waits for the disk, and the index is derived data —
    a crash loses at most the batch in progress, whose records the next sync adds again
    (last_seq advances in the same transaction)."""
    added, skipped = 0, []
    pending = set(index.unindexed())
    retry = [r for r in archive.catalog.records() if r.id in pending] if pending else []
    in_batch, batch_started = 0, time.monotonic()
    try:
        for record in retry + archive.catalog.records(since_seq=index.last_seq()):
            pages: list[tuple[int, str, str]] | None
            facts: list[tuple[int, str]] = []
            try:
                opened = archive.ocr_pages(identity, record)
                pages = [(p.page, p.text, p.alternatives) for p in opened]  # first readings, other readings
                facts = [(p.page, key) for p in opened for key, state in p.boxes.items() if state == "ticked"]
            except IntegrityError as exc:
                log.error("%s", exc.message)
                skipped.append(record.id)
                pages = None
            if in_batch == 0:
                index.begin()
                batch_started = time.monotonic()
            index.add_record(
                record.seq, record.id, record.client_code, record.session_date, record.record_class, pages, facts
            )
            in_batch += 1
            added += 1
            if in_batch >= SYNC_BATCH or time.monotonic() - batch_started >= SYNC_BATCH_SECONDS:
                index.commit()
                in_batch = 0
        if in_batch:
            index.commit()
            in_batch = 0
    except BaseException:
        if in_batch:
            index.rollback()
        raise
    for record in archive.catalog.changed_since(index.last_change()):
        index.refile(record.id, record.client_code, record.session_date, record.record_class, record.changed_seq)
    purges = int(archive.catalog.get_meta("purge_seq") or 0)
    if purges > index.purge_seq():
        index.forget({r.id for r in archive.catalog.records()})
        _rekey_index(archive, index)
        index.set_purge_seq(purges)
    return SyncReport(added, skipped, _sign_checkpoint(archive, identity))


def _sign_checkpoint(archive: Archive, identity: keys.Identity) -> list[str]:
    """Bind new records and sign what this command saw (docs/format.md §15.5); warn, never fail, a search."""
    warnings = checkpoint.foreign(archive, identity.recipient.key_id)
    try:
        with archive.catalog.transaction():
            checkpoint.update(archive, identity)
    except (RolledBack, IntegrityError) as exc:
        warnings.append(f"{exc.message} (no new checkpoint was signed; run 'scanarchive verify --read-data')")
    for warning in warnings:
        log.warning("%s", warning)
    return warnings


def _rekey_index(archive: Archive, index: SearchIndex) -> None:
    """After a purge: a new index key, and the old one deleted (crypto-shredding old index copies).
    A crash between the two leaves an index that no key opens: it is rebuilt, as derived data."""
    current = archive.catalog.index_key()
    generation = (current[0] if current else 0) + 1
    key = os.urandom(32)
    index.rekey(key)
    with archive.catalog.transaction():
        archive.catalog.add_index_key(
            generation,
            archive.config.recipient.key_id,
            keys.wrap(key, archive.config.recipient, index_context(generation)),
        )
    log.info("search index re-keyed after a purge (generation %d)", generation)


def _open_index_file(path: Path, key: bytes) -> SearchIndex:
    old_umask = os.umask(0o077)
    try:
        return SearchIndex(path, key)
    finally:
        os.umask(old_umask)


def drop_index(archive: Archive) -> None:
    """Delete index.db and its journal files: derived data, rebuilt from the sealed records at the next
    unlock. Needs no key, so the unattended purge can make sure no destroyed word stays in it."""
    _remove_index(archive.root / INDEX)


def _remove_index(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(path) + suffix).unlink(missing_ok=True)
