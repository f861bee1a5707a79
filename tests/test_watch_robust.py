"""The drop folder never loses or duplicates a scan: SIGKILL, slow writers, FTP, bursts, a full disk.

Every test runs the real `scanarchive watch` as a subprocess and drives it
with real files; nothing in the pipeline is replaced.
"""

from __future__ import annotations

import ftplib
import io
import os
import random
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kits.helpers import find_plaintext, note_words
from tests.kits.watchkit import (
    drop_files,
    fast_watch_config,
    in_progress,
    kill9,
    set_config,
    sha256_bytes,
    small_scan_bytes,
    source_hashes,
    start_watcher,
    wait_for,
)

from netblock_impl import allow_loopback


def _write_slowly(path: Path, data: bytes, chunks: int, pause: float) -> None:
    step = -(-len(data) // chunks)
    with path.open("wb") as fp:
        for i in range(0, len(data), step):
            fp.write(data[i : i + step])
            fp.flush()
            time.sleep(pause)


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_and_duplicates_nothing(archive_dir: Path, drop: Path, tmp_path: Path) -> None:
    rng = random.Random(20261127)
    scans = [small_scan_bytes(seed) for seed in range(100, 150)]
    expected = sorted(sha256_bytes(data) for data, _ in scans)
    assert len(set(expected)) == 50

    def writer() -> None:
        for n, (data, _) in enumerate(scans):
            _write_slowly(drop / f"scan-{n:03d}.png", data, chunks=4, pause=0.02)

    log = tmp_path / "watch.log"
    proc = start_watcher(archive_dir, log=log)
    thread = threading.Thread(target=writer)
    thread.start()
    kills = 0
    try:
        while kills < 10 or thread.is_alive():
            time.sleep(rng.uniform(0.4, 2.5))
            kill9(proc)
            kills += 1
            proc = start_watcher(archive_dir, log=log)
        thread.join()
        wait_for(
            lambda: len(source_hashes(archive_dir)) >= 50 and in_progress(archive_dir) == 0 and not drop_files(drop),
            300,
            "all 50 scans archived after the kills",
        )
    finally:
        proc.terminate()
        code = proc.wait(timeout=60)
    assert code == 0, "SIGTERM is a clean shutdown"
    assert kills >= 10
    assert sorted(source_hashes(archive_dir)) == expected, "each scan exactly one record"
    assert not (drop / "failed").exists(), "nothing was quarantined"
    assert not [p for p in (archive_dir / "journal").iterdir()], "the journal is empty"
    words = {w for _, lines in scans for w in note_words(lines, min_len=5)}
    assert find_plaintext([archive_dir], words) == [], "no plaintext scan or OCR text left behind"
    assert "Traceback" not in log.read_text()


@pytest.mark.slow
def test_a_file_written_over_ten_seconds_is_taken_only_when_complete(
    archive_dir: Path, drop: Path, tmp_path: Path
) -> None:
    set_config(archive_dir, settle_seconds=2.5)
    data, _ = small_scan_bytes(77)
    proc = start_watcher(archive_dir, log=tmp_path / "watch.log")
    try:
        _write_slowly(drop / "slow.png", data, chunks=12, pause=1.0)  # ~12 s, gaps shorter than the settle time
        wait_for(lambda: len(source_hashes(archive_dir)) == 1 and in_progress(archive_dir) == 0, 60, "the record")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert source_hashes(archive_dir) == [sha256_bytes(data)], "the record holds the complete file"
    assert not (drop / "failed").exists(), "a half-written file was never taken (it would be quarantined)"


@pytest.fixture
def ftp_server(drop: Path) -> Iterator[int]:
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import FTPServer

    authorizer = DummyAuthorizer()
    authorizer.add_user("scanner", "scanner-password", str(drop), perm="elradfmw")
    handler = type("ScannerHandler", (FTPHandler,), {"authorizer": authorizer, "passive_ports": range(40000, 40100)})
    with allow_loopback():  # only 127.0.0.1; every other address stays blocked
        server = FTPServer(("127.0.0.1", 0), handler)
        port = server.socket.getsockname()[1]
        thread = threading.Thread(target=server.serve_forever, kwargs={"timeout": 0.2, "blocking": True}, daemon=True)
        thread.start()
        yield port
        server.close_all()


def test_scans_uploaded_slowly_over_ftp_arrive_as_intact_records(
    archive_dir: Path, drop: Path, ftp_server: int, tmp_path: Path
) -> None:
    scans = [small_scan_bytes(seed)[0] for seed in range(300, 305)]
    proc = start_watcher(archive_dir, log=tmp_path / "watch.log")
    try:
        with ftplib.FTP() as ftp:  # noqa: S321 - network scanners speak plain FTP; loopback only
            ftp.connect("127.0.0.1", ftp_server, timeout=30)
            ftp.login("scanner", "scanner-password")
            for n, data in enumerate(scans):
                # a network scanner sends in small blocks with pauses; the watcher must wait
                ftp.storbinary(
                    f"STOR scan{n}.png", io.BytesIO(data), blocksize=4096, callback=lambda _block: time.sleep(0.03)
                )
        wait_for(lambda: len(source_hashes(archive_dir)) == 5 and not drop_files(drop), 120, "5 records")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert sorted(source_hashes(archive_dir)) == sorted(sha256_bytes(d) for d in scans)
    assert not (drop / "failed").exists()


@pytest.mark.slow
def test_a_burst_of_300_scans_is_archived_once_each(archive_dir: Path, drop: Path, tmp_path: Path) -> None:
    scans = [small_scan_bytes(seed)[0] for seed in range(1000, 1300)]
    for n, data in enumerate(scans):
        (drop / f"burst-{n:04d}.png").write_bytes(data)
    proc = start_watcher(archive_dir, log=tmp_path / "watch.log")
    try:
        wait_for(lambda: len(source_hashes(archive_dir)) >= 300 and not drop_files(drop), 900, "300 records")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    hashes = source_hashes(archive_dir)
    assert len(hashes) == 300 and sorted(hashes) == sorted(sha256_bytes(d) for d in scans)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs", str(mount)], capture_output=True, check=False
    )
    if result.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {result.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow
def test_a_full_disk_loses_nothing_and_ingest_resumes(
    small_disk: Path, tmp_path: Path, passphrase_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.kits.helpers import cli

    archive = small_disk / "archive"
    assert (
        cli(capsys, "--archive", archive, "init", "--passphrase-file", passphrase_file, "--kdf-seconds", "0.01").code
        == 0
    )
    drop = tmp_path / "scans"  # another filesystem than the archive: claims copy, fsync, verify, unlink
    drop.mkdir()
    fast_watch_config(archive, drop)
    from scanarchive.demo import synth

    image = synth.render_page(synth.synthetic_note(9, 2), height_in=3.0, noise=12.0, seed=9)
    out = io.BytesIO()
    image.save(out, format="PNG", dpi=(300, 300))
    data = out.getvalue()
    free = shutil.disk_usage(small_disk).free
    filler = small_disk / "filler"
    # room for the claimed copy, not for the sealed record as well
    filler.write_bytes(b"\0" * max(0, free - int(len(data) * 1.4)))
    (drop / "big.png").write_bytes(data)
    proc = start_watcher(archive, log=tmp_path / "watch.log")
    try:
        time.sleep(6)
        assert source_hashes(archive) == [], "nothing can be sealed on a full disk"
        assert (drop / "big.png").exists() or in_progress(archive) == 1, "the scan is in the drop folder or journal"
        assert proc.poll() is None, "the watcher survives a full disk"
        filler.unlink()
        wait_for(
            lambda: source_hashes(archive) == [sha256_bytes(data)] and in_progress(archive) == 0,
            60,
            "the record once space is free",
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert not drop_files(drop)
    log = (tmp_path / "watch.log").read_text()
    assert "full" in log and "Traceback" not in log
