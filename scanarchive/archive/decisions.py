"""decisions/decisions.db: the archive owner's decisions — clients' retention facts, legal holds, approvals.

They are kept out of catalog.db because the unattended watcher must write catalog.db (its journal rows
and new records) and SQLite has no per-table permissions: whoever may write a database file (and its
folder, for -wal/-shm) may change every row in it. With separated accounts (docs/threat-model.md,
"Accounts: who may write what") `decisions/` is 2750 and `decisions.db` 0640, owned by the archive
owner: the watcher and the purge can read them, only the owner can write them, and the watcher cannot
plant a hot journal (`decisions.db-journal`) there because it cannot create files in `decisions/`.

Every catalog connection ATTACHes the file as schema `decisions`, read-write when this process may
write it, else read-only (the permissions decide, see `attach`). The tables keep their names, so unqualified SQL (`SELECT … FROM holds`) finds
them once they are no longer in catalog.db: `attach` moves them out of an older catalog on the first
open that may write both files (copy, commit, then drop from catalog.db; a crash in between only
repeats the copy, which ignores rows already there). The file uses a rollback journal, not WAL, so a
read-only reader needs no -shm it could write.

A move across two files is not one atomic commit: a purge that deletes a record (catalog.db) and its
approval (here) can, after a crash, leave an approval without a record (ignored) or a record without
its approval (kept until approved again). Both err on keeping the note.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

from scanarchive.errors import IntegrityError
from scanarchive.fsio import folder_mode, make_dir

DIR = "decisions"
FILE = "decisions.db"
SCHEMA = "decisions"
TABLES = ("clients", "holds", "approvals")
SCHEMA_VERSION = 1

_CREATE = (
    """CREATE TABLE decisions.clients (
        code TEXT PRIMARY KEY,
        date_of_birth TEXT,
        termination TEXT,
        date_of_death TEXT,
        last_entry TEXT,
        last_service TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )""",
    """CREATE TABLE decisions.holds (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        client_code TEXT,
        record_id TEXT,
        reason TEXT NOT NULL,
        placed_by TEXT NOT NULL,
        placed_at TEXT NOT NULL,
        released_at TEXT
    )""",
    "CREATE UNIQUE INDEX decisions.holds_active_name ON holds(name) WHERE released_at IS NULL",
    # No foreign key to records(id): SQLite cannot reference another file. The purge deletes a
    # record's approval itself (retention/purge.py); an approval without a record is never used.
    """CREATE TABLE decisions.approvals (
        record_id TEXT PRIMARY KEY,
        approved_by TEXT NOT NULL,
        approved_at TEXT NOT NULL,
        destroy_after TEXT NOT NULL
    )""",
)


def path_of(root: Path) -> Path:
    return root / DIR / FILE


def writable(root: Path) -> bool:
    """May this process write the decisions (and create the file and its journal)?"""
    folder, file = root / DIR, path_of(root)
    if file.exists():
        return os.access(file, os.W_OK) and os.access(folder, os.W_OK | os.X_OK)
    if folder.exists():
        return os.access(folder, os.W_OK | os.X_OK)
    return os.access(root, os.W_OK | os.X_OK)


def attach(db: sqlite3.Connection, root: Path) -> bool:
    """ATTACH decisions.db to a catalog connection (see the module docstring). Creates the file and
    moves the tables out of catalog.db when this process may write both. False when it was not
    attached (it does not exist and cannot be made here): the tables then stay where they are."""
    file = path_of(root)
    can_write = writable(root)
    if not file.exists():
        if not can_write:
            return False
        _create_file(root)
    try:
        # A plain file name (the catalog's connection takes no URIs): without write permission SQLite
        # opens it read-only by itself, and a write fails with "attempt to write a readonly database".
        db.execute("ATTACH DATABASE ? AS decisions", (str(file),))
        if can_write:
            for pragma in ("journal_mode=DELETE", "secure_delete=ON", "synchronous=FULL"):
                db.execute(f"PRAGMA decisions.{pragma}")
            _create_schema(db)
            _move_from_catalog(db)
    except sqlite3.DatabaseError as exc:
        raise IntegrityError(
            f"the decisions file {file} cannot be used ({exc})",
            hint="Restore decisions/decisions.db from your most recent backup; the sealed notes are not affected.",
        ) from exc
    return True


def _create_file(root: Path) -> None:
    """An empty file, 0600 (0640 in a setgid folder), never through a link, before SQLite opens it:
    SQLite would make it 0644 under a loose umask."""
    folder = root / DIR
    if not folder.exists():
        make_dir(folder, 0o700)
    fd = os.open(
        path_of(root),
        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
        folder_mode(folder, 0o600, writable_by_group=False),
    )
    try:
        os.fchmod(fd, folder_mode(folder, 0o600, writable_by_group=False))
    finally:
        os.close(fd)


def _tables(db: sqlite3.Connection, schema: str) -> set[str]:
    rows = db.execute(f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table'")  # noqa: S608 - ours
    return {str(r[0]) for r in rows}


def _create_schema(db: sqlite3.Connection) -> None:
    version = int(db.execute("PRAGMA decisions.user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(f"decisions.db has schema version {version}; this scanarchive knows up to 1")
    if version == SCHEMA_VERSION:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        for statement in _CREATE:
            db.execute(statement)
        db.execute(f"PRAGMA decisions.user_version = {SCHEMA_VERSION}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _columns(db: sqlite3.Connection, schema: str, table: str) -> list[str]:
    return [str(r[1]) for r in db.execute(f"PRAGMA {schema}.table_info({table})")]


def _move_from_catalog(db: sqlite3.Connection) -> None:
    """Copy the decision tables out of catalog.db (commit), then drop them there (commit)."""
    found = [t for t in TABLES if t in _tables(db, "main")]
    if not found:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        for table in found:
            wanted = set(_columns(db, SCHEMA, table))
            cols = ", ".join(c for c in _columns(db, "main", table) if c in wanted)
            db.execute(f"INSERT OR IGNORE INTO decisions.{table} ({cols}) SELECT {cols} FROM main.{table}")  # noqa: S608
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    db.execute("BEGIN IMMEDIATE")
    try:
        for table in found:
            db.execute(f"DROP TABLE main.{table}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def is_private_folder(root: Path) -> bool:
    """decisions/ is writable by its owner only (the separated layout's promise to the owner)."""
    st = os.lstat(root / DIR)
    return stat.S_ISDIR(st.st_mode) and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
