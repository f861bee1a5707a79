"""Only handwriting is indexed: what a note sheet printed (labels, headings, code, footer, boxes) is masked
before OCR, so searching a printed word never finds a sheet where it was not written or ticked."""

from __future__ import annotations

import io
import itertools
import json
import random
import re
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFont

from scanarchive.demo import synth
from scanarchive.ingest import identify
from scanarchive.ocr import ensemble, mask, merge
from scanarchive.ocr.document import Word
from scanarchive.pages import load, sheets, templates
from tests.kits.helpers import cli, print_sheet, record_ids_from_json

KEY = b"k" * 32
ARCHIVE8 = "abcd1234"


def _sheet(
    token: str | None, paper: str = "letter", fields: tuple[str, ...] = sheets.FIELDS, day: str | None = "2026-03-04"
) -> tuple[Image.Image, sheets.SheetInfo]:
    template = templates.load_all()[token] if token else None
    info = sheets.SheetInfo(ARCHIVE8, "C-7", day, "progress", 1, token)
    return sheets.render_sheet(info, KEY, paper, template, fields).convert("L"), info


def _text_ink(page: Image.Image, run: int = 100) -> int:
    """Dark pixels that are not part of a ruled line (a run of `run` px or more along a row)."""
    data = page.point(lambda v: 0 if v < 128 else 255).tobytes()
    width = page.width
    line = re.compile(b"\x00{%d,}" % run)
    return sum(line.sub(b"", data[y * width : (y + 1) * width]).count(0) for y in range(page.height))


