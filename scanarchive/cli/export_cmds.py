"""Verbs that hand records over: export (one client's records), export-open (unpack an encrypted export)."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from scanarchive import export
from scanarchive.cli.common import add_passphrase_file, client_code, open_archive
from scanarchive.cli.passphrase import get_passphrase, read_passphrase_file
from scanarchive.crypto import exportfile
from scanarchive.errors import UsageError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "export",
        parents=[common],
        help="write one client's records (PDFs, manifest, audit excerpt) for a records request or a successor custodian",
        description="Writes a NEW folder DEST with records/*.pdf, manifest.json and audit-excerpt.jsonl. "
        "The folder is NOT encrypted unless --encrypt-to is given; then DEST is one encrypted file. "
        "Psychotherapy notes (HIPAA 45 CFR 164.501) are left out unless --include-psychotherapy is given.",
    )
    p.add_argument("--client", type=client_code, required=True, help="the client's code")
    p.add_argument("dest", type=Path, metavar="DEST", help="a new folder (or, with --encrypt-to, a new file)")
    p.add_argument(
        "--include-psychotherapy",
        action="store_true",
        help="include psychotherapy-class notes too (e.g. for a successor custodian)",
    )
    p.add_argument(
        "--encrypt-to",
        type=Path,
        metavar="PASSPHRASE-FILE",
        help="write ONE encrypted file DEST, under the passphrase in this file (not the archive's passphrase)",
    )
    add_passphrase_file(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "export-open",
        parents=[common],
        help="unpack an encrypted export into a new folder",
        description="Decrypts FILE (made by 'export --encrypt-to') into the NEW folder DEST, which is NOT encrypted.",
    )
    p.add_argument("file", type=Path, metavar="FILE", help="the encrypted export file, made by 'export --encrypt-to'")
    p.add_argument("dest", type=Path, metavar="DEST", help="a new folder to unpack it into (NOT encrypted)")
    p.add_argument(
        "--passphrase-file",
        type=Path,
        metavar="FILE",
        help="the export's passphrase (the file given to --encrypt-to); else asked on the terminal",
    )
    p.set_defaults(func=cmd_export_open)


def cmd_export(args: argparse.Namespace) -> int:
    dest: Path = args.dest
    encrypting = args.encrypt_to is not None
    if dest.exists() or dest.is_symlink():
        raise UsageError(
            f"{dest} already exists; an export is always written to a new {'file' if encrypting else 'folder'}"
        )
    export_passphrase: str | None = None
    if encrypting:
        export_passphrase = read_passphrase_file(args.encrypt_to)
        if not export_passphrase:
            raise UsageError(
                f"the passphrase file {args.encrypt_to} is empty", hint="Put a passphrase of several words in it."
            )
    with open_archive(args) as archive:
        passphrase = get_passphrase(args.passphrase_file)
        if export_passphrase is not None and export_passphrase == passphrase:
            raise UsageError(
                "the export passphrase is the archive's passphrase; choose another one",
                hint="Whoever receives the export must never learn the archive's passphrase.",
            )
        identity = archive.unlock(passphrase)
        result = export.export_client(
            archive,
            identity,
            args.client,
            dest,
            include_psychotherapy=args.include_psychotherapy,
            encrypt_passphrase=export_passphrase,
        )
    n = len(result.records)
    print(f"Exported {n} record(s) of client {result.client} to {dest}: {_contents(result.encrypted)}.")
    if result.left_out:
        print(
            f"Left out {result.left_out} psychotherapy note(s): psychotherapy notes (HIPAA 45 CFR 164.501) are not "
            "part of a client's records request. Add --include-psychotherapy to include them "
            "(for example for a successor custodian)."
        )
    undated = sum(1 for r in result.records if r.session_date is None)
    if undated:
        print(f"{undated} of them have no session date yet (named undated_…); file them with 'scanarchive file'.")
    if not result.audit_intact:
        print("warning: the audit log is damaged; run 'scanarchive audit verify'.", file=sys.stderr)
    if result.encrypted:
        print(
            f"{dest} is encrypted with the passphrase in {args.encrypt_to}. Give that passphrase to the recipient "
            "separately (never with the file). They open it with: "
            f"scanarchive export-open {dest.name} FOLDER --passphrase-file FILE"
        )
    else:
        print(
            f"WARNING: {dest} is NOT encrypted. Anyone who can read it can read these notes. Keep it on an "
            "encrypted disk, hand it over in person, and delete it when it is no longer needed. "
            "Use --encrypt-to PASSPHRASE-FILE for an encrypted export.",
            file=sys.stderr,
        )
    return 0


def _contents(encrypted: bool) -> str:
    what = f"{export.RECORDS}/*.pdf, {export.MANIFEST}, {export.EXCERPT}"
    return f"one encrypted file holding {what}" if encrypted else what


def _export_passphrase(file: Path | None) -> str:
    # Not get_passphrase(): its fallback, $SCANARCHIVE_PASSPHRASE_FILE, names the ARCHIVE's passphrase.
    if file is not None:
        passphrase = read_passphrase_file(file)
    elif sys.stdin.isatty():
        passphrase = getpass.getpass("Export passphrase: ")
    else:
        raise UsageError(
            "the export's passphrase is needed and there is no terminal to ask on", hint="Give --passphrase-file FILE."
        )
    if not passphrase:
        raise UsageError("an empty passphrase is not allowed")
    return passphrase


def cmd_export_open(args: argparse.Namespace) -> int:
    dest: Path = args.dest
    if dest.exists() or dest.is_symlink():
        raise UsageError(f"{dest} already exists; choose a new folder")
    tar_bytes = exportfile.open_export(args.file, _export_passphrase(args.passphrase_file))
    names = export.extract_tar(tar_bytes, dest)
    pdfs = sum(1 for n in names if n.startswith(export.RECORDS + "/"))
    print(f"Unpacked {len(names)} file(s) ({pdfs} record PDF(s)) into {dest}.")
    print(
        f"WARNING: {dest} is NOT encrypted. Keep it on an encrypted disk and delete it when it is no longer needed.",
        file=sys.stderr,
    )
    return 0
