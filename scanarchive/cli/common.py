"""Helpers shared by the CLI verbs: argument types and opening the archive."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from scanarchive.archive.catalog import RECORD_CLASSES
from scanarchive.archive.layout import Archive
from scanarchive.archive.query import Box, Boxes
from scanarchive.config import default_archive_dir
from scanarchive.names import CLIENT_CODE
from scanarchive.pages import templates


def archive_dir(args: argparse.Namespace) -> Path:
    chosen = getattr(args, "archive", None)
    return Path(chosen).expanduser() if chosen else default_archive_dir()


def open_archive(args: argparse.Namespace) -> Archive:
    return Archive(archive_dir(args))


def iso_date(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-27") from exc


def client_code(text: str) -> str:
    if not CLIENT_CODE.fullmatch(text):
        # The value is not echoed: a name typed by mistake should not be repeated on screen or in logs.
        raise argparse.ArgumentTypeError(
            "that is not a client code: use the practice's pseudonym (1-32 letters, digits, '.', '_' or '-'), never a name"
        )
    return text


def record_class(text: str) -> str:
    if text not in RECORD_CLASSES:
        raise argparse.ArgumentTypeError(f"the class must be one of: {', '.join(RECORD_CLASSES)}")
    return text


def tick_boxes() -> Boxes:
    """Every tick box of every installed sheet template (all versions): what `search --has` accepts
    (a key or a printed label), and what `sheets keys` lists (Boxes.listing)."""
    return Boxes(
        Box(box.key, box.label, token)
        for token, template in templates.load_all().items()
        for _, group in template.groups
        for box in group
    )


def add_passphrase_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--passphrase-file",
        type=Path,
        metavar="FILE",
        help="read the passphrase from FILE (else $SCANARCHIVE_PASSPHRASE_FILE, else ask on the terminal)",
    )


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"