def _ruled_lines(page: Image.Image) -> list[int]:
    """The y of every ruled writing line (a dark run across most of the page's width)."""
    data = page.point(lambda v: 0 if v < 128 else 255).tobytes()
    width = page.width
    rows = [y for y in range(page.height) if b"\x00" * (width // 2) in data[y * width : (y + 1) * width]]
    return [y for n, y in enumerate(rows) if n == 0 or y - rows[n - 1] > 3]


def _upright_strokes(page: Image.Image, tall: int = 9) -> int:
    """Dark pixels in a vertical run of `tall` px or more: the strokes of letters, never a ruled line, even
    one a little askew (its steps are 2-3 px tall)."""
    dark = page.point(lambda v: 255 if v < 128 else 0)
    strokes = dark
    for dy in range(1, tall):
        strokes = ImageChops.darker(strokes, ImageChops.offset(dark, 0, dy))
    return strokes.histogram()[255]


def _regions(page: Image.Image) -> tuple[mask.Region, ...]:
    code = sheets.read_page_code(page, KEY, ARCHIVE8)
    assert code.status is sheets.QrStatus.VALID
    return identify.printed_regions(page, code)


CASES = [
    ("progress@2", "letter", sheets.FIELDS, "2026-03-04"),
    ("progress@2", "a4", sheets.FIELDS, "2026-03-04"),
    ("risk@2", "letter", ("signature",), "2026-03-04"),
    ("risk@2", "a4", (), None),
    ("progress@1", "letter", sheets.FIELDS, "2026-03-04"),
    ("risk@1", "a4", sheets.FIELDS, "2026-03-04"),
    (None, "letter", sheets.FIELDS, "2026-03-04"),
    (None, "a4", ("time",), None),
]


@pytest.mark.parametrize(("token", "paper", "fields", "day"), CASES)
def test_regions_cover_every_printed_mark_but_the_ruled_lines(
    token: str | None, paper: str, fields: tuple[str, ...], day: str | None
) -> None:
    page, _ = _sheet(token, paper, fields, day)
    before = _text_ink(page)
    after = _text_ink(mask.whiten(page, _regions(page)))
    assert before > 20_000  # the sheet does print text, code and boxes
    assert after <= before * 0.001, f"{after} of {before} printed px left unmasked"


@pytest.mark.parametrize(("token", "paper", "fields", "day"), CASES)
def test_regions_leave_the_writing_space_alone(
    token: str | None, paper: str, fields: tuple[str, ...], day: str | None
) -> None:
    """Handwriting anywhere between the ruled lines survives: in particular, on A4 the place where a letter
    sheet prints its footer and signature is writing space, and on a sheet without a signature line so is
    the place of that line."""
    page, _ = _sheet(token, paper, fields, day)
    regions = _regions(page)
    written = page.copy()
    draw = ImageDraw.Draw(written)
    blobs = 0
    ruled = _ruled_lines(page)
    for above, below in itertools.pairwise(ruled):
        if below - above > 2 * templates.LINE_PITCH:
            continue  # not two neighbouring writing lines (a section heading is between them)
        middle = (above + below) // 2
        for x in range(sheets.MARGIN + 40, page.width - sheets.MARGIN - 60, 400):
            draw.rectangle((x, middle - 15, x + 30, middle + 15), fill=0)  # a written letter between two lines
            blobs += 31 * 31
    assert blobs > 30_000
    kept = _text_ink(mask.whiten(written, regions)) - _text_ink(mask.whiten(page, regions))
    assert kept >= blobs * 0.99, f"{blobs - kept} of {blobs} written px masked"


def test_a_turned_scan_maps_its_regions_onto_the_upright_copy() -> None:
    """Regions are on the upright OCR copy (the scan turned by its code's orientation): a sheet scanned upside
    down masks the same printed text as one scanned straight."""
    page, _ = _sheet("progress@2")
    turned = page.rotate(180, expand=True)
    code = sheets.read_page_code(turned, KEY, ARCHIVE8)
    assert code.orientation == 180
    upright = load.upright(turned, code.orientation)
    before = _text_ink(upright)
    after = _text_ink(mask.whiten(upright, identify.printed_regions(turned, code)))
    assert before > 20_000 and after <= before * 0.001


def _scanned(page: Image.Image, dpi: int, rotate: float) -> Image.Image:
    image = page.resize((page.width * dpi // 300, page.height * dpi // 300), Image.Resampling.LANCZOS)
    image = image.rotate(rotate, expand=True, fillcolor=255, resample=Image.Resampling.BILINEAR)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=80, dpi=(dpi, dpi))
    return Image.open(io.BytesIO(out.getvalue())).convert("L")


@pytest.mark.parametrize(
    ("token", "paper", "dpi", "rotate"),
    [("risk@2", "a4", 300, 0.8), ("progress@2", "letter", 200, -1.5), (None, "letter", 300, 180.6)],
)
def test_a_scan_askew_and_at_another_resolution_is_masked_too(
    token: str | None, paper: str, dpi: int, rotate: float
) -> None:
    """The frame read off the code places every part within a few px; what the paper size or the fields decide
    (footer, signature, time, length) is found by its ink near its place."""
    page, _ = _sheet(token, paper)
    scan = _scanned(page, dpi, rotate)
    code = sheets.read_page_code(scan, KEY, ARCHIVE8)
    assert code.status is sheets.QrStatus.VALID
    upright = load.upright(scan, code.orientation)
    before = _upright_strokes(upright)
    after = _upright_strokes(mask.whiten(upright, identify.printed_regions(scan, code)))
    assert before > 5_000  # the letters' upright strokes
    assert after == 0, f"{after} of {before} px of printed letters left unmasked"


@pytest.mark.parametrize("angle", [90, 180, 270, 3, 357])
def test_upright_point_follows_the_ocr_copy(angle: int) -> None:
    image = Image.new("L", (400, 300), 255)
    ImageDraw.Draw(image).rectangle((50, 70, 56, 76), fill=0)
    turned = load.upright(image, angle)
    box = turned.point(lambda v: 255 if v < 128 else 0).getbbox()
    assert box is not None
    x, y = mask.upright_point(53.5, 73.5, image.size, angle)
    assert abs(x - (box[0] + box[2]) / 2) <= 1.5 and abs(y - (box[1] + box[3]) / 2) <= 1.5
    width, height = mask.upright_size(image.size, angle)
    assert abs(width - turned.width) <= 2 and abs(height - turned.height) <= 2


def test_words_mostly_inside_printed_regions_are_dropped() -> None:
    size = (1000, 2000)
    regions = [(0.1, 0.1, 0.3, 0.2)]  # x 100-300, y 200-400
    inside = Word("Depressed", 90, (120, 250, 100, 40))
    half_out = Word("Safety", 90, (250, 250, 100, 40))  # half its box in the region: printed
    mostly_out = Word("garden", 90, (280, 250, 100, 40))  # a fifth in: handwriting touching a label
    away = Word("walking", 90, (500, 900, 120, 40))
    kept = mask.outside([inside, half_out, mostly_out, away], regions, size)
    assert kept == [mostly_out, away]
    assert mask.outside([inside], [], size) == [inside]
    assert mask.inside_share((120, 250, 100, 40), regions, size) == 1.0


def test_whiten_paints_regions_only() -> None:
    page = Image.new("L", (200, 100), 0)
    out = mask.whiten(page, [(0.0, 0.0, 0.5, 1.0)])
    assert out.crop((0, 0, 100, 100)).getextrema() == (255, 255)
    assert out.crop((100, 0, 200, 100)).getextrema() == (0, 0)
    assert page.getextrema() == (0, 0)  # the page itself is never altered


# --- end to end: print, write, tick, scan, ingest, search -------------------------------------------------


WRITTEN = {
    "progress": ["walking", "garden", "brother", "holiday"],
    "risk": ["kitchen", "morning", "bicycle", "letters"],
}
TICKED = {"progress": "mood.anxious", "risk": "risk.referral"}
# printed on these sheets, and neither written nor ticked there
PRINTED_WORDS = ["depressed", "session", "client", "safety", "plan", "euthymic", "signature", "scanarchive", "notes"]


@pytest.mark.slow
def test_printed_words_are_never_found_handwriting_and_ticks_are(
    archive_dir: Path, passphrase_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    font = ImageFont.truetype(str(synth.LEGIBLE_FONT), 64)
    ids = {}
    for n, (name, paper) in enumerate([("progress", "letter"), ("risk", "a4")]):
        template = templates.latest(name)
        page = print_sheet(
            archive_dir, tmp_path, capsys, "--client", f"C-{n}", "--date", "2026-10-05", "--template", name,
            "--paper", paper,
        )  # fmt: skip
        top = sheets.content_top(sheets.read_page_code(page, b"", "").text)
        placed, notes_top = templates.layout(template, top, sheets.MARGIN)
        draw = ImageDraw.Draw(page)
        rng = random.Random(n)
        for box in placed:
            synth.draw_mark(draw, box.x, box.y, templates.BOX, "check" if box.key == TICKED[name] else "none", rng)
        words = WRITTEN[name]
        first_line = notes_top + 40 + (0 if name == "progress" else 9 * templates.LINE_PITCH + 100)
        for row in range(2):
            baseline = first_line + (2 * row + 2) * templates.LINE_PITCH
            draw.text((200, baseline - 10), " ".join(words[2 * row : 2 * row + 2]), font=font, fill=30, anchor="ls")
        scan = page.rotate(0.8, expand=True, fillcolor=255)
        out = io.BytesIO()
        scan.save(out, format="JPEG", quality=85, dpi=(300, 300))
        path = tmp_path / f"{name}.jpg"
        path.write_bytes(out.getvalue())
        run = cli(capsys, "--archive", archive_dir, "ingest", path, "--json")
        assert run.code == 0, run.err
        ids[name] = record_ids_from_json(run.out)[0]

    def found(*args: str) -> set[str]:
        run = cli(capsys, "--archive", archive_dir, "search", *args, "--json", "--passphrase-file", passphrase_file)
        assert run.code == 0, run.err
        return {r["record_id"] for r in json.loads(run.out)["results"]}

    leaked = {word: found(word, "--exact") for word in PRINTED_WORDS}
    assert leaked == {word: set() for word in PRINTED_WORDS}, "printed words were indexed"
    joined = {a + b for words in WRITTEN.values() for a in words for b in words}
    for name, words in WRITTEN.items():
        read = [w for w in words if found(w) == {ids[name]}]
        assert len(read) >= 3, f"{name}: only {read} of {words} found"
        run = cli(capsys, "--archive", archive_dir, "search", read[0], "--json", "--passphrase-file", passphrase_file)
        (snippet,) = [r["snippet"] for r in json.loads(run.out)["results"]]
        shown = {w.casefold() for w in re.findall(r"\w+", snippet)}
        assert read[0] in shown and not shown & (set(PRINTED_WORDS) | joined), snippet
        assert found("--has", TICKED[name]) == {ids[name]}
    assert found("--has", "mood.depressed") == set()


def test_a_second_engine_line_that_only_runs_words_together_is_dropped() -> None:
    """RapidOCR reads "BROTHER HOLIDAY" as "BROTHERHOLIDAY": nothing new, and it would clutter snippets."""
    t1 = Word("BROTHER", 80, (100, 500, 200, 60), (1, 1, 2), "tr")
    t2 = Word("HOLIDAY", 80, (320, 500, 200, 60), (1, 1, 2), "t")
    joined = Word("BROTHERHOLIDAY", 90, (100, 500, 420, 60), (merge.EXTRA_BLOCK, 1, 1), "r")
    new_line = [
        Word("BROTHER", 90, (100, 500, 200, 60), (merge.EXTRA_BLOCK + 1, 1, 1), "r"),
        Word("HOLLOW", 90, (320, 500, 200, 60), (merge.EXTRA_BLOCK + 1, 1, 1), "r"),  # read only by RapidOCR
    ]
    assert ensemble._without_joined([t1, t2, joined]) == [t1, t2]
    assert ensemble._without_joined([t1, t2, *new_line]) == [t1, t2, *new_line]
    other = Word("BROTHERHOOD", 90, (100, 500, 420, 60), (merge.EXTRA_BLOCK, 1, 1), "r")  # not what Tesseract read
    assert ensemble._without_joined([t1, t2, other]) == [t1, t2, other]
