"""Health in `status` (issue 14, item 6): the watcher's heartbeat, the last purge and its result, units
that failed (the OnFailure= hook's `unit-failed`), and the warnings, in the text and in --json."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from scanarchive.archive import health
from scanarchive.intake.lock import WatchLock
from tests.kits.helpers import cli, decide, purge_unattended
from tests.kits.watchkit import start_watcher, wait_for

TODAY = "2026-11-30"


def status(capsys: pytest.CaptureFixture[str], archive: Path) -> tuple[dict[str, Any], str]:
    doc = json.loads(cli(capsys, "--archive", archive, "status", "--json").out)
    return doc, cli(capsys, "--archive", archive, "status").out


def test_a_fresh_archive_says_never_for_the_watcher_and_the_purge(
    archive_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc, text = status(capsys, archive_dir)
    assert doc["watcher"] == {"running": False, "last_seen": None}
    assert doc["last_purge"] is None
    assert doc["unit_failures"] == []
    assert isinstance(doc["warnings"], list)
    assert "Watcher:    never run on this archive" in text
    assert "Last purge: never" in text


def test_the_watchers_heartbeat_and_whether_it_runs_now(
    archive_dir: Path, drop: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, "--archive", archive_dir, "watch", "--once").code == 0
    doc, text = status(capsys, archive_dir)
    assert doc["watcher"]["running"] is False
    seen = doc["watcher"]["last_seen"]
    assert seen is not None
    assert f"Watcher:    not running (last seen {seen})" in text
    os.utime(archive_dir / "watch.lock", (0, 0))  # long ago; the heartbeat moves it to now
    health.beat(archive_dir)
    assert health.watcher(archive_dir)["last_seen"] >= seen
    with WatchLock(archive_dir):  # the kernel's lock table says a watcher holds the lock now
        doc, text = status(capsys, archive_dir)
        assert doc["watcher"]["running"] is True
        assert "Watcher:    running (last seen" in text
    assert health.watcher_running(archive_dir) is False


def test_a_running_watcher_marks_itself_alive_at_every_rescan(archive_dir: Path, drop: Path) -> None:
    watcher = start_watcher(archive_dir)  # rescans every 1.5 s (the drop fixture's settings)
    try:
        wait_for(lambda: health.watcher_running(archive_dir) is True, 60, "the watcher to start")
        os.utime(archive_dir / "watch.lock", (0, 0))
        wait_for(lambda: (archive_dir / "watch.lock").stat().st_mtime > 0, 20, "a heartbeat")
        assert health.watcher(archive_dir)["running"] is True
    finally:
        watcher.terminate()
        watcher.wait(timeout=60)
    assert health.watcher_running(archive_dir) is False


def test_a_failed_purge_is_a_warning_until_a_purge_runs_again(
    archive_dir: Path, passphrase_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = cli(capsys, "--archive", archive_dir, "unit-failed", "scanarchive-purge.service")
    assert run.code == 0, run.err
    assert "scanarchive-purge.service failed" in run.err
    doc, text = status(capsys, archive_dir)
    [failure] = doc["unit_failures"]
    assert (failure["unit"], failure["count"], failure["recovered"]) == ("scanarchive-purge.service", 1, False)
    assert any("scanarchive-purge.service failed at" in w for w in doc["warnings"])
    assert "Warning:    scanarchive-purge.service failed at" in text
    assert "journalctl -u scanarchive-purge.service" in text
    assert cli(capsys, "--archive", archive_dir, "unit-failed", "scanarchive-purge.service").code == 0
    assert status(capsys, archive_dir)[0]["unit_failures"][0]["count"] == 2

    # A dry run is not the purge working again; a real run is.
    assert decide(capsys, archive_dir, passphrase_file, "retention", "use", "apa_2007").code == 0
    code, _, err = purge_unattended(archive_dir, TODAY, "--dry-run")
    assert code == 0, err
    doc, text = status(capsys, archive_dir)
    assert doc["last_purge"]["dry_run"] is True
    assert "a dry run (nothing destroyed)" in text
    assert doc["unit_failures"][0]["recovered"] is False
    failures = json.loads((archive_dir / health.FAILURES).read_text())
    failures["scanarchive-purge.service"]["at"] = "2000-01-01T00:00:00+00:00"  # the failure was before the run
    (archive_dir / health.FAILURES).write_text(json.dumps(failures))
    code, _, err = purge_unattended(archive_dir, TODAY)
    assert code == 0, err
    doc, text = status(capsys, archive_dir)
    assert doc["last_purge"] == {"at": doc["last_purge"]["at"], "destroyed": 0, "dry_run": False, "kept_unverified": 0}
    assert f"Last purge: {doc['last_purge']['at']}: 0 record(s) destroyed" in text
    assert doc["unit_failures"][0]["recovered"] is True
    assert not any("failed at" in w for w in doc["warnings"])


def test_unit_failed_refuses_what_is_not_a_unit_name_and_a_missing_archive(
    archive_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = cli(capsys, "--archive", archive_dir, "unit-failed", "../../etc/passwd x")
    assert run.code != 0
    assert "not a systemd unit name" in run.err
    assert not (archive_dir / health.FAILURES).exists()
    run = cli(capsys, "--archive", tmp_path / "nowhere", "unit-failed", "scanarchive-watch.service")
    assert run.code != 0
    assert "no scanarchive archive" in run.err


def test_the_notification_only_half_of_the_hook_never_fails(capsys: pytest.CaptureFixture[str]) -> None:
    run = cli(capsys, "unit-failed", "--notify-only", "scanarchive-watch.service")
    assert run.code == 0
    assert "desktop session(s)" in run.out
