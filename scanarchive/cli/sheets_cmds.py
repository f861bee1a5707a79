"""The sheets verb: print note sheets whose code files each scanned page."""

from __future__ import annotations

import argparse
from pathlib import Path

from scanarchive.cli.common import client_code, iso_date, open_archive, record_class
from scanarchive.errors import UsageError
from scanarchive.fsio import write_atomic
from scanarchive.pages import sheets, templates


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "sheets",
        parents=[common],
        help="print note sheets whose code files each scanned page (needs no passphrase)",
        description="Makes a PDF of note sheets. The code on each sheet carries the client code, session date and "
        "class (never a name), so a scanned stack files itself, one record per session.",
    )
    p.add_argument("--client", type=client_code, required=True)
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--date", type=iso_date, help="one session date")
    when.add_argument("--dates", help="several session dates, comma-separated")
    when.add_argument("--undated", action="store_true", help="sheets without a date (filed by date later)")
    p.add_argument("--class", dest="record_class", type=record_class, default="progress")
    p.add_argument("--count", type=int, default=1, help="sheets per session: the first and N-1 continuation sheets")
    p.add_argument("--paper", choices=sorted(sheets.PAPER_INCHES), default="letter")
    p.add_argument(
        "--template",
        metavar="NAME",
        help="a sheet with tick boxes shipped with scanarchive (e.g. progress, risk); the newest version",
    )
    p.add_argument("-o", "--output", type=Path, required=True, metavar="FILE.pdf")
    p.set_defaults(func=cmd_sheets)


def cmd_sheets(args: argparse.Namespace) -> int:
    if not 1 <= args.count <= 50:
        raise UsageError("--count must be between 1 and 50")
    dates: list[str | None]
    if args.undated:
        dates = [None]
    elif args.dates:
        try:
            dates = [iso_date(d.strip()) for d in args.dates.split(",") if d.strip()]
        except argparse.ArgumentTypeError as exc:
            raise UsageError(f"--dates: {exc}") from exc
        if not dates:
            raise UsageError("--dates names no date")
    else:
        dates = [args.date]
    out: Path = args.output
    if out.exists():
        raise UsageError(f"{out} already exists; choose a new file name")
    template = templates.latest(args.template) if args.template else None
    with open_archive(args) as archive:
        key = archive.catalog.sheet_key()
        archive8 = archive.config.archive8
    pages = [
        sheets.render_sheet(
            sheets.SheetInfo(archive8, args.client, day, args.record_class, n, template.token if template else None),
            key,
            args.paper,
            template,
        )
        for day in dates
        for n in range(1, args.count + 1)
    ]
    write_atomic(out, sheets.sheets_pdf(pages), mode=0o644)
    print(f"Wrote {len(pages)} note sheet(s) for {args.client} to {out}. Print at 100 % (no 'fit to page').")
    return 0
