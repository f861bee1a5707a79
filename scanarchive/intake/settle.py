"""Which files in the drop folder to take, and when: ignore rules and settling.

A file is taken only when its size, modification time and inode have stayed
the same for `quiet` seconds of *local* time (network shares report mtimes
from the scanner's clock, so mtime age alone is not trusted) and it opens.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

PARTIAL_SUFFIXES = (".part", ".partial", ".tmp", ".temp", ".crdownload", ".filepart", ".download", "~")
JUNK_NAMES = frozenset({"thumbs.db", "desktop.ini", ".ds_store", "@eadir", "failed"})


def ignored(name: str) -> bool:
    """Partial uploads, OS junk, dot files and our own failed/ folder are never taken."""
    lower = name.lower()
    return (
        lower.startswith((".", "~", "._"))
        or lower.endswith(PARTIAL_SUFFIXES)
        or lower in JUNK_NAMES
        or lower.startswith("@")  # Synology's @eaDir and friends
    )


@dataclass
class _Seen:
    signature: tuple[int, int, int, int]  # size, mtime_ns, inode, device
    since: float


class Settler:
    def __init__(self, quiet: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.quiet = quiet
        self.clock = clock
        self._seen: dict[Path, _Seen] = {}

    def observe(self, paths: Iterable[Path]) -> None:
        now = self.clock()
        for path in paths:
            if ignored(path.name):
                continue
            try:
                st = path.lstat()
            except FileNotFoundError:
                self._seen.pop(path, None)
                continue
            if not stat.S_ISREG(st.st_mode):  # no symlinks, folders, fifos or devices
                self._seen.pop(path, None)
                continue
            signature = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)
            seen = self._seen.get(path)
            if seen is None or seen.signature != signature:
                self._seen[path] = _Seen(signature, now)

    def settled(self) -> list[Path]:
        """Files unchanged for the quiet time that can be opened, oldest first; re-checked now."""
        self.observe(list(self._seen))
        now = self.clock()
        ready = []
        for path, seen in sorted(self._seen.items(), key=lambda item: item[1].since):
            if now - seen.since >= self.quiet and seen.signature[0] > 0 and _opens(path):
                ready.append(path)
            elif now - seen.since >= self.quiet and seen.signature[0] == 0 and now - seen.since >= 6 * self.quiet:
                ready.append(path)  # a file that stays empty is taken (and quarantined) eventually
        return ready

    def identity(self, path: Path) -> tuple[int, int] | None:
        """(st_dev, st_ino) of the file that settled at `path`: the claim checks it took that one."""
        seen = self._seen.get(path)
        return None if seen is None else (seen.signature[3], seen.signature[2])

    def forget(self, path: Path) -> None:
        self._seen.pop(path, None)

    @property
    def pending(self) -> int:
        return len(self._seen)

    def next_due(self) -> float | None:
        """Seconds until the earliest pending file could be settled (None if nothing pending)."""
        if not self._seen:
            return None
        earliest = min(seen.since for seen in self._seen.values())
        return max(0.0, earliest + self.quiet - self.clock())


def _opens(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    os.close(fd)
    return True


def list_candidates(folder: Path) -> list[Path]:
    """Regular files directly in the folder (scanners do not make subfolders)."""
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    return [Path(e.path) for e in entries if not ignored(e.name) and e.is_file(follow_symlinks=False)]
