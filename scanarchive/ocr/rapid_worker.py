"""The RapidOCR worker process (run as ``python -m scanarchive.ocr.rapid_worker``).

It loads RapidOCR's ONNX models once (about a second), says ``ready``, then
answers page after page: the parent writes a 4-byte big-endian length and a
PNG; the worker answers one JSON line, ``{"lines": [[text, score, [x0, y0, x1,
y1], alternatives], ...]}`` or ``{"error": "..."}``. It ends at end of input, so it dies with
its parent. It writes no file and prints nothing else: the recognised text
goes only down the pipe.

Memory (bench/memory.py): after each page the freed heap is handed back to the
system (glibc ``malloc_trim``; without it the resident size stayed near the
largest page's peak, 260-340 MB, instead of the ~145 MB of a loaded worker),
and when the resident size is still above the budget given as the first
argument (MB) the answer carries ``"retire": true`` and the worker exits, so
the pool starts a fresh one: a worker's memory stays bounded however many
pages, and page shapes, it sees.

Alternatives: for each word of a line's text (its runs of non-space
characters, in order), the other readings the recogniser found likely, as
``[[text, probability], ...]``, best first (``[]`` when none). The recogniser
gives, for each CTC frame of the line, a probability for every character; the
first reading is RapidOCR's own (the best character of each frame). The frames
between the spaces around a word are searched again with a CTC prefix beam
search over each frame's few likeliest characters (:func:`word_readings`):
readings whose probability is at least :data:`KEEP_RATIO` of the best are sent,
at most :data:`KEEP` a word, with their share of the beam's probability. Which
of them are indexed is merge.py's choice. The probabilities are taken by
wrapping the recogniser's postprocess (:func:`_keep_alternatives`), the way
:func:`_session_options` wraps its session options.

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
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

from scanarchive.hardening import protect_process
from scanarchive.sandbox import NO_TELEMETRY

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

BEAM = 8  # hypotheses kept at each frame of a word's beam search
CLASSES = 5  # characters tried at each frame: its likeliest ones ...
CLASS_FLOOR = 0.01  # ... with at least this probability
SURE = 0.995  # a frame whose best character has this probability has no other reading worth a search
KEEP_RATIO = 0.01  # readings sent: probability at least this share of the best reading's
KEEP = 5  # at most this many other readings a word
Reading = tuple[str, float]  # text, probability (0-1)


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


def _beam(
    frames: npt.NDArray[np.float32], tops: Sequence[Sequence[tuple[int, float]]], blank: int
) -> list[tuple[tuple[int, ...], float]]:
    """CTC prefix beam search over `frames` (probabilities, [T, classes]) trying at each frame only the
    characters in `tops` (blank excluded): the best :data:`BEAM` label sequences and their probabilities
    (summed over the paths that spell them; relative: the best is 1), best first."""
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (1.0, 0.0)}  # prefix -> (ends in blank, not)
    for t, candidates in enumerate(tops):
        p_blank = float(frames[t, blank])
        grown: dict[tuple[int, ...], list[float]] = {}
        for prefix, (pb, pnb) in beams.items():
            total = pb + pnb
            here = grown.setdefault(prefix, [0.0, 0.0])
            here[0] += total * p_blank
            last = prefix[-1] if prefix else -1
            if last >= 0:  # the last character again, without a blank in between: the same prefix
                here[1] += pnb * float(frames[t, last])
            for c, p in candidates:
                longer = grown.setdefault((*prefix, c), [0.0, 0.0])
                longer[1] += (pb if c == last else total) * p
        best = sorted(grown.items(), key=lambda kv: kv[1][0] + kv[1][1], reverse=True)[:BEAM]
        scale = best[0][1][0] + best[0][1][1] or 1.0  # kept near 1: long words do not underflow
        beams = {prefix: (pb / scale, pnb / scale) for prefix, (pb, pnb) in best}
    found = [(prefix, pb + pnb) for prefix, (pb, pnb) in beams.items() if pb + pnb > 0]
    return sorted(found, key=lambda kv: kv[1], reverse=True)


def word_readings(probs: npt.NDArray[np.float32], characters: Sequence[str], text: str) -> list[list[Reading]]:
    """Other readings of each word of one line: `probs` is the recogniser's output for it ([T, classes],
    class 0 the CTC blank, `characters` the classes' text), `text` its first reading (best class per frame,
    repeats and blanks removed). One list per run of non-space characters of `text`, each reading with its
    share of the word's beam; [] when `text` is not the best path of `probs` (another decoder)."""
    import numpy as np  # noqa: PLC0415 - comes with RapidOCR; only the worker needs it

    if probs.ndim != 2 or probs.shape[1] != len(characters) or not text.split():
        return []
    best = probs.argmax(axis=1)
    chosen = best != 0
    chosen[1:] &= best[1:] != best[:-1]
    at = np.flatnonzero(chosen)  # the frame of each character of `text`
    chars = [characters[int(c)] for c in best[at]]
    if "".join(chars) != text:
        return []
    sure = probs[np.arange(len(best)), best] >= SURE
    out: list[list[Reading]] = []
    n = 0
    while n < len(chars):
        if _space(chars[n]):
            n += 1
            continue
        end = n
        while end < len(chars) and not _space(chars[end]):
            end += 1
        word = "".join(chars[n:end])
        start_frame = int(at[n - 1]) + 1 if n else 0
        end_frame = int(at[end]) if end < len(chars) else len(best)
        n, readings = end, []
        if not sure[start_frame:end_frame].all():
            readings = _readings_of(probs[start_frame:end_frame], best[start_frame:end_frame], characters, word)
        out.append(readings)
    return out


