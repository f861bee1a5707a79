"""Tick boxes on note sheets: read reliably, never wrongly; searchable as facts; versioned templates."""

from __future__ import annotations

import io
import json
import random
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from scanarchive.archive.layout import Archive
from scanarchive.demo import synth
from scanarchive.pages import sheets, templates
from tests.kits.helpers import cli, print_sheet, record_ids_from_json


def _tick(
    page: Image.Image, template: templates.Template, text_top: int, plan: dict[str, str], seed: int
) -> Image.Image:
    page = page.copy()
    draw = ImageDraw.Draw(page)
    placed, _ = templates.layout(template, text_top, sheets.MARGIN)
    rng = random.Random(seed)
    for box in placed:
        synth.draw_mark(draw, box.x, box.y, templates.BOX, plan[box.key], rng)
    return page


def _scan(page: Image.Image, dpi: int, rotate: float, seed: int) -> bytes:
    image = page.resize((page.width * dpi // 300, page.height * dpi // 300))
    if rotate:
        image = image.rotate(rotate, expand=True, fillcolor=255)
    rng = random.Random(seed)
    image = image.point(lambda v: max(0, min(255, v + rng.randint(-6, 6))))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=80, dpi=(dpi, dpi))
    return out.getvalue()


def _boxes(archive: Path, passphrase_file: Path, record: str) -> dict[str, str]:
    with Archive(archive) as a:
        identity = a.unlock(passphrase_file.read_text().strip())
        (page,) = a.ocr_pages(identity, a.catalog.record(record))
    return page.boxes


@pytest.mark.slow
@pytest.mark.parametrize("name", ["progress", "risk"])
def test_every_box_is_read_right_or_reported_unclear_never_wrong(
    name: str, archive_dir: Path, passphrase_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    template = templates.latest(name)
    page = print_sheet(archive_dir, tmp_path, capsys, "--client", "C-5", "--date", "2026-11-20", "--template", name)
    kinds = [*synth.MARKS, synth.NOT_A_TICK, "none", "none"]
    counts = {"right": 0, "unclear": 0}
    for variant, (dpi, rotate) in enumerate([(300, 0.0), (300, 2.8), (200, -1.5), (300, 180.0), (200, 180.0)]):
        plan = {key: kinds[(i + variant) % len(kinds)] for i, key in enumerate(template.keys)}
        code = sheets.read_page_code(page, b"", "")  # the printed text: its layout top is needed to tick
        top = sheets.content_top(code.text)
        path = tmp_path / f"{name}-{variant}.jpg"
        path.write_bytes(_scan(_tick(page, template, top, plan, seed=variant), dpi, rotate, seed=variant))
        run = cli(capsys, "--archive", archive_dir, "ingest", path, "--json")
        assert run.code == 0, run.err
        read = _boxes(archive_dir, passphrase_file, record_ids_from_json(run.out)[0])
        assert set(read) == set(template.keys)
        for key, mark in plan.items():
            expected = "empty" if mark == "none" else "ticked"
            if mark == synth.NOT_A_TICK:
                assert read[key] != "ticked", f"{key}: a stray line read as a tick ({dpi} dpi, {rotate}°)"
                continue
            assert read[key] in (expected, "unclear"), f"{key}: {mark} read as {read[key]} ({dpi} dpi, {rotate}°)"
            counts["right" if read[key] == expected else "unclear"] += 1
        if any(v == "unclear" for v in read.values()):
            assert "tick box(es) unclear" in run.out
    assert counts["unclear"] <= counts["right"] // 10, counts


def test_an_old_sheet_reads_by_its_own_template_version(
    archive_dir: Path,
    passphrase_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = tmp_path / "sheets"
    folder.mkdir()
    shutil.copy(templates.FOLDER / "progress@1.toml", folder / "progress@1.toml")
    monkeypatch.setattr(templates, "FOLDER", folder)
    v1 = templates.latest("progress")
    page = print_sheet(
        archive_dir, tmp_path, capsys, "--client", "C-6", "--date", "2026-11-21", "--template", "progress"
    )
    # the practice changes the sheet: a new group at the top moves every box down
    text = (folder / "progress@1.toml").read_text().replace("version = 1", "version = 2")
    text = text.replace(
        "[[groups]]",
        '[[groups]]\nlabel = "Attendance"\nboxes = [ { key = "attend.late", label = "Late" } ]\n\n[[groups]]',
        1,
    )
    (folder / "progress@2.toml").write_text(text)
    assert templates.latest("progress").version == 2
    plan = {key: ("check" if i % 2 else "none") for i, key in enumerate(v1.keys)}
    top = sheets.content_top(sheets.read_page_code(page, b"", "").text)
    path = tmp_path / "old.jpg"
    path.write_bytes(_scan(_tick(page, v1, top, plan, seed=1), 300, 0.5, seed=1))
    run = cli(capsys, "--archive", archive_dir, "ingest", path, "--json")
    assert run.code == 0, run.err
    read = _boxes(archive_dir, passphrase_file, record_ids_from_json(run.out)[0])
    assert set(read) == set(v1.keys), "read with version 1's boxes"
    assert {k: ("ticked" if v == "check" else "empty") for k, v in plan.items()} == read


@pytest.mark.slow
def test_search_by_ticked_box_returns_exactly_those_records(
    archive_dir: Path, passphrase_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    template = templates.latest("progress")
    ids: dict[str, set[str]] = {}
    for n, ticked in enumerate([{"topic.sleep", "risk.si_denied"}, {"topic.sleep"}, {"topic.work"}]):
        page = print_sheet(
            archive_dir, tmp_path, capsys, "--client", f"C-{n}", "--date", f"2026-10-0{n + 1}", "--template", "progress"
        )
        top = sheets.content_top(sheets.read_page_code(page, b"", "").text)
        plan = {k: ("cross" if k in ticked else "none") for k in template.keys}
        path = tmp_path / f"s{n}.jpg"
        path.write_bytes(_scan(_tick(page, template, top, plan, seed=n), 300, 0.0, seed=n))
        run = cli(capsys, "--archive", archive_dir, "ingest", path, "--json")
        assert run.code == 0, run.err
        ids[record_ids_from_json(run.out)[0]] = ticked

    def found(*args: str) -> set[str]:
        run = cli(capsys, "--archive", archive_dir, "search", *args, "--json", "--passphrase-file", passphrase_file)
        assert run.code == 0, run.err
        return {r["record_id"] for r in json.loads(run.out)["results"]}

    assert found("--has", "topic.sleep") == {r for r, t in ids.items() if "topic.sleep" in t}
    assert found("--has", "topic.sleep", "--has", "risk.si_denied") == {r for r, t in ids.items() if len(t) == 2}
    assert found("--has", "topic.work", "--client", "C-2") == {r for r, t in ids.items() if "topic.work" in t}
    assert found("--has", "topic.family") == set()
    assert found("progress", "--has", "topic.sleep") == set(), "the printed title is never indexed (issue 19)"


def test_marks_too_faint_or_wide_to_call_are_never_read_as_empty() -> None:
    template = templates.latest("progress")
    info = sheets.SheetInfo("0badc0de", "C-9", "2026-11-27", "progress", 1, template.token)
    key = b"k" * 32
    page = sheets.render_sheet(info, key, template=template).convert("L")
    top = sheets.content_top(sheets.encode(info, key))
    placed, _ = templates.layout(template, top, sheets.MARGIN)
    draw = ImageDraw.Draw(page)
    faint, wide, blank = placed[0], placed[1], placed[2]
    draw.line(
        [(faint.x + 12, faint.y + 34), (faint.x + 28, faint.y + 52), (faint.x + 58, faint.y + 8)], fill=215, width=5
    )  # a barely-there pencil tick
    draw.ellipse(
        (wide.x - 48, wide.y - 48, wide.x + templates.BOX + 48, wide.y + templates.BOX + 48), outline=40, width=5
    )  # a circle drawn well away from the box
    code = sheets.read_page_code(page, key, "0badc0de")
    x, y, side = sheets.qr_geometry(code.text)
    frame = templates.Frame((x, y), side, *code.corners)
    read = {r.key: r.state for r in templates.read_boxes(page, template, frame, top, sheets.MARGIN)}
    assert read[faint.key] == templates.UNCLEAR
    assert read[wide.key] in (templates.TICKED, templates.UNCLEAR)
    assert read[blank.key] == templates.EMPTY


def test_ticked_boxes_never_appear_in_plaintext_anywhere(
    archive_dir: Path,
    passphrase_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    private_tmp: Path,
) -> None:
    """Box states are clinical content: not in the catalog, logs, certificates or temp files."""
    from tests.kits.helpers import find_plaintext

    template = templates.latest("risk")
    page = print_sheet(archive_dir, tmp_path, capsys, "--client", "C-7", "--date", "2026-11-22", "--template", "risk")
    top = sheets.content_top(sheets.read_page_code(page, b"", "").text)
    plan = {k: "check" for k in template.keys}
    path = tmp_path / "risk.jpg"
    path.write_bytes(_scan(_tick(page, template, top, plan, seed=4), 300, 1.0, seed=4))
    logs = ""
    run = cli(capsys, "-v", "--archive", archive_dir, "ingest", path)
    assert run.code == 0, run.err
    logs += run.err
    run = cli(
        capsys,
        "-v",
        "--archive",
        archive_dir,
        "search",
        "--has",
        "risk.si_active",
        "--json",
        "--passphrase-file",
        passphrase_file,
    )
    assert run.code == 0 and json.loads(run.out)["count"] == 1
    logs += run.err
    keys = {k.lower() for k in template.keys}
    assert find_plaintext([archive_dir, private_tmp], keys, extra_text=logs) == []
