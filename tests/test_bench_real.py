"""bench/recall_real.py: the fixed tune/held split of the real pages, writers, words and scores (no OCR)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent.parent / "bench"))  # after the tree: shadows nothing
import recall_real

PAGES = [
    "peraire__B.15.japon5_0009.jpg",
    "peraire__B.2.europe-orientale_0029.jpg",
    "peraire__B.26.malais_0048.jpg",
    "peraire__B.4.urss2_0017.jpg",
    "peraire__D.1.notes-1-et-2_0011.jpg",
    "peraire__D.2.eurasie-3-4_0020.jpg",
    "peraire__D.5.eurasie-9-10_0058.jpg",
    "peraire__D.6.eurasie-11-12_0007.jpg",
    "peraire__test_B.12.japon3_0048.jpg",
    "peraire__test_D.8.eurasie-15_0062.jpg",
    *(
        f"poilus__TestamentsDePoilus_will_{will}-0.jpg"
        for will in [
            "AD78_0002",
            "AD78_0020",
            "AD78_0054",
            "AN_0021",
            "AN_0043",
            "AN_0065",
            "AN_0091",
            "AN_0109",
            "AN_0180",
            "AN_0186",
            "AN_0200",
            "AN_0218",
            "AN_0244",
            "AN_0259",
            "AN_0277",
        ]
    ),
]
# Pinned: changing the salt or the rule would silently move pages between tuning and reporting.
HELD = {
    "peraire__B.2.europe-orientale_0029.jpg",
    "peraire__B.26.malais_0048.jpg",
    "peraire__B.4.urss2_0017.jpg",
    "peraire__D.5.eurasie-9-10_0058.jpg",
    "peraire__D.6.eurasie-11-12_0007.jpg",
    "poilus__TestamentsDePoilus_will_AD78_0020-0.jpg",
    "poilus__TestamentsDePoilus_will_AD78_0054-0.jpg",
    "poilus__TestamentsDePoilus_will_AN_0109-0.jpg",
    "poilus__TestamentsDePoilus_will_AN_0186-0.jpg",
    "poilus__TestamentsDePoilus_will_AN_0200-0.jpg",
    "poilus__TestamentsDePoilus_will_AN_0218-0.jpg",
    "poilus__TestamentsDePoilus_will_AN_0244-0.jpg",
}


def test_the_split_is_fixed_and_keeps_both_sets_in_each_half() -> None:
    halves = {name: recall_real.half_of(name) for name in PAGES}
    assert {n for n, h in halves.items() if h == "held"} == HELD
    for kind in ("peraire", "poilus"):
        assert {h for n, h in halves.items() if n.startswith(kind)} == {"tune", "held"}


def test_sixteen_writers_one_per_will_and_peraire() -> None:
    writers = {recall_real.writer_of(name) for name in PAGES}
    assert len(writers) == 16
    assert recall_real.writer_of("poilus__TestamentsDePoilus_will_AN_0021-0.jpg") == "poilus AN_0021"
    assert recall_real.writer_of("peraire__test_B.12.japon3_0048.jpg") == "peraire"


def test_words_pages_and_scores(tmp_path: Path) -> None:
    assert recall_real.words_of("Le Fils d'Émile, 1914: léguer à mon frère, 2e lot") == {
        "fils",
        "emile",
        "leguer",
        "frere",
    }
    (tmp_path / "pages").mkdir()
    truth = {PAGES[0]: "premier jour", PAGES[1]: "jour second", PAGES[10]: "troisième jour", PAGES[11]: "rien"}
    (tmp_path / "pages" / "truth.json").write_text(json.dumps(truth), encoding="utf-8")
    held = recall_real.load_pages(tmp_path, "all", "held", 0)
    assert [p.path.name for p in held] == [PAGES[1], PAGES[11]]
    tune_poilus = recall_real.load_pages(tmp_path, "poilus", "tune", 0)
    assert [(p.path.name, p.kind, p.half, p.words) for p in tune_poilus] == [
        (PAGES[10], "poilus", "tune", frozenset({"troisieme", "jour"}))
    ]
    every = recall_real.load_pages(tmp_path, "all", "all", 0)
    words = [p.words for p in every]
    queries, too_common = recall_real.queries_of(words)
    assert queries["jour"] == {0, 1, 2} and too_common == 0
    results = {"jour": [0, 3], "premier": [0], "second": [], "troisieme": [2], "rien": [3]}
    recall, precision, pairs = recall_real.score(results, queries, words, {0, 1, 2, 3})
    assert pairs == 7 and recall == 4 / 7 and precision == 4 / 5
