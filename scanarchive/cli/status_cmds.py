"""The status verb: counts, sizes, engines, sandbox, accounts and health of an archive (never secrets)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from scanarchive import sandbox
from scanarchive.archive import accounts, health
from scanarchive.archive.layout import Archive
from scanarchive.cli.common import human_bytes, open_archive
from scanarchive.errors import ConfigError
from scanarchive.ingest import analyse
from scanarchive.ocr import ensemble, rapidocr


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "status", parents=[common], help="counts, sizes, last scan, watcher, last purge, failures (never secrets)"
    )
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
        **_ocr_models(engines.running),
        "ocr_network_isolated": sandbox.network_isolated(),
        "parser_sandbox": analyse.sandbox_status(),
        "accounts": accounts.report(archive.root).to_json(),
        **health_doc(archive),
    }


def _ocr_models(running: tuple[str, ...]) -> dict[str, Any]:
    """Which models the second engine reads with, and whether the shipped ones are intact (their sha256)."""
    if rapidocr.NAME not in running:
        return {"ocr_models": None, "ocr_models_problem": None}
    try:
        return {"ocr_models": rapidocr.version(), "ocr_models_problem": None}
    except ConfigError as exc:
        return {"ocr_models": None, "ocr_models_problem": f"{exc.message}. {exc.hint}"}


def health_doc(archive: Archive) -> dict[str, Any]:
    """The unattended parts: the watcher's heartbeat, the last purge, units that failed (archive/health.py)."""
    watcher = health.watcher(archive.root)
    real_purge = health.last_purge(archive.root, dry_runs=False)
    failures = health.failures(
        archive.root,
        watcher_last_seen=watcher["last_seen"] if watcher["running"] is not False else None,
        purge_at=real_purge["at"] if real_purge else None,
    )
    return {
        "watcher": watcher,
        "last_purge": health.last_purge(archive.root),
        "unit_failures": [f.to_json() for f in failures],
    }


def warnings(doc: dict[str, Any]) -> list[str]:
    """Everything status warns about, in plain words (also `status --json`'s "warnings")."""
    found: list[str] = []
    if doc["ocr_recall_reduced"]:
        found.append(
            f"OCR engine {', '.join(doc['ocr_engines_missing'])} is configured but not installed: notes are "
            "still archived and searchable, but fewer handwritten words will be found. Install it into "
            "scanarchive's own environment: in a checkout './dev.sh setup'; a system-wide install gets it from "
            "'sudo ./dev.sh install' (or: /opt/scanarchive/venv/bin/pip install 'rapidocr-onnxruntime>=1.4.4,<1.5')."
        )
    if doc["ocr_models_problem"]:
        found.append(f"{doc['ocr_models_problem']} Until then scans wait in the drop folder's journal, unread.")
    if not doc["ocr_network_isolated"]:
        found.append(
            "network isolation of the OCR engines is not available on this machine (no working "
            "'unshare --net'): they run with telemetry off, but are not cut off from the network."
        )
    if not analyse.sandboxed():
        found.append(
            "the process that reads the scans is not fully sandboxed on this machine (see the Parser line "
            "and docs/threat-model.md, 'Parser sandbox')."
        )
    if doc["quarantined"]:
        found.append(f"{doc['quarantined']} scan(s) could not be archived: see 'scanarchive failed list'")
    for failure in doc["unit_failures"]:
        if not failure["recovered"]:
            unit = failure["unit"]
            found.append(
                f"{unit} failed at {failure['at']} ({failure['count']} time(s) in all) and has not worked since: "
                f"see 'journalctl -u {unit}', fix the cause, then 'sudo systemctl restart {unit}'"
            )
    if not doc["identity_present"]:
        found.append("identity.enc is missing here: notes can be added but not read. Restore it from a backup.")
    found.extend(doc["accounts"]["problems"])
    return found


def cmd_status(args: argparse.Namespace) -> int:
    with open_archive(args) as archive:
        doc = status_doc(archive)
    doc["warnings"] = warnings(doc)
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    print(f"Archive:    {doc['archive']}")
    print(f"Records:    {doc['records']} ({doc['pages']} pages, {human_bytes(doc['sealed_bytes'])} sealed)")
    print(f"Unfiled:    {doc['unfiled']} (no client or date yet)")
    if doc["with_unreadable_pages"]:
        print(f"Flagged:    {doc['with_unreadable_pages']} record(s) with pages OCR could not read (still archived)")
    print(f"Last scan:  {doc['last_ingest'] or 'never'}")
    print(f"Watcher:    {_watcher_line(doc['watcher'])}")
    print(f"Last purge: {_purge_line(doc['last_purge'])}")
    print(f"OCR:        {', '.join(doc['ocr_engines'])}")
    if doc["ocr_models"]:
        print(f"OCR models: {doc['ocr_models']}")
    print(f"Parser:     {doc['parser_sandbox']}")
    if doc["quarantined"]:
        print(f"Failed:     {doc['quarantined']} scan(s) could not be archived: see 'scanarchive failed list'")
    if doc["in_progress"]:
        print(f"In progress: {doc['in_progress']} scan(s) claimed from the drop folder, not finished yet")
    _print_accounts(doc["accounts"])
    for line in doc["warnings"]:
        print(f"Warning:    {line}")
    return 0


def _watcher_line(watcher: dict[str, Any]) -> str:
    seen = watcher["last_seen"]
    if watcher["running"]:
        return f"running (last seen {seen})"
    if seen is None:
        return "never run on this archive"
    if watcher["running"] is None:
        return f"last seen {seen} (whether it runs now cannot be read here)"
    return f"not running (last seen {seen})"


def _purge_line(purge: dict[str, Any] | None) -> str:
    if purge is None:
        return "never"
    what = f"{purge['destroyed']} record(s) destroyed"
    if purge["dry_run"]:
        what = "a dry run (nothing destroyed)"
    if purge["kept_unverified"]:
        what += f"; {purge['kept_unverified']} kept because a decision behind them does not verify"
    return f"{purge['at']}: {what}"


def _print_accounts(found: dict[str, Any]) -> None:
    if found["mode"] == "separated":
        print("Accounts:   separated (the watcher's account cannot change decisions, config or the identity)")
    else:
        print(f"Accounts:   single: {accounts.SINGLE_WARNING.removeprefix('single-account mode: ')}")
