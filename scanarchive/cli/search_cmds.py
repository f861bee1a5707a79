"""Verbs that read notes (need the passphrase): search, show.

`search` with no words lists the notes its filters pass (a client's, a date range's, those with a box
ticked), newest session first: the same verb, filters and output as a search, so there is no second
way to name a client or a date range to learn.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from scanarchive import reading
from scanarchive.archive import filing
from scanarchive.archive import query as queries
from scanarchive.cli.common import add_passphrase_file, client_code, iso_date, open_archive, tick_boxes
from scanarchive.cli.passphrase import get_passphrase
from scanarchive.errors import UsageError
from scanarchive.fsio import write_new_atomic


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "search",
        parents=[common],
        help="find notes by the words in them, or list a client's notes",
        description="With words: the pages that have them, best first. Without words: every note the filters "
        "pass, newest session first (e.g. 'scanarchive search --client C-0042' lists that client's notes).",
    )
    p.add_argument(
        "query", nargs="*", help="words to find (all must match); end a word with * for a prefix; none: list notes"
    )
    p.add_argument("--exact", action="store_true", help="only exact words (no tolerance for OCR misreadings)")
    p.add_argument(
        "--has",
        action="append",
        default=[],
        metavar="BOX",
        help="only notes with this tick box ticked: its key or its printed label, e.g. --has topic.sleep or "
        "--has 'SI denied' (repeatable; 'scanarchive sheets keys' lists them)",
    )
    p.add_argument("--client", type=client_code, metavar="CODE", help="only this client's notes (the client's code)")
    p.add_argument("--since", type=iso_date, metavar="DATE", help="sessions on or after DATE")
    p.add_argument("--until", type=iso_date, metavar="DATE", help="sessions on or before DATE")
    p.add_argument("--limit", type=int, default=20, help="at most this many results (default 20)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    add_passphrase_file(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("show", parents=[common], help="decrypt one record's PDF")
    p.add_argument("record", help="record id (or its first 8+ characters)")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write the PDF to FILE (created 0600); '-': standard output"
    )
    out.add_argument("--stdout", action="store_true", help="write the PDF to standard output")
    add_passphrase_file(p)
    p.set_defaults(func=cmd_show)


def cmd_search(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= 10_000:
        raise UsageError("--limit must be between 1 and 10000")
    query = " ".join(args.query)
    boxes = tick_boxes()
    has = boxes.resolve_all(args.has)  # an unknown box is an error, never "no notes match"
    listing = not queries.parse(query)  # no words: list the notes the filters pass
    if listing and not (has or args.client or args.since or args.until):
        raise UsageError("the search has no words in it", hint=queries.NO_WORDS_HINT)  # before the passphrase
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
            has=has,
            exact=args.exact,
        )
    if report.skipped:
        print(
            f"warning: {len(report.skipped)} damaged record(s) could not be indexed; run 'scanarchive verify --read-data'",
            file=sys.stderr,
        )
    if args.json:
        results = [{**asdict(h), "ticked": [boxes.label(k) for k in h.facts]} for h in hits]
        print(json.dumps({"results": results, "count": len(hits)}, ensure_ascii=False, indent=2))
        return 0
    if not hits:
        print("No notes match.")
        return 0
    for position, hit in enumerate(hits, start=1):
        who = hit.client_code or "unfiled"
        when = hit.session_date or "no date"
        where = hit.record_class if listing else f"page {hit.page}"
        print(f"{position:>3}. {hit.record_id}  {who}  {when}  {where}")
        if hit.snippet:
            print(f"    {_highlight(hit.snippet)}")
        if hit.facts:
            print(f"    ticked: {', '.join(boxes.label(k) for k in hit.facts)}")
    more = " (the limit: there may be more; raise --limit or narrow with --since/--until)"
    print(f"{len(hits)} {'note(s)' if listing else 'result(s)'}{more if len(hits) == args.limit else ''}.")
    return 0


def _highlight(snippet: str) -> str:
    """Matched words in bold on a terminal; [brackets] elsewhere."""
    if sys.stdout.isatty() and not os.environ.get("NO_COLOR"):
        return snippet.replace("[", "\x1b[1m").replace("]", "\x1b[0m")
    return snippet


def cmd_show(args: argparse.Namespace) -> int:
    to_stdout = bool(args.stdout) or str(args.output) == "-"
    if to_stdout and sys.stdout.isatty():  # before the passphrase: PDF bytes would fill the screen
        raise UsageError(
            "standard output is a terminal; the PDF is not written to the screen",
            hint="Pipe it to a program (scanarchive show RECORD -o - | lp), or write a file with -o FILE.pdf.",
        )
    with open_archive(args) as archive:
        record = filing.find_record(archive, args.record)
        identity = archive.unlock(get_passphrase(args.passphrase_file))
        data = reading.show(archive, identity, record)
    if to_stdout:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return 0
    out: Path = args.output
    write_new_atomic(out, data)
    print(f"Wrote record {record.id} ({record.page_count} pages) to {out}. It is NOT encrypted: delete it when done.")
    return 0
