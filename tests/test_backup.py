"""Backups: consistent, hash-checked, restorable — and they mirror purges, so shredding reaches them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scanarchive.archive.layout import Archive
from tests.kits.helpers import cli, decide, find_plaintext, note_words, record_ids_from_json, render_note


def _ingest(
    archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], seed: int, day: str
) -> tuple[str, list[str]]:
    image, lines = render_note(seed=seed, sentences=2, height_in=3.5)
    src = tmp_path / f"n{seed}.png"
    image.save(src, dpi=(300, 300))
    run = cli(capsys, "--archive", archive, "ingest", src, "--client", "C-1", "--date", day, "--json")
    assert run.code == 0, run.err
    return record_ids_from_json(run.out)[0], lines


def test_backup_restore_verify_and_search(
    archive_dir: Path, passphrase_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, lines = _ingest(archive_dir, tmp_path, capsys, 61, "2026-01-05")
    backup = tmp_path / "backup"
    run = cli(capsys, "--archive", archive_dir, "backup", backup)
    assert run.code == 0, run.err
    assert "1 blob(s) copied" in run.out
    run = cli(capsys, "--archive", archive_dir, "backup", backup)
    assert "0 blob(s) copied, 1 intact" in run.out, "a second run only checks"

    restored = tmp_path / "restored"
    run = cli(capsys, "--archive", restored, "restore", backup)
    assert run.code == 0, run.err
    run = cli(capsys, "--archive", restored, "verify", "--read-data", "--passphrase-file", passphrase_file)
    assert run.code == 0 and "0 damaged" in run.out
    word = sorted(note_words(lines, min_len=6))[0]
    run = cli(capsys, "--archive", restored, "search", word, "--json", "--passphrase-file", passphrase_file)
    assert [r["record_id"] for r in json.loads(run.out)["results"]] == [first]
    assert find_plaintext([backup, restored], note_words(lines, min_len=5)) == [], (
        "the backup is as sealed as the archive"
    )


def test_a_damaged_blob_in_the_backup_is_repaired_and_a_damaged_backup_is_not_restored(
    archive_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _ingest(archive_dir, tmp_path, capsys, 62, "2026-01-06")
    backup = tmp_path / "backup"
    assert cli(capsys, "--archive", archive_dir, "backup", backup).code == 0
    (blob,) = [p for p in (backup / "objects").rglob("*") if p.is_file()]
    blob.chmod(0o600)
    blob.write_bytes(blob.read_bytes()[:-1] + b"\0")
    run = cli(capsys, "--archive", tmp_path / "r1", "restore", backup)
    assert run.code == 6 and "damaged" in run.err and not (tmp_path / "r1").exists()
    run = cli(capsys, "--archive", archive_dir, "backup", backup)
    assert "1 repaired" in run.out
    assert cli(capsys, "--archive", tmp_path / "r2", "restore", backup).code == 0


def test_the_next_backup_mirrors_a_purge(
    archive_dir: Path, passphrase_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, _ = _ingest(archive_dir, tmp_path, capsys, 63, "2015-01-05")
    kept, _ = _ingest(archive_dir, tmp_path, capsys, 64, "2026-11-02")
    backup = tmp_path / "backup"
    assert cli(capsys, "--archive", archive_dir, "backup", backup).code == 0
    with Archive(archive_dir) as archive:
        old_blob = archive.catalog.record(old).blob_sha256
        old_wrapped = archive.catalog.wrapped_key(old)
    assert (
        decide(
            capsys,
            archive_dir,
            passphrase_file,
            "client",
            "add",
            "C-1",
            "--born",
            "1970-01-01",
            "--terminated",
            "2015-01-05",
        ).code
        == 0
    )
    assert decide(capsys, archive_dir, passphrase_file, "retention", "use", "apa_2007").code == 0
    auto = decide(capsys, archive_dir, passphrase_file, "retention", "approval", "automatic")
    assert auto.code == 0, auto.err
    run = cli(capsys, "--archive", archive_dir, "purge", "--today", "2030-01-01", "--json")
    assert run.code == 0, run.err
    assert json.loads(run.out)["destroyed"] == [], "C-1 had a session in 2026: the last service keeps both"
    # end the relationship long ago and drop the 2026 note's facts: only the 2015 note is due
    with Archive(archive_dir) as archive, archive.catalog.transaction() as db:
        db.execute("UPDATE records SET client_code = 'C-2' WHERE id = ?", (kept,))
    run = cli(capsys, "--archive", archive_dir, "purge", "--today", "2030-01-01", "--json")
    assert json.loads(run.out)["destroyed"] == [old]

    run = cli(capsys, "--archive", archive_dir, "backup", backup)
    assert "1 of destroyed records removed" in run.out
    assert not [p for p in (backup / "objects").rglob("*") if p.name == old_blob[2:]]
    assert old_wrapped not in (backup / "catalog.db").read_bytes(), "the backup's catalog lost the key too"
    assert (backup / "certificates" / f"{old}.json").exists()
