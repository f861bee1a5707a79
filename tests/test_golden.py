"""Archives written by earlier versions must keep opening (tests/data/golden/)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from scanarchive.archive.layout import Archive
from tests.kits.helpers import cli

GOLDEN = Path(__file__).parent / "data" / "golden"
VERSIONS = sorted(p for p in GOLDEN.iterdir() if p.is_dir() and (p / "expected.json").is_file())


@pytest.fixture(params=VERSIONS, ids=lambda p: p.name)
def golden(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, dict[str, object]]:
    copy = tmp_path / "golden"
    shutil.copytree(request.param, copy)
    expected = json.loads((copy / "expected.json").read_text())
    (copy / "expected.json").unlink()
    pw = tmp_path / "pw"
    pw.write_text(expected["passphrase"])
    pw.chmod(0o600)  # a passphrase file others can read is refused
    return copy, expected


def test_there_is_a_golden_archive() -> None:
    assert VERSIONS, "tests/data/golden/ must hold at least one golden archive"


def test_golden_records_decrypt_to_the_same_bytes(golden: tuple[Path, dict[str, object]]) -> None:
    root, expected = golden
    with Archive(root) as archive:
        identity = archive.unlock(str(expected["passphrase"]))
        for want in expected["records"]:  # type: ignore[attr-defined]
            record = archive.catalog.record(want["record_id"])
            assert record.blob_sha256 == want["blob_sha256"]
            pdf = archive.open_section(identity, record, "pdf")
            ocr = archive.open_section(identity, record, "ocr")
            assert hashlib.sha256(pdf).hexdigest() == want["pdf_sha256"]
            assert hashlib.sha256(ocr).hexdigest() == want["ocr_sha256"]
            assert pdf.startswith(b"%PDF-")
            assert archive.ocr_pages(identity, record)[0].status == "ok"


def test_golden_archive_verifies_and_searches(
    golden: tuple[Path, dict[str, object]], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    root, expected = golden
    pw = tmp_path / "pw"
    run = cli(capsys, "--archive", root, "verify", "--read-data", "--passphrase-file", pw)
    assert run.code == 0, run.err
    assert "0 damaged" in run.out
    for want in expected["records"]:  # type: ignore[attr-defined]
        run = cli(capsys, "--archive", root, "search", want["searchable_word"], "--passphrase-file", pw, "--json")
        assert run.code == 0, run.err
        assert [r["record_id"] for r in json.loads(run.out)["results"]] == [want["record_id"]]


def test_golden_quarantine_opens(golden: tuple[Path, dict[str, object]]) -> None:
    from scanarchive.archive import quarantine

    root, expected = golden
    held = expected.get("quarantine", [])
    with Archive(root) as archive:
        identity = archive.unlock(str(expected["passphrase"]))
        for want in held:  # type: ignore[attr-defined]
            entry = quarantine.get(archive, want["id"])
            data = quarantine.open_scan(archive, identity, entry)
            assert hashlib.sha256(data).hexdigest() == want["original_sha256"]
        assert len(quarantine.entries(archive)) == len(held)  # type: ignore[arg-type]
