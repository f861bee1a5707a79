"""The ingest verb: seal scan files into the archive (public key only)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from scanarchive.cli.common import client_code, iso_date, open_archive, record_class
from scanarchive.errors import InputRejected, ScanarchiveError, UsageError, report
from scanarchive.ingest.batch import iter_ingest_files
from scanarchive.ingest.pipeline import IngestResult


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "ingest",
        parents=[common],
        help="seal scans into the archive (needs no passphrase)",
        description="OCR each scan locally for the search index, seal it, verify it, then remove the source. "
        "Note sheets (scanarchive sheets) say whose note each page is; --client/--date apply to pages without one.",
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="PDF, TIFF, PNG or JPEG scans")
    p.add_argument("--client", type=client_code, help="the client's code (the practice's pseudonym, not a name)")
    p.add_argument("--date", type=iso_date, help="session date, YYYY-MM-DD")
    p.add_argument(
        "--class",
        dest="record_class",
        type=record_class,
        default=None,
        help="progress (the default) or psychotherapy",
    )
    p.add_argument("--keep-source", action="store_true", help="leave the scan file in place after sealing")
    p.add_argument(
        "--jobs",
        type=int,
        default=0,
        metavar="N",
        help="scan files processed at once (default: ingest.jobs, 0 = one per CPU core)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per file (JSON Lines, in input order) instead of the text; errors still go to stderr",
    )
    p.set_defaults(func=cmd_ingest)


def cmd_ingest(args: argparse.Namespace) -> int:
    status = 0
    with open_archive(args) as archive:
        if not 0 <= args.jobs <= 64:
            raise UsageError("--jobs must be between 0 and 64")
        jobs = args.jobs or archive.config.ingest.effective_jobs
        outcomes = iter_ingest_files(
            archive.root,
            list(args.files),
            jobs,
            client=args.client,
            session_date=args.date,
            record_class=args.record_class,
            keep_source=args.keep_source,
        )
        for path, result in outcomes:  # each file as it is done; the library has written its audit entry
            if args.json:
                print(json.dumps(result_document(path, result)), flush=True)
            if isinstance(result, ScanarchiveError):
                result.message = f"{path}: {result.message}"
                status = status or report(result, debug=args.debug)
            elif not args.json:
                print_result(path.name, result)
                if result.source_removed:
                    print("  The scan file was removed.")
                elif args.keep_source:
                    print("  The scan file was kept (--keep-source).")
                sys.stdout.flush()
    return status


def result_document(path: Path, result: IngestResult | ScanarchiveError) -> dict[str, object]:
    """One file's outcome for `ingest --json`: ids, codes, page numbers and checks; never OCR text."""
    doc: dict[str, object] = {"file": str(path), "name": path.name}
    if isinstance(result, ScanarchiveError):
        doc["outcome"] = "refused" if isinstance(result, InputRejected) else "failed"
        doc["error"] = {
            "kind": type(result).__name__,
            "exit_code": result.exit_code,
            "message": result.message,
            "hint": result.hint,
        }
        doc.update(records=[], source_removed=False, blank_pages=[], quality=[], verdict="")
        doc.update(seconds=None, ocr_seconds=None)
        return doc
    doc["outcome"] = "duplicate" if result.duplicate else "archived"
    doc["error"] = None
    doc["records"] = [
        {
            "id": r.record_id,
            "client_code": r.client_code,
            "session_date": r.session_date,
            "record_class": r.record_class,
            "filed": r.filed,
            "pages": r.source_pages,
            "ocr_failed_pages": r.ocr_failed_pages,
            "identified_by": r.identified_by,
            "note": r.note,
        }
        for r in result.records
    ]
    doc["source_removed"] = result.source_removed
    doc["blank_pages"] = result.blank_pages
    doc["quality"] = [
        {"page": q.page, "problems": q.problems, "warnings": q.warnings}
        for q in result.quality
        if (q.problems or q.warnings) and not q.blank
    ]
    doc["verdict"] = result.verdict
    doc["seconds"] = round(result.seconds, 3)
    doc["ocr_seconds"] = round(result.ocr_seconds, 3)
    return doc


def print_result(name: str, result: IngestResult) -> None:
    """What a clinician needs after each scan: which records, whose, and whether to rescan."""
    if result.duplicate:
        print(f"{name}: already archived as record {result.record_id}; no second record was made.")
        return
    count = len(result.records)
    print(f"{name}: {count} record{'s' if count != 1 else ''} sealed and verified in {result.seconds:.1f} s")
    for outcome in result.records:
        pages = _pages(outcome.source_pages)
        who = outcome.client_code or "UNFILED"
        when = outcome.session_date or "no date"
        how = f" (from the {outcome.identified_by})" if outcome.identified_by else ""
        print(f"  record {outcome.record_id} — {who}, {when}, {outcome.record_class}, {pages}{how}")
        if not outcome.filed:
            reason = f": {outcome.note}" if outcome.note else ""
            print(f"    unfiled{reason}. File it with: scanarchive file {outcome.record_id[:8]} --client C --date D")
        if outcome.ocr_failed_pages:
            listed = ", ".join(str(p) for p in outcome.ocr_failed_pages)
            print(
                f"    note: OCR could not read page(s) {listed} of this record; archived, "
                "but words on those pages will not be found by search."
            )
    if result.blank_pages:
        print(f"  {len(result.blank_pages)} blank page(s) dropped: {_pages(result.blank_pages)} of the scan")
    for page in result.quality:
        notes = page.problems + page.warnings
        if notes and not page.blank:
            print(f"  page {page.page}: {'; '.join(notes)}")
    print(f"  {result.verdict}")


def _pages(numbers: list[int]) -> str:
    if len(numbers) == 1:
        return f"page {numbers[0]}"
    return "pages " + ", ".join(str(n) for n in numbers)
