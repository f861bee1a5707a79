"""Note sheets: print, write on, scan, and every page is filed to the right session — or left unfiled, never misfiled."""

from __future__ import annotations

import io
import random
import re
import subprocess
from pathlib import Path
from typing import cast

import pytest
from PIL import Image, ImageDraw, ImageFont

from scanarchive.archive.layout import Archive
from scanarchive.demo import synth
from scanarchive.errors import InputRejected
from scanarchive.pages import sheets
from tests.kits.helpers import cli
from tests.kits.watchkit import set_config


def printed(archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> list[Image.Image]:
    """Sheets made by the real `scanarchive sheets`, rasterised as a printer would at 300 dpi."""
    out = tmp_path / f"sheets-{random.random():.8f}.pdf"
    run = cli(capsys, "--archive", archive, "sheets", *args, "-o", out)
    assert run.code == 0, run.err
    png = subprocess.run(["pdftoppm", "-r", "300", "-gray", "-png", str(out), str(tmp_path / "pg")], check=True)
    assert png.returncode == 0
    pages = sorted(tmp_path.glob("pg-*.png"))
    images = [Image.open(p).convert("L") for p in pages]
    for p in pages:
        p.unlink()
    out.unlink()
    return images


def write_on(page: Image.Image, seed: int) -> Image.Image:
    """Handwriting (a handwriting font) on the ruled area of a sheet."""
    page = page.copy()
    draw = ImageDraw.Draw(page)
    font = ImageFont.truetype(str(synth.LEGIBLE_FONT), 70)
    for n, line in enumerate(synth.synthetic_note(seed, sentences=3)):
        draw.text((170, 720 + 110 * n), line[:48], font=font, fill=30)
    return page


def scan(page: Image.Image, dpi: int = 300, rotate: float = 0.0, seed: int = 0, jpeg: bool = True) -> Image.Image:
    """As a scanner would: resample to dpi, a slight (or upside-down) rotation, noise, JPEG quality 80."""
    rng = random.Random(seed)
    image = page.resize((round(page.width * dpi / 300), round(page.height * dpi / 300)))
    if rotate:
        image = image.rotate(rotate, expand=True, fillcolor=255)
    noise = Image.effect_noise(image.size, 12).point(lambda v: v - 128)
    image = Image.eval(image, lambda v: v).point(lambda v: max(0, min(255, v + rng.randint(-3, 3))))
    image = Image.blend(image, noise.convert("L"), 0.0) if noise else image
    if jpeg:
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=80, dpi=(dpi, dpi))
        return Image.open(io.BytesIO(out.getvalue()))
    image.info["dpi"] = (dpi, dpi)
    return image


def save_stack(path: Path, pages: list[Image.Image], dpi: int = 300) -> Path:
    pages = [p.convert("L") for p in pages]
    pages[0].save(path, save_all=True, append_images=pages[1:], compression="tiff_lzw", dpi=(dpi, dpi))
    return path


def records(archive: Path) -> list[tuple[str | None, str | None, str, str, int]]:
    with Archive(archive) as a:
        return [
            (r.client_code, r.session_date, r.record_class, r.source_pages, r.blank_pages) for r in a.catalog.records()
        ]


