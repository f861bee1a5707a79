"""ARCHIVE/audit.log: an append-only, hash-chained record of what was done. No clinical content.

Format (normative; docs/format.md copies this section)
-----------------------------------------------------

UTF-8 text (in practice ASCII), one JSON object per line, each line ended by
``\\n``. Every line is the *canonical JSON* of its entry::

    canonical(obj) = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)

so a line can be re-serialised byte for byte from its parsed object. Keys:

    seq     int   1, 2, 3, ... with no gap (line n holds seq n)
    at      str   UTC time to the second, "2026-11-27T14:03:09+00:00"
    event   str   one of EVENTS (below)
    actor   str   the operating-system user that ran the command (from the
                  user database, not from $USER), or "uid<N>" if it has no name
    prev    str   hex SHA-256 of the previous line's exact bytes, its "\\n"
                  included; the first line has 64 zeros (GENESIS)
    hash    str   hex SHA-256 of canonical(entry without "hash")
    ...           the event's fields: only names in FIELDS, each value of its kind

Field kinds (values are identifiers, counts and codes, never text):

    uuid     a lower-case UUID (record ids, quarantine ids, the archive id)
    uuids    a list of them
    client   a client code: 1-32 of letters, digits, ".", "_", "-" (the
             practice's pseudonym, as on the command line)
    clients  a list of them
    token    1-64 of letters, digits, ".", "_", ":", "-" (preset ids, hold
             names, certificate ids, error codes, verb names): no spaces, so
             no sentence fits
    tokens   a list of them
    date     an ISO date, "2026-11-27"
    sha256   64 lower-case hex digits
    count    an int >= 0
    flag     a bool

A value of the wrong kind, or a name not in FIELDS, is refused with
ValueError before anything is written (the message names the field, never the
value). So no caller can log a query, a file name (scan file names may hold
client names), OCR text, a client's name or a reason typed by a person.

Invariants, all checked by `verify`: every line ends in "\\n" and is its own
canonical JSON; its `hash` matches; `seq` runs 1, 2, 3 ... with no gap; `prev`
is the SHA-256 of the line before. So an edited byte fails the line's own hash
or canonical form, and a removed, inserted or reordered line fails `seq` or
`prev`. Removing whole lines *from the end* leaves a valid, shorter chain: to
catch that, keep the head (`AuditReport.head`, the SHA-256 of the last line)
elsewhere; exports record it in their manifest.

The hash chain is tamper-*evident* against editing by hand, not against
someone who rewrites the whole chain from a point on (no key is used: the
unattended watcher must append without the passphrase, so any key would be
where an attacker who can edit the file could read it). Backups and anchors of
the head are what make a rewrite visible.

Appending: the file is opened O_RDWR|O_APPEND|O_CREAT (mode 0600); an
exclusive flock(2) on it is held while the last line is read and the new line
written and fsync'ed, so the watcher and interactive commands can append at
once. A last line without "\\n" is a torn write (a crash, a full disk, or bytes
appended by hand): the next append — or `scanarchive audit repair` — moves the
torn bytes to `audit.log.torn-<UTC time>` beside the log (0600, kept as
evidence), truncates the log to its last whole line, and appends an
`audit_repair` entry with their count and SHA-256 before its own entry. So a
torn tail never blocks an ingest, and the repair is itself on the record. A
whole last line that is not an entry (an edit, not a crash) still stops every
append with IntegrityError: that is never "repaired".

The audit log and destruction certificates are never purged with the records.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pwd
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Final

from scanarchive.clock import now_utc
from scanarchive.errors import IntegrityError
from scanarchive.fsio import fsync_dir, write_new_file
from scanarchive.names import CLIENT_CODE, TOKEN

AUDIT_LOG: Final = "audit.log"
GENESIS: Final = "0" * 64

EVENTS: Final = frozenset(
    {
        "init",
        "ingest",
        "file",
        "search",
        "show",
        "export",
        "hold_place",
        "hold_release",
        "approve",
        "purge",
        "passwd",
        "verify",
        "client",
        "retention",
        "quarantine",
        "failed",
        "backup",
        "restore",
        "audit_repair",
    }
)

# The allow-list: field name -> kind. Add names here (with their kind) rather than
# loosening a kind; every new name is reviewed for what it could carry.
FIELDS: Final[Mapping[str, str]] = {
    # what was touched
    "archive": "uuid",  # archive id (init)
    "record": "uuid",
    "records": "uuids",
    "damaged": "uuids",  # records found damaged (verify)
    "refused": "uuids",  # due records a purge kept: a decision behind them does not verify (checkpoint.json)
    "item": "uuid",  # a quarantine entry
    "client": "client",
    "clients": "clients",
    "source_sha256": "sha256",  # the scanned file, by hash (never by name)
    "blob_sha256": "sha256",
    "torn_sha256": "sha256",  # the bytes of a torn last line that a repair set aside (audit_repair)
    "date": "date",  # a session date (file)
    "since": "date",  # filters of a search or listing, never its words
    "until": "date",
    "record_class": "token",
    "fields": "tokens",  # which metadata a `file` changed
    "preset": "token",
    "presets": "tokens",
    "hold": "token",  # the hold's name; its reason is free text and stays out
    "certificate": "token",
    "key_id": "token",
    "code": "token",  # an error type or reason code (failed, quarantine)
    "command": "token",  # the verb that failed
    # how many / how
    "count": "count",
    "bytes": "count",  # how many bytes a repair set aside
    "results": "count",  # search hits
    "pages": "count",
    "excluded": "count",  # records left out (export)
    "checked": "count",
    "temps_removed": "count",  # temp files of killed writes removed from the stores (verify)
    "generation": "count",
    "exit": "count",
    "encrypted": "flag",
    "include_psychotherapy": "flag",
    "duplicate": "flag",
    "source_removed": "flag",  # the paper may be shredded
    "ok": "flag",
    "dry_run": "flag",
    "automatic": "flag",
}

RESERVED: Final = frozenset({"seq", "at", "event", "actor", "prev", "hash"})
MAX_LIST: Final = 100_000

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TAIL_BLOCK = 64 * 1024

FieldValue = str | int | bool | Sequence[str]


@dataclass(frozen=True)
class AuditReport:
    """What `verify` found. `first_bad_line` is 1-based; None when intact."""

    ok: bool
    entries: int  # lines that passed every check (all of them when ok)
    first_bad_line: int | None = None
    reason: str = ""
    head: str = GENESIS  # SHA-256 of the last good line's bytes (what the next entry's prev would be)
    exists: bool = True

    def describe(self) -> str:
        if self.ok:
            where = "" if self.exists else " (there is no audit.log yet)"
            return f"audit.log is intact: {self.entries} entries, head {self.head[:16]}{where}"
        return f"audit.log line {self.first_bad_line}: {self.reason}"


def log_path(root: Path) -> Path:
    """The audit log of the archive at `root`."""
    return root / AUDIT_LOG


def canonical(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def entry_hash(entry: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical({k: v for k, v in entry.items() if k != "hash"})).hexdigest()


def line_hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


# --- writing --------------------------------------------------------------------


def check_fields(event: str, fields: Mapping[str, object]) -> dict[str, FieldValue]:
    """The fields as they will be stored, or ValueError naming the first field that is not allowed.

    The message never contains the value: a refused value may be exactly the
    free text that must not be written anywhere.
    """
    if event not in EVENTS:
        raise ValueError(f"audit: {event!r} is not an audit event")
    clean: dict[str, FieldValue] = {}
    for name, value in fields.items():
        if name in RESERVED:
            raise ValueError(f"audit: the field name {name!r} is reserved")
        kind = FIELDS.get(name)
        if kind is None:
            raise ValueError(f"audit: {name!r} is not an allowed field (only ids, counts and codes are logged)")
        clean[name] = _check_value(name, kind, value)
    return clean


def _check_value(name: str, kind: str, value: object) -> FieldValue:
    refused = ValueError(f"audit: the value of field {name!r} is not a {kind}")
    if kind in ("count", "flag"):
        if kind == "flag" and isinstance(value, bool):
            return value
        if kind == "count" and isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        raise refused
    if kind in ("uuids", "clients", "tokens"):
        if isinstance(value, str | bytes) or not isinstance(value, Iterable):
            raise refused
        items = list(value)
        if len(items) > MAX_LIST or not all(_scalar_ok(kind[:-1], item) for item in items):
            raise refused
        return [str(item) for item in items]
    if not _scalar_ok(kind, value):
        raise refused
    return str(value)


def _scalar_ok(kind: str, value: object) -> bool:
    if not isinstance(value, str):
        return False
    if kind == "uuid":
        return bool(_UUID.match(value))
    if kind == "client":
        return bool(CLIENT_CODE.match(value))
    if kind == "token":
        return bool(TOKEN.match(value))
    if kind == "sha256":
        return bool(_SHA256.match(value))
    if kind == "date":
        if not _DATE.match(value):
            return False
        try:
            date.fromisoformat(value)
        except ValueError:
            return False
        return True
    return False


def actor() -> str:
    """The OS user running this process, from the user database (not $USER, which anyone can set)."""
    uid = os.geteuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid{uid}"
    return name if TOKEN.match(name) else f"uid{uid}"


def append(path: Path, event: str, /, **fields: object) -> dict[str, Any]:
    """Append one entry to the audit log at `path` (created 0600 if missing); return it.

    Fields are checked against the allow-list first (ValueError, nothing
    written). A torn last line is set aside and recorded first (`repair`); IntegrityError
    if the last whole line is not an entry.
    Safe against concurrent appenders (flock) and crashes (fsync; one write).
    """
    clean = check_fields(event, fields)
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _repair_locked(fd, path)
        entry = _append_locked(fd, path, event, clean)
    finally:
        os.close(fd)  # also releases the lock
    if created:
        fsync_dir(path.parent)
    return entry


def _append_locked(fd: int, path: Path, event: str, clean: Mapping[str, FieldValue]) -> dict[str, Any]:
    seq, prev = _last_entry(fd, path)
    entry: dict[str, Any] = {"seq": seq + 1, "at": now_utc(), "event": event, "actor": actor(), "prev": prev, **clean}
    entry["hash"] = entry_hash(entry)
    view = memoryview(canonical(entry) + b"\n")
    while view:
        view = view[os.write(fd, view) :]
    os.fsync(fd)
    return entry


@dataclass(frozen=True)
class Repair:
    """A torn last line set aside by `repair`."""

    bytes: int
    sha256: str
    kept_at: Path  # where the torn bytes are kept, as evidence


def repair(path: Path) -> Repair | None:
    """Set a torn last line aside and record that in the log (see the module's docstring).
    None when the log does not end in a torn line (nothing is changed)."""
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return _repair_locked(fd, path)
    finally:
        os.close(fd)


def _repair_locked(fd: int, path: Path) -> Repair | None:
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return None
    keep = size
    while keep > 0:  # back to the end of the last whole line
        start = max(0, keep - _TAIL_BLOCK)
        cut = os.pread(fd, keep - start, start).rfind(b"\n")
        if cut >= 0:
            keep = start + cut + 1
            break
        keep = start
    torn = os.pread(fd, size - keep, keep)
    kept_at = path.with_name(f"{path.name}.torn-{now_utc().replace(':', '')}-{os.urandom(3).hex()}")
    write_new_file(kept_at, torn)
    fsync_dir(path.parent)
    os.ftruncate(fd, keep)
    os.fsync(fd)
    found = Repair(len(torn), hashlib.sha256(torn).hexdigest(), kept_at)
    _append_locked(
        fd, path, "audit_repair", check_fields("audit_repair", {"bytes": found.bytes, "torn_sha256": found.sha256})
    )
    return found


def _last_entry(fd: int, path: Path) -> tuple[int, str]:
    """(seq, SHA-256 of the line) of the file's last line; (0, GENESIS) for an empty file."""
    size = os.fstat(fd).st_size
    if size == 0:
        return 0, GENESIS
    tail = b""
    offset = size
    while True:
        start = max(0, offset - _TAIL_BLOCK)
        tail = os.pread(fd, offset - start, start) + tail
        offset = start
        # the last line starts after the last "\n" that is not the final byte
        cut = tail.rfind(b"\n", 0, len(tail) - 1)
        if cut >= 0 or offset == 0:
            break
    line = tail[cut + 1 :]
    hint = "Run 'scanarchive audit verify' to see where; nothing was appended."
    if not line.endswith(b"\n"):
        raise IntegrityError(f"{path} ends in a partial line (a write was cut off, or it was truncated)", hint=hint)
    try:
        last = json.loads(line)
        seq = last["seq"]
    except (ValueError, TypeError, KeyError) as exc:
        raise IntegrityError(f"the last line of {path} is not an audit entry", hint=hint) from exc
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise IntegrityError(f"the last line of {path} is not an audit entry", hint=hint)
    return seq, line_hash(line)


# --- reading --------------------------------------------------------------------


def verify(path: Path) -> AuditReport:
    """Check the whole chain; report the first bad line and why. Never raises."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return AuditReport(ok=True, entries=0, exists=False)
    except OSError as exc:
        return AuditReport(ok=False, entries=0, first_bad_line=1, reason=f"the file cannot be read ({exc.strerror})")
    prev = GENESIS
    lines = data.split(b"\n")
    torn = lines.pop()  # b"" when the file ends in "\n"
    number = 0
    for number, body in enumerate(lines, start=1):
        problem = _check_line(body, number, prev)
        if problem:
            return AuditReport(False, number - 1, number, problem, prev)
        prev = line_hash(body + b"\n")
    if torn:
        return AuditReport(
            False, number, number + 1, "the last line is incomplete (truncated, or a write was cut off)", prev
        )
    return AuditReport(True, number, head=prev)


def _check_line(body: bytes, number: int, prev: str) -> str:
    if not body:
        return "an empty line (lines were removed or the file was edited)"
    try:
        entry = json.loads(body)
    except ValueError:
        return "edited or damaged: it is not a JSON line"
    if not isinstance(entry, dict):
        return "edited or damaged: it is not an audit entry"
    for key, kind in (("seq", int), ("at", str), ("event", str), ("actor", str), ("prev", str), ("hash", str)):
        if not isinstance(entry.get(key), kind) or isinstance(entry.get(key), bool):
            return f"edited or damaged: its {key!r} is missing or of the wrong type"
    if canonical(entry) != body:
        return "edited: the line is not in the form it was written in"
    if entry["hash"] != entry_hash(entry):
        return "edited: its hash does not match its content"
    if entry["seq"] != number:
        return f"a line was removed, inserted or moved: expected entry {number}, found entry {entry['seq']}"
    if entry["prev"] != prev:
        return "a line was removed, inserted or moved: it does not follow the line before it"
    return ""


def read_entries(path: Path, *, strict: bool = True) -> list[dict[str, Any]]:
    """Every entry, in order (an empty list if there is no log).

    A line that is not a JSON object raises IntegrityError naming it, or with
    `strict=False` is skipped. This does not check the chain; `verify` does.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    entries: list[dict[str, Any]] = []
    for number, body in enumerate(data.splitlines(), start=1):
        try:
            entry = json.loads(body)
        except ValueError:
            entry = None
        if isinstance(entry, dict):
            entries.append(entry)
        elif strict:
            raise IntegrityError(
                f"audit.log line {number} is not an audit entry",
                hint="Run 'scanarchive audit verify'; restore audit.log from a backup and keep this copy as evidence.",
            )
    return entries


def show(path: Path, since: date | None = None) -> list[dict[str, Any]]:
    """Entries whose UTC date is on or after `since` (all if None). Unreadable lines are skipped:
    callers run `verify` to say whether the log is intact."""
    entries = read_entries(path, strict=False)
    if since is None:
        return entries
    first = since.isoformat()
    return [e for e in entries if str(e.get("at", ""))[:10] >= first]


def excerpt(path: Path, client_code: str, record_ids: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The entries about one client: those naming `client_code` or one of `record_ids`.

    For a client's eyes, other clients stay out: in lists (`records`,
    `damaged`, `clients`) only this client's values are kept, an entry whose
    `record` is a record outside `record_ids` is left out, and a shortened
    entry gets `"trimmed": true` (its `hash` is then that of the full line
    in the archive's log, which `seq` finds).
    """
    ids = frozenset(record_ids)
    out: list[dict[str, Any]] = []
    for entry in read_entries(path):
        names_client = entry.get("client") == client_code or client_code in _list(entry.get("clients"))
        single = entry.get("record")
        if isinstance(single, str) and single not in ids:
            continue
        names_record = single in ids or any(r in ids for key in ("records", "damaged") for r in _list(entry.get(key)))
        if not (names_client or names_record):
            continue
        kept = dict(entry)
        trimmed = False
        for key in ("records", "damaged"):
            if key in kept:
                mine = [r for r in _list(kept[key]) if r in ids]
                trimmed |= len(mine) != len(_list(kept[key]))
                kept[key] = mine
        if "clients" in kept:
            mine = [c for c in _list(kept["clients"]) if c == client_code]
            trimmed |= len(mine) != len(_list(kept["clients"]))
            kept["clients"] = mine
        if trimmed:
            kept["trimmed"] = True
        out.append(kept)
    return out


def _list(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
