"""Helpers for the drop-folder tests: small scans, a real watcher subprocess, catalog peeks."""

from __future__ import annotations

import hashlib
import io
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from scanarchive.demo import synth


def small_scan_bytes(seed: int) -> tuple[bytes, list[str]]:
    """A small, distinct, quick-to-OCR synthetic scan (PNG bytes) and its words."""
    lines = [" ".join(synth.synthetic_note(seed, sentences=1)[0].split()[:3])]
    image = synth.render_page(lines, width_in=5.5, height_in=1.6, font_pt=16, seed=seed, noise=0.0)
    out = io.BytesIO()
    image.save(out, format="PNG", dpi=(300, 300))
    return out.getvalue(), lines


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def set_config(archive: Path, **values: float | int | str) -> None:
    path = archive / "config.toml"
    text = path.read_text()
    for key, value in values.items():
        rendered = f"'{value}'" if isinstance(value, str) else str(value)  # a TOML literal string: no escapes
        line = f"{key} = {rendered}"
        text, n = re.subn(rf"(?m)^{key} = .*$", lambda _m, line=line: line, text)  # type: ignore[misc]
        assert n == 1, key
    path.write_text(text)


def fast_watch_config(archive: Path, drop: Path) -> None:
    set_config(
        archive, folder=str(drop), settle_seconds=0.6, rescan_seconds=1.5, retry_base_seconds=0.5, retry_max_seconds=2
    )


def start_watcher(archive: Path, *extra: str, log: Path | None = None) -> subprocess.Popen[bytes]:
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    return subprocess.Popen(
        [sys.executable, "-m", "scanarchive", "--archive", str(archive), "watch", *extra],
        stdout=out,
        stderr=out,
        env={**os.environ, "SCANARCHIVE_PASSPHRASE_FILE": ""},
    )


def kill9(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def catalog_rows(archive: Path, sql: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(f"file:{archive / 'catalog.db'}?mode=ro", uri=True, timeout=30)
    try:
        return list(db.execute(sql).fetchall())
    except sqlite3.OperationalError:
        return []  # not migrated yet
    finally:
        db.close()


def source_hashes(archive: Path) -> list[str]:
    return [str(r[0]) for r in catalog_rows(archive, "SELECT source_sha256 FROM records")]


def in_progress(archive: Path) -> int:
    rows = catalog_rows(archive, "SELECT COUNT(*) FROM journal")
    return int(rows[0][0]) if rows else 0  # type: ignore[call-overload]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def drop_files(drop: Path) -> list[Path]:
    return [p for p in drop.iterdir() if p.is_file()]
