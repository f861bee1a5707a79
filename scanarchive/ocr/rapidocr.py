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

Models: PaddleOCR's PP-OCRv5 mobile detection and recognition, vendored in
``scanarchive/data/models/ppocrv5/`` (Apache-2.0; provenance and digests in its
``NOTICE.md``) and given to RapidOCR through ``det_model_path`` /
``rec_model_path`` / ``rec_keys_path``. On real handwriting they find about three
times as many words as the PP-OCRv4 models inside RapidOCR's wheel
(``bench/recall_real.py``). Each file's sha256 is checked before the first page;
a changed file stops the ingest with :class:`ConfigError` rather than reading
notes with an unknown model.

Evaluation only: the environment variable ``SCANARCHIVE_RAPIDOCR_MODELS``
(:data:`MODELS_ENV`) picks other models: ``rapidocr-builtin`` for the ones in
RapidOCR's wheel (the engine before PP-OCRv5, the benchmarks' comparison), or
three paths joined by ``os.pathsep``, ``DETECTION.onnx:RECOGNITION.onnx:KEYS.txt``.
It exists so that ``bench/recall_real.py`` can measure candidate engines through
the real pipeline; it is not a product setting and nothing in the product sets
it. A value that is malformed or names a missing file stops the ingest before
any page with :class:`ConfigError`. The engine name recorded with each page says
which models read it (``rapidocr 1.4.4 (models det …, rec …)``, digests'
prefixes; ``rapidocr 1.4.4`` alone for the built-in ones).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
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

from scanarchive import packagedata, sandbox, tempdir
from scanarchive.errors import ConfigError
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
MODELS_ENV = "SCANARCHIVE_RAPIDOCR_MODELS"  # evaluation only (bench/recall_real.py); see the module's docstring
BUILTIN = "rapidocr-builtin"  # MODELS_ENV's value for the PP-OCRv4 models inside RapidOCR's own wheel
SHIPPED_DIR = packagedata.DATA / "models" / "ppocrv5"
# The vendored files' sha256 (scanarchive/data/models/ppocrv5/NOTICE.md says where they come from).
SHIPPED_SHA256 = {
    "det.onnx": "d7fe3ea74652890722c0f4d02458b7261d9f5ae6c92904d05707c9eb155c7924",
    "rec.onnx": "bf66820f48fa99f779974c4df78e5274a9d8e0458c4137e8c5357e40e2c3faf2",
    "keys.txt": "d1979e9f794c464c0d2e0b70a7fe14dd978e9dc644c0e71f14158cdf8342af1b",
}


Reading = tuple[str, float]  # another reading of a word: text, probability (0-1)


@dataclass(frozen=True)
class Line:
    text: str
    score: float  # 0-1
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in the pixels of the image given
    # per word of `text` (its runs of non-space characters, in order): the recogniser's other readings, best
    # first (rapid_worker.word_readings); () when none were given
    alternatives: tuple[tuple[Reading, ...], ...] = ()


def available() -> bool:
    """Whether RapidOCR is installed (checked without importing its heavy modules)."""
    try:
        return importlib.util.find_spec(MODULE) is not None
    except (ImportError, ValueError):  # a broken or half-removed installation
        return False


@dataclass(frozen=True)
class Models:
    """The ONNX models RapidOCR runs: the shipped PP-OCRv5 files, or others from :data:`MODELS_ENV`."""

    det: str
    rec: str
    keys: str

    def argv(self) -> list[str]:
        return [self.det, self.rec, self.keys]


@functools.lru_cache(maxsize=1)
def shipped_models() -> Models:
    """The vendored PP-OCRv5 files, each checked against its pinned sha256 (once per process)."""
    hint = "Reinstall scanarchive (./dev.sh install, or pip install --force-reinstall of its wheel)."
    for name, expected in SHIPPED_SHA256.items():
        path = SHIPPED_DIR / name
        try:
            actual = _digest(str(path))
        except OSError:
            raise ConfigError(f"the OCR model file {name} that comes with scanarchive is missing", hint=hint) from None
        if actual != expected:
            raise ConfigError(
                f"the OCR model file {name} that comes with scanarchive has been changed or damaged "
                "(its checksum is not the one it shipped with); no page is read with it",
                hint=hint,
            )
    return Models(*(str(SHIPPED_DIR / n) for n in ("det.onnx", "rec.onnx", "keys.txt")))


