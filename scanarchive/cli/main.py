"""The scanarchive command line: parse, dispatch, and the one error handler."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from scanarchive import __version__, hardening
from scanarchive.cli import (
    archive_cmds,
    audit_cmds,
    backup_cmds,
    export_cmds,
    filing_cmds,
    host_cmds,
    ingest_cmds,
    retention_cmds,
    search_cmds,
    sheets_cmds,
    status_cmds,
    watch_cmds,
)
from scanarchive.demo import run as demo
from scanarchive.errors import report
from scanarchive.ocr import rapidocr


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--archive",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="the archive folder (else $SCANARCHIVE_ARCHIVE, else ~/.local/share/scanarchive)",
    )
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show a traceback on errors")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log each step")
    parser = argparse.ArgumentParser(
        prog="scanarchive",
        parents=[common],
        description="Encrypted, searchable archive of scanned handwritten session notes. Everything stays on this machine.",
    )
    parser.add_argument("--version", action="version", version=f"scanarchive {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (
        archive_cmds,
        status_cmds,
        ingest_cmds,
        watch_cmds,
        sheets_cmds,
        filing_cmds,
        search_cmds,
        export_cmds,
        retention_cmds,
        audit_cmds,
        backup_cmds,
        host_cmds,
    ):
        module.register(sub, common)
    _register_demo(sub, common)
    return parser


def _register_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    """The demo drives this very command line, so its verb is wired here rather than in a verb module."""
    p = sub.add_parser("demo", parents=[common], help="run a demo on synthetic notes (makes its own archive)")
    p.add_argument(
        "--dir",
        type=Path,
        default=Path("scanarchive-demo"),
        help="folder for the demo archive and scans (default ./scanarchive-demo)",
    )
    p.set_defaults(func=lambda args: demo.run(args.dir, main))


def main(argv: Sequence[str] | None = None) -> int:
    hardening.protect_process()  # first: every command may hold the identity, plaintext or page images
    parser = build_parser()
    args = parser.parse_args(argv)
    args.debug = getattr(args, "debug", False)
    args.verbose = getattr(args, "verbose", False)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO if args.verbose else logging.WARNING,
        format="scanarchive: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `scanarchive search … | head`: the reader left; not an error
        sys.stderr.close()
        return 141
    except (Exception, KeyboardInterrupt) as exc:
        return report(exc, debug=args.debug)
    finally:
        rapidocr.close_all()  # the second OCR engine's workers end with the command
