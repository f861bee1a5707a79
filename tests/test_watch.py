"""The drop-folder watcher: settle, claim, quarantine, failed/, locks and folder safety."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from scanarchive.errors import ConfigError, InputRejected, WatcherRunning
from tests.kits.badfiles import BAD_FILES, write_bad
from tests.kits.helpers import cli, sha256
from tests.kits.watchkit import (
    drop_files,
    sha256_bytes,
    small_scan_bytes,
    source_hashes,
    start_watcher,
    wait_for,
)


def test_once_archives_good_quarantines_bad_and_ignores_partials(
    archive_dir: Path, drop: Path, passphrase_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    goods = [small_scan_bytes(seed)[0] for seed in (1, 2, 3)]
    for n, data in enumerate(goods):
        (drop / f"scan{n}.png").write_bytes(data)
    bad = write_bad(drop, "truncated png")
    bad_bytes = bad.read_bytes()
    for junk in (".hidden.png", "upload.png.part", "~lock.png", "Thumbs.db", "._scan0.png"):
        (drop / junk).write_bytes(goods[0])

    run = cli(capsys, "--archive", archive_dir, "watch", "--once")
    assert run.code == 0, run.err
    assert "3 archived" in run.out and "1 quarantined" in run.out
    assert sorted(source_hashes(archive_dir)) == sorted(sha256_bytes(g) for g in goods)
    left = sorted(p.name for p in drop_files(drop))
    assert left == sorted([".hidden.png", "upload.png.part", "~lock.png", "Thumbs.db", "._scan0.png"])

    note = drop / "failed" / "cut.png.txt"
    text = note.read_text()
    assert "damaged" in text and "scanarchive failed retry" in text
    status = json.loads(cli(capsys, "--archive", archive_dir, "status", "--json").out)
    assert status["quarantined"] == 1 and status["in_progress"] == 0 and status["records"] == 3

    listing = cli(capsys, "--archive", archive_dir, "failed", "list")
    entry_id = listing.out.split()[0]
    assert "cut.png" not in listing.out and "(name sealed)" in listing.out, "file names are sealed in the catalog"
    listing = cli(capsys, "--archive", archive_dir, "failed", "list", "--names", "--passphrase-file", passphrase_file)
    assert "cut.png" in listing.out
    out = tmp_path / "recovered.png"
    run = cli(
        capsys, "--archive", archive_dir, "failed", "show", entry_id, "-o", out, "--passphrase-file", passphrase_file
    )
    assert run.code == 0, run.err
    assert out.read_bytes() == bad_bytes, "the quarantined scan comes back byte for byte"
    run = cli(capsys, "--archive", archive_dir, "failed", "retry", entry_id, "--passphrase-file", passphrase_file)
    assert run.code == InputRejected.exit_code, "still damaged: the entry stays"
    run = cli(capsys, "--archive", archive_dir, "failed", "drop", entry_id, "--yes", "--passphrase-file", passphrase_file)
    assert run.code == 0, run.err
    assert not note.exists()
    assert json.loads(cli(capsys, "--archive", archive_dir, "status", "--json").out)["quarantined"] == 0
    assert not [p for p in (archive_dir / "quarantine").rglob("*") if p.is_file()]


def test_retry_archives_a_quarantined_scan_once_it_can(
    archive_dir: Path, drop: Path, passphrase_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A scan over the page limit is quarantined; after raising the limit, retry archives it."""
    from tests.kits.badfiles import tiff_multipage
    from tests.kits.watchkit import set_config

    set_config(archive_dir, max_pages=2)
    data = tiff_multipage()
    (drop / "stack.tif").write_bytes(data)
    assert cli(capsys, "--archive", archive_dir, "watch", "--once").code == 0
    entry_id = cli(capsys, "--archive", archive_dir, "failed", "list").out.split()[0]
    set_config(archive_dir, max_pages=500)
    run = cli(capsys, "--archive", archive_dir, "failed", "retry", entry_id, "--passphrase-file", passphrase_file)
    assert run.code == 0, run.err
    assert source_hashes(archive_dir) == [sha256_bytes(data)]
    assert not (drop / "failed" / "stack.tif.txt").exists()


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_each_bad_file_ends_in_quarantine_with_a_plain_reason(
    name: str, archive_dir: Path, drop: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_bad(drop, name)
    original = sha256(path)
    run = cli(capsys, "--archive", archive_dir, "watch", "--once")
    assert run.code == 0, run.err
    assert not path.exists(), "no readable scan is left on the share"
    (note,) = (drop / "failed").iterdir()
    assert BAD_FILES[name][2].lower() in note.read_text().lower()
    from scanarchive.archive import quarantine
    from scanarchive.archive.layout import Archive

    with Archive(archive_dir) as archive:
        (entry,) = quarantine.entries(archive)
    assert entry.source_sha256 == original


def test_watcher_keeps_running_through_bad_files(archive_dir: Path, drop: Path, tmp_path: Path) -> None:
    proc = start_watcher(archive_dir, log=tmp_path / "watch.log")
    try:
        for name in sorted(BAD_FILES):
            write_bad(drop, name)
        goods = [small_scan_bytes(seed)[0] for seed in (7, 8)]
        time.sleep(1)
        for n, data in enumerate(goods):
            (drop / f"good{n}.png").write_bytes(data)
        wait_for(lambda: len(source_hashes(archive_dir)) == 2, 120, "the good scans after the bad ones")
        wait_for(lambda: not drop_files(drop), 60, "an empty drop folder")
        # each file is read in its own parser child (~0.7 s a start): the notes may trail the good scans
        wait_for(lambda: len(list((drop / "failed").iterdir())) >= len(BAD_FILES), 60, "a note for each bad file")
        assert proc.poll() is None, "the watcher is still running"
        assert len(list((drop / "failed").iterdir())) == len(BAD_FILES)
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0, "SIGTERM is a clean shutdown"
    log = (tmp_path / "watch.log").read_text()
    assert "Traceback" not in log


def test_second_watcher_is_refused(
    archive_dir: Path, drop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proc = start_watcher(archive_dir)
    try:
        wait_for(
            lambda: (archive_dir / "watch.lock").exists() and (archive_dir / "watch.lock").read_text() != "",
            30,
            "the first watcher's lock",
        )
        run = cli(capsys, "--archive", archive_dir, "watch")
        assert run.code == WatcherRunning.exit_code
        assert f"pid {proc.pid}" in run.err
    finally:
        proc.kill()
        proc.wait()
    # a SIGKILLed watcher leaves no stale lock behind
    assert cli(capsys, "--archive", archive_dir, "watch", "--once").code == 0


def test_drop_folder_and_archive_must_not_overlap(
    archive_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inside = archive_dir / "scans"
    inside.mkdir()
    run = cli(capsys, "--archive", archive_dir, "watch", "--drop", inside, "--once")
    assert run.code == ConfigError.exit_code and "inside the archive" in run.err
    run = cli(capsys, "--archive", archive_dir, "watch", "--drop", archive_dir.parent, "--once")
    assert run.code == ConfigError.exit_code and "archive is inside the drop folder" in run.err
    run = cli(capsys, "--archive", archive_dir, "watch", "--drop", tmp_path / "nope", "--once")
    assert run.code == ConfigError.exit_code and "does not exist" in run.err


def test_symlinks_and_subfolders_are_not_taken(
    archive_dir: Path, drop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path / "outside.png"
    outside.write_bytes(small_scan_bytes(4)[0])
    (drop / "link.png").symlink_to(outside)
    (drop / "sub").mkdir()
    (drop / "sub" / "inner.png").write_bytes(small_scan_bytes(5)[0])
    assert cli(capsys, "--archive", archive_dir, "watch", "--once").code == 0
    assert source_hashes(archive_dir) == []
    assert outside.exists() and (drop / "sub" / "inner.png").exists()


def test_verify_checks_the_quarantine_too(
    archive_dir: Path, drop: Path, passphrase_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_bad(drop, "text renamed png")
    assert cli(capsys, "--archive", archive_dir, "watch", "--once").code == 0
    run = cli(capsys, "--archive", archive_dir, "verify", "--read-data", "--passphrase-file", passphrase_file)
    assert run.code == 0 and "1 quarantined scan(s)" in run.out
    (blob,) = [p for p in (archive_dir / "quarantine").rglob("*") if p.is_file()]
    blob.chmod(0o600)
    data = bytearray(blob.read_bytes())
    data[-1] ^= 1
    blob.write_bytes(bytes(data))
    run = cli(capsys, "--archive", archive_dir, "verify")
    assert run.code == 6 and "DAMAGED  quarantined scan" in run.out
