"""Fuzzy search: OCR misreadings and typing slips still find the note; --exact does not guess."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from scanarchive.archive import index as index_module
from scanarchive.archive import query, sync
from scanarchive.archive.index import IndexRecord, SearchIndex
from scanarchive.archive.layout import Archive
from scanarchive.demo import synth
from tests.kits.helpers import cli, record_ids_from_json


def test_parse_words_prefixes_and_phrases() -> None:
    terms = query.parse('Anxiety insom* "breathing  exercises" -- x')
    assert terms == [
        query.Term("breathing exercises", phrase=True),
        query.Term("anxiety"),
        query.Term("insom", prefix=True),
        query.Term("x"),
    ]


@pytest.mark.parametrize(
    ("word", "distance"),
    [("cbt", 0), ("mood", 0), ("grief", 1), ("anxiety", 1), ("insomnia", 1), ("breathing", 2), ("depression", 2)],
)
def test_edit_distance_scales_with_length(word: str, distance: int) -> None:
    assert query.max_distance(word) == distance


def test_expansion_finds_close_words_only() -> None:
    vocabulary = query.Vocabulary.of(["anxiety", "anxious", "society", "grief", "brief", "insomnia"])
    assert query.expand(query.Term("anxeity"), vocabulary)[:2] == ["anxeity", "anxiety"]
    assert "society" not in query.expand(query.Term("anxeity"), vocabulary)
    assert query.expand(query.Term("insomnai"), vocabulary) == ["insomnai", "insomnia"]
    assert query.expand(query.Term("grief"), vocabulary) == ["grief"], "a short word read right stays exact"
    assert query.expand(query.Term("cbt"), vocabulary) == ["cbt"], "short words are matched exactly"
    assert query.to_match([query.Term("grief")], None) == '"grief"'
    assert query.to_match([query.Term('gr"ief')], None) == '"grief"', "no FTS5 syntax gets through"


def test_short_words_expand_only_when_never_read_right_and_to_one_misreading() -> None:
    counts = {"sleep": 9, "steep": 7, "slaap": 3, "sleet": 2, "sloap": 1, "moad": 5, "mood": 4}
    known = frozenset({"sleep", "steep", "sleet", "mood"})
    vocabulary = query.Vocabulary.of(counts, known)
    assert query.expand(query.Term("mood"), vocabulary) == ["mood"], "4 letters: exact only"
    assert query.expand(query.Term("moud"), vocabulary) == ["moud"], "even when it is not in the index"
    assert query.expand(query.Term("sleep"), vocabulary) == ["sleep"], "in the index: its neighbours are other words"
    # "sleap" was never read right: of its 1-edit neighbours the dictionary words (sleep, sleet) are
    # other words; of the misreadings (slaap, sloap) only the one on the most pages is taken
    assert query.expand(query.Term("sleap"), vocabulary) == ["sleap", "slaap"]
    assert query.expand(query.Term("sleap", prefix=True), vocabulary) == ["sleap"], "a prefix is exact"


def test_a_short_word_read_right_does_not_bring_its_neighbours_pages(tmp_path: Path) -> None:
    index = _index(tmp_path)
    _add(
        index,
        IndexRecord(1, "r-a", "C-1", "2026-01-01", "progress", [(1, "could not sleep")]),
        IndexRecord(2, "r-b", "C-2", "2026-01-02", "progress", [(1, "the sleet came down")]),
        IndexRecord(3, "r-c", "C-3", "2026-01-03", "progress", [(1, "a slecp misread, worried")]),
        IndexRecord(4, "r-d", "C-4", "2026-01-04", "progress", [(1, "worricd about work")]),
    )
    assert [h.record_id for h in index.search("sleep")] == ["r-a"], "sleet and slecp are not sleep"
    assert [h.record_id for h in index.search("worried")] == ["r-c", "r-d"], "7 letters: exact, then fuzzy"
    index.close()


def test_a_misspelled_query_finds_the_note_and_exact_does_not(
    archive_dir: Path, passphrase_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = ["Discussed lingering anxiety about deadlines.", "Practiced paced breathing exercises."]
    src = tmp_path / "note.png"
    synth.render_page(lines, height_in=3.0, seed=3).save(src, dpi=(300, 300))
    run = cli(capsys, "--archive", archive_dir, "ingest", src, "--client", "C-1", "--date", "2026-11-02", "--json")
    assert run.code == 0, run.err
    record = record_ids_from_json(run.out)[0]

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

    # an index left by another version of scanarchive is rebuilt from the sealed records
    with Archive(archive_dir) as archive:
        index = sync.open_index(archive, archive.unlock(passphrase_file.read_text().strip()))
        index.db.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")
        index.close()
    assert found("anxeity") == [record]


def test_expansion_takes_the_words_on_most_pages_and_reads_only_the_tiers_it_needs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counts = {"anxiety": 900, "anxicty": 70, "anxiefy": 20, "anxiely": 1, "anxlety": 1, "calm": 400}
    loaded: list[int] = []

    def load(lo: int, hi: int | None) -> list[str]:
        loaded.append(lo)
        return [w for w, n in counts.items() if n >= lo and (hi is None or n < hi)]

    vocabulary = query.Vocabulary(load, lambda words: {w: counts[w] for w in words})
    monkeypatch.setattr(query, "MAX_EXPANSIONS", 1)
    assert query.expand(query.Term("anxiety"), vocabulary) == ["anxiety", "anxicty"]
    assert loaded == [64], "it was on >= 64 pages: the rarer words were never read"
    monkeypatch.setattr(query, "MAX_EXPANSIONS", 2)
    assert query.expand(query.Term("anxiety"), vocabulary) == ["anxiety", "anxicty", "anxiefy"]
    assert loaded == [64, 16]
    monkeypatch.setattr(query, "MAX_EXPANSIONS", 12)
    assert query.expand(query.Term("anxiety"), vocabulary) == ["anxiety", "anxicty", "anxiefy", "anxiely", "anxlety"]
    assert loaded == [64, 16, 4, 2, 1], "too few close words: every tier was searched"


def _index(tmp_path: Path) -> SearchIndex:
    return SearchIndex(tmp_path / "index.db", os.urandom(32))


def _add(index: SearchIndex, *records: IndexRecord) -> None:
    index.begin()
    index.add_records(list(records))
    index.commit()


def _terms(index: SearchIndex) -> dict[str, int]:
    return {str(t): int(n) for t, n in index.db.execute("SELECT term, pages FROM terms")}


def _fts_words(index: SearchIndex) -> dict[str, int]:
    return {str(t): int(n) for t, n in index.db.execute("SELECT term, doc FROM vocab")}


def test_terms_follow_pages_added_replaced_and_forgotten(tmp_path: Path) -> None:
    index = _index(tmp_path)
    one = IndexRecord(1, "r-1", "C-1", "2026-01-01", "progress", [(1, "Sleep HYGIENE, sleep diary"), (2, "Café naïve")])
    two = IndexRecord(2, "r-2", "C-2", "2026-01-02", "progress", [(1, "sleep hygiene zebrafinch")])
    _add(index, one, two)
    assert _terms(index) == {}, "counted later, all at once"
    index.update_terms()
    assert _terms(index) == _fts_words(index)
    assert _terms(index)["sleep"] == 2 and _terms(index)["hygiene"] == 2 and _terms(index)["cafe"] == 1
    _add(index, IndexRecord(3, "r-1", "C-1", "2026-01-01", "progress", [(1, "grief work")]))  # r-1 replaced
    assert "diary" not in _terms(index) and _terms(index)["sleep"] == 1, "counted pages are uncounted at once"
    _add(index, IndexRecord(4, "r-3", "C-3", "2026-01-03", "progress", [(1, "ephemeral words")]))
    assert index.forget({"r-1", "r-2"}) == 1, "r-3, never counted, is forgotten too"
    index.update_terms()
    assert _terms(index) == _fts_words(index)
    assert index.forget({"r-1"}) == 1
    assert _terms(index) == _fts_words(index)
    assert "zebrafinch" not in _terms(index), "a destroyed note's words leave the vocabulary too"
    assert index.search("zebrafinch") == [] and index.search("zebrafinh") == []
    index.close()


def test_a_few_new_pages_are_counted_one_by_one(tmp_path: Path) -> None:
    index = _index(tmp_path)
    _add(index, *[IndexRecord(n, f"r-{n}", None, None, "progress", [(1, f"common words page{n}")]) for n in range(40)])
    index.update_terms()  # all new: from FTS5's word list
    assert _terms(index) == _fts_words(index)
    _add(index, IndexRecord(40, "r-0", None, None, "progress", [(1, "replaced words")]))
    _add(index, IndexRecord(41, "r-41", None, None, "progress", [(1, "common newcomer")]))
    index.update_terms()  # 2 of 41 pages new: tokenized and added
    assert _terms(index) == _fts_words(index)
    assert _terms(index)["common"] == 40 and _terms(index)["newcomer"] == 1 and "page0" not in _terms(index)
    index.close()


def test_exact_pages_first_then_fuzzy_with_pages_and_snippets(tmp_path: Path) -> None:
    index = _index(tmp_path)
    _add(
        index,
        IndexRecord(1, "r-a", "C-1", "2026-01-01", "progress", [(1, "weather talk"), (2, "anxiety about exams")]),
        IndexRecord(2, "r-b", "C-2", "2026-02-01", "progress", [(1, "anxiely noted twice, anxiely")]),
        IndexRecord(3, "r-c", "C-1", "2026-03-01", "progress", [(3, "anxiety anxiety anxiety and sleep")]),
    )
    hits = index.search("anxiety")
    assert [(h.record_id, h.page) for h in hits] == [("r-c", 3), ("r-a", 2), ("r-b", 1)], "exact by bm25, then fuzzy"
    assert hits[0].snippet.startswith("[anxiety]") and "[anxiely]" in hits[2].snippet
    assert [(h.record_id, h.page) for h in index.search("anxiety", exact=True)] == [("r-c", 3), ("r-a", 2)]
    assert [h.record_id for h in index.search("anxiety", limit=2)] == ["r-c", "r-a"], "exact pages fill the limit"
    assert [h.record_id for h in index.search('"about exams"')] == ["r-a"]
    assert index.search('"exams about"') == []
    assert {h.record_id for h in index.search("anxi*", exact=True)} == {"r-a", "r-b", "r-c"}, "a prefix is exact"
    index.close()


@pytest.mark.parametrize("few_pages", [0, 5_000])
def test_filters_give_the_same_pages_either_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, few_pages: int
) -> None:
    monkeypatch.setattr(index_module, "FEW_PAGES", few_pages)
    index = _index(tmp_path)
    records = [
        IndexRecord(
            n,
            f"r-{n}",
            f"C-{n % 3}",
            f"2026-0{1 + n % 5}-10",
            "progress",
            [(1, f"panic attack number {n}"), (2, "homework reviewed" + " panic" * (n % 4))],
            [(1, "topic.sleep")] if n % 2 else [],
        )
        for n in range(1, 13)
    ]
    _add(index, *records)

    def pages(**filters: Any) -> list[tuple[str, int]]:
        return [(h.record_id, h.page) for h in index.search("panic", limit=50, **filters)]

    everything = pages()
    assert len(everything) == 12 + 9
    cases: list[tuple[dict[str, Any], Callable[[IndexRecord], bool]]] = [
        ({"client": "C-1"}, lambda r: r.client_code == "C-1"),
        ({"since": "2026-03-01"}, lambda r: str(r.session_date) >= "2026-03-01"),
        (
            {"until": "2026-02-28", "client": "C-0"},
            lambda r: str(r.session_date) <= "2026-02-28" and r.client_code == "C-0",
        ),
        ({"has": ("topic.sleep",)}, lambda r: r.seq % 2 == 1),
    ]
    for filters, keep in cases:
        wanted = {r.record_id for r in records if keep(r)}
        assert pages(**filters) == [p for p in everything if p[0] in wanted], filters
    hits = index.search("panic", client="C-1", has=("topic.sleep",))
    assert hits and all(h.facts == ("topic.sleep",) and h.client_code == "C-1" for h in hits)
    index.close()


def test_an_index_of_another_schema_version_is_rebuilt(tmp_path: Path) -> None:
    key = os.urandom(32)
    index = SearchIndex(tmp_path / "index.db", key)
    _add(index, IndexRecord(7, "r-1", "C-1", "2026-01-01", "progress", [(1, "grief")]))
    index.db.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")
    index.close()
    index = SearchIndex(tmp_path / "index.db", key)
    assert index.last_seq() == 0, "dropped: the next sync adds every record again"
    assert index.search("grief") == [] and _terms(index) == {}
    assert index.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] == index_module.SCHEMA_VERSION
    index.close()
