"""Writing files safely: the bottom layer every other module may use.

Everything here is about *how* bytes reach the disk — fsync, no-overwrite
creation, atomic replacement — never about what they mean. Writes follow
restic: temp file -> write -> fsync -> close -> rename -> fsync the directory.

Temp files get a random name and are created with O_EXCL|O_NOFOLLOW, so a link
planted at a guessable name is never written through. The `*_in` helpers work
relative to an open directory descriptor (`dir_fd`), for folders that others
can write (the scanner's drop folder): a name is resolved once, in the folder
that was checked, and never through a symbolic link.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import stat
from pathlib import Path

from scanarchive.errors import InputRejected, TransientError, UsageError

# A file this big (apparent size) with under SPARSE_FRACTION of it really on disk is refused:
# a scanner never writes holes; `truncate -s 32G` does.
SPARSE_MIN_BYTES = 1 << 20
SPARSE_FRACTION = 0.10
CHUNK = 1 << 20


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _tmp_name(name: str) -> str:
    return f".{name[:100]}.{secrets.token_hex(8)}.tmp"


def _write_all(fd: int, data: bytes) -> None:
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


# --- modes that follow the folder (separated accounts, docs/threat-model.md) -----------------


def folder_mode(folder: Path | int, mode: int, *, writable_by_group: bool = False) -> int:
    """The mode for a new file in `folder`: `mode` itself, or, in a setgid folder (the separated
    accounts' layout: the group is the one the watcher and the archive owner share), `mode` with the
    owner's read (and execute) bits also given to the group, as far as the folder's group has them.
    Group write only when asked (`writable_by_group`): the watcher may read config.toml, never write it."""
    st = os.fstat(folder) if isinstance(folder, int) else os.stat(folder)
    if not st.st_mode & stat.S_ISGID:
        return mode
    allowed = (st.st_mode >> 3) & (0o7 if writable_by_group else 0o5)
    return (mode & ~0o070) | ((((mode >> 6) & 0o7) & allowed) << 3)


def make_dir(path: Path, mode: int = 0o700, *, writable_by_group: bool = True) -> None:
    """mkdir `path` (FileExistsError if it exists). In a setgid parent it gets the parent's mode
    (setgid, and sticky if the parent has it: see folder_mode), without group write and sticky
    when not `writable_by_group`; umask does not narrow it."""
    os.mkdir(path, mode)
    parent = os.stat(path.parent).st_mode
    if parent & stat.S_ISGID:
        shared = stat.S_IMODE(parent) & ~0o007
        os.chmod(path, shared if writable_by_group else shared & ~(stat.S_ISVTX | stat.S_IWGRP))


def _open_new(path: Path | str, mode: int, *, dir_fd: int | None = None, private: bool = False) -> int:
    folder: Path | int = dir_fd if dir_fd is not None else Path(path).parent
    want = mode if private else folder_mode(folder, mode)
    fd = os.open(path, _NEW, want, dir_fd=dir_fd)
    if want != mode:
        os.fchmod(fd, want)  # the umask (0077 in the units) would take the group's bits away again
    return fd


def write_new_file(path: Path, data: bytes, mode: int = 0o600, *, private: bool = False) -> None:
    """Create `path` (never over an existing file or through a link) and fsync it. Its mode follows
    a setgid folder (folder_mode) unless `private`."""
    _write_all(_open_new(path, mode, private=private), data)


def write_new_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write `path` whole or not at all, and never over an existing file (temp, fsync, link):
    no race between "does it exist?" and the write."""
    tmp = path.with_name(_tmp_name(path.name))
    try:
        write_new_file(tmp, data, mode)
        try:
            os.link(tmp, path, follow_symlinks=False)  # fails if path exists (a link included)
        except FileExistsError as exc:
            raise UsageError(f"{path} already exists; choose a new file name") from exc
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path, data: bytes, mode: int = 0o600, *, private: bool = False) -> None:
    """Write a file so that a crash leaves either the old file or the whole new one.

    The temp file has a random name and is created O_EXCL|O_NOFOLLOW: a link planted at a
    temp name is never followed, and rename() replaces a link at `path` rather than its target.
    Its mode follows a setgid folder (folder_mode) unless `private` (identity.enc)."""
    tmp = path.with_name(_tmp_name(path.name))
    try:
        _write_all(_open_new(tmp, mode, private=private), data)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise TransientError(f"the disk holding {path.parent} is full") from exc
        raise


