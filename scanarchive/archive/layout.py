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

import json
import logging
import os
import uuid
from pathlib import Path

from scanarchive import audit
from scanarchive.archive import checkpoint, sealed
from scanarchive.archive.catalog import Catalog, RecordRow
from scanarchive.archive.sealed import record_context
from scanarchive.archive.store import BlobStore
from scanarchive.config import ArchiveConfig, parse_config, render_config
from scanarchive.crypto import keys, strength
from scanarchive.errors import ArchiveExists, ArchiveNotFound, ConfigError, IntegrityError
from scanarchive.fsio import write_atomic
from scanarchive.ocr.document import PageText, from_json

log = logging.getLogger(__name__)


CONFIG = "config.toml"
IDENTITY = "identity.enc"
CATALOG = "catalog.db"
INDEX = "index.db"
OBJECTS = "objects"


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
        audit.append(audit.log_path(self.root), event, **fields)

    # --- creation -----------------------------------------------------------

    @classmethod
    def create(cls, root: Path, passphrase: str, kdf_seconds: float = 0.75) -> Archive:
        strength.check_new(passphrase)  # before anything is written
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
            write_atomic(root / IDENTITY, keys.seal_identity(identity, passphrase, log_n), private=True)
            (root / OBJECTS).mkdir(mode=0o700)
            Catalog(root / CATALOG).close()
            archive_id = str(uuid.uuid4())
            write_atomic(root / CONFIG, render_config(archive_id, identity.recipient).encode("utf-8"))
        finally:
            os.umask(old_umask)
        log.info("archive created at %s", root)
        archive = cls(root)
        archive.audit("init", archive=archive_id, key_id=identity.recipient.key_id)
        with archive.catalog.transaction():  # pins the decision key, signs the first checkpoint (§15.5)
            checkpoint.update(archive, identity, rebuild=True)
        return archive

    # --- reading (needs the identity) ---------------------------------------

    def unlock(self, passphrase: str) -> keys.Identity:
        identity = keys.load_identity(self.identity_path, passphrase)
        if identity.recipient != self.config.recipient:
            raise IntegrityError("identity.enc does not belong to this archive (its key differs from config.toml)")
        return identity

    def change_passphrase(self, identity: keys.Identity, new_passphrase: str, kdf_seconds: float = 0.75) -> None:
        """Re-encrypt identity.enc under a new passphrase (same key); audited. The scrypt cost is
        calibrated again on this machine, and never set below the one the identity had."""
        strength.check_new(new_passphrase)
        stored = keys.identity_kdf_log_n(self.identity_path.read_bytes())
        log_n = max(stored, keys.calibrate_log_n(kdf_seconds))
        write_atomic(self.identity_path, keys.seal_identity(identity, new_passphrase, log_n), private=True)
        self.audit("passwd", key_id=identity.recipient.key_id)

    def sealing_recipient(self) -> keys.Recipient:
        """config.toml's recipient, to seal to; refused (ConfigError) when identity.enc, where this account can
        read it, names another one (config.toml was edited to harvest the next notes)."""
        try:
            pinned = keys.Recipient.decode(str(json.loads(self.identity_path.read_bytes())["recipient"]))
        except (OSError, ValueError, KeyError, TypeError, ConfigError):
            return self.config.recipient  # not readable here (separated accounts): config.toml is not ours to change
        if pinned != self.config.recipient:
            raise ConfigError(
                "config.toml's recipient is not the key identity.enc was made for: refusing to seal notes to it",
                hint="Someone changed [archive] recipient in config.toml; put back the archive's own recipient.",
            )
        return self.config.recipient

    def record_key(self, identity: keys.Identity, record: RecordRow) -> bytes:
        try:
            key = identity.unwrap(self.catalog.wrapped_key(record.id), record_context(record.id))
        except IntegrityError as exc:
            raise IntegrityError(f"record {record.id}: {exc.message}", hint=exc.hint) from exc
        checkpoint.check_binding(self, identity, record)  # a key that opens but is not the one first read
        return key

    def open_section(self, identity: keys.Identity, record: RecordRow, kind: str) -> bytes:
        """Decrypt one section of a record (hash-checked first); damage raises IntegrityError naming the record."""
        return sealed.open_section(self.store, record.blob_sha256, self.record_key(identity, record), record.id, kind)

    def ocr_pages(self, identity: keys.Identity, record: RecordRow) -> list[PageText]:
        return from_json(self.open_section(identity, record, "ocr"))
