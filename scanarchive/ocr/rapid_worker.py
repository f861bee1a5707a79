"""The RapidOCR worker process (run as ``python -m scanarchive.ocr.rapid_worker``).

It loads RapidOCR's ONNX models once (about a second), says ``ready``, then
answers page after page: the parent writes a 4-byte big-endian length and a
PNG; the worker answers one JSON line, ``{"lines": [[text, score, [x0, y0, x1,
y1]], ...]}`` or ``{"error": "..."}``. It ends at end of input, so it dies with
its parent. It writes no file and prints nothing else: the recognised text
goes only down the pipe.

Memory (bench/memory.py): after each page the freed heap is handed back to the
system (glibc ``malloc_trim``; without it the resident size stayed near the
largest page's peak, 260-340 MB, instead of the ~145 MB of a loaded worker),
and when the resident size is still above the budget given as the first
argument (MB) the answer carries ``"retire": true`` and the worker exits, so
the pool starts a fresh one: a worker's memory stays bounded however many
pages, and page shapes, it sees.

Arguments 2-4 are a detection model, a recognition model and its keys file
that replace RapidOCR's own (its ``det_model_path`` / ``rec_model_path`` /
``rec_keys_path``): the PP-OCRv5 files shipped in the package, checked by the
parent, or others for an evaluation (``rapidocr.MODELS_ENV``). Without them
RapidOCR runs the PP-OCRv4 models inside its wheel.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib
import json
import os
import sys
from collections.abc import Callable
from typing import Any, BinaryIO

from scanarchive.hardening import protect_process
from scanarchive.sandbox import NO_TELEMETRY


def _answer(out: BinaryIO, doc: dict[str, Any]) -> None:
    out.write(json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n")
    out.flush()


def _malloc_trim() -> Callable[[], object]:
    """glibc's malloc_trim(0), or a no-op where the C library has none (musl)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _session_options() -> None:
    """Narrowly wrap rapidocr_onnxruntime's own SessionOptions factory (1.4.4: OrtInferSession._init_sess_opts,
    which takes no options from RapidOCR's arguments or config): ONNX Runtime's memory patterns off. A
    pattern is planned and kept for every input shape seen, and with one text line per recognition batch
    every line width is a new shape; the arena is already off in rapidocr's options."""
    try:
        session = importlib.import_module("rapidocr_onnxruntime.utils").OrtInferSession
    except (ImportError, AttributeError):  # another rapidocr layout: its own defaults
        return
    original = getattr(session, "_init_sess_opts", None)
    if not callable(original):
        return

    def init_sess_opts(config: dict[str, Any]) -> Any:
        options = original(config)
        options.enable_mem_pattern = False
        return options

    session._init_sess_opts = staticmethod(init_sess_opts)


def _read_exact(stream: BinaryIO, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def main() -> int:
    budget = int(sys.argv[1]) * 1_000_000 if len(sys.argv) > 1 and sys.argv[1].isdigit() else 0
    models: dict[str, str] = {}
    if len(sys.argv) == 5:  # detection, recognition, keys (see the docstring)
        models = dict(zip(("det_model_path", "rec_model_path", "rec_keys_path"), sys.argv[2:5], strict=True))
    elif len(sys.argv) > 2:
        _answer(sys.stdout.buffer, {"error": "UsageError"})
        return 2
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing a library prints may corrupt the answer stream
    protect_process()  # it holds page images and their text: no core dump, no same-user /proc/PID/mem
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # ONNX Runtime's telemetry starts when it is imported, so the switch must be set before (the parent sets
    # it too: this covers a worker started by hand); the API call afterwards stops any events still queued.
    os.environ.update(NO_TELEMETRY)
    disable = getattr(importlib.import_module("onnxruntime"), "disable_telemetry_events", None)
    if callable(disable):
        disable()
    _session_options()
    from rapidocr_onnxruntime import RapidOCR  # noqa: PLC0415 - heavy: onnxruntime, OpenCV, the models

    engine = RapidOCR(
        intra_op_num_threads=1,  # one page per worker; parallelism comes from several workers
        inter_op_num_threads=1,
        use_cls=False,  # pages arrive upright (sheet codes turn them); the 180° classifier only costs time
        det_limit_side_len=960,  # text detection needs no more; recognition still reads full-resolution crops
        det_limit_type="max",
        rec_batch_num=1,  # batches pad every line to the widest: more memory and, on handwriting, more time
        **models,
    )
    trim = _malloc_trim()
    _answer(stdout, {"ready": True})
    while True:
        header = _read_exact(stdin, 4)
        if header is None:
            return 0
        png = _read_exact(stdin, int.from_bytes(header, "big"))
        if png is None:
            return 0
        doc: dict[str, Any]
        result: Any = None
        try:
            result, _ = engine(png)
        except Exception as exc:  # any engine failure is one page's failure, reported by kind only
            doc = {"error": type(exc).__name__}
        else:
            lines = []
            for quad, text, score in result or []:
                xs = [float(p[0]) for p in quad]
                ys = [float(p[1]) for p in quad]
                lines.append([str(text), float(score), [min(xs), min(ys), max(xs), max(ys)]])
            doc = {"lines": lines}
        del png, result  # the page's image and arrays, before the heap is trimmed
        trim()
        retire = bool(budget) and _rss_bytes() > budget
        if retire:
            doc["retire"] = True
        _answer(stdout, doc)
        if retire:
            return 0


if __name__ == "__main__":
    sys.exit(main())
