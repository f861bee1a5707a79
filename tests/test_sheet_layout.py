"""Note sheets as printed: measured on the rendered page, not judged by eye.

Every sheet `scanarchive sheets` can print (each template's newest version and the plain sheet, first and
continuation, letter and A4, with and without the write-in fields) keeps its ink inside the 0.5 in margin;
each tick-box label's ink is nearer its own box than any other box, and no printed text enters the
area the reader inspects around a box; the frozen layout 1 keeps its boxes where printed sheets have
them; sheets print more writing lines than before; and scans of the new sheets are read by the real
ingest (the continuation sheet plain, joining its note), while layout-1 sheets keep reading.
"""

from __future__ import annotations

import argparse
import math
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageOps

from scanarchive.archive.layout import Archive
from scanarchive.cli.main import build_parser
from scanarchive.demo import synth
from scanarchive.errors import ConfigError
from scanarchive.pages import sheets, templates
from tests.kits.helpers import cli, record_ids_from_json

KEY = b"layout test sheet key, not real!"
ARCHIVE8 = "0badc0de"
PAPERS = sorted(sheets.PAPER_INCHES)
NEIGHBOURHOOD = 80  # px around a box's outline that the reader samples (78, §13.3 of docs/format.md)
ATTACHED = 1.4  # a label's own box is at least this much nearer than any other box

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 (x1, y1 exclusive)


def newest() -> list[templates.Template]:
    return [templates.latest(name) for name in sorted({t.id for t in templates.load_all().values()})]


def ink(page: Image.Image) -> Image.Image:
    """255 where the page is printed, 0 where it is blank paper."""
    return ImageOps.invert(page.convert("L"))


def box_rect(box: templates.Placed) -> Rect:
    return box.x, box.y, box.x + templates.BOX + 1, box.y + templates.BOX + 1


def without_boxes(page: Image.Image, placed: list[templates.Placed]) -> Image.Image:
    """The page's ink with the box outlines erased: what is left near the boxes is printed text."""
    out = ink(page)
    draw = ImageDraw.Draw(out)
    for box in placed:
        x0, y0, x1, y1 = box_rect(box)
        draw.rectangle((x0 - 1, y0 - 1, x1, y1), fill=0)
    return out


def runs(values: list[int], min_gap: int) -> list[tuple[int, int]]:
    """Index ranges [start, end) where values are non-zero, runs closer than min_gap merged."""
    found: list[tuple[int, int]] = []
    for i, v in enumerate(values):
        if not v:
            continue
        if found and i - found[-1][1] < min_gap:
            found[-1] = (found[-1][0], i + 1)
        else:
            found.append((i, i + 1))
    return found


def text_items(inked: Image.Image, band: Rect, min_gap: int = 50) -> list[Rect]:
    """Separate pieces of printed text in a horizontal band, as ink bounding boxes, left to right."""
    x0, y0 = band[0], band[1]
    strip = inked.crop(band)
    columns = list(strip.resize((strip.width, 1), Image.Resampling.BOX).tobytes())
    items = []
    for a, b in runs([int(v) for v in columns], min_gap):
        piece = strip.crop((a, 0, b, strip.height)).getbbox()
        assert piece is not None
        items.append((x0 + a, y0 + piece[1], x0 + b, y0 + piece[3]))
    return items


def distance(a: Rect, b: Rect) -> float:
    dx = max(0, b[0] - a[2], a[0] - b[2])
    dy = max(0, b[1] - a[3], a[1] - b[3])
    return math.hypot(dx, dy)


def ruled_lines(page: Image.Image) -> int:
    """Writing lines: rows inked across (almost) the whole width between the margins."""
    strip = ink(page).crop((sheets.MARGIN, 0, page.width - sheets.MARGIN, page.height))
    rows = list(strip.resize((1, strip.height), Image.Resampling.BOX).tobytes())
    return len(runs([1 if v > 240 else 0 for v in rows], min_gap=3))


