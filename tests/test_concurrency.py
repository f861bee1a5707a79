"""Several processes at once: search, show and purge while the watcher ingests; no corruption, no errors.

A real purge destroys the records that are due while the watcher archives new scans, and two purges
at once must destroy each record once (the second waits on purge.lock, then finds nothing left)."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.kits.helpers import cli, cli_process, record_ids_from_json
from tests.kits.watchkit import (
    catalog_rows,
    drop_files,
    in_progress,
    set_config,
    sha256_bytes,
    small_scan_bytes,
    source_hashes,
    start_watcher,
    wait_for,
)


@pytest.mark.slow
def test_search_show_and_purge_while_the_watcher_ingests(
    archive_dir: Path, drop: Path, passphrase_file: Path, tmp_path: Path
) -> None:
    scans = [small_scan_bytes(seed)[0] for seed in range(500, 520)]
    assert (
        cli_process("--archive", archive_dir, "retention", "use", "--passphrase-file", passphrase_file, "apa_2007").code
        == 0
    )
    proc = start_watcher(archive_dir, log=tmp_path / "watch.log")
    errors: list[str] = []

    def writer() -> None:
        for n, data in enumerate(scans):
            (drop / f"c{n:02d}.png").write_bytes(data)
            time.sleep(0.15)

    thread = threading.Thread(target=writer)
    thread.start()
    shown = 0
    try:
        while thread.is_alive() or len(source_hashes(archive_dir)) < len(scans):
            run = cli_process(
                "--archive", archive_dir, "search", "coping*", "--json", "--passphrase-file", passphrase_file
            )
            if run.code != 0:
                errors.append(f"search: {run.err}")
            else:
                results = json.loads(run.out)["results"]
                if results:
                    out = tmp_path / f"shown-{shown}.pdf"
                    show = cli_process(
                        "--archive",
                        archive_dir,
                        "show",
                        results[0]["record_id"],
                        "-o",
                        out,
                        "--passphrase-file",
                        passphrase_file,
                    )
                    shown += show.code == 0
                    if show.code != 0:
                        errors.append(f"show: {show.err}")
            purge = cli_process("--archive", archive_dir, "purge", "--dry-run")
            if purge.code != 0:
                errors.append(f"purge: {purge.err}")
            status = cli_process("--archive", archive_dir, "status", "--json")
            if status.code != 0:
                errors.append(f"status: {status.err}")
        thread.join()
        wait_for(lambda: in_progress(archive_dir) == 0 and not drop_files(drop), 120, "the drop folder to empty")
    finally:
        proc.terminate()
        assert proc.wait(timeout=60) == 0
    assert errors == []
    assert sorted(source_hashes(archive_dir)) == sorted(sha256_bytes(d) for d in scans)
    run = cli_process("--archive", archive_dir, "verify", "--read-data", "--passphrase-file", passphrase_file)
    assert run.code == 0 and "0 damaged" in run.out
    assert cli_process("--archive", archive_dir, "audit", "verify").code == 0, "concurrent appends kept the chain"
    final = cli_process("--archive", archive_dir, "search", "coping*", "--json", "--passphrase-file", passphrase_file)
    assert final.code == 0 and json.loads(final.out)["count"] >= 1, "the query used above does match these scans"


def _purge_process(archive: Path) -> subprocess.Popen[str]:
    """`scanarchive purge` as the scheduled job runs it: its own process, no passphrase anywhere."""
    return subprocess.Popen(
        [sys.executable, "-m", "scanarchive", "--archive", str(archive), "purge", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={k: v for k, v in os.environ.items() if "PASSPHRASE" not in k},
    )


def _finish(proc: subprocess.Popen[str]) -> tuple[int, dict[str, Any], str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, json.loads(out) if out.startswith("{") else {}, err


@dataclass
class _Due:
    ids: set[str]  # due and approved: C-OLD's three records
    blobs: dict[str, str]  # record id -> blob SHA-256, before any purge
    wrapped: list[bytes]  # the due records' wrapped keys, before any purge
    kept_hash: str  # source SHA-256 of the old record that is not due


def _archive_due_records(archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> _Due:
    """C-OLD ended therapy in 2010: its three notes are due under both rules, and approved. C-KEEP has no
    termination date, so Texas's rule keeps its 2010 note (the latest date of all rules wins)."""
    passphrase_file = tmp_path / "passphrase.txt"  # the conftest fixture's file
    old = {"C-OLD": [small_scan_bytes(seed)[0] for seed in (600, 601, 602)], "C-KEEP": [small_scan_bytes(603)[0]]}
    ids: dict[str, list[str]] = {}
    for client, scans in old.items():
        paths = []
        for n, data in enumerate(scans):
            paths.append(tmp_path / f"old-{client}-{n}.png")
            paths[-1].write_bytes(data)
        run = cli(capsys, "--archive", archive, "ingest", *paths, "--client", client, "--date", "2010-03-02", "--json")
        assert run.code == 0, run.err
        ids[client] = record_ids_from_json(run.out)
    for argv in (
        (
            "client",
            "add",
            "--passphrase-file",
            passphrase_file,
            "C-OLD",
            "--born",
            "1970-01-01",
            "--terminated",
            "2010-06-01",
        ),
        ("client", "add", "--passphrase-file", passphrase_file, "C-KEEP", "--born", "1980-01-01"),
        ("retention", "use", "--passphrase-file", passphrase_file, "us_tx_lpc", "apa_2007"),
        ("retention", "approve", "--passphrase-file", passphrase_file, "--all-due", "--by", "Dr Test"),
    ):
        run = cli(capsys, "--archive", archive, *argv)
        assert run.code == 0, run.err
    due = {
        r["record_id"] for r in json.loads(cli(capsys, "--archive", archive, "retention", "due", "--json").out)["due"]
    }
    assert due == set(ids["C-OLD"]) and len(due) == 3
    blobs = {str(r[0]): str(r[1]) for r in catalog_rows(archive, "SELECT id, blob_sha256 FROM records")}
    keys = catalog_rows(archive, "SELECT record_id, wrapped FROM record_keys")
    wrapped = [r[1] for r in keys if r[0] in due and isinstance(r[1], bytes)]
    assert len(wrapped) == 3
    return _Due(due, blobs, wrapped, sha256_bytes(old["C-KEEP"][0]))


