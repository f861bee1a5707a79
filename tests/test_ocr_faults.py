"""Fault injection: an OCR engine that hangs or crashes. The record is archived, the page flagged.

The fake engines are shell scripts put first on PATH in place of `tesseract`;
everything else (the pipeline, sealing, the catalog) is the real code.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanarchive.ocr import tesseract

from helpers import cli, render_note

HANGS = """#!/bin/sh
if [ "$1" = "--version" ]; then echo "tesseract 0.0-hangs"; exit 0; fi
sleep 120 & sleep 120
"""
CRASHES = """#!/bin/sh
if [ "$1" = "--version" ]; then echo "tesseract 0.0-crashes"; exit 0; fi
exit 3
"""


@pytest.fixture
def fake_tesseract(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    tesseract.executable.cache_clear()
    tesseract.version.cache_clear()
    yield bin_dir / "tesseract"
    tesseract.executable.cache_clear()
    tesseract.version.cache_clear()


def _two_page_tiff(tmp_path: Path) -> Path:
    pages = [render_note(seed=s, noise=0, sentences=1, height_in=3)[0] for s in (31, 32)]
    path = tmp_path / "stack.tif"
    pages[0].save(path, save_all=True, append_images=pages[1:], compression="tiff_lzw", dpi=(300, 300))
    return path


@pytest.mark.parametrize(("script", "status"), [(HANGS, "timeout"), (CRASHES, "failed")])
def test_engine_fault_flags_pages_and_archives_the_record(
    script: str,
    status: str,
    fake_tesseract: Path,
    archive_dir: Path,
    passphrase_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_tesseract.write_text(script)
    fake_tesseract.chmod(0o755)
    config = archive_dir / "config.toml"
    config.write_text(config.read_text().replace("ocr_timeout_seconds = 180", "ocr_timeout_seconds = 2"))
    src = _two_page_tiff(tmp_path)

    started = time.monotonic()
    run = cli(capsys, "--archive", archive_dir, "ingest", src)
    elapsed = time.monotonic() - started
    assert run.code == 0, run.err
    assert "OCR could not read page(s) 1, 2" in run.out
    assert "the paper may be shredded" in run.out
    assert not src.exists()
    assert elapsed < 30, "a hanging engine (and its child) is killed at the timeout"

    doc = json.loads(cli(capsys, "--archive", archive_dir, "status", "--json").out)
    assert doc["records"] == 1 and doc["with_unreadable_pages"] == 1

    from scanarchive.archive.layout import Archive

    with Archive(archive_dir) as archive:
        (record,) = archive.catalog.records()
        assert record.ocr_failed_pages == (1, 2)
        pages = archive.ocr_pages(archive.unlock(passphrase_file.read_text().strip()), record)
    assert [p.status for p in pages] == [status, status]
    assert all(p.words == [] for p in pages)
    out = tmp_path / "out.pdf"
    assert (
        cli(capsys, "--archive", archive_dir, "show", record.id, "-o", out, "--passphrase-file", passphrase_file).code
        == 0
    )
    assert out.read_bytes().startswith(b"%PDF")
