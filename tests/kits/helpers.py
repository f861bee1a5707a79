"""Small helpers for the tests: run the real CLI, look for plaintext on disk."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from scanarchive.cli.main import main
from scanarchive.demo import synth
from scanarchive.ocr import document, engine


@dataclass
class Run:
    code: int
    out: str
    err: str


def cli(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> Run:
    """Run the real command line in this process (fast); returns exit code and output."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err)


def decide(capsys: pytest.CaptureFixture[str], archive: Path, passphrase_file: Path, *argv: str | Path) -> Run:
    """A decision verb (client, hold, retention use/approve …) through the real CLI, signed with the passphrase."""
    return cli(capsys, "--archive", archive, *argv, "--passphrase-file", passphrase_file)


def purge_unattended(archive: Path, today: str, *extra: str) -> tuple[int, dict[str, Any], str]:
    """`purge --json` as the scheduled job runs it: its own process, no passphrase anywhere in its environment."""
    env = {k: v for k, v in os.environ.items() if "PASSPHRASE" not in k}
    proc = subprocess.run(
        [sys.executable, "-m", "scanarchive", "--archive", str(archive), "purge", "--today", today, "--json", *extra],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.startswith("{") else {}, proc.stderr


def cli_process(*argv: str | Path, env: dict[str, str] | None = None, timeout: float = 300) -> Run:
    """Run `python -m scanarchive` as a real subprocess."""
    proc = subprocess.run(
        [sys.executable, "-m", "scanarchive", *[str(a) for a in argv]],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def note_words(lines: list[str], min_len: int = 4) -> set[str]:
    return {w.lower() for line in lines for w in re.findall(r"[A-Za-z]+", line) if len(w) >= min_len}


def find_plaintext(roots: list[Path], words: set[str], extra_text: str = "") -> list[str]:
    """Every (file, word) where a word appears, in any case, in any file under roots or in extra_text."""
    found: list[str] = []
    patterns = {w: re.compile(re.escape(w.encode()), re.IGNORECASE) for w in words}
    for root in roots:
        if not root.exists():
            continue
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for path in files:
            data = path.read_bytes()
            for word, pattern in patterns.items():
                if pattern.search(data):
                    found.append(f"{path}: {word}")
    for word in words:
        if word in extra_text.lower():
            found.append(f"<logs>: {word}")
    return found


def render_note(
    seed: int = 1,
    *,
    width_in: float = 7.5,
    height_in: float = 4.5,
    noise: float = 6.0,
    rotation_deg: float = 1.2,
    sentences: int = 3,
) -> tuple[Image.Image, list[str]]:
    """A synthetic handwritten note (handwriting font, rotation, noise) and its lines."""
    lines = synth.synthetic_note(seed, sentences=sentences)
    image = synth.render_page(
        lines, width_in=width_in, height_in=height_in, rotation_deg=rotation_deg, noise=noise, blur=0.4, seed=seed
    )
    return image, lines


def ingest_docs(out: str, *, strict: bool = True) -> list[dict[str, Any]]:
    """The per-file objects an `ingest --json` printed (JSON Lines, in input order).

    strict: stdout must hold nothing else. Otherwise lines that are not whole objects (the last line of a
    process killed while writing it) are left out."""
    docs: list[dict[str, Any]] = []
    for line in out.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            assert not strict, f"not a JSON line in ingest --json output: {line!r}"
            continue
        if isinstance(doc, dict) and "outcome" in doc:
            docs.append(doc)
        else:
            assert not strict, f"not an ingest --json object: {line!r}"
    return docs


def record_ids_from_json(out: str) -> list[str]:
    """The record ids an `ingest --json` reported (archived or already archived), file by file, in order."""
    return [record["id"] for doc in ingest_docs(out) for record in doc["records"]]


def fake_ocr(lines: list[str]) -> engine.PageRecogniser:
    """A recogniser that "reads" exactly `lines` on every page, each word with a box of its own: for tests that
    need known words in the index without running the OCR engines."""

    def recognise(number: int, source: engine.PageSource) -> document.PageText:
        words = [
            document.Word(w, 95.0, (10 * i, 10 * n, 10, 10), (1, 1, n))
            for n, line in enumerate(lines)
            for i, w in enumerate(line.split())
        ]
        return document.PageText(number, "ok", "", "test", words)

    return recognise


def print_sheet(archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str | Path) -> Image.Image:
    """`scanarchive sheets ARGS` printed to a PDF, and that PDF's first page rendered at 300 dpi as a printer would
    put it on paper (greyscale)."""
    out = tmp_path / f"sheet-{os.urandom(4).hex()}.pdf"
    run = cli(capsys, "--archive", archive, "sheets", *args, "-o", out)
    assert run.code == 0, run.err
    subprocess.run(
        ["pdftoppm", "-r", "300", "-gray", "-png", "-singlefile", str(out), str(tmp_path / "pg")], check=True
    )
    page = Image.open(tmp_path / "pg.png").convert("L")
    page.load()
    return page
