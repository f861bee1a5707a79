"""Real-handwriting recall benchmark: does `search` find the page a word was written on?

    .venv/bin/python bench/recall_real.py [--set poilus|peraire|all] [--pages tune|held|all]
                                          [--limit N] [--jobs 1] [--data DIR]

The pages are real scans with transcriptions: ../shared/data/handwriting-dev/pages
(CC BY 4.0; French, 16 writers; see its SOURCES.md for attribution). Nothing is
copied into the repository; the archives live in a private temporary folder.

Pages (--pages): a fixed split, never chosen by looking at results: a page is
'held' when the first byte of sha256("scanarchive-real-split-v1:" + its file
name) is odd, else 'tune' (13 tune, 12 held; both sets in each half). Rules
of the search (archive/query.py) may be chosen on the tune pages only; the
held pages' figure is the one to report. --pages all runs both halves in one
index and reports each.

Writers: a Poilus page is one soldier's will, so each of the 15 Poilus pages
is its own writer (named by its will, e.g. AN_0021); the 10 Peraire pages are
one writer (SOURCES.md). Recall is also given per writer.

Words: every token of the transcription the way the search index tokenizes
(FTS5 unicode61, remove_diacritics 2: runs of letters and digits, case- and
accent-insensitive), kept when it has >= 4 letters and no digit. Words on more
than 10 of the run's pages are counted and left out (they cannot all fit a top
10). For every remaining (page, word) pair the word is searched:
recall@10 = share of pairs whose page is in the top 10; precision = share of
returned results (top 10) whose page really holds the word. For a group of
pages (a set, a half, a writer), recall counts the pairs of its pages and
precision the results of every word that is on at least one of them.

Columns, measured in one run on the same pages (as bench/recall.py does):

  a  tesseract       Tesseract alone on the whole page (product language setting),
                     exact words, plain SQLite FTS5 + bm25: the baseline
  b  previous        the pipeline (Tesseract + RapidOCR, crop/scale, ensemble) with
                     SCANARCHIVE_RAPIDOCR_MODELS=rapidocr-builtin: the PP-OCRv4 models
                     inside RapidOCR's wheel, shipped before; fuzzy search (the
                     default); previous-exact: --exact
  c  shipped         scanarchive as installed (PP-OCRv5 mobile, vendored), fuzzy;
                     shipped-exact: --exact

--columns picks some of a, b, c (default all three; a is always run: it is the
baseline of every ratio).

Target (issue 19): recall >= 4x Tesseract's in the same run at precision >= 0.85
(a verdict per set and half for every b and c row; none where Tesseract found nothing).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scanarchive.ocr import rapidocr  # noqa: E402
from scanarchive.ocr.merge import fold  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from recall import plain_fts, scanarchive_archive, scanarchive_search  # noqa: E402
from recall import score as recall_score  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "handwriting-dev"
MAX_DF = 10
TOKEN_RE = re.compile(r"[^\W_]+")
TOKENIZE = "unicode61 remove_diacritics 2"  # scanarchive/archive/index.py
SPLIT_SALT = "scanarchive-real-split-v1"
HALVES = ("tune", "held")
ENGINES = '["tesseract", "rapidocr"]'
# label, MODELS_ENV's value for the ingest (None: unset, the shipped models)
PIPELINES = {"b": ("previous", rapidocr.BUILTIN), "c": ("shipped", None)}


@dataclass(frozen=True)
class Page:
    path: Path
    kind: str  # the set: "poilus" or "peraire"
    half: str  # "tune" or "held"
    writer: str
    words: frozenset[str]


def half_of(name: str) -> str:
    """The fixed split of a page: "held" when the salted sha256 of its file name starts with an odd byte."""
    return "held" if hashlib.sha256(f"{SPLIT_SALT}:{name}".encode()).digest()[0] % 2 else "tune"


def writer_of(name: str) -> str:
    """Peraire's notebooks are one writer; every Poilus will is another (SOURCES.md)."""
    kind, rest = name.split("__", 1)
    if kind == "poilus":
        return "poilus " + rest.removeprefix("TestamentsDePoilus_will_").removesuffix(".jpg").removesuffix("-0")
    return kind


def words_of(text: str) -> frozenset[str]:
    out = set()
    for token in TOKEN_RE.findall(text):
        word = fold(token)
        if sum(c.isalpha() for c in word) >= 4 and not any(c.isdigit() for c in word):
            out.add(word)
    return frozenset(out)


