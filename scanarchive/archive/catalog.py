"""catalog.db: records, wrapped keys and (later) retention facts. No clinical content.

Plain SQLite, because the unattended jobs (watcher, purge) must use it without
the passphrase. It holds client codes (the practice's pseudonyms), dates,
hashes and keys wrapped to the recipient — never OCR text or names.
Schema changes are numbered migrations tracked in PRAGMA user_version.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from scanarchive.archive import decisions
from scanarchive.clock import now_utc
from scanarchive.errors import IntegrityError, RecordDestroyed, RecordNotFound, TransientError

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
    # 3: identification (note sheets, split stacks), scan quality per page, and filing history.
    """
    ALTER TABLE records ADD COLUMN source_pages TEXT NOT NULL DEFAULT '';
    ALTER TABLE records ADD COLUMN blank_pages INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE records ADD COLUMN identified_by TEXT NOT NULL DEFAULT '';
    ALTER TABLE records ADD COLUMN changed_seq INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE page_qc (
        record_id TEXT NOT NULL REFERENCES records(id) ON DELETE CASCADE,
        page INTEGER NOT NULL,
        source_page INTEGER NOT NULL,
        dpi INTEGER,
        contrast INTEGER NOT NULL,
        skew REAL,
        problems TEXT NOT NULL DEFAULT '',
        warnings TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (record_id, page)
    );
    CREATE TABLE changes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        record_id TEXT NOT NULL,
        field TEXT NOT NULL,
        old TEXT,
        new TEXT,
        at TEXT NOT NULL
    );
    """,
    # 4: retention: clients' trigger facts, legal holds, approvals, and tombstones of destroyed records.
    """
    CREATE TABLE clients (
        code TEXT PRIMARY KEY,
        date_of_birth TEXT,
        termination TEXT,
        date_of_death TEXT,
        last_entry TEXT,
        last_service TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE holds (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        client_code TEXT,
        record_id TEXT,
        reason TEXT NOT NULL,
        placed_by TEXT NOT NULL,
        placed_at TEXT NOT NULL,
        released_at TEXT
    );
    CREATE UNIQUE INDEX holds_active_name ON holds(name) WHERE released_at IS NULL;
    CREATE TABLE approvals (
        record_id TEXT PRIMARY KEY REFERENCES records(id) ON DELETE CASCADE,
        approved_by TEXT NOT NULL,
        approved_at TEXT NOT NULL,
        destroy_after TEXT NOT NULL
    );
    CREATE TABLE tombstones (
        record_id TEXT PRIMARY KEY,
        client_code TEXT,
        record_class TEXT NOT NULL,
        session_date TEXT,
        page_count INTEGER NOT NULL,
        blob_sha256 TEXT NOT NULL,
        destroy_after TEXT NOT NULL,
        preset_id TEXT NOT NULL,
        preset_name TEXT NOT NULL,
        citation TEXT NOT NULL,
        mandate TEXT NOT NULL,
        approved_by TEXT NOT NULL,
        approved_at TEXT NOT NULL,
        destroyed_at TEXT NOT NULL,
        method TEXT NOT NULL
    );
    """,
    # 5: keyed bindings of records to their blob and wrapped key (archive/checkpoint.py).
    """
    CREATE TABLE bindings (
        record_id TEXT PRIMARY KEY REFERENCES records(id) ON DELETE CASCADE,
        mac TEXT NOT NULL,
        bound_at TEXT NOT NULL
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
RECORD_CLASSES = ("progress", "psychotherapy")


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
    source_pages: str = ""  # which pages of the scanned file this record holds, e.g. "1-2" or "3,5"
    blank_pages: int = 0  # blank pages (duplex backs) dropped from this record
    identified_by: str = ""  # "sheet" | "filename" | "command line" | "" (unfiled)
    changed_seq: int = 0

    @property
    def filed(self) -> bool:
        return self.client_code is not None and self.session_date is not None

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
            source_pages=row["source_pages"],
            blank_pages=row["blank_pages"],
            identified_by=row["identified_by"],
            changed_seq=row["changed_seq"],
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
            # clients, holds and approvals live in decisions/decisions.db (archive/decisions.py)
            self.decisions_attached = decisions.attach(self.db, path.parent)
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
            " source_sha256, source_kind, blob_sha256, blob_size, created_at, status, source_pages, blank_pages,"
            " identified_by) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
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
                row.source_pages,
                row.blank_pages,
                row.identified_by,
            ),
        )
        self.db.execute("INSERT INTO record_keys(record_id, key_id, wrapped) VALUES (?,?,?)", (row.id, key_id, wrapped))

    def record(self, record_id: str) -> RecordRow:
        row = self.db.execute("SELECT * FROM records WHERE id = ?", (record_id,)).fetchone()
        if row is None:
            matches = self.db.execute("SELECT * FROM records WHERE id LIKE ? || '%' LIMIT 2", (record_id,)).fetchall()
            if len(matches) == 1 and len(record_id) >= 8:
                return RecordRow.from_row(matches[0])
            stone = self.db.execute(
                "SELECT record_id, destroyed_at, preset_name, citation FROM tombstones"
                " WHERE record_id = ? OR (length(?) >= 8 AND record_id LIKE ? || '%')",
                (record_id, record_id, record_id),
            ).fetchone()
            if stone is not None:
                raise RecordDestroyed(
                    f"record {stone[0]} was destroyed on {stone[1][:10]} under the retention rule "
                    f"'{stone[2]}' ({stone[3]})"
                )
            raise RecordNotFound(f"there is no record {record_id!r} in this archive")
        return RecordRow.from_row(row)

    def records(self, since_seq: int = 0) -> list[RecordRow]:
        rows = self.db.execute("SELECT * FROM records WHERE seq > ? ORDER BY seq", (since_seq,)).fetchall()
        return [RecordRow.from_row(r) for r in rows]

    def all_by_source(self, source_sha256: str) -> list[RecordRow]:
        rows = self.db.execute("SELECT * FROM records WHERE source_sha256 = ? ORDER BY seq", (source_sha256,))
        return [RecordRow.from_row(r) for r in rows]

    def unfiled(self) -> list[RecordRow]:
        rows = self.db.execute("SELECT * FROM records WHERE client_code IS NULL OR session_date IS NULL ORDER BY seq")
        return [RecordRow.from_row(r) for r in rows]

    def add_page_qc(
        self,
        record_id: str,
        page: int,
        source_page: int,
        dpi: int | None,
        contrast: int,
        skew: float | None,
        problems: list[str],
        warnings: list[str],
    ) -> None:
        self.db.execute(
            "INSERT INTO page_qc(record_id, page, source_page, dpi, contrast, skew, problems, warnings)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (record_id, page, source_page, dpi, contrast, skew, "; ".join(problems), "; ".join(warnings)),
        )

    def file_record(self, record_id: str, changes: dict[str, str | None]) -> None:
        """Change a record's metadata (the only way it changes), keeping old and new values."""
        current = self.record(record_id)
        seq = int(self.get_meta("change_seq") or 0) + 1
        for field, new in changes.items():
            old = getattr(current, field)
            if old == new:
                continue
            self.db.execute(f"UPDATE records SET {field} = ? WHERE id = ?", (new, current.id))  # noqa: S608 - ours
            self.db.execute(
                "INSERT INTO changes(record_id, field, old, new, at) VALUES (?,?,?,?,?)",
                (current.id, field, old, new, now_utc()),
            )
        self.db.execute(
            "UPDATE records SET changed_seq = ?, identified_by = 'filed by hand' WHERE id = ?", (seq, current.id)
        )
        self.set_meta("change_seq", str(seq))

    def changed_since(self, change_seq: int) -> list[RecordRow]:
        rows = self.db.execute("SELECT * FROM records WHERE changed_seq > ? ORDER BY changed_seq", (change_seq,))
        return [RecordRow.from_row(r) for r in rows]

    def history(self, record_id: str) -> list[tuple[str, str | None, str | None, str]]:
        rows = self.db.execute("SELECT field, old, new, at FROM changes WHERE record_id = ? ORDER BY id", (record_id,))
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def sheet_key(self) -> bytes:
        """The note-sheet MAC key, made on first use (sheets printed before and after verify alike)."""
        value = self.get_meta("sheet_key")
        if value is None:
            with self.transaction():
                value = self.get_meta("sheet_key")
                if value is None:
                    value = os.urandom(32).hex()
                    self.set_meta("sheet_key", value)
        return bytes.fromhex(value)

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
            " SUM(client_code IS NULL OR session_date IS NULL), SUM(ocr_failed_pages != '') FROM records"
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
