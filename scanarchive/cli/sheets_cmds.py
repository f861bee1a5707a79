"""The sheets verb: print note sheets whose code files each scanned page, or list the tick-box keys.

`scanarchive sheets --client … -o FILE` prints, as it always has; `scanarchive sheets keys` lists every
tick-box key with its label. `keys` is an optional positional word, not an argparse sub-verb: a
sub-verb would need a word before every print too (`sheets print --client …`), breaking the form every
script and the docs use. So the printing options are checked here instead of by argparse.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scanarchive.cli.common import client_code, iso_date, open_archive, record_class, tick_boxes
from scanarchive.errors import UsageError
from scanarchive.fsio import write_atomic
from scanarchive.pages import sheets, templates

_USAGE = """scanarchive sheets --client CODE (--date DATE | --dates LIST | --undated) [options] -o FILE.pdf
       scanarchive sheets keys"""
_EXAMPLE = "For example: scanarchive sheets --client C-0042 --date 2026-12-01 -o sheets.pdf"
_PRINT_OPTIONS = ("client", "date", "dates", "undated", "template", "output")  # printing only: None unless given
_DEFAULTED = (  # printing only, with a default: given when not the default
    ("--count", "count", 1),
    ("--paper", "paper", "letter"),
    ("--class", "record_class", "progress"),
    ("--fields", "fields", sheets.FIELDS),
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "sheets",
        parents=[common],
        usage=_USAGE,
        help="print note sheets whose code files each scanned page (needs no passphrase)",
        description="Makes a PDF of note sheets. The code on each sheet carries the client code, session date and "
        "class (never a name), so a scanned stack files itself, one record per session. "
        "'scanarchive sheets keys' lists every tick-box key, for 'search --has'.",
        epilog="Print at 100 % (actual size, not 'fit to page'). Continuation sheets are plain ruled pages; "
        "only the first sheet of a session carries a template's tick boxes.",
    )
    p.add_argument(
        "what",
        nargs="?",
        choices=["keys"],
        metavar="keys",
        help="instead of printing: list every tick-box key of the installed templates, with its label",
    )
    p.add_argument(
        "--client", type=client_code, metavar="CODE", help="the client's code (a pseudonym, never a name); required"
    )
    when = p.add_mutually_exclusive_group()
    when.add_argument("--date", type=iso_date, help="one session date, e.g. 2026-12-01")
    when.add_argument("--dates", metavar="LIST", help="several session dates, comma-separated: one note each")
    when.add_argument("--undated", action="store_true", help="sheets without a date (filed by date later)")
    p.add_argument(
        "--class",
        dest="record_class",
        type=record_class,
        default="progress",
        metavar="CLASS",
        help="progress (the default) or psychotherapy: psychotherapy (process) notes are kept apart",
    )
    p.add_argument(
        "--count", type=int, default=1, help="sheets per session: the first and N-1 continuation sheets (default 1)"
    )
    p.add_argument(
        "--paper",
        choices=sorted(sheets.PAPER_INCHES),
        default="letter",
        help="paper size: letter (the default) or a4; print at 100 %%",
    )
    p.add_argument(
        "--template",
        metavar="NAME",
        help="give the first sheet tick boxes from this template (progress or risk are shipped; 'sheets keys' "
        "lists them): its newest version",
    )
    p.add_argument(
        "--fields",
        type=_fields,
        default=sheets.FIELDS,
        metavar="LIST",
        help="write-in fields, comma-separated: time, length (of the session, on first sheets), signature "
        "(every sheet), or none; default: all three",
    )
    p.add_argument("-o", "--output", type=Path, metavar="FILE.pdf", help="the PDF to write (a new file); required")
    p.set_defaults(func=cmd_sheets)


def _fields(text: str) -> tuple[str, ...]:
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if names == ["none"]:
        return ()
    unknown = [n for n in names if n not in sheets.FIELDS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"name fields from: {', '.join(sheets.FIELDS)} (comma-separated), or none")
    return tuple(n for n in sheets.FIELDS if n in names)


def cmd_sheets(args: argparse.Namespace) -> int:
    if args.what == "keys":
        return _list_keys(args)
    if args.client is None:
        raise UsageError("--client is needed: the code on each sheet names the client", hint=_EXAMPLE + ".")
    if not (args.date or args.dates or args.undated):
        raise UsageError(
            "say which sessions the sheets are for: --date DATE, --dates DATE,DATE… or --undated", hint=_EXAMPLE + "."
        )
    if args.output is None:
        raise UsageError("-o FILE.pdf is needed: the file to write the sheets to", hint=_EXAMPLE + ".")
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
    pages = sheets.note_sheets(
        archive8, key, args.client, dates, args.record_class, args.count, args.paper, template, args.fields
    )
    write_atomic(out, sheets.sheets_pdf(pages), mode=0o644)
    print(f"Wrote {len(pages)} note sheet(s) for {args.client} to {out}. Print at 100 % (no 'fit to page').")
    return 0


def _list_keys(args: argparse.Namespace) -> int:
    given = [f"--{name}" for name in _PRINT_OPTIONS if getattr(args, name) not in (None, False)]
    given += [flag for flag, name, default in _DEFAULTED if getattr(args, name) != default]
    if given:
        raise UsageError(
            f"'sheets keys' only lists the tick-box keys; leave out {', '.join(given)}",
            hint="To print sheets, leave out 'keys': " + _EXAMPLE.removeprefix("For example: ") + ".",
        )
    rows = tick_boxes().listing()
    names = sorted({t.id for t in templates.load_all().values()})
    if not rows:
        print(f"No sheet template has tick boxes (templates are read from {templates.FOLDER}).")
        return 0
    width = max(len(key) for key, _, _ in rows)
    label_width = max(len(label) for _, label, _ in rows)
    print("Tick-box keys, for 'scanarchive search --has KEY' (the label works too):")
    print()
    print(f"  {'KEY':<{width}}  {'LABEL ON THE SHEET':<{label_width}}  TEMPLATES")
    for key, label, where in rows:
        print(f"  {key:<{width}}  {label:<{label_width}}  {where}")
    print()
    latest = ", ".join(f"{name} ({templates.latest(name).token})" for name in names)
    print(f"{len(rows)} key(s). Templates: {latest}, read from {templates.FOLDER}.")
    print("Print a sheet with tick boxes: scanarchive sheets --template NAME --client CODE --date DATE -o FILE.pdf")
    return 0