def load_pages(data: Path, which: str, half: str, limit: int) -> list[Page]:
    truth = json.loads((data / "pages" / "truth.json").read_text(encoding="utf-8"))
    chosen = []
    for name in sorted(truth):
        page = Page(
            data / "pages" / name, name.split("__", 1)[0], half_of(name), writer_of(name), words_of(truth[name])
        )
        if which in ("all", page.kind) and half in ("all", page.half):
            chosen.append(page)
    if limit:  # keep both sets represented: alternate between them
        by_kind: dict[str, list[Page]] = defaultdict(list)
        for page in chosen:
            by_kind[page.kind].append(page)
        mixed = [p for group in zip(*by_kind.values(), strict=False) for p in group]
        rest = [p for p in chosen if p not in mixed]
        chosen = (mixed + rest)[:limit]
    return chosen


def queries_of(words: list[frozenset[str]]) -> tuple[dict[str, set[int]], int]:
    df: dict[str, set[int]] = defaultdict(set)
    for n, ws in enumerate(words):
        for w in ws:
            df[w].add(n)
    kept = {w: p for w, p in df.items() if len(p) <= MAX_DF}
    return kept, sum(len(p) for p in df.values()) - sum(len(p) for p in kept.values())


def score(
    results: dict[str, list[int]], queries: dict[str, set[int]], words: list[frozenset[str]], pages: set[int]
) -> tuple[float, float, int]:
    """bench/recall.py's recall and precision over the (page, word) pairs of `pages`, and how many pairs."""
    recall, precision = recall_score(results, queries, words, pages)
    return recall, precision, sum(len(relevant & pages) for relevant in queries.values())


def tesseract_whole_page(
    pages: list[Path], queries: dict[str, set[int]], jobs: int, language: str
) -> tuple[dict[str, list[int]], float]:
    env = dict(os.environ, OMP_THREAD_LIMIT="1")

    def one(path: Path) -> str:
        run = subprocess.run(
            ["tesseract", str(path), "stdout", "-l", language], capture_output=True, env=env, check=True
        )
        return run.stdout.decode("utf-8", "replace")

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        texts = list(pool.map(one, pages))
    seconds = time.perf_counter() - start
    return plain_fts(texts, queries, TOKENIZE), seconds


