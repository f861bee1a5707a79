"""Exports of one client's records: for a client's records request, or for a successor custodian.

An export holds, for one client code:

    records/<session-date>_<record-id8>.pdf   each record's PDF, exactly as sealed
                                              ("undated_…" for a record without a date)
    manifest.json                             client code, time, archive id, and per record:
                                              id, date, class, pages, blob and PDF SHA-256
    audit-excerpt.jsonl                       the audit entries about this client and these
                                              records (see scanarchive.audit.excerpt)

Psychotherapy notes (record class "psychotherapy", HIPAA 45 CFR 164.501) are
left out unless asked for; the manifest and the command say how many.

Plain export: a NEW folder (0700, files 0600), NOT encrypted.

Encrypted export (``--encrypt-to PASSPHRASE-FILE``): ONE file holding the same
members as an uncompressed POSIX tar, sealed under a passphrase (scanarchive.crypto.exportfile).

Order of work: the `export` audit entry is appended BEFORE any plaintext is
written (no audit entry, no export); if the export then fails, a `failed`
entry follows and the partial output is removed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import shutil
import tarfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Final, Protocol

from scanarchive import audit
from scanarchive.archive.catalog import RecordRow
from scanarchive.archive.layout import Archive
from scanarchive.crypto import exportfile, keys
from scanarchive.errors import IntegrityError, RecordNotFound, TransientError, UsageError
from scanarchive.fsio import fsync_dir, write_new_atomic, write_new_file

EXPORT_FORMAT: Final = "scanarchive-export"
EXPORT_VERSION: Final = 1

MANIFEST: Final = "manifest.json"
EXCERPT: Final = "audit-excerpt.jsonl"
RECORDS: Final = "records"
PSYCHOTHERAPY: Final = "psychotherapy"
LEFT_OUT_REASON: Final = (
    "psychotherapy notes (HIPAA 45 CFR 164.501) are left out of a client's export unless it is asked for "
    "with --include-psychotherapy"
)


@dataclass(frozen=True)
class ExportedRecord:
    id: str
    session_date: str | None
    record_class: str
    pages: int
    blob_sha256: str
    pdf_sha256: str
    file: str  # path inside the export, e.g. "records/2026-11-20_82c71262.pdf"


@dataclass
class ExportResult:
    dest: Path
    client: str
    encrypted: bool
    records: list[ExportedRecord]
    left_out: int  # psychotherapy notes not exported
    audit_seq: int  # the export's own entry in audit.log
    audit_intact: bool
    manifest: dict[str, Any] = field(default_factory=dict)


# --- what is exported ---------------------------------------------------------------------


def client_records(archive: Archive, client: str) -> list[RecordRow]:
    """Every record of one client code, by session date (undated last), then by the order sealed."""
    rows = [r for r in archive.catalog.records() if r.client_code == client]
    return sorted(rows, key=lambda r: (r.session_date is None, r.session_date or "", r.seq))


def plan(archive: Archive, client: str, include_psychotherapy: bool) -> tuple[list[RecordRow], list[RecordRow]]:
    """(records to export, psychotherapy notes left out). RecordNotFound if the client has no record."""
    rows = client_records(archive, client)
    if not rows:
        raise RecordNotFound(f"there are no records for client {client} in this archive")
    if include_psychotherapy:
        return rows, []
    return [r for r in rows if r.record_class != PSYCHOTHERAPY], [r for r in rows if r.record_class == PSYCHOTHERAPY]


def file_name(record: RecordRow, taken: set[str]) -> str:
    day = record.session_date or "undated"
    name = f"{RECORDS}/{day}_{record.id[:8]}.pdf"
    if name in taken:  # two records of one day whose ids start alike: use the whole id
        name = f"{RECORDS}/{day}_{record.id}.pdf"
    taken.add(name)
    return name


# --- where it goes ------------------------------------------------------------------------


class _Sink(Protocol):
    def add(self, name: str, data: bytes) -> None: ...


class _FolderSink:
    """Files 0600 in a folder 0700 that this export created itself."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dirs: set[Path] = {root}

    def add(self, name: str, data: bytes) -> None:
        path = self.root / name
        if path.parent not in self.dirs:
            path.parent.mkdir(mode=0o700)
            self.dirs.add(path.parent)
        write_new_file(path, data)

    def finish(self) -> None:
        for directory in sorted(self.dirs, key=lambda p: len(p.parts), reverse=True):
            fsync_dir(directory)
        fsync_dir(self.root.parent)