def sheet(
    template: templates.Template | None,
    paper: str = "letter",
    n: int = 1,
    day: str | None = "2026-12-01",
    client: str = "C-0042",
    fields: tuple[str, ...] = sheets.FIELDS,
    record_class: str = "progress",
) -> tuple[Image.Image, int]:
    info = sheets.SheetInfo(ARCHIVE8, client, day, record_class, n, template.token if template else None)
    return sheets.render_sheet(info, KEY, paper, template, fields), sheets.content_top(sheets.encode(info, KEY))


VARIANTS: list[dict[str, object]] = [
    {},
    {"day": None},
    {"n": 2},
    {"fields": ()},
    {"fields": ("signature",), "n": 50, "record_class": "psychotherapy"},
    {"client": "C" * 32, "record_class": "psychotherapy"},  # the longest code: a larger QR symbol
]


@pytest.mark.parametrize("paper", PAPERS)
def test_every_sheet_keeps_its_ink_inside_the_margin(paper: str) -> None:
    width_in, height_in = sheets.PAPER_INCHES[paper]
    safe = (sheets.MARGIN, sheets.MARGIN, round(width_in * 300) - sheets.MARGIN, round(height_in * 300) - sheets.MARGIN)
    for template in [None, *newest()]:
        for variant in VARIANTS:
            page, _ = sheet(template, paper, **variant)  # type: ignore[arg-type]
            bbox = ink(page).getbbox()
            assert bbox is not None
            inside = bbox[0] >= safe[0] and bbox[1] >= safe[1] and bbox[2] <= safe[2] and bbox[3] <= safe[3]
            name = template.token if template else "plain"
            assert inside, f"{name} on {paper} {variant}: ink {bbox} outside the 0.5 in margin {safe}"


def test_the_old_layout_ran_off_a4_which_is_why_version_2_exists() -> None:
    """The measurement above can fail: progress@1's third label runs past A4's margin (and is kept so)."""
    page, _ = sheet(templates.load_all()["progress@1"], "a4")
    bbox = ink(page).getbbox()
    assert bbox is not None and bbox[2] > page.width - sheets.MARGIN


def _check_attachment(page: Image.Image, template: templates.Template, top: int) -> None:
    placed, _ = templates.layout(template, top, sheets.MARGIN)
    inked = without_boxes(page, placed)
    rects = [box_rect(b) for b in placed]
    for box, rect in zip(placed, rects, strict=True):  # nothing printed where the reader looks around a box
        x0, y0, x1, y1 = rect
        near = (x0 - NEIGHBOURHOOD, y0 - NEIGHBOURHOOD, x1 + NEIGHBOURHOOD, y1 + NEIGHBOURHOOD)
        assert inked.crop(near).getbbox() is None, f"{template.token}: ink within {NEIGHBOURHOOD} px of {box.key}"
    for g, (_, boxes) in enumerate(template.groups):
        row = [(p, r) for p, r in zip(placed, rects, strict=True) if p.y == top + g * templates.ROW]
        assert len(row) == len(boxes)
        band = (0, row[0][1][1] - 50, page.width, row[0][1][3] + 50)
        items = text_items(inked, band)
        heading = [i for i in items if i[2] <= row[0][1][0]]
        assert len(heading) == 1, f"{template.token} row {g}: the heading is one piece of text left of the boxes"
        own_gaps = []
        for c, (box, rect) in enumerate(row):
            end = row[c + 1][1][0] if c + 1 < len(row) else page.width
            mine = [i for i in items if i[0] >= rect[2] and i[2] <= end]
            assert len(mine) == 1, f"{template.token}: {box.key}'s label is one piece of text right of its box"
            own = distance(mine[0], rect)
            others = min(distance(mine[0], r) for r in rects if r != rect)
            assert others >= ATTACHED * own, (
                f"{template.token}: {box.key}'s label {own} px from it, {others} from another"
            )
            own_gaps.append(own)
        from_heading = min(distance(heading[0], r) for r in rects)
        assert from_heading >= ATTACHED * max(own_gaps), f"{template.token} row {g}: heading as near a box as a label"


