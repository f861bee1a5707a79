"""Files the watcher will not read at all: put aside, unread, where a person finds them, with a note.

A pipe, a device, a symbolic link, a file over ingest.max_file_mb, a sparse file, or a
file swapped while it was being taken is never opened for reading, sealed or deleted.
It is renamed (never copied, never followed) into the drop folder's failed/ as
`<name>.<token>.refused`, next to `<name>.<token>.txt` saying why. If failed/ cannot be
used (see safety.open_failed) it gets a hidden name in the drop folder instead,
`.scanarchive-refused-<token>-<name>`, and the log says so.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import secrets
from pathlib import Path

from scanarchive.clock import now_utc
from scanarchive.errors import IntegrityError
from scanarchive.fsio import open_dir, write_new_in
from scanarchive.intake.safety import open_failed
from scanarchive.names import printable

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


def safe_stem(name: str) -> str:
    """A file name that is harmless anywhere: letters, digits, '._ -' only."""
    return _UNSAFE.sub("_", name).lstrip(".")[:100] or "file"


def note_text(source_name: str, reason: str, where: str) -> str:
    return (
        f'scanarchive did not archive the file "{printable(source_name)}" ({now_utc()}).\n'
        f"\n"
        f"Reason: {printable(reason)}\n"
        f"\n"
        f"The file was not read, sealed, changed or deleted. It was moved, unread, to\n"
        f"  {printable(where)}\n"
        f"Look at what it is (ls -l), then delete it, or put a proper scan in the drop folder.\n"
        f"This note contains no part of the file.\n"
    )


def set_aside(drop: Path, src_dir_fd: int, name: str, source_name: str, reason: str, *, note: bool = True) -> str:
    """Rename `name` (in the folder `src_dir_fd`: the drop folder or journal/) unread to failed/, with a
    note unless `note` is False; return where it now is (for the log and the caller), "" if it vanished."""
    token = secrets.token_hex(4)
    stem = safe_stem(source_name)
    try:
        failed_fd = open_failed(drop)
    except (IntegrityError, OSError) as exc:
        text = exc.message if isinstance(exc, IntegrityError) else type(exc).__name__
        log.warning("failed/ is not used (%s)", printable(text))
    else:
        try:
            aside = f"{stem}.{token}.refused"
            os.rename(name, aside, src_dir_fd=src_dir_fd, dst_dir_fd=failed_fd)
            os.fsync(failed_fd)
            where = str(drop / "failed" / aside)
            if note:
                try:
                    write_new_in(failed_fd, f"{stem}.{token}.txt", note_text(source_name, reason, where).encode(), 0o644)
                except OSError as exc:
                    log.warning("the note for a refused file could not be written (%s)", exc.strerror)
            return where
        except FileNotFoundError:
            return ""
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                log.warning("a refused file could not be moved to failed/ (%s)", exc.strerror)
        finally:
            os.close(failed_fd)
    hidden = f".scanarchive-refused-{token}-{stem}"  # dot names are never taken by the watcher
    drop_fd = open_dir(drop)
    try:
        os.rename(name, hidden, src_dir_fd=src_dir_fd, dst_dir_fd=drop_fd)
        os.fsync(drop_fd)
        return str(drop / hidden)
    except FileNotFoundError:
        return ""
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    finally:
        os.close(drop_fd)
    # journal/ on another filesystem than the drop folder: keep it there, under a name recovery ignores
    local = f"refused-{token}-{stem}"
    os.rename(name, local, src_dir_fd=src_dir_fd, dst_dir_fd=src_dir_fd)
    os.fsync(src_dir_fd)
    return f"journal/{local} in the archive"
