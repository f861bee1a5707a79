"""Verbs that manage the archive itself: init, passwd, verify, setup-accounts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scanarchive.archive import accounts
from scanarchive.archive.check import check_archive
from scanarchive.archive.layout import Archive
from scanarchive.cli.common import add_passphrase_file, archive_dir, open_archive
from scanarchive.cli.passphrase import get_passphrase
from scanarchive.crypto import keys
from scanarchive.errors import IntegrityError, RolledBack, UsageError

RECOMMENDED_KDF_SECONDS = 0.25  # below this, init and passwd warn: for tests, not real notes


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("init", parents=[common], help="create a new encrypted archive")
    add_passphrase_file(p)
    _add_kdf_seconds(p)
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("passwd", parents=[common], help="change the passphrase (re-encrypts the identity only)")
    add_passphrase_file(p)
    p.add_argument("--new-passphrase-file", type=Path, metavar="FILE", help="read the new passphrase from FILE")
    _add_kdf_seconds(p)
    p.set_defaults(func=cmd_passwd)

    p = sub.add_parser("verify", parents=[common], help="check every stored record")
    p.add_argument(
        "--read-data", action="store_true", help="also decrypt and authenticate every record (needs the passphrase)"
    )
    add_passphrase_file(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser(
        "setup-accounts",
        parents=[common],
        help="as root: owners, group and modes so the watcher's account cannot change decisions (docs/scanners.md)",
    )
    p.add_argument("--watcher-group", required=True, metavar="GROUP", help="the group the watcher runs in")
    p.add_argument("--owner", metavar="USER", help="the archive owner (default: the archive folder's owner)")
    p.add_argument("--dry-run", action="store_true", help="print what would be done, change nothing")
    p.set_defaults(func=cmd_setup_accounts)


def _add_kdf_seconds(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--kdf-seconds",
        type=float,
        default=0.75,
        metavar="S",
        help="how long unlocking should take on this machine, to slow down guessing (default 0.75 s)",
    )


def _kdf_seconds(args: argparse.Namespace) -> float:
    seconds = float(args.kdf_seconds)
    if not 0.01 <= seconds <= 10:
        raise UsageError("--kdf-seconds must be between 0.01 and 10")
    if seconds < RECOMMENDED_KDF_SECONDS:
        print(
            f"warning: --kdf-seconds {seconds:g} makes each guess of the passphrase cheap (scrypt is never set below "
            f"2^{keys.MIN_LOG_N}); below {RECOMMENDED_KDF_SECONDS:g} s is meant for tests, not for real notes.",
            file=sys.stderr,
        )
    return seconds


def cmd_init(args: argparse.Namespace) -> int:
    root = archive_dir(args)
    seconds = _kdf_seconds(args)
    passphrase = get_passphrase(args.passphrase_file, confirm=True, prompt="New passphrase for the archive: ")
    with Archive.create(root, passphrase, seconds) as archive:
        print(f"Created an encrypted archive at {archive.root}")
        print("Keep the passphrase safe: without it (and identity.enc) no note can be read again.")
        print("Back up identity.enc together with the archive.")
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    seconds = _kdf_seconds(args)
    with open_archive(args) as archive:
        old = get_passphrase(args.passphrase_file, prompt="Current passphrase: ")
        identity = archive.unlock(old)
        new = get_passphrase(
            args.new_passphrase_file,
            confirm=True,
            prompt="New passphrase: ",
            option="--new-passphrase-file",
            use_env=False,
        )
        archive.change_passphrase(identity, new, seconds)
        print("Passphrase changed. Old copies of identity.enc (in backups) still open with the old passphrase.")
    return 0


def cmd_setup_accounts(args: argparse.Namespace) -> int:
    root = archive_dir(args)
    done = accounts.apply(root, args.watcher_group, owner=args.owner, dry_run=args.dry_run)
    for line in done:
        print(f"{'would ' if args.dry_run else ''}{line}")
    if not done:
        print("Nothing to do: the archive already follows the separated layout.")
    if not args.dry_run:
        left = accounts.check(root)
        for problem in left:
            print(f"Warning:    {problem}")
        print(f"Accounts:   {accounts.mode_of(root)}; {len(left)} problem(s) left")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    with open_archive(args) as archive:
        identity = archive.unlock(get_passphrase(args.passphrase_file)) if args.read_data else None
        report = check_archive(archive, identity)
    for finding in report.damaged:
        print(f"DAMAGED  {finding.message}")
    for finding in report.unknown:
        print(f"UNKNOWN  {finding.message}")
    for finding in report.tampered:
        print(f"TAMPERED  {finding.message}")
    for finding in report.rolled_back:
        print(f"ROLLED BACK  {finding.message}")
    what = "decrypted and authenticated" if report.read_data else "hash-checked (use --read-data to decrypt too)"
    print(
        f"{report.records_checked} record(s) and {report.quarantined_checked} quarantined scan(s) {what}; "
        f"{len(report.damaged)} damaged."
    )
    if report.rolled_back:
        raise RolledBack(report.rolled_back[0].message)
    if report.damaged:
        raise IntegrityError(f"{len(report.damaged)} record(s) are damaged")
    if report.tampered:
        raise IntegrityError(f"{len(report.tampered)} decision(s) were changed without the passphrase")
    return 0
