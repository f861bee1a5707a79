"""The OCR ensemble: merging two engines' words, preprocessing, and the second engine being optional."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from scanarchive.archive.query import Term, Vocabulary, expand
from scanarchive.ocr import merge, prepare, rapidocr, tesseract
from scanarchive.ocr.document import PageText, Word, from_json, to_json
from scanarchive.ocr.rapidocr import Line
from tests.kits.helpers import cli_process, render_note


def identity(box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    return (round(box[0]), round(box[1]), round(box[2]), round(box[3]))


def test_agreeing_words_are_confirmed_not_repeated() -> None:
    tess = [Word("Slept", 60.0, (0, 0, 100, 30), (1, 1, 1)), Word("better,", 70.0, (110, 0, 120, 30), (1, 1, 1))]
    rapid = [Line("slept better", 0.9, (0, 0, 230, 30))]
    merged = merge.merge(tess, rapid, identity)
    assert [w.text for w in merged] == ["Slept", "better,"]
    assert [w.source for w in merged] == ["tr", "tr"]
    assert merged[0].conf == 96.0  # 1 - (1 - 0.6)(1 - 0.9)
    assert merged[1].conf == 97.0


def test_a_line_with_a_new_word_is_added_whole_as_its_own_line() -> None:
    tess = [Word("felt", 80.0, (0, 0, 60, 30), (1, 1, 1)), Word("anxlous", 30.0, (70, 0, 110, 30), (1, 1, 1))]
    rapid = [Line("felt anxious", 0.8, (0, 0, 180, 30)), Line("at work", 0.7, (0, 50, 100, 80))]
    merged = merge.merge(tess, rapid, identity)
    assert [w.text for w in merged] == ["felt", "anxlous", "felt", "anxious", "at", "work"]
    assert [w.source for w in merged] == ["tr", "t", "r", "r", "r", "r"]
    page = PageText(1, "ok", words=merged)
    assert page.text.splitlines() == ["felt anxlous", "felt anxious", "at work"], "a phrase matches either reading"


def test_overlap_decides_agreement_and_scripts_the_notes_are_not_in_are_dropped() -> None:
    tess = [Word("calm", 80.0, (0, 0, 60, 30), (1, 1, 1))]
    rapid = [Line("calm", 0.9, (0, 300, 60, 330)), Line("中文 calm", 0.9, (0, 0, 60, 30))]
    merged = merge.merge(tess, rapid, identity)
    assert [(w.text, w.source) for w in merged] == [("calm", "tr"), ("calm", "r")], "same word elsewhere is new"


def test_rapid_boxes_are_mapped_to_page_pixels() -> None:
    prepared = prepare.Prepared(b"", left=100, top=50, scale=0.5)
    merged = merge.merge([], [Line("hello", 0.5, (10, 20, 60, 40))], prepared.to_page)
    assert merged[0].box == (120, 90, 100, 40)


def test_the_ocr_document_keeps_sources_and_reads_version_1() -> None:
    page = PageText(1, "ok", "", "tesseract 5 + rapidocr 1.4.4", [Word("calm", 90.0, (1, 2, 3, 4), (1, 1, 1), "tr")])
    assert from_json(to_json([page], ["x"]))[0].words[0].source == "tr"
    v1 = {
        "format": "scanarchive-ocr",
        "version": 1,
        "engines": [],
        "pages": [
            {"page": 1, "status": "ok", "reason": "", "engine": "t", "words": [["calm", 91.5, 10, 20, 80, 30, 1, 1, 1]]}
        ],
    }
    (old,) = from_json(json.dumps(v1).encode())
    assert old.words[0].source == "t" and old.words[0].box == (10, 20, 80, 30)


def test_prepare_crops_to_the_writing_and_halves_300_dpi() -> None:
    image = Image.new("L", (2550, 1650), 255)
    draw = ImageDraw.Draw(image)
    draw.rectangle((600, 400, 1400, 700), fill=0)
    for x in range(0, 2550, 97):  # scanner speckle: single dark pixels
        image.putpixel((x, (x * 7) % 1650), 0)
    out = io.BytesIO()
    image.save(out, format="PNG", dpi=(300, 300))
    prepared = prepare.for_ocr(out.getvalue())
    small = Image.open(io.BytesIO(prepared.png))
    assert abs(prepared.scale - 0.5) < 0.01
    assert 560 <= prepared.left <= 600 and 360 <= prepared.top <= 400, "a 0.1 in margin, speckle ignored"
    assert abs(small.width - (1400 - 600 + 2 * 30) / 2) <= 6 and abs(small.height - (700 - 400 + 2 * 30) / 2) <= 6
    assert prepared.to_page((0, 0, small.width, small.height))[:2] == (prepared.left, prepared.top)


def test_prepare_leaves_a_blank_page_alone() -> None:
    out = io.BytesIO()
    Image.new("L", (850, 550), 255).save(out, format="PNG", dpi=(100, 100))
    assert prepare.for_ocr(out.getvalue()).empty


def test_without_the_optional_engine_ingest_and_search_still_work(tmp_path: Path, passphrase_file: Path) -> None:
    """RapidOCR made uninstalled (unfindable and unimportable) in every process of this test."""
    env = {"SCANARCHIVE_TEST_UNINSTALL": "rapidocr_onnxruntime"}
    archive = tmp_path / "archive"
    init = cli_process(
        "--archive", archive, "init", "--passphrase-file", passphrase_file, "--kdf-seconds", "0.01", env=env
    )
    assert init.code == 0, init.err
    image, lines = render_note(seed=77, noise=0, sentences=2, height_in=3)
    src = tmp_path / "note.png"
    image.save(src, dpi=(300, 300))

    status = cli_process("--archive", archive, "status", env=env)
    assert status.code == 0 and "rapidocr is configured but not installed" in status.out
    assert "fewer handwritten words will be found" in status.out
    doc = json.loads(cli_process("--archive", archive, "status", "--json", env=env).out)
    assert doc["ocr_recall_reduced"] is True and doc["ocr_engines"] == ["tesseract"]

    run = cli_process("--archive", archive, "ingest", src, env=env)
    assert run.code == 0, run.err
    assert "fewer handwritten words will be found" in run.err, "the ingest says so too"
    word = max((w for w in lines[0].split() if w.isalpha()), key=len).lower()
    found = cli_process("--archive", archive, "search", word, "--json", "--passphrase-file", passphrase_file, env=env)
    assert found.code == 0 and json.loads(found.out)["count"] == 1

    with_engine = json.loads(cli_process("--archive", archive, "status", "--json").out)
    assert with_engine["ocr_recall_reduced"] is False and with_engine["ocr_engines"] == ["tesseract", "rapidocr"]


def test_a_dictionary_word_expands_to_misreadings_only_and_a_typo_to_real_words() -> None:
    vocabulary = Vocabulary.of(
        {"planking": 5, "blanking": 1, "blankinq": 1, "anxiety": 3, "anxicty": 1},
        known={"planking", "blanking", "anxiety"},
    )
    assert expand(Term("blanking"), vocabulary) == ["blanking", "blankinq"], "'planking' is another word"
    assert set(expand(Term("anxiety"), vocabulary)) == {"anxiety", "anxicty"}
    assert "anxiety" in expand(Term("anxeity"), vocabulary), "a typo still reaches the word meant"
    assert "planking" in expand(Term("blanking"), Vocabulary.of({"planking": 5, "blanking": 1})), "no dictionary"


def test_the_dictionary_is_tesseracts_own() -> None:
    words = tesseract.dictionary("eng")
    assert {"anxiety", "planning", "session"} <= words
    assert not {"benavicral", "anxeity"} & words


def test_a_worker_is_replaced_after_its_share_of_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its memory grows with every page shape it sees; a fresh worker starts from its models again."""
    monkeypatch.setattr(rapidocr, "PAGES_PER_WORKER", 2)
    image, _ = render_note(seed=5, noise=0, sentences=1, height_in=2)
    out = io.BytesIO()
    image.convert("L").reduce(2).save(out, format="PNG")
    pool = rapidocr.Pool(1)
    try:
        lines = [pool.recognise(out.getvalue(), 120) for _ in range(3)]
        assert all(lines), "each page was read"
        assert len(pool._free) == 1 and pool._free[0].pages == 1, "the third page went to a new worker"
    finally:
        pool.close()