class _TarSink:
    """An uncompressed POSIX tar in memory (it is sealed as a whole)."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buffer, mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115 - closed by finish()
        self.dirs: set[str] = set()
        self.mtime = int(time.time())

    def add(self, name: str, data: bytes) -> None:
        parent = str(PurePosixPath(name).parent)
        if parent != "." and parent not in self.dirs:
            info = tarfile.TarInfo(parent)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o700, self.mtime
            self.tar.addfile(info)
            self.dirs.add(parent)
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o600, self.mtime
        self.tar.addfile(info, io.BytesIO(data))

    def finish(self) -> bytes:
        self.tar.close()
        return self.buffer.getvalue()


# --- the export ---------------------------------------------------------------------------


def export_client(
    archive: Archive,
    identity: keys.Identity,
    client: str,
    dest: Path,
    *,
    include_psychotherapy: bool = False,
    encrypt_passphrase: str | None = None,
    log_n: int = exportfile.EXPORT_LOG_N,
) -> ExportResult:
    """Write one client's export to `dest`, a new folder (or, encrypted, a new file).

    Appends the `export` audit entry before anything is written; any failure
    after it appends a `failed` entry and removes what was written.
    """
    encrypted = encrypt_passphrase is not None
    if encrypt_passphrase == "":
        raise UsageError("an empty export passphrase is not allowed", hint="Choose a passphrase of several words.")
    if dest.exists() or dest.is_symlink():
        what = "file" if encrypted else "folder"
        raise UsageError(f"{dest} already exists; an export is always written to a new {what}")
    if not dest.parent.is_dir():
        raise UsageError(f"the folder {dest.parent} does not exist")
    rows, left_out = plan(archive, client, include_psychotherapy)
    log = audit.log_path(archive.root)
    entry = audit.append(
        log,
        "export",
        client=client,
        records=[r.id for r in rows],
        count=len(rows),
        excluded=len(left_out),
        include_psychotherapy=include_psychotherapy,
        encrypted=encrypted,
    )
    created_dir = False
    try:
        sink: _FolderSink | _TarSink
        if encrypted:
            sink = _TarSink()
        else:
            old_umask = os.umask(0o077)
            try:
                dest.mkdir(mode=0o700)  # exclusive: fails if it appeared meanwhile
            except FileExistsError as exc:
                raise UsageError(f"{dest} already exists; an export is always written to a new folder") from exc
            finally:
                os.umask(old_umask)
            created_dir = True
            sink = _FolderSink(dest)
        exported = _write_records(archive, identity, rows, sink)
        report = audit.verify(log)
        manifest = _manifest(archive, client, entry, exported, left_out, include_psychotherapy, encrypted, report)
        sink.add(MANIFEST, (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
        lines = audit.excerpt(log, client, {r.id for r in exported})
        sink.add(EXCERPT, b"".join(audit.canonical(e) + b"\n" for e in lines))
        if isinstance(sink, _TarSink):
            assert encrypt_passphrase is not None
            write_new_atomic(dest, exportfile.seal_export(sink.finish(), encrypt_passphrase, log_n))
        else:
            sink.finish()
    except BaseException as exc:
        if created_dir:
            shutil.rmtree(dest, ignore_errors=True)
        with contextlib.suppress(OSError, ValueError, IntegrityError):  # the failure itself is what the user sees
            audit.append(log, "failed", command="export", code=type(exc).__name__, client=client)
        if isinstance(exc, OSError) and not isinstance(exc, FileExistsError):
            raise _os_error(exc, dest) from exc
        raise
    return ExportResult(
        dest, client, encrypted, exported, len(left_out), int(entry["seq"]), report.ok, manifest=manifest
    )


def _write_records(
    archive: Archive, identity: keys.Identity, rows: list[RecordRow], sink: _Sink
) -> list[ExportedRecord]:
    exported: list[ExportedRecord] = []
    taken: set[str] = set()
    for record in rows:
        data = archive.open_section(identity, record, "pdf")  # IntegrityError names the record
        name = file_name(record, taken)
        sink.add(name, data)
        exported.append(
            ExportedRecord(
                id=record.id,
                session_date=record.session_date,
                record_class=record.record_class,
                pages=record.page_count,
                blob_sha256=record.blob_sha256,
                pdf_sha256=hashlib.sha256(data).hexdigest(),
                file=name,
            )
        )
    return exported


def _manifest(
    archive: Archive,
    client: str,
    entry: dict[str, Any],
    exported: list[ExportedRecord],
    left_out: list[RecordRow],
    include_psychotherapy: bool,
    encrypted: bool,
    report: audit.AuditReport,
) -> dict[str, Any]:
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "client": client,
        "exported_at": entry["at"],
        "exported_by": entry["actor"],
        "archive_id": archive.config.archive_id,
        "encrypted": encrypted,
        "include_psychotherapy": include_psychotherapy,
        "records": [asdict(r) for r in exported],
        "left_out": {"psychotherapy": len(left_out), "reason": LEFT_OUT_REASON if left_out else ""},
        "audit_excerpt": EXCERPT,
        # The archive's audit log as it stood right after this export's entry: keep the head to
        # show later that no line up to it was changed or removed.
        "audit_log": {"entry": entry["seq"], "entries": report.entries, "head": report.head, "intact": report.ok},
    }


def _safe_parts(name: str) -> tuple[str, ...] | None:
    """The member's path parts if it is a plain relative path inside the export, else None."""
    if not name or "\x00" in name or "\\" in name or name.startswith("/"):
        return None
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if not parts or any(p == ".." for p in parts):
        return None
    return parts