def pipeline(
    pages: list[Page], work: Path, models: str | None, queries: dict[str, set[int]], jobs: int
) -> tuple[dict[str, list[int]], dict[str, list[int]], float]:
    """Ingest the pages with MODELS_ENV set to `models` (unset for None), then search every query
    fuzzily and exactly: (fuzzy results, exact results, seconds of ingest)."""
    saved = os.environ.pop(rapidocr.MODELS_ENV, None)
    try:
        if models is not None:  # inherited by the ingest subprocess only
            os.environ[rapidocr.MODELS_ENV] = models
        work.mkdir()
        archive, by_hash, seconds = scanarchive_archive([(p.path, [""]) for p in pages], work, ENGINES, jobs)
    finally:
        os.environ.pop(rapidocr.MODELS_ENV, None)
        if saved is not None:
            os.environ[rapidocr.MODELS_ENV] = saved
    fuzzy, _ = scanarchive_search(archive, by_hash, queries, False)
    exact, _ = scanarchive_search(archive, by_hash, queries, True)
    return fuzzy, exact, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", choices=("poilus", "peraire", "all"), default="all")
    parser.add_argument("--pages", choices=(*HALVES, "all"), default="all", help="the fixed split's half (default all)")
    parser.add_argument("--limit", type=int, default=0, help="at most N pages (both sets kept in turn)")
    parser.add_argument("--jobs", type=int, default=1, help="parallel OCR jobs for every column (default 1)")
    parser.add_argument("--columns", default="abc", help="which of a, b, c to run (default abc; a always runs)")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--language", default="eng", help="Tesseract language for column a (product default)")
    args = parser.parse_args()
    if not (args.data / "pages" / "truth.json").is_file():
        sys.exit(f"no {args.data}/pages/truth.json: pass --data (the handwriting-dev folder)")
    if not set(args.columns) <= set("abc"):
        sys.exit("--columns takes letters among a, b, c")
    if not rapidocr.available():
        sys.exit("columns b and c need rapidocr-onnxruntime installed")
    pages = load_pages(args.data, args.set, args.pages, args.limit)
    if not pages:
        sys.exit("no pages chosen")
    words = [p.words for p in pages]
    queries, too_common = queries_of(words)
    groups: dict[str, set[int]] = {}  # name -> page numbers: the sets and halves
    for n, page in enumerate(pages):
        groups.setdefault(page.kind, set()).add(n)
    for n, page in enumerate(pages):
        groups.setdefault(page.half, set()).add(n)
    groups["all"] = set(range(len(pages)))
    if len({frozenset(v) for v in groups.values()}) < len(groups):  # e.g. one set: "all" repeats it
        unique: dict[frozenset[int], str] = {}
        for name, members in groups.items():
            unique.setdefault(frozenset(members), name)
        groups = {name: set(members) for members, name in unique.items()}
    writers: dict[str, set[int]] = {}
    for n, page in enumerate(pages):
        writers.setdefault(page.writer, set()).add(n)
    counts = ", ".join(
        f"{k} {sum(p.kind == k for p in pages)} ({sum(p.kind == k and p.half == 'tune' for p in pages)} tune)"
        for k in dict.fromkeys(p.kind for p in pages)
    )
    print(
        f"{len(pages)} pages ({counts}), {len(writers)} writers; {len(queries)} query words, "
        f"{sum(len(p) for p in queries.values())} (page, word) pairs; "
        f"{too_common} pairs left out (word on > {MAX_DF} pages)",
        flush=True,
    )
    columns: list[tuple[str, dict[str, list[int]], float]] = []  # name, results, pages/s
    with tempfile.TemporaryDirectory(prefix="scanarchive-recall-real-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o700)
        results, seconds = tesseract_whole_page([p.path for p in pages], queries, args.jobs, args.language)
        columns.append(("a tesseract", results, len(pages) / seconds))
        print(f"a (Tesseract, whole page) done in {seconds:.0f} s", flush=True)
        for letter, (label, models) in PIPELINES.items():
            if letter not in args.columns:
                continue
            fuzzy, exact, seconds = pipeline(pages, work / letter, models, queries, args.jobs)
            print(f"{letter} {label} ingest done in {seconds:.0f} s", flush=True)
            columns.append((f"{letter} {label}", fuzzy, len(pages) / seconds))
            columns.append((f"{letter} {label}-exact", exact, len(pages) / seconds))

    print()
    print(f"{'pages':<8} {'column':<18} {'recall@10':>9} {'precision':>9} {'vs a':>7} {'pages/s':>8}  pairs")
    verdicts = []
    for group, members in groups.items():
        base = score(columns[0][1], queries, words, members)[0]
        for name, results, rate in columns:
            recall, precision, pairs = score(results, queries, words, members)
            ratio = f"{recall / base:6.2f}×" if base else "    n/a"  # the baseline found nothing: no ratio
            print(f"{group:<8} {name:<18} {recall:9.3f} {precision:9.3f} {ratio} {rate:8.3f}  {pairs}")
            if name != "a tesseract":
                if not base:
                    verdicts.append(
                        f"{group}/{name}: no verdict (Tesseract found nothing; {recall:.3f} at {precision:.3f})"
                    )
                    continue
                ok = recall >= 4 * base and precision >= 0.85
                verdicts.append(f"{group}/{name}: {'PASS' if ok else 'MISS'} ({ratio.strip()} at {precision:.3f})")
        print()

    names = [name.split(" ", 1)[1] for name, _, _ in columns]
    print("recall@10 by writer (precision: the last fuzzy column, over the words on that writer's pages)")
    print(f"{'writer':<16} {'half':<9} {'pairs':>5} " + " ".join(f"{n:>14}" for n in names) + "  precision")
    fuzzy_last = max(i for i, (name, _, _) in enumerate(columns) if not name.endswith("-exact"))
    for writer, members in sorted(writers.items(), key=lambda w: (w[0] != "peraire", w[0])):
        halves = "/".join(sorted({pages[n].half for n in members}))
        scores = [score(results, queries, words, members) for _, results, _ in columns]
        cells = " ".join(f"{s[0]:14.3f}" for s in scores)
        print(f"{writer:<16} {halves:<9} {scores[0][2]:5d} {cells}  {scores[fuzzy_last][1]:9.3f}")
    print()
    print("target (issue 19) recall ≥ 4× Tesseract's in the same run at precision ≥ 0.85:")
    print("  " + "\n  ".join(verdicts))


if __name__ == "__main__":
    main()
