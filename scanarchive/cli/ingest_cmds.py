"""The ingest verb: seal scan files into the archive (public key only)."""

from __future__ import annotations

import argparse
from pathlib import Path

from scanarchive.cli.common import client_code, iso_date, open_archive, record_class
from scanarchive.errors import ScanarchiveError, report
from scanarchive.pipeline import ingest_file


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "ingest",
        parents=[common],
        help="seal scans into the archive (needs no passphrase)",
        description="OCR each scan locally for the search index, seal it, verify it, then remove the source.",
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="PDF, TIFF, PNG or JPEG scans")
    p.add_argument("--client", type=client_code, help="the client's code (the practice's pseudonym, not a name)")
    p.add_argument("--date", type=iso_date, help="session date, YYYY-MM-DD")
    p.add_argument(
        "--class",
        dest="record_class",
        type=record_class,
        default="progress",
        help="progress (default) or psychotherapy",
    )
    p.add_argument("--keep-source", action="store_true", help="leave the scan file in place after sealing")
    p.set_defaults(func=cmd_ingest)


def cmd_ingest(args: argparse.Namespace) -> int:
    status = 0
    with open_archive(args) as archive:
        for path in args.files:
            try:
                result = ingest_file(
                    archive,
                    path,
                    client=args.client,
                    session_date=args.date,
                    record_class=args.record_class,
                    keep_source=args.keep_source,
                )
            except ScanarchiveError as exc:
                exc.message = f"{path}: {exc.message}"
                code = report(exc, debug=args.debug)
                status = status or code
                continue
            if result.duplicate:
                print(f"{path}: already archived as record {result.record_id}; no second record was made.")
            else:
                pages = f"{result.page_count} page{'s' if result.page_count != 1 else ''}"
                print(f"{path}: record {result.record_id} — {pages}, sealed and verified in {result.seconds:.1f} s.")
                if result.ocr_failed_pages:
                    listed = ", ".join(str(p) for p in result.ocr_failed_pages)
                    print(f"  note: OCR could not read page(s) {listed}; they are archived but not searchable.")
            if result.source_removed:
                print("  verified — the paper may be shredded. The scan file was removed.")
            elif not result.duplicate or args.keep_source:
                print("  verified — the paper may be shredded. The scan file was kept (--keep-source).")
    return status
