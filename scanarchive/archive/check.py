"""`verify` as a library call: check every stored record and quarantined scan, return typed findings.

Without an identity every blob is hash-checked against its name (no key
needed); with one, every section is also decrypted and authenticated. Blobs
that belong to no record or quarantined scan are reported as unknown and left
alone (e.g. written just before a crash). The check is audited (`verify`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from scanarchive.archive import checkpoint, quarantine, sealed
from scanarchive.archive.layout import Archive
from scanarchive.crypto.keys import Identity
from scanarchive.errors import IntegrityError


@dataclass(frozen=True)
class Finding:
    """One problem. `id` is the record or quarantine entry id (None for an unknown blob, named by `path`)."""

    kind: Literal["damaged", "unknown", "tampered", "rolled_back"]
    what: Literal["record", "quarantine", "object", "decisions", "catalog"]
    id: str | None
    message: str  # names the object by id or path, never content
    path: str | None = None  # the unknown blob, relative to the archive: objects/ab/cdef…


@dataclass
class CheckReport:
    records_checked: int = 0
    quarantined_checked: int = 0
    findings: list[Finding] = field(default_factory=list)
    read_data: bool = False  # sections were decrypted and authenticated too
    temps_removed: int = 0  # temp files a killed write had left in the stores (sealed bytes, never a blob)

    @property
    def damaged(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == "damaged"]

    @property
    def unknown(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == "unknown"]

    @property
    def tampered(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == "tampered"]

    @property
    def rolled_back(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == "rolled_back"]

    @property
    def damaged_records(self) -> list[str]:
        return [f.id for f in self.damaged if f.what == "record" and f.id is not None]

    @property
    def ok(self) -> bool:
        return not self.damaged and not self.tampered and not self.rolled_back


def _named(message: str, starts: str, name: str) -> str:
    """The message as it names the object, or prefixed with its name."""
    return message if message.startswith(starts) else f"{name}: {message}"


def _unknown(folder: str, digest: str) -> Finding:
    path = f"{folder}/{digest[:2]}/{digest[2:]}"
    message = f"{path} belongs to no record (left alone; e.g. written just before a crash)"
    return Finding("unknown", "object", None, message, path)


def check_archive(archive: Archive, identity: Identity | None) -> CheckReport:
    """Check every record and quarantined scan; never raises for damage found, audits the result."""
    report = CheckReport(read_data=identity is not None)
    records = archive.catalog.records()
    trust = checkpoint.load(archive)
    seen_upto = int(trust.body["seen"]["max_seq"]) if trust.body is not None else 0
    for record in records:
        report.records_checked += 1
        try:
            sealed.check(archive.store, record.blob_sha256, record.id)
            if identity is not None:
                state = checkpoint.binding_state(archive, identity, record)
                if state == "foreign":
                    raise IntegrityError(checkpoint.foreign(archive, identity.recipient.key_id)[0])
                if state == "unbound" and record.seq <= seen_upto:
                    raise IntegrityError(
                        f"record {record.id}: its binding is missing (its blob or key may have been replaced)"
                    )
                key = archive.record_key(identity, record)
                sealed.open_all(archive.store, record.blob_sha256, key, record.id)
        except IntegrityError as exc:
            report.findings.append(
                Finding("damaged", "record", record.id, _named(exc.message, "record ", f"record {record.id}"))
            )
    known = {r.blob_sha256 for r in records}
    orphans = [_unknown("objects", d) for d in archive.store if d not in known]

    held = quarantine.entries(archive)
    for entry in held:
        report.quarantined_checked += 1
        try:
            quarantine.check(archive, entry)
            if identity is not None:
                quarantine.open_scan(archive, identity, entry)
        except IntegrityError as exc:
            message = _named(exc.message, "quarantined", f"quarantined scan {entry.id}")
            report.findings.append(Finding("damaged", "quarantine", entry.id, message))
    known_q = {e.blob_sha256 for e in held}
    orphans += [_unknown("quarantine", d) for d in quarantine.store(archive) if d not in known_q]
    report.findings += orphans
    _check_decisions(archive, identity, trust, report)

    report.temps_removed = archive.store.sweep_temps() + quarantine.store(archive).sweep_temps()
    archive.audit(
        "verify",
        checked=report.records_checked,
        damaged=report.damaged_records,
        ok=report.ok,
        **({"temps_removed": report.temps_removed} if report.temps_removed else {}),
    )
    return report


def _check_decisions(archive: Archive, identity: Identity | None, trust: checkpoint.Trust, report: CheckReport) -> None:
    """The signed checkpoint (docs/format.md §15.5): pinned key, forged decisions, rollback; then, with the
    identity and nothing found, sign a new checkpoint of what this verify saw."""
    if identity is not None and archive.config.decision_key not in (None, identity.decision_key):
        message = "config.toml's decision key is not this archive's (it was changed without the passphrase)"
        report.findings.append(Finding("tampered", "decisions", None, message))
        return
    stones = {str(r[0]) for r in archive.catalog.db.execute("SELECT record_id FROM tombstones")}
    for message in checkpoint.tampered(trust, checkpoint.live(archive), stones):
        report.findings.append(Finding("tampered", "decisions", None, message))
    for message in checkpoint.come_back(archive) + (
        [] if trust.body is None else checkpoint.rolled_back(archive, trust.body)
    ):
        report.findings.append(Finding("rolled_back", "catalog", None, message))
    if identity is not None and report.ok:
        with archive.catalog.transaction():
            checkpoint.update(archive, identity)
