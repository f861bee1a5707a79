"""The archive folder: its layout, creation, and the operations that need the key.

    ARCHIVE/
      config.toml    recipient (public key) and settings
      identity.enc   passphrase-encrypted private key
      catalog.db     records and wrapped keys (no clinical content)
      index.db       SQLCipher full-text index (derived)
      objects/ab/…   sealed payloads named by SHA-256 of the ciphertext
      journal/       scans claimed from the drop folder, in flight
      quarantine/    sealed scans that could not be archived
      audit.log      append-only, hash-chained, no clinical content
      certificates/  destruction certificates (no clinical content)

Everything is created 0700 (folders) / 0600 (files).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import sqlcipher3

from scanarchive.archive.catalog import Catalog, RecordRow
from scanarchive.archive.index import SearchIndex
from scanarchive.archive.store import BlobStore, write_atomic
from scanarchive.config import ArchiveConfig, parse_config, render_config
from scanarchive.crypto import keys, seal
from scanarchive.errors import ArchiveExists, ArchiveNotFound, IntegrityError
from scanarchive.ocr import tesseract
from scanarchive.ocr.engine import PageText, from_json

log = logging.getLogger(__name__)

SYNC_BATCH = 200  # records per index transaction during a sync
SYNC_BATCH_SECONDS = 2.0
T = TypeVar("T")

CONFIG = "config.toml"
IDENTITY = "identity.enc"
CATALOG = "catalog.db"
INDEX = "index.db"
OBJECTS = "objects"


def record_context(record_id: str) -> bytes:
    """What a record key is wrapped with (binds the wrapped key to its record)."""
    return b"record:" + uuid.UUID(record_id).bytes


def index_context(generation: int) -> bytes:
    return b"index:" + str(generation).encode()


@dataclass
class SyncReport:
    added: int
    skipped: list[str]  # records that could not be opened (named by id)


class Archive:
    def __init__(self, root: Path) -> None:
        self.root = root
        config_path = root / CONFIG
        if not config_path.is_file():
            raise ArchiveNotFound(f"there is no scanarchive archive at {root}")
        self.config: ArchiveConfig = parse_config(config_path.read_text(encoding="utf-8"))
        self.store = BlobStore(root / OBJECTS)
        self.catalog = Catalog(root / CATALOG)

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def identity_path(self) -> Path:
        return self.root / IDENTITY

    def audit(self, event: str, /, **fields: object) -> None:
        """Append to the hash-chained audit log (ids, codes and counts only; see scanarchive/audit.py)."""
        from scanarchive import audit

        audit.append(audit.log_path(self.root), event, **fields)

    # --- creation -----------------------------------------------------------

    @classmethod
    def create(cls, root: Path, passphrase: str, kdf_seconds: float = 0.75) -> Archive:
        if (root / CONFIG).exists() or (root / IDENTITY).exists() or (root / CATALOG).exists():
            raise ArchiveExists(f"{root} already holds a scanarchive archive")
        if root.exists() and any(root.iterdir()):
            raise ArchiveExists(f"{root} is not empty", hint="Choose a new or empty folder for the archive.")
        old_umask = os.umask(0o077)
        try:
            root.mkdir(mode=0o700, parents=True, exist_ok=True)
            root.chmod(0o700)
            identity = keys.Identity.generate()
            log_n = keys.calibrate_log_n(kdf_seconds)
            write_atomic(root / IDENTITY, keys.seal_identity(identity, passphrase, log_n))
            (root / OBJECTS).mkdir(mode=0o700)
            Catalog(root / CATALOG).close()
            archive_id = str(uuid.uuid4())
            write_atomic(root / CONFIG, render_config(archive_id, identity.recipient).encode("utf-8"))
        finally:
            os.umask(old_umask)
        log.info("archive created at %s", root)
        archive = cls(root)
        archive.audit("init", archive=archive_id, key_id=identity.recipient.key_id)
        return archive

    # --- reading (needs the identity) ---------------------------------------

    def unlock(self, passphrase: str) -> keys.Identity:
        identity = keys.load_identity(self.identity_path, passphrase)
        if identity.recipient != self.config.recipient:
            raise IntegrityError("identity.enc does not belong to this archive (its key differs from config.toml)")
        return identity

    def record_key(self, identity: keys.Identity, record: RecordRow) -> bytes:
        try:
            return identity.unwrap(self.catalog.wrapped_key(record.id), record_context(record.id))
        except IntegrityError as exc:
            raise IntegrityError(f"record {record.id}: {exc.message}", hint=exc.hint) from exc

    def open_section(self, identity: keys.Identity, record: RecordRow, kind: str) -> bytes:
        """Decrypt one section of a record; damage raises IntegrityError naming the record."""
        key = self.record_key(identity, record)
        try:
            data = self.store.get(record.blob_sha256)
        except IntegrityError as exc:
            raise IntegrityError(f"record {record.id}: {exc.message}", hint=exc.hint) from exc
        if hashlib.sha256(data).hexdigest() != record.blob_sha256:
            # Checked before decrypting: damage anywhere in the blob is reported, even
            # in a section this read does not need.
            raise IntegrityError(f"record {record.id}: its blob is damaged (its SHA-256 does not match its name)")
        try:
            return seal.open_section(io.BytesIO(data), key, uuid.UUID(record.id).bytes, kind)
        except IntegrityError as exc:
            raise IntegrityError(f"record {record.id}: {exc.message}", hint=exc.hint) from exc

    def ocr_pages(self, identity: keys.Identity, record: RecordRow) -> list[PageText]:
        return from_json(self.open_section(identity, record, "ocr"))

    def open_index(self, identity: keys.Identity) -> SearchIndex:
        """Open index.db with its unwrapped key, creating key and index on first use.

        If the index cannot be opened with the current key (lost, damaged, or
        re-keyed), it is derived data: it is deleted and rebuilt.
        """
        current = self.catalog.index_key()
        path = self.root / INDEX
        if current is None:
            generation, key = 1, os.urandom(32)
            with self.catalog.transaction():
                self.catalog.add_index_key(
                    generation, self.config.recipient.key_id, keys.wrap(key, self.config.recipient, index_context(1))
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
        languages = self.config.ingest.ocr_languages
        index.known_words = lambda: tesseract.dictionary(languages)  # tells misreadings from other words
        return index

    def searched(self, identity: keys.Identity, ask: Callable[[SearchIndex], T]) -> tuple[SyncReport, T]:
        """Open and sync the index, then ask it. A page of index.db that fails SQLCipher's HMAC
        check (damage, tampering) turns up only when read: the index is then rebuilt, once,
        from the sealed records — it is derived data — and the question asked again."""
        for attempt in (1, 2):
            index = self.open_index(identity)
            try:
                report = self.sync_index(identity, index)
                return report, ask(index)
            except sqlcipher3.DatabaseError:
                if attempt == 2:
                    raise IntegrityError("the search index is damaged and could not be rebuilt") from None
                log.warning("the search index is damaged; rebuilding it from the sealed records")
            finally:
                index.close()
            _remove_index(self.root / INDEX)
        raise AssertionError("unreachable")

    def sync_index(self, identity: keys.Identity, index: SearchIndex) -> SyncReport:
        """Add every record sealed since the last sync, in transactions of up to SYNC_BATCH records
        (or SYNC_BATCH_SECONDS): each commit waits for the disk, and the index is derived data —
        a crash loses at most the batch in progress, whose records the next sync adds again
        (last_seq advances in the same transaction)."""
        added, skipped = 0, []
        pending = set(index.unindexed())
        retry = [r for r in self.catalog.records() if r.id in pending] if pending else []
        in_batch, batch_started = 0, time.monotonic()
        try:
            for record in retry + self.catalog.records(since_seq=index.last_seq()):
                pages: list[tuple[int, str]] | None
                facts: list[tuple[int, str]] = []
                try:
                    opened = self.ocr_pages(identity, record)
                    pages = [(p.page, p.text) for p in opened]
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
        for record in self.catalog.changed_since(index.last_change()):
            index.refile(record.id, record.client_code, record.session_date, record.record_class, record.changed_seq)
        purges = int(self.catalog.get_meta("purge_seq") or 0)
        if purges > index.purge_seq():
            index.forget({r.id for r in self.catalog.records()})
            self._rekey_index(index)
            index.set_purge_seq(purges)
        return SyncReport(added, skipped)

    def _rekey_index(self, index: SearchIndex) -> None:
        """After a purge: a new index key, and the old one deleted (crypto-shredding old index copies).
        A crash between the two leaves an index that no key opens: it is rebuilt, as derived data."""
        current = self.catalog.index_key()
        generation = (current[0] if current else 0) + 1
        key = os.urandom(32)
        index.rekey(key)
        with self.catalog.transaction():
            self.catalog.add_index_key(
                generation,
                self.config.recipient.key_id,
                keys.wrap(key, self.config.recipient, index_context(generation)),
            )
        log.info("search index re-keyed after a purge (generation %d)", generation)


def _open_index_file(path: Path, key: bytes) -> SearchIndex:
    old_umask = os.umask(0o077)
    try:
        return SearchIndex(path, key)
    finally:
        os.umask(old_umask)


def _remove_index(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(path) + suffix).unlink(missing_ok=True)
