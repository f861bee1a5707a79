"""Separated accounts: the Unix owners, groups and modes that keep the watcher from changing decisions.

Two accounts and one group (docs/threat-model.md, "Accounts: who may write what"):

- the **archive owner** (`scanarchive`): interactive commands and the purge; owns every folder and
  every file the watcher may not replace; a member of the group;
- the **watcher** (`scanarchive-watch`): holds only the recipient; member (primary group) of
- the **group** (`scanarchive-watch`): what both accounts must share.

`apply` makes an archive folder follow LAYOUT (as root, or as the owner for the modes); `check` says
where it does not. Folders the watcher writes are setgid (new files get the group) and sticky (the
watcher cannot rename or delete files it does not own, so it cannot put a file over config.toml). The
decisions (holds, approvals, clients) are in decisions/decisions.db (archive/decisions.py), in a folder
only the owner can write. audit.log must be group-writable (the watcher appends); POSIX has no
group-append permission, so `apply` sets the append-only attribute (`chattr +a`) where the file system
and the privileges allow it, and `check` says so where it is missing.

An archive whose top folder is not setgid is in **single-account mode** (every archive made by
`init`): one account does everything, and the watcher running as it could change decisions.
"""

from __future__ import annotations

import fcntl
import grp
import os
import pwd
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scanarchive.archive import decisions
from scanarchive.archive.layout import CATALOG, CONFIG, IDENTITY, INDEX, OBJECTS, Archive
from scanarchive.errors import UsageError

SHARED_DIR = 0o3770  # setgid + sticky, group rwx: both accounts create files, neither replaces the other's
OWNER_DIR = 0o2750  # the owner writes, the group reads
FAN_OUT = [f"{i:02x}" for i in range(256)]
AUDIT = "audit.log"
# Top-level names the watcher itself may create (SQLite's companions; torn audit lines kept as evidence).
WATCHER_MAY_CREATE = (f"{CATALOG}-wal", f"{CATALOG}-shm", f"{AUDIT}.torn-")

# path relative to the archive -> (kind, mode); "blobs:" entries are the blobs in a store.
LAYOUT: dict[str, tuple[str, int]] = {
    ".": ("dir", SHARED_DIR),
    CONFIG: ("file", 0o640),  # the watcher reads its settings and the recipient
    IDENTITY: ("file", 0o600),  # never readable by the watcher
    CATALOG: ("file", 0o660),  # journal rows and new records: the watcher writes
    f"{CATALOG}-wal": ("file", 0o660),
    f"{CATALOG}-shm": ("file", 0o660),
    decisions.DIR: ("dir", OWNER_DIR),
    f"{decisions.DIR}/{decisions.FILE}": ("file", 0o640),
    INDEX: ("file", 0o600),
    AUDIT: ("file", 0o660),  # + append-only where possible
    "watch.lock": ("file", 0o660),
    "purge.lock": ("file", 0o640),
    OBJECTS: ("dir", SHARED_DIR),
    "quarantine": ("dir", SHARED_DIR),
    "journal": ("dir", SHARED_DIR),
    "certificates": ("dir", OWNER_DIR),
}
MADE_BY_APPLY_FILES = (AUDIT, "watch.lock", "purge.lock")
MADE_BY_APPLY_DIRS = (decisions.DIR, OBJECTS, "quarantine", "journal", "certificates")
STORES = (OBJECTS, "quarantine")

_FS_IOC_GETFLAGS = 0x80086601
_FS_IOC_SETFLAGS = 0x40086602
_FS_APPEND_FL = 0x20

SINGLE_WARNING = (
    "single-account mode: the watcher runs as the archive owner, so a compromised watcher could change holds, "
    "approvals or config.toml (the next command that asks for the passphrase would notice); separate accounts "
    "prevent it ('sudo scanarchive setup-accounts --watcher-group scanarchive-watch'; see docs/threat-model.md, 'Accounts: who may write what')"
)


@dataclass(frozen=True)
class Problem:
    path: str  # relative to the archive folder
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class Report:
    mode: str  # "separated" | "single"
    problems: list[Problem]

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "problems": [str(p) for p in self.problems]}


def mode_of(root: Path) -> str:
    return "separated" if os.stat(root).st_mode & stat.S_ISGID else "single"