def _assert_destroyed(archive: Path, due: _Due) -> None:
    for rid in due.ids:
        assert (archive / "certificates" / f"{rid}.json").is_file()
        assert (archive / "certificates" / f"{rid}.txt").is_file()
        sha = due.blobs[rid]
        assert not (archive / "objects" / sha[:2] / sha[2:]).exists(), "the destroyed record's blob is gone"
    assert {str(r[0]) for r in catalog_rows(archive, "SELECT record_id FROM tombstones")} == due.ids


@pytest.mark.slow
def test_purge_destroys_exactly_the_due_records_while_the_watcher_ingests(
    archive_dir: Path, drop: Path, passphrase_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    due = _archive_due_records(archive_dir, tmp_path, capsys)

    # New scans, dropped while purges run: half filed by name to C-KEEP (not due), half unfiled (never due).
    set_config(archive_dir, filename_pattern=r"^(?P<client>C-[A-Z]+)_(?P<date>\d{8})_")
    new = [
        (f"C-KEEP_202611{n + 1:02d}_{n}.png" if n % 2 == 0 else f"scan-{n:02d}.png", small_scan_bytes(620 + n)[0])
        for n in range(12)
    ]
    new_hashes = {sha256_bytes(data) for _, data in new}
    assert len(new_hashes) == len(new)
    proc = start_watcher(archive_dir, log=tmp_path / "watch.log")

    def writer() -> None:
        for name, data in new:
            (drop / name).write_bytes(data)
            time.sleep(0.3)

    thread = threading.Thread(target=writer)
    thread.start()
    runs: list[tuple[int, dict[str, Any], str]] = []
    pending: list[int] = []  # new scans not yet archived when each purge started
    try:
        wait_for(lambda: bool(new_hashes & set(source_hashes(archive_dir))), 180, "the first new scan to be archived")
        while thread.is_alive() or drop_files(drop) or in_progress(archive_dir):
            pending.append(len(new_hashes - set(source_hashes(archive_dir))))
            runs.append(_finish(_purge_process(archive_dir)))  # the daily job, again and again, mid-ingest
            time.sleep(0.3)
        thread.join()
        wait_for(lambda: in_progress(archive_dir) == 0 and not drop_files(drop), 180, "the drop folder to empty")
    finally:
        thread.join()
        proc.terminate()
        assert proc.wait(timeout=60) == 0
    assert pending[0] > 0, "the first purge ran while new scans were still being archived"

    assert [(code, err) for code, _, err in runs] == [(0, "")] * len(runs), "no purge failed or complained"
    assert sorted(runs[0][1]["destroyed"]) == sorted(due.ids), "the first purge destroyed exactly the due records"
    assert all(doc["destroyed"] == [] for _, doc, _ in runs[1:]), "later purges found nothing left to destroy"
    _assert_destroyed(archive_dir, due)
    assert sorted(source_hashes(archive_dir)) == sorted([*new_hashes, due.kept_hash]), (
        "every new scan archived, once; the old record that is not due kept; nothing new destroyed"
    )
    filed = catalog_rows(archive_dir, "SELECT source_sha256 FROM records WHERE client_code = 'C-KEEP'")
    by_name = {sha256_bytes(data) for name, data in new if name.startswith("C-KEEP")}
    assert {str(r[0]) for r in filed} == by_name | {due.kept_hash}, "scans filed by their names, not destroyed"
    assert not (drop / "failed").exists(), "no scan was quarantined"
    log = (tmp_path / "watch.log").read_text(errors="replace")
    assert "Traceback" not in log and "error" not in log.lower(), log

    run = cli_process("--archive", archive_dir, "verify", "--read-data", "--passphrase-file", passphrase_file)
    assert run.code == 0 and "0 damaged" in run.out, run.out + run.err
    assert cli_process("--archive", archive_dir, "audit", "verify").code == 0, "concurrent appends kept the chain"
    catalog = b"".join(p.read_bytes() for p in archive_dir.glob("catalog.db*") if p.is_file())
    assert not any(key in catalog for key in due.wrapped), "no wrapped key of a destroyed record left in the catalog"
    print(
        f"purge race: {len(runs)} purges during ingest (scans pending: {pending}); {time.monotonic() - started:.0f} s"
    )


def _flock_waiters(path: Path) -> int:
    """Processes blocked in flock() on `path` (the kernel lists them in /proc/locks with '->')."""
    inode = f":{path.stat().st_ino} "
    return sum(
        "->" in line and "FLOCK" in line and inode in line for line in Path("/proc/locks").read_text().splitlines()
    )


def test_two_purges_at_once_destroy_each_record_once_without_error(
    archive_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Made deterministic: the test holds the audit log's lock, which a purge takes after planning and before
    destroying a record, until one purge waits for it and the other waits on purge.lock (or 20 s pass)."""
    due = _archive_due_records(archive_dir, tmp_path, capsys)
    audit_log = archive_dir / "audit.log"
    fd = os.open(audit_log, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        both = [_purge_process(archive_dir), _purge_process(archive_dir)]
        deadline = time.monotonic() + 20
        purge_lock = archive_dir / "purge.lock"
        while time.monotonic() < deadline and not (
            _flock_waiters(audit_log) == 1 and purge_lock.exists() and _flock_waiters(purge_lock) == 1
        ):
            time.sleep(0.05)
    finally:
        os.close(fd)  # releases the lock
    runs = [_finish(p) for p in both]
    assert [code for code, _, _ in runs] == [0, 0], runs
    waited = "scanarchive: WARNING: another purge is running for this archive; waiting for it to finish\n"
    assert sorted(err for _, _, err in runs) == ["", waited], "the second purge says why it waits, nothing else"
    destroyed = [rid for _, doc, _ in runs for rid in doc["destroyed"]]
    assert sorted(destroyed) == sorted(due.ids), "each due record destroyed once, by one of the two"
    _assert_destroyed(archive_dir, due)
    assert cli_process("--archive", archive_dir, "audit", "verify").code == 0