@pytest.mark.parametrize(("dpi", "rotate"), [(300, 0.0), (300, 2.5), (300, 180.0), (200, 1.2), (200, 180.0)])
def test_scanned_sheets_are_filed_to_the_right_session(
    dpi: int, rotate: float, archive_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (page,) = printed(
        archive_dir, tmp_path, capsys, "--client", "C-0042", "--date", "2026-11-20", "--class", "psychotherapy"
    )
    path = tmp_path / "scan.jpg"
    scan(write_on(page, seed=dpi + int(rotate)), dpi=dpi, rotate=rotate, seed=dpi).save(
        path, format="JPEG", quality=80, dpi=(dpi, dpi)
    )
    run = cli(capsys, "--archive", archive_dir, "ingest", path)
    assert run.code == 0, run.err
    assert "(from the sheet)" in run.out
    assert records(archive_dir) == [("C-0042", "2026-11-20", "psychotherapy", "1", 0)]


@pytest.mark.slow
def test_a_stack_of_three_sessions_with_blank_backs_becomes_three_records(
    archive_dir: Path, passphrase_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = printed(archive_dir, tmp_path, capsys, "--client", "C-1", "--date", "2026-10-01", "--count", "2")
    b = printed(archive_dir, tmp_path, capsys, "--client", "C-2", "--date", "2026-10-02", "--count", "3")
    c = printed(archive_dir, tmp_path, capsys, "--client", "C-1", "--date", "2026-10-08", "--count", "1")
    plain = Image.new("L", a[0].size, 255)  # a continuation on plain paper: no code
    blank = synth.render_page([], width_in=8.5, height_in=11, noise=4, seed=1)  # a blank duplex back
    written = [write_on(p, seed=i) for i, p in enumerate([a[0], a[1], b[0], b[1], b[2], c[0], plain])]
    stack = [written[0], blank, written[1], written[2], written[3], blank, written[4], written[5], written[6], blank]
    scanned = [scan(p, seed=i, jpeg=False).convert("L") for i, p in enumerate(stack)]
    path = save_stack(tmp_path / "stack.tif", scanned)
    run = cli(capsys, "--archive", archive_dir, "ingest", path)
    assert run.code == 0, run.err
    assert "3 records" in run.out and "3 blank page(s) dropped" in run.out
    assert records(archive_dir) == [
        ("C-1", "2026-10-01", "progress", "1,3", 1),
        ("C-2", "2026-10-02", "progress", "4,5,7", 1),
        ("C-1", "2026-10-08", "progress", "8,9", 1),
    ]
    # each record's PDF holds exactly its pages, in order, with the scanned pixels
    import pikepdf

    with Archive(archive_dir) as opened:  # the human text is checked above; the ids, in filing order, from the catalog
        ids = [r.id for r in opened.catalog.records()]
    expected = [[scanned[0], scanned[2]], [scanned[3], scanned[4], scanned[6]], [scanned[7], scanned[8]]]
    for record, pages in zip(ids, expected, strict=True):
        out = tmp_path / f"{record}.pdf"
        assert (
            cli(capsys, "--archive", archive_dir, "show", record, "-o", out, "--passphrase-file", passphrase_file).code
            == 0
        )
        with pikepdf.open(out) as pdf:
            shown = [
                pikepdf.PdfImage(cast(pikepdf.Stream, next(iter(pg.get_images().values())))).as_pil_image()
                for pg in pdf.pages
            ]
        assert [img.convert("L").tobytes() for img in shown] == [img.tobytes() for img in pages]


def _forged(page_size: tuple[int, int], archive8: str, key: bytes) -> Image.Image:
    info = sheets.SheetInfo(archive8, "C-0042", "2026-11-20", "progress", 1)
    page = sheets.render_sheet(info, key).convert("L")
    return page.resize(page_size)


@pytest.mark.slow
def test_damaged_foreign_and_missing_codes_are_never_misfiled(
    archive_dir: Path, passphrase_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Archive(archive_dir) as archive:
        archive8 = archive.config.archive_id.replace("-", "")[:8]
    (genuine,) = printed(archive_dir, tmp_path, capsys, "--client", "C-7", "--date", "2026-09-09")
    wrong_key = _forged(genuine.size, archive8, b"x" * 32)  # looks right, check value fails
    foreign = _forged(genuine.size, "0badc0de", b"y" * 32)  # another practice's archive
    damaged = genuine.copy()
    ImageDraw.Draw(damaged).rectangle((2150, 200, 2500, 420), fill=0)  # ink over most of the code
    nothing = Image.new("L", genuine.size, 255)
    for name, page in [("wrong-key", wrong_key), ("foreign", foreign), ("damaged", damaged), ("none", nothing)]:
        path = tmp_path / f"{name}.tif"
        save_stack(path, [scan(write_on(page, seed=3), jpeg=False)])
        run = cli(capsys, "--archive", archive_dir, "ingest", path)
        assert run.code == 0, run.err
        assert "UNFILED" in run.out, name
    # a foreign sheet inside a stack after a genuine one starts its own (unfiled) record
    path = save_stack(
        tmp_path / "mixed.tif",
        [scan(write_on(genuine, seed=4), jpeg=False), scan(write_on(foreign, seed=5), jpeg=False)],
    )
    assert cli(capsys, "--archive", archive_dir, "ingest", path).code == 0
    rows = records(archive_dir)
    assert rows[:4] == [(None, None, "progress", "1", 0)] * 4
    assert rows[4:] == [("C-7", "2026-09-09", "progress", "1", 0), (None, None, "progress", "2", 0)]

    inbox = cli(capsys, "--archive", archive_dir, "inbox")
    unfiled = re.findall(r"^([0-9a-f-]{36}) ", inbox.out, re.MULTILINE)
    assert len(unfiled) == 5
    run = cli(capsys, "--archive", archive_dir, "file", unfiled[0], "--client", "C-8", "--date", "2026-09-10")
    assert run.code == 0 and "client_code: (none) -> C-8" in run.out
    assert len(re.findall(r"^[0-9a-f-]{36} ", cli(capsys, "--archive", archive_dir, "inbox").out, re.M)) == 4
    with Archive(archive_dir) as archive:
        assert archive.catalog.history(unfiled[0])[0][:3] == ("client_code", None, "C-8")
    run = cli(
        capsys,
        "--archive",
        archive_dir,
        "search",
        "note*",
        "--client",
        "C-8",
        "--json",
        "--passphrase-file",
        passphrase_file,
    )
    assert run.code == 0


def test_filename_pattern_fallback(archive_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    set_config(archive_dir, filename_pattern=r"^(?P<client>C-\d+)_(?P<date>\d{8})")
    page = scan(write_on(Image.new("L", (2550, 3300), 255), seed=9), jpeg=False)
    path = tmp_path / "C-0099_20261105_scan.tif"
    save_stack(path, [page])
    run = cli(capsys, "--archive", archive_dir, "ingest", path)
    assert run.code == 0, run.err
    assert "(from the filename)" in run.out
    assert records(archive_dir) == [("C-0099", "2026-11-05", "progress", "1", 0)]


def test_a_100_dpi_scan_is_rejected_and_a_blank_page_dropped(
    archive_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    coarse = tmp_path / "coarse.png"
    synth.render_page(synth.synthetic_note(1, 2), dpi=100, height_in=3).save(coarse, dpi=(100, 100))
    run = cli(capsys, "--archive", archive_dir, "ingest", coarse)
    assert run.code == InputRejected.exit_code
    assert "100 dpi" in run.err and "300 dpi" in run.err and coarse.exists()

    written = synth.render_page(synth.synthetic_note(2, 2), height_in=3, seed=2)
    blank = synth.render_page([], height_in=3, noise=5, seed=3)
    path = save_stack(tmp_path / "duplex.tif", [written, blank])
    run = cli(capsys, "--archive", archive_dir, "ingest", path, "--client", "C-3", "--date", "2026-11-01")
    assert run.code == 0, run.err
    assert "1 blank page(s) dropped: page 2" in run.out
    assert "all 1 page legible" in run.out
    assert records(archive_dir) == [("C-3", "2026-11-01", "progress", "1", 1)]
