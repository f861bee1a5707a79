"""Retention end to end: holds, approval, purge without the passphrase, crypto-shredding, certificates."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from scanarchive.archive.layout import Archive
from scanarchive.crypto import seal
from scanarchive.errors import ConfigError, IntegrityError, RecordDestroyed
from tests.conftest import PASSPHRASE
from tests.kits.helpers import (
    cli,
    decide,
    find_plaintext,
    note_words,
    purge_unattended,
    record_ids_from_json,
    render_note,
)

TODAY = "2040-01-01"  # far enough that a 2026 session is due under a 7-year rule


@pytest.fixture
def history(
    archive_dir: Path, passphrase_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> dict[str, Any]:
    """Two clients; C-1 ended therapy in 2026 (due by 2040), C-2 is still in therapy (never due)."""
    lines_by_record: dict[str, list[str]] = {}
    for n, (client, day, seed) in enumerate(
        [("C-1", "2026-03-02", 41), ("C-1", "2026-04-06", 42), ("C-2", "2026-03-03", 43)]
    ):
        image, lines = render_note(seed=seed, sentences=2, height_in=3.5)
        src = tmp_path / f"n{n}.png"
        image.save(src, dpi=(300, 300))
        run = cli(capsys, "--archive", archive_dir, "ingest", src, "--client", client, "--date", day, "--json")
        assert run.code == 0, run.err
        lines_by_record[record_ids_from_json(run.out)[0]] = lines
    assert (
        decide(
            capsys,
            archive_dir,
            passphrase_file,
            "client",
            "add",
            "C-1",
            "--born",
            "1980-05-05",
            "--terminated",
            "2026-04-06",
        ).code
        == 0
    )
    assert decide(capsys, archive_dir, passphrase_file, "client", "add", "C-2", "--born", "1990-01-01").code == 0
    run = decide(capsys, archive_dir, passphrase_file, "retention", "use", "us_tx_lpc", "apa_2007")
    assert run.code == 0, run.err
    return {"lines": lines_by_record}


def _purge(archive: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    return purge_unattended(archive, TODAY, *extra)


def test_purge_refuses_without_presets(archive_dir: Path) -> None:
    code, _, err = _purge(archive_dir)
    assert code == ConfigError.exit_code and "no retention rules are in force" in err


def test_nothing_is_destroyed_before_approval_and_holds_block_it(
    history: dict[str, Any], archive_dir: Path, passphrase_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, doc, err = _purge(archive_dir, "--dry-run")
    assert code == 0, err
    reasons = {r["record_id"]: r for r in doc["records"]}
    assert not any(r["destroy"] for r in reasons.values())
    assert sum("waiting for approval" in r["reason"] for r in reasons.values()) == 2
    assert sum("Kept: not due" in r["reason"] for r in reasons.values()) == 1, "C-2 is never due: no termination"

    code, doc, _ = _purge(archive_dir)
    assert doc["destroyed"] == []

    due = json.loads(cli(capsys, "--archive", archive_dir, "retention", "due", "--json").out)
    assert due["count"] == 0, "not due today (2026): the rules keep the records for years"
    first = next(iter(history["lines"]))
    assert (
        decide(
            capsys,
            archive_dir,
            passphrase_file,
            "hold",
            "place",
            "subpoena-1",
            "--client",
            "C-1",
            "--reason",
            "subpoena received",
        ).code
        == 0
    )
    _approve_as_of(archive_dir, TODAY)  # approved as of 2040, as a reviewer would then
    code, doc, _ = _purge(archive_dir)
    assert doc["destroyed"] == [], "a legal hold blocks every destruction"
    assert any("legal hold 'subpoena-1'" in r["reason"] for r in doc["records"])

    assert decide(capsys, archive_dir, passphrase_file, "hold", "release", "subpoena-1").code == 0
    code, doc, _ = _purge(archive_dir)
    assert len(doc["destroyed"]) == 2 and first in doc["destroyed"]


def _approve_as_of(archive: Path, today: str) -> None:
    """`retention approve --all-due` as it would run on `today` (the CLI approves what is due now)."""
    from datetime import date

    from scanarchive.retention import approvals

    with Archive(archive) as a:
        approvals.approve(a, None, by="Dr Reviewer", today=date.fromisoformat(today), identity=a.unlock(PASSPHRASE))


def test_after_purge_nothing_of_the_note_remains_and_old_copies_are_noise(
    history: dict[str, Any],
    archive_dir: Path,
    passphrase_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines: dict[str, list[str]] = history["lines"]
    c1 = list(lines)[:2]
    # index the notes, keep a copy of one blob and of the index as a thief's backup would
    word = sorted(note_words(lines[c1[0]], min_len=6))[0]
    assert cli(capsys, "--archive", archive_dir, "search", word, "--passphrase-file", passphrase_file).code == 0
    with Archive(archive_dir) as archive:
        record = archive.catalog.record(c1[0])
        blob_copy = archive.store.get(record.blob_sha256)
        wrapped_before = archive.catalog.wrapped_key(record.id)
    index_copy = (archive_dir / "index.db").read_bytes()

    _approve_as_of(archive_dir, TODAY)
    code, doc, err = _purge(archive_dir)
    assert code == 0, err
    assert sorted(doc["destroyed"]) == sorted(c1)
    assert not [p.name for p in archive_dir.glob("index.db*")], "the index is dropped at once, before any search"

    with Archive(archive_dir) as archive:
        assert not archive.store.path_for(record.blob_sha256).exists(), "the blob is gone"
        assert (
            archive.catalog.db.execute("SELECT COUNT(*) FROM record_keys WHERE record_id = ?", (record.id,)).fetchone()[
                0
            ]
            == 0
        ), "the wrapped key is gone"
        with pytest.raises(IntegrityError):
            archive.catalog.wrapped_key(record.id)
        assert wrapped_before not in (archive_dir / "catalog.db").read_bytes()
        # the copy of the blob opens with none of the keys the archive still holds
        identity = archive.unlock(passphrase_file.read_text().strip())
        for rid, wrapped in archive.catalog.db.execute("SELECT record_id, wrapped FROM record_keys").fetchall():
            other = identity.unwrap(bytes(wrapped), b"record:" + uuid.UUID(rid).bytes)
            with pytest.raises(IntegrityError):
                seal.open_blob(blob_copy, other, uuid.UUID(record.id).bytes)

    run = cli(capsys, "--archive", archive_dir, "search", word, "--passphrase-file", passphrase_file, "--json")
    assert run.code == 0 and json.loads(run.out)["count"] == 0, "search finds nothing from the record"
    run = cli(
        capsys, "--archive", archive_dir, "show", c1[0], "-o", tmp_path / "x.pdf", "--passphrase-file", passphrase_file
    )
    assert run.code == RecordDestroyed.exit_code
    assert "destroyed on" in run.err
    assert "Texas" in run.err or "APA" in run.err

    # the index was re-keyed: the copy taken before the purge no longer opens with the current key
    from scanarchive.archive.index import SearchIndex

    stolen = tmp_path / "stolen-index.db"
    stolen.write_bytes(index_copy)
    with Archive(archive_dir) as archive:
        current = archive.catalog.index_key()
        assert current is not None
        generation, wrapped = current
        assert generation == 2
        key = archive.unlock(passphrase_file.read_text().strip()).unwrap(wrapped, f"index:{generation}".encode())
    with pytest.raises(IntegrityError):
        SearchIndex(stolen, key)

    words: set[str] = set()
    for rid in c1:
        words |= note_words(lines[rid], min_len=5)
    assert find_plaintext([archive_dir], words) == [], "no word of the destroyed notes anywhere, databases included"

    # a real history: every step is in the hash-chained audit log, which verifies, and catches an edit
    run = cli(capsys, "--archive", archive_dir, "audit", "verify")
    assert run.code == 0, run.err
    events = [json.loads(line)["event"] for line in (archive_dir / "audit.log").read_text().splitlines()]
    assert events[0] == "init" and {"ingest", "client", "retention", "search", "purge"} <= set(events)
    log_lines = (archive_dir / "audit.log").read_bytes().splitlines(keepends=True)
    swapped = [*log_lines[:2], log_lines[3], log_lines[2], *log_lines[4:]]
    (archive_dir / "audit.log").write_bytes(b"".join(swapped))
    run = cli(capsys, "--archive", archive_dir, "audit", "verify")
    assert run.code == IntegrityError.exit_code and "line 3" in (run.err + run.out)
    (archive_dir / "audit.log").write_bytes(b"".join(log_lines))

    certificates = sorted((archive_dir / "certificates").iterdir())
    assert len(certificates) == 4  # .json and .txt for each
    cert = json.loads((archive_dir / "certificates" / f"{c1[0]}.json").read_text())
    assert cert["client_code"] == "C-1" and cert["retention_rule"]["preset"] in ("us_tx_lpc", "apa_2007")
    assert cert["approved_by"] == "Dr Reviewer" and "cryptographic erase" in cert["method"]
    assert find_plaintext(certificates, words) == []


def test_psychotherapy_and_unfiled_records_follow_the_rules(
    archive_dir: Path, passphrase_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image, _ = render_note(seed=50, sentences=1, height_in=3)
    src = tmp_path / "u.png"
    image.save(src, dpi=(300, 300))
    assert cli(capsys, "--archive", archive_dir, "ingest", src).code == 0  # unfiled
    assert decide(capsys, archive_dir, passphrase_file, "retention", "use", "apa_2007").code == 0
    _code, doc, _ = _purge(archive_dir, "--dry-run")
    (only,) = doc["records"]
    assert not only["destroy"] and "unfiled" in only["reason"]


def test_unconfirmed_presets_need_an_explicit_flag(
    archive_dir: Path, passphrase_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = decide(capsys, archive_dir, passphrase_file, "retention", "use", "us_ny_regents")
    assert run.code == ConfigError.exit_code and "unconfirmed" in run.err
    run = decide(capsys, archive_dir, passphrase_file, "retention", "use", "us_ny_regents", "--allow-unconfirmed")
    assert run.code == 0 and "UNCONFIRMED" in run.out
    assert "allow_unconfirmed = true" in (archive_dir / "config.toml").read_text()
    listing = cli(capsys, "--archive", archive_dir, "retention", "presets").out
    assert "* us_ny_regents" in listing and "unconfirmed" in listing


def test_backup_copy_of_a_purged_archive_is_not_readable(
    history: dict[str, Any], archive_dir: Path, tmp_path: Path
) -> None:
    """A copy of objects/ taken before the purge is noise afterwards: the keys to it are gone."""
    backup = tmp_path / "backup-objects"
    shutil.copytree(archive_dir / "objects", backup)
    _approve_as_of(archive_dir, TODAY)
    _code, doc, _ = _purge(archive_dir)
    assert len(doc["destroyed"]) == 2
    with Archive(archive_dir) as archive:
        keys_left = {r.blob_sha256 for r in archive.catalog.records()}
    orphaned = [p for p in backup.rglob("*") if p.is_file() and p.parent.name + p.name not in keys_left]
    assert len(orphaned) == 2
