"""Verbs for backups: backup (refresh a copy that mirrors purges) and restore."""

from __future__ import annotations

import argparse
from pathlib import Path

from scanarchive.archive import backup as backups
from scanarchive.cli.common import archive_dir, open_archive
from scanarchive.errors import IntegrityError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "backup",
        parents=[common],
        help="make or refresh a backup that mirrors purges (needs no passphrase)",
        description="Copies the catalog (a consistent snapshot), every sealed blob (hash-checked), the identity, "
        "config, audit log and certificates. Blobs of destroyed records are removed from the backup too, so "
        "shredding reaches the backup at its next run. The copy is as encrypted as the archive.",
    )
    p.add_argument(
        "dest",
        type=Path,
        metavar="DEST",
        help="the backup folder: a new or empty folder, or an earlier backup to bring up to date",
    )
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("restore", parents=[common], help="restore a backup into a new archive folder")
    p.add_argument(
        "src",
        type=Path,
        metavar="BACKUP",
        help="the backup folder to restore from; it is restored into the archive folder (--archive DIR), "
        "which must be new or empty",
    )
    p.add_argument(
        "--skip-damaged",
        action="store_true",
        help="restore everything that is intact and list the damaged notes (default: a damaged blob stops it)",
    )
    p.set_defaults(func=cmd_restore)


def cmd_backup(args: argparse.Namespace) -> int:
    with open_archive(args) as archive:
        report = backups.backup(archive, args.dest)
    print(
        f"Backup in {args.dest}: {report.records} record(s); {report.copied} blob(s) copied, {report.kept} intact, "
        f"{report.repaired} repaired, {report.removed} of destroyed records removed."
    )
    print("Keep the passphrase apart from the backup: without it the backup cannot be read.")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    target = archive_dir(args)
    restored = backups.restore(args.src, target, skip_damaged=args.skip_damaged)
    with restored.archive as archive:
        records = archive.catalog.counts()["records"]
    lost = sum(len(d.records) for d in restored.damaged)
    print(f"Restored {records - lost} of {records} record(s) into {target}.")
    for d in restored.damaged:
        what = ", ".join(f"record {r}" for r in d.records) or "no record (a quarantined scan or a leftover)"
        print(f"  NOT restored (damaged in the backup): {d.path}: {what}")
    if restored.damaged:
        print(
            f"{len(restored.damaged)} damaged blob(s) left out. Restore them from another backup if you have one; "
            "until then 'verify' reports them missing."
        )
    print(f"Check it with: scanarchive --archive {target} verify --read-data")
    return IntegrityError.exit_code if restored.damaged else 0  # incomplete: scripts must notice
