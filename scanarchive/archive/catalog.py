"""catalog.db: records, wrapped keys and (later) retention facts. No clinical content.

Plain SQLite, because the unattended jobs (watcher, purge) must use it without
the passphrase. It holds client codes (the practice's pseudonyms), dates,
hashes and keys wrapped to the recipient — never OCR text or names.
Schema changes are numbered migrations tracked in PRAGMA user_version.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from scanarchive.errors import IntegrityError, RecordNotFound, TransientError

MIGRATIONS: tuple[str, ...] = (
    # 1: records, their wrapped keys, and the wrapped index key.
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE records (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        client_code TEXT,
        session_date TEXT,
        record_class TEXT NOT NULL DEFAULT 'progress',
        page_count INTEGER NOT NULL,
        ocr_failed_pages TEXT NOT NULL DEFAULT '',
        source_sha256 TEXT NOT NULL,
        source_kind TEXT NOT NULL,
        blob_sha256 TEXT NOT NULL,
        blob_size INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'sealed'
    );
    CREATE INDEX records_source ON records(source_sha256);
    CREATE INDEX records_client ON records(client_code, session_date);
    CREATE TABLE record_keys (
        record_id TEXT PRIMARY KEY REFERENCES records(id) ON DELETE CASCADE,
        key_id TEXT NOT NULL,
        wrapped BLOB NOT NULL
    );
    CREATE TABLE index_keys (
        generation INTEGER PRIMARY KEY,
        key_id TEXT NOT NULL,
        wrapped BLOB NOT NULL,
        created_at TEXT NOT NULL
    );
    """,
    # 2: the drop-folder journal (claimed scans in flight) and the quarantine.
    """
    CREATE TABLE journal (
        claim_id TEXT PRIMARY KEY,
        source_name TEXT NOT NULL,
        source_path TEXT NOT NULL,
        sha256 TEXT,
        size INTEGER,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt REAL NOT NULL DEFAULT 0,
        last_error TEXT NOT NULL DEFAULT '',
        claimed_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE quarantine (
        id TEXT PRIMARY KEY,
        source_name TEXT NOT NULL,
        source_sha256 TEXT NOT NULL,
        reason TEXT NOT NULL,
        blob_sha256 TEXT NOT NULL,
        blob_size INTEGER NOT NULL,
        key_id TEXT NOT NULL,
        wrapped BLOB NOT NULL,
        note_path TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL
    );
    CREATE INDEX quarantine_source ON quarantine(source_sha256);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
RECORD_CLASSES = ("progress", "psychotherapy")


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class RecordRow:
    seq: int
    id: str
    client_code: str | None
    session_date: str | None
    record_class: str
    page_count: int
    ocr_failed_pages: tuple[int, ...]
    source_sha256: str
    source_kind: str
    blob_sha256: str
    blob_size: int
    created_at: str
    status: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> RecordRow:
        failed = tuple(int(p) for p in row["ocr_failed_pages"].split(",") if p)
        return cls(
            seq=row["seq"],
            id=row["id"],
            client_code=row["client_code"],
            session_date=row["session_date"],
            record_class=row["record_class"],
            page_count=row["page_count"],
            ocr_failed_pages=failed,
            source_sha256=row["source_sha256"],
            source_kind=row["source_kind"],
            blob_sha256=row["blob_sha256"],
            blob_size=row["blob_size"],
            created_at=row["created_at"],
            status=row["status"],
        )


class Catalog:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
        except sqlite3.Error as exc:
            raise IntegrityError(f"the catalog {path} cannot be opened ({exc})") from exc
        self.db.row_factory = sqlite3.Row
        try:
            # secure_delete: deleted rows are overwritten, not left in free pages.
            for pragma in ("journal_mode=WAL", "secure_delete=ON", "foreign_keys=ON", "synchronous=FULL"):
                self.db.execute(f"PRAGMA {pragma}")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise _translate(exc, path) from exc

    def close(self) -> None:
        self.db.close()

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise IntegrityError(
                f"the catalog has schema version {version}; this scanarchive knows up to {SCHEMA_VERSION}",
                hint="Use a newer scanarchive. Nothing was changed.",
            )
        for number in range(version, SCHEMA_VERSION):
            with self.transaction():
                for statement in _statements(MIGRATIONS[number]):
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {number + 1}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: all of it is stored, or none."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise _translate(exc, self.path) from exc
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        try:
            self.db.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            self.db.execute("ROLLBACK")
            raise _translate(exc, self.path) from exc

    # --- meta ---------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    # --- records ------------------------------------------------------------

    def add_record(self, row: RecordRow, key_id: str, wrapped: bytes) -> None:
        """The record and its wrapped key, in the caller's transaction."""
        self.db.execute(
            "INSERT INTO records(id, client_code, session_date, record_class, page_count, ocr_failed_pages,"
            " source_sha256, source_kind, blob_sha256, blob_size, created_at, status)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                row.id,
                row.client_code,
                row.session_date,
                row.record_class,
                row.page_count,
                ",".join(str(p) for p in row.ocr_failed_pages),
                row.source_sha256,
                row.source_kind,
                row.blob_sha256,
                row.blob_size,
                row.created_at,
                row.status,
            ),
        )
        self.db.execute("INSERT INTO record_keys(record_id, key_id, wrapped) VALUES (?,?,?)", (row.id, key_id, wrapped))

    def record(self, record_id: str) -> RecordRow:
        row = self.db.execute("SELECT * FROM records WHERE id = ?", (record_id,)).fetchone()
        if row is None:
            matches = self.db.execute("SELECT * FROM records WHERE id LIKE ? || '%' LIMIT 2", (record_id,)).fetchall()
            if len(matches) == 1 and len(record_id) >= 8:
                return RecordRow.from_row(matches[0])
            raise RecordNotFound(f"there is no record {record_id!r} in this archive")
        return RecordRow.from_row(row)

    def records(self, since_seq: int = 0) -> list[RecordRow]:
        rows = self.db.execute("SELECT * FROM records WHERE seq > ? ORDER BY seq", (since_seq,)).fetchall()
        return [RecordRow.from_row(r) for r in rows]

    def by_source(self, source_sha256: str) -> RecordRow | None:
        row = self.db.execute(
            "SELECT * FROM records WHERE source_sha256 = ? ORDER BY seq LIMIT 1", (source_sha256,)
        ).fetchone()
        return None if row is None else RecordRow.from_row(row)

    def wrapped_key(self, record_id: str) -> bytes:
        row = self.db.execute("SELECT wrapped FROM record_keys WHERE record_id = ?", (record_id,)).fetchone()
        if row is None:
            raise IntegrityError(f"record {record_id}: its wrapped key is missing from the catalog")
        return bytes(row[0])

    def max_seq(self) -> int:
        return int(self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM records").fetchone()[0])

    def counts(self) -> dict[str, int]:
        row = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(page_count),0), COALESCE(SUM(blob_size),0),"
            " SUM(client_code IS NULL), SUM(ocr_failed_pages != '') FROM records"
        ).fetchone()
        return {
            "records": int(row[0]),
            "pages": int(row[1]),
            "sealed_bytes": int(row[2]),
            "unfiled": int(row[3] or 0),
            "with_unreadable_pages": int(row[4] or 0),
        }

    def journal_count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM journal").fetchone()[0])

    def quarantine_count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0])

    def last_ingest(self) -> str | None:
        row = self.db.execute("SELECT MAX(created_at) FROM records").fetchone()
        return None if row[0] is None else str(row[0])

    # --- index key ----------------------------------------------------------

    def index_key(self) -> tuple[int, bytes] | None:
        row = self.db.execute("SELECT generation, wrapped FROM index_keys ORDER BY generation DESC LIMIT 1").fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def add_index_key(self, generation: int, key_id: str, wrapped: bytes) -> None:
        self.db.execute(
            "INSERT INTO index_keys(generation, key_id, wrapped, created_at) VALUES (?,?,?,?)",
            (generation, key_id, wrapped, now_utc()),
        )
        # Older generations are useless once re-keyed; keep none (crypto-shredding).
        self.db.execute("DELETE FROM index_keys WHERE generation < ?", (generation,))


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _translate(exc: sqlite3.DatabaseError, path: Path) -> Exception:
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return TransientError(f"the catalog {path.name} is busy (another scanarchive command is writing)")
    if "disk is full" in text or "database or disk is full" in text:
        return TransientError(f"the disk holding {path.parent} is full")
    return IntegrityError(
        f"the catalog {path} is damaged ({exc})",
        hint="Restore catalog.db from your most recent backup; the sealed notes in objects/ are not affected.",
    )
