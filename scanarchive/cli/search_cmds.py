"""Verbs that read notes (need the passphrase): search, show."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from scanarchive import reading
from scanarchive.cli.common import add_passphrase_file, client_code, iso_date, open_archive
from scanarchive.cli.passphrase import get_passphrase
from scanarchive.errors import UsageError
from scanarchive.fsio import write_new_atomic


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("search", parents=[common], help="find notes by the words in them")
    p.add_argument("query", nargs="*", help="words to find (all must match); end a word with * for a prefix")
    p.add_argument("--exact", action="store_true", help="only exact words (no tolerance for OCR misreadings)")
    p.add_argument(
        "--has",
        action="append",
        default=[],
        metavar="BOX",
        help="only notes with this tick box ticked, e.g. --has topic.sleep (repeatable)",
    )
    p.add_argument("--client", type=client_code)
    p.add_argument("--since", type=iso_date, metavar="DATE", help="sessions on or after DATE")
    p.add_argument("--until", type=iso_date, metavar="DATE", help="sessions on or before DATE")
    p.add_argument("--limit", type=int, default=20, help="at most this many results (default 20)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    add_passphrase_file(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("show", parents=[common], help="decrypt one record's PDF")
    p.add_argument("record", help="record id (or its first 8+ characters)")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("-o", "--output", type=Path, metavar="FILE", help="write the PDF to FILE (created 0600)")
    out.add_argument("--stdout", action="store_true", help="write the PDF to standard output")
    add_passphrase_file(p)
    p.set_defaults(func=cmd_show)


def cmd_search(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= 10_000:
        raise UsageError("--limit must be between 1 and 10000")
    query = " ".join(args.query)
    with open_archive(args) as archive:
        identity = archive.unlock(get_passphrase(args.passphrase_file))
        report, hits = reading.search(
            archive,
            identity,
            query,
            client=args.client,
            since=args.since,
            until=args.until,
            limit=args.limit,
            has=tuple(args.has),
            exact=args.exact,
        )
    if report.skipped:
        print(
            f"warning: {len(report.skipped)} damaged record(s) could not be indexed; run 'scanarchive verify --read-data'",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps({"results": [asdict(h) for h in hits], "count": len(hits)}, ensure_ascii=False, indent=2))
        return 0
    if not hits:
        print("No notes match.")
        return 0
    for position, hit in enumerate(hits, start=1):
        who = hit.client_code or "unfiled"
        when = hit.session_date or "no date"
        print(f"{position:>3}. {hit.record_id}  {who}  {when}  page {hit.page}")
        if hit.snippet:
            print(f"    {_highlight(hit.snippet)}")
        if hit.facts:
            print(f"    ticked: {', '.join(hit.facts)}")
    print(f"{len(hits)} result(s).")
    return 0


def _highlight(snippet: str) -> str:
    """Matched words in bold on a terminal; [brackets] elsewhere."""
    if sys.stdout.isatty() and not os.environ.get("NO_COLOR"):
        return snippet.replace("[", "\x1b[1m").replace("]", "\x1b[0m")
    return snippet


def cmd_show(args: argparse.Namespace) -> int:
    with open_archive(args) as archive:
        record = archive.catalog.record(args.record)
        identity = archive.unlock(get_passphrase(args.passphrase_file))
        data = reading.show(archive, identity, record)
    if args.stdout:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return 0
    out: Path = args.output
    write_new_atomic(out, data)
    print(f"Wrote record {record.id} ({record.page_count} pages) to {out}. It is NOT encrypted: delete it when done.")
    return 0
