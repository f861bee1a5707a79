"""archive/sealed.py, the one place sealed objects are put, checked and opened; archive/check.py; audited verbs.

Opening always checks the blob's SHA-256 against its name before decrypting
(format.md invariant 6): for records AND for quarantined scans.
"""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest

from scanarchive import audit
from scanarchive.archive import quarantine, sealed
from scanarchive.archive.check import Finding, check_archive
from scanarchive.archive.layout import Archive
from scanarchive.archive.sealed import quarantine_context
from scanarchive.archive.store import BlobStore
from scanarchive.crypto import keys, seal
from scanarchive.errors import IntegrityError
from tests.conftest import PASSPHRASE
from tests.kits.helpers import cli
from tests.kits.watchkit import sha256_bytes, small_scan_bytes, source_hashes

KEY = bytes(range(32))
SECTIONS = {"pdf": b"%PDF-1.4 " + os.urandom(3 * seal.CHUNK), "ocr": b'{"pages":[]}'}


def _store(tmp_path: Path) -> BlobStore:
    root = tmp_path / "objects"
    root.mkdir(mode=0o700)
    return BlobStore(root)


def _rewrite(path: Path, data: bytes) -> None:
    path.chmod(0o600)
    path.write_bytes(data)


def _last(archive_dir: Path) -> dict[str, object]:
    return audit.read_entries(audit.log_path(archive_dir))[-1]


def test_put_round_trips_and_names_the_blob_by_its_hash(tmp_path: Path) -> None:
    store, rid = _store(tmp_path), str(uuid.uuid4())
    digest, size = sealed.put(store, KEY, rid, SECTIONS)
    on_disk = store.path_for(digest).read_bytes()
    assert hashlib.sha256(on_disk).hexdigest() == digest and len(on_disk) == size
    assert sealed.open_all(store, digest, KEY, rid) == SECTIONS
    assert sealed.open_section(store, digest, KEY, rid, "ocr") == SECTIONS["ocr"]
    sealed.check(store, digest, rid)
    assert SECTIONS["ocr"] not in on_disk, "only sealed bytes reach the store"


def test_put_refuses_a_copy_that_does_not_read_back(tmp_path: Path) -> None:
    class Flaky(BlobStore):
        def put_stream(self, fill: Callable[[BinaryIO], object]) -> tuple[str, int]:
            digest, size = super().put_stream(fill)
            damaged = bytearray(self.path_for(digest).read_bytes())
            damaged[-1] ^= 1
            _rewrite(self.path_for(digest), bytes(damaged))
            return digest, size

    root = tmp_path / "objects"
    root.mkdir()
    rid = str(uuid.uuid4())
    with pytest.raises(IntegrityError, match=f"record {rid}: the stored blob does not match what was written"):
        sealed.put(Flaky(root), KEY, rid, SECTIONS)
    with pytest.raises(IntegrityError, match=r"^the quarantined copy does not read back correctly$"):
        sealed.put(Flaky(root), KEY, rid, {"original": b"scan"}, owner="quarantine")