def _space(char: str) -> bool:
    """Whether a class's text separates words (a class may also be empty text: it joins nothing)."""
    return bool(char) and not char.strip()


def _readings_of(
    frames: npt.NDArray[np.float32], best: npt.NDArray[np.intp], characters: Sequence[str], word: str
) -> list[Reading]:
    import numpy as np  # noqa: PLC0415

    tops: list[list[tuple[int, float]]] = [[] for _ in range(len(frames))]
    for t, c in zip(*np.nonzero(frames >= CLASS_FLOOR), strict=True):  # a few characters a frame, at most
        if c != 0 and (frames[t, best[t]] < SURE or c == best[t]):
            tops[int(t)].append((int(c), float(frames[t, c])))
    for t, candidates in enumerate(tops):
        if len(candidates) > CLASSES:
            tops[t] = sorted(candidates, key=lambda cp: cp[1], reverse=True)[:CLASSES]
    found = _beam(frames, tops, 0)
    total = sum(p for _, p in found) or 1.0
    readings: dict[str, float] = {}
    for labels, p in found:
        reading = "".join(characters[i] for i in labels).strip()
        if reading:
            readings[reading] = readings.get(reading, 0.0) + p / total
    first = readings.pop(word, 0.0)
    top = max([first, *readings.values()])
    ranked = sorted(readings.items(), key=lambda kv: kv[1], reverse=True)
    return [(text, round(p, 4)) for text, p in ranked[:KEEP] if p >= KEEP_RATIO * top]


def _other_readings(preds: Any, n: int, characters: Sequence[str], text: str) -> list[list[Reading]]:
    """word_readings of line `n` of a batch; none rather than a failed page if they cannot be had."""
    try:
        return word_readings(preds[n], characters, text)
    except (ValueError, TypeError, IndexError, AttributeError, MemoryError):
        return []


def _keep_alternatives(engine: Any) -> None:
    """Narrowly wrap RapidOCR 1.4.4's recognition postprocess (TextRecognizer.postprocess_op, a CTCLabelDecode
    given the recogniser's [batch, T, classes] probabilities): each line's (text, score) gets a third item, its
    words' other readings (:func:`word_readings`). RapidOCR passes a line's result on whole, so the page's
    result rows become [box, text, score, alternatives]. Another rapidocr layout: first readings only."""
    recogniser = getattr(engine, "text_rec", None)
    decode = getattr(recogniser, "postprocess_op", None)
    characters = getattr(decode, "character", None)
    if recogniser is None or not callable(decode) or not isinstance(characters, list):
        return

    def postprocess(preds: Any, return_word_box: bool = False, **kwargs: Any) -> Any:
        lines = decode(preds, return_word_box, **kwargs)
        if return_word_box:  # not asked for by this worker: RapidOCR's own result, untouched
            return lines
        return [(*line[:2], _other_readings(preds, n, characters, str(line[0]))) for n, line in enumerate(lines)]

    recogniser.postprocess_op = postprocess


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
    _keep_alternatives(engine)
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
            for quad, text, score, *more in result or []:
                xs = [float(p[0]) for p in quad]
                ys = [float(p[1]) for p in quad]
                lines.append([str(text), float(score), [min(xs), min(ys), max(xs), max(ys)], more[0] if more else []])
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
