"""More than the first guess: a word's other likely readings are kept in the sealed OCR document and searchable,
ranked below first readings, and never shown as the page's text."""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from scanarchive import reading
from scanarchive.archive.index import IndexRecord, SearchIndex
from scanarchive.archive.layout import Archive
from scanarchive.errors import IntegrityError
from scanarchive.ingest import pipeline
from scanarchive.ocr import document, engine, merge, rapid_worker, rapidocr
from scanarchive.ocr.document import PageText, Word, from_json, to_json
from scanarchive.ocr.rapidocr import Line
from tests.kits.helpers import find_plaintext, render_note

CHARACTERS = ["blank", "c", "a", "o", "t", "d", "g", " "]
BLANK = 0


def frames(*rows: dict[str, float]) -> Any:
    """A [T, classes] probability matrix: each row's named characters, the rest of its mass on the blank."""
    np = pytest.importorskip("numpy")  # comes with RapidOCR, which the worker needs anyway
    out = np.zeros((len(rows), len(CHARACTERS)), dtype=np.float32)
    for t, row in enumerate(rows):
        for char, p in row.items():
            out[t, CHARACTERS.index(char)] = p
        out[t, BLANK] = 1.0 - sum(row.values())
    return out


def sure(char: str) -> dict[str, float]:
    return {char: 1.0} if char != "blank" else {}


