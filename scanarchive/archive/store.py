"""Content-addressed blob store: objects/ab/cdef…, named by SHA-256 of the ciphertext.

Writes follow restic: temp file -> write -> fsync -> close -> rename -> fsync
the directory; then the blob is made read-only. Only sealed (encrypted)
bytes ever reach this module.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from scanarchive.errors import IntegrityError, TransientError


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
    from scanarchive.errors import UsageError

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


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, digest: str) -> Path:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise IntegrityError(f"{digest!r} is not a blob name")
        return self.root / digest[:2] / digest[2:]

    def put(self, data: bytes) -> str:
        """Store sealed bytes; return their SHA-256 (the blob's name). Idempotent."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.path_for(digest)
        if path.exists() and self.hash_of(digest) == digest:
            return digest
        path.parent.mkdir(mode=0o700, exist_ok=True)
        if path.exists():  # a damaged copy under the right name: replace it
            path.chmod(0o600)
        write_atomic(path, data, mode=0o600)
        path.chmod(0o400)
        return digest

    def get(self, digest: str) -> bytes:
        try:
            return self.path_for(digest).read_bytes()
        except FileNotFoundError as exc:
            raise IntegrityError(f"blob {digest[:12]}… is missing from objects/") from exc

    def hash_of(self, digest: str) -> str:
        h = hashlib.sha256()
        with self.path_for(digest).open("rb") as fp:
            for block in iter(lambda: fp.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()

    def delete(self, digest: str) -> None:
        path = self.path_for(digest)
        path.unlink(missing_ok=True)
        fsync_dir(path.parent)

    def __iter__(self) -> Iterator[str]:
        if not self.root.is_dir():
            return
        for sub in sorted(self.root.iterdir()):
            if sub.is_dir() and len(sub.name) == 2:
                for blob in sorted(sub.iterdir()):
                    if not blob.name.startswith("."):
                        yield sub.name + blob.name
