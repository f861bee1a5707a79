"""Content-addressed blob store: objects/ab/cdef…, named by SHA-256 of the ciphertext.

Writes follow restic: temp file -> write -> fsync -> close -> rename -> fsync
the directory; then the blob is made read-only. Only sealed (encrypted)
bytes ever reach this module.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from scanarchive.errors import IntegrityError
from scanarchive.fsio import disk_full, folder_mode, fsync_dir, make_dir, new_temp, write_atomic

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer


class _Hashing(io.BufferedWriter):
    """A file being written that hashes and counts every byte written through it."""

    def __init__(self, raw: io.RawIOBase) -> None:
        super().__init__(raw, buffer_size=1 << 20)
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: ReadableBuffer, /) -> int:
        view = memoryview(data)
        self.sha256.update(view)
        self.size += view.nbytes
        return super().write(view)


STALE_TEMP_SECONDS = 600.0  # a blob write takes seconds; an older, unlocked temp is a killed write's


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
        if self.intact(digest):
            return digest
        with suppress(FileExistsError):
            make_dir(path.parent, 0o700)  # in a setgid store (separated accounts): its mode and group
        if path.exists():  # a damaged copy under the right name: replace it
            path.chmod(0o600)
        write_atomic(path, data, mode=0o600)
        path.chmod(folder_mode(path.parent, 0o400))  # 0400, or 0440 for the shared group
        return digest

    def put_stream(self, fill: Callable[[BinaryIO], object]) -> tuple[str, int]:
        """Store the sealed bytes `fill` writes, never held whole: they go straight into a temp file
        in the store (hashed on the way) -> fsync -> rename to their SHA-256 -> fsync the folders;
        then read-only, as put. Idempotent: an intact blob of that name is kept, the temp dropped.
        (Their SHA-256, their size.)"""
        tmp, fd = new_temp(self.root, "put")
        fcntl.flock(fd, fcntl.LOCK_EX)  # held while it is written: sweep_temps leaves a live write alone
        try:
            with _Hashing(io.FileIO(fd, "wb")) as out:
                fill(out)
                out.flush()
                os.fsync(fd)
            digest, size = out.sha256.hexdigest(), out.size
            path = self.path_for(digest)
            if self.intact(digest):
                tmp.unlink()
                return digest, size
            with suppress(FileExistsError):
                make_dir(path.parent, 0o700)  # in a setgid store (separated accounts): its mode and group
            if path.exists():  # a damaged copy under the right name: replace it
                path.chmod(0o600)
            os.replace(tmp, path)
            fsync_dir(path.parent)
            fsync_dir(self.root)  # the temp's name is gone from here
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            full = disk_full(exc, self.root) if isinstance(exc, OSError) else None
            if full is not None:
                raise full from exc
            raise
        path.chmod(folder_mode(path.parent, 0o400))  # 0400, or 0440 for the shared group
        return digest, size

    def open(self, digest: str) -> BinaryIO:
        """The blob, open to read (the caller closes it)."""
        try:
            return self.path_for(digest).open("rb")
        except FileNotFoundError as exc:
            raise IntegrityError(f"blob {digest[:12]}… is missing from objects/") from exc

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

    def intact(self, digest: str) -> bool:
        """The blob exists and hashes to its name."""
        try:
            return self.hash_of(digest) == digest
        except FileNotFoundError:
            return False

    def delete(self, digest: str) -> None:
        path = self.path_for(digest)
        path.unlink(missing_ok=True)
        fsync_dir(path.parent)

    def sweep_temps(self, older_than: float = STALE_TEMP_SECONDS) -> int:
        """Remove the temp files a killed write left behind (sealed bytes only, never a blob): those in the
        store and its subfolders whose name is a temp's, untouched for `older_than` seconds and not locked
        by a write still going on. Returns how many were removed."""
        removed = 0
        if not self.root.is_dir():
            return removed
        folders = [self.root, *(p for p in self.root.iterdir() if p.is_dir() and len(p.name) == 2)]
        cutoff = time.time() - older_than
        for folder in folders:
            for entry in os.scandir(folder):
                if entry.name.startswith(".") and entry.name.endswith(".tmp") and self._stale(entry, cutoff):
                    with suppress(FileNotFoundError):
                        os.unlink(entry.path)
                        removed += 1
        if removed:
            fsync_dir(self.root)
        return removed

    @staticmethod
    def _stale(entry: os.DirEntry[str], cutoff: float) -> bool:
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_mtime > cutoff:
                return False
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # a write in progress holds it
            return True
        finally:
            os.close(fd)

    def __iter__(self) -> Iterator[str]:
        if not self.root.is_dir():
            return
        for sub in sorted(self.root.iterdir()):
            if sub.is_dir() and len(sub.name) == 2:
                for blob in sorted(sub.iterdir()):
                    if not blob.name.startswith("."):
                        yield sub.name + blob.name
