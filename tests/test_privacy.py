"""No plaintext at rest, and no network: the two promises the product is made of."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kits.helpers import cli, find_plaintext, note_words, record_ids_from_json, render_note


def test_no_word_of_the_note_anywhere_on_disk_or_in_logs(
    archive_dir: Path,
    passphrase_file: Path,
    tmp_path: Path,
    private_tmp: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    image, lines = render_note(seed=5, sentences=3)
    src = tmp_path / "drop" / "note.png"
    src.parent.mkdir()
    image.save(src, dpi=(300, 300))
    words = note_words(lines, min_len=4)
    assert len(words) >= 10

    logs = ""
    run = cli(capsys, "-v", "--archive", archive_dir, "ingest", src, "--json")
    assert run.code == 0, run.err
    logs += run.err
    record = record_ids_from_json(run.out)[0]
    # search for words that are in the note, so the index really holds its text
    for word in sorted(words)[:6]:
        run = cli(capsys, "-v", "--archive", archive_dir, "search", word, "--passphrase-file", passphrase_file)
        assert run.code == 0, run.err
        logs += run.err
    run = cli(capsys, "-v", "--archive", archive_dir, "verify", "--read-data", "--passphrase-file", passphrase_file)
    assert run.code == 0, run.err
    logs += run.err + run.out
    run = cli(capsys, "-v", "--archive", archive_dir, "status")
    logs += run.err + run.out
    logs += "\n".join(r.getMessage() for r in caplog.records)

    assert (archive_dir / "index.db").stat().st_size > 0, "the search index exists and was used"
    assert record in logs or "record" in logs
    leaks = find_plaintext([archive_dir, private_tmp], words, extra_text=logs)
    assert leaks == [], f"plaintext found: {leaks}"
    assert list(private_tmp.iterdir()) == [], "the private temp folders were removed"


def test_archive_files_are_private(archive_dir: Path, small_scan: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "--archive", archive_dir, "ingest", small_scan).code == 0
    for path in [archive_dir, *archive_dir.rglob("*")]:
        mode = path.stat().st_mode & 0o777
        if path.is_dir():
            assert mode == 0o700, path
        else:
            assert mode & 0o077 == 0, f"{path} is readable by others ({oct(mode)})"


def test_sockets_are_blocked_in_tests_and_their_subprocesses() -> None:
    with pytest.raises(OSError, match="blocked"):
        socket.create_connection(("127.0.0.1", 9), timeout=1)
    proc = subprocess.run(
        [sys.executable, "-c", "import socket; socket.socket().connect(('127.0.0.1', 9))"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0 and "blocked" in proc.stderr
