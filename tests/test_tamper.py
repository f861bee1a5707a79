"""Damage to a stored blob is detected by verify --read-data and by show, naming the record."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from scanarchive.archive.layout import Archive
from scanarchive.crypto import seal
from scanarchive.errors import IntegrityError
from tests.kits.helpers import cli, record_ids_from_json, render_note


def _flip(at: Callable[[bytes, seal.Header], int]) -> Callable[[bytes, seal.Header], bytes]:
    def damage(blob: bytes, header: seal.Header) -> bytes:
        data = bytearray(blob)
        data[at(blob, header)] ^= 0x20
        return bytes(data)

    return damage


def _drop_last_chunk(blob: bytes, header: seal.Header) -> bytes:
    # the last section ("ocr") is one chunk: dropping it leaves the pdf section whole
    _, ocr_len = header.sections[-1]
    return blob[: len(blob) - seal.stream_length(ocr_len)]


DAMAGE: dict[str, Callable[[bytes, seal.Header], bytes]] = {
    "header": _flip(lambda b, h: 12),
    "chunk boundary": _flip(lambda b, h: len(h.raw) + seal.CHUNK + seal.TAG),
    "end": _flip(lambda b, h: len(b) - 1),
    "drop last chunk": _drop_last_chunk,
}


@pytest.fixture
def stored(archive_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[str, Path]:
    image, _ = render_note(seed=8, noise=25)  # noise makes the scan span several 64 KiB chunks
    src = tmp_path / "noisy.png"
    image.save(src, dpi=(300, 300))
    run = cli(capsys, "--archive", archive_dir, "ingest", src, "--json")
    assert run.code == 0, run.err
    record = record_ids_from_json(run.out)[0]
    with Archive(archive_dir) as archive:
        blob_path = archive.store.path_for(archive.catalog.record(record).blob_sha256)
    assert blob_path.stat().st_size > 3 * seal.CHUNK
    return record, blob_path


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damage_is_detected_and_names_the_record(
    case: str,
    stored: tuple[str, Path],
    archive_dir: Path,
    passphrase_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    record, blob_path = stored
    blob = blob_path.read_bytes()
    damaged = DAMAGE[case](blob, seal.read_header(io.BytesIO(blob)))
    assert damaged != blob
    os.chmod(blob_path, 0o600)
    blob_path.write_bytes(damaged)

    run = cli(capsys, "--archive", archive_dir, "verify", "--read-data", "--passphrase-file", passphrase_file)
    assert run.code == IntegrityError.exit_code
    assert f"DAMAGED  record {record}" in run.out
    assert "1 damaged" in run.out

    run = cli(capsys, "--archive", archive_dir, "verify")
    assert run.code == IntegrityError.exit_code, "even without the key, the hash check finds it"

    out = tmp_path / "shown.pdf"
    run = cli(capsys, "--archive", archive_dir, "show", record, "-o", out, "--passphrase-file", passphrase_file)
    assert run.code == IntegrityError.exit_code
    assert record in run.err
    assert not out.exists(), "nothing is written from a damaged record"


def test_blob_swapped_between_records_is_detected(
    archive_dir: Path, passphrase_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = []
    for seed in (1, 2):
        image, _ = render_note(seed=seed, noise=0, sentences=1, height_in=3)
        src = tmp_path / f"s{seed}.png"
        image.save(src)
        run = cli(capsys, "--archive", archive_dir, "ingest", src, "--json")
        ids.append(record_ids_from_json(run.out)[0])
    with Archive(archive_dir) as archive:
        a, b = (archive.catalog.record(i) for i in ids)
        with archive.catalog.transaction() as db:
            db.execute("UPDATE records SET blob_sha256 = ? WHERE id = ?", (b.blob_sha256, a.id))
    run = cli(capsys, "--archive", archive_dir, "verify", "--read-data", "--passphrase-file", passphrase_file)
    assert run.code == IntegrityError.exit_code
    assert f"record {ids[0]}" in run.out and "not this record" in run.out


def test_damaged_record_is_indexed_once_restored(
    stored: tuple[str, Path], archive_dir: Path, passphrase_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record, blob_path = stored
    good = blob_path.read_bytes()
    with Archive(archive_dir) as archive:
        identity = archive.unlock(passphrase_file.read_text().strip())
        word = next(
            w.text
            for p in archive.ocr_pages(identity, archive.catalog.record(record))
            for w in p.words
            if len(w.text) >= 6 and w.text.isalpha()
        )
    os.chmod(blob_path, 0o600)
    blob_path.write_bytes(good[:-1])
    run = cli(capsys, "--archive", archive_dir, "search", word, "--passphrase-file", passphrase_file)
    assert run.code == 0
    assert "could not be indexed" in run.err and "No notes match" in run.out
    blob_path.write_bytes(good)  # restored from a backup
    run = cli(capsys, "--archive", archive_dir, "search", word, "--passphrase-file", passphrase_file)
    assert run.code == 0 and record in run.out and "could not be indexed" not in run.err
