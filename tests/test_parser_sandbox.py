"""The parser sandbox (docs/threat-model.md, 'Parser sandbox'): the process that decodes a scan can write
nothing outside its private folder and reach no network; its death costs no scan and no watcher; and what
it produces is exactly what the unsandboxed analysis produces. Real processes throughout; the only
injected faults are the test hook (probe, kill) of scanarchive/ingest/analyse.py."""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
from pathlib import Path

import pytest
from PIL import Image

from scanarchive.archive.layout import Archive
from scanarchive.errors import InputRejected
from scanarchive.ingest import analyse, parser
from scanarchive.ocr import document, ensemble
from tests.kits.badfiles import BAD_FILES
from tests.kits.helpers import cli, render_note
from tests.kits.watchkit import catalog_rows, in_progress, small_scan_bytes, start_watcher, wait_for

needs_sandbox = pytest.mark.skipif(
    not analyse.sandboxed(), reason=f"no parser sandbox here: {analyse.sandbox_status()}"
)


def request(archive_dir: Path, **fields: object) -> analyse.Request:
    with Archive(archive_dir) as archive:
        return analyse.Request(archive.config.ingest, archive.catalog.sheet_key(), archive.config.archive8, **fields)  # type: ignore[arg-type]


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", dpi=(300, 300))
    return out.getvalue()


def undated(pdf: bytes) -> bytes:
    """A PDF without its creation and modification times and its file /ID (img2pdf and qpdf derive them from
    the time of the run: two in-process runs differ there too)."""
    pdf = re.sub(rb"/(CreationDate|ModDate) ?\([^)]*\)", b"", pdf)
    return re.sub(rb"/ID ?\[ ?<[0-9a-fA-F]*> ?<[0-9a-fA-F]*> ?\]", b"", pdf)


def comparable(result: analyse.Analysis) -> dict[str, object]:
    return {
        "kind": result.kind,
        "records": [
            (
                r.outcome.source_pages,
                r.outcome.client_code,
                r.outcome.session_date,
                r.outcome.record_class,
                r.outcome.identified_by,
                r.outcome.ocr_failed_pages,
                r.outcome.note,
                r.blank,
                hashlib.sha256(undated(r.pdf)).hexdigest(),
                [[w.text for w in page.words] for page in document.from_json(r.ocr_doc)],
                [page.boxes for page in document.from_json(r.ocr_doc)],
                r.quality,
            )
            for r in result.records
        ],
        "blank_pages": result.blank_pages,
        "quality": result.quality,
        "verdict": result.verdict,
    }


