"""Verbs that manage the archive itself: init, passwd, status, verify, setup-accounts."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from scanarchive import sandbox
from scanarchive.archive import accounts
from scanarchive.archive.check import check_archive
from scanarchive.archive.layout import Archive
from scanarchive.cli.common import add_passphrase_file, archive_dir, human_bytes, open_archive
from scanarchive.cli.passphrase import get_passphrase
from scanarchive.crypto import keys
from scanarchive.errors import IntegrityError, RolledBack, UsageError
from scanarchive.ingest import analyse
from scanarchive.ocr import ensemble

RECOMMENDED_KDF_SECONDS = 0.25  # below this, init and passwd warn: for tests, not real notes


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("init", parents=[common], help="create a new encrypted archive")
    add_passphrase_file(p)
    _add_kdf_seconds(p)
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("passwd", parents=[common], help="change the passphrase (re-encrypts the identity only)")
    add_passphrase_file(p)
    p.add_argument("--new-passphrase-file", type=Path, metavar="FILE", help="read the new passphrase from FILE")
    _add_kdf_seconds(p)
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

    p = sub.add_parser(
        "setup-accounts",
        parents=[common],
        help="as root: owners, group and modes so the watcher's account cannot change decisions (docs/scanners.md)",
    )
    p.add_argument("--watcher-group", required=True, metavar="GROUP", help="the group the watcher runs in")
    p.add_argument("--owner", metavar="USER", help="the archive owner (default: the archive folder's owner)")
    p.add_argument("--dry-run", action="store_true", help="print what would be done, change nothing")
    p.set_defaults(func=cmd_setup_accounts)


def _add_kdf_seconds(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--kdf-seconds",
        type=float,
        default=0.75,
        metavar="S",
        help="how long unlocking should take on this machine, to slow down guessing (default 0.75 s)",
    )


def _kdf_seconds(args: argparse.Namespace) -> float:
    seconds = float(args.kdf_seconds)
    if not 0.01 <= seconds <= 10:
        raise UsageError("--kdf-seconds must be between 0.01 and 10")
    if seconds < RECOMMENDED_KDF_SECONDS:
        print(
            f"warning: --kdf-seconds {seconds:g} makes each guess of the passphrase cheap (scrypt is never set below "
            f"2^{keys.MIN_LOG_N}); below {RECOMMENDED_KDF_SECONDS:g} s is meant for tests, not for real notes.",
            file=sys.stderr,
        )
    return seconds


def cmd_init(args: argparse.Namespace) -> int:
    root = archive_dir(args)
    seconds = _kdf_seconds(args)
    passphrase = get_passphrase(args.passphrase_file, confirm=True, prompt="New passphrase for the archive: ")
    with Archive.create(root, passphrase, seconds) as archive:
        print(f"Created an encrypted archive at {archive.root}")
        print("Keep the passphrase safe: without it (and identity.enc) no note can be read again.")
        print("Back up identity.enc together with the archive.")
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    seconds = _kdf_seconds(args)
    with open_archive(args) as archive:
        old = get_passphrase(args.passphrase_file, prompt="Current passphrase: ")
        identity = archive.unlock(old)
        new = get_passphrase(args.new_passphrase_file, confirm=True, prompt="New passphrase: ")
        archive.change_passphrase(identity, new, seconds)
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
        "parser_sandbox": analyse.sandbox_status(),
        "accounts": accounts.report(archive.root).to_json(),
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
    print(f"Parser:     {doc['parser_sandbox']}")
    if not analyse.sandboxed():
        print(
            "Warning:    the process that reads the scans is not fully sandboxed on this machine (see the line "
            "above and docs/threat-model.md, 'Parser sandbox')."
        )
    if doc["quarantined"]:
        print(f"Failed:     {doc['quarantined']} scan(s) could not be archived: see 'scanarchive failed list'")
    if doc["in_progress"]:
        print(f"In progress: {doc['in_progress']} scan(s) claimed from the drop folder, not finished yet")
    if not doc["identity_present"]:
        print("Warning:    identity.enc is missing here: notes can be added but not read. Restore it from a backup.")
    _print_accounts(doc["accounts"])
    return 0


def _print_accounts(found: dict[str, Any]) -> None:
    if found["mode"] == "separated":
        print("Accounts:   separated (the watcher's account cannot change decisions, config or the identity)")
    else:
        print(f"Accounts:   single: {accounts.SINGLE_WARNING.removeprefix('single-account mode: ')}")
    for problem in found["problems"]:
        print(f"Warning:    {problem}")


def cmd_setup_accounts(args: argparse.Namespace) -> int:
    root = archive_dir(args)
    done = accounts.apply(root, args.watcher_group, owner=args.owner, dry_run=args.dry_run)
    for line in done:
        print(f"{'would ' if args.dry_run else ''}{line}")
    if not done:
        print("Nothing to do: the archive already follows the separated layout.")
    if not args.dry_run:
        left = accounts.check(root)
        for problem in left:
            print(f"Warning:    {problem}")
        print(f"Accounts:   {accounts.mode_of(root)}; {len(left)} problem(s) left")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    with open_archive(args) as archive:
        identity = archive.unlock(get_passphrase(args.passphrase_file)) if args.read_data else None
        report = check_archive(archive, identity)
    for finding in report.damaged:
        print(f"DAMAGED  {finding.message}")
    for finding in report.unknown:
        print(f"UNKNOWN  {finding.message}")
    for finding in report.tampered:
        print(f"TAMPERED  {finding.message}")
    for finding in report.rolled_back:
        print(f"ROLLED BACK  {finding.message}")
    what = "decrypted and authenticated" if report.read_data else "hash-checked (use --read-data to decrypt too)"
    print(
        f"{report.records_checked} record(s) and {report.quarantined_checked} quarantined scan(s) {what}; "
        f"{len(report.damaged)} damaged."
    )
    if report.rolled_back:
        raise RolledBack(report.rolled_back[0].message)
    if report.damaged:
        raise IntegrityError(f"{len(report.damaged)} record(s) are damaged")
    if report.tampered:
        raise IntegrityError(f"{len(report.tampered)} decision(s) were changed without the passphrase")
    return 0
