"""A write killed half-way leaves a temp file of sealed bytes in the store; verify removes it, and only it:
never a blob, never the temp of a write still going on (it holds a lock on it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scanarchive.archive.store import STALE_TEMP_SECONDS, BlobStore
from tests.kits.helpers import cli

WRITER = r"""
import os, signal, sys
from pathlib import Path
from scanarchive.archive.store import BlobStore

def fill(out):
    out.write(b"sealed bytes " * 100_000)
    out.flush()
    print("writing", flush=True)
    if sys.argv[2] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    sys.stdin.readline()  # "wait": until the test says go on

print(BlobStore(Path(sys.argv[1])).put_stream(fill)[0], flush=True)
"""


def writer(root: Path, mode: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root), mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "writing"
    return proc


def temps(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob(".*.tmp"))


def age(paths: list[Path]) -> None:
    old = time.time() - STALE_TEMP_SECONDS - 60
    for path in paths:
        os.utime(path, (old, old))


def test_a_killed_write_leaves_a_temp_that_sweep_removes_and_blobs_stay(tmp_path: Path) -> None:
    root = tmp_path / "objects"
    root.mkdir()
    store = BlobStore(root)
    kept = store.put(b"a blob that must stay")
    proc = writer(root, "kill")
    assert proc.wait(timeout=30) == -9
    left = temps(root)
    assert len(left) == 1
    assert store.sweep_temps() == 0  # just written: could be a write that is only slow
    age(left)
    assert store.sweep_temps() == 1
    assert temps(root) == []
    assert list(store) == [kept]
    assert store.get(kept) == b"a blob that must stay"


def test_the_temp_of_a_write_still_going_on_is_left_alone(tmp_path: Path) -> None:
    root = tmp_path / "objects"
    root.mkdir()
    store = BlobStore(root)
    proc = writer(root, "wait")
    try:
        left = temps(root)
        assert len(left) == 1
        age(left)  # old, but its writer is alive and holds the lock
        assert store.sweep_temps() == 0
        assert temps(root) == left
        assert proc.stdin is not None
        proc.stdin.write("go on\n")
        proc.stdin.flush()
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    digest = out.strip()
    assert list(store) == [digest]
    assert store.get(digest) == b"sealed bytes " * 100_000


def test_verify_removes_what_a_killed_ingest_left_and_audits_it(
    archive_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = archive_dir / "objects"
    proc = writer(root, "kill")
    assert proc.wait(timeout=30) == -9
    age(temps(root))
    run = cli(capsys, "verify", "--archive", archive_dir)
    assert run.code == 0, run.err
    assert temps(archive_dir) == []
    entries = [json.loads(line) for line in (archive_dir / "audit.log").read_text().splitlines()]
    verify = [e for e in entries if e.get("event") == "verify"]
    assert verify, entries[-3:]
    assert verify[-1].get("temps_removed") == 1