def extract_tar(tar_bytes: bytes, dest: Path) -> list[str]:
    """Extract an export's tar into `dest`, a NEW folder (0700, files 0600); return the files' names.

    Only regular files and folders with plain relative names are accepted: an
    absolute name, a `..` part, a link or a device refuses the whole archive
    (IntegrityError) and removes what was written. tarfile's own extraction
    is not used.
    """
    try:
        dest.mkdir(mode=0o700)
    except FileExistsError as exc:
        raise UsageError(f"{dest} already exists; choose a new folder") from exc
    except FileNotFoundError as exc:
        raise UsageError(f"the folder {dest.parent} does not exist") from exc
    written: list[str] = []
    try:
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
            for member in tar:
                parts = _safe_parts(member.name)
                if parts is None or not (member.isreg() or member.isdir()):
                    raise IntegrityError(
                        f"the export holds an unsafe entry ({member.name[:80]!r}); nothing was kept",
                        hint="Ask whoever made the export for a new one.",
                    )
                target = dest.joinpath(*parts)
                if member.isdir():
                    _mkdirs(dest, parts)
                    continue
                _mkdirs(dest, parts[:-1])
                source = tar.extractfile(member)
                if source is None:
                    raise IntegrityError("the export's archive is damaged")
                try:
                    write_new_file(target, source.read())
                except FileExistsError as exc:
                    raise IntegrityError(f"the export names {'/'.join(parts)!r} twice; nothing was kept") from exc
                written.append("/".join(parts))
        for directory in {dest.joinpath(*PurePosixPath(n).parts[:-1]) for n in written} | {dest}:
            fsync_dir(directory)
        fsync_dir(dest.parent)
    except tarfile.TarError as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise IntegrityError("the export's archive is damaged (it is not a readable tar)") from exc
    except OSError as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise _os_error(exc, dest) from exc
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return written


def _mkdirs(root: Path, parts: tuple[str, ...]) -> None:
    path = root
    for part in parts:
        path = path / part
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            raise IntegrityError("the export's archive is damaged (a folder is also a file)")
        if not path.exists():
            path.mkdir(mode=0o700)


def _os_error(exc: OSError, where: Path) -> Exception:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return TransientError(f"the disk holding {where} is full; nothing was kept")
    return UsageError(f"could not write {where} ({exc.strerror}); nothing was kept")
