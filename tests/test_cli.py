"""init, passwd, status, missing identity, wrong passphrase: each says what happened and changes nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from scanarchive.errors import ArchiveExists, ArchiveNotFound, IdentityUnavailable, UsageError, WrongPassphrase
from tests.conftest import PASSPHRASE
from tests.kits.helpers import cli, cli_process


def test_init_makes_a_private_archive_and_refuses_an_existing_one(
    archive_dir: Path, passphrase_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (archive_dir.stat().st_mode & 0o777) == 0o700
    names = sorted(p.name for p in archive_dir.iterdir())
    assert names == ["audit.log", "catalog.db", "config.toml", "decisions", "identity.enc", "objects"]
    identity = json.loads((archive_dir / "identity.enc").read_text())
    assert identity["kdf"]["name"] == "scrypt" and "ciphertext" in identity
    config = (archive_dir / "config.toml").read_text()
    assert "scanarchive-recipient-1:" in config
    before = (archive_dir / "identity.enc").read_bytes()
    run = cli(capsys, "--archive", archive_dir, "init", "--passphrase-file", passphrase_file)
    assert run.code == ArchiveExists.exit_code and "already holds" in run.err
    assert (archive_dir / "identity.enc").read_bytes() == before


def test_init_refuses_empty_passphrase(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    empty.chmod(0o600)  # a passphrase file others can read is refused
    run = cli(capsys, "--archive", tmp_path / "a", "init", "--passphrase-file", empty)
    assert run.code == UsageError.exit_code and "empty passphrase" in run.err
    assert not (tmp_path / "a").exists()


def test_archive_from_environment(
    tmp_path: Path, passphrase_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SCANARCHIVE_ARCHIVE", str(tmp_path / "env-archive"))
    monkeypatch.setenv("SCANARCHIVE_PASSPHRASE_FILE", str(passphrase_file))
    assert cli(capsys, "init", "--kdf-seconds", "0.01").code == 0
    assert (tmp_path / "env-archive" / "config.toml").is_file()
    assert cli(capsys, "status").code == 0


def test_no_archive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = cli(capsys, "--archive", tmp_path / "none", "status")
    assert run.code == ArchiveNotFound.exit_code and "scanarchive init" in run.err


def test_ingest_without_identity_then_search_says_why(
    archive_dir: Path, passphrase_file: Path, small_scan: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    identity = archive_dir / "identity.enc"
    saved = identity.read_bytes()
    identity.unlink()
    run = cli(capsys, "--archive", archive_dir, "ingest", small_scan)
    assert run.code == 0, run.err
    run = cli(capsys, "--archive", archive_dir, "search", "anything", "--passphrase-file", passphrase_file)
    assert run.code == IdentityUnavailable.exit_code
    assert "identity" in run.err and "backup" in run.err
    assert "Traceback" not in run.err
    assert "identity.enc is missing" in cli(capsys, "--archive", archive_dir, "status").out
    identity.write_bytes(saved)
    run = cli(capsys, "--archive", archive_dir, "search", "anything", "--passphrase-file", passphrase_file)
    assert run.code == 0, run.err


def test_wrong_passphrase_changes_nothing(
    archive_dir: Path, tmp_path: Path, small_scan: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, "--archive", archive_dir, "ingest", small_scan).code == 0
    wrong = tmp_path / "wrong"
    wrong.write_text("not the passphrase")
    wrong.chmod(0o600)  # a passphrase file others can read is refused
    before = {p: p.read_bytes() for p in archive_dir.rglob("*") if p.is_file() and not p.name.startswith("catalog")}
    for verb in (["search", "word"], ["verify", "--read-data"], ["passwd"]):
        run = cli(capsys, "--archive", archive_dir, *verb, "--passphrase-file", wrong)
        assert run.code == WrongPassphrase.exit_code, verb
        assert "passphrase does not unlock" in run.err and "Nothing was changed" in run.err
    after = {p: p.read_bytes() for p in archive_dir.rglob("*") if p.is_file() and not p.name.startswith("catalog")}
    assert after == before
    assert not (archive_dir / "index.db").exists()


def test_passwd_changes_only_the_identity(
    archive_dir: Path, passphrase_file: Path, tmp_path: Path, small_scan: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, "--archive", archive_dir, "ingest", small_scan).code == 0
    blobs = {p: p.read_bytes() for p in (archive_dir / "objects").rglob("*") if p.is_file()}
    new = tmp_path / "new"
    new.write_text("a brand new passphrase")
    new.chmod(0o600)  # a passphrase file others can read is refused
    run = cli(
        capsys, "--archive", archive_dir, "passwd", "--passphrase-file", passphrase_file, "--new-passphrase-file", new
    )
    assert run.code == 0, run.err
    assert (archive_dir / "identity.enc").stat().st_mode & 0o077 == 0
    assert cli(capsys, "--archive", archive_dir, "verify", "--read-data", "--passphrase-file", new).code == 0
    old = cli(capsys, "--archive", archive_dir, "verify", "--read-data", "--passphrase-file", passphrase_file)
    assert old.code == WrongPassphrase.exit_code
    assert {p: p.read_bytes() for p in (archive_dir / "objects").rglob("*") if p.is_file()} == blobs


def test_status_never_shows_secrets(archive_dir: Path, small_scan: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        cli(capsys, "--archive", archive_dir, "ingest", small_scan, "--client", "C-9", "--date", "2026-11-02").code == 0
    )
    run = cli(capsys, "--archive", archive_dir, "status", "--json")
    doc = json.loads(run.out)
    assert doc["records"] == 1 and doc["pages"] == 1 and doc["unfiled"] == 0
    assert {"quarantined", "in_progress", "last_ingest", "sealed_bytes"} <= set(doc)
    identity = json.loads((archive_dir / "identity.enc").read_text())
    assert identity["ciphertext"] not in run.out


def test_no_passphrase_source_and_no_terminal(archive_dir: Path) -> None:
    run = cli_process("--archive", archive_dir, "search", "word", env={"SCANARCHIVE_PASSPHRASE_FILE": ""})
    assert run.code == UsageError.exit_code
    assert "--passphrase-file" in run.err


def test_bad_arguments_exit_2(archive_dir: Path) -> None:
    run = cli_process("--archive", archive_dir, "ingest", "x.png", "--date", "27/11/2026")
    assert run.code == 2 and "not a date" in run.err
    run = cli_process("--archive", archive_dir, "ingest", "x.png", "--client", "Jane Doe")
    assert run.code == 2 and "client code" in run.err
    assert os.path.exists(archive_dir)


def test_a_passphrase_file_others_can_read_is_refused_before_it_is_read(
    archive_dir: Path, passphrase_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    passphrase_file.chmod(0o644)
    run = cli(capsys, "--archive", archive_dir, "search", "word", "--passphrase-file", passphrase_file)
    assert run.code == UsageError.exit_code
    assert "can be read by other users" in run.err and "chmod 600" in run.err
    assert PASSPHRASE not in run.out + run.err
    passphrase_file.chmod(0o600)
    assert cli(capsys, "--archive", archive_dir, "search", "word", "--passphrase-file", passphrase_file).code == 0


def test_a_weak_new_passphrase_is_refused_and_nothing_is_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weak = tmp_path / "weak"
    weak.write_text("password123\n")
    weak.chmod(0o600)
    run = cli(capsys, "--archive", tmp_path / "a", "init", "--passphrase-file", weak, "--kdf-seconds", "0.01")
    assert run.code == UsageError.exit_code
    assert "too easy to guess" in run.err and "password123" not in run.err
    assert not (tmp_path / "a").exists()
