"""The built-in demo: synthetic handwritten scans -> a demo archive -> search -> show.

Every note is generated here from a fixed vocabulary (scanarchive.demo.synth): no
real client data exists anywhere in the demo. The demo drives the real
command line, printing each command before it runs it, so what you see is
exactly what a clinician would type.
"""

from __future__ import annotations

import io
import random
import shlex
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import ImageDraw, ImageFont

from scanarchive import reading
from scanarchive.archive.layout import Archive
from scanarchive.demo import synth
from scanarchive.errors import ArchiveExists, ScanarchiveError
from scanarchive.pages import sheets, templates

MARKER = ".scanarchive-demo"
PASSPHRASE = "demo passphrase - never use for real notes"
NOTES: tuple[tuple[str, str, str, int, int], ...] = (
    # file name, client code, session date, synthetic seed, pages
    ("2026-11-02-scan.png", "DEMO-01", "2026-11-02", 101, 1),
    ("2026-11-09-scan.tif", "DEMO-02", "2026-11-09", 202, 2),
    ("2026-11-16-scan.jpg", "DEMO-01", "2026-11-16", 303, 1),
)


def prepare_folder(folder: Path) -> None:
    if folder.exists():
        if not (folder / MARKER).exists():
            if any(folder.iterdir()):
                raise ArchiveExists(
                    f"{folder} exists and is not a scanarchive demo folder",
                    hint="Give the demo an empty or new folder with --dir.",
                )
        else:
            shutil.rmtree(folder)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    (folder / MARKER).write_text("made by 'scanarchive demo'; safe to delete\n")


def make_scans(drop: Path) -> list[tuple[Path, str, str, list[str]]]:
    drop.mkdir(mode=0o700, exist_ok=True)
    made = []
    for name, client, day, seed, pages in NOTES:
        lines_all: list[str] = []
        images = []
        for page in range(pages):
            lines = synth.synthetic_note(seed + page, sentences=3)
            lines_all += lines
            images.append(
                synth.render_page(lines, rotation_deg=0.8 - 0.5 * page, noise=4.0, blur=0.3, seed=seed + page)
            )
        fmt = {"png": "png", "tif": "tiff", "jpg": "jpeg"}[name.rsplit(".", 1)[1]]
        synth.write_scan(drop / name, images, fmt)
        made.append((drop / name, client, day, lines_all))
    return made


def make_sheet_scan(archive_root: Path, drop: Path) -> Path:
    """A printed tick-box sheet for DEMO-03, written on and ticked, 'scanned' slightly askew."""
    template = templates.latest("progress")
    with Archive(archive_root) as archive:
        key = archive.catalog.sheet_key()
        archive8 = archive.config.archive8
    info = sheets.SheetInfo(archive8, "DEMO-03", "2026-11-23", "progress", 1, template.token)
    page = sheets.render_sheet(info, key, template=template).convert("L")
    top = sheets.content_top(sheets.encode(info, key))
    draw = ImageDraw.Draw(page)
    rng = random.Random(7)
    placed, notes_top = templates.layout(template, top, sheets.MARGIN)
    for box in placed:
        mark = "check" if box.key in ("topic.sleep", "risk.si_denied", "homework.assigned") else "none"
        synth.draw_mark(draw, box.x, box.y, templates.BOX, mark, rng)
    font = ImageFont.truetype(str(synth.LEGIBLE_FONT), 64)
    for n, line in enumerate(synth.synthetic_note(404, sentences=3)):
        draw.text((170, notes_top + 150 + 108 * n), line[:50], font=font, fill=30)
    out = io.BytesIO()
    page.rotate(1.2, expand=True, fillcolor=255).save(out, format="JPEG", quality=85, dpi=(300, 300))
    path = drop / "2026-11-23-sheet.jpg"
    path.write_bytes(out.getvalue())
    return path


def pick_query(archive_root: Path, lines: list[str]) -> str:
    """A word of the first note that OCR actually read (handwriting OCR misses some)."""
    candidates = sorted({w.lower() for w in synth.note_words(lines, min_len=6)}, key=len, reverse=True)
    with Archive(archive_root) as archive:
        _, found = reading.searched(
            archive,
            archive.unlock(PASSPHRASE),
            lambda index: next((word for word in candidates if index.search(word, limit=1)), None),
        )
    return found or (candidates[0] if candidates else "session")


def run(folder: Path, cli: Callable[[Sequence[str]], int], echo: Callable[[str], None] = print) -> int:
    folder = folder.resolve()
    prepare_folder(folder)
    archive = folder / "archive"
    secret = folder / "passphrase.txt"
    secret.write_text(PASSPHRASE + "\n")
    secret.chmod(0o600)  # a passphrase file others can read is refused
    secret.chmod(0o600)

    def step(title: str, *argv: str) -> int:
        echo("")
        echo(f"== {title}")
        echo("$ scanarchive " + " ".join(shlex.quote(a) for a in argv))
        code = cli(list(argv))
        if code != 0:
            raise ScanarchiveError(f"the demo step '{title}' failed (exit {code})")
        return code

    echo(f"scanarchive demo in {folder}")
    echo("All notes below are synthetic, generated on this machine. Nothing leaves it.")
    step(
        "Create an encrypted archive",
        "--archive",
        str(archive),
        "init",
        "--passphrase-file",
        str(secret),
        "--kdf-seconds",
        "0.25",
    )
    scans = make_scans(folder / "drop")
    echo("")
    echo(f"== Generated {len(scans)} synthetic handwritten scans in {folder / 'drop'}")
    for path, client, day, _ in scans:
        step(
            f"Seal {path.name} (no passphrase needed)",
            "--archive",
            str(archive),
            "ingest",
            str(path),
            "--client",
            client,
            "--date",
            day,
        )
    sheet = make_sheet_scan(archive, folder / "drop")
    step("Seal a scanned note sheet: its code says whose note it is", "--archive", str(archive), "ingest", str(sheet))
    query = pick_query(archive, scans[0][3])
    step(f"Search for '{query}'", "--archive", str(archive), "search", query, "--passphrase-file", str(secret))
    step(
        "Search one client's notes only",
        "--archive",
        str(archive),
        "search",
        query,
        "--client",
        "DEMO-01",
        "--passphrase-file",
        str(secret),
    )
    step(
        "Find notes by a ticked box",
        "--archive",
        str(archive),
        "search",
        "--has",
        "topic.sleep",
        "--passphrase-file",
        str(secret),
    )
    step(
        "Check every sealed record",
        "--archive",
        str(archive),
        "verify",
        "--read-data",
        "--passphrase-file",
        str(secret),
    )
    step("Status", "--archive", str(archive), "status")
    echo("")
    echo("Try it yourself:")
    command = _command()
    echo(f"  {command} --archive {archive} search WORD --passphrase-file {secret}")
    echo(f"  {command} --archive {archive} show RECORD-ID -o note.pdf --passphrase-file {secret}")
    echo(f"Delete the demo with: rm -r {folder}")
    return 0


def _command() -> str:
    """How to run this very scanarchive: the installed command, as the shell finds it, when that is this one;
    else its full path (a checkout's .venv/bin, an install's own venv)."""
    here = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    found = shutil.which("scanarchive")
    if found and here is not None and Path(found).resolve() == here:
        return "scanarchive"
    beside = Path(sys.executable).parent / "scanarchive"
    return shlex.quote(str(beside)) if beside.is_file() else f"{shlex.quote(sys.executable)} -m scanarchive"
