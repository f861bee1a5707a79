"""Verbs for the drop folder: watch, and failed list|show|retry|drop for the quarantine."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from scanarchive.archive import quarantine
from scanarchive.cli.common import add_passphrase_file, human_bytes, open_archive
from scanarchive.cli.passphrase import get_passphrase
from scanarchive.errors import ConfigError, UsageError
from scanarchive.fsio import write_new_atomic
from scanarchive.intake import quarantine as intake_quarantine
from scanarchive.intake.watch import Watcher
from scanarchive.names import printable

QUARANTINE_ID_HELP = "the quarantined scan's id, as 'scanarchive failed list' prints it (its first 8+ characters)"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "watch",
        parents=[common],
        help="watch the scanner's drop folder and seal every scan (no passphrase needed)",
        description="Runs until stopped (SIGTERM/Ctrl-C). Every scan is claimed out of the folder, sealed and "
        "verified; a scan that cannot be archived is sealed into the quarantine with a note in failed/. A stop "
        "takes seconds: a scan still being read is left in the archive's journal and archived on the next start. "
        "With -v, each scan's stages are logged with their times.",
    )
    p.add_argument("--drop", type=Path, metavar="DIR", help="the drop folder (else drop.folder in config.toml)")
    p.add_argument("--once", action="store_true", help="process what is in the folder now, then exit (for cron)")
    p.set_defaults(func=cmd_watch)

    failed = sub.add_parser("failed", parents=[common], help="scans that could not be archived (the quarantine)")
    verbs = failed.add_subparsers(dest="failed_command", required=True, metavar="ACTION")
    v = verbs.add_parser("list", parents=[common], help="list quarantined scans and why")
    v.add_argument(
        "--names", action="store_true", help="also show each scan's file name (sealed: needs the passphrase)"
    )
    add_passphrase_file(v)
    v.set_defaults(func=cmd_failed_list)
    v = verbs.add_parser("show", parents=[common], help="decrypt a quarantined scan to a file")
    v.add_argument("id", help=QUARANTINE_ID_HELP)
    v.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        metavar="FILE",
        help="write the scan to this new file (created 0600, NOT encrypted; an existing file is never overwritten)",
    )
    add_passphrase_file(v)
    v.set_defaults(func=cmd_failed_show)
    v = verbs.add_parser("retry", parents=[common], help="try to archive a quarantined scan again")
    v.add_argument("id", help=QUARANTINE_ID_HELP)
    add_passphrase_file(v)
    v.set_defaults(func=cmd_failed_retry)
    v = verbs.add_parser("drop", parents=[common], help="discard a quarantined scan for good")
    v.add_argument("id", help=QUARANTINE_ID_HELP)
    v.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    add_passphrase_file(v)
    v.set_defaults(func=cmd_failed_drop)


def cmd_watch(args: argparse.Namespace) -> int:
    if not (args.verbose or args.debug):
        logging.getLogger("scanarchive").setLevel(logging.INFO)  # one line per scan, for the system journal
    with open_archive(args) as archive:
        drop = args.drop or (Path(archive.config.drop.folder) if archive.config.drop.folder else None)
        if drop is None:
            raise ConfigError(
                "no drop folder is set",
                hint="Pass --drop DIR, or set folder under [drop] in the archive's config.toml.",
            )
        # -v: each scan's stages with their times (counts and seconds; never names, codes or note text)
        tally = Watcher(archive, drop, stage_times=args.verbose or args.debug).run(once=args.once)
    if args.once:
        print(
            f"{tally.archived} archived, {tally.duplicates} already archived, "
            f"{tally.quarantined} quarantined, {tally.deferred} to retry later."
        )
    return 0


def cmd_failed_list(args: argparse.Namespace) -> int:
    with open_archive(args) as archive:
        entries = quarantine.entries(archive)
        identity = archive.unlock(get_passphrase(args.passphrase_file)) if args.names and entries else None
        names = {e.id: quarantine.name(e, identity) for e in entries}
    if not entries:
        print("No quarantined scans.")
        return 0
    for e in entries:
        print(f"{e.id}  {e.created_at}  {human_bytes(e.blob_size):>9}  {printable(names[e.id])}")
        print(f"    {printable(e.reason)}")
    print(f"{len(entries)} quarantined scan(s). 'scanarchive failed retry ID' tries one again.")
    if identity is None and any(n == "(name sealed)" for n in names.values()):
        print("File names are sealed in the archive (they may name a client): add --names to see them.")
    return 0


def cmd_failed_show(args: argparse.Namespace) -> int:
    out: Path = args.output
    if out.exists():
        raise UsageError(f"{out} already exists; choose a new file name")
    with open_archive(args) as archive:
        entry = quarantine.get(archive, args.id)
        data = quarantine.show(archive, archive.unlock(get_passphrase(args.passphrase_file)), entry)
    write_new_atomic(out, data)
    print(f"Wrote the quarantined scan to {out}. It is NOT encrypted: delete it when done.")
    return 0


def cmd_failed_retry(args: argparse.Namespace) -> int:
    with open_archive(args) as archive:
        entry = quarantine.get(archive, args.id)
        # InputRejected again -> the handler says why; the entry is kept
        result = intake_quarantine.retry(archive, archive.unlock(get_passphrase(args.passphrase_file)), entry)
    print(f"Archived as record {result.record_id} ({result.page_count} page(s)); removed from the quarantine.")
    return 0


def cmd_failed_drop(args: argparse.Namespace) -> int:
    with open_archive(args) as archive:
        entry = quarantine.get(archive, args.id)
        if not args.yes and not sys.stdin.isatty():
            raise UsageError("discarding needs confirmation", hint="Add --yes to discard without asking.")
        identity = archive.unlock(get_passphrase(args.passphrase_file))
        if not args.yes:
            name = printable(quarantine.name(entry, identity))
            answer = input(f"Discard the quarantined scan {name} for good? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("Nothing was discarded.")
                return 0
        intake_quarantine.drop(archive, identity, entry)
    print(f"Discarded {entry.id}: its key, sealed copy and note are gone.")
    return 0
