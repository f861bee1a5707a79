"""The ingest verb: seal scan files into the archive (public key only)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from scanarchive.archive import filing
from scanarchive.cli.common import client_code, iso_date, open_archive, record_class
from scanarchive.cli.progress import IngestProgress
from scanarchive.errors import InputRejected, Interrupted, ScanarchiveError, UsageError, report
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
        "--allow-future",
        action="store_true",
        help="accept a --date after today (refused otherwise: a typo in the year)",
    )
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
    if args.date:  # before anything is read: a slip of the year would move the destruction date by years
        args.date = filing.check_session_date(args.date, allow_future=args.allow_future)
    with open_archive(args) as archive:
        if not 0 <= args.jobs <= 64:
            raise UsageError("--jobs must be between 0 and 64")
        jobs = args.jobs or archive.config.ingest.effective_jobs
        paths = list(args.files)
        progress = IngestProgress.for_command([p.name for p in paths], json_mode=args.json)
        stop = threading.Event()
        archived: list[str] = []
        stopped: list[str] = []
        with _stop_on_sigint(stop):
            with progress.shown():
                outcomes = iter_ingest_files(
                    archive.root,
                    paths,
                    jobs,
                    stop=stop,
                    on_step=progress.step,
                    client=args.client,
                    session_date=args.date,
                    record_class=args.record_class,
                    keep_source=args.keep_source,
                )
                # Each file as soon as it (and those before it) is done; the library has written its audit entry.
                for index, (path, result) in enumerate(outcomes):
                    code = _show(args, progress, path, result)
                    status = status or code
                    if isinstance(result, Interrupted):
                        stopped.append(path.name)
                    elif not isinstance(result, ScanarchiveError):
                        archived.append(path.name)
                    progress.finished(index, stopped=isinstance(result, Interrupted))
            if stop.is_set():  # still under the handler: a second Ctrl-C cannot cut this short
                _say_interrupted(archived, stopped)
                return Interrupted.exit_code
    return status


def _show(
    args: argparse.Namespace, progress: IngestProgress, path: Path, result: IngestResult | ScanarchiveError
) -> int:
    """One file's outcome: its JSON line, its result lines, or its error (stopped ones are summed up at the end);
    returns its exit code."""
    if args.json:
        print(json.dumps(result_document(path, result)), flush=True)
    if isinstance(result, Interrupted):
        return 0
    if isinstance(result, ScanarchiveError):
        result.message = f"{path}: {result.message}"
        with progress.paused():
            return report(result, debug=args.debug)
    if not args.json:
        lines = result_lines(path.name, result)
        if result.source_removed:
            lines.append("  The scan file was removed.")
        elif args.keep_source:
            lines.append("  The scan file was kept (--keep-source).")
        progress.write("\n".join(lines))
    return 0


@contextlib.contextmanager
def _stop_on_sigint(stop: threading.Event) -> Iterator[None]:
    """While the batch runs, Ctrl-C (SIGINT) sets `stop` instead of raising in the middle of a file: files not
    yet sealed stop with nothing written, a file being sealed is finished, and every file is reported."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread
        yield
        return

    def on_sigint(_signum: int, _frame: object) -> None:
        again = stop.is_set()
        stop.set()
        text = (
            "\nscanarchive: still stopping: a file being sealed is finished first (seconds, not minutes).\n"
            if again
            else "\nscanarchive: stopping: no further file is started; a file being sealed is finished first.\n"
        )
        with contextlib.suppress(OSError, ValueError, AttributeError):
            os.write(sys.stderr.fileno(), text.encode())  # unbuffered: safe in a signal handler

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)


def _say_interrupted(archived: list[str], stopped: list[str]) -> None:
    """What an interrupted batch did, exactly: which files are archived (their lines were printed above, their
    audit entries written) and which are not (their scan files untouched)."""
    print("scanarchive: interrupted (Ctrl-C).", file=sys.stderr)
    if archived:
        print(
            f"  {_count(archived)} archived before it stopped, as reported above: {_names(archived)}.",
            file=sys.stderr,
        )
    else:
        print("  No file was archived and no scan file was removed.", file=sys.stderr)
    if stopped:
        print(
            f"  {_count(stopped)} not archived; the scan file(s) were not changed: {_names(stopped)}.", file=sys.stderr
        )
        print(
            "  what to do: run the same command again for these; "
            "files already archived are recognised, never archived twice.",
            file=sys.stderr,
        )


def _count(names: list[str]) -> str:
    return f"{len(names)} file{'s' if len(names) != 1 else ''}"


def _names(names: list[str], most: int = 10) -> str:
    shown = ", ".join(names[:most])
    return shown if len(names) <= most else f"{shown} and {len(names) - most} more"


def result_document(path: Path, result: IngestResult | ScanarchiveError) -> dict[str, object]:
    """One file's outcome for `ingest --json`: ids, codes, page numbers and checks; never OCR text."""
    doc: dict[str, object] = {"file": str(path), "name": path.name}
    if isinstance(result, ScanarchiveError):
        doc["outcome"] = (
            "refused"
            if isinstance(result, InputRejected)
            else "interrupted"
            if isinstance(result, Interrupted)
            else "failed"
        )
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
    for line in result_lines(name, result):
        print(line)


def result_lines(name: str, result: IngestResult) -> list[str]:
    """The lines :func:`print_result` prints."""
    lines: list[str] = []
    add = lines.append
    if result.duplicate:
        add(f"{name}: already archived as record {result.record_id}; no second record was made.")
        return lines
    count = len(result.records)
    add(f"{name}: {count} record{'s' if count != 1 else ''} sealed and verified in {result.seconds:.1f} s")
    for outcome in result.records:
        pages = _pages(outcome.source_pages)
        who = outcome.client_code or "UNFILED"
        when = outcome.session_date or "no date"
        how = f" (from the {outcome.identified_by})" if outcome.identified_by else ""
        add(f"  record {outcome.record_id} — {who}, {when}, {outcome.record_class}, {pages}{how}")
        if not outcome.filed:
            reason = f": {outcome.note}" if outcome.note else ""
            add(f"    unfiled{reason}. File it with: scanarchive file {outcome.record_id[:8]} --client C --date D")
        if outcome.ocr_failed_pages:
            listed = ", ".join(str(p) for p in outcome.ocr_failed_pages)
            add(
                f"    note: OCR could not read page(s) {listed} of this record; archived, "
                "but words on those pages will not be found by search."
            )
    if result.blank_pages:
        add(f"  {len(result.blank_pages)} blank page(s) dropped: {_pages(result.blank_pages)} of the scan")
    for page in result.quality:
        notes = page.problems + page.warnings
        if notes and not page.blank:
            add(f"  page {page.page}: {'; '.join(notes)}")
    add(f"  {result.verdict}")
    return lines


def _pages(numbers: list[int]) -> str:
    if len(numbers) == 1:
        return f"page {numbers[0]}"
    return "pages " + ", ".join(str(n) for n in numbers)
