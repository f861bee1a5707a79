"""Journal recovery, state by state: what a crash at each step leaves, and what start-up makes of it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from scanarchive.archive.layout import Archive
from scanarchive.clock import now_utc
from scanarchive.intake.claim import Journal, file_sha256
from scanarchive.intake.watch import Watcher
from tests.kits.watchkit import fast_watch_config, sha256_bytes, small_scan_bytes, source_hashes


@pytest.fixture
def setup(archive_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    drop = tmp_path / "scans"
    drop.mkdir()
    fast_watch_config(archive_dir, drop)
    return archive_dir, drop


def _row(archive: Archive, claim_id: str, source: Path, state: str, sha: str | None = None) -> None:
    with archive.catalog.transaction() as db:
        db.execute(
            "INSERT INTO journal(claim_id, source_name, source_path, sha256, state, claimed_at, updated_at)"
            " VALUES (?,?,?,?,?,?,?)",
            (claim_id, source.name, str(source), sha, state, now_utc(), now_utc()),
        )


def _recover_and_run(root: Path, drop: Path) -> None:
    with Archive(root) as archive:
        Watcher(archive, drop).run(once=True)


def test_crash_before_the_rename_leaves_the_scan_in_the_drop_folder(setup: tuple[Path, Path]) -> None:
    root, drop = setup
    data, _ = small_scan_bytes(1)
    (drop / "a.png").write_bytes(data)
    with Archive(root) as archive:
        _row(archive, "00000000-0000-4000-8000-000000000001", drop / "a.png", "claiming")
    _recover_and_run(root, drop)
    assert source_hashes(root) == [sha256_bytes(data)]
    assert not (drop / "a.png").exists()


def test_crash_after_the_rename_finishes_the_claim(setup: tuple[Path, Path]) -> None:
    root, drop = setup
    data, _ = small_scan_bytes(2)
    with Archive(root) as archive:
        journal = Journal(root, archive.catalog)
        _row(archive, "00000000-0000-4000-8000-000000000002", drop / "b.png", "claiming")
        journal.path_of("00000000-0000-4000-8000-000000000002").write_bytes(data)
    _recover_and_run(root, drop)
    assert source_hashes(root) == [sha256_bytes(data)]
    assert not list((root / "journal").iterdir())


def test_crash_mid_copy_discards_the_partial_copy(setup: tuple[Path, Path]) -> None:
    root, drop = setup
    data, _ = small_scan_bytes(3)
    (drop / "c.png").write_bytes(data)
    with Archive(root) as archive:
        journal = Journal(root, archive.catalog)
        claim_id = "00000000-0000-4000-8000-000000000003"
        _row(archive, claim_id, drop / "c.png", "copying")
        Path(str(journal.path_of(claim_id)) + ".part").write_bytes(data[:100])
    _recover_and_run(root, drop)
    assert source_hashes(root) == [sha256_bytes(data)], "claimed again from the drop folder, once"
    assert not list((root / "journal").iterdir())


def test_crash_after_copy_before_unlink_removes_the_source_once(setup: tuple[Path, Path]) -> None:
    root, drop = setup
    data, _ = small_scan_bytes(4)
    (drop / "d.png").write_bytes(data)
    with Archive(root) as archive:
        journal = Journal(root, archive.catalog)
        claim_id = "00000000-0000-4000-8000-000000000004"
        _row(archive, claim_id, drop / "d.png", "copying")
        journal.path_of(claim_id).write_bytes(data)
    _recover_and_run(root, drop)
    assert source_hashes(root) == [sha256_bytes(data)]
    assert not (drop / "d.png").exists()


def test_crash_after_the_record_was_stored_makes_no_second_record(setup: tuple[Path, Path]) -> None:
    root, drop = setup
    data, _ = small_scan_bytes(5)
    (drop / "e.png").write_bytes(data)
    _recover_and_run(root, drop)
    assert len(source_hashes(root)) == 1
    with Archive(root) as archive:  # as if the crash came after the catalog commit, before the release
        journal = Journal(root, archive.catalog)
        claim_id = "00000000-0000-4000-8000-000000000005"
        journal.path_of(claim_id).write_bytes(data)
        _row(archive, claim_id, drop / "e.png", "claimed", file_sha256(journal.path_of(claim_id)))
    _recover_and_run(root, drop)
    assert source_hashes(root) == [sha256_bytes(data)]
    assert not list((root / "journal").iterdir())
    db = sqlite3.connect(root / "catalog.db")
    assert db.execute("SELECT COUNT(*) FROM journal").fetchone()[0] == 0
