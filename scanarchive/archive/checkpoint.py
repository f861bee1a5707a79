"""Decisions that cannot be forged without the passphrase, record bindings, and rollback detection.

Normative description: docs/format.md §15.5. In short:

- `decisions/checkpoint.json` is a document signed with an Ed25519 key derived from the identity
  (HKDF over the X25519 private key, info "scanarchive v1 decision signing key"); its public half is
  pinned in config.toml as `[archive] decision_key`. It holds a digest of every decision (client
  facts, holds, approvals, the retention settings in force) and what the signing command saw of the
  catalog and the audit log (highest seq, record count, tombstones, audit length and head).
- A decision command changes its rows and, in the same catalog transaction, replaces only the
  digests of the items it changed (`update`): a row forged meanwhile keeps its old digest and stays
  detectable; it is never signed along.
- The unattended purge verifies the signature with the pinned key and compares, per record, every
  decision its verdict depends on (`doubts`): a record whose inputs do not match is kept.
- Every checkpoint write first binds each record not yet bound: HMAC-SHA256, under a key derived
  from the identity, of (archive, record id, blob SHA-256, SHA-256 of its wrapped key, key_id), kept
  in catalog table `bindings`. Reading a record checks it (`check_binding`).
- `rolled_back` compares the live catalog and audit log with the checkpoint's `seen` section.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scanarchive import audit
from scanarchive.archive import decisions as decision_store
from scanarchive.archive import sealed
from scanarchive.archive.catalog import RecordRow
from scanarchive.clock import now_utc
from scanarchive.config import ArchiveConfig, parse_config, pin_decision_key
from scanarchive.crypto import keys
from scanarchive.errors import IntegrityError, RolledBack
from scanarchive.fsio import make_dir, write_atomic

if TYPE_CHECKING:
    from scanarchive.archive.layout import Archive

FILE = "checkpoint.json"
FORMAT = "scanarchive-checkpoint"
VERSION = 1
SIGNED_PREFIX = b"scanarchive-checkpoint-v1\x00"
BINDING_PREFIX = b"scanarchive-binding-v1\x00"
RE_SIGN_HINT = (
    "Find out who changed it. Then make the decision again with the passphrase, or, after checking every "
    "hold, approval and client fact, run 'scanarchive retention re-sign'."
)


def path_of(root: Path) -> Path:
    return root / decision_store.DIR / FILE


def digest(table: str, archive_id: str, row: dict[str, Any]) -> str:
    return hashlib.sha256(audit.canonical({"table": table, "archive": archive_id, "row": row})).hexdigest()


def _config(archive: Archive) -> ArchiveConfig:
    """config.toml as it is on disk now (a decision command may just have rewritten it)."""
    return parse_config((archive.root / "config.toml").read_text(encoding="utf-8"))


def retention_of(config: ArchiveConfig) -> dict[str, Any]:
    r = config.retention
    return {"presets": list(r.presets), "approval": r.approval, "allow_unconfirmed": r.allow_unconfirmed}


# --- the live decisions, as digests ---------------------------------------------


@dataclass(frozen=True)
class Live:
    retention: dict[str, Any]
    clients: dict[str, str]
    holds: dict[str, dict[str, Any]]
    approvals: dict[str, str]


def _rows(db: sqlite3.Connection, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    cursor = db.execute(sql, args)
    names = [c[0] for c in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _hold_entry(archive_id: str, row: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": row["name"],
        "client": row["client_code"],
        "record": row["record_id"],
        "in_force": row["released_at"] is None,
        "digest": digest("holds", archive_id, row),
    }


def live(archive: Archive, config: ArchiveConfig | None = None) -> Live:
    config = config or archive.config
    db, aid = archive.catalog.db, config.archive_id
    filing = {
        str(r["id"]): {k: r[k] for k in ("client_code", "session_date", "record_class", "blob_sha256")}
        for r in _rows(db, "SELECT id, client_code, session_date, record_class, blob_sha256 FROM records")
    }
    approvals = {}
    for row in _rows(db, "SELECT * FROM approvals"):
        approvals[str(row["record_id"])] = digest("approvals", aid, {**row, "filing": filing.get(row["record_id"])})
    return Live(
        retention_of(config),
        {str(r["code"]): digest("clients", aid, r) for r in _rows(db, "SELECT * FROM clients")},
        {str(r["id"]): _hold_entry(aid, r) for r in _rows(db, "SELECT * FROM holds")},
        approvals,
    )


# --- reading and verifying the checkpoint ---------------------------------------------


@dataclass(frozen=True)
class Trust:
    """The verified checkpoint body (None if there is none to trust), and why not."""

    upgraded: bool  # config.toml pins a decision key: decisions are checked
    body: dict[str, Any] | None = None
    problem: str = ""


def load(archive: Archive, config: ArchiveConfig | None = None) -> Trust:
    config = config or archive.config
    if config.decision_key is None:
        return Trust(upgraded=False)
    bad = "the signed decisions (decisions/checkpoint.json) are missing or do not verify"
    try:
        doc = json.loads(path_of(archive.root).read_bytes())
        body, signature = doc["body"], bytes.fromhex(doc["signature"])
        ok = (
            doc.get("format") == FORMAT
            and doc.get("version") == VERSION
            and isinstance(body, dict)
            and body.get("archive") == config.archive_id
            and config.decision_key.verifies(signature, SIGNED_PREFIX + audit.canonical(body))
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        ok = False
    if not ok:
        return Trust(upgraded=True, problem=bad)
    return Trust(upgraded=True, body=body)


def doubts(trust: Trust, now: Live, record: RecordRow, *, approval_needed: bool) -> list[str]:
    """Why the decisions behind destroying this record cannot be trusted, in plain words ([] if they can)."""
    if not trust.upgraded:
        return []  # an archive no interactive command has upgraded yet: the decisions are unsigned (legacy)
    if trust.body is None:
        return [trust.problem]
    body, found = trust.body, []
    if body["retention"] != now.retention:
        found.append(
            "the retention settings in config.toml (presets, approval mode) were changed without the passphrase"
        )
    code = record.client_code
    if code is not None and body["clients"].get(code) != now.clients.get(code):
        found.append(f"the retention facts of client {code} were changed without the passphrase")
    if approval_needed and body["approvals"].get(record.id) != now.approvals.get(record.id):
        found.append("its approval was not given with the passphrase (or the record was refiled since)")
    for hold_id, signed in body["holds"].items():
        covers = signed["record"] == record.id or (code is not None and signed["client"] == code)
        if covers and signed["in_force"] and (now.holds.get(hold_id) or {}).get("digest") != signed["digest"]:
            found.append(f"legal hold '{signed['name']}' was released or removed without the passphrase")
    return found


def tampered(trust: Trust, now: Live, destroyed: set[str]) -> list[str]:
    """Every decision that differs from the signed ones (for verify), in plain words."""
    if not trust.upgraded:
        return []
    if trust.body is None:
        return [trust.problem]
    body, found = trust.body, []
    if body["retention"] != now.retention:
        found.append(
            "the retention settings in config.toml (presets, approval mode) were changed without the passphrase"
        )
    for code in sorted(set(body["clients"]) | set(now.clients)):
        if body["clients"].get(code) != now.clients.get(code):
            found.append(f"the retention facts of client {code} were changed without the passphrase")
    for rid in sorted((set(body["approvals"]) | set(now.approvals)) - destroyed):
        if body["approvals"].get(rid) != now.approvals.get(rid):
            found.append(f"the approval of record {rid} was changed without the passphrase (or the record was refiled)")
    for hold_id in sorted(set(body["holds"]) | set(now.holds), key=int):
        signed, current = body["holds"].get(hold_id), now.holds.get(hold_id)
        if (signed or {}).get("digest") != (current or {}).get("digest"):
            name = (signed or current or {}).get("name")
            found.append(f"legal hold '{name}' was placed, changed, released or removed without the passphrase")
    return found


# --- what the signer saw, and rollback ---------------------------------------------


def _audit_state(root: Path) -> tuple[int, str]:
    report = audit.verify(audit.log_path(root))
    return report.entries, report.head


def _audit_head_at(root: Path, entries: int) -> str | None:
    """The SHA-256 of line `entries` of the audit log (GENESIS for 0), None if it is shorter."""
    if entries == 0:
        return audit.GENESIS
    try:
        lines = audit.log_path(root).read_bytes().split(b"\n")[:-1]
    except OSError:
        return None
    return audit.line_hash(lines[entries - 1] + b"\n") if len(lines) >= entries else None


def _tombstones(archive: Archive) -> list[str]:
    return sorted(str(r[0]) for r in archive.catalog.db.execute("SELECT record_id FROM tombstones"))


def _max_seq(archive: Archive) -> int:
    """The highest seq ever given (AUTOINCREMENT's sqlite_sequence): it never goes down, even when the
    newest records are destroyed."""
    row = archive.catalog.db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'records'").fetchone()
    return max(int(row[0]) if row is not None else 0, archive.catalog.max_seq())


def seen_now(archive: Archive) -> dict[str, Any]:
    entries, head = _audit_state(archive.root)
    db = archive.catalog.db
    return {
        "max_seq": _max_seq(archive),
        "records": int(db.execute("SELECT COUNT(*) FROM records").fetchone()[0]),
        "tombstones": _tombstones(archive),
        "audit_entries": entries,
        "audit_head": head,
    }


def come_back(archive: Archive) -> list[str]:
    """Records in the catalog that have a destruction certificate: a catalog (and blob) from before a purge
    was put back. Needs no checkpoint (the purge, which signs nothing, wrote the certificate)."""
    folder = archive.root / "certificates"
    if not folder.is_dir():
        return []
    live_ids = {str(r[0]) for r in archive.catalog.db.execute("SELECT id FROM records")}
    back = sorted(p.stem for p in folder.glob("*.json") if p.stem in live_ids)
    return [
        f"the catalog is older than its last purge (rolled back?): record {rid} was destroyed (its certificate is "
        "in certificates/) but is back"
        for rid in back
    ]


def rolled_back(archive: Archive, body: dict[str, Any]) -> list[str]:
    """How the live catalog and audit log are older than what the checkpoint's signer saw."""
    seen, found = body["seen"], []
    db = archive.catalog.db
    if _max_seq(archive) < seen["max_seq"]:
        found.append(f"its newest record has seq {_max_seq(archive)}, but seq {seen['max_seq']} was seen")
    live_stones = set(_tombstones(archive))
    signed_stones = set(seen["tombstones"])
    live_ids = {str(r[0]) for r in db.execute("SELECT id FROM records")}
    for rid in sorted(signed_stones & live_ids):
        found.append(f"record {rid} was destroyed but is back")
    missing = sorted(signed_stones - live_stones - live_ids)
    if missing:
        found.append(f"the tombstone(s) of {', '.join(missing)} are missing")
    kept = int(db.execute("SELECT COUNT(*) FROM records WHERE seq <= ?", (seen["max_seq"],)).fetchone()[0])
    gone = seen["records"] - kept - len(live_stones - signed_stones)
    if gone > 0:
        found.append(f"{gone} record(s) seen then are missing, with no tombstone")
    entries, _ = _audit_state(archive.root)
    if entries < seen["audit_entries"]:
        found.append(f"audit.log has {entries} entries, but {seen['audit_entries']} were seen")
    elif _audit_head_at(archive.root, seen["audit_entries"]) != seen["audit_head"]:
        found.append(f"audit.log was rewritten at or before line {seen['audit_entries']}")
    return [f"the catalog is older than the state last seen on {body['at']} (rolled back?): {p}" for p in found]


# --- bindings ---------------------------------------------------------------------------


def binding_message(archive_id: str, record_id: str, blob_sha256: str, wrapped: bytes, key_id: str) -> bytes:
    fields = {
        "archive": archive_id,
        "record": record_id,
        "blob_sha256": blob_sha256,
        "key_sha256": hashlib.sha256(wrapped).hexdigest(),
        "key_id": key_id,
    }
    return BINDING_PREFIX + audit.canonical(fields)


def _bind(archive: Archive, identity: keys.Identity, upto: int) -> None:
    rows = archive.catalog.db.execute(
        "SELECT r.id, r.blob_sha256, k.key_id, k.wrapped FROM records r JOIN record_keys k ON k.record_id = r.id"
        " LEFT JOIN bindings b ON b.record_id = r.id WHERE b.record_id IS NULL AND r.seq <= ?",
        (upto,),
    ).fetchall()
    for rid, blob, key_id, wrapped in rows:
        if key_id != identity.recipient.key_id:
            continue  # sealed to another key: reported by verify, never bound
        mac = identity.binding_mac(binding_message(archive.config.archive_id, rid, blob, bytes(wrapped), key_id))
        archive.catalog.db.execute(
            "INSERT INTO bindings(record_id, mac, bound_at) VALUES (?,?,?)", (rid, mac.hex(), now_utc())
        )


def binding_state(archive: Archive, identity: keys.Identity, record: RecordRow) -> str:
    """'ok', 'unbound', 'foreign' (sealed to another key) or 'mismatch' (blob or key replaced)."""
    key = archive.catalog.db.execute(
        "SELECT key_id, wrapped FROM record_keys WHERE record_id = ?", (record.id,)
    ).fetchone()
    if key is None:
        return "mismatch"
    if key[0] != identity.recipient.key_id:
        return "foreign"
    row = archive.catalog.db.execute("SELECT mac FROM bindings WHERE record_id = ?", (record.id,)).fetchone()
    if row is None:
        return "unbound"
    mac = identity.binding_mac(
        binding_message(archive.config.archive_id, record.id, record.blob_sha256, bytes(key[1]), str(key[0]))
    )
    return "ok" if hmac.compare_digest(mac.hex(), str(row[0])) else "mismatch"


def check_binding(archive: Archive, identity: keys.Identity, record: RecordRow) -> None:
    """Refuse a record whose blob or wrapped key is not the one it was bound to."""
    if binding_state(archive, identity, record) == "mismatch":
        raise IntegrityError(
            f"record {record.id}: its blob or key was replaced after it was first read (its binding no longer matches)"
        )


def foreign(archive: Archive, own: str) -> list[str]:
    """A message for each record whose key is wrapped to another recipient than this identity's."""
    rows = archive.catalog.db.execute(
        "SELECT r.id, k.key_id FROM records r JOIN record_keys k ON k.record_id = r.id WHERE k.key_id != ?"
        " ORDER BY r.seq",
        (own,),
    ).fetchall()
    return [
        f"record {rid} was sealed to another key ({key_id}), not this archive's ({own}): "
        "config.toml's recipient was changed when it was ingested"
        for rid, key_id in rows
    ]


# --- hold reasons --------------------------------------------------------------------------


def seal_reason(recipient: keys.Recipient, name: str, reason: str) -> str:
    return sealed.seal_text(recipient, b"hold:" + name.encode("utf-8"), reason)


def open_reason(identity: keys.Identity, name: str, stored: str) -> str:
    return sealed.open_text(identity, b"hold:" + name.encode("utf-8"), stored)


def _seal_plain_reasons(archive: Archive, identity: keys.Identity) -> None:
    rows = archive.catalog.db.execute("SELECT id, name, reason FROM holds").fetchall()
    for hold_id, name, reason in rows:
        if not sealed.is_sealed_text(str(reason)):
            archive.catalog.db.execute(
                "UPDATE holds SET reason = ? WHERE id = ?", (seal_reason(identity.recipient, name, reason), hold_id)
            )


# --- signing ---------------------------------------------------------------------------------


def item_intact(archive: Archive, table: str, key: str) -> bool:
    """Is this one decision (a client's facts, a hold by id) as signed? True on an archive not upgraded."""
    trust = load(archive, _config(archive))
    if not trust.upgraded:
        return True
    if trust.body is None:
        return False
    now = live(archive)
    if table == "clients":
        return bool(trust.body["clients"].get(key) == now.clients.get(key))
    return bool((trust.body["holds"].get(key) or {}).get("digest") == (now.holds.get(key) or {}).get("digest"))


def signed_retention(archive: Archive) -> dict[str, Any] | None:
    """The retention settings as last signed, or None (not upgraded, or nothing to trust)."""
    trust = load(archive, _config(archive))
    return None if trust.body is None else dict(trust.body["retention"])


def update(
    archive: Archive,
    identity: keys.Identity,
    *,
    clients: Iterable[str] = (),
    holds: Iterable[str] = (),
    approvals: Iterable[str] = (),
    retention: bool = False,
    rebuild: bool = False,
) -> dict[str, Any]:
    """Sign a new checkpoint: the old digests with those of the named items replaced (every item with
    rebuild, which also upgrades an archive made before signing). Call inside a catalog transaction
    (it serialises checkpoint writers). Refuses (RolledBack) a catalog older than the last checkpoint,
    and (IntegrityError) a checkpoint or a pinned key it cannot trust, unless rebuild."""
    config = _config(archive)
    own = identity.decision_key
    if config.decision_key is None or (rebuild and config.decision_key != own):
        pin_decision_key(archive.root / "config.toml", own)
        rebuild = rebuild or config.decision_key is None
        config = _config(archive)
    if config.decision_key != own:
        raise IntegrityError(
            "config.toml's decision key is not this archive's (it was changed without the passphrase)",
            hint=RE_SIGN_HINT,
        )
    trust = load(archive, config)
    if not rebuild:
        if trust.body is None:
            raise IntegrityError(trust.problem, hint=RE_SIGN_HINT)
        problems = come_back(archive) + rolled_back(archive, trust.body)
        if problems:
            raise RolledBack(problems[0])
    if rebuild:
        _seal_plain_reasons(archive, identity)
    upto = archive.catalog.max_seq()
    _bind(archive, identity, upto)
    now = live(archive, config)
    old = trust.body if trust.body is not None and not rebuild else None
    body_clients = dict(old["clients"]) if old else dict(now.clients)
    body_holds = dict(old["holds"]) if old else dict(now.holds)
    body_approvals = dict(old["approvals"]) if old else dict(now.approvals)
    for table, names, current in (
        (body_clients, clients, now.clients),
        (body_holds, holds, now.holds),
        (body_approvals, approvals, now.approvals),
    ):
        for name in names:
            if name in current:
                table[name] = current[name]
            else:
                table.pop(name, None)
    seen = seen_now(archive)
    for rid in seen["tombstones"]:
        body_approvals.pop(rid, None)  # the purge deleted it with its record
    body = {
        "archive": config.archive_id,
        "n": (int(trust.body["n"]) if trust.body is not None else 0) + 1,
        "at": now_utc(),
        "recipient": identity.recipient.encode(),
        "retention": now.retention if (retention or old is None) else old["retention"],
        "clients": body_clients,
        "holds": body_holds,
        "approvals": body_approvals,
        "seen": seen,
    }
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "body": body,
        "signature": identity.sign(SIGNED_PREFIX + audit.canonical(body)).hex(),
    }
    folder = archive.root / decision_store.DIR
    if not folder.exists():
        make_dir(folder, 0o700, writable_by_group=False)
    write_atomic(path_of(archive.root), (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())
    return body
