"""A scan goes in, comes out sealed, is found again, and shows with its exact pixels.

All real: synthetic handwriting rendered by the test, real Tesseract, real crypto.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import cast

import pikepdf
import pytest
from PIL import Image

from scanarchive.archive import sync
from scanarchive.archive.layout import Archive
from scanarchive.config import IngestSettings
from scanarchive.pages.load import Scan
from tests.kits.helpers import cli, ingest_docs, note_words, record_ids_from_json, render_note, sha256


def _pdf_page_images(pdf_bytes: bytes) -> list[Image.Image]:
    images = []
    with pikepdf.open(io.BytesIO(pdf_bytes)) as pdf:
        for page in pdf.pages:
            (raw,) = page.get_images().values()
            images.append(pikepdf.PdfImage(cast(pikepdf.Stream, raw)).as_pil_image())
    return images


def _show(capsys: pytest.CaptureFixture[str], archive: Path, record: str, pw: Path, out: Path) -> bytes:
    run = cli(capsys, "--archive", archive, "show", record, "-o", out, "--passphrase-file", pw)
    assert run.code == 0, run.err
    assert (out.stat().st_mode & 0o777) == 0o600
    return out.read_bytes()


def _ingest_one(capsys: pytest.CaptureFixture[str], archive: Path, path: Path, *extra: str) -> str:
    run = cli(capsys, "--archive", archive, "ingest", path, *extra, "--json")
    assert run.code == 0, run.err
    (doc,) = ingest_docs(run.out)
    assert doc["outcome"] == "archived"
    assert "verified; all" in doc["verdict"] and "the paper may be shredded" in doc["verdict"]
    return record_ids_from_json(run.out)[0]


def test_png_round_trip_search_and_exact_pixels(
    archive_dir: Path, passphrase_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image, lines = render_note(seed=11)
    src = tmp_path / "note.png"
    image.save(src, dpi=(300, 300))
    record = _ingest_one(capsys, archive_dir, src, "--client", "C-0042", "--date", "2026-11-20")
    assert not src.exists(), "the source is removed once the record is verified"

    words = sorted(w for w in note_words(lines, min_len=5))
    with Archive(archive_dir) as archive:
        identity = archive.unlock(passphrase_file.read_text().strip())
        index = sync.open_index(archive, identity)
        assert sync.sync_index(archive, identity, index).added == 1
        found = [w for w in words if any(h.record_id == record for h in index.search(w))]
        index.close()
    # With the most legible handwriting font Tesseract reads ~97% of words; leave room for other builds.
    assert len(found) >= 0.6 * len(words), f"Tesseract found only {len(found)}/{len(words)} words"

    run = cli(capsys, "--archive", archive_dir, "search", found[0], "--json", "--passphrase-file", passphrase_file)
    assert run.code == 0, run.err
    results = json.loads(run.out)["results"]
    assert results[0]["record_id"] == record
    assert results[0]["client_code"] == "C-0042" and results[0]["session_date"] == "2026-11-20"
    assert results[0]["page"] == 1 and "[" in results[0]["snippet"]

    pdf = _show(capsys, archive_dir, record[:8], passphrase_file, tmp_path / "out.pdf")
    (shown,) = _pdf_page_images(pdf)
    assert shown.size == image.size
    assert shown.convert("L").tobytes() == image.convert("L").tobytes()


def test_filters_and_no_match(
    archive_dir: Path, passphrase_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image, _ = render_note(seed=11)
    for n, (client, day) in enumerate([("C-1", "2026-01-10"), ("C-2", "2026-03-10")]):
        src = tmp_path / f"n{n}.png"
        image.save(src, dpi=(300, 300))
        # the same note twice: different files (the PNG bytes differ by metadata), two records
        src.write_bytes(src.read_bytes() + bytes([n]))
        _ingest_one(capsys, archive_dir, src, "--client", client, "--date", day)
    base: list[str | Path] = ["--archive", archive_dir, "search", "--json", "--passphrase-file", passphrase_file]
    word = "Discussed" if "Discussed" in " ".join(render_note(seed=11)[1]) else render_note(seed=11)[1][0].split()[0]

    def ids(*extra: str) -> list[str | None]:
        run = cli(capsys, *base, word, *extra)
        assert run.code == 0, run.err
        return [r["client_code"] for r in json.loads(run.out)["results"]]

    assert sorted(c for c in ids() if c) == ["C-1", "C-2"]
    assert ids("--client", "C-2") == ["C-2"]
    assert ids("--since", "2026-02-01") == ["C-2"]
    assert ids("--until", "2026-02-01") == ["C-1"]
    run = cli(capsys, *base, "zzyzxquorble")
    assert json.loads(run.out)["count"] == 0


@pytest.mark.slow
def test_multipage_tiff_and_jpeg_and_pdf(
    archive_dir: Path, passphrase_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pages = [render_note(seed=s, noise=0, height_in=3.5, sentences=1)[0] for s in (21, 22, 23)]
    tiff = tmp_path / "stack.tif"
    pages[0].save(tiff, save_all=True, append_images=pages[1:], compression="tiff_lzw", dpi=(300, 300))
    jpeg = tmp_path / "note.jpg"
    pages[0].save(jpeg, quality=85, dpi=(300, 300))
    pdf_src = tmp_path / "note.pdf"
    pages[1].save(pdf_src, resolution=300)
    pdf_bytes = pdf_src.read_bytes()
    jpeg_pixels = Image.open(jpeg).convert("L").tobytes()

    r_tiff = _ingest_one(capsys, archive_dir, tiff)
    r_jpeg = _ingest_one(capsys, archive_dir, jpeg)
    r_pdf = _ingest_one(capsys, archive_dir, pdf_src, "--keep-source")
    assert pdf_src.exists(), "--keep-source keeps the scan"

    shown = _pdf_page_images(_show(capsys, archive_dir, r_tiff, passphrase_file, tmp_path / "t.pdf"))
    assert [i.convert("L").tobytes() for i in shown] == [p.tobytes() for p in pages]
    (shown_jpeg,) = _pdf_page_images(_show(capsys, archive_dir, r_jpeg, passphrase_file, tmp_path / "j.pdf"))
    assert shown_jpeg.convert("L").tobytes() == jpeg_pixels, "JPEG data is embedded, never recompressed"
    assert _show(capsys, archive_dir, r_pdf, passphrase_file, tmp_path / "p.pdf") == pdf_bytes

    status = json.loads(cli(capsys, "--archive", archive_dir, "status", "--json").out)
    assert status["records"] == 3 and status["pages"] == 5


def test_same_scan_twice_makes_one_record(
    archive_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], small_scan: Path
) -> None:
    copy = tmp_path / "copy.png"
    copy.write_bytes(small_scan.read_bytes())
    first = _ingest_one(capsys, archive_dir, small_scan)
    run = cli(capsys, "--archive", archive_dir, "ingest", copy)
    assert run.code == 0
    assert f"already archived as record {first}" in run.out
    status = json.loads(cli(capsys, "--archive", archive_dir, "status", "--json").out)
    assert status["records"] == 1


def test_source_changed_during_ingest_is_kept(
    archive_dir: Path, small_scan: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source is removed only if it still holds exactly the archived bytes."""
    from scanarchive.ingest import pipeline
    from scanarchive.pages import pdf

    before = sha256(small_scan)
    original = pdf.build_pdf

    def build_and_touch(scan: Scan, settings: IngestSettings, pages: list[int] | None = None) -> bytes:
        small_scan.write_bytes(small_scan.read_bytes() + b"more")  # the scanner rewrites the file meanwhile
        return original(scan, settings, pages)

    monkeypatch.setattr(pdf, "build_pdf", build_and_touch)
    monkeypatch.setenv("SCANARCHIVE_PARSER_SANDBOX", "off")  # the patched build_pdf runs in this process only
    with Archive(archive_dir) as archive:
        result = pipeline.ingest_file(archive, small_scan)
    assert not result.source_removed
    assert small_scan.exists() and sha256(small_scan) != before


