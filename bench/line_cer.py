"""Line recognition benchmark: character error rate on real handwritten lines, engine by engine.

    .venv/bin/python bench/line_cer.py [--limit N] [--data DIR] [--json FILE]

The lines are real: ../shared/data/handwriting-dev/lines (one writer, Lucien
Peraire's notebooks, CC BY 4.0; 600 line images cut from 22 pages that are not
among the pages bench/recall_real.py searches; tesstrain's convention,
NAME.png + NAME.gt.txt). Nothing is copied into the repository.

Each line image is given, alone, to every recogniser, side by side in one run:

  tesseract      Tesseract, one text line (--psm 7), the product's languages
                 setting (eng): the baseline
  ppocrv4        RapidOCR 1.4.4's own recogniser (PP-OCRv4, in its wheel), the
                 engine scanarchive ran before PP-OCRv5
  ppocrv5        the recogniser scanarchive ships (PP-OCRv5 mobile,
                 scanarchive/data/models/ppocrv5, sha256-checked)

CER = edit distance / length of the transcription, summed over all lines
(so long lines weigh more), two ways: `exact` (case and accents count) and
`search` (case and accents set aside, runs of spaces as one: what the search
index compares). Also the share of the transcription's words of >= 4 letters
that the line's reading contains exactly (`words`), the quantity search lives
on. Nothing is tuned on these lines; no threshold here was chosen on them.

The recognisers run in this process without the ingest's sandbox (telemetry
still off): this measures models, not the pipeline (bench/recall_real.py does).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scanarchive.ocr.merge import fold  # noqa: E402
from scanarchive.sandbox import NO_TELEMETRY  # noqa: E402

os.environ.update(NO_TELEMETRY)
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "handwriting-dev" / "lines"
WORD = re.compile(r"[^\W\d_]{4,}", re.UNICODE)


def folded(text: str) -> str:
    """What search compares: case and accents set aside (merge.fold), single spaces."""
    return " ".join(fold(text).split())


def words(text: str) -> list[str]:
    return WORD.findall(folded(text))


@dataclass
class Score:
    chars: int = 0
    edits_exact: int = 0
    edits_search: int = 0
    words: int = 0
    words_found: int = 0
    seconds: float = 0.0
    lines: int = 0
    worst: list[tuple[float, str]] = field(default_factory=list)

    def add(self, truth: str, read: str, seconds: float) -> None:
        from rapidfuzz.distance import Levenshtein

        truth_exact = " ".join(truth.split())
        read_exact = " ".join(read.split())
        self.chars += len(truth_exact)
        self.edits_exact += Levenshtein.distance(truth_exact, read_exact)
        self.edits_search += Levenshtein.distance(folded(truth), folded(read))
        expected = words(truth)
        got = set(words(read))
        self.words += len(expected)
        self.words_found += sum(1 for w in expected if w in got)
        self.seconds += seconds
        self.lines += 1

    def row(self) -> dict[str, float]:
        return {
            "cer_exact": self.edits_exact / max(1, self.chars),
            "cer_search": self.edits_search / max(1, self.chars),
            "words": self.words_found / max(1, self.words),
            "ms_per_line": 1000 * self.seconds / max(1, self.lines),
        }


def tesseract_reader(workdir: str) -> Callable[[Path], str]:
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}

    def read(path: Path) -> str:
        run = subprocess.run(
            ["tesseract", str(path), "stdout", "--psm", "7", "-l", "eng"],
            capture_output=True,
            text=True,
            env=env,
            cwd=workdir,
            check=False,
        )
        return run.stdout.strip()

    return read


def rapid_reader(models: dict[str, str]) -> Callable[[Path], str]:
    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1, use_cls=False, rec_batch_num=1, **models)

    def read(path: Path) -> str:
        result, _ = engine(str(path), use_det=False, use_cls=False, use_rec=True)
        return " ".join(str(r[0]) for r in result or [])

    return read


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the lines folder (NAME.png + NAME.gt.txt)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N lines (sorted by name); 0: all")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()

    from scanarchive.ocr import rapidocr

    pngs = sorted(p for p in args.data.glob("*.png") if p.with_suffix("").with_suffix(".gt.txt").is_file())
    if args.limit:
        pngs = pngs[: args.limit]
    if not pngs:
        print(f"no lines in {args.data}", file=sys.stderr)
        return 2
    shipped = rapidocr.shipped_models()
    with tempfile.TemporaryDirectory(prefix="scanarchive-bench-") as workdir:
        readers: dict[str, Callable[[Path], str]] = {
            "tesseract": tesseract_reader(workdir),
            "ppocrv4": rapid_reader({}),
            "ppocrv5": rapid_reader({"rec_model_path": shipped.rec, "rec_keys_path": shipped.keys}),
        }
        scores = {name: Score() for name in readers}
        started = time.monotonic()
        for number, png in enumerate(pngs, 1):
            truth = png.with_suffix("").with_suffix(".gt.txt").read_text(encoding="utf-8").strip()
            for name, read in readers.items():  # the same line to each, one after the other
                t0 = time.perf_counter()
                text = read(png)
                scores[name].add(truth, text, time.perf_counter() - t0)
            if number % 100 == 0:
                print(f"  {number}/{len(pngs)} lines, {time.monotonic() - started:.0f} s", file=sys.stderr)

    chars = scores["tesseract"].chars
    print(f"{len(pngs)} real handwritten lines ({chars} characters), one writer, {args.data}")
    print(f"{'engine':<10} {'CER exact':>9} {'CER search':>10} {'words ≥4':>9} {'ms/line':>8}  CER vs tesseract")
    base = scores["tesseract"].row()["cer_search"]
    rows = {name: s.row() for name, s in scores.items()}
    for name, row in rows.items():
        ratio = row["cer_search"] / base if base else float("nan")
        print(
            f"{name:<10} {row['cer_exact']:>9.3f} {row['cer_search']:>10.3f} {row['words']:>9.3f} "
            f"{row['ms_per_line']:>8.0f}  {ratio:.2f}×"
        )
    if args.json:
        args.json.write_text(json.dumps({"lines": len(pngs), "chars": chars, "engines": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
