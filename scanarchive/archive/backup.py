"""Backups that stay consistent and keep shredding effective.

`backup(archive, dest)` makes or refreshes a copy of the archive in `dest`:

- the catalog is copied with SQLite's online backup API (a consistent snapshot
  even while the watcher writes), written to a temp file and renamed;
- every blob the snapshot refers to is copied if missing, and every blob in
  the copy is hash-checked against its name;
- blobs in the copy that the snapshot no longer refers to (destroyed records)
  are DELETED, so a purge reaches the backup at its next run: together with
  the new catalog (which no longer holds the record's wrapped key) the old
  copy becomes unreadable — backups mirror purges;
- decisions/decisions.db (holds, approvals, clients) is snapshotted the same way;
- config.toml, identity.enc, audit.log and certificates/ are copied as they are;
  index.db is not (derived; rebuilt at the first search after a restore).

`restore(src, dest)` copies a backup into a new archive folder and checks it; with
`skip_damaged` it restores every intact blob and lists the damaged ones.
Nothing here needs the passphrase, and nothing is ever decrypted.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from scanarchive.archive import decisions
from scanarchive.archive.layout import CATALOG, CONFIG, IDENTITY, OBJECTS, Archive
from scanarchive.archive.store import BlobStore
from scanarchive.errors import ArchiveExists, IntegrityError, UsageError
from scanarchive.fsio import fsync_dir, write_atomic

COPIED_AS_IS = (CONFIG, IDENTITY, "audit.log")
MARKER = ".scanarchive-backup"


@dataclass
class BackupReport:
    copied: int = 0  # blobs copied now
    kept: int = 0  # blobs already there and intact
    repaired: int = 0  # blobs that were damaged in the copy and copied again
    removed: int = 0  # blobs of destroyed records removed from the copy
    records: int = 0


def _snapshot_catalog(source: Path, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(tmp)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
    finally:
        dst.close()
        src.close()
    tmp.chmod(0o600)
    tmp.replace(target)
    fsync_dir(target.parent)


def _referenced(catalog_file: Path) -> dict[str, set[str]]:
    db = sqlite3.connect(f"file:{catalog_file}?mode=ro", uri=True)
    try:
        objects = {str(r[0]) for r in db.execute("SELECT blob_sha256 FROM records")}
        try:
            held = {str(r[0]) for r in db.execute("SELECT blob_sha256 FROM quarantine")}
        except sqlite3.OperationalError:
            held = set()
    finally:
        db.close()
    return {OBJECTS: objects, "quarantine": held}


def backup(archive: Archive, dest: Path) -> BackupReport:
    """Make or refresh the backup in `dest` (see above); audited (`backup`)."""
    dest = dest.resolve()
    if dest == archive.root.resolve() or archive.root.resolve() in dest.parents:
        raise UsageError("the backup cannot be inside the archive")
    if dest.exists() and any(dest.iterdir()) and not (dest / MARKER).exists():
        raise ArchiveExists(f"{dest} is not empty and is not a scanarchive backup", hint="Choose an empty folder.")
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    (dest / MARKER).write_text("a scanarchive backup: refreshed by 'scanarchive backup', mirrors purges\n")
    report = BackupReport()
    _snapshot_catalog(archive.root / CATALOG, dest / CATALOG)
    if decisions.path_of(archive.root).is_file():  # holds, approvals, clients (archive/decisions.py)
        (dest / decisions.DIR).mkdir(mode=0o700, exist_ok=True)
        _snapshot_catalog(decisions.path_of(archive.root), decisions.path_of(dest))
        for other in (archive.root / decisions.DIR).iterdir():  # e.g. checkpoint.json, as it is
            if other.is_file() and not other.name.startswith((decisions.FILE, ".")):
                write_atomic(dest / decisions.DIR / other.name, other.read_bytes())
    wanted = _referenced(dest / CATALOG)
    for folder, digests in wanted.items():
        source, target = BlobStore(archive.root / folder), BlobStore(dest / folder)
        target.root.mkdir(mode=0o700, exist_ok=True)
        for digest in sorted(digests):
            path = target.path_for(digest)
            if path.exists():
                if target.intact(digest):
                    report.kept += 1
                    continue
                path.chmod(0o600)
                report.repaired += 1
            else:
                report.copied += 1
            data = source.get(digest)
            if hashlib.sha256(data).hexdigest() != digest:
                raise IntegrityError(
                    f"objects/{digest[:12]}… is damaged in the archive itself; run 'scanarchive verify'"
                )
            target.put(data)
        for digest in list(target):
            if digest not in digests:  # a destroyed record: the backup forgets it too
                target.path_for(digest).chmod(0o600)
                target.delete(digest)
                report.removed += 1
    for name in COPIED_AS_IS:
        if (archive.root / name).exists():
            write_atomic(dest / name, (archive.root / name).read_bytes())
    certificates = archive.root / "certificates"
    if certificates.is_dir():
        (dest / "certificates").mkdir(mode=0o700, exist_ok=True)
        for cert in certificates.iterdir():
            write_atomic(dest / "certificates" / cert.name, cert.read_bytes())
    report.records = len(wanted[OBJECTS])
    archive.audit("backup", count=report.records, checked=report.kept + report.copied + report.repaired)
    return report


@dataclass(frozen=True)
class Damaged:
    """A blob of the backup that failed its hash check, and the records whose note it holds."""

    path: str  # e.g. objects/3f/3f2a…, relative to the backup
    records: tuple[str, ...]  # record ids (none: a quarantined scan, or a blob no record names)


@dataclass(frozen=True)
class Restored:
    archive: Archive
    damaged: tuple[Damaged, ...]  # left out (only with skip_damaged)


SKIP_HINT = (
    "Restore from another backup if you have one. Or run 'scanarchive restore --skip-damaged BACKUP' to "
    "restore every other note: it lists the damaged ones, which stay missing until restored from elsewhere."
)


def _records_of(catalog_file: Path, digest: str) -> tuple[str, ...]:
    db = sqlite3.connect(f"file:{catalog_file}?mode=ro", uri=True)
    try:
        return tuple(
            str(r[0]) for r in db.execute("SELECT id FROM records WHERE blob_sha256 = ? ORDER BY seq", (digest,))
        )
    except sqlite3.DatabaseError:
        return ()
    finally:
        db.close()


def restore(src: Path, dest: Path, *, skip_damaged: bool = False) -> Restored:
    """A new archive folder from a backup; every blob is hash-checked on the way.

    A damaged blob stops the restore (nothing is restored) unless skip_damaged: then every intact
    blob is restored, the damaged ones are left out (their records stay in the catalog, so verify
    reports them missing and a later copy can be put back) and listed in the result."""
    if not (src / MARKER).exists() or not (src / CONFIG).exists():
        raise UsageError(f"{src} is not a scanarchive backup")
    if dest.exists() and any(dest.iterdir()):
        raise ArchiveExists(f"{dest} is not empty", hint="Restore into a new folder.")
    tmp = dest.with_name(f".{dest.name}.restoring")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(mode=0o700, parents=True)
    for name in (*COPIED_AS_IS, CATALOG):
        if (src / name).exists():
            write_atomic(tmp / name, (src / name).read_bytes())
    for folder in (OBJECTS, "quarantine", "certificates", decisions.DIR):
        if (src / folder).is_dir():
            shutil.copytree(src / folder, tmp / folder, dirs_exist_ok=True)
    damaged: list[Damaged] = []
    for folder in (OBJECTS, "quarantine"):
        store = BlobStore(tmp / folder)
        for digest in sorted(store):
            if store.intact(digest):
                continue
            where = f"{folder}/{digest[:12]}…"
            if not skip_damaged:
                shutil.rmtree(tmp)
                raise IntegrityError(f"the backup's {where} is damaged; nothing was restored", hint=SKIP_HINT)
            records = _records_of(tmp / CATALOG, digest) if folder == OBJECTS else ()
            damaged.append(Damaged(where, records))
            store.path_for(digest).chmod(0o600)
            store.delete(digest)
    (tmp / OBJECTS).mkdir(mode=0o700, exist_ok=True)
    if dest.exists():
        dest.rmdir()
    tmp.rename(dest)
    restored = Archive(dest)
    lost = sorted({record for d in damaged for record in d.records})
    restored.audit("restore", damaged=lost, **({"count": len(damaged)} if damaged else {}))
    return Restored(restored, tuple(damaged))
