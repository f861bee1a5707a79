"""Shared fixtures. The whole suite runs with the network blocked.

`block_network` (autouse, session-wide) makes every socket connection fail in
this process, and `netblock/sitecustomize.py` does the same in every Python
subprocess the tests start (PYTHONPATH is set for them). Only AF_UNIX is left,
which never leaves the machine.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS / "netblock"))
from netblock_impl import install as install_netblock  # noqa: E402

PASSPHRASE = "correct horse battery staple 42"


@pytest.fixture(autouse=True, scope="session")
def block_network() -> Iterator[None]:
    restore = install_netblock()
    os.environ["PYTHONPATH"] = os.pathsep.join([str(TESTS / "netblock"), *filter(None, [os.environ.get("PYTHONPATH")])])
    yield
    restore()


@pytest.fixture(autouse=True)
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own scanarchive temp parent, so leftovers can be inspected."""
    parent = tmp_path / "sa-tmp"
    parent.mkdir()
    monkeypatch.setenv("SCANARCHIVE_TMPDIR", str(parent))
    monkeypatch.delenv("SCANARCHIVE_ARCHIVE", raising=False)
    monkeypatch.delenv("SCANARCHIVE_PASSPHRASE_FILE", raising=False)
    return parent


@pytest.fixture
def passphrase_file(tmp_path: Path) -> Path:
    path = tmp_path / "passphrase.txt"
    path.write_text(PASSPHRASE + "\n")
    path.chmod(0o600)  # a passphrase file others can read is refused
    return path


@pytest.fixture
def archive_dir(tmp_path: Path, passphrase_file: Path) -> Path:
    """A fresh archive (fast KDF: these are tests, not a real practice)."""
    from scanarchive.cli.main import main

    root = tmp_path / "archive"
    assert (
        main(["--archive", str(root), "init", "--passphrase-file", str(passphrase_file), "--kdf-seconds", "0.01"]) == 0
    )
    return root


@pytest.fixture
def small_scan(tmp_path: Path) -> Path:
    """One synthetic handwritten note as a 300 dpi PNG in tmp/drop/."""
    from tests.kits.helpers import render_note

    drop = tmp_path / "drop"
    drop.mkdir(exist_ok=True)
    image, _ = render_note(seed=3)
    path = drop / "note-3.png"
    image.save(path, dpi=(300, 300))
    return path


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A run that collects no test is a failure, never a silent pass (pytest's exit 5)."""
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        print("\nscanarchive: no tests were collected; that is a failure.", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def drop(tmp_path: Path, archive_dir: Path) -> Path:
    """A scanner drop folder named in the archive's config, with quick settle and rescan times."""
    from tests.kits.watchkit import fast_watch_config

    folder = tmp_path / "scans"
    folder.mkdir()
    fast_watch_config(archive_dir, folder)
    return folder