def identity(box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    return (round(box[0]), round(box[1]), round(box[2]), round(box[3]))


# --- the worker's beam search ---------------------------------------------------------------------------


def test_beam_sums_the_paths_that_spell_a_reading() -> None:
    half = frames({"a": 0.5}, {"a": 0.5})
    found = dict(rapid_worker._beam(half, [[(2, 0.5)], [(2, 0.5)]], BLANK))
    # "a": a-a, a-blank, blank-a = 0.75; "": blank-blank = 0.25; "aa" needs a blank in between
    assert found[()] / found[(2,)] == pytest.approx(0.25 / 0.75)
    assert (2, 2) not in found


def test_a_doubtful_letter_gives_the_other_reading_with_its_probability() -> None:
    probs = frames(
        sure("c"), {"a": 0.6, "o": 0.35}, sure("t"), sure(" "), sure("d"), sure("o"), sure("blank"), sure("g")
    )
    readings = rapid_worker.word_readings(probs, CHARACTERS, "cat dog")
    assert len(readings) == 2, "one list per word of the line"
    assert [text for text, _ in readings[0]] == ["cot", "ct"], "likeliest first; 'ct': the blank's 0.05"
    assert readings[0][0][1] == pytest.approx(0.35), "its share of the word's beam (cat 0.6, cot 0.35, ct 0.05)"
    assert readings[1] == [], "a word read with certainty has no other reading"


def test_readings_of_another_decoder_are_not_guessed() -> None:
    probs = frames(sure("c"), {"a": 0.6, "o": 0.35}, sure("t"))
    assert rapid_worker.word_readings(probs, CHARACTERS, "cut") == []
    assert rapid_worker.word_readings(probs, CHARACTERS[:-1], "cat") == [], "classes do not fit the matrix"


def test_an_uncertain_space_inside_a_word_can_split_it() -> None:
    probs = frames(sure("c"), sure("a"), {" ": 0.4, "t": 0.55}, sure("d"), sure("o"))
    readings = rapid_worker.word_readings(probs, CHARACTERS, "catdo")
    assert readings[0][0][0] == "ca do"


# --- which readings are kept ----------------------------------------------------------------------------


def test_only_readings_worth_searching_are_kept() -> None:
    readings = [
        ("Dernier", 0.3),  # the first reading but for case: not another reading
        ("derniers", 0.2),
        ("dermer,", 0.1),
        ("dermer", 0.05),  # the same as the one before for search: probabilities add up
        ("de", 0.2),  # fewer than 3 letters
        ("dorniar", merge.ALTERNATIVE_FLOOR / 2),  # too unlikely
        ("德国", 0.3),
    ]
    kept = merge.worth_keeping("dernier", readings)
    assert [text for text, _ in kept] == ["derniers", "dermer,"]
    assert kept[1][1] == pytest.approx(0.15)
    many = [(f"word{c}", 0.2) for c in "abcdef"]
    assert len(merge.worth_keeping("word", many)) == merge.ALTERNATIVES
    assert merge.worth_keeping("école", [("Ecole.", 0.4)]) == (), "accents and punctuation set aside"


def test_merge_carries_readings_onto_added_and_confirmed_words() -> None:
    tess = [Word("felt", 80.0, (0, 0, 60, 30), (1, 1, 1))]
    rapid = [
        Line("felt anxlous", 0.8, (0, 0, 180, 30), ((("fell", 0.3),), (("anxious", 0.4), ("anxiaus", 0.01)))),
        Line("slept well", 0.7, (0, 50, 100, 80), ((), ())),
    ]
    merged = merge.merge(tess, rapid, identity)
    by_text = {(w.text, w.source): w.alternatives for w in merged}
    assert by_text[("felt", "tr")] == (("fell", 0.3),), "the confirmed Tesseract word gets them"
    assert by_text[("anxlous", "r")] == (("anxious", 0.4),)
    assert by_text[("slept", "r")] == ()
    misfit = [Line("felt anxlous", 0.8, (0, 0, 180, 30), ((("fell", 0.3),),))]
    assert all(not w.alternatives for w in merge.merge([], misfit, identity)), "not one list per word: none"


# --- the sealed OCR document -----------------------------------------------------------------------------


def test_version_3_keeps_the_readings_and_older_versions_still_read() -> None:
    words = [
        Word("derier", 61.0, (1, 2, 3, 4), (10_000, 1, 1), "r", (("dernier", 0.31), ("derrier", 0.12))),
        Word("mot", 90.0, (5, 6, 7, 8), (10_000, 1, 1), "r"),
    ]
    data = to_json([PageText(1, "ok", words=words)], ["rapidocr"])
    doc = json.loads(data)
    assert doc["version"] == document.OCR_VERSION == 3
    assert [len(w) for w in doc["pages"][0]["words"]] == [11, 10], "a word without other readings stays short"
    page = from_json(data)[0]
    assert page.words == words
    assert page.text == "derier mot", "the page's text is the first reading only"
    assert page.alternatives == "dernier derrier"
    for version, row in (
        (1, ["calm", 91.5, 10, 20, 80, 30, 1, 1, 1]),
        (2, ["calm", 91.5, 10, 20, 80, 30, 1, 1, 1, "t"]),
    ):
        old = {
            "format": "scanarchive-ocr",
            "version": version,
            "engines": [],
            "pages": [{"page": 1, "status": "ok", "words": [row]}],
        }
        assert from_json(json.dumps(old).encode())[0].words[0].alternatives == ()
    with pytest.raises(IntegrityError):
        from_json(json.dumps({**doc, "version": 4}).encode())


# --- the index ------------------------------------------------------------------------------------------


def _index(tmp_path: Path, *records: IndexRecord, key: bytes | None = None) -> SearchIndex:
    index = SearchIndex(tmp_path / "index.db", key or os.urandom(32))
    index.begin()
    index.add_records(list(records))
    index.commit()
    return index


def test_other_readings_are_found_below_first_readings_and_never_shown(tmp_path: Path) -> None:
    index = _index(
        tmp_path,
        IndexRecord(1, "misread", "C-1", None, "progress", [(1, "le mois derier il a dit", "dernier derrier")]),
        IndexRecord(2, "read", "C-2", None, "progress", [(1, "le dernier mot", "")]),
        IndexRecord(3, "old", "C-3", None, "progress", [(1, "rien de dernier ici")]),  # no other readings given
    )
    try:
        hits = index.search("dernier")
        assert [h.record_id for h in hits][-1] == "misread", "first readings rank first"
        assert {h.record_id for h in hits} == {"misread", "read", "old"}
        assert hits[-1].snippet == "le mois derier il a dit", "the snippet is the first reading, unmarked"
        assert [h.record_id for h in index.search("dernier", exact=True)][-1] == "misread"
        assert [h.record_id for h in index.search("derrier", exact=True)] == ["misread"]
        assert [h.record_id for h in index.search("dernier", client="C-1")] == ["misread"]
        index.update_terms()
        terms = {str(r[0]) for r in index.db.execute("SELECT term FROM terms")}
        assert "derier" in terms and "derrier" not in terms, "fuzzy search expands to first readings only"
    finally:
        index.close()


def test_an_index_of_the_previous_schema_is_rebuilt(tmp_path: Path) -> None:
    key = os.urandom(32)
    index = _index(tmp_path, IndexRecord(7, "r-1", None, None, "progress", [(1, "mot", "mat")]), key=key)
    assert index.last_seq() == 7
    index.db.execute("UPDATE meta SET value = '3' WHERE key = 'schema'")
    index.close()
    again = SearchIndex(tmp_path / "index.db", key)
    try:
        assert again.last_seq() == 0, "dropped: the next sync adds every record again"
        assert again.search("mat") == []
    finally:
        again.close()


# --- through ingest, sync and search ----------------------------------------------------------------------


def test_an_ingested_note_is_found_by_another_reading_and_it_is_sealed(
    archive_dir: Path, passphrase_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def recognise(number: int, source: engine.PageSource) -> PageText:
        words = [
            Word("Tonight", 90.0, (10, 10, 60, 20), (1, 1, 1)),
            Word("qvacamole", 40.0, (80, 10, 90, 20), (1, 1, 1), "tr", (("guacamole", 0.41), ("qvacamale", 0.2))),
        ]
        return PageText(number, "ok", "", "test", words)

    image, _ = render_note(seed=11, sentences=1, height_in=2.0)
    scan = tmp_path / "scan.png"
    image.save(scan, dpi=(300, 300))
    caplog.set_level(logging.DEBUG)
    with Archive(archive_dir) as archive:
        pipeline.ingest_file(archive, scan, client="C-9", session_date="2026-11-30", recogniser=recognise)
        identity = archive.unlock(passphrase_file.read_text().strip())
        _, hits = reading.search(archive, identity, "guacamole", exact=True)  # not a fuzzy match of "qvacamole"
        assert [h.client_code for h in hits] == ["C-9"]
        assert "guacamole" not in hits[0].snippet and "qvacamole" in hits[0].snippet, "the first reading is shown"
        (record,) = archive.catalog.records()
        (page,) = archive.ocr_pages(identity, record)
        assert page.words[1].alternatives == (("guacamole", 0.41), ("qvacamale", 0.2)), "kept in the sealed document"
    assert find_plaintext([archive_dir], {"guacamole", "qvacamale"}, caplog.text) == []


# --- through the real worker ------------------------------------------------------------------------------


@pytest.mark.skipif(not rapidocr.available(), reason="rapidocr-onnxruntime is not installed")
def test_the_worker_sends_one_list_of_readings_per_word() -> None:
    image = Image.new("L", (900, 160), 255)
    ImageDraw.Draw(image).text((20, 40), "Slept badly most nights", fill=0, font_size=56)
    png = io.BytesIO()
    image.save(png, "PNG")
    pool = rapidocr.Pool(1, rapidocr.custom_models())
    try:
        lines = pool.recognise(png.getvalue(), 120)
    finally:
        pool.close()
    assert lines, "the line is read"
    for line in lines:
        assert len(line.alternatives) == len(line.text.split())
        for readings in line.alternatives:
            assert all(isinstance(t, str) and 0.0 <= p <= 1.0 for t, p in readings)
