"""The one wrapper around RapidOCR, the optional second OCR engine.

RapidOCR (PaddleOCR's models run by ONNX Runtime) ships its models inside its
wheel, so nothing is ever downloaded. Loading them takes about a second, so
pages go to long-lived worker processes (``scanarchive.ocr.rapid_worker``)
over a pipe instead of one process a page. Each worker runs in its own process
group: a page that takes longer than the timeout gets the worker's whole group
SIGKILLed and the next page starts a fresh one. Workers never see a file name,
write nothing to disk, and exit when their parent does (end of input).

If the package is not installed, :func:`available` is false and the archive
works with Tesseract alone (``status`` says recall is reduced).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib.metadata
import importlib.util
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

from scanarchive import sandbox, tempdir
from scanarchive.ocr.engine import OcrFailed

NAME = "rapidocr"
MODULE = "rapidocr_onnxruntime"
DISTRIBUTION = "rapidocr-onnxruntime"
START_TIMEOUT = 120.0  # loading the models; not counted against a page's timeout
# A worker's memory grew with every new page shape ONNX Runtime saw (300 MB after a few pages, 580 MB after
# ~100 in bench/memory.py). The worker now turns memory patterns off and trims the heap after each page
# (~145 MB between pages), and retires itself when it is still above WORKER_RSS_MB after a page; a fresh
# one costs ~1 s of loading. The page limit stays as a second bound.
PAGES_PER_WORKER = 40
WORKER_RSS_MB = 250


@dataclass(frozen=True)
class Line:
    text: str
    score: float  # 0-1
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in the pixels of the image given


def available() -> bool:
    """Whether RapidOCR is installed (checked without importing its heavy modules)."""
    try:
        return importlib.util.find_spec(MODULE) is not None
    except (ImportError, ValueError):  # a broken or half-removed installation
        return False


@functools.lru_cache(maxsize=1)
def version() -> str:
    try:
        return f"rapidocr {importlib.metadata.version(DISTRIBUTION)}"
    except importlib.metadata.PackageNotFoundError:
        return "rapidocr (unknown version)"


class _Worker:
    def __init__(self, workdir: str) -> None:
        env = sandbox.engine_env(  # telemetry off; HOME, caches and TMPDIR in the private workdir
            workdir,
            OMP_NUM_THREADS="1",
            OMP_THREAD_LIMIT="1",
            MALLOC_ARENA_MAX="2",  # one page at a time: more malloc arenas only hold on to freed memory
        )
        self.proc = subprocess.Popen(
            sandbox.wrap([sys.executable, "-m", "scanarchive.ocr.rapid_worker", str(WORKER_RSS_MB)]),  # no network
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # library chatter only; never shown, never logged
            cwd=workdir,
            env=env,
            start_new_session=True,
        )
        self._buffer = b""
        self.pages = 0
        self.retiring = False  # the worker said it is above its memory budget and exits after this answer
        try:
            answer = self._read_line(time.monotonic() + START_TIMEOUT)
        except OcrFailed:
            self.kill()
            raise OcrFailed(f"RapidOCR did not start within {START_TIMEOUT:.0f} s") from None
        if answer.get("ready") is not True:
            self.kill()
            raise OcrFailed("RapidOCR could not be started")

    def ask(self, png: bytes, timeout: float) -> list[Line]:
        deadline = time.monotonic() + timeout
        self._write(len(png).to_bytes(4, "big") + png, deadline)
        answer = self._read_line(deadline)
        self.retiring = answer.get("retire") is True
        if "error" in answer:
            raise OcrFailed(f"RapidOCR could not read the page ({answer['error']})")
        try:
            return [
                Line(str(text), float(score), (float(b[0]), float(b[1]), float(b[2]), float(b[3])))
                for text, score, b in answer["lines"]
            ]
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise OcrFailed("RapidOCR gave an answer that could not be understood") from exc

    def _write(self, data: bytes, deadline: float) -> None:
        assert self.proc.stdin is not None
        fd = self.proc.stdin.fileno()
        os.set_blocking(fd, False)
        view = memoryview(data)
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_WRITE)
            while view:
                if not sel.select(max(0.0, deadline - time.monotonic())):
                    raise OcrFailed("RapidOCR took too long", timed_out=True)
                try:
                    view = view[os.write(fd, view) :]
                except BlockingIOError:
                    continue
                except BrokenPipeError as exc:
                    raise OcrFailed("RapidOCR stopped unexpectedly") from exc

    def _read_line(self, deadline: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                if not sel.select(max(0.0, deadline - time.monotonic())):
                    raise OcrFailed("RapidOCR took too long", timed_out=True)
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    raise OcrFailed(f"RapidOCR stopped unexpectedly (exit code {self.proc.poll()})")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        try:
            doc = json.loads(line)
        except ValueError as exc:
            raise OcrFailed("RapidOCR gave an answer that could not be understood") from exc
        if not isinstance(doc, dict):
            raise OcrFailed("RapidOCR gave an answer that could not be understood")
        return doc

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            self.proc.kill()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self.proc.wait()


class Pool:
    """At most `size` workers; a caller waits for a free one. Workers are kept between pages and files."""

    def __init__(self, size: int) -> None:
        self._free: list[_Worker] = []
        self._slots = threading.BoundedSemaphore(max(1, size))
        self._lock = threading.Lock()
        self._workdir: str | None = None

    def recognise(self, png: bytes, timeout: float) -> list[Line]:
        with self._slots:
            with self._lock:
                worker = self._free.pop() if self._free else None
                if self._workdir is None:
                    self._workdir = tempfile.mkdtemp(prefix="scanarchive-rapidocr-", dir=tempdir._parent())
                workdir = self._workdir
            if worker is None or worker.proc.poll() is not None:
                worker = _Worker(workdir)
            try:
                lines = worker.ask(png, timeout)
            except BaseException:
                worker.kill()
                raise
            worker.pages += 1
            if worker.retiring or worker.pages >= PAGES_PER_WORKER:
                worker.kill()
            else:
                with self._lock:
                    self._free.append(worker)
            return lines

    def close(self) -> None:
        with self._lock:
            workers, self._free = self._free, []
            workdir, self._workdir = self._workdir, None
        for worker in workers:
            worker.kill()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


_pools: dict[int, Pool] = {}
_pools_lock = threading.Lock()


def pool(size: int) -> Pool:
    """The process-wide pool of `size` workers (the watcher keeps its workers from scan to scan)."""
    with _pools_lock:
        if size not in _pools:
            _pools[size] = Pool(size)
        return _pools[size]


@atexit.register
def close_all() -> None:
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for p in pools:
        p.close()