def custom_models() -> Models | None:
    """The models to run: the shipped PP-OCRv5 files, or those :data:`MODELS_ENV` names, checked; None for
    the ones inside RapidOCR's wheel (``rapidocr-builtin``)."""
    value = os.environ.get(MODELS_ENV, "").strip()
    if not value:
        return shipped_models()
    if value == BUILTIN:
        return None
    hint = (
        f"{MODELS_ENV} is for benchmarks only: unset it to use the models that come with scanarchive, "
        f"'{BUILTIN}' for the ones inside RapidOCR's wheel, or give three files joined by '{os.pathsep}': "
        "detection .onnx, recognition .onnx, keys .txt"
    )
    parts = value.split(os.pathsep)
    if len(parts) != 3 or not all(parts):
        raise ConfigError(f"{MODELS_ENV} should name 3 files, it names {len([p for p in parts if p])}", hint=hint)
    for what, path, suffix in zip(
        ("detection model", "recognition model", "keys file"), parts, (".onnx", ".onnx", ".txt"), strict=True
    ):
        if not os.path.isfile(path):
            raise ConfigError(f"{MODELS_ENV}: the {what} {path} does not exist or is not a file", hint=hint)
        if not path.endswith(suffix):
            raise ConfigError(f"{MODELS_ENV}: the {what} {path} should end in {suffix}", hint=hint)
        try:
            open(path, "rb").close()  # only whether it can be opened here
        except OSError as exc:  # e.g. outside the folders the OCR sandbox may read (ingest/parser.py read_paths)
            raise ConfigError(
                f"{MODELS_ENV}: the {what} {path} cannot be read by the OCR ({exc.strerror or type(exc).__name__})",
                hint=f"Put the files in a folder the OCR sandbox may read (Python's import path, e.g. PYTHONPATH). {hint}",
            ) from None
    return Models(*(os.path.abspath(p) for p in parts))


def model_folders() -> list[str]:
    """The folders of the files :data:`MODELS_ENV` names, unchecked (custom_models checks them), for the parser
    sandbox's read grants; none for the shipped or the built-in models (the Python import path is granted)."""
    value = os.environ.get(MODELS_ENV, "").strip()
    if not value or value == BUILTIN:
        return []
    return [os.path.dirname(os.path.abspath(p)) for p in value.split(os.pathsep) if p.strip()]


def _digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


_sha256 = functools.lru_cache(maxsize=8)(_digest)  # other models' digests, for the engine name of each page


@functools.lru_cache(maxsize=4)
def _version(models: Models | None) -> str:
    try:
        name = f"rapidocr {importlib.metadata.version(DISTRIBUTION)}"
    except importlib.metadata.PackageNotFoundError:
        name = "rapidocr (unknown version)"
    if models is None:
        return name
    if models == shipped_models():  # checked against these digests already: no second read of 21 MB
        det, rec = SHIPPED_SHA256["det.onnx"], SHIPPED_SHA256["rec.onnx"]
        return f"{name} (models PP-OCRv5 mobile, det {det[:12]}, rec {rec[:12]})"
    return f"{name} (models det {_sha256(models.det)[:12]}, rec {_sha256(models.rec)[:12]})"


def version() -> str:
    """The engine's name as recorded with each page it read, with its models' sha256 prefixes."""
    return _version(custom_models())


class _Worker:
    def __init__(self, workdir: str, models: Models | None = None) -> None:
        env = sandbox.engine_env(  # telemetry off; HOME, caches and TMPDIR in the private workdir
            workdir,
            OMP_NUM_THREADS="1",
            OMP_THREAD_LIMIT="1",
            MALLOC_ARENA_MAX="2",  # one page at a time: more malloc arenas only hold on to freed memory
        )
        self.proc = subprocess.Popen(
            sandbox.wrap(  # no network
                [sys.executable, "-m", "scanarchive.ocr.rapid_worker", str(WORKER_RSS_MB)]
                + (models.argv() if models else [])
            ),
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
        except OcrFailed as exc:
            self.kill()
            if exc.timed_out:
                raise OcrFailed(f"RapidOCR did not start within {START_TIMEOUT:.0f} s", timed_out=True) from None
            raise OcrFailed(
                "RapidOCR could not be started"
                + (" with the models in " + MODELS_ENV if os.environ.get(MODELS_ENV, "").strip() else "")
            ) from None
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
                Line(
                    str(text),
                    float(score),
                    (float(b[0]), float(b[1]), float(b[2]), float(b[3])),
                    tuple(tuple((str(r[0]), float(r[1])) for r in word) for word in (more[0] if more else ())),
                )
                for text, score, b, *more in answer["lines"]
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

    def __init__(self, size: int, models: Models | None = None) -> None:
        self.models = models
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
                worker = _Worker(workdir, self.models)
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


_pools: dict[tuple[int, Models | None], Pool] = {}
_pools_lock = threading.Lock()


def pool(size: int) -> Pool:
    """The process-wide pool of `size` workers (the watcher keeps its workers from scan to scan).
    Raises ConfigError, before any page, when :data:`MODELS_ENV` is set wrong."""
    models = custom_models()
    with _pools_lock:
        if (size, models) not in _pools:
            _pools[(size, models)] = Pool(size, models)
        return _pools[(size, models)]


@atexit.register
def close_all() -> None:
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for p in pools:
        p.close()