@pytest.mark.parametrize("paper", PAPERS)
def test_each_label_is_nearest_its_own_box_and_clear_of_the_boxes(paper: str) -> None:
    for template in newest():
        assert template.layout == 2
        page, top = sheet(template, paper)
        _check_attachment(page, template, top)


def test_long_labels_are_fitted_never_run_off_or_into_another_box(tmp_path: Path) -> None:
    long = "Wmwmwmwmwmwmwmwmwmwmwmwmwmwmwmwmwmwmwmwm"  # 40 wide letters: more than the room there is
    boxes = ", ".join(f'{{ key = "long.{n}", label = "{long}" }}' for n in range(3))
    heading = "Very long row heading here"
    (tmp_path / "long@1.toml").write_text(
        f'id = "long"\nversion = 1\nlayout = 2\ntitle = "{long} {long}"\n'
        f'[[groups]]\nlabel = "{heading}"\nboxes = [{boxes}]\n'
        f'[[groups]]\nlabel = "Short"\nboxes = [{{ key = "s.a", label = "A" }}, {{ key = "s.b", label = "{long}" }}]\n'
        '[[sections]]\nlabel = "Notes"\nfill = true\n'
    )
    template = templates.latest("long", tmp_path)
    for paper in PAPERS:
        page, top = sheet(template, paper)
        bbox = ink(page).getbbox()
        assert bbox is not None and bbox[2] <= page.width - sheets.MARGIN
        _check_attachment(page, template, top)


def test_layout_1_is_frozen_where_its_sheets_were_printed() -> None:
    """docs/format.md §13.2's worked example: progress@1 for C-0042 on 2026-12-01 (top 583)."""
    placed, writing = templates.layout(templates.load_all()["progress@1"], 583, sheets.MARGIN)
    assert [(b.key, b.x, b.y) for b in placed[:3]] == [
        ("risk.si_denied", 530, 583),
        ("risk.si_present", 1250, 583),
        ("risk.safety_plan", 1970, 583),
    ]
    assert [b.y for b in placed[::3]] == [583, 773, 963, 1153]
    assert writing == 1363
    placed, _ = templates.layout(templates.load_all()["risk@1"], 583, sheets.MARGIN)
    assert {(b.x, b.y) for b in placed} == {(530 + 720 * c, 583 + 190 * g) for c in range(3) for g in range(3)}


def test_layout_2_boxes_are_placed_by_the_documented_numbers() -> None:
    placed, writing = templates.layout(templates.latest("progress"), 583, sheets.MARGIN)
    assert {(b.x, b.y) for b in placed} == {(580 + 630 * c, 583 + 190 * g) for c in range(3) for g in range(4)}
    assert writing == 1153 + templates.BOX + 100


def test_sheets_have_more_writing_lines_than_before() -> None:
    old, _ = sheet(templates.load_all()["progress@1"])
    new, _ = sheet(templates.latest("progress"))
    assert ruled_lines(old) == 14
    assert ruled_lines(new) >= 16
    assert ruled_lines(sheet(None)[0]) >= 25  # a plain sheet had 24 on letter
    assert ruled_lines(sheet(None, fields=())[0]) > ruled_lines(sheet(None)[0])  # no signature line: ruled lower
    assert ruled_lines(sheet(templates.latest("progress"), "a4")[0]) > ruled_lines(new)  # A4 is longer
    assert ruled_lines(sheet(templates.latest("risk"))[0]) >= 16  # 8 formulation lines and notes below


def test_write_in_fields_are_printed_only_when_asked() -> None:
    everything, _ = sheet(None)
    nothing, _ = sheet(None, fields=())
    signature_band = (
        0,
        everything.height - sheets.MARGIN - 130,
        everything.width,
        everything.height - sheets.MARGIN - 60,
    )
    header_band = (sheets.MARGIN + 780, sheets.MARGIN + 60, sheets.QR_LEFT, sheets.MARGIN + 130)  # Time / Length
    assert ink(everything).crop(signature_band).getbbox() is not None
    assert ink(everything).crop(header_band).getbbox() is not None
    assert ink(nothing).crop(header_band).getbbox() is None
    continuation, _ = sheet(None, n=2)
    assert ink(continuation).crop(header_band).getbbox() is None  # time and length: on the first sheet only
    assert ink(continuation).crop(signature_band).getbbox() is not None  # a signature on every sheet
    with pytest.raises(ValueError, match="unknown sheet field"):
        sheet(None, fields=("date",))


