"""Several scan files at once: one thread (and catalog connection) per file in flight."""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from scanarchive.archive.layout import Archive
from scanarchive.errors import ScanarchiveError
from scanarchive.ingest import analyse
from scanarchive.ingest.pipeline import IngestResult, Step, ingest_file

Outcome = tuple[Path, IngestResult | ScanarchiveError]
#: (the file's position in the batch, from 0; how far it has got): called from the file's worker thread.
FileStep = Callable[[int, Step], None]


def ingest_files(root: Path, paths: list[Path], jobs: int, **options: Any) -> list[Outcome]:
    """Several scan files at once (one thread and one catalog connection per file in flight),
    results in input order. See iter_ingest_files."""
    return list(iter_ingest_files(root, paths, jobs, **options))


def iter_ingest_files(
    root: Path,
    paths: list[Path],
    jobs: int,
    *,
    stop: threading.Event | None = None,
    on_step: FileStep | None = None,
    **options: Any,
) -> Iterator[Outcome]:
    """Each file's outcome in input order, each as soon as it and the files before it are done.

    OCR runs in engine processes, so threads overlap the waiting. Files with the same
    bytes go one after another, so the later ones find the first's record instead of
    racing it into a duplicate. Each file's `ingest` audit entry is written the moment
    its records are verified and before its source is deleted (the watcher, which calls
    ingest_file itself, writes its own); a file whose entry cannot be appended keeps
    its source and reports the error.

    Every file runs in a worker thread (with jobs=1 too): the caller's thread only waits, so
    a Ctrl-C there never lands in the middle of a file. Once `stop` is set (the caller's
    SIGINT handler; or here, when the waiting is broken off by an exception or by closing
    this iterator), no further file is started, a file still being analysed stops (its
    parser child is killed) and a file already being sealed is finished: every file still
    gets its outcome, and a stopped one is an errors.Interrupted with its source untouched.
    `on_step` hears each file's stages (pipeline.STAGES) as they end.
    """
    stop = stop if stop is not None else threading.Event()
    locks: dict[Path, threading.Lock] = {}
    if jobs > 1 and len(paths) > 1:
        keys = {path: _content_key(path) for path in paths}  # each file hashed once, only when files run at once
        by_key = {key: threading.Lock() for key in keys.values()}
        locks = {path: by_key[key] for path, key in keys.items()}

    def one(index: int, path: Path) -> IngestResult | ScanarchiveError:
        if stop.is_set():
            return analyse.stopped()  # never started
        told = None if on_step is None else (lambda step: on_step(index, step))
        with locks.get(path) or contextlib.nullcontext(), Archive(root) as archive:

            def announce(result: IngestResult) -> None:  # written before the source is deleted
                archive.audit("ingest", **result.audit_fields(), source_removed=result.source_removed)

            try:
                return ingest_file(archive, path, announce=announce, on_step=told, stop=stop, **options)
            except ScanarchiveError as exc:
                return exc

    workers = max(1, min(jobs, len(paths)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ingest") as pool:
        futures = [pool.submit(one, index, path) for index, path in enumerate(paths)]
        try:
            for path, future in zip(paths, futures, strict=True):
                yield path, future.result()
        except BaseException:  # KeyboardInterrupt while waiting, or the caller closed us: stop the rest first
            stop.set()
            raise


def _content_key(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return f"unreadable:{path}"
