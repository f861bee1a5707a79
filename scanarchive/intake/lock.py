"""One watcher per archive: an flock on ARCHIVE/watch.lock.

The kernel releases an flock when its process dies, however it dies (SIGKILL
included), so a stale lock cannot block the next watcher; the pid written in
the file is only there to name the running watcher in the message.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from scanarchive.errors import WatcherRunning


class WatchLock:
    def __init__(self, archive_root: Path) -> None:
        self.path = archive_root / "watch.lock"
        self.fd: int | None = None

    def __enter__(self) -> WatchLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise WatcherRunning(f"another watcher (pid {holder}) is already running for this archive") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing releases the lock
            self.fd = None