def report(root: Path) -> Report:
    return Report(mode_of(root), check(root))


# --- append-only ------------------------------------------------------------------------------


def append_only(path: Path) -> bool | None:
    """Whether the file has the append-only attribute; None where the file system cannot say."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        flags = struct.unpack("i", fcntl.ioctl(fd, _FS_IOC_GETFLAGS, bytes(4)))[0]
    except OSError:
        return None
    finally:
        os.close(fd)
    return bool(flags & _FS_APPEND_FL)


def set_append_only(path: Path) -> str:
    """Set append-only (root only: CAP_LINUX_IMMUTABLE); '' on success, else why not, in words."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        flags = struct.unpack("i", fcntl.ioctl(fd, _FS_IOC_GETFLAGS, bytes(4)))[0]
        fcntl.ioctl(fd, _FS_IOC_SETFLAGS, struct.pack("i", flags | _FS_APPEND_FL))
    except OSError as exc:
        return f"append-only (chattr +a) could not be set: {exc.strerror}"
    finally:
        os.close(fd)
    return ""


# --- check --------------------------------------------------------------------------------------


def _paths(root: Path) -> list[tuple[str, Path, str, int]]:
    """(name, path, kind, wanted mode) of everything that exists and LAYOUT names, blobs included."""
    found: list[tuple[str, Path, str, int]] = []
    for rel, (kind, mode) in LAYOUT.items():
        path = root if rel == "." else root / rel
        if path.exists() or path.is_symlink():
            found.append((rel, path, kind, mode))
    for store in STORES:
        base = root / store
        if not base.is_dir():
            continue
        for sub in sorted(base.iterdir()):
            if sub.is_dir() and not sub.is_symlink() and len(sub.name) == 2:
                found.append((f"{store}/{sub.name}", sub, "dir", SHARED_DIR))
                found.extend((f"{store}/{sub.name}/{b.name}", b, "blob", 0o440) for b in sorted(sub.iterdir()))
    certificates = root / "certificates"
    if certificates.is_dir():
        found.extend((f"certificates/{c.name}", c, "file", 0o640) for c in sorted(certificates.iterdir()))
    return found


def check(root: Path) -> list[Problem]:
    """Where the archive folder is looser than the separated layout (LAYOUT). Empty in single-account
    mode (the warning there is SINGLE_WARNING) when the folder is private to its owner."""
    st = os.stat(root)
    if mode_of(root) == "single":
        if st.st_mode & 0o077:
            return [Problem(".", f"mode {stat.S_IMODE(st.st_mode):04o}: others can reach the archive (want 0700)")]
        return []
    owner, group = st.st_uid, st.st_gid
    problems: list[Problem] = []
    for rel, path, kind, want in _paths(root):
        problems.extend(_check_one(rel, path, kind, want, owner, group))
    for missing in (*MADE_BY_APPLY_FILES, *MADE_BY_APPLY_DIRS):
        if not (root / missing).exists():
            problems.append(Problem(missing, "missing: the watcher could create it as its own; run setup-accounts"))
    for entry in sorted(root.iterdir()):
        if entry.name in LAYOUT or entry.name.startswith(WATCHER_MAY_CREATE):
            continue
        est = os.lstat(entry)
        if est.st_uid != owner:
            problems.append(Problem(entry.name, "not in the layout and not the owner's (made by another account)"))
    audit_log = root / AUDIT
    if audit_log.is_file() and not audit_log.is_symlink() and not append_only(audit_log):
        problems.append(
            Problem(
                AUDIT,
                "not append-only (chattr +a unavailable or not set): the watcher's account can rewrite or "
                "truncate the audit log; the hash chain only makes that evident (keep its head elsewhere)",
            )
        )
    return problems


def _check_one(rel: str, path: Path, kind: str, want: int, owner: int, group: int) -> list[Problem]:
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return [Problem(rel, "is a symbolic link")]
    is_dir = stat.S_ISDIR(st.st_mode)
    if is_dir != (kind == "dir"):
        return [Problem(rel, "is a folder" if is_dir else "is not a folder")]
    problems: list[Problem] = []
    mode = stat.S_IMODE(st.st_mode)
    if kind != "blob" and st.st_uid != owner and not rel.startswith(WATCHER_MAY_CREATE):
        problems.append(Problem(rel, f"owned by uid {st.st_uid}, not the archive owner (uid {owner})"))
    if st.st_gid != group and want & 0o070:
        problems.append(Problem(rel, f"group gid {st.st_gid}, not the archive's group (gid {group})"))
    if mode & ~want & 0o7777 & ~stat.S_ISGID:
        problems.append(Problem(rel, f"mode {mode:04o} is looser than {want:04o}"))
    if kind == "dir" and want & stat.S_ISVTX and not mode & stat.S_ISVTX:
        problems.append(Problem(rel, "no sticky bit: the watcher could rename or delete the owner's files here"))
    return problems


