"""The tampering matrix: one-byte flips and truncations of every stored part are detected, with a
message naming what is damaged. Nothing is silently accepted; the search index, which is derived data,
is rebuilt from the sealed records (and says so)."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from scanarchive.errors import IntegrityError, WrongPassphrase
from tests.kits.helpers import cli, record_ids_from_json, render_note


@pytest.fixture
def stored(archive_dir: Path, passphrase_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    image, _ = render_note(seed=71, sentences=2, height_in=3)
    src = tmp_path / "n.png"
    image.save(src, dpi=(300, 300))
    run = cli(capsys, "--archive", archive_dir, "ingest", src, "--client", "C-1", "--date", "2026-11-01", "--json")
    assert run.code == 0, run.err
    assert cli(capsys, "--archive", archive_dir, "search", "anything", "--passphrase-file", passphrase_file).code == 0
    return record_ids_from_json(run.out)[0]


def _flip(path: Path, at: int) -> None:
    path.chmod(0o600)
    data = bytearray(path.read_bytes())
    data[at % len(data)] ^= 0x04
    path.write_bytes(bytes(data))


def test_wrapped_key_row(
    stored: str, archive_dir: Path, passphrase_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = sqlite3.connect(archive_dir / "catalog.db")
    wrapped = bytearray(db.execute("SELECT wrapped FROM record_keys WHERE record_id = ?", (stored,)).fetchone()[0])
    wrapped[40] ^= 1
    db.execute("UPDATE record_keys SET wrapped = ? WHERE record_id = ?", (bytes(wrapped), stored))
    db.commit()
    db.close()
    run = cli(capsys, "--archive", archive_dir, "verify", "--read-data", "--passphrase-file", passphrase_file)
    assert run.code == IntegrityError.exit_code
    assert f"record {stored}: a wrapped key does not open" in run.out


def test_identity_file(
    stored: str, archive_dir: Path, passphrase_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    identity = archive_dir / "identity.enc"
    original = identity.read_bytes()
    for at in (original.index(b'"ciphertext": "') + 20, original.index(b'"salt": "') + 12):
        identity.write_bytes(original)
        _flip(identity, at)
        run = cli(capsys, "--archive", archive_dir, "search", "x", "--passphrase-file", passphrase_file)
        # a flipped bit either breaks the hex (damaged) or the authentication (altered): both named
        assert run.code in (WrongPassphrase.exit_code, IntegrityError.exit_code)
        assert "identity.enc" in run.err
    identity.write_bytes(original[: len(original) // 2])
    run = cli(capsys, "--archive", archive_dir, "search", "x", "--passphrase-file", passphrase_file)
    assert run.code == IntegrityError.exit_code and "identity.enc is damaged" in run.err


def test_index_file_is_rebuilt_and_says_so(
    stored: str,
    archive_dir: Path,
    passphrase_file: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    _flip(archive_dir / "index.db", 5000)
    run = cli(capsys, "--archive", archive_dir, "search", "discussed", "--json", "--passphrase-file", passphrase_file)
    assert run.code == 0
    assert any("rebuilding it from the sealed records" in r.getMessage() for r in caplog.records)


def test_catalog_file(stored: str, archive_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    catalog = archive_dir / "catalog.db"
    data = catalog.read_bytes()
    catalog.write_bytes(b"garbage!" * 16 + data[128:])
    run = cli(capsys, "--archive", archive_dir, "status")
    assert run.code == IntegrityError.exit_code and "catalog" in run.err and "is damaged" in run.err


@pytest.mark.parametrize("damage", ["edit", "remove", "truncate"])
def test_audit_log(damage: str, stored: str, archive_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = archive_dir / "audit.log"
    lines = log.read_bytes().splitlines(keepends=True)
    assert len(lines) >= 3
    if damage == "edit":
        lines[1] = lines[1].replace(b'"ingest"', b'"search"')
    elif damage == "remove":
        del lines[1]
    else:
        lines[-1] = lines[-1][:-10]
    log.write_bytes(b"".join(lines))
    run = cli(capsys, "--archive", archive_dir, "audit", "verify")
    assert run.code == IntegrityError.exit_code
    assert "line" in (run.out + run.err)
