"""Typed exceptions, each carrying its exit code, and the one handler.

Every message here is shown to a clinician: it says what went wrong in plain
words and what to do next. Messages never contain OCR text, client names or
passphrases; records are named by id and files by path only.
The table of codes is in docs/errors.md; keep the two in step.
"""

from __future__ import annotations

import logging
import sys
import traceback
from typing import ClassVar, TextIO

log = logging.getLogger(__name__)


class ScanarchiveError(Exception):
    """Base class: a failure the user can understand and act on."""

    exit_code: ClassVar[int] = 1
    hint: ClassVar[str] = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint  # type: ignore[misc]  # per-instance override of the class hint


class UsageError(ScanarchiveError):
    """The command line or a setting is wrong."""

    exit_code = 2
    hint = "Run 'scanarchive --help' or 'scanarchive COMMAND --help'."


class ArchiveNotFound(ScanarchiveError):
    exit_code = 3
    hint = "Create one with 'scanarchive init', or name it with --archive DIR or SCANARCHIVE_ARCHIVE."


class ArchiveExists(ScanarchiveError):
    exit_code = 3
    hint = "Choose another folder; an existing archive is never overwritten."


class ConfigError(ScanarchiveError):
    exit_code = 3
    hint = "Check the archive's config.toml (docs/errors.md lists what each setting may be)."


class WrongPassphrase(ScanarchiveError):
    exit_code = 4
    hint = "Nothing was changed. Try again; the passphrase is case-sensitive."


class IdentityUnavailable(ScanarchiveError):
    exit_code = 4
    hint = (
        "Reading notes needs the archive's identity.enc file and its passphrase. "
        "Restore identity.enc from your backup; ingesting still works without it."
    )


class InputRejected(ScanarchiveError):
    """A scan that can never be archived as it is (permanent failure)."""

    exit_code = 5
    hint = "The file was left where it was, untouched. Rescan the note, or export it again as PDF, TIFF, PNG or JPEG."


class IntegrityError(ScanarchiveError):
    """Stored data failed authentication or its hash: damage or tampering."""

    exit_code = 6
    hint = "Run 'scanarchive verify --read-data' to see everything that is damaged, then restore those files from a backup."


class TransientError(ScanarchiveError):
    """Could work later: disk full, database busy, a timeout."""

    exit_code = 7
    hint = "Nothing was lost; the scan was left in place. Fix the cause (free disk space, close other scanarchive commands) and run the command again."


class RecordNotFound(ScanarchiveError):
    exit_code = 8
    hint = "List a client's notes with 'scanarchive search --client CODE', unfiled ones with 'scanarchive inbox'."


class EngineMissing(ScanarchiveError):
    """A program scanarchive needs (Tesseract, Poppler) is not installed."""

    exit_code = 9
    hint = "Install it (the message names the Debian package); the scan was left in place, untouched."


class WatcherRunning(ScanarchiveError):
    exit_code = 10
    hint = "Only one watcher may run per archive. Stop the other one first (systemctl stop scanarchive-watch)."


class RecordDestroyed(ScanarchiveError):
    exit_code = 11
    hint = "Its destruction certificate is in the archive's certificates/ folder."


class RolledBack(IntegrityError):
    """The catalog (or audit log) is older than the state an interactive command last signed."""

    exit_code = 12
    hint = (
        "Someone put back an older catalog.db (or audit.log). Nothing was changed. Restore the newest copy "
        "from your backups; if the old copy is what you meant to restore, see 'retention re-sign' in docs/errors.md."
    )


class Interrupted(ScanarchiveError):
    exit_code = 130
    hint = (
        "Stopped before finishing. Run the command again: what was finished is kept, and a scan is only ever "
        "deleted after its note was sealed and verified."
    )


EXIT_CODES: dict[str, int] = {
    cls.__name__: cls.exit_code
    for cls in (
        ScanarchiveError,
        UsageError,
        ArchiveNotFound,
        ArchiveExists,
        ConfigError,
        WrongPassphrase,
        IdentityUnavailable,
        InputRejected,
        IntegrityError,
        TransientError,
        RecordNotFound,
        EngineMissing,
        WatcherRunning,
        RecordDestroyed,
        RolledBack,
        Interrupted,
    )
}


def report(exc: BaseException, *, debug: bool = False, stream: TextIO | None = None) -> int:
    """The one handler: print a one-line reason and what to do; return the exit code.

    Unknown exceptions get exit code 70 and a short generic message; their
    traceback is printed only with --debug, because a traceback from deep in a
    library could quote data (an exception from a parser may embed bytes it read).
    """
    out = stream if stream is not None else sys.stderr
    if isinstance(exc, ScanarchiveError):
        print(f"scanarchive: error: {exc.message}", file=out)
        if exc.hint:
            print(f"  what to do: {exc.hint}", file=out)
        code = exc.exit_code
    elif isinstance(exc, KeyboardInterrupt):
        print(f"scanarchive: interrupted.\n  what to do: {Interrupted.hint}", file=out)
        code = Interrupted.exit_code
    else:
        print(
            f"scanarchive: internal error ({type(exc).__name__}). A scan is only ever deleted after its note was "
            "sealed and verified. "
            "Run again with --debug to see where; the traceback may quote file contents, "
            "so do not share it outside the practice.",
            file=out,
        )
        code = 70
    if debug:
        traceback.print_exception(exc, file=out)
    return code
