"""Verbs for the audit log: audit verify, audit show. Neither needs the passphrase (the log holds no content)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from typing import Any

from scanarchive import audit
from scanarchive.cli.common import iso_date, open_archive
from scanarchive.errors import IntegrityError

_VERIFY_HINT = (
    "The log was edited, or lines were removed or moved, after they were written. Keep this copy as evidence, "
    "compare it with audit.log from your backups, and tell whoever is responsible for the practice's records."
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "audit",
        parents=[common],
        help="check or list the audit log (what was done, when, by whom; never what a note says)",
        description="The audit log (ARCHIVE/audit.log) is append-only and hash-chained: each line carries the hash "
        "of the line before, so an edited, removed or reordered line is found by 'audit verify'.",
    )
    verbs = p.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    v = verbs.add_parser("verify", parents=[common], help="check that no line was edited, removed or reordered")
    v.set_defaults(func=cmd_audit_verify)
    r = verbs.add_parser(
        "repair",
        parents=[common],
        help="set aside a torn last line (a write cut off by a crash) and record that in the log",
    )
    r.set_defaults(func=cmd_audit_repair)
    s = verbs.add_parser("show", parents=[common], help="list the entries")
    s.add_argument("--since", type=iso_date, metavar="YYYY-MM-DD", help="only entries on or after this (UTC) day")
    s.add_argument("--json", action="store_true", help="print one JSON document")
    s.set_defaults(func=cmd_audit_show)


def cmd_audit_verify(args: argparse.Namespace) -> int:
    with open_archive(args) as archive:
        path = audit.log_path(archive.root)
    report = audit.verify(path)
    if not report.ok:
        raise IntegrityError(report.describe(), hint=_VERIFY_HINT)
    if not report.exists:
        print("There is no audit.log yet: nothing has been logged in this archive.")
        return 0
    print(f"audit.log is intact: {report.entries} entries, each following the one before.")
    print(f"Head (SHA-256 of the last line): {report.head}")
    print(
        "Keep the head somewhere else (it is also in every export's manifest) to show later that no line was removed."
    )
    return 0


def cmd_audit_repair(args: argparse.Namespace) -> int:
    with open_archive(args) as archive:
        path = audit.log_path(archive.root)
    done = audit.repair(path)
    if done is None:
        print("audit.log ends in a whole line: there is nothing to repair.")
        print("Run 'scanarchive audit verify' to check the whole chain.")
        return 0
    print(f"Set aside a torn last line ({done.bytes} bytes) in {done.kept_at}; the repair is recorded in the log.")
    print("Keep that file as evidence; run 'scanarchive audit verify' to check the chain.")
    return 0


def cmd_audit_show(args: argparse.Namespace) -> int:
    with open_archive(args) as archive:
        path = audit.log_path(archive.root)
    since = date.fromisoformat(args.since) if args.since else None
    entries = audit.show(path, since)
    report = audit.verify(path)
    if not report.ok:
        print(f"warning: {report.describe()}; run 'scanarchive audit verify'", file=sys.stderr)
    if args.json:
        print(json.dumps({"entries": entries, "count": len(entries), "intact": report.ok}, indent=2))
        return 0
    if not entries:
        print("No audit entries" + (f" since {args.since}." if since else "."))
        return 0
    for entry in entries:
        print(format_entry(entry))
    print(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}.")
    return 0


def format_entry(entry: dict[str, Any]) -> str:
    """One line: seq, time, event, actor, then the event's fields as name=value."""
    fixed = {"seq", "at", "event", "actor", "prev", "hash"}
    details = []
    for name in sorted(k for k in entry if k not in fixed):
        value = entry[name]
        if isinstance(value, list):
            shown = ",".join(str(v) for v in value[:5]) + (f",…(+{len(value) - 5})" if len(value) > 5 else "")
        elif isinstance(value, bool):
            shown = "yes" if value else "no"
        else:
            shown = str(value)
        details.append(f"{name}={shown}")
    return f"{entry.get('seq', '?'):>6}  {entry.get('at', '?')}  {entry.get('event', '?'):<12} {entry.get('actor', '?'):<10} {' '.join(details)}".rstrip()
