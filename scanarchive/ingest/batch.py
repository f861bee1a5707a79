"""Several scan files at once: one thread (and catalog connection) per file in flight."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from scanarchive.archive.layout import Archive
from scanarchive.errors import ScanarchiveError
from scanarchive.ingest.pipeline import IngestResult, ingest_file

Outcome = tuple[Path, IngestResult | ScanarchiveError]


def ingest_files(root: Path, paths: list[Path], jobs: int, **options: object) -> list[Outcome]:
    """Several scan files at once (one thread and one catalog connection per file in flight),
    results in input order. See iter_ingest_files."""
    return list(iter_ingest_files(root, paths, jobs, **options))


def iter_ingest_files(root: Path, paths: list[Path], jobs: int, **options: object) -> Iterator[Outcome]:
    """Each file's outcome in input order, each as soon as it and the files before it are done.

    OCR runs in engine processes, so threads overlap the waiting. Files with the same
    bytes go one after another, so the later ones find the first's record instead of
    racing it into a duplicate. Each file's `ingest` audit entry is written once its
    records are verified and before its source is deleted (the watcher, which calls
    ingest_file itself, writes its own); a file whose entry cannot be appended keeps
    its source and reports the error.
    """

    def one(path: Path) -> IngestResult | ScanarchiveError:
        with Archive(root) as archive:
            def announce(result: IngestResult) -> None:  # written before the source is deleted
                archive.audit("ingest", **result.audit_fields(), source_removed=result.source_removed)

            try:
                result = ingest_file(archive, path, announce=announce, **options)  # type: ignore[arg-type]
            except ScanarchiveError as exc:
                return exc
            return result

    if jobs <= 1 or len(paths) <= 1:
        for path in paths:
            yield path, one(path)
        return
    keys = {path: _content_key(path) for path in paths}  # each file hashed once, only when files run at once
    locks = {key: threading.Lock() for key in keys.values()}

    def locked(path: Path) -> IngestResult | ScanarchiveError:
        with locks[keys[path]]:
            return one(path)

    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="ingest") as pool:
        yield from zip(paths, pool.map(locked, paths), strict=True)


def _content_key(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return f"unreadable:{path}"
