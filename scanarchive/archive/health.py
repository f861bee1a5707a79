"""How the unattended parts are doing: the watcher's heartbeat, the last purge, units that failed.

Nothing here holds a secret or a note: times, counts and unit names only.

- **Watcher heartbeat**: the watcher touches `watch.lock` (its one-per-archive lock, intake/lock.py)
  when it starts, at every rescan and when it stops, so the file's modification time is when it was
  last seen alive; whether it runs *now* is read from the kernel's lock table (/proc/locks), without
  taking the lock (a probe that took it could make a starting watcher exit). Touching needs only
  write permission, which the watcher's account has on watch.lock in the separated layout.
- **Last purge**: the last summary `purge` entry of the audit log (retention/purge.py writes one per
  run, dry runs included), read from the end of the file.
- **Failed units**: `FAILURES`, written by the `OnFailure=` hook of the systemd units
  (scanarchive-failed@.service, as the archive owner), one entry per unit: when it last failed and
  how often. A failure counts as recovered once the unit has since done its work (a purge ran, the
  watcher was seen).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scanarchive import audit
from scanarchive.clock import now_utc
from scanarchive.errors import UsageError
from scanarchive.fsio import write_atomic

WATCH_LOCK = "watch.lock"
FAILURES = "unit-failures.json"
UNIT_NAME = re.compile(r"^[A-Za-z0-9@._:\\-]{1,128}$")
WATCH_UNIT = "scanarchive-watch.service"
PURGE_UNIT = "scanarchive-purge.service"
_TAIL_BLOCK = 64 * 1024
_TAIL_MAX = 8 * 1024 * 1024  # how far back status looks for the last purge entry


def beat(root: Path) -> None:
    """The watcher is alive: set watch.lock's modification time to now. Never raises (a heartbeat
    that cannot be written must not stop the watcher)."""
    with contextlib.suppress(OSError):
        os.utime(root / WATCH_LOCK, follow_symlinks=False)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(int(ts), UTC).isoformat()


def watcher_running(root: Path) -> bool | None:
    """Whether a process holds the flock on watch.lock now; None where the kernel's table is unreadable."""
    try:
        st = os.stat(root / WATCH_LOCK)
    except OSError:
        return False
    try:
        table = Path("/proc/locks").read_text()
    except OSError:
        return None
    want = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in table.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[1] == "FLOCK" and want in parts[5:6]:
            return True
    return False


def watcher(root: Path) -> dict[str, Any]:
    """{"running": bool|None, "last_seen": ISO time|None} of the archive's watcher."""
    try:
        last = _iso(os.stat(root / WATCH_LOCK).st_mtime)
    except OSError:
        last = None
    return {"running": watcher_running(root), "last_seen": last}


def _tail_entries(path: Path) -> list[dict[str, Any]]:
    """The audit log's whole lines from up to _TAIL_MAX bytes before its end, newest first, parsed
    leniently (status reports, `audit verify` checks)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        size = os.fstat(fd).st_size
        start = max(0, size - _TAIL_MAX)
        os.lseek(fd, start, os.SEEK_SET)
        chunks: list[bytes] = []
        while chunk := os.read(fd, _TAIL_BLOCK):
            chunks.append(chunk)
    finally:
        os.close(fd)
    lines = b"".join(chunks).split(b"\n")
    if start > 0:
        lines = lines[1:]  # the first is cut
    found: list[dict[str, Any]] = []
    for line in reversed(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            found.append(entry)
    return found


def last_purge(root: Path, *, dry_runs: bool = True) -> dict[str, Any] | None:
    """The last purge run (a dry run too, unless dry_runs is False): {"at", "destroyed", "dry_run",
    "kept_unverified"}; None if none is on record."""
    for entry in _tail_entries(audit.log_path(root)):
        if entry.get("event") != "purge" or "record" in entry or "count" not in entry:
            continue
        if dry_runs or not entry.get("dry_run", False):
            return {
                "at": str(entry.get("at", "")),
                "destroyed": int(entry.get("count", 0)),
                "dry_run": bool(entry.get("dry_run", False)),
                "kept_unverified": len(entry.get("refused", []) or []),
            }
    return None


# --- failed units ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    unit: str
    at: str
    count: int
    recovered: bool

    def to_json(self) -> dict[str, Any]:
        return {"unit": self.unit, "at": self.at, "count": self.count, "recovered": self.recovered}


def _read_failures(root: Path) -> dict[str, dict[str, Any]]:
    try:
        doc = json.loads((root / FAILURES).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict):
        return {}
    return {k: v for k, v in doc.items() if isinstance(v, dict) and UNIT_NAME.fullmatch(k)}


def record_failure(root: Path, unit: str) -> Failure:
    """Note that a systemd unit of this archive failed (the OnFailure= hook). Atomic replace."""
    if not UNIT_NAME.fullmatch(unit):
        raise UsageError("that is not a systemd unit name (letters, digits and @ . _ : - only)")
    if not (root / "config.toml").is_file():
        raise UsageError(f"there is no scanarchive archive at {root}")
    doc = _read_failures(root)
    count = int(doc.get(unit, {}).get("count", 0)) + 1
    doc[unit] = {"at": now_utc(), "count": count}
    write_atomic(root / FAILURES, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode(), mode=0o640)
    return Failure(unit, str(doc[unit]["at"]), count, False)


def failures(root: Path, *, watcher_last_seen: str | None, purge_at: str | None) -> list[Failure]:
    """Every unit failure on record; `recovered` when the unit has worked since (watcher seen, purge ran)."""
    found: list[Failure] = []
    for unit, entry in sorted(_read_failures(root).items()):
        at = str(entry.get("at", ""))
        since = watcher_last_seen if unit.startswith("scanarchive-watch") else purge_at
        recovered = bool(since and at and since > at)
        found.append(Failure(unit, at, int(entry.get("count", 0)), recovered))
    return found
