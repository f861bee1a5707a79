"""Verbs that manage the archive itself: init, passwd, status, verify."""

from __future__ import annotations

import argparse
import io
import json
import uuid
from pathlib import Path
from typing import Any

from scanarchive import sandbox
from scanarchive.archive.layout import Archive
from scanarchive.archive.store import write_atomic
from scanarchive.cli.common import add_passphrase_file, archive_dir, human_bytes, open_archive
from scanarchive.cli.passphrase import get_passphrase
from scanarchive.crypto import keys, seal
from scanarchive.errors import IntegrityError, UsageError
from scanarchive.intake import quarantine
from scanarchive.ocr import ensemble
from scanarchive.pipeline import verify_stored


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("init", parents=[common], help="create a new encrypted archive")
    add_passphrase_file(p)
    p.add_argument(
        "--kdf-seconds",
        type=float,
        default=0.75,
        metavar="S",
        help="how long unlocking should take, to slow down guessing (default 0.75 s)",
    )
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("passwd", parents=[common], help="change the passphrase (re-encrypts the identity only)")
    add_passphrase_file(p)
    p.add_argument("--new-passphrase-file", type=Path, metavar="FILE")
    p.set_defaults(func=cmd_passwd)

    p = sub.add_parser("status", parents=[common], help="counts, sizes and last ingest (never secrets)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("verify", parents=[common], help="check every stored record")
    p.add_argument(
        "--read-data", action="store_true", help="also decrypt and authenticate every record (needs the passphrase)"
    )
    add_passphrase_file(p)
    p.set_defaults(func=cmd_verify)


def cmd_init(args: argparse.Namespace) -> int:
    root = archive_dir(args)
    if not 0.01 <= args.kdf_seconds <= 10:
        raise UsageError("--kdf-seconds must be between 0.01 and 10")
    passphrase = get_passphrase(args.passphrase_file, confirm=True, prompt="New passphrase for the archive: ")
    with Archive.create(root, passphrase, args.kdf_seconds) as archive:
        print(f"Created an encrypted archive at {archive.root}")
        print("Keep the passphrase safe: without it (and identity.enc) no note can be read again.")
        print("Back up identity.enc together with the archive.")
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    with open_archive(args) as archive:
        old = get_passphrase(args.passphrase_file, prompt="Current passphrase: ")
        identity = archive.unlock(old)
        new = get_passphrase(args.new_passphrase_file, confirm=True, prompt="New passphrase: ")
        doc = json.loads(archive.identity_path.read_bytes())
        log_n = int(doc["kdf"]["log_n"])
        write_atomic(archive.identity_path, keys.seal_identity(identity, new, log_n))
        archive.audit("passwd", key_id=identity.recipient.key_id)
        print("Passphrase changed. Old copies of identity.enc (in backups) still open with the old passphrase.")
    return 0


def status_doc(archive: Archive) -> dict[str, Any]:
    counts = archive.catalog.counts()
    engines = ensemble.engine_status(archive.config.ingest)
    return {
        "archive": str(archive.root),
        "archive_id": archive.config.archive_id,
        **counts,
        "quarantined": archive.catalog.quarantine_count(),
        "in_progress": archive.catalog.journal_count(),
        "last_ingest": archive.catalog.last_ingest(),
        "identity_present": archive.identity_path.is_file(),
        "search_index_present": (archive.root / "index.db").is_file(),
        "ocr_engines": list(engines.running),
        "ocr_engines_missing": list(engines.missing),
        "ocr_recall_reduced": engines.recall_reduced,
        "ocr_network_isolated": sandbox.network_isolated(),
    }


def cmd_status(args: argparse.Namespace) -> int:
    with open_archive(args) as archive:
        doc = status_doc(archive)
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    print(f"Archive:    {doc['archive']}")
    print(f"Records:    {doc['records']} ({doc['pages']} pages, {human_bytes(doc['sealed_bytes'])} sealed)")
    print(f"Unfiled:    {doc['unfiled']} (no client or date yet)")
    if doc["with_unreadable_pages"]:
        print(f"Flagged:    {doc['with_unreadable_pages']} record(s) with pages OCR could not read (still archived)")
    print(f"Last scan:  {doc['last_ingest'] or 'never'}")
    print(f"OCR:        {', '.join(doc['ocr_engines'])}")
    if doc["ocr_recall_reduced"]:
        print(
            f"Warning:    OCR engine {', '.join(doc['ocr_engines_missing'])} is configured but not installed: notes are "
            "still archived and searchable, but fewer handwritten words will be found. Install it with: "
            ".venv/bin/pip install -e '.[rapidocr]' (or ./dev.sh setup)."
        )
    if not doc["ocr_network_isolated"]:
        print(
            "Warning:    network isolation of the OCR engines is not available on this machine (no working "
            "'unshare --net'): they run with telemetry off, but are not cut off from the network."
        )
    if doc["quarantined"]:
        print(f"Failed:     {doc['quarantined']} scan(s) could not be archived: see 'scanarchive failed list'")
    if doc["in_progress"]:
        print(f"In progress: {doc['in_progress']} scan(s) claimed from the drop folder, not finished yet")
    if not doc["identity_present"]:
        print("Warning:    identity.enc is missing here: notes can be added but not read. Restore it from a backup.")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    problems: list[str] = []
    checked = 0
    with open_archive(args) as archive:
        identity = archive.unlock(get_passphrase(args.passphrase_file)) if args.read_data else None
        records = archive.catalog.records()
        known = {r.blob_sha256 for r in records}
        for record in records:
            checked += 1
            try:
                verify_stored(archive, record)
                if identity is not None:
                    key = archive.record_key(identity, record)
                    data = archive.store.get(record.blob_sha256)
                    fp = io.BytesIO(data)
                    header = seal.read_header(fp)
                    for kind, _ in header.sections:
                        seal.open_section(fp, key, uuid.UUID(record.id).bytes, kind)
            except IntegrityError as exc:
                message = exc.message if exc.message.startswith("record ") else f"record {record.id}: {exc.message}"
                problems.append(message)
        orphans = [f"objects/{d[:2]}/{d[2:]}" for d in archive.store if d not in known]
        checked_q = 0
        held = quarantine.entries(archive)
        for entry in held:
            checked_q += 1
            try:
                if quarantine.store(archive).hash_of(entry.blob_sha256) != entry.blob_sha256:
                    raise IntegrityError("its sealed copy is damaged (hash mismatch)")
                if identity is not None:
                    quarantine.open_scan(archive, identity, entry)
            except FileNotFoundError:
                problems.append(f"quarantined scan {entry.id}: its sealed copy is missing from quarantine/")
            except IntegrityError as exc:
                text = (
                    exc.message
                    if exc.message.startswith("quarantined")
                    else f"quarantined scan {entry.id}: {exc.message}"
                )
                problems.append(text)
        known_q = {e.blob_sha256 for e in held}
        orphans += [f"quarantine/{d[:2]}/{d[2:]}" for d in quarantine.store(archive) if d not in known_q]
        damaged_ids = [m.split()[1].rstrip(":") for m in problems if m.startswith("record ")]
        archive.audit("verify", checked=checked, damaged=damaged_ids, ok=not problems)
    for message in problems:
        print(f"DAMAGED  {message}")
    for name in orphans:
        print(f"UNKNOWN  {name} belongs to no record (left alone; e.g. written just before a crash)")
    what = "decrypted and authenticated" if args.read_data else "hash-checked (use --read-data to decrypt too)"
    print(f"{checked} record(s) and {checked_q} quarantined scan(s) {what}; {len(problems)} damaged.")
    if problems:
        raise IntegrityError(f"{len(problems)} record(s) are damaged")
    return 0
