"""Fuzzy search: OCR misreadings and typing slips still find the note; --exact does not guess."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scanarchive import synth
from scanarchive.archive import query

from helpers import cli, record_ids


def test_parse_words_prefixes_and_phrases() -> None:
    terms = query.parse('Anxiety insom* "breathing  exercises" -- x')
    assert terms == [
        query.Term("breathing exercises", phrase=True),
        query.Term("anxiety"),
        query.Term("insom", prefix=True),
        query.Term("x"),
    ]


@pytest.mark.parametrize(("word", "distance"), [("cbt", 0), ("grief", 1), ("panic", 1), ("anxiety", 2)])
def test_edit_distance_scales_with_length(word: str, distance: int) -> None:
    assert query.max_distance(word) == distance


def test_expansion_finds_close_words_only() -> None:
    vocabulary = ["anxiety", "anxious", "society", "grief", "brief", "insomnia"]
    assert query.expand(query.Term("anxeity"), vocabulary)[:2] == ["anxeity", "anxiety"]
    assert "society" not in query.expand(query.Term("anxeity"), vocabulary)
    assert query.expand(query.Term("grief"), vocabulary) == ["grief", "brief"]
    assert query.expand(query.Term("cbt"), vocabulary) == ["cbt"], "short words are matched exactly"
    assert query.to_match([query.Term("grief")], None) == '"grief"'
    assert query.to_match([query.Term('gr"ief')], None) == '"grief"', "no FTS5 syntax gets through"


def test_a_misspelled_query_finds_the_note_and_exact_does_not(
    archive_dir: Path, passphrase_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = ["Discussed lingering anxiety about deadlines.", "Practiced paced breathing exercises."]
    src = tmp_path / "note.png"
    synth.render_page(lines, height_in=3.0, seed=3).save(src, dpi=(300, 300))
    run = cli(capsys, "--archive", archive_dir, "ingest", src, "--client", "C-1", "--date", "2026-11-02")
    assert run.code == 0, run.err
    record = record_ids(run.out)[0]

    def found(*args: str) -> list[str]:
        out = cli(capsys, "--archive", archive_dir, "search", *args, "--json", "--passphrase-file", passphrase_file)
        assert out.code == 0, out.err
        return [r["record_id"] for r in json.loads(out.out)["results"]]

    assert found("anxiety") == [record], "the exact word is there (Tesseract reads this font)"
    assert found("anxeity") == [record]
    assert found("anxeity", "--exact") == []
    assert found('"paced breathing"') == [record]
    assert found('"breathing paced"') == [], "a phrase keeps its order"
    assert found("anxeity", "deadlnes") == [record], "every word must match, each fuzzily"
    assert found("anxeity", "zebra") == []
