"""Verbs for backups: backup (refresh a copy that mirrors purges) and restore."""

from __future__ import annotations

import argparse
from pathlib import Path

from scanarchive.archive import backup as backups
from scanarchive.cli.common import archive_dir, open_archive


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "backup",
        parents=[common],
        help="make or refresh a backup that mirrors purges (needs no passphrase)",
        description="Copies the catalog (a consistent snapshot), every sealed blob (hash-checked), the identity, "
        "config, audit log and certificates. Blobs of destroyed records are removed from the backup too, so "
        "shredding reaches the backup at its next run. The copy is as encrypted as the archive.",
    )
    p.add_argument("dest", type=Path, metavar="DEST")
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("restore", parents=[common], help="restore a backup into a new archive folder")
    p.add_argument("src", type=Path, metavar="BACKUP")
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
    with backups.restore(args.src, target) as archive:
        records = archive.catalog.counts()["records"]
    print(
        f"Restored {records} record(s) into {target}. Check it with: scanarchive --archive {target} verify --read-data"
    )
    return 0