@needs_sandbox
def test_the_parser_cannot_write_outside_its_folder_nor_reach_the_network(
    archive_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    waiting = drop / "waiting.png"
    waiting.write_bytes(b"another client's scan")
    catalog = archive_dir / "catalog.db"
    req = request(archive_dir)  # (this makes the sheet key, once: the catalog changes here, in the parent)
    before = catalog.read_bytes()
    monkeypatch.setenv(analyse.ENV_HOOK, f"probe:{catalog}|{waiting}")
    image, _ = render_note(seed=41, noise=0, sentences=1, height_in=3)

    result = analyse.run(req, png(image))

    assert result.sandbox == analyse.sandbox_status() == "landlock+netns"
    for target in (catalog, waiting):
        assert result.probes[str(target)] in ("EACCES", "EPERM"), result.probes
        assert result.probes[f"{target}+new"] in ("EACCES", "EPERM"), result.probes
    assert result.probes["inet-tcp"] in ("EACCES", "EPERM", "ENETUNREACH"), result.probes
    assert result.probes["inet-udp"] in ("EACCES", "EPERM", "ENETUNREACH"), result.probes
    assert catalog.read_bytes() == before, "the catalog is byte for byte unchanged"
    assert waiting.read_bytes() == b"another client's scan"
    assert not list(drop.glob("planted*")) and not list(archive_dir.glob("planted*"))
    assert len(result.records) == 1, "and the scan was still read"


def test_the_probe_sees_a_write_that_is_allowed(tmp_path: Path) -> None:
    """The check above can fail: the same probe, run unsandboxed in this process, is allowed to write."""
    target = tmp_path / "catalog.db"
    target.write_bytes(b"x")
    found = parser._probe(str(target))
    assert found[str(target)] == "allowed" and found[f"{target}+new"] == "allowed"


def test_a_rejection_comes_back_as_the_same_error(archive_dir: Path) -> None:
    _, make, _ = BAD_FILES["truncated png"]
    data = make()
    req = request(archive_dir)
    with pytest.raises(InputRejected) as here:
        analyse.analyse(req, data)
    with pytest.raises(InputRejected) as there:
        analyse.run(req, data)
    assert (there.value.message, there.value.hint) == (here.value.message, here.value.hint)
    assert type(there.value) is InputRejected


def test_a_killed_parser_is_a_retryable_error(archive_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(analyse.ENV_HOOK, "kill")
    data, _ = small_scan_bytes(42)
    with pytest.raises(analyse.ParserCrashed, match="SIGKILL"):
        analyse.run(request(archive_dir), data)


@needs_sandbox
def test_a_note_reads_the_same_with_and_without_the_sandbox(archive_dir: Path) -> None:
    image, _ = render_note(seed=43, noise=0, sentences=2, height_in=4)
    data = png(image)
    req = request(archive_dir, client="C-0043", session_date="2026-11-02")
    inside = analyse.run(req, data)
    outside = analyse.analyse(req, data)
    assert inside.sandbox == "landlock+netns"
    assert comparable(inside) == comparable(outside)
    words = [w for r in inside.records for p in document.from_json(r.ocr_doc) for w in p.words]
    assert words, "the engines read words inside the sandbox"
    engines = {p.engine for r in inside.records for p in document.from_json(r.ocr_doc)}
    assert all("tesseract" in e for e in engines), engines
    with Archive(archive_dir) as archive:
        if "rapidocr" in ensemble.engine_status(archive.config.ingest).running:
            assert all("rapidocr" in e for e in engines), "RapidOCR loaded its models under Landlock"


@needs_sandbox
def test_a_stack_of_three_sessions_files_the_same_with_and_without_the_sandbox(
    archive_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.test_sheets import printed, save_stack, scan, write_on

    a = printed(archive_dir, tmp_path, capsys, "--client", "C-1", "--date", "2026-10-01")
    b = printed(archive_dir, tmp_path, capsys, "--client", "C-2", "--date", "2026-10-02")
    c = printed(archive_dir, tmp_path, capsys, "--client", "C-1", "--date", "2026-10-08")
    written = [write_on(p, seed=i) for i, p in enumerate([a[0], b[0], c[0]])]
    blank = Image.new("L", a[0].size, 255)
    stack = [
        scan(p, seed=i, jpeg=False).convert("L") for i, p in enumerate([written[0], written[1], blank, written[2]])
    ]
    path = save_stack(tmp_path / "stack.tif", stack)
    req = request(archive_dir)
    inside = analyse.run(req, path.read_bytes())
    outside = analyse.analyse(req, path.read_bytes())
    assert comparable(inside) == comparable(outside)
    assert [(r.outcome.client_code, r.outcome.session_date, r.outcome.source_pages) for r in inside.records] == [
        ("C-1", "2026-10-01", [1]),
        ("C-2", "2026-10-02", [2]),
        ("C-1", "2026-10-08", [4]),
    ]
    assert all(r.outcome.identified_by == "sheet" for r in inside.records)
    # and the whole ingest, through the sandbox, stores them as before
    run = cli(capsys, "--archive", archive_dir, "ingest", path)
    assert run.code == 0, run.err
    assert "3 records" in run.out


def test_status_says_how_the_parser_is_confined(archive_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = json.loads(cli(capsys, "--archive", archive_dir, "status", "--json").out)
    assert doc["parser_sandbox"] == analyse.sandbox_status()
    text = cli(capsys, "--archive", archive_dir, "status").out
    assert f"Parser:     {analyse.sandbox_status()}" in text
    assert ("not fully sandboxed" in text) is (not analyse.sandboxed())


def test_a_parser_that_dies_on_every_try_leaves_the_watcher_alive_and_the_scan_safe(
    archive_dir: Path, drop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed mid-analysis (after the look stage) on every attempt: the scan stays in journal/ while it is
    retried, then is sealed into the quarantine (the rule for unexplained failures); the watcher never stops."""
    data, _ = small_scan_bytes(44)
    log = tmp_path / "watch.log"
    monkeypatch.setenv(analyse.ENV_HOOK, "kill")  # inherited by the watcher, and by its parser children
    proc = start_watcher(archive_dir, log=log)
    try:
        (drop / "scan.png").write_bytes(data)
        wait_for(lambda: in_progress(archive_dir) == 1, 60, "the scan to be claimed into the journal")
        assert list((archive_dir / "journal").iterdir()), "the scan is kept in journal/ while it is retried"
        wait_for(lambda: catalog_rows(archive_dir, "SELECT COUNT(*) FROM quarantine") == [(1,)], 120, "the quarantine")
        time.sleep(1)
        assert proc.poll() is None, "the watcher is still running"
        assert catalog_rows(archive_dir, "SELECT COUNT(*) FROM records") == [(0,)]
        assert in_progress(archive_dir) == 0
        text = log.read_text(errors="replace")
        assert "stopped unexpectedly (SIGKILL)" in text
        assert "scan.png" not in text, "no file name in the log"
    finally:
        proc.terminate()
        proc.wait(timeout=60)