def test_a_sheet_cannot_print_boxes_its_code_does_not_name() -> None:
    info = sheets.SheetInfo(ARCHIVE8, "C-1", None, "progress", 1, None)
    with pytest.raises(ValueError, match="template"):
        sheets.render_sheet(info, KEY, template=templates.latest("progress"))
    with pytest.raises(ValueError, match="template"):
        sheets.render_sheet(sheets.SheetInfo(ARCHIVE8, "C-1", None, "progress", 1, "progress@2"), KEY)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("layout = 3\n", "layout must be 1 or 2"),
        ('[[sections]]\nlabel = "A"\nfill = true\n[[sections]]\nlabel = "B"\nlines = 2\n', "last section"),
        ('[[sections]]\nlabel = "A"\nlines = -1\n', "negative"),
        ('[[sections]]\nlabel = "A"\nfill = "yes"\n', "true or false"),
    ],
)
def test_template_files_with_a_bad_layout_or_section_are_refused(tmp_path: Path, text: str, message: str) -> None:
    layout = "" if text.startswith("layout") else "layout = 2\n"
    (tmp_path / "x@1.toml").write_text(f'id = "x"\nversion = 1\ntitle = "X"\n{layout}{text}')
    with pytest.raises(ConfigError, match=message):
        templates.load_all(tmp_path)


def test_fill_needs_layout_2(tmp_path: Path) -> None:
    (tmp_path / "x@1.toml").write_text('id = "x"\nversion = 1\ntitle = "X"\n[[sections]]\nlabel = "A"\nfill = true\n')
    with pytest.raises(ConfigError, match="layout 2"):
        templates.load_all(tmp_path)


# --- the command line ------------------------------------------------------------------


def _sheets_parser() -> argparse.ArgumentParser:
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction) and "sheets" in action.choices:
            parser: argparse.ArgumentParser = action.choices["sheets"]
            return parser
    raise AssertionError("no sheets verb")


def test_every_sheets_flag_has_help_text() -> None:
    parser = _sheets_parser()
    missing = ["/".join(a.option_strings) or a.dest for a in parser._actions if not a.help or a.help == "==SUPPRESS=="]
    assert missing == []


def test_sheets_keys_lists_every_key_with_its_label_without_an_archive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = cli(capsys, "--archive", tmp_path / "no-archive-here", "sheets", "keys")
    assert run.code == 0, run.err
    for token, template in templates.load_all().items():
        for _, boxes in template.groups:
            for box in boxes:
                line = next((ln for ln in run.out.splitlines() if ln.split()[:1] == [box.key]), None)
                assert line is not None, f"{box.key} of {token} not listed"
                assert box.label in line and token in line
    assert not (tmp_path / "no-archive-here").exists()


def test_sheets_keys_and_printing_do_not_mix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = cli(capsys, "sheets", "keys", "--client", "C-1")
    assert run.code == 2 and "--client" in run.err
    run = cli(capsys, "--archive", tmp_path, "sheets", "--date", "2026-12-01", "-o", tmp_path / "x.pdf")
    assert run.code == 2 and "--client is needed" in run.err
    run = cli(capsys, "--archive", tmp_path, "sheets", "--client", "C-1", "-o", tmp_path / "x.pdf")
    assert run.code == 2 and "--undated" in run.err
    run = cli(capsys, "--archive", tmp_path, "sheets", "--client", "C-1", "--undated")
    assert run.code == 2 and "-o FILE.pdf" in run.err
    with pytest.raises(SystemExit) as exit_:
        cli(capsys, "sheets", "--client", "C-1", "--undated", "--fields", "time,colour", "-o", tmp_path / "x.pdf")
    assert exit_.value.code == 2 and "time, length, signature" in capsys.readouterr().err
    assert not (tmp_path / "x.pdf").exists()


