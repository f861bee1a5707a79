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
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from scanarchive import tempdir
from scanarchive.errors import EngineMissing, TransientError
from scanarchive.fsio import write_atomic
from scanarchive.ocr.document import Word
from scanarchive.ocr.engine import OcrFailed
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


# --- the dictionary -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def dictionary(languages: str) -> frozenset[str]:
    """The lower-case words of the language models' dictionaries (Tesseract's own word lists).

    Search uses it to tell an OCR misreading (not a word) from another real word. Extracted
    once with Tesseract's own tools (combine_tessdata, dawg2wordlist) and cached under
    $XDG_CACHE_HOME/scanarchive (it is public data, no clinical content). Empty if the tools or
    the models are missing: search then simply does not make that distinction.
    """
    words: set[str] = set()
    for language in languages.split("+"):
        words.update(_language_words(language))
    return frozenset(words)


def _tessdata() -> Path | None:
    try:
        proc = subprocess.run([executable(), "--list-langs"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired, EngineMissing):
        return None
    match = re.search(r'"([^"]+)"', proc.stdout + proc.stderr)
    return Path(match.group(1)) if match else None


def _language_words(language: str) -> list[str]:
    tessdata = _tessdata()
    model = tessdata / f"{language}.traineddata" if tessdata else None
    if model is None or not model.is_file() or not re.fullmatch(r"[A-Za-z0-9_]+", language):
        return []
    st = model.stat()
    cache_dir = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "scanarchive"
    cache = cache_dir / f"dictionary-{language}-{st.st_size}-{st.st_mtime_ns}.txt"
    try:
        return cache.read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError):
        pass
    combine, dawg2wordlist = shutil.which("combine_tessdata"), shutil.which("dawg2wordlist")
    if combine is None or dawg2wordlist is None:
        return []
    with tempfile.TemporaryDirectory(prefix="scanarchive-dict-", dir=tempdir._parent()) as tmp:  # not a shared /tmp
        parts = Path(tmp) / "model."
        try:
            run_engine([combine, "-u", str(model), str(parts)], stdin=b"", timeout=120, cwd=tmp)
            out = Path(tmp) / "words.txt"
            run_engine(
                [dawg2wordlist, f"{parts}lstm-unicharset", f"{parts}lstm-word-dawg", str(out)],
                stdin=b"",
                timeout=120,
                cwd=tmp,
            )
            text = out.read_text(encoding="utf-8", errors="replace")
        except (OSError, EngineTimeout):
            return []
    words = sorted({w.casefold() for w in text.split() if w.isalpha()})
    try:
        cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(cache, "\n".join(words).encode("utf-8"))
    except (OSError, TransientError):
        pass  # a read-only home: extract again next time
    return words
