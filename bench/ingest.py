"""Ingest benchmark: pages/s end to end, share of time in OCR, peak RSS.

    .venv/bin/python bench/ingest.py [--pages 12] [--jobs 2]

Baselines, measured in the same run on the same generated pages (the machine
is shared and noisy, so only ratios measured side by side mean anything):

  tesseract-seq   the bare `tesseract` command, one page after another
  tesseract-par   the bare `tesseract` command, --jobs pages at once

scanarchive's figure is the whole pipeline (check, lossless PDF, OCR, seal,
store, catalog, re-read and verify, release), --jobs files at once, as
`scanarchive ingest FILE…` runs it. It runs in a child process, whose
peak RSS (including its largest engine subprocess) is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scanarchive.demo import synth  # noqa: E402

CHILD = """
import json, sys, time
from pathlib import Path
from scanarchive.ingest.batch import ingest_files
start = time.perf_counter()
outcomes = ingest_files(Path(sys.argv[1]), [Path(n) for n in sys.argv[3:]], int(sys.argv[2]))
total = time.perf_counter() - start
results = [{"pages": r.page_count, "seconds": r.seconds, "ocr_seconds": r.ocr_seconds} for _, r in outcomes]
print(json.dumps({"total": total, "results": results}))
"""


def make_pages(dest: Path, count: int) -> list[Path]:
    fonts = synth.available_fonts()
    paths = []
    for i in range(count):
        lines = synth.synthetic_note(1000 + i, sentences=4)
        image = synth.render_page(
            lines, font=fonts[i % len(fonts)], rotation_deg=(i % 5 - 2) * 0.5, noise=5.0, blur=0.4, seed=i
        )
        path = dest / f"page-{i:04d}.png"
        image.save(path, dpi=(300, 300))
        paths.append(path)
    return paths


def bare_tesseract(paths: list[Path], jobs: int) -> float:
    env = dict(os.environ, OMP_THREAD_LIMIT="1")

    def one(path: Path) -> None:
        subprocess.run(["tesseract", str(path), "stdout", "tsv"], capture_output=True, env=env, check=True)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(one, paths))
    return time.perf_counter() - start


def scanarchive_run(paths: list[Path], work: Path, jobs: int) -> tuple[float, float, float]:
    from scanarchive.archive.layout import Archive

    archive = work / "archive"
    Archive.create(archive, "benchmark passphrase", kdf_seconds=0.05).close()
    config = archive / "config.toml"
    config.write_text(config.read_text().replace("jobs = 0", f"jobs = {jobs}"))
    copies = []
    for path in paths:  # ingest removes its sources; keep the originals for the baseline
        copy = work / "drop" / path.name
        copy.parent.mkdir(exist_ok=True)
        copy.write_bytes(path.read_bytes())
        copies.append(str(copy))
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(archive), str(jobs), *copies], stdout=subprocess.PIPE, cwd=ROOT, text=True
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    # wait4 gives this child's own rusage: its peak RSS, or that of its largest engine subprocess.
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    peak_kb = usage.ru_maxrss
    if proc.returncode:
        raise SystemExit(f"scanarchive ingest failed (exit {proc.returncode})")
    doc = json.loads(out)
    ocr = sum(r["ocr_seconds"] for r in doc["results"])
    return float(doc["total"]), ocr, peak_kb / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=12)
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sa-bench-") as tmp:
        work = Path(tmp)
        (work / "pages").mkdir()
        paths = make_pages(work / "pages", args.pages)
        n = len(paths)
        seq = bare_tesseract(paths, 1)
        par = bare_tesseract(paths, args.jobs)
        total, ocr, peak_mb = scanarchive_run(paths, work, args.jobs)
    print(f"pages: {n} single-page 300 dpi PNG scans (8.5 x 5.5 in, synthetic handwriting); jobs={args.jobs}")
    print(f"{'run':<16}{'seconds':>9}{'pages/s':>9}{'vs tesseract-seq':>18}")
    for name, seconds in (("tesseract-seq", seq), ("tesseract-par", par), ("scanarchive", total)):
        print(f"{name:<16}{seconds:>9.2f}{n / seconds:>9.2f}{seq / seconds:>17.2f}x")
    busy = ocr / (total * args.jobs)
    print(
        f"scanarchive time in OCR: {100 * busy:.0f}% of {args.jobs} workers' time (everything else: {100 * (1 - busy):.0f}%)"
    )
    print(f"scanarchive peak RSS (largest process of the ingest): {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
