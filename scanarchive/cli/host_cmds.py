"""Verbs for the machine scanarchive runs on: setup-host, unit-failed, completion, man (docs/install.md)."""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from scanarchive.archive import health
from scanarchive.cli import host
from scanarchive.cli.common import add_passphrase_file
from scanarchive.cli.passphrase import get_passphrase
from scanarchive.errors import UsageError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "setup-host",
        parents=[common],
        help="as root: install for real (accounts, archive, drop folder, systemd units, completion, man page)",
        description="Install scanarchive on this machine: the two accounts, the archive (asks for a new passphrase "
        "once), the separated layout, the drop folder, the watcher service and the purge timer, scanarchive on "
        "PATH, shell completion and the man page. Run it again at any time: what is done is checked, not redone. "
        f"--archive defaults to {host.DEFAULT_ARCHIVE} here.",
    )
    p.add_argument("--drop", type=Path, default=host.DEFAULT_DROP, metavar="DIR",
                   help=f"the scanners' drop folder (default {host.DEFAULT_DROP})")  # fmt: skip
    p.add_argument(
        "--owner", default="scanarchive", metavar="USER", help="the archive owner's account (default scanarchive)"
    )
    p.add_argument("--watcher", default="scanarchive-watch", metavar="USER",
                   help="the watcher's account and the archive's group (default scanarchive-watch)")  # fmt: skip
    p.add_argument(
        "--program", type=Path, metavar="PATH", help="the scanarchive program the units run (default: this one)"
    )
    p.add_argument("--root", type=Path, default=Path("/"), metavar="DIR",
                   help="install the host files (units, link, completion, man page) under DIR (tests, packaging)")  # fmt: skip
    p.add_argument("--prefix", type=Path, default=Path("/usr/local"), metavar="DIR",
                   help="for the link, completion and man page (default /usr/local)")  # fmt: skip
    p.add_argument("--no-start", action="store_true", help="install the units but do not enable or start them")
    p.add_argument("--uninstall", action="store_true",
                   help="remove what setup-host installed; never the archive, the drop folder or the accounts")  # fmt: skip
    p.add_argument("--dry-run", action="store_true", help="print what would be done, change nothing")
    add_passphrase_file(p)
    p.add_argument("--kdf-seconds", type=float, default=0.75, metavar="S", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_setup_host)

    p = sub.add_parser("unit-failed", parents=[common], help="(used by the systemd units) note that a unit failed")
    p.add_argument("unit", help="the failed unit's name, e.g. scanarchive-purge.service")
    p.add_argument("--notify-only", action="store_true", help="only tell the logged-in desktops (run as root)")
    p.set_defaults(func=cmd_unit_failed)

    p = sub.add_parser("completion", parents=[common], help="print the shell completion script (bash, zsh, tcsh)")
    p.add_argument("shell", choices=["bash", "zsh", "tcsh"], help="the shell to print the script for")
    p.set_defaults(func=cmd_completion)

    p = sub.add_parser("man", parents=[common], help="print the man page (roff), e.g. | man -l -")
    p.set_defaults(func=cmd_man)


def _parser() -> argparse.ArgumentParser:
    """The whole command line's parser: main imports this module, so it is looked up when a verb runs."""
    parser: argparse.ArgumentParser = importlib.import_module("scanarchive.cli.main").build_parser()
    return parser


def this_program() -> Path:
    """The scanarchive program of the environment this runs in (a venv's bin/scanarchive)."""
    beside = Path(sys.executable).parent / "scanarchive"
    if beside.is_file():
        return beside
    found = shutil.which("scanarchive")
    if found:
        return Path(found).absolute()
    raise UsageError("the scanarchive program was not found", hint="Name it with --program /path/to/bin/scanarchive.")


def cmd_setup_host(args: argparse.Namespace) -> int:
    chosen = getattr(args, "archive", None)
    h = host.Host(
        program=(args.program or this_program()).absolute(),
        archive=Path(chosen).expanduser().absolute() if chosen else host.DEFAULT_ARCHIVE,
        drop=args.drop.absolute(),
        owner=args.owner,
        watcher=args.watcher,
        root=args.root.absolute(),
        prefix=args.prefix,
    )
    if not args.dry_run and os.geteuid() != 0:
        raise UsageError("setup-host must run as root", hint="Run it with sudo, or add --dry-run to see what it does.")

    def passphrase() -> str:
        return get_passphrase(args.passphrase_file, confirm=True, prompt="New passphrase for the archive: ")

    if args.uninstall:
        plan = host.uninstall_plan(h)
    else:
        plan = host.install_plan(
            h, _parser(), passphrase=passphrase, kdf_seconds=args.kdf_seconds, start=not args.no_start
        )
    say: Callable[[str], None] = print
    plan.run(dry_run=args.dry_run, say=say)
    if args.dry_run:
        print("Dry run: nothing was changed.")
    elif args.uninstall:
        print("Uninstalled. The archive and its notes were not touched.")
    else:
        print(f"Installed. Check it with: sudo -u {h.owner} scanarchive --archive {h.archive} status")
    return 0


def cmd_unit_failed(args: argparse.Namespace) -> int:
    text = (
        f"{args.unit} failed: scanned notes may not be archived or purged until it is fixed. See 'scanarchive status'."
    )
    if args.notify_only:
        told = host.notify_desktops(text)
        print(f"told {told} desktop session(s)")
        return 0
    archive = Path(getattr(args, "archive", None) or host.DEFAULT_ARCHIVE)
    failure = health.record_failure(archive, args.unit)
    print(f"scanarchive: {text} (failure {failure.count} on record)", file=sys.stderr)  # into the journal
    return 0


def cmd_completion(args: argparse.Namespace) -> int:
    sys.stdout.write(host.completion(_parser(), args.shell))
    return 0


def cmd_man(args: argparse.Namespace) -> int:
    sys.stdout.write(host.man_page(_parser()))
    return 0
