"""Verbs that say whose note it is: inbox (unfiled records), file (set client/date)."""

from __future__ import annotations

import argparse

from scanarchive.archive import filing
from scanarchive.cli.common import client_code, iso_date, open_archive, record_class


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("inbox", parents=[common], help="list records that still need a client or a date")
    p.set_defaults(func=cmd_inbox)

    p = sub.add_parser("file", parents=[common], help="set a record's client, date or class (the change is kept)")
    p.add_argument(
        "record",
        help="record id, as 'scanarchive inbox' or 'scanarchive search' prints it (or its first 8+ characters)",
    )
    p.add_argument("--client", type=client_code, help="the client's code (the practice's pseudonym, not a name)")
    p.add_argument("--date", type=iso_date, help="session date, YYYY-MM-DD (a date after today needs --allow-future)")
    p.add_argument("--class", dest="record_class", type=record_class, help="progress or psychotherapy")
    p.add_argument("--allow-future", action="store_true", help="accept a session date after today")
    p.set_defaults(func=cmd_file)


def cmd_inbox(args: argparse.Namespace) -> int:
    with open_archive(args) as archive:
        waiting = archive.catalog.unfiled()
    if not waiting:
        print("The inbox is empty: every record has a client and a date.")
        return 0
    for r in waiting:
        who = r.client_code or "no client"
        when = r.session_date or "no date"
        print(f"{r.id}  {r.created_at}  {who:<12} {when:<10}  {r.page_count} page(s)")
    print(f"{len(waiting)} record(s) to file: scanarchive file RECORD --client C --date D")
    print("Unfiled records are never destroyed by retention; 'scanarchive show RECORD' helps to see whose they are.")
    return 0


def cmd_file(args: argparse.Namespace) -> int:
    wanted = {"client": args.client, "session_date": args.date, "record_class": args.record_class}
    filing.changes(**wanted, allow_future=args.allow_future)  # checked before the archive opens
    with open_archive(args) as archive:
        filed = filing.file_record(archive, args.record, **wanted, allow_future=args.allow_future)
    updated = filed.record
    who = updated.client_code or "no client"
    print(f"Record {updated.id}: {who}, {updated.session_date or 'no date'}, {updated.record_class}.")
    for field, old, new, at in filed.changes:
        print(f"  {field}: {old or '(none)'} -> {new} ({at})")
    if not filed.changes:
        print("  Nothing changed: it already had those values.")
    if not updated.filed:
        print("  Still unfiled: it needs both a client and a date.")
    return 0
