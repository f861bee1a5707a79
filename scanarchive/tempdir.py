"""The private 0700 working folder for one ingest: on tmpfs when there is one.

Page images and OCR output exist in plaintext only in memory and, if an engine
insists on a file, in here; the folder is removed when the work is done.
SCANARCHIVE_TMPDIR names the parent folder (tests use it to inspect leftovers).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ENV_TMPDIR = "SCANARCHIVE_TMPDIR"


def _parent() -> str | None:
    chosen = os.environ.get(ENV_TMPDIR)
    if chosen:
        return chosen
    shm = Path("/dev/shm")  # noqa: S108 - only the parent; the folder itself is a fresh 0700 mkdtemp
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        return str(shm)
    return None  # the system default


@contextmanager
def private_tempdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="scanarchive-", dir=_parent()))  # mkdtemp makes it 0700
    os.chmod(path, 0o700)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