# --- apply --------------------------------------------------------------------------------------


def apply(root: Path, watcher_group: str, *, owner: str | None = None, dry_run: bool = False) -> list[str]:
    """Make `root` follow LAYOUT; return what was (or, with dry_run, would be) done, one line each.

    Needs root for the owner and the group (or the owner itself, a member of the group) and for
    append-only. Opens the archive first, so that an older catalog's decisions move into
    decisions/decisions.db before the catalog becomes writable by the watcher."""
    if not (root / CONFIG).is_file():
        raise UsageError(f"there is no scanarchive archive at {root}")
    try:
        gid = grp.getgrnam(watcher_group).gr_gid
    except KeyError as exc:
        raise UsageError(
            f"there is no group {watcher_group!r}", hint="Create it first: groupadd --system scanarchive-watch."
        ) from exc
    uid = os.stat(root).st_uid if owner is None else _uid(owner)
    if uid == 0:
        raise UsageError("the archive folder belongs to root; name its owner with --owner USER")
    if os.geteuid() not in (0, uid):
        raise UsageError("setup-accounts must run as root (or as the archive's owner)")
    done: list[str] = []
    if not dry_run:
        Archive(root).close()  # migrations, and the decisions out of catalog.db
    for rel in MADE_BY_APPLY_DIRS:
        if not (root / rel).exists():
            done.append(f"create {rel}/")
            if not dry_run:
                (root / rel).mkdir(mode=0o700)
    for store in STORES:
        missing = [s for s in FAN_OUT if not (root / store / s).exists()]
        if missing:
            done.append(f"create {len(missing)} folder(s) {store}/00…ff (so none is the watcher's own)")
            if not dry_run:
                for sub in missing:
                    (root / store / sub).mkdir(mode=0o700)
    for rel in MADE_BY_APPLY_FILES:
        if not (root / rel).exists():
            done.append(f"create {rel}")
            if not dry_run:
                os.close(os.open(root / rel, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    for rel, path, kind, want in _paths(root):
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            done.append(f"SKIP {rel}: a symbolic link (remove it)")
            continue
        if rel == AUDIT and append_only(path):
            continue  # chown/chmod are refused on an append-only file; it was set after them
        new_uid = st.st_uid if kind == "blob" or rel.startswith("journal/") else uid
        if (st.st_uid, st.st_gid) != (new_uid, gid):
            done.append(f"chown {_name(new_uid)}:{watcher_group} {rel}")
            if not dry_run:
                os.chown(path, new_uid, gid, follow_symlinks=False)
        if stat.S_IMODE(st.st_mode) != want:
            done.append(f"chmod {want:04o} {rel}")
            if not dry_run:
                os.chmod(path, want, follow_symlinks=False)
    audit_log = root / AUDIT
    if audit_log.exists() and not append_only(audit_log):
        if os.geteuid() != 0:
            done.append(f"NOT DONE: append-only {AUDIT} (needs root: chattr +a)")
        elif dry_run:
            done.append(f"chattr +a {AUDIT}")
        else:
            why = set_append_only(audit_log)
            done.append(f"chattr +a {AUDIT}" if not why else f"NOT DONE: {AUDIT} {why}")
    return done


def _uid(user: str) -> int:
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError as exc:
        raise UsageError(f"there is no user {user!r}") from exc


def _name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def watcher_warnings(root: Path) -> list[str]:
    """What the watcher says once at start-up: single-account mode, or each problem of the layout."""
    rep = report(root)
    lines = [SINGLE_WARNING] if rep.mode == "single" or os.geteuid() == os.stat(root).st_uid else []
    lines.extend(f"archive permissions are looser than the separated layout: {p}" for p in rep.problems)
    return lines
