"""Several scan files at once: one thread (and catalog connection) per file in flight."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from scanarchive.archive.layout import Archive
from scanarchive.errors import ScanarchiveError
from scanarchive.ingest.pipeline import IngestResult, ingest_file


def ingest_files(
    root: Path, paths: list[Path], jobs: int, **options: object
) -> list[tuple[Path, IngestResult | ScanarchiveError]]:
    """Several scan files at once (one thread and one catalog connection per file in flight),
    results in input order. OCR runs in engine processes, so threads overlap the waiting.
    Files with the same bytes go one after another, so the later ones find the first's
    record instead of racing it into a duplicate."""

    def one(path: Path) -> IngestResult | ScanarchiveError:
        with Archive(root) as archive:
            try:
                return ingest_file(archive, path, **options)  # type: ignore[arg-type]
            except ScanarchiveError as exc:
                return exc

    if jobs <= 1 or len(paths) <= 1:
        return [(path, one(path)) for path in paths]
    keys = {path: _content_key(path) for path in paths}  # each file hashed once, only when files run at once
    locks = {key: threading.Lock() for key in keys.values()}

    def locked(path: Path) -> IngestResult | ScanarchiveError:
        with locks[keys[path]]:
            return one(path)

    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="ingest") as pool:
        return list(zip(paths, pool.map(locked, paths), strict=True))


def _content_key(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return f"unreadable:{path}"
