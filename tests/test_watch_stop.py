"""A stop (SIGTERM, as systemd sends) during a long scan ends the watcher in seconds, and loses nothing.

The real `scanarchive watch` runs as a subprocess on a real drop folder with a real multi-page scan; the
scan still being read is left claimed in journal/ and archived, once, by the next start. With -v the
watcher logs each stage of each scan with its time, and never a word of the notes.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.kits.helpers import note_words, render_note, sha256
from tests.kits.watchkit import (
    catalog_rows,
    drop_files,
    in_progress,
    small_scan_bytes,
    source_hashes,
    start_watcher,
    wait_for,
)

STAGES = ("read", "check", "look", "identify", "ocr", "build", "seal", "catalog", "verify", "release")


def _long_scan(path: Path, pages: int) -> list[str]:
    rendered = [render_note(seed=seed, noise=0, sentences=1, height_in=3) for seed in range(300, 300 + pages)]
    images = [image for image, _ in rendered]
    images[0].save(path, save_all=True, append_images=images[1:], resolution=300)
    return [line for _, lines in rendered for line in lines]


def _processes_inside(folder: Path) -> list[str]:
    """Processes (a parser child, an OCR engine) whose working folder is under `folder`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = os.readlink(proc / "cwd")
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile, or not ours
            continue
        if cwd.startswith(str(folder)):
            found.append(f"{proc.name}: {cmdline[:120]}")
    return found


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (the parser child, its OCR workers), from /proc."""
    parents: dict[int, int] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                stat = (proc / "stat").read_text()
            except OSError:
                continue
            parents[int(proc.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found += children
        todo += children
    return found


def _watch_once(archive: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scanarchive", "--archive", str(archive), "watch", "--once", *extra],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "SCANARCHIVE_PASSPHRASE_FILE": ""},
        check=False,
    )


@pytest.mark.slow
@pytest.mark.parametrize("whom", ["watcher", "service"])
def test_sigterm_during_a_long_scan_stops_in_seconds_and_the_next_start_archives_it_once(
    whom: str, archive_dir: Path, drop: Path, tmp_path: Path
) -> None:
    """`whom`: the watcher alone (kill PID), or every process of the service, the watcher first (systemd's
    stop: KillMode=control-group also reaches the parser child and its OCR workers, which die mid-page)."""
    staged = tmp_path / "staged.pdf"
    _long_scan(staged, pages=24)
    original = sha256(staged)
    log = tmp_path / "watch.log"
    proc = start_watcher(archive_dir, "-v", log=log)
    try:
        os.rename(staged, drop / "long-scan.pdf")  # appears whole, as a scanner's rename does
        wait_for(lambda: " ocr of 24 pages begins" in log.read_text(), 240, "the long scan being read")
        time.sleep(1.0)  # a page or so into the OCR
        assert in_progress(archive_dir) == 1, "it is claimed while it is read"
        started = time.monotonic()
        below = _descendants(proc.pid) if whom == "service" else []
        proc.send_signal(signal.SIGTERM)
        for pid in below:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        code = proc.wait(timeout=30)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    text = log.read_text()
    assert code == 0, f"SIGTERM is a clean shutdown: {text[-2000:]}"
    assert took < 10, f"the watcher took {took:.1f} s to stop (systemd kills it at 90 s)"
    assert not re.search(r": (ocr \d+\.\d\d s|seal|catalog|verify) ", text), "stopped while it was being read"
    assert "stays in the journal" in text

    assert source_hashes(archive_dir) == [], "nothing archived yet"
    rows = catalog_rows(archive_dir, "SELECT state, attempts, last_error, sha256 FROM journal")
    assert rows == [("claimed", 0, "", original)], "still claimed, as it was: a stop is not a failed attempt"
    (kept,) = (archive_dir / "journal").iterdir()
    assert sha256(kept) == original, "the claimed scan is intact in journal/"
    assert not drop_files(drop), "not put back, not put aside"
    assert not (drop / "failed").exists() or not list((drop / "failed").iterdir()), "never a failure note for a stop"
    assert catalog_rows(archive_dir, "SELECT COUNT(*) FROM quarantine") == [(0,)], "never quarantined for a stop"
    assert not [p for p in _processes_inside(tmp_path) if "scanarchive.ingest.parser" in p], "the parser child is gone"
    # An OCR worker runs in a session of its own (ocr/rapidocr.py): the parser child's kill does not reach it,
    # it exits at the end of the page it is on, when it finds its input closed. Never left running.
    wait_for(lambda: not _processes_inside(tmp_path), 20, "no OCR engine left running")
    assert list(Path(os.environ["SCANARCHIVE_TMPDIR"]).iterdir()) == [], "the reader's private folder is removed"

    again = _watch_once(archive_dir)  # the next start: crash recovery takes it up
    assert again.returncode == 0, again.stderr
    assert "1 archived, 0 already archived, 0 quarantined, 0 to retry later." in again.stdout
    assert "recovering 1 scan(s) from the journal" in again.stderr
    assert not re.search(r"claim \S+: (read|look|ocr) ", again.stderr), "stage times only with -v"
    assert source_hashes(archive_dir) == [original], "archived exactly once"
    assert catalog_rows(archive_dir, "SELECT COUNT(*) FROM records") == [(1,)]
    assert in_progress(archive_dir) == 0 and list((archive_dir / "journal").iterdir()) == []
    assert not drop_files(drop)


def test_v_logs_each_stage_of_a_watched_scan_with_its_time_and_no_note_words(archive_dir: Path, drop: Path) -> None:
    data, lines = small_scan_bytes(31)
    (drop / "Mrs-Example-session.png").write_bytes(data)
    run = _watch_once(archive_dir, "-v")
    assert run.returncode == 0, run.stderr
    assert "1 archived" in run.stdout
    claim = re.search(r"claim ([0-9a-f-]{36}): read ", run.stderr)
    assert claim, run.stderr
    for stage in STAGES:
        pattern = rf"INFO: claim {claim.group(1)}: {stage} \d+\.\d\d s"
        assert re.search(pattern, run.stderr), f"-v logs the {stage} stage with its time: {run.stderr}"
    assert re.search(r": ocr \d+\.\d\d s \(1 page\)", run.stderr), "with its counts"
    assert not {w for w in note_words(lines) if w in run.stderr.lower()}, "never OCR text in the log"
    assert "Mrs-Example" not in run.stderr, "never the scan's file name"
    assert len(source_hashes(archive_dir)) == 1
