"""The quarantine seen from the drop folder: the note for a person in failed/, retry and drop.

The sealed scans themselves are scanarchive.archive.quarantine. A plain-text
note in the drop folder's failed/ says what went wrong and which command
recovers the scan; it holds no content. `retry` and `drop` write their own
audit entries (`failed` with `command` retry or drop; `show` is audited in
scanarchive.archive.quarantine).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from scanarchive.archive import quarantine
from scanarchive.archive.layout import Archive
from scanarchive.archive.quarantine import Entry
from scanarchive.crypto import keys
from scanarchive.errors import IntegrityError
from scanarchive.fsio import write_new_in
from scanarchive.ingest.pipeline import IngestResult, ingest_file
from scanarchive.intake.safety import open_failed
from scanarchive.names import printable
from scanarchive.tempdir import private_tempdir

log = logging.getLogger(__name__)


def retry(archive: Archive, identity: keys.Identity, entry: Entry) -> IngestResult:
    """Archive a quarantined scan again; on success it leaves the quarantine. Audited.

    Rejected again (InputRejected), the entry is kept and nothing is audited.
    """
    data = quarantine.open_scan(archive, identity, entry)
    with private_tempdir() as tmp:
        path = tmp / "scan"
        path.write_bytes(data)
        result = ingest_file(archive, path, source_name=quarantine.name(entry, identity))
    remove(archive, entry, identity)
    archive.audit("failed", item=entry.id, command="retry", **result.audit_fields())
    return result


def drop(archive: Archive, identity: keys.Identity, entry: Entry) -> None:
    """Discard a quarantined scan for good (crypto-shredding); audited. The identity opens where
    its note is (sealed, as the note carries the scan's name)."""
    remove(archive, entry, identity)
    archive.audit("failed", item=entry.id, command="drop")


def remove(archive: Archive, entry: Entry, identity: keys.Identity) -> None:
    """Forget a quarantined scan (its key, row and blob) and remove its note from failed/.

    The note is unlinked by name through a descriptor of failed/ (safety.open_failed), so a
    failed/ swapped for a link since the note was written never makes this delete elsewhere."""
    where = quarantine.note(entry, identity)
    quarantine.forget(archive, entry)
    if not where:
        return
    note = Path(where)
    try:
        failed_fd = open_failed(note.parent.parent)
    except (OSError, IntegrityError) as exc:
        log.warning("the note of quarantined scan %s was left in failed/ (%s)", entry.id, type(exc).__name__)
        return
    try:
        os.unlink(note.name, dir_fd=failed_fd)
    except FileNotFoundError:
        pass
    finally:
        os.close(failed_fd)


_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


def write_note(archive: Archive, drop: Path, entry: Entry) -> Path:
    """failed/<scan name>.txt in the drop folder: the reason and how to recover, nothing of the content.

    Written through a descriptor of failed/ (safety.open_failed refuses, with IntegrityError saying why,
    a failed/ that is a link, another user's, or writable by others without the sticky bit), under a
    random temp name with O_EXCL|O_NOFOLLOW, then link(): never through a planted link, never over a file."""
    stem = _UNSAFE.sub("_", entry.source_name)[:120] or "scan"
    text = (
        f'scanarchive could not archive the scan "{printable(entry.source_name)}" ({entry.created_at}).\n'
        f"\n"
        f"Reason: {printable(entry.reason)}\n"
        f"\n"
        f"The scan was NOT lost. It was removed from this folder and sealed (encrypted)\n"
        f"in the archive's quarantine as {entry.id}.\n"
        f"\n"
        f"  Look at it:   scanarchive failed show {entry.id} -o {stem}\n"
        f"  Try again:    scanarchive failed retry {entry.id}\n"
        f"  Discard it:   scanarchive failed drop {entry.id}\n"
        f"  All of them:  scanarchive failed list\n"
        f"\n"
        f"This note contains no part of the scan. It is removed when the scan is retried or discarded.\n"
    )
    failed_fd = open_failed(drop)
    try:
        name = f"{stem}.txt"
        try:
            write_new_in(failed_fd, name, text.encode("utf-8"), mode=0o644)
        except FileExistsError:
            name = f"{stem}.{entry.id[:8]}.txt"
            write_new_in(failed_fd, name, text.encode("utf-8"), mode=0o644)
    finally:
        os.close(failed_fd)
    note = drop / "failed" / name
    quarantine.set_note(archive, entry, str(note))
    log.info("quarantined %s: %s", entry.id, printable(entry.reason))
    return note