# --- reading the new sheets, and the old ones -----------------------------------------------


def _pdf_pages(path: Path, tmp_path: Path) -> list[Image.Image]:
    subprocess.run(["pdftoppm", "-r", "300", "-gray", "-png", str(path), str(tmp_path / "pg")], check=True)
    files = sorted(tmp_path.glob("pg-*.png"))
    pages = [Image.open(p).convert("L") for p in files]
    for p in files:
        p.unlink()
    return pages


def _tick(page: Image.Image, template: templates.Template, top: int, plan: dict[str, str], seed: int) -> Image.Image:
    page = page.convert("L")
    draw = ImageDraw.Draw(page)
    rng = random.Random(seed)
    for box in templates.layout(template, top, sheets.MARGIN)[0]:
        synth.draw_mark(draw, box.x, box.y, templates.BOX, plan[box.key], rng)
    return page


def _scanned(pages: list[Image.Image], path: Path, rotate: float = 0.7) -> Path:
    rng = random.Random(3)
    scans = [
        p.rotate(rotate, expand=True, fillcolor=255).point(lambda v: max(0, min(255, v + rng.randint(-5, 5))))
        for p in pages
    ]
    scans[0].save(path, save_all=True, append_images=scans[1:], compression="tiff_lzw", dpi=(300, 300))
    return path