def test_several_files_at_once_keep_their_order_and_dedupe(
    archive_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.kits.badfiles import write_bad

    files = []
    for seed in (81, 82):
        image, _ = render_note(seed=seed, noise=0, sentences=1, height_in=3)
        path = tmp_path / f"s{seed}.png"
        image.save(path, dpi=(300, 300))
        files.append(path)
    twin = tmp_path / "s81-again.png"
    twin.write_bytes(files[0].read_bytes())
    bad = write_bad(tmp_path, "truncated png")
    run = cli(capsys, "--archive", archive_dir, "ingest", "--jobs", "2", files[0], bad, files[1], twin)
    assert run.code == 5, "the bad file's exit code; the others are archived"
    names = [line.split(":")[0] for line in run.out.splitlines() if not line.startswith(" ")]
    assert names == ["s81.png", "s82.png", "s81-again.png"], "results in the order given"
    assert any(line.startswith("s81-again.png: already archived as record") for line in run.out.splitlines())
    status = json.loads(cli(capsys, "--archive", archive_dir, "status", "--json").out)
    assert status["records"] == 2, "the same bytes twice make one record, even in parallel"
    assert bad.exists() and not twin.exists()


def test_ingest_json_is_one_object_per_file_and_the_library_writes_the_audit(
    archive_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from scanarchive import audit
    from tests.kits.badfiles import write_bad

    image, lines = render_note(seed=83, noise=0, sentences=1, height_in=3)
    first = tmp_path / "s83.png"
    image.save(first, dpi=(300, 300))
    twin = tmp_path / "s83-again.png"
    twin.write_bytes(first.read_bytes())
    bad = write_bad(tmp_path, "truncated png")
    opts = ("--client", "C-7", "--date", "2026-11-03", "--json")
    run = cli(capsys, "--archive", archive_dir, "ingest", "--jobs", "2", first, bad, twin, *opts)
    assert run.code == 5, "the bad file's exit code, as without --json"
    assert "error:" in run.err, "errors still go to stderr"
    docs = ingest_docs(run.out)  # every stdout line is one file's object, in input order
    assert [d["file"] for d in docs] == [str(first), str(bad), str(twin)]
    assert [d["outcome"] for d in docs] == ["archived", "refused", "duplicate"]
    archived, refused, duplicate = docs
    (record,) = archived["records"]
    assert record["client_code"] == "C-7" and record["session_date"] == "2026-11-03" and record["filed"]
    assert record["pages"] == [1] and record["identified_by"] == "command line" and record["note"] == ""
    assert record["record_class"] == "progress" and record["ocr_failed_pages"] == []
    assert archived["source_removed"] and archived["error"] is None and archived["seconds"] > 0
    assert "verified" in archived["verdict"]
    assert refused["error"]["kind"] == "InputRejected" and refused["error"]["exit_code"] == 5
    assert refused["error"]["message"] and refused["error"]["hint"] and not refused["source_removed"]
    assert [r["id"] for r in duplicate["records"]] == [record["id"]]
    assert not {w for w in note_words(lines) if w in run.out.lower()}, "never OCR text"
    entries = [e for e in audit.show(audit.log_path(archive_dir)) if e["event"] == "ingest"]
    assert sorted(e["duplicate"] for e in entries) == [False, True], "one entry per file that went in"
    assert all(e["records"] == [record["id"]] for e in entries)


def test_ingest_files_writes_each_files_audit_entry(archive_dir: Path, small_scan: Path) -> None:
    from scanarchive import audit
    from scanarchive.ingest.batch import ingest_files

    ((_, result),) = ingest_files(archive_dir, [small_scan], 1)
    assert not isinstance(result, Exception)
    (entry,) = [e for e in audit.show(audit.log_path(archive_dir)) if e["event"] == "ingest"]
    assert entry["records"] == [result.record_id] and entry["source_removed"] is True
