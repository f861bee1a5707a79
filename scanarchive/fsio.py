"""Writing files safely: the bottom layer every other module may use.

Everything here is about *how* bytes reach the disk — fsync, no-overwrite
creation, atomic replacement — never about what they mean. Writes follow
restic: temp file -> write -> fsync -> close -> rename -> fsync the directory.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from scanarchive.errors import TransientError, UsageError


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Create `path` (never over an existing file or through a link) and fsync it."""
    _write_all(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode), data)


def write_new_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write `path` whole or not at all, and never over an existing file (temp, fsync, link):
    no race between "does it exist?" and the write."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write_new_file(tmp, data, mode)
        try:
            os.link(tmp, path)  # fails if path exists
        except FileExistsError as exc:
            raise UsageError(f"{path} already exists; choose a new file name") from exc
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write a file so that a crash leaves either the old file or the whole new one."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        _write_all(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), data)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise TransientError(f"the disk holding {path.parent} is full") from exc
        raise