def new_temp(folder: Path, name: str, mode: int = 0o600) -> tuple[Path, int]:
    """A fresh temp file in `folder`, open to write (the caller closes it): random name starting
    with ".", O_EXCL|O_NOFOLLOW, its mode following a setgid folder (folder_mode)."""
    tmp = folder / _tmp_name(name)
    return tmp, _open_new(tmp, mode)


def disk_full(exc: OSError, folder: Path) -> TransientError | None:
    """The TransientError to raise for a write that failed because the disk is full, else None."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return TransientError(f"the disk holding {folder} is full")
    return None


# --- relative to a directory descriptor ------------------------------------------------------


def open_dir(path: Path | str, *, dir_fd: int | None = None) -> int:
    """An O_DIRECTORY|O_NOFOLLOW descriptor of a folder (never through a link at its last name)."""
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)


def write_new_in(dir_fd: int, name: str, data: bytes, mode: int = 0o600) -> None:
    """Create `name` in the folder `dir_fd` whole or not at all, never over anything already there
    (FileExistsError) and never through a link: random temp name, O_EXCL|O_NOFOLLOW, fsync, link."""
    tmp = _tmp_name(name)
    _write_all(_open_new(tmp, mode, dir_fd=dir_fd), data)
    try:
        os.link(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        os.fsync(dir_fd)
    finally:
        os.unlink(tmp, dir_fd=dir_fd)


def describe_kind(mode: int) -> str:
    """What a non-regular file is, in plain words."""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def human_mb(size: int) -> str:
    return f"{size / (1 << 30):.1f} GB" if size >= 1 << 30 else f"{size / (1 << 20):.1f} MB"


def check_regular(st: os.stat_result, max_bytes: int | None) -> None:
    """Refuse (InputRejected, plain words) what is not a regular file of a sane size; reads nothing."""
    if not stat.S_ISREG(st.st_mode):
        raise InputRejected(f"it is {describe_kind(st.st_mode)}, not a regular file, and was left unread")
    if max_bytes is not None and st.st_size > max_bytes:
        raise InputRejected(
            f"the file is {human_mb(st.st_size)}, larger than the limit of {human_mb(max_bytes)} "
            "(ingest.max_file_mb); it was not read"
        )
    if st.st_size > SPARSE_MIN_BYTES and st.st_blocks * 512 < SPARSE_FRACTION * st.st_size:
        raise InputRejected(
            f"the file claims {human_mb(st.st_size)} but only {human_mb(st.st_blocks * 512)} of it is on disk "
            "(a sparse file, not a scan); it was not read"
        )


def open_regular(name: str | Path, max_bytes: int | None, *, dir_fd: int | None = None) -> tuple[int, os.stat_result]:
    """Open a file to read once, safely: O_NOFOLLOW|O_NONBLOCK (a pipe never blocks, a link is never
    followed), then fstat: a regular file within `max_bytes` and not sparse, or InputRejected
    (FileNotFoundError if it is gone). Nothing is read. The caller closes the descriptor."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputRejected("it is a symbolic link, not a regular file, and was not followed") from exc
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise InputRejected("the file cannot be read (permission denied)") from exc
        if exc.errno in (errno.ENXIO, errno.ENODEV, errno.EOPNOTSUPP):
            raise InputRejected("it is a device or socket, not a regular file, and was left unread") from exc
        raise
    try:
        st = os.fstat(fd)
        check_regular(st, max_bytes)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def stream_fd(src_fd: int, dst_fd: int | None = None, *, limit: int | None = None) -> tuple[str, int]:
    """SHA-256 and size of what `src_fd` holds from its start, copied to `dst_fd` on the way if
    given; in 1 MiB blocks, never held whole. Reading past `limit` bytes is refused."""
    h = hashlib.sha256()
    size = 0
    offset = 0
    while True:
        block = os.pread(src_fd, CHUNK, offset)
        if not block:
            break
        offset += len(block)
        size += len(block)
        if limit is not None and size > limit:
            raise InputRejected("the file grew past the size limit while it was read")
        h.update(block)
        if dst_fd is not None:
            view = memoryview(block)
            while view:
                view = view[os.write(dst_fd, view) :]
    return h.hexdigest(), size


def read_fd(fd: int, limit: int | None = None) -> bytes:
    """All of a checked file (see open_regular), refusing more than `limit` bytes."""
    parts: list[bytes] = []
    size = 0
    offset = 0
    while True:
        block = os.pread(fd, CHUNK, offset)
        if not block:
            return b"".join(parts)
        offset += len(block)
        size += len(block)
        if limit is not None and size > limit:
            raise InputRejected("the file grew past the size limit while it was read")
        parts.append(block)
