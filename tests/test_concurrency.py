"""Several processes at once: search, show and purge while the watcher ingests; no corruption, no errors."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from helpers import cli_process
from watchkit import drop_files, in_progress, sha256_bytes, small_scan_bytes, source_hashes, start_watcher, wait_for


def test_search_show_and_purge_while_the_watcher_ingests(
    archive_dir: Path, drop: Path, passphrase_file: Path, tmp_path: Path
) -> None:
    scans = [small_scan_bytes(seed)[0] for seed in range(500, 520)]
    assert cli_process("--archive", archive_dir, "retention", "use", "apa_2007").code == 0
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
