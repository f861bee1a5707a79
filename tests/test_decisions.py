"""Decisions can't be forged without the passphrase (docs/format.md §15.5).

Each attack is done as the watcher's account would do it, with no passphrase: sqlite3 on
catalog.db / decisions.db, editing config.toml, swapping a blob and its wrapped key, putting back
an older catalog. The unattended purge (its own process, no passphrase in its environment) must
keep the record, say why, and audit the refusal; `verify` must fail naming it. The honest paths
(with the passphrase) still destroy.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from scanarchive import audit
from scanarchive.archive import checkpoint, decisions, sealed
from scanarchive.archive.layout import Archive
from scanarchive.crypto import keys
from scanarchive.errors import ConfigError, IntegrityError, RolledBack
from tests.kits.helpers import cli, decide, purge_unattended, record_ids_from_json, render_note

TODAY = "2040-01-01"
CLIENT = "C-1"


def _decisions_db(archive: Path) -> Path:
    return decisions.path_of(archive) if decisions.path_of(archive).exists() else archive / "catalog.db"


def _sql(db: Path, statement: str, args: tuple[Any, ...] = ()) -> None:
    """What an attacker does with the sqlite3 tool."""
    con = sqlite3.connect(db)
    con.execute(statement, args)
    con.commit()
    con.close()


def _purge(archive: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    return purge_unattended(archive, TODAY, *extra)


def _last_purge_entry(archive: Path) -> dict[str, Any]:
    return [e for e in audit.read_entries(audit.log_path(archive)) if e["event"] == "purge" and "count" in e][-1]


def _ingest(capsys: pytest.CaptureFixture[str], archive: Path, tmp_path: Path, seed: int) -> str:
    image, _ = render_note(seed=seed, sentences=1, height_in=3)
    src = tmp_path / f"n{seed}.png"
    image.save(src, dpi=(300, 300))
    run = cli(capsys, "--archive", archive, "ingest", src, "--client", CLIENT, "--date", "2026-03-02", "--json")
    assert run.code == 0, run.err
    return record_ids_from_json(run.out)[0]


@pytest.fixture
def due(archive_dir: Path, passphrase_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """One note of C-1, who ended therapy in 2026: due by 2040 under both rules; decisions made honestly."""
    rid = _ingest(capsys, archive_dir, tmp_path, 71)
    pf = ("--passphrase-file", passphrase_file)
    for argv in (
        ("client", "add", CLIENT, "--born", "1980-05-05", "--terminated", "2026-03-02", *pf),
        ("retention", "use", "us_tx_lpc", "apa_2007", *pf),
    ):
        run = cli(capsys, "--archive", archive_dir, *argv)
        assert run.code == 0, run.err
    return rid


def _approve(archive: Path) -> None:
    from datetime import date

    from scanarchive.retention import approvals
    from tests.conftest import PASSPHRASE

    with Archive(archive) as a:
        approvals.approve(a, None, by="Dr Reviewer", today=date.fromisoformat(TODAY), identity=a.unlock(PASSPHRASE))


def test_decisions_need_the_passphrase(due: str, archive_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = cli(capsys, "--archive", archive_dir, "hold", "place", "h1", "--client", CLIENT, "--reason", "x")
    assert run.code == 2 and "passphrase is needed" in run.err
    run = cli(capsys, "--archive", archive_dir, "retention", "approval", "automatic")
    assert run.code == 2 and "passphrase is needed" in run.err


def test_forged_release_mode_and_facts_are_refused_said_and_audited(
    due: str, archive_dir: Path, passphrase_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The reproduced attack: approval = automatic in config.toml, the hold 'released' by SQL, facts backdated."""
    pf = ("--passphrase-file", passphrase_file)
    run = cli(capsys, "--archive", archive_dir, "hold", "place", "subpoena-1", "--client", CLIENT, "--reason", "s", *pf)
    assert run.code == 0, run.err
    config = archive_dir / "config.toml"
    config.write_text(config.read_text().replace('approval = "required"', 'approval = "automatic"'))
    db = _decisions_db(archive_dir)
    _sql(db, "UPDATE holds SET released_at = placed_at")
    _sql(db, "UPDATE clients SET termination = '2001-01-01', last_service = '2001-01-01'")

    code, doc, err = _purge(archive_dir, "--dry-run")
    assert code == 0, err
    (line,) = doc["records"]
    assert not line["destroy"] and line["reason"].endswith("kept.")
    assert "legal hold 'subpoena-1' was released or removed without the passphrase" in line["reason"]
    assert "retention settings in config.toml (presets, approval mode) were changed" in line["reason"]
    assert f"retention facts of client {CLIENT} were changed" in line["reason"]
    code, doc, _ = _purge(archive_dir)
    assert code == 0 and doc["destroyed"] == []
    assert _last_purge_entry(archive_dir)["refused"] == [due]
    assert (archive_dir / "objects" / "").exists() and Archive(archive_dir).catalog.records()[0].id == due

    run = cli(capsys, "--archive", archive_dir, "verify")
    assert run.code == IntegrityError.exit_code
    assert "TAMPERED" in run.out and "subpoena-1" in run.out and "approval mode" in run.out
    # the honest user cannot sign the forged facts along with a small change
    run = cli(capsys, "--archive", archive_dir, "client", "set", CLIENT, "--died", "2030-01-01", *pf)
    assert run.code == IntegrityError.exit_code and "set every fact" in run.err


