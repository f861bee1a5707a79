"""A hostile drop folder: whoever can write it must not reach the archive, hang the watcher, or hide a file.

Real watcher subprocesses and real files (links, pipes, sparse files, names with escapes); the
only injection is calling the claim code directly to swap a pipe or a link in after settling,
at a moment a real race cannot be timed.
"""

from __future__ import annotations

import os
import resource
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from scanarchive.archive.layout import Archive
from scanarchive.clock import now_utc
from scanarchive.intake.claim import Claim, Journal, default_refuser
from scanarchive.intake.watch import NOTE_BUDGET
from tests.kits.helpers import cli
from tests.kits.watchkit import catalog_rows, drop_files, sha256_bytes, small_scan_bytes, source_hashes, wait_for

ESC = "\x1b"


def _start(archive: Path, log: Path) -> subprocess.Popen[bytes]:
    """The real `scanarchive watch`, its address space capped (8 GiB) so that a watcher that reads a
    32 GB file whole fails with MemoryError instead of taking the test machine's memory."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))

    out = open(log, "ab")  # noqa: SIM115 - handed to the child
    return subprocess.Popen(
        [sys.executable, "-m", "scanarchive", "--archive", str(archive), "watch"],
        stdout=out,
        stderr=out,
        env={**os.environ, "SCANARCHIVE_PASSPHRASE_FILE": ""},
        preexec_fn=cap,
    )


def _stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)
        raise AssertionError("the watcher did not stop on SIGTERM") from None


def _quarantined(archive: Path) -> int:
    rows = catalog_rows(archive, "SELECT COUNT(*) FROM quarantine")
    return int(rows[0][0]) if rows else 0  # type: ignore[call-overload]


def _vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def _refused(drop: Path) -> list[Path]:
    return sorted(p for p in (drop / "failed").iterdir() if p.name.endswith(".refused"))


def _notes(drop: Path) -> list[Path]:
    failed = drop / "failed"
    return sorted(p for p in failed.iterdir() if p.name.endswith(".txt")) if failed.exists() else []


def _good_scan_archived(archive: Path, drop: Path, data: bytes, name: str = "good.png") -> None:
    (drop / name).write_bytes(data)
    wait_for(lambda: sha256_bytes(data) in source_hashes(archive), 180, "the good scan archived")


# --- attack 1: a symlink farm in failed/ ------------------------------------------------------------


def test_symlink_farm_in_failed_is_never_written_through(archive_dir: Path, drop: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.db"
    victim.write_bytes((archive_dir / "catalog.db").read_bytes())
    victim_bytes = victim.read_bytes()
    failed = drop / "failed"
    failed.mkdir(mode=0o755)
    log = tmp_path / "watch.log"
    proc = _start(archive_dir, log)
    try:
        # every name the old watcher wrote: its temp name (pid known) and a final note name
        for pid in {proc.pid, proc.pid + 1}:
            (failed / f".junk.png.txt.tmp-{pid}").symlink_to(victim)
            (failed / f".junk.png.txt.tmp-{pid}-db").symlink_to(archive_dir / "catalog.db")
        (failed / "notes.png.txt").symlink_to(victim)
        (drop / "junk.png").write_bytes(b"not pixels at all\n" * 40)
        (drop / "notes.png").write_bytes(b"also not pixels\n" * 40)
        wait_for(lambda: _quarantined(archive_dir) == 2 and not drop_files(drop), 120, "both junk files quarantined")
        wait_for(lambda: len([p for p in _notes(drop) if not p.is_symlink()]) == 2, 30, "two notes")
    finally:
        assert _stop(proc) == 0
    assert victim.read_bytes() == victim_bytes, "a planted link was written through"
    db = sqlite3.connect(archive_dir / "catalog.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()
    for note in _notes(drop):
        if note.name == "notes.png.txt":
            assert note.is_symlink(), "the planted link is left alone, not replaced or followed"
            continue
        assert stat.S_ISREG(note.lstat().st_mode) and "scanarchive failed retry" in note.read_text()


def test_failed_writable_by_others_is_refused_and_the_scan_still_sealed(
    archive_dir: Path, drop: Path, tmp_path: Path
) -> None:
    failed = drop / "failed"
    failed.mkdir()
    failed.chmod(0o777)  # no sticky bit: anyone could replace what the watcher writes there
    log = tmp_path / "watch.log"
    proc = _start(archive_dir, log)
    try:
        (drop / "junk.png").write_bytes(b"not pixels\n" * 40)
        wait_for(lambda: _quarantined(archive_dir) == 1 and not drop_files(drop), 120, "the junk file quarantined")
        time.sleep(1)
    finally:
        assert _stop(proc) == 0
    assert list(failed.iterdir()) == [], "no note in a failed/ that others can replace"
    text = log.read_text()
    assert "can be written by other users" in text
    assert text.count("can be written by other users") == 1, "said once, not once per scan"


# --- attack 2: a pipe or a link swapped in after settling, and in the journal after a crash ---------------


def _claim_with_timeout(journal: Journal, source: Path, expect: tuple[int, int]) -> Claim | None:
    result: list[Claim | None] = []
    thread = threading.Thread(target=lambda: result.append(journal.claim(source, expect)), daemon=True)
    thread.start()
    thread.join(timeout=20)
    if thread.is_alive():
        for path in [source, *journal.dir.iterdir()]:  # unblock the reader so the test can end
            if path.is_fifo():
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        raise AssertionError("claiming blocked on what was swapped in")
    return result[0]


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "private-file"])
def test_what_is_swapped_in_after_settling_is_put_aside_unread(
    archive_dir: Path, drop: Path, tmp_path: Path, kind: str
) -> None:
    source = drop / "s.png"
    source.write_bytes(small_scan_bytes(1)[0])
    settled = source.lstat()
    expect = (settled.st_dev, settled.st_ino)
    swap = tmp_path / "swap"
    if kind == "fifo":
        os.mkfifo(swap)
    elif kind == "dev-zero":
        swap.symlink_to("/dev/zero")
    else:
        secret = tmp_path / "secret.txt"
        secret.write_text("only the watcher's user can read this\n")
        secret.chmod(0o600)
        swap.symlink_to(secret)
    os.rename(swap, source)  # the attacker's rename over the settled scan
    with Archive(archive_dir) as archive:
        journal = Journal(archive_dir, archive.catalog, max_bytes=512 << 20, refuse=default_refuser)
        assert _claim_with_timeout(journal, source, expect) is None
        assert journal.claims() == []
    assert list((archive_dir / "journal").iterdir()) == []
    assert _quarantined(archive_dir) == 0, "nothing swapped in is sealed"
    [aside] = _refused(drop)
    mode = aside.lstat().st_mode
    assert stat.S_ISFIFO(mode) if kind == "fifo" else stat.S_ISLNK(mode)
    [note] = _notes(drop)
    assert ("pipe" if kind == "fifo" else "symbolic link") in note.read_text()
    if kind == "private-file":
        assert "only the watcher" not in note.read_text()


def test_a_pipe_in_the_journal_after_a_crash_does_not_hang_the_watcher(
    archive_dir: Path, drop: Path, tmp_path: Path
) -> None:
    (archive_dir / "journal").mkdir(mode=0o700, exist_ok=True)
    with Archive(archive_dir) as archive, archive.catalog.transaction() as db:
        for n, state in enumerate(("claiming", "claimed")):
            claim_id = f"00000000-0000-4000-8000-00000000000{n}"
            os.mkfifo(archive_dir / "journal" / f"{claim_id}.scan")
            db.execute(
                "INSERT INTO journal(claim_id, source_name, source_path, sha256, state, claimed_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?)",
                (claim_id, f"p{n}.png", str(drop / f"p{n}.png"), "a" * 64, state, now_utc(), now_utc()),
            )
    log = tmp_path / "watch.log"
    proc = _start(archive_dir, log)
    try:
        _good_scan_archived(archive_dir, drop, small_scan_bytes(2)[0])
        wait_for(lambda: len(_refused(drop)) == 2, 30, "both pipes put aside")
    finally:
        assert _stop(proc) == 0, "SIGTERM still stops it"
    assert all(stat.S_ISFIFO(p.lstat().st_mode) for p in _refused(drop))
    assert catalog_rows(archive_dir, "SELECT COUNT(*) FROM journal") == [(0,)]


# --- attack 3: a 32 GB sparse file ------------------------------------------------------------------------


def test_a_32gb_sparse_file_is_refused_without_reading_and_the_watcher_goes_on(
    archive_dir: Path, drop: Path, tmp_path: Path
) -> None:
    log = tmp_path / "watch.log"
    proc = _start(archive_dir, log)
    try:
        with (drop / "s.pdf").open("wb") as fp:
            fp.truncate(32 << 30)
        with (drop / "holes.pdf").open("wb") as fp:  # under the size limit, but almost all holes
            fp.write(b"%PDF-1.4\n")
            fp.truncate(100 << 20)
        wait_for(lambda: len(_refused(drop)) == 2 if (drop / "failed").exists() else False, 60, "both refused")
        assert proc.poll() is None, "the watcher is alive"
        peak = _vm_hwm_mb(proc.pid)
        print(f"watcher VmHWM after refusing 32 GB: {peak:.0f} MB")
        assert peak < 300, f"the watcher's peak RSS was {peak:.0f} MB: it read the file"
        _good_scan_archived(archive_dir, drop, small_scan_bytes(3)[0])
    finally:
        assert _stop(proc) == 0
    sizes = sorted(p.stat().st_size for p in _refused(drop))
    assert sizes == [100 << 20, 32 << 30], "moved aside as they were, unread"
    texts = " ".join(n.read_text() for n in _notes(drop))
    assert "larger than the limit" in texts and "sparse" in texts
    assert _quarantined(archive_dir) == 0, "nothing that big is sealed into the quarantine"
    blobs = [p for p in (archive_dir / "quarantine").rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in blobs) < 1 << 20


# --- attack 4: control characters in a name -----------------------------------------------------------


def test_a_name_with_terminal_escapes_is_printed_harmless(
    archive_dir: Path, drop: Path, tmp_path: Path, passphrase_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"x{ESC}[2K{ESC}[1A\u202eevil\x07.png"
    (drop / name).write_bytes(b"not pixels\n" * 40)
    log = tmp_path / "watch.log"
    proc = _start(archive_dir, log)
    try:
        wait_for(lambda: _quarantined(archive_dir) == 1, 120, "the file quarantined")
        wait_for(lambda: len(_notes(drop)) == 1, 30, "its note")
    finally:
        assert _stop(proc) == 0
    listing = cli(capsys, "--archive", archive_dir, "failed", "list", "--names", "--passphrase-file", passphrase_file)
    assert listing.code == 0 and "evil" in listing.out
    [note] = _notes(drop)
    for text in (listing.out, listing.err, note.read_text(), note.name, log.read_text()):
        assert ESC not in text and "\u202e" not in text and "\x07" not in text


# --- attack 5: a flood of junk ---------------------------------------------------------------------------


def test_a_flood_of_junk_is_bounded_and_every_file_kept(archive_dir: Path, drop: Path, tmp_path: Path) -> None:
    count = 200
    log = tmp_path / "watch.log"
    proc = _start(archive_dir, log)
    try:
        for n in range(count):
            (drop / f"junk-{n:03d}.png").write_bytes(f"junk {n}\n".encode() * 10)
        wait_for(
            lambda: _quarantined(archive_dir) == count and not drop_files(drop), 240, "every junk file quarantined"
        )
        assert proc.poll() is None, "the watcher is alive"
    finally:
        assert _stop(proc) == 0
    notes = _notes(drop)
    summaries = [n for n in notes if n.name.startswith("scanarchive-many-failures-")]
    assert len(summaries) == 1 and "scanarchive failed list" in summaries[0].read_text()
    assert len(notes) == NOTE_BUDGET + 1, "bounded: the budget of notes, then one summary"
    assert len(set(r[0] for r in catalog_rows(archive_dir, "SELECT source_sha256 FROM quarantine"))) == count
    assert catalog_rows(archive_dir, "SELECT COUNT(*) FROM journal") == [(0,)]