@pytest.mark.parametrize(("name", "dpi", "rotate"), [("progress", 300, 1.5), ("risk", 200, 180.4)])
def test_the_reader_finds_every_box_of_a_new_sheet(name: str, dpi: int, rotate: float) -> None:
    """The reader's own calls (as ingest makes them) on a ticked, turned, resampled layout-2 sheet."""
    template = templates.latest(name)
    page, top = sheet(template)
    marks = [*synth.MARKS, "none", "none"]
    plan = {key: marks[i % len(marks)] for i, key in enumerate(template.keys)}
    image = _tick(page, template, top, plan, seed=dpi)
    image = image.resize((image.width * dpi // 300, image.height * dpi // 300)).rotate(
        rotate, expand=True, fillcolor=255
    )
    code = sheets.read_page_code(image, KEY, ARCHIVE8)
    assert code.status is sheets.QrStatus.VALID and code.sheet is not None and code.sheet.template == template.token
    x, y, side = sheets.qr_geometry(code.text)
    frame = templates.Frame((x, y), side, *code.corners)
    read = {
        r.key: r.state
        for r in templates.read_boxes(image, template, frame, sheets.content_top(code.text), sheets.MARGIN)
    }
    for key, mark in plan.items():
        expected = templates.EMPTY if mark == "none" else templates.TICKED
        allowed = (expected,) if mark == "none" else (expected, templates.UNCLEAR)  # the label never clouds a box
        assert read[key] in allowed, f"{key}: {mark} read as {read[key]}"
    assert sum(1 for v in read.values() if v == templates.UNCLEAR) <= 1, read


def _pages_read(archive: Path, passphrase_file: Path, record: str) -> list[dict[str, str]]:
    with Archive(archive) as a:
        identity = a.unlock(passphrase_file.read_text().strip())
        return [page.boxes for page in a.ocr_pages(identity, a.catalog.record(record))]


@pytest.mark.slow
def test_a_new_sheet_and_its_plain_continuation_are_read_as_one_note(
    archive_dir: Path, passphrase_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sheets.pdf"
    args: list[str | Path] = [
        "--client",
        "C-11",
        "--date",
        "2026-12-02",
        "--template",
        "progress",
        "--count",
        "2",
        "-o",
        out,
    ]
    run = cli(capsys, "--archive", archive_dir, "sheets", *args)
    assert run.code == 0, run.err
    first, continuation = _pdf_pages(out, tmp_path)
    code = sheets.read_page_code(first, b"", "")
    assert code.text.split("|")[5] == "progress@2"
    assert sheets.read_page_code(continuation, b"", "").text.split("|")[4:6] == ["2", "-"]  # no template
    template = templates.latest("progress")
    marks = ["check", "cross", "filled", "none"]
    plan = {key: marks[i % len(marks)] for i, key in enumerate(template.keys)}
    stack = _scanned([_tick(first, template, sheets.content_top(code.text), plan, 5), continuation], tmp_path / "s.tif")
    run = cli(capsys, "--archive", archive_dir, "ingest", stack, "--json")
    assert run.code == 0, run.err
    (record,) = record_ids_from_json(run.out)
    first_read, continuation_read = _pages_read(archive_dir, passphrase_file, record)
    assert first_read == {k: ("empty" if m == "none" else "ticked") for k, m in plan.items()}
    assert continuation_read == {}


@pytest.mark.slow
@pytest.mark.parametrize("token", ["progress@1", "risk@1"])
def test_old_layout_1_sheets_still_read_with_version_2_installed(
    token: str, archive_dir: Path, passphrase_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A sheet printed before the upgrade (continuation sheets then carried the boxes too) scanned after it."""
    with Archive(archive_dir) as archive:
        key, archive8 = archive.catalog.sheet_key(), archive.config.archive8
    old = templates.load_all()[token]
    assert old.layout == 1 and templates.latest(old.id).version > old.version
    pages = []
    plans = []
    for n in (1, 2):
        info = sheets.SheetInfo(archive8, "C-12", "2026-11-02", "progress", n, token)
        plan = {k: ("check" if (i + n) % 3 == 0 else "none") for i, k in enumerate(old.keys)}
        page = sheets.render_sheet(info, key, template=old)
        pages.append(_tick(page, old, sheets.content_top(sheets.encode(info, key)), plan, n))
        plans.append({k: ("ticked" if m == "check" else "empty") for k, m in plan.items()})
    run = cli(capsys, "--archive", archive_dir, "ingest", _scanned(pages, tmp_path / "old.tif", -0.5), "--json")
    assert run.code == 0, run.err
    (record,) = record_ids_from_json(run.out)
    assert _pages_read(archive_dir, passphrase_file, record) == plans


def test_a_copied_template_folder_keeps_reading_layout_1(tmp_path: Path) -> None:
    """Copying the shipped files elsewhere changes nothing: the layout is in the file, not the folder."""
    for name in ("progress@1.toml", "progress@2.toml"):
        shutil.copy(templates.FOLDER / name, tmp_path / name)
    loaded = templates.load_all(tmp_path)
    assert loaded["progress@1"].layout == 1 and loaded["progress@2"].layout == 2
    assert loaded["progress@1"].keys == loaded["progress@2"].keys


@pytest.mark.parametrize("paper", PAPERS)
def test_sheet_pdf_pages_match_the_rendered_sheets(paper: str, tmp_path: Path) -> None:
    """What the margin test measures is what the PDF holds at 300 dpi (to a pixel: A4 is 11.69 in)."""
    page, _ = sheet(templates.latest("risk"), paper)
    out = tmp_path / "one.pdf"
    out.write_bytes(sheets.sheets_pdf([page]))
    (printed,) = _pdf_pages(out, tmp_path)
    assert printed.width == page.width and abs(printed.height - page.height) <= 1
    measured = ImageOps.invert(printed).point(lambda v: 255 if v > 127 else 0).getbbox()
    rendered = ink(page).getbbox()
    assert measured is not None and rendered is not None
    assert all(abs(a - b) <= 1 for a, b in zip(measured, rendered, strict=True)), (measured, rendered)


def test_the_attachment_measure_catches_the_old_layouts_row_headings() -> None:
    """risk@1's "Suicidal ideation" ends about as near the first box as that box's own label starts."""
    old = templates.load_all()["risk@1"]
    page, top = sheet(old)
    with pytest.raises(AssertionError, match="heading as near a box as a label"):
        _check_attachment(page, old, top)