@pytest.mark.parametrize(
    "length", [0, 1, seal.CHUNK - 1, seal.CHUNK, seal.CHUNK + 1, 2 * seal.CHUNK, 2 * seal.CHUNK + 7]
)
def test_the_streamed_blob_is_byte_identical_to_seal_and_read_back_checks_the_disk(
    tmp_path: Path, length: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, rid = _store(tmp_path), str(uuid.uuid4())
    sections = {"pdf": os.urandom(length), "ocr": b'{"pages":[]}' * (length % 5)}
    salt = bytes(range(16, 32))
    monkeypatch.setattr(os, "urandom", lambda n: salt[:n])  # the salt seal_into draws
    written = sealed.seal_into(store, KEY, rid, sections)
    path = store.path_for(written.digest)
    expected = seal.seal(KEY, uuid.UUID(rid).bytes, sections, salt)
    assert path.read_bytes() == expected and written.size == len(expected)
    assert written.digest == hashlib.sha256(expected).hexdigest()
    assert path.stat().st_mode & 0o777 == 0o400
    assert [p.name for p in store.root.iterdir()] == [written.digest[:2]], "no temp file is left behind"
    assert len(sections["pdf"]) == length
    assert written.plaintext_sha256 == {k: hashlib.sha256(v).digest() for k, v in sections.items()}
    sealed.read_back(store, written.digest, KEY, rid, written.plaintext_sha256)
    again = sealed.seal_into(store, KEY, rid, sections)  # idempotent: the intact blob is kept
    assert again == written and list(store) == [written.digest]
    assert [p.name for p in store.root.iterdir()] == [written.digest[:2]]

    other = {k: hashlib.sha256(v + b"x").digest() for k, v in sections.items()}
    with pytest.raises(IntegrityError, match=f"^record {rid}: the stored blob does not decrypt to what was sealed$"):
        sealed.read_back(store, written.digest, KEY, rid, other)
    damaged = bytearray(expected)
    damaged[len(damaged) // 2] ^= 1
    _rewrite(path, bytes(damaged))
    with pytest.raises(IntegrityError, match=f"^record {rid}: the stored blob does not match what was written$"):
        sealed.read_back(store, written.digest, KEY, rid, written.plaintext_sha256)
    path.chmod(0o400)
    repaired = sealed.seal_into(store, KEY, rid, sections)  # a damaged copy under the name is replaced
    assert repaired == written and path.read_bytes() == expected and path.stat().st_mode & 0o777 == 0o400
    sealed.read_back(store, written.digest, KEY, rid, written.plaintext_sha256)


def test_check_says_missing_and_damaged_without_a_key(tmp_path: Path) -> None:
    store, rid = _store(tmp_path), str(uuid.uuid4())
    digest, _ = sealed.put(store, KEY, rid, SECTIONS)
    path = store.path_for(digest)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    _rewrite(path, bytes(data))
    with pytest.raises(IntegrityError, match=rf"^record {rid}: its blob is damaged \(hash mismatch\)$"):
        sealed.check(store, digest, rid)
    with pytest.raises(
        IntegrityError, match=rf"^quarantined scan {rid}: its sealed copy is damaged \(hash mismatch\)$"
    ):
        sealed.check(store, digest, rid, owner="quarantine")
    path.unlink()
    with pytest.raises(IntegrityError, match=f"^record {rid}: its blob is missing from objects/$"):
        sealed.check(store, digest, rid)
    with pytest.raises(IntegrityError, match=f"^quarantined scan {rid}: its sealed copy is missing from quarantine/$"):
        sealed.check(store, digest, rid, owner="quarantine")
    with pytest.raises(IntegrityError, match=f"^record {rid}: blob {digest[:12]}… is missing from objects/$"):
        sealed.open_section(store, digest, KEY, rid, "pdf")


def test_damage_in_a_section_not_read_is_refused_before_decrypting(tmp_path: Path) -> None:
    store, rid = _store(tmp_path), str(uuid.uuid4())
    digest, _ = sealed.put(store, KEY, rid, SECTIONS)
    path = store.path_for(digest)
    data = bytearray(path.read_bytes())
    data[-1] ^= 1  # the last byte: the ocr section's tag, nowhere near the pdf
    _rewrite(path, bytes(data))
    assert seal.open_section(io.BytesIO(bytes(data)), KEY, uuid.UUID(rid).bytes, "pdf") == SECTIONS["pdf"], (
        "decrypting alone would not notice: only the hash check does"
    )
    with pytest.raises(IntegrityError, match=rf"^record {rid}: its blob is damaged \(its SHA-256 does not match"):
        sealed.open_section(store, digest, KEY, rid, "pdf")


def _resealed(blob_path: Path, key: bytes, object_id: str, sections: dict[str, bytes]) -> None:
    """Replace a blob by another valid sealing of the same content: it decrypts, but is not the named blob."""
    _rewrite(blob_path, seal.seal(key, uuid.UUID(object_id).bytes, sections, os.urandom(16)))


def test_records_and_quarantined_scans_are_hash_checked_before_they_are_opened(
    archive_dir: Path, small_scan: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, "--archive", archive_dir, "ingest", small_scan).code == 0
    scan, _ = small_scan_bytes(1)
    with Archive(archive_dir) as archive:
        identity = archive.unlock(PASSPHRASE)
        (record,) = archive.catalog.records()
        key = archive.record_key(identity, record)
        contents = sealed.open_all(archive.store, record.blob_sha256, key, record.id)
        path = archive.store.path_for(record.blob_sha256)
        data = bytearray(path.read_bytes())
        data[-1] ^= 1  # in the ocr section
        _rewrite(path, bytes(data))
        with pytest.raises(IntegrityError, match=f"record {record.id}: its blob is damaged"):
            archive.open_section(identity, record, "pdf")
        _resealed(path, key, record.id, contents)
        with pytest.raises(IntegrityError, match=f"record {record.id}: its blob is damaged"):
            archive.open_section(identity, record, "pdf")

        entry = quarantine.seal_scan(archive, scan, "note.png", sha256_bytes(scan), "test")
        assert quarantine.open_scan(archive, identity, entry) == scan
        row = archive.catalog.db.execute("SELECT wrapped FROM quarantine WHERE id = ?", (entry.id,)).fetchone()
        qkey = identity.unwrap(bytes(row[0]), quarantine_context(entry.id))
        _resealed(quarantine.store(archive).path_for(entry.blob_sha256), qkey, entry.id, {"original": scan})
        with pytest.raises(IntegrityError, match=f"^quarantined scan {entry.id}: its sealed copy is damaged"):
            quarantine.open_scan(archive, identity, entry)


def test_check_archive_returns_typed_findings_and_audits_the_record_ids(
    archive_dir: Path, small_scan: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, "--archive", archive_dir, "ingest", small_scan).code == 0
    scan, _ = small_scan_bytes(2)
    with Archive(archive_dir) as archive:
        (record,) = archive.catalog.records()
        clean = check_archive(archive, archive.unlock(PASSPHRASE))
        assert clean.ok and clean.findings == [] and clean.records_checked == 1 and clean.read_data
        entry = quarantine.seal_scan(archive, scan, "note.png", sha256_bytes(scan), "test")
        path = archive.store.path_for(record.blob_sha256)
        data = bytearray(path.read_bytes())
        data[20] ^= 1
        _rewrite(path, bytes(data))
        qpath = quarantine.store(archive).path_for(entry.blob_sha256)
        _rewrite(qpath, qpath.read_bytes() + b"x")
        orphan = archive.store.put(b"left over from a crash")
        report = check_archive(archive, None)
    assert not report.ok and not report.read_data
    assert (report.records_checked, report.quarantined_checked) == (1, 1)
    assert report.damaged == [
        Finding("damaged", "record", record.id, f"record {record.id}: its blob is damaged (hash mismatch)"),
        Finding(
            "damaged",
            "quarantine",
            entry.id,
            f"quarantined scan {entry.id}: its sealed copy is damaged (hash mismatch)",
        ),
    ]
    assert report.damaged_records == [record.id]
    (unknown,) = report.unknown
    assert unknown.what == "object" and unknown.id is None and unknown.path == f"objects/{orphan[:2]}/{orphan[2:]}"
    last = _last(archive_dir)
    assert last["event"] == "verify" and last["damaged"] == [record.id] and last["ok"] is False
    assert last["checked"] == 1


def test_failed_retry_show_and_drop_are_audited(
    archive_dir: Path, passphrase_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scan, _ = small_scan_bytes(5)
    other, _ = small_scan_bytes(6)
    with Archive(archive_dir) as archive:
        entry = quarantine.seal_scan(archive, scan, "note.png", sha256_bytes(scan), "test")
        dropped = quarantine.seal_scan(archive, other, "other.png", sha256_bytes(other), "test")
    pw = ("--passphrase-file", passphrase_file)

    out = tmp_path / "look.png"
    assert cli(capsys, "--archive", archive_dir, "failed", "show", entry.id, "-o", out, *pw).code == 0
    assert out.read_bytes() == scan
    assert {k: _last(archive_dir).get(k) for k in ("event", "item", "command")} == {
        "event": "failed",
        "item": entry.id,
        "command": "show",
    }

    run = cli(capsys, "--archive", archive_dir, "failed", "retry", entry.id, *pw)
    assert run.code == 0, run.err
    assert source_hashes(archive_dir) == [sha256_bytes(scan)]
    with Archive(archive_dir) as archive:
        (record,) = archive.catalog.records()
    last = _last(archive_dir)
    assert (last["event"], last["item"], last["command"]) == ("failed", entry.id, "retry")
    assert last["records"] == [record.id] and last["pages"] == 1 and last["duplicate"] is False

    drop_run = cli(
        capsys, "--archive", archive_dir, "failed", "drop", dropped.id, "--yes", "--passphrase-file", passphrase_file
    )
    assert drop_run.code == 0, drop_run.err
    last = _last(archive_dir)
    assert (last["event"], last["item"], last["command"]) == ("failed", dropped.id, "drop")
    assert audit.verify(audit.log_path(archive_dir)).ok


def test_passwd_is_audited_and_recalibrates_the_kdf_cost_never_lowering_it(
    archive_dir: Path, passphrase_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    identity_file = archive_dir / "identity.enc"
    cost = keys.identity_kdf_log_n(identity_file.read_bytes())
    new = tmp_path / "new"
    new.write_text("another passphrase of several words")
    new.chmod(0o600)  # a passphrase file others can read is refused
    run = cli(
        capsys, "--archive", archive_dir, "passwd", "--passphrase-file", passphrase_file, "--new-passphrase-file", new
    )
    assert run.code == 0, run.err
    assert "meant for tests" not in run.err
    raised = keys.identity_kdf_log_n(identity_file.read_bytes())
    assert raised > cost, "the archive was made with --kdf-seconds 0.01: passwd calibrates it again (0.75 s)"
    with Archive(archive_dir) as archive:
        key_id = archive.config.recipient.key_id
        assert archive.unlock("another passphrase of several words").recipient.key_id == key_id
    last = _last(archive_dir)
    assert last["event"] == "passwd" and last["key_id"] == key_id
    weaker = tmp_path / "weaker"
    weaker.write_text("yet another passphrase of words")
    weaker.chmod(0o600)  # a passphrase file others can read is refused
    run = cli(
        capsys, "--archive", archive_dir, "passwd", "--passphrase-file", new, "--new-passphrase-file", weaker,
        "--kdf-seconds", "0.01",
    )  # fmt: skip
    assert run.code == 0, run.err
    assert "meant for tests" in run.err
    assert keys.identity_kdf_log_n(identity_file.read_bytes()) == raised, "never below the cost it had"
    with pytest.raises(IntegrityError, match=r"identity\.enc is damaged"):
        keys.identity_kdf_log_n(b"{not json")


def test_backup_is_audited_by_the_library(archive_dir: Path, tmp_path: Path) -> None:
    from scanarchive.archive import backup

    with Archive(archive_dir) as archive:
        report = backup.backup(archive, tmp_path / "copy")
    last = _last(archive_dir)
    assert last["event"] == "backup" and last["count"] == report.records == 0
