"""Bad scans get a non-zero exit and a plain reason, and the source is left untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanarchive.errors import InputRejected
from tests.kits.badfiles import BAD_FILES, tiff_multipage, write_bad
from tests.kits.helpers import cli, sha256


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_is_refused_and_left_untouched(
    name: str, archive_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    path = write_bad(drop, name)
    before = sha256(path)
    run = cli(capsys, "--archive", archive_dir, "ingest", path)
    assert run.code == InputRejected.exit_code, run.err
    assert path.exists() and sha256(path) == before
    reason = BAD_FILES[name][2]
    assert reason.lower() in run.err.lower()
    assert "error:" in run.err and "what to do:" in run.err
    assert "Traceback" not in run.err
    # nothing was archived, nothing half-written was left
    status = cli(capsys, "--archive", archive_dir, "status", "--json")
    assert '"records": 0' in status.out
    assert not [p for p in (archive_dir / "objects").rglob("*") if p.is_file()]


def test_one_bad_file_does_not_stop_the_others(
    archive_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], small_scan: Path
) -> None:
    bad = write_bad(tmp_path, "truncated png")
    run = cli(capsys, "--archive", archive_dir, "ingest", bad, small_scan)
    assert run.code == InputRejected.exit_code
    assert "record " in run.out
    assert bad.exists() and not small_scan.exists()


def test_missing_file_and_folder(archive_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = cli(capsys, "--archive", archive_dir, "ingest", tmp_path / "nope.png")
    assert run.code == InputRejected.exit_code and "does not exist" in run.err
    run = cli(capsys, "--archive", archive_dir, "ingest", tmp_path)
    assert run.code == InputRejected.exit_code and "is a folder, not a scan file" in run.err


def test_symlink_is_refused(
    archive_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], small_scan: Path
) -> None:
    link = tmp_path / "link.png"
    link.symlink_to(small_scan)
    run = cli(capsys, "--archive", archive_dir, "ingest", link)
    assert run.code == InputRejected.exit_code
    assert small_scan.exists() and link.is_symlink()


def test_page_limit(archive_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = archive_dir / "config.toml"
    config.write_text(config.read_text().replace("max_pages = 500", "max_pages = 2"))
    path = tmp_path / "three.tif"
    path.write_bytes(tiff_multipage())
    run = cli(capsys, "--archive", archive_dir, "ingest", path)
    assert run.code == InputRejected.exit_code
    assert "limit is 2" in run.err and path.exists()