def test_an_approval_inserted_by_sql_is_refused(due: str, archive_dir: Path) -> None:
    _sql(
        _decisions_db(archive_dir),
        "INSERT INTO approvals VALUES (?, 'Dr Nobody', '2039-12-31T00:00:00+00:00', '2033-03-02')",
        (due,),
    )
    with Archive(archive_dir) as a:  # the forged row would count: same destroy-after date
        from datetime import date

        from scanarchive.retention import review

        (r,) = review.review_all(a, date.fromisoformat(TODAY), review.presets_in_force(a))
        _sql(_decisions_db(archive_dir), "UPDATE approvals SET destroy_after = ?", (str(r.decision.destroy_after),))
    _code, doc, _ = _purge(archive_dir)
    assert doc["destroyed"] == [] and "its approval was not given with the passphrase" in doc["records"][0]["reason"]
    assert _last_purge_entry(archive_dir)["refused"] == [due]


def test_honest_approval_and_release_still_destroy(
    due: str, archive_dir: Path, passphrase_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pf = ("--passphrase-file", passphrase_file)
    run = cli(capsys, "--archive", archive_dir, "hold", "place", "court-2", "--record", due, "--reason", "order", *pf)
    assert run.code == 0, run.err
    _approve(archive_dir)
    _code, doc, _ = _purge(archive_dir)
    assert doc["destroyed"] == [] and "on legal hold 'court-2'" in doc["records"][0]["reason"]
    assert cli(capsys, "--archive", archive_dir, "hold", "release", "court-2", *pf).code == 0
    code, doc, err = _purge(archive_dir)
    assert code == 0 and doc["destroyed"] == [due], err
    assert "refused" not in _last_purge_entry(archive_dir)
    assert cli(capsys, "--archive", archive_dir, "verify").code == 0


def test_automatic_mode_set_with_the_passphrase_destroys(
    due: str, archive_dir: Path, passphrase_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = decide(capsys, archive_dir, passphrase_file, "retention", "approval", "automatic")
    assert run.code == 0, run.err
    _code, doc, err = _purge(archive_dir)
    assert doc["destroyed"] == [due], err


def test_a_deleted_checkpoint_keeps_everything(due: str, archive_dir: Path) -> None:
    _approve(archive_dir)
    checkpoint.path_of(archive_dir).unlink()
    _code, doc, _ = _purge(archive_dir)
    assert doc["destroyed"] == [] and "checkpoint.json) are missing or do not verify" in doc["records"][0]["reason"]


def test_hold_reasons_are_sealed_and_shown_after_unlocking(
    due: str, archive_dir: Path, passphrase_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reason = "subpoena naming Jane Roe"
    run = decide(capsys, archive_dir, passphrase_file, "hold", "place", "s-9", "--client", CLIENT, "--reason", reason)  # fmt: skip
    assert run.code == 0, run.err
    for path in archive_dir.rglob("*"):
        if path.is_file():
            assert b"Jane Roe" not in path.read_bytes(), path
    run = decide(capsys, archive_dir, passphrase_file, "hold", "list")
    assert run.code == 0 and reason in run.out


def _forge_blob(archive: Path, rid: str) -> None:
    """A new blob for the same record, its key wrapped to the archive's (public) recipient."""
    with Archive(archive) as a:
        key = os.urandom(32)
        forged = {"pdf": b"%PDF-1.4 forged", "ocr": b'{"format":"scanarchive-ocr","version":2,"pages":[]}'}
        written = sealed.seal_into(a.store, key, rid, forged)
        digest, size = written.digest, written.size
        wrapped = keys.wrap(key, a.config.recipient, sealed.record_context(rid))
    _sql(archive / "catalog.db", "UPDATE records SET blob_sha256 = ?, blob_size = ? WHERE id = ?", (digest, size, rid))
    _sql(archive / "catalog.db", "UPDATE record_keys SET wrapped = ? WHERE record_id = ?", (wrapped, rid))


def test_a_swapped_blob_and_key_is_caught(
    due: str, archive_dir: Path, passphrase_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _forge_blob(archive_dir, due)  # bound at `client add` (an interactive command), swapped afterwards
    run = cli(capsys, "--archive", archive_dir, "verify", "--read-data", "--passphrase-file", passphrase_file)
    assert run.code == IntegrityError.exit_code
    assert f"record {due}: its blob or key was replaced after it was first read" in run.out
    run = cli(
        capsys, "--archive", archive_dir, "show", due, "-o", tmp_path / "x.pdf", "--passphrase-file", passphrase_file
    )
    assert run.code == IntegrityError.exit_code and not (tmp_path / "x.pdf").exists()


def test_a_swapped_recipient_is_refused_at_ingest_and_reported_by_verify(
    due: str, archive_dir: Path, passphrase_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = archive_dir / "config.toml"
    mine = keys.Identity.generate().recipient
    honest = config.read_text()
    real = Archive(archive_dir).config.recipient
    config.write_text(honest.replace(real.encode(), mine.encode()))
    image, _ = render_note(seed=72, sentences=1, height_in=3)
    image.save(tmp_path / "next.png", dpi=(300, 300))
    run = cli(capsys, "--archive", archive_dir, "ingest", tmp_path / "next.png")
    assert run.code == ConfigError.exit_code and "refusing to seal" in run.err
    assert (tmp_path / "next.png").exists()
    # a record that was sealed to the attacker's key anyway (e.g. with identity.enc unreadable)
    config.write_text(honest)
    wrapped = keys.wrap(os.urandom(32), mine, sealed.record_context(due))
    _sql(archive_dir / "catalog.db", "UPDATE record_keys SET wrapped = ?, key_id = ?", (wrapped, mine.key_id))
    run = cli(capsys, "--archive", archive_dir, "verify", "--read-data", "--passphrase-file", passphrase_file)
    assert run.code == IntegrityError.exit_code and f"record {due} was sealed to another key" in run.out


def _copy_catalog(archive: Path, to: Path) -> None:
    src = sqlite3.connect(archive / "catalog.db")
    dst = sqlite3.connect(to)
    src.backup(dst)
    src.close()
    dst.close()


def _put_back(archive: Path, copy: Path) -> None:
    for suffix in ("-wal", "-shm"):
        Path(str(archive / "catalog.db") + suffix).unlink(missing_ok=True)
    shutil.copyfile(copy, archive / "catalog.db")


def test_an_older_catalog_is_caught_by_verify(
    due: str, archive_dir: Path, passphrase_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / "old-catalog.db"
    _copy_catalog(archive_dir, old)
    newer = _ingest(capsys, archive_dir, tmp_path, 73)
    run = cli(capsys, "--archive", archive_dir, "verify", "--read-data", "--passphrase-file", passphrase_file)
    assert run.code == 0, run.out + run.err  # an interactive command saw the newer record
    _put_back(archive_dir, old)
    run = cli(capsys, "--archive", archive_dir, "verify")
    assert run.code == RolledBack.exit_code and "rolled back?" in run.out + run.err
    assert newer not in {r.id for r in Archive(archive_dir).catalog.records()}


def test_a_destroyed_record_put_back_with_its_blob_is_caught(
    due: str, archive_dir: Path, passphrase_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / "old-catalog.db"
    _approve(archive_dir)
    _copy_catalog(archive_dir, old)
    objects = tmp_path / "old-objects"
    shutil.copytree(archive_dir / "objects", objects)
    _code, doc, _ = _purge(archive_dir)
    assert doc["destroyed"] == [due]
    _put_back(archive_dir, old)
    shutil.rmtree(archive_dir / "objects")
    shutil.copytree(objects, archive_dir / "objects")
    run = cli(capsys, "--archive", archive_dir, "verify")
    assert run.code == RolledBack.exit_code and f"record {due} was destroyed" in run.out
    run = cli(capsys, "--archive", archive_dir, "search", "x", "--passphrase-file", passphrase_file)
    assert run.code == 0  # searching still works; it signs nothing older (the warning is logged)
    with Archive(archive_dir) as a:
        body = checkpoint.load(a).body
        assert body is not None and due not in body["seen"]["tombstones"], "nothing older was signed"


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_golden_archives_upgrade_at_the_first_decision(
    version: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    golden = Path(__file__).resolve().parent / "data" / "golden" / version
    copy = tmp_path / "g"
    shutil.copytree(golden, copy)
    expected = json.loads((golden / "expected.json").read_text())
    pf = tmp_path / "pp.txt"
    pf.write_text(expected["passphrase"] + "\n")
    pf.chmod(0o600)
    code, _, err = _purge(copy, "--dry-run")
    assert code == ConfigError.exit_code and "no retention rules" in err, "legacy archive: purge as before"
    assert "decision_key" not in (copy / "config.toml").read_text()
    run = decide(capsys, copy, pf, "retention", "use", "apa_2007")
    assert run.code == 0, run.err
    assert "decision_key" in (copy / "config.toml").read_text() and checkpoint.path_of(copy).is_file()
    run = cli(capsys, "--archive", copy, "verify", "--read-data", "--passphrase-file", pf)
    assert run.code == 0, run.out + run.err
    code, doc, err = _purge(copy, "--dry-run")
    assert code == 0 and not any(r["destroy"] for r in doc["records"]), err  # unfiled or not due: kept
    assert str(uuid.UUID(doc["records"][0]["record_id"])) == doc["records"][0]["record_id"]
