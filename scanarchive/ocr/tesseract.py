"""The one wrapper around the Tesseract command.

One process per page, `OMP_THREAD_LIMIT=1` in a copied environment (never a
mutated os.environ), a timeout, and the page piped on stdin with the TSV read
from stdout: Tesseract never writes the page image to disk. Its working and
temp directory is the ingest's private 0700 folder all the same.
"""

from __future__ import annotations

import csv
import functools
import io
import os
import shutil
import subprocess

from scanarchive.errors import EngineMissing
from scanarchive.ocr.engine import OcrFailed, Word
from scanarchive.runner import EngineTimeout, run_engine


@functools.lru_cache(maxsize=1)
def executable() -> str:
    exe = shutil.which("tesseract")
    if exe is None:
        raise EngineMissing(
            "Tesseract is not installed, so notes cannot be indexed for search",
            hint="Install it: apt-get install tesseract-ocr tesseract-ocr-eng. The scan was left in place.",
        )
    return exe


@functools.lru_cache(maxsize=1)
def version() -> str:
    proc = subprocess.run([executable(), "--version"], capture_output=True, text=True, timeout=30, check=False)
    first = (proc.stdout or proc.stderr).splitlines()
    return first[0].strip() if first else "tesseract (unknown version)"  # e.g. "tesseract 5.3.0"


def recognise(png: bytes, *, languages: str, timeout: float, tmpdir: str) -> list[Word]:
    """Words with confidences (0-100) and boxes, in reading order."""
    env = dict(os.environ, OMP_THREAD_LIMIT="1", TMPDIR=tmpdir, TMP=tmpdir, TEMP=tmpdir)
    cmd = [executable(), "stdin", "stdout", "-l", languages, "--psm", "3", "tsv"]
    try:
        proc = run_engine(cmd, stdin=png, timeout=timeout, cwd=tmpdir, env=env)
    except EngineTimeout as exc:
        raise OcrFailed(f"OCR took longer than {timeout:.0f} s", timed_out=True) from exc
    except OSError as exc:
        raise OcrFailed(f"Tesseract could not be started ({exc.strerror})") from exc
    if proc.returncode != 0:
        # stderr is not quoted: it is Tesseract's, and we promise plain, content-free messages.
        raise OcrFailed(f"Tesseract stopped with exit code {proc.returncode}")
    return parse_tsv(proc.stdout.decode("utf-8", errors="replace"))


def parse_tsv(tsv: str) -> list[Word]:
    words: list[Word] = []
    reader = csv.DictReader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE)
    for row in reader:
        text = (row.get("text") or "").strip()
        if row.get("level") != "5" or not text:
            continue
        try:
            conf = float(row["conf"])
            box = (int(row["left"]), int(row["top"]), int(row["width"]), int(row["height"]))
            line = (int(row["block_num"]), int(row["par_num"]), int(row["line_num"]))
        except (KeyError, ValueError):
            continue
        words.append(Word(text=text, conf=max(0.0, conf), box=box, line=line))
    return words
