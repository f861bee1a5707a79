"""The status verb: counts, sizes, engines, sandbox and accounts of an archive (never secrets)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from scanarchive import sandbox
from scanarchive.archive import accounts
from scanarchive.archive.layout import Archive
from scanarchive.cli.common import human_bytes, open_archive
from scanarchive.ingest import analyse
from scanarchive.ocr import ensemble


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("status", parents=[common], help="counts, sizes and last ingest (never secrets)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_status)


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
