"""Folder checks before watching: no loops, no surprises."""

from __future__ import annotations

import os
import stat
from contextlib import suppress
from pathlib import Path

from scanarchive.errors import ConfigError, IntegrityError
from scanarchive.fsio import open_dir


def check_folders(archive_root: Path, drop: Path) -> Path:
    """The drop folder must exist, be a real folder, and not overlap the archive."""
    if not drop.is_dir():
        raise ConfigError(
            f"the drop folder {drop} does not exist or is not a folder",
            hint="Create it, or set drop.folder in the archive's config.toml, or pass --drop DIR.",
        )
    if drop.is_symlink():
        raise ConfigError(f"the drop folder {drop} is a symbolic link; give the real folder")
    archive = archive_root.resolve()
    resolved = drop.resolve()
    if resolved == archive or archive in resolved.parents:
        raise ConfigError(f"the drop folder {drop} is inside the archive; choose a folder outside it")
    if resolved in archive.parents:
        raise ConfigError(
            f"the archive is inside the drop folder {drop}; the watcher would try to ingest its own files",
            hint="Move the archive or choose another drop folder.",
        )
    return resolved


def open_failed(drop: Path) -> int:
    """A descriptor of the drop folder's failed/, created 0755 if missing, or IntegrityError saying why
    it is not used: it must be a real folder (not a link), owned by the watcher's user, and not
    writable by others unless sticky. All checks are on the open descriptor (no race with a swap)."""
    drop_fd = open_dir(drop)
    try:
        with suppress(FileExistsError):
            os.mkdir("failed", 0o755, dir_fd=drop_fd)
        try:
            fd = open_dir("failed", dir_fd=drop_fd)
        except OSError as exc:
            raise IntegrityError(
                f"{drop / 'failed'} is not a plain folder (a link or a file); notes are not written there",
                hint="Remove it; the watcher creates failed/ again.",
            ) from exc
    finally:
        os.close(drop_fd)
    st = os.fstat(fd)
    problem = ""
    if st.st_uid != os.geteuid():
        problem = f"is owned by another user (uid {st.st_uid}), not the watcher's"
    elif st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not st.st_mode & stat.S_ISVTX:
        problem = "can be written by other users (and has no sticky bit), so they could replace its files"
    if problem:
        os.close(fd)
        raise IntegrityError(
            f"{drop / 'failed'} {problem}; notes are not written there",
            hint="Remove it (or 'chmod go-w' it) and let the watcher create failed/ again.",
        )
    return fd
