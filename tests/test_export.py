"""Exports: one client's records, manifest and audit excerpt; psychotherapy notes left out unless asked;
the encrypted form opens only with its passphrase and shows no word of a note.

Real scans (synthetic handwriting), real sealing and real crypto. Only OCR is replaced by a recogniser
that returns the note's own words (fast, and it puts every word into the sealed OCR section, so the
plaintext checks below have something to find if it leaked).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from scanarchive import audit, export
from scanarchive.archive.layout import Archive
from scanarchive.cli import export_cmds
from scanarchive.crypto import exportfile, keys
from scanarchive.errors import IntegrityError, RecordNotFound, UsageError, WrongPassphrase
from scanarchive.ingest import pipeline
from tests.kits.helpers import fake_ocr, find_plaintext, note_words, render_note

ARCHIVE_PASSPHRASE = "the archive passphrase of the export tests"
EXPORT_PASSPHRASE = "a different passphrase for the recipient 7"


@dataclass
class Ingested:
    root: Path
    passphrase_file: Path
    passphrase: str
    progress: list[str]  # C-1's two progress notes, by date
    psychotherapy: str  # C-1's psychotherapy note
    other: str  # C-2's note
    words: set[str]  # >= 5-letter words of C-1's notes


def _ingest(
    archive: Archive, folder: Path, seed: int, client: str, day: str, record_class: str
) -> tuple[str, list[str]]:
    image, lines = render_note(seed=seed, sentences=2)
    path = folder / f"scan-{seed}.png"
    image.save(path, dpi=(300, 300))
    result = pipeline.ingest_file(
        archive, path, client=client, session_date=day, record_class=record_class, recogniser=fake_ocr(lines)
    )
    (outcome,) = result.records
    assert (outcome.client_code, outcome.session_date, outcome.record_class) == (client, day, record_class)
    return outcome.record_id, lines


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory) -> Ingested:
    """One archive for the module (ingesting takes seconds); each test gets its own copy."""
    base = tmp_path_factory.mktemp("export-master")
    passphrase_file = base / "passphrase.txt"
    passphrase_file.write_text(ARCHIVE_PASSPHRASE + "\n")
    passphrase_file.chmod(0o600)  # a passphrase file others can read is refused
    root = base / "archive"
    drop = base / "scans"
    drop.mkdir()
    with Archive.create(root, ARCHIVE_PASSPHRASE, kdf_seconds=0.01) as archive:
        p1, l1 = _ingest(archive, drop, 21, "C-1", "2026-03-02", "progress")
        p2, l2 = _ingest(archive, drop, 22, "C-1", "2026-01-12", "progress")
        ps, l3 = _ingest(archive, drop, 23, "C-1", "2026-02-02", "psychotherapy")
        other, _ = _ingest(archive, drop, 24, "C-2", "2026-02-02", "progress")
    log = audit.log_path(root)
    # What the other verbs log (ingest, show): the excerpt must pick C-1's out and trim the rest.
    audit.append(log, "ingest", client="C-1", records=[p1], count=1, pages=1, source_removed=True)
    audit.append(log, "ingest", client="C-1", records=[ps], count=1, pages=1, source_removed=True)
    audit.append(log, "show", record=ps, client="C-1")
    audit.append(log, "show", record=other, client="C-2")
    audit.append(log, "purge", records=[other], count=1)
    words = note_words(l1 + l2 + l3, min_len=5)
    assert len(words) >= 10
    return Ingested(root, passphrase_file, ARCHIVE_PASSPHRASE, [p2, p1], ps, other, words)


@pytest.fixture
def ingested(master: Ingested, tmp_path: Path) -> Ingested:
    root = tmp_path / "archive"
    shutil.copytree(master.root, root)
    return dataclasses.replace(master, root=root)


def _args(root: Path, passphrase_file: Path, dest: Path, **extra: object) -> argparse.Namespace:
    values: dict[str, object] = {
        "archive": str(root),
        "client": "C-1",
        "dest": dest,
        "include_psychotherapy": False,
        "encrypt_to": None,
        "passphrase_file": passphrase_file,
    }
    values.update(extra)
    return argparse.Namespace(**values)


def _pdf(root: Path, passphrase: str, record_id: str) -> bytes:
    with Archive(root) as archive:
        identity = archive.unlock(passphrase)
        return archive.open_section(identity, archive.catalog.record(record_id), "pdf")


def _check_export_folder(folder: Path, data: Ingested, expected: list[str], left_out: int) -> dict[str, object]:
    manifest = json.loads((folder / "manifest.json").read_text())
    with Archive(data.root) as archive:
        archive_id = archive.config.archive_id
        rows = {r: archive.catalog.record(r) for r in expected}
    assert manifest["format"] == "scanarchive-export" and manifest["version"] == 1
    assert manifest["client"] == "C-1" and manifest["archive_id"] == archive_id
    assert manifest["exported_at"].endswith("+00:00")
    assert [r["id"] for r in manifest["records"]] == expected
    assert manifest["left_out"]["psychotherapy"] == left_out
    assert ("164.501" in manifest["left_out"]["reason"]) == bool(left_out)
    pdfs = sorted(p.name for p in (folder / "records").iterdir())
    assert len(pdfs) == len(expected)
    for entry in manifest["records"]:
        row = rows[entry["id"]]
        assert entry["session_date"] == row.session_date and entry["record_class"] == row.record_class
        assert entry["pages"] == row.page_count == 1
        assert entry["blob_sha256"] == row.blob_sha256
        assert entry["file"] == f"records/{row.session_date}_{row.id[:8]}.pdf"
        exported = (folder / entry["file"]).read_bytes()
        assert exported == _pdf(data.root, data.passphrase, row.id), "byte-identical to the sealed PDF"
        assert entry["pdf_sha256"] == hashlib.sha256(exported).hexdigest()
    excerpt = [json.loads(line) for line in (folder / "audit-excerpt.jsonl").read_text().splitlines()]
    assert excerpt[-1]["event"] == "export" and excerpt[-1]["seq"] == manifest["audit_log"]["entry"]
    text = (folder / "audit-excerpt.jsonl").read_text()
    assert "C-2" not in text and data.other not in text
    assert (data.psychotherapy in text) == (left_out == 0)
    assert manifest["audit_log"]["intact"] is True
    assert find_plaintext([folder / "manifest.json", folder / "audit-excerpt.jsonl"], data.words) == []
    return dict(manifest)


def test_export_leaves_out_psychotherapy_notes_and_says_so(
    ingested: Ingested, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "out" / "C-1-request"
    dest.parent.mkdir()
    capsys.readouterr()
    assert export_cmds.cmd_export(_args(ingested.root, ingested.passphrase_file, dest)) == 0
    captured = capsys.readouterr()
    assert "Exported 2 record(s) of client C-1" in captured.out
    assert "Left out 1 psychotherapy note(s)" in captured.out and "164.501" in captured.out
    assert "NOT encrypted" in captured.err

    assert (dest.stat().st_mode & 0o777) == 0o700
    assert ((dest / "records").stat().st_mode & 0o777) == 0o700
    for path in dest.rglob("*"):
        if path.is_file():
            assert (path.stat().st_mode & 0o777) == 0o600, path
    _check_export_folder(dest, ingested, ingested.progress, left_out=1)

    entries = [e for e in audit.show(audit.log_path(ingested.root)) if e["event"] == "export"]
    assert len(entries) == 1
    assert entries[0]["client"] == "C-1" and entries[0]["records"] == ingested.progress
    assert entries[0]["count"] == 2 and entries[0]["excluded"] == 1 and entries[0]["encrypted"] is False
    assert audit.verify(audit.log_path(ingested.root)).ok


def test_export_with_psychotherapy_notes_holds_all_three(
    ingested: Ingested, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "successor"
    assert export_cmds.cmd_export(_args(ingested.root, ingested.passphrase_file, dest, include_psychotherapy=True)) == 0
    assert "Left out" not in capsys.readouterr().out
    by_date = [ingested.progress[0], ingested.psychotherapy, ingested.progress[1]]  # 01-12, 02-02, 03-02
    manifest = _check_export_folder(dest, ingested, by_date, left_out=0)
    assert manifest["include_psychotherapy"] is True


def test_encrypted_export_opens_only_with_its_passphrase_and_shows_no_word(
    ingested: Ingested, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "export-pass.txt"
    secret.write_text(EXPORT_PASSPHRASE + "\n")
    secret.chmod(0o600)  # a passphrase file others can read is refused
    dest = tmp_path / "export.sae"
    assert export_cmds.cmd_export(_args(ingested.root, ingested.passphrase_file, dest, encrypt_to=secret)) == 0
    captured = capsys.readouterr()
    assert "NOT encrypted" not in captured.err and "is encrypted" in captured.out
    assert dest.is_file() and (dest.stat().st_mode & 0o777) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".export.sae")] == []

    raw = dest.read_bytes()
    assert raw[:8] == b"SCANEXP1" and raw[8] == exportfile.EXPORT_LOG_N
    assert find_plaintext([dest], ingested.words) == []
    # markers of 8+ bytes: shorter ones turn up in megabytes of ciphertext by chance
    for visible in (b"%PDF-1.", b"manifest.json", b'"client_code"', b"records/", ingested.progress[0].encode()):
        assert visible not in raw

    tar_bytes = exportfile.open_export(dest, EXPORT_PASSPHRASE)
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        names = sorted(tar.getnames())
    assert "manifest.json" in names and "audit-excerpt.jsonl" in names
    assert len([n for n in names if n.startswith("records/") and n.endswith(".pdf")]) == 2

    for wrong in ("a different passphrase for the recipient 8", ingested.passphrase):
        with pytest.raises((WrongPassphrase, IntegrityError)):
            exportfile.open_export(dest, wrong)

    folder = tmp_path / "opened"
    args = argparse.Namespace(file=dest, dest=folder, passphrase_file=secret)
    assert export_cmds.cmd_export_open(args) == 0
    assert "NOT encrypted" in capsys.readouterr().err
    assert (folder.stat().st_mode & 0o777) == 0o700
    manifest = _check_export_folder(folder, ingested, ingested.progress, left_out=1)
    assert manifest["encrypted"] is True

    entry = [e for e in audit.show(audit.log_path(ingested.root)) if e["event"] == "export"][-1]
    assert entry["encrypted"] is True and entry["count"] == 2


def test_damaged_encrypted_export_is_refused(tmp_path: Path) -> None:
    content = b"x" * 200_000
    sealed = exportfile.seal_export(content, EXPORT_PASSPHRASE, log_n=keys.MIN_LOG_N)
    assert exportfile.open_export_bytes(sealed, EXPORT_PASSPHRASE) == content
    for at in (len(sealed) // 2, len(sealed) - 1, 8, 9, 30):  # a chunk, the last tag, log_n, salt, id
        damaged = bytearray(sealed)
        damaged[at] ^= 0x01
        with pytest.raises((IntegrityError, WrongPassphrase)):
            exportfile.open_export_bytes(bytes(damaged), EXPORT_PASSPHRASE)
    damaged = bytearray(sealed)
    damaged[len(sealed) // 2] ^= 0x01
    with pytest.raises(IntegrityError, match="chunk"):
        exportfile.open_export_bytes(bytes(damaged), EXPORT_PASSPHRASE)
    with pytest.raises(IntegrityError, match="truncated"):
        exportfile.open_export_bytes(sealed[:-100], EXPORT_PASSPHRASE)
    with pytest.raises(IntegrityError, match="not a scanarchive"):
        exportfile.open_export_bytes(b"%PDF-1.7 " + sealed, EXPORT_PASSPHRASE)
    with pytest.raises(IntegrityError, match="version"):
        exportfile.open_export_bytes(b"SCANEXP2" + sealed[8:], EXPORT_PASSPHRASE)
    huge = bytearray(sealed)
    huge[8] = 40  # 2^40 scrypt: refused before any work
    with pytest.raises(IntegrityError, match="out of range"):
        exportfile.open_export_bytes(bytes(huge), EXPORT_PASSPHRASE)


def _tar(members: list[tarfile.TarInfo], data: bytes = b"evil") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info in members:
            if info.isreg():
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buffer.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


@pytest.mark.parametrize(
    "members",
    [
        [_member("../escaped.txt")],
        [_member("records/../../escaped.txt")],
        [_member("/tmp/escaped.txt")],
        [_member("records", tarfile.SYMTYPE, "..")],
        [_member("link", tarfile.SYMTYPE, "/etc/passwd")],
        [_member("hard", tarfile.LNKTYPE, "/etc/passwd")],
        [_member("fifo", tarfile.FIFOTYPE)],
        [_member("manifest.json"), _member("manifest.json")],
        [_member("ok.txt"), _member("..")],
    ],
)
def test_extraction_refuses_unsafe_members_and_keeps_nothing(tmp_path: Path, members: list[tarfile.TarInfo]) -> None:
    dest = tmp_path / "inner" / "opened"
    dest.parent.mkdir()
    with pytest.raises(IntegrityError):
        export.extract_tar(_tar(members), dest)
    assert not dest.exists()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["inner", "sa-tmp"]


def test_extraction_of_a_good_tar(tmp_path: Path) -> None:
    tar = _tar([_member("records", tarfile.DIRTYPE), _member("records/a.pdf"), _member("./manifest.json")], b"ok")
    names = export.extract_tar(tar, tmp_path / "x")
    assert sorted(names) == ["manifest.json", "records/a.pdf"]
    assert (tmp_path / "x" / "records" / "a.pdf").read_bytes() == b"ok"
    assert ((tmp_path / "x" / "manifest.json").stat().st_mode & 0o777) == 0o600
    with pytest.raises(UsageError, match="already exists"):
        export.extract_tar(tar, tmp_path / "x")


def test_export_refusals(ingested: Ingested, tmp_path: Path) -> None:
    log = audit.log_path(ingested.root)
    before = log.read_bytes()
    taken = tmp_path / "taken"
    taken.mkdir()
    with pytest.raises(UsageError, match="already exists"):
        export_cmds.cmd_export(_args(ingested.root, ingested.passphrase_file, taken))
    with pytest.raises(RecordNotFound, match="C-9"):
        export_cmds.cmd_export(_args(ingested.root, ingested.passphrase_file, tmp_path / "n", client="C-9"))
    with pytest.raises(UsageError, match="archive's passphrase"):
        export_cmds.cmd_export(
            _args(ingested.root, ingested.passphrase_file, tmp_path / "e.sae", encrypt_to=ingested.passphrase_file)
        )
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    empty.chmod(0o600)  # a passphrase file others can read is refused
    with pytest.raises(UsageError, match="empty"):
        export_cmds.cmd_export(_args(ingested.root, ingested.passphrase_file, tmp_path / "e.sae", encrypt_to=empty))
    assert log.read_bytes() == before, "a refused export is not logged as an export"
    assert not (tmp_path / "n").exists() and not (tmp_path / "e.sae").exists()


def test_a_damaged_record_stops_the_export_logs_the_failure_and_keeps_nothing(
    ingested: Ingested, tmp_path: Path
) -> None:
    with Archive(ingested.root) as archive:
        blob = archive.store.path_for(archive.catalog.record(ingested.progress[1]).blob_sha256)
    blob.chmod(0o600)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    dest = tmp_path / "partial"
    with pytest.raises(IntegrityError, match=ingested.progress[1]):
        export_cmds.cmd_export(_args(ingested.root, ingested.passphrase_file, dest))
    assert not dest.exists()
    events = [e["event"] for e in audit.show(audit.log_path(ingested.root))]
    assert events[-2:] == ["export", "failed"]
    failed = audit.show(audit.log_path(ingested.root))[-1]
    assert failed["command"] == "export" and failed["code"] == "IntegrityError"
    assert audit.verify(audit.log_path(ingested.root)).ok


def test_export_verbs_through_main_when_registered(
    ingested: Ingested, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from scanarchive.cli.main import build_parser
    from tests.kits.helpers import cli

    verbs = [a._name_parser_map for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    if not any("export" in names for names in verbs):
        pytest.skip("the export verbs are not registered in cli/main.py yet")
    dest = tmp_path / "via-main"
    run = cli(
        capsys,
        "--archive",
        ingested.root,
        "export",
        "--client",
        "C-1",
        dest,
        "--passphrase-file",
        ingested.passphrase_file,
    )
    assert run.code == 0, run.err
    assert "NOT encrypted" in run.err and len(list((dest / "records").iterdir())) == 2
