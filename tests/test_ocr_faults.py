"""Fault injection: OCR engines that hang, crash or answer garbage.

The fake Tesseracts are shell scripts put first on PATH; the fake RapidOCR is a
package put first on PYTHONPATH (tests/fakes), so it is what the real worker
process imports. Everything else (the pipeline, the worker pool, sealing, the
catalog) is the real code. A page is flagged only when every engine failed on
it; the record is archived all the same, and the rest of it is indexed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanarchive.archive.layout import Archive
from scanarchive.ocr import document, rapidocr, tesseract
from tests.kits.helpers import cli, render_note

FAKES = Path(__file__).parent / "fakes"
HANGS = """#!/bin/sh
if [ "$1" = "--version" ]; then echo "tesseract 0.0-hangs"; exit 0; fi
sleep 120 & sleep 120
"""
CRASHES = """#!/bin/sh
if [ "$1" = "--version" ]; then echo "tesseract 0.0-crashes"; exit 0; fi
exit 3
"""
# Hangs on its first page only; every later page goes to the real Tesseract.
HANGS_ONCE = """#!/bin/sh
if [ "$1" = "--version" ]; then exec {real} --version; fi
if mkdir "{flag}" 2>/dev/null; then sleep 120 & sleep 120; fi
exec {real} "$@"
"""


@pytest.fixture(autouse=True)
def fresh_workers() -> Iterator[None]:
    rapidocr.close_all()  # no worker from an earlier test (real or fake) is reused
    yield
    rapidocr.close_all()


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


def fake_rapidocr(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FAKES), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("FAKE_RAPIDOCR", mode)


def set_config(archive_dir: Path, *, timeout: int, engines: str, jobs: int = 0) -> None:
    config = archive_dir / "config.toml"
    text = config.read_text().replace("ocr_timeout_seconds = 180", f"ocr_timeout_seconds = {timeout}")
    text = text.replace('ocr_engines = ["tesseract", "rapidocr"]', f"ocr_engines = {engines}")
    config.write_text(text.replace("jobs = 0", f"jobs = {jobs}"))


def two_page_tiff(tmp_path: Path) -> tuple[Path, list[list[str]]]:
    notes = [render_note(seed=s, noise=0, sentences=1, height_in=3) for s in (31, 32)]
    path = tmp_path / "stack.tif"
    images = [image for image, _ in notes]
    images[0].save(path, save_all=True, append_images=images[1:], compression="tiff_lzw", dpi=(300, 300))
    return path, [lines for _, lines in notes]


def ocr_pages(archive_dir: Path, passphrase_file: Path) -> tuple[tuple[int, ...], list[document.PageText]]:
    with Archive(archive_dir) as archive:
        (record,) = archive.catalog.records()
        pages = archive.ocr_pages(archive.unlock(passphrase_file.read_text().strip()), record)
    return record.ocr_failed_pages, pages


@pytest.mark.parametrize(("script", "status"), [(HANGS, "timeout"), (CRASHES, "failed")])
def test_tesseract_fault_flags_pages_and_archives_the_record(
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
    set_config(archive_dir, timeout=2, engines='["tesseract"]')
    src, _ = two_page_tiff(tmp_path)

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
    failed, pages = ocr_pages(archive_dir, passphrase_file)
    assert failed == (1, 2)
    assert [p.status for p in pages] == [status, status]
    assert all(p.words == [] for p in pages)
    with Archive(archive_dir) as archive:
        (record,) = archive.catalog.records()
    out = tmp_path / "out.pdf"
    shown = cli(capsys, "--archive", archive_dir, "show", record.id, "-o", out, "--passphrase-file", passphrase_file)
    assert shown.code == 0 and out.read_bytes().startswith(b"%PDF")


def test_a_page_that_times_out_is_flagged_and_the_rest_is_indexed(
    fake_tesseract: Path, archive_dir: Path, passphrase_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real = tesseract.executable()
    # the flag goes in the engine's private folder: the parser sandbox lets it write nowhere else
    fake_tesseract.write_text(HANGS_ONCE.format(real=real, flag="$TMPDIR/hung-once"))
    fake_tesseract.chmod(0o755)
    tesseract.executable.cache_clear()
    set_config(archive_dir, timeout=3, engines='["tesseract"]', jobs=1)  # one page at a time: page 1 hangs
    src, notes = two_page_tiff(tmp_path)

    run = cli(capsys, "--archive", archive_dir, "ingest", src)
    assert run.code == 0, run.err
    assert "OCR could not read page(s) 1 of this record" in run.out
    failed, pages = ocr_pages(archive_dir, passphrase_file)
    assert failed == (1,)
    assert [p.status for p in pages] == ["timeout", "ok"]
    word = max((w for w in notes[1][0].split() if w.isalpha()), key=len).lower()
    assert word in pages[1].text.lower()
    found = cli(
        capsys, "--archive", archive_dir, "search", word, "--exact", "--json", "--passphrase-file", passphrase_file
    )
    assert found.code == 0 and json.loads(found.out)["count"] == 1, "page 2 of the flagged record is searchable"


@pytest.mark.parametrize("mode", [pytest.param("hang", marks=pytest.mark.slow), "crash", "raise", "garbage"])
def test_a_faulty_second_engine_never_costs_the_first_engines_words(
    mode: str,
    monkeypatch: pytest.MonkeyPatch,
    archive_dir: Path,
    passphrase_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_rapidocr(monkeypatch, mode)
    set_config(archive_dir, timeout=4, engines='["tesseract", "rapidocr"]')
    src, _ = two_page_tiff(tmp_path)

    started = time.monotonic()
    run = cli(capsys, "--archive", archive_dir, "ingest", src)
    assert run.code == 0, run.err
    assert time.monotonic() - started < 60
    assert "could not read" not in run.out, "Tesseract read both pages: nothing is flagged"
    failed, pages = ocr_pages(archive_dir, passphrase_file)
    assert failed == ()
    assert [p.status for p in pages] == ["ok", "ok"]
    assert all("RapidOCR" in p.reason for p in pages), "the failing engine is named on the page"
    assert all(p.words and {w.source for w in p.words} == {"t"} for p in pages)
    assert "rapidocr" not in pages[0].engine


def test_when_every_engine_fails_the_page_is_flagged(
    fake_tesseract: Path,
    monkeypatch: pytest.MonkeyPatch,
    archive_dir: Path,
    passphrase_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_tesseract.write_text(HANGS)
    fake_tesseract.chmod(0o755)
    fake_rapidocr(monkeypatch, "hang")
    set_config(archive_dir, timeout=2, engines='["tesseract", "rapidocr"]')
    src, _ = two_page_tiff(tmp_path)

    started = time.monotonic()
    run = cli(capsys, "--archive", archive_dir, "ingest", src)
    assert run.code == 0, run.err
    assert time.monotonic() - started < 60
    assert "OCR could not read page(s) 1, 2" in run.out
    failed, pages = ocr_pages(archive_dir, passphrase_file)
    assert failed == (1, 2)
    assert [p.status for p in pages] == ["timeout", "timeout"]
    assert all("Tesseract" in p.reason and "RapidOCR" in p.reason for p in pages)


def test_when_tesseract_fails_the_second_engine_still_makes_the_page_searchable(
    fake_tesseract: Path, archive_dir: Path, passphrase_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_tesseract.write_text(CRASHES)
    fake_tesseract.chmod(0o755)
    set_config(archive_dir, timeout=120, engines='["tesseract", "rapidocr"]')
    src, notes = two_page_tiff(tmp_path)

    run = cli(capsys, "--archive", archive_dir, "ingest", src)
    assert run.code == 0, run.err
    failed, pages = ocr_pages(archive_dir, passphrase_file)
    assert failed == ()
    assert all(p.status == "ok" and "Tesseract" in p.reason for p in pages)
    assert all(p.words and {w.source for w in p.words} == {"r"} for p in pages)
    text = " ".join(p.text.lower() for p in pages)
    expected = [w.lower() for lines in notes for line in lines for w in line.split() if len(w) >= 5 and w.isalpha()]
    assert sum(w in text for w in expected) >= len(expected) // 2, "RapidOCR read these clean pages"
