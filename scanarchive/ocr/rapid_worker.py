"""The RapidOCR worker process (run as ``python -m scanarchive.ocr.rapid_worker``).

It loads RapidOCR's ONNX models once (about a second), says ``ready``, then
answers page after page: the parent writes a 4-byte big-endian length and a
PNG; the worker answers one JSON line, ``{"lines": [[text, score, [x0, y0, x1,
y1]], ...]}`` or ``{"error": "..."}``. It ends at end of input, so it dies with
its parent. It writes no file and prints nothing else: the recognised text
goes only down the pipe.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Any, BinaryIO

from scanarchive.hardening import protect_process
from scanarchive.sandbox import NO_TELEMETRY


def _answer(out: BinaryIO, doc: dict[str, Any]) -> None:
    out.write(json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n")
    out.flush()


def _read_exact(stream: BinaryIO, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def main() -> int:
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
    from rapidocr_onnxruntime import RapidOCR  # noqa: PLC0415 - heavy: onnxruntime, OpenCV, the models

    engine = RapidOCR(
        intra_op_num_threads=1,  # one page per worker; parallelism comes from several workers
        inter_op_num_threads=1,
        use_cls=False,  # pages arrive upright (sheet codes turn them); the 180° classifier only costs time
        det_limit_side_len=960,  # text detection needs no more; recognition still reads full-resolution crops
        det_limit_type="max",
        rec_batch_num=1,  # batches pad every line to the widest: more memory and, on handwriting, more time
    )
    _answer(stdout, {"ready": True})
    while True:
        header = _read_exact(stdin, 4)
        if header is None:
            return 0
        png = _read_exact(stdin, int.from_bytes(header, "big"))
        if png is None:
            return 0
        try:
            result, _ = engine(png)
        except Exception as exc:  # any engine failure is one page's failure, reported by kind only
            _answer(stdout, {"error": type(exc).__name__})
            continue
        lines = []
        for quad, text, score in result or []:
            xs = [float(p[0]) for p in quad]
            ys = [float(p[1]) for p in quad]
            lines.append([str(text), float(score), [min(xs), min(ys), max(xs), max(ys)]])
        _answer(stdout, {"lines": lines})


if __name__ == "__main__":
    sys.exit(main())
